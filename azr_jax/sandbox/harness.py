"""What runs inside the sandboxed child: build the namespace, run the probe, turn the outcome into
a result dict. Nothing here isolates anything (see isolation.py); this module only defines AZR's
execution semantics (azr_method.md §3, §10), so it can also be unit-tested in-process.

Semantics worth knowing:
- `f` is called with arguments evaluated from the input text; for the determinism check the
  arguments are evaluated twice (fresh objects each time, as the official template pastes the input
  twice) and the first call's arguments stay alive during the second call, so `id()`-based outputs
  differ and are caught.
- The gold value is evaluated only after the candidate's code has returned.
- Answer equality is Python `==`, except that a candidate value holding an object whose type is not
  a trusted value type must be of exactly the gold's type: an object with an always-true `__eq__`
  cannot pass a check.
"""

from __future__ import annotations

import builtins
import collections
import decimal
import fractions
import functools
import io
import numbers
import pickle
import signal
from typing import Any

from .jobs import (
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_OUTPUT,
    PROBE_PAIRS,
    PROBE_SCRIPT,
    REJECTED_PREFIX,
    STATUS_MEMORY,
    STATUS_OK,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    Job,
    error_status,
)
from .static_checks import ENTRY_FUNCTION, PROGRAM_CACHE_SIZE, call_source, check_job

# Source names shown in tracebacks/SyntaxErrors of the job's code.
_PROGRAM_FILE, _INPUT_FILE = "<program>", "<input>"

# Types whose `__eq__` is the interpreter's own; a value built only from these cannot lie about equality.
TRUSTED_VALUE_TYPES = frozenset(
    {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        bytearray,
        type(None),
        type(Ellipsis),
        type(NotImplemented),
        list,
        tuple,
        dict,
        set,
        frozenset,
        range,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
        collections.deque,
        fractions.Fraction,
        decimal.Decimal,
    }
)
# log2(10): bits per decimal digit, to bound an int's repr length without computing it.
_BITS_PER_DIGIT = 3.3219280948873626
_ARGS_CAPTURE = "__azr_capture_args__"


class NondeterminismError(Exception):
    """Two calls of f with the same input returned values that are not `==`."""


class OutputLimitExceeded(BaseException):
    """Raised inside print() when captured stdout passes its bound.

    A BaseException, so the job's `except Exception` cannot swallow it."""


class _CallTimeout(BaseException):
    """Raised by the per-pair alarm of the induction probe."""


class ValueTooLarge(Exception):
    """The repr of a returned value is longer than the job allows."""


class BoundedWriter(io.TextIOBase):
    """A text sink that keeps at most `limit` characters and remembers that it overflowed."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.overflowed = False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.limit - self.size
        if len(s) > room:
            if room > 0:
                self.parts.append(s[:room])
            self.size = self.limit
            self.overflowed = True
            raise OutputLimitExceeded(f"stdout exceeded {self.limit} characters")
        self.parts.append(s)
        self.size += len(s)
        return len(s)

    def getvalue(self) -> str:
        return "".join(self.parts)


class CodeCache:
    """Compiled code objects keyed by (source, filename, mode).

    The worker fills it before forking (`precompile`), so the child runs code objects it inherits
    instead of paying for the parser on copy-on-write pages; a compile error is stored and re-raised
    where the child would have met it. `dont_inherit` keeps this module's __future__ flags out.
    """

    def __init__(self) -> None:
        self._codes: dict[tuple[str, str, str], Any] = {}

    def add(self, source: str, filename: str, mode: str) -> None:
        key = (source, filename, mode)
        if key not in self._codes:
            self._codes[key] = _compile_or_error(source, filename, mode)

    def get(self, source: str, filename: str, mode: str) -> Any:
        key = (source, filename, mode)
        if key not in self._codes:
            self.add(source, filename, mode)
        code = self._codes[key]
        if isinstance(code, BaseException):
            raise code
        return code


def _compile_or_error(source: str, filename: str, mode: str) -> Any:
    """A code object, or the exception compiling raised."""
    if mode == "exec":  # programs repeat across a task's inputs and answers: remember them
        return _compile_program(source, filename)
    try:
        return compile(source, filename, mode, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return exc


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def _compile_program(source: str, filename: str) -> Any:
    try:
        return compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return exc


def _program_source(job: Job) -> str:
    return "\n".join(list(job.imports) + [job.program])


def _capture_source(arguments: str) -> str:
    return call_source(arguments, _ARGS_CAPTURE)


def precompile(job: Job) -> CodeCache:
    """Compile every text the job's probe will run (called in the worker, never executes anything)."""
    codes = CodeCache()
    if job.program or job.imports or job.probe != PROBE_EQUAL:
        codes.add(_program_source(job), _PROGRAM_FILE, "exec")
    if job.probe == PROBE_OUTPUT:
        codes.add(_capture_source(job.args[0]), _INPUT_FILE, "eval")
    elif job.probe == PROBE_EQUAL:
        codes.add(job.args[0].strip(), "<gold>", "eval")
        codes.add(job.args[1].strip(), "<answer>", "eval")
    elif job.probe == PROBE_CALL_EQUAL:
        codes.add(job.args[0].strip(), "<gold>", "eval")
        codes.add(_capture_source(job.args[1]), _INPUT_FILE, "eval")
    elif job.probe == PROBE_PAIRS:
        for k in range(0, len(job.args), 2):
            codes.add(_capture_source(job.args[k]), _INPUT_FILE, "eval")
            codes.add(job.args[k + 1].strip(), "<gold>", "eval")
    return codes


def fresh_namespace() -> dict[str, Any]:
    """A new module-like globals dict, as the official executor uses per execution."""
    return {"__name__": "__main__", "__builtins__": builtins}


def load_program(job: Job, codes: CodeCache) -> dict[str, Any]:
    """Exec the import lines and the program into a fresh namespace."""
    ns = fresh_namespace()
    exec(codes.get(_program_source(job), _PROGRAM_FILE, "exec"), ns)  # noqa: S102 - the sandboxed child
    return ns


def _call_f(ns: dict[str, Any], arguments: str, codes: CodeCache) -> tuple[Any, tuple]:
    """Evaluate the argument text, call f, return (value, evaluated arguments)."""
    if ENTRY_FUNCTION not in ns:
        raise NameError(f"name {ENTRY_FUNCTION!r} is not defined")
    ns[_ARGS_CAPTURE] = _capture
    try:
        args, kwargs = eval(codes.get(_capture_source(arguments), _INPUT_FILE, "eval"), ns)  # noqa: S307
    finally:
        ns.pop(_ARGS_CAPTURE, None)
    return ns[ENTRY_FUNCTION](*args, **kwargs), (args, kwargs)


def _capture(*args: Any, **kwargs: Any) -> tuple[tuple, dict]:
    return args, kwargs


def _eval(ns: dict[str, Any], text: str, what: str, codes: CodeCache) -> Any:
    return eval(codes.get(text.strip(), f"<{what}>", "eval"), ns)  # noqa: S307


def bounded_repr(value: Any, opts) -> str:
    """repr(value), truncated the official way or refused when longer than the job allows."""
    limit = opts.max_repr_chars
    if not opts.truncate_repr and type(value) is int and value.bit_length() > (limit + 1) * _BITS_PER_DIGIT + 1:
        raise ValueTooLarge(f"int with about {int(value.bit_length() / _BITS_PER_DIGIT)} digits")
    text = repr(value)
    keep = opts.truncate_keep_chars
    if opts.truncate_repr:
        if len(text) > 2 * keep:
            text = text[:keep] + "..." + text[-keep:]
    elif len(text) > limit:
        raise ValueTooLarge(f"repr has {len(text)} characters, limit {limit}")
    return text


_MRO_OF = type.__dict__["__mro__"].__get__  # read past any metaclass trickery
_DICT_OF = type.__dict__["__dict__"].__get__
_SLOT_WRAPPER = type(object.__eq__)


def has_native_eq(kind: type) -> bool:
    """True if instances of `kind` compare with an `__eq__` written in C, not in Python."""
    for base in _MRO_OF(kind):
        attrs = _DICT_OF(base)
        if "__eq__" in attrs:
            return type(attrs["__eq__"]) is _SLOT_WRAPPER
    return True


def _trusted_leaf(item: Any, kind: type) -> bool:
    """Scalars outside TRUSTED_VALUE_TYPES that are still honest: C-level `__eq__` and a numeric or
    string nature (numpy scalars, IntEnum, str subclasses, ...). Containers never qualify here."""
    if not has_native_eq(kind):
        return False
    if isinstance(item, numbers.Number) or issubclass(kind, (str, bytes)):
        return True
    return kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")


def is_trusted_value(value: Any, budget: int = 1_000_000) -> bool:
    """True if `value` is built only from TRUSTED_VALUE_TYPES containers and honest scalars
    (bounded walk, cycles allowed)."""
    stack, seen = [value], set()
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        kind = type(item)
        if kind not in TRUSTED_VALUE_TYPES:
            if _trusted_leaf(item, kind):
                continue
            return False
        if kind in (list, tuple, set, frozenset, collections.deque):
            if id(item) not in seen:
                seen.add(id(item))
                stack.extend(item)
        elif isinstance(item, dict):
            if id(item) not in seen:
                seen.add(id(item))
                stack.extend(item.keys())
                stack.extend(item.values())
    return True


def values_equal(gold: Any, candidate: Any) -> bool:
    """Official `gold == candidate`, refusing candidates whose foreign `__eq__` could fake equality.

    A candidate built only from trusted value types is compared with plain `==`. Otherwise the two
    are walked in parallel: containers must have the same type and be equal element by element, and
    a foreign object only compares equal to a gold object of exactly its own type.
    """
    if is_trusted_value(candidate):
        return bool(gold == candidate)
    try:
        return _structural_equal(gold, candidate)
    except RecursionError:
        return False


_SEQUENCES = (list, tuple, collections.deque)
_MAPPINGS = (dict, collections.OrderedDict, collections.defaultdict, collections.Counter)


def _structural_equal(gold: Any, candidate: Any) -> bool:
    if is_trusted_value(candidate):
        return bool(gold == candidate)
    kind = type(candidate)
    if kind in _SEQUENCES:  # a trusted container holding something foreign: compare pairwise
        return (
            type(gold) is kind
            and len(gold) == len(candidate)
            and all(_structural_equal(g, c) for g, c in zip(gold, candidate, strict=True))
        )
    if kind in _MAPPINGS:
        if not isinstance(gold, dict) or len(gold) != len(candidate):
            return False
        if not all(is_trusted_value(k) for k in candidate):
            return False
        return all(k in gold and _structural_equal(gold[k], v) for k, v in candidate.items())
    if kind in TRUSTED_VALUE_TYPES:  # a set/frozenset holding foreign objects: cannot pair safely
        return False
    return type(gold) is kind and bool(gold == candidate)


def _answer_matches(
    gold_text: str, ns: dict[str, Any], candidate: Any, job: Job, codes: CodeCache, candidate_text: str | None = None
) -> bool:
    """Compare a candidate with the gold text evaluated in `ns` (evaluated only now, after the candidate ran)."""
    try:
        gold = _eval(ns, gold_text, "gold", codes)
    except Exception:
        if not job.options.repr_fallback:
            raise
        if candidate_text is not None:
            return candidate_text.strip() == gold_text.strip()
        return repr(candidate) == gold_text.strip()
    if values_equal(gold, candidate):
        return True
    # Official fallback (§10.1): both sides strings holding Python expressions, e.g. '[1,2]' vs '[1, 2]'.
    if type(gold) is str and type(candidate) is str:
        try:
            inner_gold = _eval(fresh_namespace(), gold, "gold", codes)
            return values_equal(inner_gold, _eval(fresh_namespace(), candidate, "answer", codes))
        except Exception:
            return False
    return False


def exception_status(exc: BaseException) -> str:
    """Map an exception raised by (or around) the job's code to a status string."""
    if isinstance(exc, MemoryError):
        return STATUS_MEMORY
    if isinstance(exc, (ValueTooLarge, OutputLimitExceeded)):
        return STATUS_OUTPUT_TOO_LARGE
    if isinstance(exc, _CallTimeout):
        return STATUS_TIMEOUT
    try:
        message = str(exc)
    except BaseException:  # a hostile __str__
        message = "<unprintable message>"
    return error_status(type(exc).__name__, message)


def _probe_output(job: Job, codes: CodeCache) -> dict[str, Any]:
    opts = job.options
    ns = load_program(job, codes)
    first, first_args = _call_f(ns, job.args[0], codes)
    if opts.determinism:
        second, _ = _call_f(ns, job.args[0], codes)
        if first != second:
            raise NondeterminismError("two calls with the same input returned different values")
    del first_args  # kept alive through the second call so id()-based outputs differ
    text = bounded_repr(first, opts)
    if opts.require_picklable:
        pickle.dumps(first)
    return {"status": STATUS_OK, "value": text}


def _probe_equal(job: Job, codes: CodeCache) -> dict[str, Any]:
    ns = load_program(job, codes) if (job.program or job.imports) else fresh_namespace()
    gold_text, pred_text = job.args
    try:
        predicted = _eval(ns, pred_text, "answer", codes)
    except Exception:
        if not job.options.repr_fallback:
            raise
        # e.g. gold and answer both `[inf]`: not evaluable, but the same text.
        return {"status": STATUS_OK, "value": None, "verdict": pred_text.strip() == gold_text.strip()}
    verdict = _answer_matches(gold_text, ns, predicted, job, codes, candidate_text=pred_text)
    return {"status": STATUS_OK, "value": _report_repr(predicted), "verdict": verdict}


def _probe_call_equal(job: Job, codes: CodeCache) -> dict[str, Any]:
    ns = load_program(job, codes)
    gold_text, input_text = job.args
    value, _ = _call_f(ns, input_text, codes)
    verdict = _answer_matches(gold_text, ns, value, job, codes)
    return {"status": STATUS_OK, "value": _report_repr(value), "verdict": verdict}


def _alarm(signum, frame):  # pragma: no cover - runs in the child
    raise _CallTimeout("pair timed out")


def _probe_pairs(job: Job, codes: CodeCache) -> dict[str, Any]:
    """Each hidden pair in a fresh namespace with its own timeout budget (alarm)."""
    verdicts: list[bool] = []
    statuses: list[str] = []
    for k in range(0, len(job.args), 2):
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, job.options.timeout_s)
        try:
            ns = load_program(job, codes)
            value, _ = _call_f(ns, job.args[k], codes)
            verdicts.append(_answer_matches(job.args[k + 1], ns, value, job, codes))
            statuses.append(STATUS_OK)
        except OutputLimitExceeded:
            raise
        except BaseException as exc:  # noqa: BLE001 - a pair's failure is a wrong answer
            verdicts.append(False)
            statuses.append(exception_status(exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    failing = [s for s in statuses if s != STATUS_OK]
    return {
        "status": failing[0] if failing else STATUS_OK,
        "verdict": all(verdicts),
        "pair_verdicts": verdicts,
        "pair_statuses": statuses,
    }


def _probe_script(job: Job, codes: CodeCache) -> dict[str, Any]:
    try:
        load_program(job, codes)
    except SystemExit as exc:  # a script may end itself with exit(0) / sys.exit()
        if exc.code not in (None, 0):
            raise
    return {"status": STATUS_OK}


class _ReportOptions:
    """Limits for the informational repr of a checked answer (not part of the verdict)."""

    max_repr_chars = 2 * 200
    truncate_repr = True
    truncate_keep_chars = 200


_REPORT_OPTS = _ReportOptions()


def _report_repr(value: Any) -> str | None:
    """Informational repr of a checked answer; failures here never change the verdict."""
    try:
        return bounded_repr(value, _REPORT_OPTS)
    except Exception:
        return None


_PROBE_FUNCS = {
    PROBE_OUTPUT: _probe_output,
    PROBE_EQUAL: _probe_equal,
    PROBE_CALL_EQUAL: _probe_call_equal,
    PROBE_PAIRS: _probe_pairs,
    PROBE_SCRIPT: _probe_script,
}
CHECKING_PROBES = (PROBE_EQUAL, PROBE_CALL_EQUAL, PROBE_PAIRS)


def rejection(job: Job) -> dict[str, Any] | None:
    """The result of a job its static checks refuse, or None if it may run."""
    try:
        reason = check_job(job)
    except Exception as exc:  # noqa: BLE001 - a checker bug must not take the worker down
        reason = f"static check failed: {type(exc).__name__}: {exc}"
    if not reason:
        return None
    out: dict[str, Any] = {"status": REJECTED_PREFIX + reason}
    _fill_verdicts(job, out)
    return out


def _fill_verdicts(job: Job, out: dict[str, Any]) -> None:
    if job.probe in CHECKING_PROBES and out.get("verdict") is None:
        out["verdict"] = False
        if job.probe == PROBE_PAIRS:
            n = len(job.args) // 2
            out.setdefault("pair_verdicts", [False] * n)
            out.setdefault("pair_statuses", [out["status"]] * n)


def run_job(job: Job, stdout: BoundedWriter, codes: CodeCache | None = None, checked: bool = False) -> dict[str, Any]:
    """Static checks (unless the caller already ran them), then the probe; every failure becomes a
    status. Never raises."""
    out = None if checked else rejection(job)
    if out is None:
        try:
            out = _PROBE_FUNCS[job.probe](job, codes or CodeCache())
        except BaseException as exc:  # noqa: BLE001 - everything the job does ends here
            out = {"status": exception_status(exc)}
    _fill_verdicts(job, out)
    if stdout.overflowed:
        out["status"] = STATUS_OUTPUT_TOO_LARGE
        if job.probe in CHECKING_PROBES:
            out["verdict"] = False
    out["stdout"] = stdout.getvalue()
    return out

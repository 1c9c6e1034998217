"""Runtime of the benchmark test scripts: copied verbatim into every script.

`test_programs.build_test_program` emits this module's source followed by one `run_main(...)` call,
so a test script is a single self-contained Python file (standard library only) that the sandbox
farm can run with no access to this package. The script prints `PASS_MARKER` and exits 0 only when
every test passes; any failure exits 1 with the reason on stderr. The candidate's own prints go to a
discarding sink (stdin programs' output is captured for comparison), so the candidate cannot print
the marker, and `exit()` calls inside candidate code count as failures, not as a clean exit.

Time budgets: each test runs under a `SIGALRM` interval timer; the whole candidate phase also has
a deadline. The sandbox's wall-clock limit stays the last line of defence (a candidate can swallow
the timer signal with a bare `except:`).

This module must stay importable on its own and use nothing outside the standard library.
"""
import contextlib
import copy
import io
import json
import math
import os
import signal
import sys
import time
from decimal import Decimal, InvalidOperation

PASS_MARKER = "AZR_EVAL_PASSED"
# Relative tolerance of EvalPlus's float comparison (numpy.allclose's default).
FLOAT_RTOL = 1e-7
# Absolute tolerance EvalPlus enforces when the expected value is a float but the task gives none.
DEFAULT_FLOAT_ATOL = 1e-6


class TestTimeout(BaseException):
    """A test ran past its time budget (BaseException so `except Exception` in candidates does
    not swallow it)."""


class TestFailure(Exception):
    """The candidate failed a test; the message says which and why."""


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TestTimeout in the running code after `seconds` of wall-clock time."""
    if seconds <= 0:
        raise TestTimeout("no time left in the task budget")

    def _alarm(signum, frame):
        raise TestTimeout("exceeded %.2f s" % seconds)

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Sink(io.TextIOBase):
    """A writable text stream that discards everything."""

    def writable(self):
        return True

    def write(self, text):
        return len(text)


class _KeptBytes(io.BytesIO):
    """BytesIO whose contents survive `close()` (candidates sometimes close stdout)."""

    def close(self):
        self.flush()


def _text_stream(data=b""):
    """A text stream with a `.buffer`, like the real stdin/stdout."""
    return io.TextIOWrapper(_KeptBytes(data), encoding="utf-8", write_through=True)


@contextlib.contextmanager
def redirected(stdin_text="", stdout=None):
    """Give the code an own stdin (default empty) and a stdout (default discarding); stderr is
    always discarded. The real streams come back afterwards whatever the code did to sys."""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = _text_stream(stdin_text.encode("utf-8"))
    sys.stdout = stdout if stdout is not None else _Sink()
    sys.stderr = _Sink()
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def literal(text):
    """Evaluate a literal written by the harness builder (reprs of inputs and outputs)."""
    names = {"__builtins__": {}, "inf": math.inf, "nan": math.nan, "set": set,
             "frozenset": frozenset, "complex": complex}
    return eval(text, names)  # noqa: S307 - harness-written literal, not model text


def load_program(source, label, seconds, namespace=None):
    """Execute a program's module-level code in a fresh namespace and return the namespace."""
    namespace = {"__name__": "__%s__" % label} if namespace is None else namespace
    try:
        code = compile(source, "<%s>" % label, "exec")
    except SyntaxError as err:
        raise TestFailure("%s does not compile: %s" % (label, err)) from None
    try:
        with time_limit(seconds), redirected():
            exec(code, namespace)  # noqa: S102 - this script runs inside the sandbox
    except SystemExit:
        raise TestFailure("%s called exit() while loading" % label) from None
    except TestTimeout:
        raise TestFailure("%s timed out while loading" % label) from None
    except Exception as err:
        raise TestFailure("%s raised while loading: %s: %s" % (label, type(err).__name__, err)) from None
    return namespace


def _call(fn, args, seconds, label):
    try:
        with time_limit(seconds), redirected():
            return fn(*args)
    except SystemExit:
        raise TestFailure("%s called exit()" % label) from None
    except TestTimeout as err:
        raise TestFailure("%s timed out (%s)" % (label, err)) from None
    except Exception as err:
        raise TestFailure("%s raised %s: %s" % (label, type(err).__name__, err)) from None


# ----------------------------------------------------------------------------- output comparison

def _safe_equal(a, b):
    try:
        return bool(a == b)
    except Exception:
        return False


def _all_floats(value):
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, float) for v in value)


def _close(out, exp, atol, rtol):
    if isinstance(exp, (list, tuple)):
        if not isinstance(out, (list, tuple)) or len(out) != len(exp):
            return False
        return all(_close(o, e, atol, rtol) for o, e in zip(out, exp))
    numbers = (int, float, complex)
    if isinstance(out, numbers) and isinstance(exp, numbers):
        return abs(out - exp) <= atol + rtol * abs(exp)
    return False


def values_match(out, exp, atol):
    """EvalPlus's rule: equal, or (for floats) the same type and shape within tolerance."""
    if _safe_equal(out, exp):
        return True
    if atol == 0 and _all_floats(exp):
        atol = DEFAULT_FLOAT_ATOL
    if atol == 0 or type(out) is not type(exp):
        return False
    return _close(out, exp, atol, FLOAT_RTOL)


def _polynomial(coefficients, x):
    return sum(c * math.pow(x, i) for i, c in enumerate(coefficients))


def _pyramid_area_from_height(base_edge, height):
    """Square pyramid surface when `height` is read as the perpendicular height."""
    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 2 * base_edge * slant)


def _digit_distance_padded(a, b):
    """Digit-wise distance after left-padding the shorter number with zeros."""
    left, right = str(a), str(b)
    width = max(len(left), len(right))
    return sum(abs(int(x) - int(y)) for x, y in zip(left.zfill(width), right.zfill(width)))


def outputs_agree(oracle, out, exp, args, atol):
    """Whether a candidate output passes, for each oracle named in `problems.ORACLES`."""
    if oracle == "any_output":
        return True
    if oracle == "set_equal":
        try:
            return set(out) == set(exp)
        except TypeError:
            return False
    if oracle == "not_none":
        if isinstance(out, bool):
            return out == exp
        return exp == (out is not None)
    if oracle == "poly_root":
        tolerance = atol if atol > 0 else DEFAULT_FLOAT_ATOL
        try:
            return abs(_polynomial(args[0], out)) <= tolerance
        except Exception:
            return False
    if oracle == "exact_or_zero":
        return values_match(out, exp, atol) or _safe_equal(out, 0)
    if oracle == "alt_pyramid_area":
        try:
            return values_match(out, exp, atol) or abs(out - _pyramid_area_from_height(*args)) <= atol
        except Exception:
            return False
    if oracle == "alt_digit_distance":
        return values_match(out, exp, atol) or _safe_equal(out, _digit_distance_padded(*args))
    return values_match(out, exp, atol)


# ----------------------------------------------------------------------------- test kinds

def run_differential(reference, candidate, entry_point, inputs_literal, atol, oracle,
                     min_seconds, reference_factor, task_cap_seconds):
    """EvalPlus: expected outputs from the reference; per-test limit max(min, factor * ref time)."""
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    inputs = literal(inputs_literal)
    reference_fn = load_program(reference, "reference", task_cap_seconds).get(entry_point)
    if not callable(reference_fn):
        raise TestFailure("reference does not define %s" % entry_point)
    expected, limits = [], []
    for index, args in enumerate(inputs):
        start = time.perf_counter()
        value = _call(reference_fn, copy.deepcopy(args), task_cap_seconds, "reference on test %d" % index)
        limits.append(max(min_seconds, reference_factor * (time.perf_counter() - start)))
        expected.append(value is not None if oracle == "not_none" else value)
    deadline = time.monotonic() + task_cap_seconds
    namespace = load_program(candidate, "candidate", min_seconds)
    candidate_fn = namespace.get(entry_point)
    if not callable(candidate_fn):
        raise TestFailure("candidate does not define %s" % entry_point)
    for index, (args, exp, limit) in enumerate(zip(inputs, expected, limits)):
        remaining = deadline - time.monotonic()
        out = _call(candidate_fn, copy.deepcopy(args), min(limit, remaining), "test %d" % index)
        if not outputs_agree(oracle, out, exp, args, atol):
            raise TestFailure("test %d: wrong output %.200r (expected %.200r)" % (index, out, exp))


def run_check_function(candidate, test_code, entry_point, seconds):
    """Original HumanEval: define the candidate, then run `check(candidate)` in its namespace."""
    namespace = load_program(candidate, "candidate", seconds)
    candidate_fn = namespace.get(entry_point)
    if not callable(candidate_fn):
        raise TestFailure("candidate does not define %s" % entry_point)
    load_program(test_code, "tests", seconds, namespace=namespace)
    _call(namespace["check"], (candidate_fn,), seconds, "check(%s)" % entry_point)


def run_assertions(candidate, setup_code, assertions, seconds):
    """Original MBPP: the candidate, the setup code, then each `assert` line under a time limit."""
    namespace = load_program(candidate, "candidate", seconds)
    if setup_code.strip():
        load_program(setup_code, "setup", seconds, namespace=namespace)
    for index, line in enumerate(assertions):
        try:
            code = compile(line, "<assertion %d>" % index, "exec")
        except SyntaxError as err:
            raise TestFailure("assertion %d does not compile: %s" % (index, err)) from None
        _call(exec, (code, namespace), seconds, "assertion %d" % index)


def _stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def _decimal_tokens(line):
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def stdout_matches(actual, expected):
    """LiveCodeBench's rule: same number of (stripped) lines, each equal as text or as a list of
    numbers compared exactly with Decimal."""
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


def run_io_functional(candidate, preamble, cases, fn_name, seconds, task_cap_seconds):
    """LiveCodeBench functional tests: `Solution().<fn_name>(*args)`, args one JSON per line."""
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    deadline = time.monotonic() + task_cap_seconds
    namespace = load_program(preamble + "\n" + candidate, "candidate", seconds)
    solution_class = namespace.get("Solution")
    if solution_class is not None:
        instance = _call(solution_class, (), seconds, "Solution()")
        method = getattr(instance, fn_name, None)
    else:
        method = namespace.get(fn_name)
    if not callable(method):
        raise TestFailure("candidate does not define %s" % fn_name)
    for index, (input_text, output_text) in enumerate(cases):
        args = [json.loads(line) for line in input_text.split("\n")]
        expected = json.loads(output_text)
        remaining = deadline - time.monotonic()
        out = _call(method, args, min(seconds, remaining), "test %d" % index)
        if isinstance(out, tuple):
            out = list(out)
        if not _safe_equal(out, expected):
            raise TestFailure("test %d: wrong output %.200r (expected %.200r)" % (index, out, expected))


def run_io_stdin(candidate, preamble, cases, seconds, task_cap_seconds):
    """LiveCodeBench stdin tests: run the whole program per test with the test's stdin."""
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    try:
        code = compile(preamble + "\n" + candidate, "<candidate>", "exec")
    except SyntaxError as err:
        raise TestFailure("candidate does not compile: %s" % err) from None
    deadline = time.monotonic() + task_cap_seconds
    real_open = open
    for index, (input_text, output_text) in enumerate(cases):
        stdout = _text_stream()

        def _open(file, *args, _stdin=input_text, **kwargs):
            if file in (0, "/dev/stdin"):
                return _text_stream(_stdin.encode("utf-8"))
            return real_open(file, *args, **kwargs)

        namespace = {"__name__": "__main__", "open": _open}
        remaining = deadline - time.monotonic()
        try:
            with time_limit(min(seconds, remaining)), redirected(input_text, stdout):
                try:
                    exec(code, namespace)  # noqa: S102 - this script runs inside the sandbox
                except SystemExit:
                    pass                    # exit() ends a stdin program normally
                stdout.flush()
        except TestTimeout as err:
            raise TestFailure("test %d timed out (%s)" % (index, err)) from None
        except Exception as err:
            raise TestFailure("test %d raised %s: %s" % (index, type(err).__name__, err)) from None
        actual = stdout.buffer.getvalue().decode("utf-8", errors="replace")
        if not stdout_matches(actual, output_text):
            raise TestFailure("test %d: wrong output %.200r (expected %.200r)" % (index, actual, output_text))


def run_exec_input(code, call, output_text, seconds):
    """Abduction (CRUXEval-I): the predicted call must reproduce the recorded output."""
    namespace = load_program(code, "program", seconds)
    expected = literal(output_text)
    try:
        compiled = compile(call, "<predicted call>", "eval")
    except SyntaxError as err:
        raise TestFailure("predicted input does not parse: %s" % err) from None
    result = _call(lambda: eval(compiled, namespace), (), seconds, "predicted call")  # noqa: S307
    if not _safe_equal(expected, result):
        raise TestFailure("f(predicted input) = %.200r, expected %.200r" % (result, expected))


def run_exec_output(prediction, output_text, seconds):
    """Deduction (CRUXEval-O, LCB-Execution): the predicted value must equal the recorded output.
    The program is not loaded, so a prediction cannot simply call it."""
    expected = literal(output_text)
    try:
        compiled = compile(prediction, "<predicted output>", "eval")
    except SyntaxError as err:
        raise TestFailure("predicted output does not parse: %s" % err) from None
    value = _call(lambda: eval(compiled, {}), (), seconds, "predicted output")  # noqa: S307
    if not _safe_equal(expected, value):
        raise TestFailure("predicted %.200r, expected %.200r" % (value, expected))


def run_main(job, exit_process=True, **params):
    """Run one test kind and report the verdict.

    As a standalone script (`exit_process=True`): exit 0 with the marker on success, 1 with the
    reason on stderr otherwise; `os._exit` skips interpreter shutdown, so threads or atexit hooks
    left by the candidate can neither hang the script nor change its verdict.
    Executed inside a sandbox child that reports on the job itself (`exit_process=False`): print
    the marker and return on success, raise AssertionError with the reason on failure."""
    real_stdout, real_stderr = sys.stdout, sys.stderr
    try:
        job(**params)
    except TestFailure as err:
        verdict, message = 1, "FAILED: %s" % err
    except TestTimeout as err:
        verdict, message = 1, "FAILED: timeout (%s)" % err
    except SystemExit:
        verdict, message = 1, "FAILED: exit() called outside a test"
    except BaseException as err:  # noqa: BLE001 - any other error is a failure, never a pass
        verdict, message = 1, "FAILED: %s: %s" % (type(err).__name__, err)
    else:
        verdict, message = 0, PASS_MARKER
    sys.stdout, sys.stderr = real_stdout, real_stderr
    if not exit_process:
        if verdict != 0:
            raise AssertionError(message)
        real_stdout.write(message + "\n")
        real_stdout.flush()
        return
    stream = real_stdout if verdict == 0 else real_stderr
    stream.write(message + "\n")
    stream.flush()
    os._exit(verdict)

"""What runs inside a sandboxed child: one step of one job, from a payload the worker built.

The child gets only what its step needs (its program, its input text or input *data*, limits) and
never a gold value: judging happens in the worker (judge.py). It returns plain data: a status, the
repr of a value, or the value itself in the codec's wire form. Kinds of step:

- `output`: proposal validity. The program runs in a namespace without `__name__` (so, as in the
  official executor, `__name__` reads 'builtins' and class reprs read `<class 'C'>`); `f(<input>)`
  is evaluated twice with the input text pasted into the call, compared with `!=`, and the first
  value's repr is the output. `official` semantics: an exception whose last traceback line lacks
  "error" (StopIteration, SystemExit, the non-determinism exception, ...) leaves the proposal
  valid with output '', and the output is stripped and cut to 200 + "..." + 200 characters.
  `strict`: any exception (non-determinism included) is an error, the first call's arguments stay
  alive during the second (id()-based outputs differ), outputs are kept whole (bounded).
- `eval`: evaluate an expression (a predicted output) or an argument list (a predicted input), in
  a namespace holding built-ins and at most the program's import lines, never the program.
- `call`: run the program, call its `f` on arguments received as data, send the output as data.
- `pairs`: induction; per hidden input a fresh namespace with the agent's program and an alarm.
- `script`: exec a whole script (eval harness); ok iff it ends without an exception.

This module imports only what a bare interpreter has loaded (it is part of the zygote's image).
"""

from __future__ import annotations

import _signal
import builtins
import io
import sys

from . import codec
from .wire import (
    STATUS_MEMORY,
    STATUS_OK,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    error_status,
)

OFFICIAL_KEEP = 200  # official storage: first 200 + "..." + last 200 characters beyond 400
_CAPTURE = "__azr_capture_args__"
_OUT = "__azr_output__"
_REPR_CODE = compile(f"repr({_OUT})", "<repr>", "eval", dont_inherit=True)
# Longest repr of an answer value sent back for information (never used in a verdict).
_INFO_CHARS = 400


class OutputLimitExceeded(BaseException):
    """Raised inside print() when captured stdout passes its bound (a BaseException, so the job's
    `except Exception` cannot swallow it)."""


class CallTimeout(BaseException):
    """Raised by the per-pair alarm of the induction step."""


class ValueTooLarge(Exception):
    """The repr of a returned value is longer than the job allows."""


class NondeterminismError(Exception):
    """Two calls of f with the same input returned values that are not `==`."""


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


class _Sink(io.TextIOBase):
    """stderr of a child: accepted and dropped."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return len(s)


def official_truncate(text: str, keep: int = OFFICIAL_KEEP) -> str:
    """The official 400-character storage form: head + '...' + tail when longer than 2*keep."""
    return text if len(text) <= 2 * keep else text[:keep] + "..." + text[-keep:]


def official_last_line(exc: BaseException) -> str:
    """The last line of the traceback the official executor formats for `exc` (its status text)."""
    kind = type(exc)
    if isinstance(exc, SyntaxError) or getattr(exc, "__notes__", None) is not None or _is_group(exc):
        import traceback  # rare: formats exactly as the official executor does

        text = "".join(traceback.format_exception(kind, exc, None))
    else:
        module, name = getattr(kind, "__module__", None), getattr(kind, "__qualname__", "?")
        if module not in ("__main__", "builtins"):
            name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - as traceback does
            message = "<exception str() failed>"
        text = f"{name}: {message}\n" if message else f"{name}\n"
    lines = text.split("\n")
    return lines[-2] if len(lines) >= 2 else ""


def _is_group(exc: BaseException) -> bool:
    group = getattr(builtins, "BaseExceptionGroup", None)
    return group is not None and isinstance(exc, group)


def official_is_error(exc: BaseException) -> bool:
    """Whether the official executor counts this exception as an error (its status contains 'error')."""
    try:
        line = official_truncate(official_last_line(exc).strip())
    except BaseException:  # noqa: BLE001 - a hostile __str__ that cannot even be formatted
        return True
    return "error" in line.lower()


def exception_status(exc: BaseException) -> str:
    """Map an exception raised by (or around) the job's code to a status string."""
    if isinstance(exc, MemoryError):
        return STATUS_MEMORY
    if isinstance(exc, (ValueTooLarge, OutputLimitExceeded, codec.ValueTooLarge)):
        return STATUS_OUTPUT_TOO_LARGE
    if isinstance(exc, CallTimeout):
        return STATUS_TIMEOUT
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable message>"
    try:
        name = type(exc).__name__
    except BaseException:  # noqa: BLE001
        name = "Exception"
    return error_status(
        name if isinstance(name, str) else "Exception", message if isinstance(message, str) else ""
    )


def _code(item, filename: str, mode: str):
    """A code object from the payload (compiled by the worker) or source it could not compile."""
    if isinstance(item, str):
        return compile(item, filename, mode, dont_inherit=True)
    return item


def _namespace(main: bool = False) -> dict:
    """A fresh globals dict; without `__name__`, as the official executor's (reads 'builtins')."""
    return {"__name__": "__main__", "__builtins__": builtins} if main else {"__builtins__": builtins}


def _capture(*args, **kwargs):
    return args, kwargs


def _info_repr(value) -> str | None:
    """Short repr of a checked value, for information only (never part of a verdict)."""
    try:
        text = repr(value)
        return (
            text if len(text) <= _INFO_CHARS else text[: _INFO_CHARS // 2] + "..." + text[-_INFO_CHARS // 2 :]
        )
    except BaseException:  # noqa: BLE001
        return None


def _limits(payload: dict) -> dict:
    return payload.get("limits", {})


def _bounded_text(text, limits: dict) -> str:
    """The official storage form, or the whole repr within `max_repr_chars` (strict)."""
    if limits.get("truncate", True):
        return official_truncate(
            text.strip() if limits.get("official", True) else text, limits.get("keep", OFFICIAL_KEEP)
        )
    if len(text) > limits.get("max_repr", 4096):
        raise ValueTooLarge(f"repr has {len(text)} characters, limit {limits.get('max_repr', 4096)}")
    return text


_BITS_PER_DIGIT = 3.3219280948873626


def _too_long_int(value, limits: dict) -> bool:
    """Refuse a huge int before computing its repr (quadratic) when it cannot be kept anyway."""
    if type(value) is not int or limits.get("truncate", True):
        return False
    return value.bit_length() > (limits.get("max_repr", 4096) + 1) * _BITS_PER_DIGIT + 1


def step_output(payload: dict) -> dict:
    limits = _limits(payload)
    official = limits.get("official", True)
    ns = _namespace()
    try:
        exec(_code(payload["program"], "<program>", "exec"), ns)  # noqa: S102 - the sandboxed child
        if official:
            call = _code(payload["call"], "<input>", "eval")
            first = eval(call, ns)  # noqa: S307 - input pasted into f(...), evaluated in the program's namespace
            if limits.get("determinism", True) and first != eval(call, ns):  # noqa: S307
                raise Exception("nondeterministic code: two calls returned different values")
        else:
            capture = _code(payload["call"], "<input>", "eval")
            ns[_CAPTURE] = _capture
            try:
                args, kwargs = eval(capture, ns)  # noqa: S307
                first = ns["f"](*args, **kwargs)
                if limits.get("determinism", True):
                    args2, kwargs2 = eval(capture, ns)  # noqa: S307
                    if first != ns["f"](*args2, **kwargs2):
                        raise NondeterminismError("two calls with the same input returned different values")
                del args, kwargs  # kept alive through the second call so id()-based outputs differ
            finally:
                ns.pop(_CAPTURE, None)
        if _too_long_int(first, limits):
            raise ValueTooLarge(f"int with about {int(first.bit_length() / _BITS_PER_DIGIT)} digits")
        ns[_OUT] = first
        try:
            text = eval(_REPR_CODE, ns)  # noqa: S307 - `repr` resolved as the program's namespace resolves it
        finally:
            ns.pop(_OUT, None)
        if type(text) is not str:
            text = _checked_text(text)
        if limits.get("require_picklable"):
            import pickle

            pickle.dumps(first)
        value = _bounded_text(text, limits)
    except (OutputLimitExceeded, MemoryError, CallTimeout):
        raise
    except BaseException as exc:  # noqa: BLE001 - the program's failure is the proposal's outcome
        if official and not official_is_error(exc):
            return {
                "status": STATUS_OK,
                "value": "",
                "detail": "official: ended in " + _safe_line(exc) + ", a valid proposal with output ''",
            }
        return {"status": exception_status(exc)}
    if not official and value == "":
        return {"status": error_status("EmptyOutput", "the output repr is empty")}
    return {"status": STATUS_OK, "value": value}


def _checked_text(text) -> str:
    """The official executor keeps any object as the output if str() and pickle accept it."""
    as_text = str(text)
    if type(text) is not str:
        import pickle

        pickle.dumps(text)
    return as_text


def _safe_line(exc: BaseException) -> str:
    try:
        return repr(official_truncate(official_last_line(exc).strip()))[:300]
    except BaseException:  # noqa: BLE001
        return "an unprintable exception"


def step_eval(payload: dict) -> dict:
    """Evaluate a predicted output (`mode` value) or a predicted argument list (`mode` args)."""
    limits = _limits(payload)
    ns = _namespace()
    if payload.get("imports") is not None:
        exec(_code(payload["imports"], "<imports>", "exec"), ns)  # noqa: S102 - the program's import lines only
    if payload.get("mode") == "args":
        ns[_CAPTURE] = _capture
        args, kwargs = eval(_code(payload["expr"], "<input>", "eval"), ns)  # noqa: S307
        return {
            "status": STATUS_OK,
            "enc": codec.encode_call(args, kwargs, limits.get("nodes", codec.MAX_NODES)),
        }
    value = eval(_code(payload["expr"], "<answer>", "eval"), ns)  # noqa: S307
    return {
        "status": STATUS_OK,
        "enc": codec.encode(value, limits.get("nodes", codec.MAX_NODES)),
        "value": _info_repr(value),
    }


def step_call(payload: dict) -> dict:
    """Run the program, then `f` on arguments received as data (nothing the answer wrote runs here)."""
    limits = _limits(payload)
    ns = _namespace()
    exec(_code(payload["program"], "<program>", "exec"), ns)  # noqa: S102
    fn = _global(ns, "f")
    args, kwargs = codec.decode_call(payload["args"])
    value = fn(*args, **kwargs)
    return {
        "status": STATUS_OK,
        "enc": codec.encode(value, limits.get("nodes", codec.MAX_NODES)),
        "value": _info_repr(value),
    }


def _global(ns: dict, name: str):
    """`name` as code running in `ns` would see it (globals, then that namespace's builtins)."""
    if name in ns:
        return ns[name]
    table = ns.get("__builtins__", builtins)
    table = table if isinstance(table, dict) else getattr(table, "__dict__", {})
    if name in table:
        return table[name]
    raise NameError(f"name {name!r} is not defined")


def _alarm(signum, frame):  # pragma: no cover - runs in the child
    raise CallTimeout("pair timed out")


def step_pairs(payload: dict) -> dict:
    """Each hidden input in a fresh namespace with the agent's program, under its own alarm."""
    limits = _limits(payload)
    timeout = float(limits.get("pair_timeout", 10.0))
    nodes = limits.get("nodes", codec.MAX_NODES)
    out = []
    for kind, item in payload["pairs"]:
        _signal.signal(_signal.SIGALRM, _alarm)
        _signal.setitimer(_signal.ITIMER_REAL, timeout)
        try:
            ns = _namespace()
            exec(_code(payload["program"], "<program>", "exec"), ns)  # noqa: S102
            if kind == "data":
                fn = _global(ns, "f")
                args, kwargs = codec.decode_call(item)
                value = fn(*args, **kwargs)
            elif kind == "code":
                value = eval(_code(item, "<input>", "eval"), ns)  # noqa: S307 - official: pasted into f(...)
            else:  # refused by the worker before running (e.g. a multi-line input, officially a syntax error)
                out.append({"status": item, "official_error": True})
                continue
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            out.append({"status": STATUS_OK, "enc": codec.encode(value, nodes), "value": _info_repr(value)})
        except OutputLimitExceeded:
            raise
        except BaseException as exc:  # noqa: BLE001 - one pair's failure is that pair's outcome
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            out.append({"status": exception_status(exc), "official_error": official_is_error(exc)})
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
    return {"status": STATUS_OK, "pairs": out}


def step_script(payload: dict) -> dict:
    try:
        exec(_code(payload["program"], "<program>", "exec"), _namespace(main=True))  # noqa: S102
    except SystemExit as exc:  # a script may end itself with exit(0) / sys.exit()
        if exc.code not in (None, 0):
            raise
    return {"status": STATUS_OK}


STEPS = {
    "output": step_output,
    "eval": step_eval,
    "call": step_call,
    "pairs": step_pairs,
    "script": step_script,
}


def run_step(payload: dict, stdout: BoundedWriter) -> dict:
    """Run one step; every failure becomes a status. Never raises."""
    try:
        out = STEPS[payload["kind"]](payload)
    except BaseException as exc:  # noqa: BLE001 - everything the job does ends here
        out = {"status": exception_status(exc)}
        if not isinstance(exc, (MemoryError, CallTimeout, OutputLimitExceeded)):
            out["official_error"] = official_is_error(exc)
    if stdout.overflowed:
        out = {"status": STATUS_OUTPUT_TOO_LARGE}
    out["stdout"] = stdout.getvalue()
    return out


def run_in_child(payload: dict, result_fd: int) -> None:
    """The body of a locked-down child: run the step, write the JSON result."""
    import posix

    stdout = BoundedWriter(int(_limits(payload).get("max_stdout", 1 << 20)))
    sys.stdout, sys.stderr, sys.stdin = stdout, _Sink(), io.StringIO(payload.get("stdin", ""))
    out = run_step(payload, stdout)
    out["token"] = payload.get("token", "")
    token = payload.get("token", "")
    try:
        data = codec.dumps(out).encode()
    except MemoryError:
        data = ('{"status":"memory","token":"%s"}' % token).encode()
    except BaseException as exc:  # noqa: BLE001 - e.g. a budget overrun while encoding
        data = codec.dumps({"status": exception_status(exc), "token": token}).encode()
    view = memoryview(data)
    while view:
        written = posix.write(result_fd, view)
        view = view[written:]

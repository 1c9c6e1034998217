"""The worker's side of a job: what each sandboxed step gets, and the verdict, decided here.

A job becomes one or two *steps*, each run by a fresh child that sees only that step's payload.
The judge never runs model-written code and never evaluates model-written text: stored golds,
predicted outputs and input argument lists are read as data (`values.parse_literal`); a child
sends back values in the codec's wire form; verdicts are `==` between values this process built.

- proposal (output probe): one `output` step; the child's status and repr are the result.
- deduction: the gold and the prediction are read as data; a prediction that is not a literal is
  evaluated by an `eval` step in a namespace without the program (an answer cannot call or read
  anything the program defines: `f(3)` is a NameError). Official string fallback: two strings
  whose contents are equal data (`'[1,2]'` vs `'[1, 2]'`).
- abduction: the input is read as data, or evaluated by an `eval` step with only the program's
  import lines; then a `call` step runs the program and calls its `f` on that data (so nothing the
  answer wrote runs next to the program: `(f := lambda *a: gold)` or frame reading cannot work).
- induction: one `pairs` step; hidden inputs go as data where they are literals; the hidden
  outputs never leave this process.
A gold that is not data (a truncated output, `dict_keys([1])`, a program's own class) can never
be matched (with `repr_fallback`, its text is compared with the candidate's repr instead).
"""

from __future__ import annotations

import functools
import marshal
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .child import official_truncate
from .jobs import (
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_OUTPUT,
    PROBE_PAIRS,
    PROBE_SCRIPT,
    REJECTED_PREFIX,
    STATUS_OK,
    Job,
    error_status,
)
from .static_checks import ENTRY_FUNCTION, call_source, check_job, parsed, program_source
from .values import (
    DEDUCTION_NAMES,
    NotData,
    names_of_program,
    parse_call_arguments,
    parse_literal,
    same_value,
)

# Node budget of a candidate value sent by a child (bounds the result message and the comparison).
VALUE_NODES = 200_000
_CAPTURE = "__azr_capture_args__"
UNREADABLE = error_status("SandboxError", "unreadable result from the child")
UNAUTHENTICATED = error_status("SandboxError", "unauthenticated result from the child")


@dataclass
class Step:
    """One child run: the payload it receives (marshal-able) and its wall-clock budget."""

    payload: dict
    budget_s: float


@dataclass
class Outcome:
    """What came back from one step: the child's message, or how the step failed."""

    message: dict = field(default_factory=dict)
    status: str = STATUS_OK  # the step's own status (the child's, or timeout/killed/...)
    detail: str = ""
    infra: bool = False  # the sandbox failed, not the job (verdict None)


JudgeGen = Generator[Step, Outcome, dict]


@functools.lru_cache(maxsize=512)
def compiled(source: str, filename: str, mode: str) -> Any:
    """Code object for a child (compiling executes nothing), or the source when it does not compile:
    the child then compiles it and meets the error where the official executor would."""
    tree, _ = parsed(source, mode)
    if tree is None:
        return source
    try:
        return compile(tree, filename, mode, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return source


def _limits(job: Job, budget: float, **extra: Any) -> dict:
    o = job.options
    limits = {
        "official": o.official,
        "truncate": o.truncates,
        "keep": o.truncate_keep_chars,
        "max_repr": o.max_repr_chars,
        "determinism": o.determinism,
        "require_picklable": o.require_picklable,
        "max_stdout": o.max_stdout_chars,
        "nodes": VALUE_NODES,
        "timeout": budget,
        "memory_mb": o.memory_mb,
    }
    limits.update(extra)
    return limits


def _result(status: str, verdict: bool | None = None, **fields: Any) -> dict:
    out = {"status": status, "verdict": verdict}
    out.update(fields)
    return out


def _check_result(job: Job, verdict: bool, status: str = STATUS_OK, **fields: Any) -> dict:
    return _result(status, verdict, **fields)


def rejection(job: Job) -> dict | None:
    """The result of a job its static checks refuse, or None if it may run."""
    try:
        reason = check_job(job)
    except Exception as exc:  # noqa: BLE001 - a checker bug must not take the worker down
        reason = f"static check failed: {type(exc).__name__}: {exc}"
    if not reason:
        return None
    return fill_verdicts(job, {"status": REJECTED_PREFIX + reason})


def fill_verdicts(job: Job, out: dict) -> dict:
    """A failure that is the job's fault is a wrong answer for answer checks."""
    if job.probe in (PROBE_EQUAL, PROBE_CALL_EQUAL, PROBE_PAIRS) and out.get("verdict") is None:
        out["verdict"] = False
        if job.probe == PROBE_PAIRS:
            n = job.units
            out.setdefault("pair_verdicts", [False] * n)
            out.setdefault("pair_statuses", [out["status"]] * n)
    return out


def failed(job: Job, outcome: Outcome) -> dict:
    """Result of a job whose (last) step failed: a wrong answer, or verdict None if the sandbox failed."""
    out = {"status": outcome.status, "detail": outcome.detail, "stdout": outcome.message.get("stdout", "")}
    if outcome.infra:
        out["verdict"] = None
        if job.probe == PROBE_PAIRS:
            out["pair_verdicts"] = [None] * job.units
            out["pair_statuses"] = [outcome.status] * job.units
        return out
    return fill_verdicts(job, out)


def judge(job: Job) -> JudgeGen:
    """Generator: yields Steps, receives their Outcomes, returns the result (wire dict)."""
    rejected = rejection(job)
    if rejected is not None:
        return rejected
    return (yield from _PROBES[job.probe](job))


# ---------------------------------------------------------------------------------------- probes
def _program(job: Job) -> str:
    return program_source(job.program, job.imports, job.options.semantics)


def _output(job: Job) -> JudgeGen:
    sem = job.options.semantics
    capture = call_source(job.args[0], _CAPTURE if sem == "strict" else ENTRY_FUNCTION, sem)
    payload = {
        "kind": "output",
        "program": compiled(_program(job), "<program>", "exec"),
        "call": compiled(capture, "<input>", "eval"),
        "limits": _limits(job, job.options.timeout_s),
    }
    outcome = yield Step(payload, job.options.timeout_s)
    if outcome.status != STATUS_OK and not outcome.message.get("status"):
        return failed(job, outcome)
    msg = outcome.message
    out = {
        "status": msg.get("status", outcome.status),
        "stdout": msg.get("stdout", ""),
        "detail": msg.get("detail", ""),
    }
    if out["status"] == STATUS_OK:
        if not isinstance(msg.get("value"), str):
            return failed(job, Outcome(msg, UNREADABLE, "output step returned no value"))
        out["value"] = msg["value"]
    return out


def _eval_step(job: Job, expr: str, mode: str, imports: str | None) -> Step:
    source = call_source(expr, _CAPTURE, job.options.semantics) if mode == "args" else expr.strip()
    payload = {
        "kind": "eval",
        "mode": mode,
        "expr": compiled(source, "<answer>" if mode == "value" else "<input>", "eval"),
        "imports": None if imports is None else compiled(imports, "<imports>", "exec"),
        "limits": _limits(job, job.options.timeout_s),
    }
    return Step(payload, job.options.timeout_s)


def _decoded(outcome: Outcome, key: str = "enc") -> tuple[Any, str | None]:
    """(value, None) from a step's wire tree, or (None, failure status)."""
    if outcome.status != STATUS_OK or outcome.message.get("status") != STATUS_OK:
        return None, outcome.message.get("status") or outcome.status
    try:
        return codec.decode(outcome.message.get(key)), None
    except codec.DecodeError:
        return None, UNREADABLE


def _deduction(job: Job) -> JudgeGen:
    gold_text, answer_text = job.args
    official = job.options.official
    try:
        gold = parse_literal(gold_text, DEDUCTION_NAMES)
    except NotData as exc:
        if job.options.repr_fallback:
            return _check_result(
                job, answer_text.strip() == gold_text.strip(), detail=f"gold is not data ({exc})"
            )
        return _check_result(job, False, detail=f"the gold output is not data: {exc}")
    stdout, shown = "", None
    try:
        candidate = parse_literal(answer_text, DEDUCTION_NAMES)
    except NotData:
        outcome = yield _eval_step(job, answer_text, "value", None)
        if outcome.infra:
            return failed(job, outcome)
        candidate, bad = _decoded(outcome)
        stdout = outcome.message.get("stdout", "")
        if bad is not None:
            return _check_result(job, False, bad, stdout=stdout, detail=outcome.detail)
        shown = outcome.message.get("value")
    verdict = same_value(gold, candidate)
    if not verdict and type(gold) is str and type(candidate) is str:
        # Official fallback: both strings, whose contents evaluate equal ('[1,2]' vs '[1, 2]'); read as data.
        if not (official and ("\n" in gold_text or "\n" in answer_text)):
            names = names_of_program(_program(job)) if job.program else DEDUCTION_NAMES
            try:
                verdict = same_value(parse_literal(gold, names), parse_literal(candidate, names))
            except NotData:
                verdict = False
    return _check_result(job, verdict, value=shown if shown is not None else _show(candidate), stdout=stdout)


def _show(value: Any) -> str | None:
    try:
        return official_truncate(repr(value))
    except Exception:  # noqa: BLE001 - information only
        return None


def _official_line_gate(job: Job, gold_text: str, input_text: str) -> str | None:
    """Official check templates run `<gold> == f(<input>)` as one line apart from the rest: text
    that spans lines cannot be checked there (every such case officially fails)."""
    if job.options.official and ("\n" in gold_text or "\n" in input_text):
        return "official check pastes the gold and the input on one line; multi-line text fails there"
    return None


def _abduction(job: Job) -> JudgeGen:
    gold_text, input_text = job.args
    gate = _official_line_gate(job, gold_text, input_text)
    if gate:
        return _check_result(job, False, REJECTED_PREFIX + gate)
    source = _program(job)
    names = names_of_program(source)
    try:
        gold, gold_error = parse_literal(gold_text, names), None
    except NotData as exc:
        gold, gold_error = None, f"the gold output is not data: {exc}"
        if not job.options.repr_fallback:
            return _check_result(job, False, detail=gold_error)
    try:
        args = codec.encode_call(*parse_call_arguments(input_text, names, semantics=job.options.semantics))
        stdout = ""
    except NotData:
        imports = "\n".join(job.imports) if job.imports else None
        outcome = yield _eval_step(job, input_text, "args", imports)
        if outcome.infra:
            return failed(job, outcome)
        stdout = outcome.message.get("stdout", "")
        if outcome.status != STATUS_OK or outcome.message.get("status") != STATUS_OK:
            return _check_result(job, False, outcome.message.get("status") or outcome.status, stdout=stdout)
        args = outcome.message.get("enc")
        try:
            codec.decode_call(args)
        except codec.DecodeError as exc:
            return _check_result(job, False, detail=f"the input is not data: {exc}", stdout=stdout)
    payload = {
        "kind": "call",
        "program": compiled(source, "<program>", "exec"),
        "args": args,
        "limits": _limits(job, job.options.timeout_s),
    }
    outcome = yield Step(payload, job.options.timeout_s)
    if outcome.infra:
        return failed(job, outcome)
    candidate, bad = _decoded(outcome)
    stdout += outcome.message.get("stdout", "")
    shown = outcome.message.get("value")
    if bad is not None:
        return _check_result(job, False, bad, stdout=stdout, detail=outcome.detail)
    if gold_error is not None:  # repr_fallback
        return _check_result(job, shown == gold_text.strip(), value=shown, stdout=stdout, detail=gold_error)
    return _check_result(job, same_value(gold, candidate), value=shown, stdout=stdout)


def _induction(job: Job) -> JudgeGen:
    opts = job.options
    source = _program(job)
    names = names_of_program(source)
    program = compiled(source, "<program>", "exec")
    n = job.units
    golds: list[Any] = [None] * n
    refused: dict[int, str] = {}
    pairs = []
    for k in range(n):
        input_text, gold_text = job.args[2 * k], job.args[2 * k + 1]
        gate = _official_line_gate(job, gold_text, input_text)
        try:
            if gate:
                raise NotData(gate)
            golds[k] = parse_literal(gold_text, names)
        except NotData as exc:
            if not opts.repr_fallback or gate:
                refused[k] = f"the gold output is not data: {exc}" if not gate else gate
                pairs.append(("skip", REJECTED_PREFIX + refused[k]))
                continue
            golds[k] = _TextGold(gold_text.strip())
        try:
            pairs.append(
                (
                    "data",
                    codec.encode_call(*parse_call_arguments(input_text, names, semantics=opts.semantics)),
                )
            )
        except NotData:
            pairs.append(
                ("code", compiled(call_source(input_text, ENTRY_FUNCTION, opts.semantics), "<input>", "eval"))
            )
    if len(refused) == n:
        return _pairs_result(job, [False] * n, [REJECTED_PREFIX + refused[k] for k in range(n)], "")
    budget = opts.timeout_s * n + (_ALARM_GRACE_S if n > 1 else 0.0)
    payload = {
        "kind": "pairs",
        "program": program,
        "pairs": pairs,
        "limits": _limits(job, budget, pair_timeout=opts.timeout_s),
    }
    outcome = yield Step(payload, budget)
    if outcome.infra:
        return failed(job, outcome)
    if outcome.status != STATUS_OK or outcome.message.get("status") != STATUS_OK:
        return failed(
            job, Outcome(outcome.message, outcome.message.get("status") or outcome.status, outcome.detail)
        )
    reports = outcome.message.get("pairs")
    if not isinstance(reports, list) or len(reports) != n or not all(isinstance(r, dict) for r in reports):
        return failed(job, Outcome(outcome.message, UNREADABLE, "malformed per-pair report"))
    verdicts: list[bool | None] = []
    statuses: list[str] = []
    for k, report in enumerate(reports):
        status = report.get("status")
        if not isinstance(status, str):
            verdicts.append(False)
            statuses.append(UNREADABLE)
            continue
        statuses.append(status)
        if k in refused or status != STATUS_OK:
            # Official: a pair whose run ended in an exception that is not an "error" is left out.
            excluded = opts.official and k not in refused and report.get("official_error") is False
            verdicts.append(None if excluded else False)
            continue
        if isinstance(golds[k], _TextGold):
            verdicts.append(report.get("value") == golds[k].text)
            continue
        try:
            verdicts.append(same_value(golds[k], codec.decode(report.get("enc"))))
        except codec.DecodeError:
            verdicts.append(False)
            statuses[k] = UNREADABLE
    return _pairs_result(job, verdicts, statuses, outcome.message.get("stdout", ""))


_ALARM_GRACE_S = 0.5


class _TextGold:
    """A gold that is not data, compared by text with the candidate's repr (repr_fallback)."""

    def __init__(self, text: str):
        self.text = text


def _pairs_result(job: Job, verdicts: list, statuses: list, stdout: str) -> dict:
    counted = [v for v in verdicts if v is not None]
    verdict = bool(counted) and all(counted)
    failing = [s for s in statuses if s != STATUS_OK]
    return _result(
        failing[0] if failing else STATUS_OK,
        verdict,
        pair_verdicts=verdicts,
        pair_statuses=statuses,
        stdout=stdout,
    )


def _script(job: Job) -> JudgeGen:
    payload = {
        "kind": "script",
        "program": compiled(job.program, "<program>", "exec"),
        "limits": _limits(job, job.options.timeout_s),
        "stdin": job.stdin,
    }
    outcome = yield Step(payload, job.options.timeout_s)
    if outcome.status != STATUS_OK and not outcome.message.get("status"):
        return failed(job, outcome)
    msg = outcome.message
    return {
        "status": msg.get("status", outcome.status),
        "stdout": msg.get("stdout", ""),
        "detail": msg.get("detail", ""),
    }


_PROBES = {
    PROBE_OUTPUT: _output,
    PROBE_EQUAL: _deduction,
    PROBE_CALL_EQUAL: _abduction,
    PROBE_PAIRS: _induction,
    PROBE_SCRIPT: _script,
}


# ------------------------------------------------------------------------------- child messages
def read_message(kind: str, data: bytes, token: str | None = None) -> Outcome:
    """Turn the bytes a child wrote into an Outcome. Any byte sequence yields an Outcome: a message
    that is not exactly the shape this step sends, or lacks the step's token (a frame written blind
    by job code), becomes an `unreadable`/`unauthenticated` status (the job's fault)."""
    import json

    if not data:
        return Outcome({}, error_status("SandboxError", "no result from the child"))
    try:
        message = json.loads(data)
    except Exception as exc:  # noqa: BLE001 - ValueError, RecursionError, MemoryError, UnicodeError...
        return Outcome({}, UNREADABLE, f"{type(exc).__name__}: {str(exc)[:200]}")
    if token is not None and (not isinstance(message, dict) or message.pop("token", None) != token):
        return Outcome({}, UNAUTHENTICATED, "the result does not carry the step's token")
    problem = _shape_problem(kind, message)
    if problem:
        return Outcome({}, UNREADABLE, problem)
    return Outcome(message, STATUS_OK)


def _shape_problem(kind: str, message: Any) -> str | None:
    if not isinstance(message, dict):
        return "result is not a JSON object"
    if kind == "layers":  # the worker's own layer probe (no job code ran in that child)
        return None
    if not isinstance(message.get("status"), str) or not message["status"]:
        return "result without a status"
    for key in ("stdout", "detail", "value"):
        if key in message and message[key] is not None and not isinstance(message[key], str):
            return f"{key} must be a string"
    if "official_error" in message and not isinstance(message["official_error"], bool):
        return "official_error must be a bool"
    if kind == "pairs" and message["status"] == STATUS_OK and not isinstance(message.get("pairs"), list):
        return "pairs result without a list of pairs"
    return None


def payload_bytes(payload: dict) -> bytes:
    """The payload as a child reads it (marshal: written by this process, trusted by the child)."""
    return marshal.dumps(payload)

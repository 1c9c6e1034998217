"""AZR's execution probes as library functions (azr_method.md §2, §3, §10).

Two layers: `*_job` builders return `Job`s for batch submission (`farm.submit`/`farm.run`), and
farm-taking helpers (`run_output`, `check_deduction`, ...) run one probe and return its `Result`.
Verdicts are decided by the workers on values read as data (judge.py): the trainer never
evaluates model text, and no answer or stored gold is executed where it is judged.
`submit_outputs` adds the optional cross-seed determinism check, which re-runs a task on the
alternate-hash-seed workers and compares the two values there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from .config import JobOptions
from .jobs import (
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_OUTPUT,
    PROBE_PAIRS,
    PROBE_SCRIPT,
    STATUS_OK,
    Job,
    Result,
    error_status,
)
from .static_checks import program_source
from .values import NotData, names_of_program, parse_literal, same_value

DEFAULT_OPTIONS = JobOptions()
# The induction solver may write helpers (the official check does not apply the single-def rule to it).
INDUCTION_OPTIONS = dataclasses.replace(DEFAULT_OPTIONS, single_function=False)
# Eval-harness programs (benchmark solution + tests) legitimately import anything and define many functions.
PROGRAM_OPTIONS = dataclasses.replace(DEFAULT_OPTIONS, static_checks=False, single_function=False)


class Submitter(Protocol):
    def submit(self, jobs: Sequence[Job]) -> list[Future]: ...


def truncate_repr(text: str, keep: int = DEFAULT_OPTIONS.truncate_keep_chars) -> str:
    """The official 400-character storage form: head + '...' + tail when longer than 2*keep."""
    return text if len(text) <= 2 * keep else text[:keep] + "..." + text[-keep:]


def output_job(
    program: str, input_expr: str, imports: Sequence[str] = (), options: JobOptions = DEFAULT_OPTIONS
) -> Job:
    """repr(f(<input_expr>)) with the two-call determinism check (options.determinism)."""
    return Job(PROBE_OUTPUT, program, tuple(imports), (input_expr,), options)


def deduction_job(
    gold_output: str,
    predicted_output: str,
    program: str = "",
    imports: Sequence[str] = (),
    options: JobOptions = DEFAULT_OPTIONS,
) -> Job:
    """gold == predicted value. The prediction is evaluated without the program (an answer cannot call
    or read anything the program defines); `program`/`imports` only resolve the official string
    fallback's names (e.g. `Counter` imported by the program)."""
    return Job(PROBE_EQUAL, program, tuple(imports), (gold_output, predicted_output), options)


def abduction_job(
    program: str,
    gold_output: str,
    predicted_input: str,
    imports: Sequence[str] = (),
    options: JobOptions = DEFAULT_OPTIONS,
) -> Job:
    """gold == f(<predicted_input>): any input reproducing the output counts. The input is read as
    data (or evaluated apart from the program, with its import lines only) and passed to f as data."""
    return Job(PROBE_CALL_EQUAL, program, tuple(imports), (gold_output, predicted_input), options)


def induction_job(
    agent_program: str,
    hidden_pairs: Sequence[tuple[str, str]],
    imports: Sequence[str] = (),
    options: JobOptions = INDUCTION_OPTIONS,
) -> Job:
    """output_k == f_agent(<input_k>) for every hidden pair, each in a fresh namespace with its own
    timeout; the original program's import lines are prepended to the agent's code. The hidden
    outputs never reach the agent's process."""
    if not hidden_pairs:
        raise ValueError("induction check needs at least one hidden (input, output) pair")
    flat: list[str] = []
    for pair in hidden_pairs:
        if len(pair) != 2:
            raise ValueError(f"hidden pairs must be (input, output), got {pair!r}")
        flat.extend(pair)
    return Job(PROBE_PAIRS, agent_program, tuple(imports), tuple(flat), options)


def program_job(code: str, *, stdin: str = "", options: JobOptions = PROGRAM_OPTIONS) -> Job:
    """Run a whole script (e.g. solution + test asserts); status ok iff it finishes without exception."""
    return Job(PROBE_SCRIPT, code, (), (), options, stdin=stdin)


def _cross_seed_job(first: Result, job: Job) -> Job:
    """Second half of the cross-seed check: the same proposal on the alternate-hash-seed workers."""
    return dataclasses.replace(job, alt_seed=True)


def _same_output(job: Job, first: str | None, second: str | None) -> bool:
    """Stored outputs that are equal text, or equal values read as data (set/dict order may differ)."""
    if first == second:
        return True
    if first is None or second is None:
        return False
    names = names_of_program(program_source(job.program, job.imports, job.options.semantics))
    try:
        return same_value(parse_literal(first, names), parse_literal(second, names))
    except NotData:
        return False


def _combine(first: Result, second: Result, job: Job) -> Result:
    if second.ok and _same_output(job, first.value, second.value):
        return first
    detail = f"under another hash seed: status {second.status!r}, value {second.value!r}"
    return dataclasses.replace(
        first,
        status=error_status("NondeterminismError", "output differs under another hash seed"),
        value=None,
        wall_s=first.wall_s + second.wall_s,
        detail=detail[:1000],
    )


def submit_outputs(farm: Submitter, jobs: Sequence[Job], *, cross_seed: bool = False) -> list[Future]:
    """Submit output jobs; with cross_seed, each ok result is confirmed under the alternate hash seed."""
    for job in jobs:
        if job.probe != PROBE_OUTPUT:
            raise ValueError(f"submit_outputs takes output jobs, got probe {job.probe!r}")
    firsts = farm.submit(jobs)
    if not cross_seed:
        return firsts
    outers: list[Future] = []
    for job, fut in zip(jobs, firsts, strict=True):
        outer: Future = Future()

        def stage_two(done: Future, job: Job = job, outer: Future = outer) -> None:
            try:
                first = done.result()
                if first.status != STATUS_OK:
                    outer.set_result(first)
                    return
                (second,) = farm.submit([_cross_seed_job(first, job)])
                second.add_done_callback(lambda s: _finish(outer, first, s, job))
            except BaseException as exc:  # noqa: BLE001 - surface farm errors to the waiter
                if not outer.done():
                    outer.set_exception(exc)

        fut.add_done_callback(stage_two)
        outers.append(outer)
    return outers


def _finish(outer: Future, first: Result, second: Future, job: Job) -> None:
    try:
        outer.set_result(_combine(first, second.result(), job))
    except BaseException as exc:  # noqa: BLE001
        if not outer.done():
            outer.set_exception(exc)


def run_output(
    farm: Submitter,
    program: str,
    input_expr: str,
    imports: Sequence[str] = (),
    *,
    cross_seed: bool = False,
    options: JobOptions = DEFAULT_OPTIONS,
) -> Result:
    """Validate and execute one (program, input): `value` is the output repr when status is ok."""
    (future,) = submit_outputs(
        farm, [output_job(program, input_expr, imports, options)], cross_seed=cross_seed
    )
    return future.result()


def check_deduction(
    farm: Submitter,
    gold_output: str,
    predicted_output: str,
    program: str = "",
    imports: Sequence[str] = (),
    options: JobOptions = DEFAULT_OPTIONS,
) -> Result:
    """Deduction answer check; `verdict` is the reward-relevant boolean."""
    (future,) = farm.submit([deduction_job(gold_output, predicted_output, program, imports, options)])
    return future.result()


def check_abduction(
    farm: Submitter,
    program: str,
    imports: Sequence[str],
    gold_output: str,
    predicted_input: str,
    options: JobOptions = DEFAULT_OPTIONS,
) -> Result:
    """Abduction answer check; `verdict` is the reward-relevant boolean."""
    (future,) = farm.submit([abduction_job(program, gold_output, predicted_input, imports, options)])
    return future.result()


def check_induction(
    farm: Submitter,
    agent_program: str,
    imports: Sequence[str],
    hidden_pairs: Sequence[tuple[str, str]],
    options: JobOptions = INDUCTION_OPTIONS,
) -> Result:
    """Induction answer check: `verdict` True only if every hidden pair passes; see `pair_verdicts`."""
    (future,) = farm.submit([induction_job(agent_program, hidden_pairs, imports, options)])
    return future.result()


def run_program(
    farm: Submitter,
    code: str,
    *,
    stdin: str = "",
    timeout_s: float | None = None,
    options: JobOptions = PROGRAM_OPTIONS,
) -> Result:
    """Eval-harness entry: run a whole script with static checks off; ok iff no exception."""
    if timeout_s is not None:
        options = dataclasses.replace(options, timeout_s=timeout_s)
    (future,) = farm.submit([program_job(code, stdin=stdin, options=options)])
    return future.result()

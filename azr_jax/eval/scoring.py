"""Verdicts for (problem, answer) pairs: code answers through the sandbox farm, math by the normaliser.

Code answers are scored in stages (`job_runtime.score_steps`): every stage is one farm job running
the runtime program with its parameters on stdin, and the comparison with the expected values
happens here or in a stage where no model code ran. Stages of many answers run as one farm batch
per round; stages that only depend on the problem (EvalPlus's reference outputs, HumanEval's
recorded calls) are cached per problem for the life of the `Scorer`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

from azr_jax.eval import job_runtime
from azr_jax.eval.extract import extract_code_answer, extract_math_answer
from azr_jax.eval.math_normalize import answers_equal
from azr_jax.eval.problems import KIND_MATH, AnyProblem
from azr_jax.eval.test_programs import (
    DEFAULT_BUDGET,
    SCORING_MODES,
    TimeBudget,
    answer_program,
    problem_spec,
    stage_program,
)
from azr_jax.sandbox import JobOptions, Result, program_job

# A stage's stdout carries its frame (candidate outputs as data): room for big EvalPlus outputs.
MAX_STAGE_STDOUT_CHARS = 32 << 20


@dataclasses.dataclass(frozen=True)
class Verdict:
    passed: bool
    status: str
    extracted: str


def _stage_options(job: dict[str, Any]) -> JobOptions:
    return JobOptions(
        timeout_s=job["timeout_s"],
        memory_mb=job["memory_mb"],
        static_checks=False,
        single_function=False,
        determinism=False,
        require_picklable=False,
        max_stdout_chars=MAX_STAGE_STDOUT_CHARS,
    )


def _run_jobs(executor: Any, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run stage jobs on a farm (`submit` -> futures) or a TaskExecutor (`submit` -> handle)."""
    if not jobs:
        return []
    farm_jobs = [
        program_job(
            stage_program(), stdin=json.dumps(job["params"], allow_nan=False), options=_stage_options(job)
        )
        for job in jobs
    ]
    handle = executor.submit(farm_jobs)
    results: list[Result] = handle.results() if hasattr(handle, "results") else [f.result() for f in handle]
    return [
        {"status": r.status, "frame": job_runtime.loads_frame(r.stdout) if r.ok else None} for r in results
    ]


class Scorer:
    """Scores answers with one scoring mode ("strict" or "official") and one time budget."""

    def __init__(self, executor: Any, *, scoring: str = "strict", budget: TimeBudget = DEFAULT_BUDGET):
        if scoring not in SCORING_MODES:
            raise ValueError(f"scoring must be one of {SCORING_MODES}, got {scoring!r}")
        self.executor, self.scoring, self.budget = executor, scoring, budget
        self._specs: dict[tuple[str, str], dict[str, Any]] = {}
        self._stage_cache: dict[str, dict[str, Any]] = {}
        self.jobs_run = 0

    def spec(self, problem: AnyProblem) -> dict[str, Any]:
        key = (problem.benchmark, problem.id)
        if key not in self._specs:
            self._specs[key] = problem_spec(problem, self.budget)
        return self._specs[key]

    def score_responses(
        self, items: Sequence[tuple[AnyProblem, str]], on_verdict: Callable[[int], None] | None = None
    ) -> list[Verdict]:
        """Extract each response's answer (code block, boxed math) and score it."""
        answers = [
            (p, extract_math_answer(r) if p.kind == KIND_MATH else extract_code_answer(r)) for p, r in items
        ]
        return self.score(answers, on_verdict)

    def score(
        self, items: Sequence[tuple[AnyProblem, str]], on_verdict: Callable[[int], None] | None = None
    ) -> list[Verdict]:
        """Verdicts for extracted answers, in order; `on_verdict(i)` as each one is decided."""
        verdicts: list[Verdict | None] = [None] * len(items)
        running: dict[int, tuple[Any, list[dict[str, Any]]]] = {}

        def finish(index: int, verdict: dict[str, Any]) -> None:
            verdicts[index] = Verdict(verdict["passed"], verdict["status"], items[index][1])
            if on_verdict is not None:
                on_verdict(index)

        def advance(index: int, steps: Any, outcomes: list[dict[str, Any]] | None) -> None:
            try:
                jobs = next(steps) if outcomes is None else steps.send(outcomes)
            except StopIteration as stop:
                finish(index, stop.value)
                return
            running[index] = (steps, jobs)

        for index, (problem, answer) in enumerate(items):
            if problem.kind == KIND_MATH:
                passed = answers_equal(answer, problem.answer, self.scoring)
                finish(index, {"passed": passed, "status": "passed" if passed else "failed: not equal"})
                continue
            steps = job_runtime.score_steps(self.spec(problem), answer_program(problem, answer), self.scoring)
            advance(index, steps, None)
        while running:
            batch: list[dict[str, Any]] = []
            slot_of_key: dict[str, int] = {}
            plan: dict[int, list[tuple[str, Any]]] = {}
            for index, (_, jobs) in running.items():
                wanted = []
                for job in jobs:
                    key = job.get("key")
                    if key is not None and key in self._stage_cache:
                        wanted.append(("cached", key))
                    elif key is not None and key in slot_of_key:
                        wanted.append(("slot", slot_of_key[key]))
                    else:
                        if key is not None:
                            slot_of_key[key] = len(batch)
                        wanted.append(("slot", len(batch)))
                        batch.append(job)
                plan[index] = wanted
            outcomes = _run_jobs(self.executor, batch)
            self.jobs_run += len(batch)
            for key, slot in slot_of_key.items():
                if outcomes[slot]["status"] == "ok":
                    self._stage_cache[key] = outcomes[slot]
            current = dict(running)
            running.clear()
            for index, (steps, _) in current.items():
                got = [
                    self._stage_cache[ref] if how == "cached" else outcomes[ref] for how, ref in plan[index]
                ]
                advance(index, steps, got)
        return [v for v in verdicts if v is not None]

"""Greedy pass@1 on benchmark problems: generate with the policy, score in the sandbox farm.

The protocol of azr_method.md §8: the R1 template (the same rendering as training), greedy
decoding, the answer read from the last `<answer>`; code answers (HumanEval+, MBPP+,
LiveCodeBench, CRUXEval, LCB-execution) are executed by the farm against the benchmark's tests,
math answers compared by the normaliser. Every problem's response and verdict is kept.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Iterable, Sequence

import jax

from azr_jax.eval.benchmarks import CODE_BENCHMARKS, MATH_BENCHMARKS, paper_averages
from azr_jax.eval.extract import extract_code_answer, extract_math_answer
from azr_jax.eval.math_normalize import answers_equal
from azr_jax.eval.problems import KIND_MATH
from azr_jax.eval.test_programs import build_test_program, script_timeout_s
from azr_jax.sandbox import Job, JobOptions, PROBE_SCRIPT

log = logging.getLogger(__name__)

# Benchmark scripts import what they need (signal, json, hashlib, ...) and define helpers; the
# sandbox still isolates them, but the AZR static checks and determinism probe do not apply.
SCRIPT_OPTIONS = JobOptions(static_checks=False, single_function=False, determinism=False,
                            require_picklable=False, memory_mb=2048)


@dataclasses.dataclass
class ProblemResult:
    benchmark: str
    id: str
    passed: bool
    extracted: str
    response: str
    status: str  # sandbox status for code, "math" for math
    finish_reason: str


def _answer_text(response: str) -> str:
    # The prompt ends with "<think>": put it back so tag parsing sees the whole R1 reply.
    return "<think>" + response


def evaluate(problems: Sequence[Any], policy: Any, params: Any, executor: Any, *,
             max_new_tokens: int, key: jax.Array | None = None, batch_size: int = 64
             ) -> list[ProblemResult]:
    """Generate one greedy answer per problem (in batches) and score it.

    `policy` renders prompts and generates (`prompt_ids`, `generate`); its sampling params
    should be greedy. `executor` is a `TaskExecutor` (each host of a multi-host run executes
    its share); code checks are submitted as soon as a batch is generated, so execution
    overlaps the next batch's generation.
    """
    key = jax.random.PRNGKey(0) if key is None else key
    pending: list[tuple[list, Any]] = []
    results: list[ProblemResult] = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start: start + batch_size]
        ids = [policy.prompt_ids(p.prompt) for p in chunk]
        rollouts = policy.generate(params, ids, max_new_tokens, jax.random.fold_in(key, start))
        jobs, owners = [], []
        for p, r in zip(chunk, rollouts):
            text = _answer_text(r.text)
            if p.kind == KIND_MATH:
                pred = extract_math_answer(text)
                results.append(ProblemResult(p.benchmark, p.id, answers_equal(pred, p.answer),
                                             pred, r.text, "math", r.finish_reason))
                continue
            code = extract_code_answer(text)
            script = build_test_program(p, code, in_process=True)
            opts = dataclasses.replace(SCRIPT_OPTIONS, timeout_s=script_timeout_s(p))
            jobs.append(Job(PROBE_SCRIPT, script, (), (), opts))
            owners.append((p, code, r.text, r.finish_reason))
        if jobs:
            pending.append((owners, executor.submit(jobs)))
        log.info("eval: generated %d/%d", min(start + batch_size, len(problems)), len(problems))
    for owners, handle in pending:
        for (p, code, text, fin), res in zip(owners, handle.results()):
            results.append(ProblemResult(p.benchmark, p.id, res.ok, code, text, res.status, fin))
    order = {(p.benchmark, p.id): i for i, p in enumerate(problems)}
    results.sort(key=lambda r: order[(r.benchmark, r.id)])
    return results


def scores(results: Iterable[ProblemResult]) -> dict[str, float]:
    """Per-benchmark pass@1 (in %) plus the paper's code / math / overall averages."""
    per: dict[str, list[bool]] = {}
    for r in results:
        per.setdefault(r.benchmark, []).append(r.passed)
    out = {b: 100.0 * sum(v) / len(v) for b, v in per.items()}
    avgs = paper_averages(out)
    out.update({k: v for k, v in avgs.items() if v == v})  # drop NaN averages (missing groups)
    return out


def write_results(out_dir: str, results: Sequence[ProblemResult], summary: dict[str, float],
                  step: int | None = None) -> str:
    """Per-problem JSONL and a summary JSON under `out_dir`; returns the JSONL path."""
    os.makedirs(out_dir, exist_ok=True)
    tag = f"step{step}" if step is not None else time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(out_dir, f"eval_{tag}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(dataclasses.asdict(r)) + "\n")
    with open(os.path.join(out_dir, f"eval_{tag}_summary.json"), "w", encoding="utf-8") as f:
        json.dump({"step": step, **summary}, f, indent=2, sort_keys=True)
    return path


__all__ = ["evaluate", "scores", "write_results", "ProblemResult", "CODE_BENCHMARKS",
           "MATH_BENCHMARKS"]

"""pass@k on benchmark problems: generate with the policy, score through the sandbox farm.

The protocol of azr_method.md §8: the R1 template (the same rendering as training), greedy
decoding for pass@1 (or n samples at a temperature for pass@k), the answer read from the last
`<answer>`; code answers are scored in stages on the farm (`scoring.Scorer`), math answers by the
normaliser. Every sample's response and verdict is kept. On one host, scoring of a batch overlaps
the generation of the next.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import jax

from azr_jax.eval.benchmarks import CODE_BENCHMARKS, MATH_BENCHMARKS, paper_averages
from azr_jax.eval.scoring import Scorer
from azr_jax.eval.test_programs import DEFAULT_BUDGET, TimeBudget

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ProblemResult:
    benchmark: str
    id: str
    passed: bool
    extracted: str
    response: str
    status: str  # "passed", "failed: <why>", "error: <harness problem>"
    finish_reason: str
    sample: int = 0


def _answer_text(response: str) -> str:
    # The prompt ends with "<think>": put it back so tag parsing sees the whole R1 reply.
    return "<think>" + response


class _Progress:
    """A tqdm bar on stderr (generation and scoring), or nothing."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=desc, unit="answer", file=sys.stderr, dynamic_ncols=True, smoothing=0.1
            )

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate(
    problems: Sequence[Any],
    policy: Any,
    params: Any,
    executor: Any,
    *,
    max_new_tokens: int,
    key: jax.Array | None = None,
    batch_size: int = 64,
    samples: int = 1,
    scoring: str = "strict",
    budget: TimeBudget = DEFAULT_BUDGET,
    progress: bool = False,
    scorer: Scorer | None = None,
    timing: dict[str, float] | None = None,
) -> list[ProblemResult]:
    """Generate `samples` answers per problem (in batches) and score each.

    `policy` renders prompts and generates (`prompt_ids`, `generate`); its sampling params are
    the caller's (greedy for pass@1). `executor` is a farm or a `TaskExecutor` (each host of a
    multi-host run executes its share; scoring then runs in step on every host). `timing`, when
    given, receives the seconds spent generating and the seconds then spent waiting for scores."""
    key = jax.random.PRNGKey(0) if key is None else key
    scorer = scorer or Scorer(executor, scoring=scoring, budget=budget)
    rows = [(p, s) for p in problems for s in range(samples)]
    generated = _Progress(progress, len(rows), "generate")
    scored = _Progress(progress, len(rows), "score   ")
    single_host = getattr(executor, "process_count", 1) == 1
    pool = concurrent.futures.ThreadPoolExecutor(1) if single_host else None
    pending: list[Any] = []
    results: list[ProblemResult] = []

    def score(chunk: list[tuple[Any, int]], rollouts: list[Any]) -> list[ProblemResult]:
        verdicts = scorer.score_responses(
            [(p, _answer_text(r.text)) for (p, _), r in zip(chunk, rollouts)],
            on_verdict=lambda _: scored.update(),
        )
        return [
            ProblemResult(p.benchmark, p.id, v.passed, v.extracted, r.text, v.status, r.finish_reason, s)
            for (p, s), r, v in zip(chunk, rollouts, verdicts)
        ]

    clock = time.perf_counter()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            ids = [policy.prompt_ids(p.prompt) for p, _ in chunk]
            rollouts = policy.generate(params, ids, max_new_tokens, jax.random.fold_in(key, start))
            generated.update(len(chunk))
            if pool is not None:
                pending.append(pool.submit(score, chunk, rollouts))
            else:
                results += score(chunk, rollouts)
        generated_at = time.perf_counter()
        for future in pending:
            results += future.result()
        if timing is not None:
            timing["generate_s"] = generated_at - clock
            timing["score_s"] = time.perf_counter() - generated_at
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        generated.close()
        scored.close()
    order = {(p.benchmark, p.id, s): i for i, (p, s) in enumerate(rows)}
    results.sort(key=lambda r: order[(r.benchmark, r.id, r.sample)])
    return results


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), for k <= n."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n = {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def summarize(results: Iterable[ProblemResult]) -> dict[str, dict[str, Any]]:
    """Per benchmark: problem count, samples per problem, correct answers, pass@k in % for
    k = 1..n (the unbiased estimator, averaged over problems)."""
    per: dict[str, dict[str, list[bool]]] = {}
    for r in results:
        per.setdefault(r.benchmark, {}).setdefault(r.id, []).append(r.passed)
    out = {}
    for bench, problems in per.items():
        n = min(len(v) for v in problems.values())
        entry: dict[str, Any] = {
            "problems": len(problems),
            "samples": n,
            "correct": sum(sum(v) for v in problems.values()),
        }
        for k in range(1, n + 1):
            entry[f"pass@{k}"] = (
                100.0 * sum(pass_at_k(len(v), sum(v), k) for v in problems.values()) / len(problems)
            )
        out[bench] = entry
    return out


def scores(results: Iterable[ProblemResult]) -> dict[str, float]:
    """Per-benchmark pass@1 (in %) plus the paper's code / math / overall averages."""
    out = {b: s["pass@1"] for b, s in summarize(results).items()}
    out.update(paper_averages(out))
    return out


def write_results(
    out_dir: str, results: Sequence[ProblemResult], summary: dict[str, Any], step: int | None = None
) -> str:
    """Per-answer JSONL and a summary JSON under `out_dir`; returns the JSONL path."""
    os.makedirs(out_dir, exist_ok=True)
    tag = f"step{step}" if step is not None else time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(out_dir, f"eval_{tag}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(dataclasses.asdict(r)) + "\n")
    with open(os.path.join(out_dir, f"eval_{tag}_summary.json"), "w", encoding="utf-8") as f:
        json.dump({"step": step, **summary}, f, indent=2, sort_keys=True)
    return path


__all__ = [
    "evaluate",
    "scores",
    "summarize",
    "pass_at_k",
    "write_results",
    "ProblemResult",
    "CODE_BENCHMARKS",
    "MATH_BENCHMARKS",
]

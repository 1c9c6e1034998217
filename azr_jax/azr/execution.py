"""AZR's executions on the sandbox farm: proposal validation and answer checks.

Two things on top of the farm's probes:
- identical jobs within one submission run once (the official code caches identical solver
  answers per task: with G=8 learnability rollouts, many answers repeat);
- on a multi-host run every host executes only its share of the jobs (job i on host
  i % num_hosts) and the results are all-gathered, so every host ends with the same results
  and the farm's work is split, not repeated.
Waiting on results has a deadline (`Pending.results`): a broken farm raises, it never hangs the
trainer.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.tasks import TaskType
from azr_jax.sandbox import Job, JobOptions, Result, abduction_job, deduction_job, induction_job, output_job

# (process_index, process_count, allgather) for multi-host; allgather maps this host's JSON-able
# object to the list of every host's object (identity on one host).
AllGather = Callable[[object], list]


def _single_host_gather(obj: object) -> list:
    return [obj]


@dataclasses.dataclass(frozen=True)
class ExecutionOptions:
    """Job options for the two kinds of AZR executions."""

    proposal: JobOptions = JobOptions()
    # Answer checks: the same limits; the single-def rule does not bind solver programs.
    answer: JobOptions = dataclasses.field(default_factory=lambda: JobOptions(single_function=False))
    # Seconds to wait for one submission's results beyond the jobs' own budgets (see Pending).
    result_grace_s: float = 120.0

    @classmethod
    def for_semantics(cls, mode: str, *, single_function: bool = True, **limits) -> ExecutionOptions:
        """Options for `mode` ("official": the official executor's verdicts; "strict": the paper's
        stated rules; see azr_jax/sandbox/README.md). `limits` are JobOptions fields shared by both
        kinds (timeout_s, memory_mb, ...); `single_function` binds proposals only."""
        return cls(
            proposal=JobOptions(semantics=mode, single_function=single_function, **limits),
            answer=JobOptions(semantics=mode, single_function=False, **limits),
        )


class Pending:
    """Results of one submission, in submission order, once every host has finished its share.

    `results()` waits at most `timeout_s` (by default the jobs' own budgets spread over the farm's
    workers, plus a grace) and raises TimeoutError past it: the farm resolves every job (its
    watchdog replaces wedged workers), so reaching the deadline means the farm itself is broken."""

    def __init__(self, n: int, local: dict[int, Future], gather: AllGather, timeout_s: float | None = None):
        self._n, self._local, self._gather = n, local, gather
        self._timeout_s = timeout_s
        self._results: list[Result] | None = None

    def results(self, timeout_s: float | None = None) -> list[Result]:
        if self._results is None:
            limit = timeout_s if timeout_s is not None else self._timeout_s
            deadline = None if limit is None else time.monotonic() + limit
            mine = {}
            for i, f in self._local.items():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    mine[i] = f.result(left).to_wire()
                except FutureTimeout:
                    raise TimeoutError(
                        f"sandbox results not back within {limit:.0f} s: the farm is not "
                        f"answering (job {i} of {self._n})"
                    ) from None
            merged: dict[int, dict] = {}
            for part in self._gather({str(i): r for i, r in mine.items()}):
                merged.update({int(i): r for i, r in part.items()})
            missing = [i for i in range(self._n) if i not in merged]
            if missing:
                raise RuntimeError(f"no host returned results for jobs {missing[:5]}")
            self._results = [
                Result.from_wire(merged[i], merged[i].get("wall_s", 0.0)) for i in range(self._n)
            ]
        return self._results


class TaskExecutor:
    """Submits AZR jobs to a farm (this host's share), returns `Pending` handles."""

    def __init__(
        self,
        farm,
        options: ExecutionOptions = ExecutionOptions(),
        *,
        process_index: int = 0,
        process_count: int = 1,
        allgather: AllGather = _single_host_gather,
    ):
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        self.farm = farm
        self.options = options
        self.process_index, self.process_count = process_index, process_count
        self.allgather = allgather
        self.jobs_run = 0  # executed on this host (after de-duplication)

    def submit(self, jobs: Sequence[Job]) -> Pending:
        """Non-blocking: this host's share of unique jobs goes to the farm now."""
        unique: dict[Job, int] = {}
        owner: list[int] = []
        for job in jobs:
            owner.append(unique.setdefault(job, len(unique)))
        mine = [j for j in range(len(unique)) if j % self.process_count == self.process_index]
        by_index = list(unique)
        futures = self.farm.submit([by_index[j] for j in mine]) if mine else []
        self.jobs_run += len(mine)
        local_unique = dict(zip(mine, futures))
        inner = Pending(
            len(unique), local_unique, self.allgather, self._deadline([by_index[j] for j in mine])
        )
        return _Expanded(inner, owner)

    def _deadline(self, jobs: Sequence[Job]) -> float:
        """Seconds a submission may take: every job's budget (two steps at most each), spread over
        the farm's workers, plus the grace."""
        budget = sum(2 * j.options.timeout_s * j.units for j in jobs)
        workers = max(1, int(getattr(self.farm, "num_workers", 1) or 1))
        return budget / workers + self.options.result_grace_s

    # -------------------------------------------------------------- AZR job builders
    def proposal_job(self, program: str, input_text: str, imports: Sequence[str]) -> Job:
        """Run f(input) twice in one child (determinism) and return repr of the output."""
        return output_job(program, input_text, tuple(imports), self.options.proposal)

    def answer_job(self, task: TaskType, entry: Triplet | InductionTask, answer: str) -> Job:
        """The check of one solver answer against a task; compared inside the sandbox."""
        opts = self.options.answer
        if task is TaskType.DEDUCTION:
            return deduction_job(entry.output, answer, entry.program, entry.imports, opts)
        if task is TaskType.ABDUCTION:
            return abduction_job(entry.program, entry.output, answer, entry.imports, opts)
        assert isinstance(entry, InductionTask)
        return induction_job(answer, entry.hidden_pairs, entry.imports, opts)


class _Expanded(Pending):
    """Maps de-duplicated results back onto the original job order."""

    def __init__(self, inner: Pending, owner: list[int]):
        self._inner, self._owner = inner, owner

    def results(self, timeout_s: float | None = None) -> list[Result]:
        unique = self._inner.results(timeout_s)
        return [unique[k] for k in self._owner]

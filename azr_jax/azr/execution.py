"""AZR's executions on the sandbox farm: proposal validation and answer checks.

Two things on top of the farm's probes:
- identical jobs within one submission run once (the official code caches identical solver
  answers per task: with G=8 learnability rollouts, many answers repeat);
- on a multi-host run every host executes only its share of the jobs (job i on host
  i % num_hosts) and the results are all-gathered, so every host ends with the same results
  and the farm's work is split, not repeated.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import Callable, Sequence

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
    answer: JobOptions = dataclasses.field(
        default_factory=lambda: JobOptions(single_function=False))


class Pending:
    """Results of one submission, in submission order, once every host has finished its share."""

    def __init__(self, n: int, local: dict[int, Future], gather: AllGather):
        self._n, self._local, self._gather = n, local, gather
        self._results: list[Result] | None = None

    def results(self) -> list[Result]:
        if self._results is None:
            mine = {i: f.result().to_wire() for i, f in self._local.items()}
            merged: dict[int, dict] = {}
            for part in self._gather({str(i): r for i, r in mine.items()}):
                merged.update({int(i): r for i, r in part.items()})
            missing = [i for i in range(self._n) if i not in merged]
            if missing:
                raise RuntimeError(f"no host returned results for jobs {missing[:5]}")
            self._results = [Result.from_wire(merged[i], merged[i].get("wall_s", 0.0))
                             for i in range(self._n)]
        return self._results


class TaskExecutor:
    """Submits AZR jobs to a farm (this host's share), returns `Pending` handles."""

    def __init__(self, farm, options: ExecutionOptions = ExecutionOptions(), *,
                 process_index: int = 0, process_count: int = 1,
                 allgather: AllGather = _single_host_gather):
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
        inner = Pending(len(unique), local_unique, self.allgather)
        return _Expanded(inner, owner)

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

    def results(self) -> list[Result]:
        unique = self._inner.results()
        return [unique[k] for k in self._owner]

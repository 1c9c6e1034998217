"""One Absolute Zero self-play step: propose, validate, estimate learnability, solve, reward.

Order of work (azr_method.md §1.2, with the official one-step solver lag):
  1. prompts from the buffers as they stand: B proposer prompts per task (K references for
     deduction/abduction, one program for induction) and B solver tasks per task (recent first);
  2. ONE generation call for all 6B prompts (the solver prompts do not depend on this step's
     proposals, so they ride along);
  3. parse; proposals go to the farm for validation and solver answers for checking, both
     asynchronously;
  4. once validations are back, G learnability rollouts per valid proposal are generated
     while the farm is still checking the solver answers (the overlap);
  5. their checks give solve rates (correct answers / G, the format flag plays no part) ->
     proposer rewards; solver rewards from the checks of well-formatted answers;
  6. valid proposals join the buffers, stamped with this step (official semantics: not those
     whose solver prompt is over the length limit, which the official code drops with it).
The caller turns `StepOutput.samples` into the update batch (azr_jax.azr.batch).
Everything random comes from (seed, step), so a resumed run and every host of a multi-host
run build the same prompts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from azr_jax.azr.buffers import InductionTask, TaskBuffers, Triplet
from azr_jax.azr.execution import TaskExecutor
from azr_jax.azr.parsing import ParseConfig, learnability_answer, parse_proposal, parse_solution
from azr_jax.azr.policy import Policy, Rollout
from azr_jax.azr.prompts import PromptConfig, prompt_set
from azr_jax.azr.rewards import RewardConfig, proposer_reward, solve_rate, solver_reward
from azr_jax.azr.tasks import Group, Role, TaskType


@dataclasses.dataclass(frozen=True)
class SelfPlayConfig:
    batch_size: int = 64  # B per task-role group
    task_types: tuple[TaskType, ...] = (TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION)
    learnability_samples: int = 8  # G
    max_prompt_tokens: int = 6144
    max_response_tokens: int = 8096
    train_proposer: bool = True
    # A prompt over max_prompt_tokens is rebuilt with other buffer entries this many times
    # (official: drop and resample), then with fewer references, then dropped.
    max_prompt_retries: int = 4
    prompt: PromptConfig = PromptConfig()
    parse: ParseConfig = ParseConfig()
    rewards: RewardConfig = RewardConfig()

    @property
    def semantics(self) -> str:
        """azr.semantics ("official" | "strict"), carried by the parse config."""
        return self.parse.semantics

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.learnability_samples < 1:
            raise ValueError("batch_size and learnability_samples must be >= 1")
        if self.prompt.num_inputs != self.parse.num_inputs:
            raise ValueError("prompt.num_inputs and parse.num_inputs must agree")


@dataclasses.dataclass
class Sample:
    """One generated sequence with its reward: a row of the update batch."""

    group: Group
    rollout: Rollout
    reward: float
    formatted: bool
    parsed: bool  # proposer: a valid task came out; solver: an answer could be extracted
    correct: bool | None = None  # solver rows
    solve_rate: float | None = None  # valid, formatted proposer rows
    status: str = ""  # first failing execution status or parse reason (for logs)


@dataclasses.dataclass
class StepOutput:
    samples: list[Sample]
    added: dict[TaskType, list[Triplet | InductionTask]]
    metrics: dict[str, float]


@dataclasses.dataclass
class _Proposal:
    task: TaskType
    prompt_ids: list[int]
    program: Triplet | None = None  # induction: the program the inputs are for
    rollout: Rollout | None = None
    jobs: tuple[int, int] = (0, 0)  # slice into the step's validation jobs
    parse: Any = None
    entry: Triplet | InductionTask | None = None
    status: str = ""
    solver_prompt_ids: list[int] | None = None  # the learnability prompt of a valid proposal


@dataclasses.dataclass
class _SolveTask:
    task: TaskType
    entry: Triplet | InductionTask
    prompt_ids: list[int]


class SelfPlay:
    """Holds the buffers and runs steps with a policy and an executor."""

    def __init__(
        self,
        cfg: SelfPlayConfig,
        policy: Policy,
        executor: TaskExecutor,
        buffers: TaskBuffers,
        *,
        seed: int = 0,
    ):
        self.cfg, self.policy, self.executor, self.buffers = cfg, policy, executor, buffers
        self.seed = seed
        self.prompts = prompt_set(cfg.prompt)

    # ------------------------------------------------------------------ prompts
    def _fits(self, ids: list[int]) -> bool:
        return len(ids) <= self.cfg.max_prompt_tokens

    def _proposer_prompts(self, rng: np.random.Generator, task: TaskType) -> list[_Proposal]:
        out = []
        B = self.cfg.batch_size
        if task is TaskType.INDUCTION:
            for program in self.buffers.sample_induction_programs(rng, B):
                for _ in range(self.cfg.max_prompt_retries + 1):
                    ids = self.policy.prompt_ids(self.prompts.proposer(task, program=program.program))
                    if self._fits(ids):
                        out.append(_Proposal(task, ids, program=program))
                        break
                    (program,) = self.buffers.sample_induction_programs(rng, 1)
            return out
        for refs in self.buffers.sample_references(rng, task, B):
            for attempt in range(self.cfg.max_prompt_retries + 1):
                ids = self.policy.prompt_ids(self.prompts.proposer(task, references=refs))
                if self._fits(ids):
                    out.append(_Proposal(task, ids))
                    break
                if attempt < self.cfg.max_prompt_retries // 2:
                    (refs,) = self.buffers.sample_references(rng, task, 1)
                else:
                    refs = refs[:-1]  # fewer references, down to none
        return out

    def _solver_prompts(self, rng: np.random.Generator, task: TaskType, step: int) -> list[_SolveTask]:
        out = []
        buf = self.buffers.buffer(task)
        for entry in self.buffers.sample_solver_tasks(rng, task, self.cfg.batch_size, step):
            for _ in range(self.cfg.max_prompt_retries + 1):
                ids = self.policy.prompt_ids(self.prompts.solver(task, entry))
                if self._fits(ids):
                    out.append(_SolveTask(task, entry, ids))
                    break
                (entry,) = buf.sample_uniform(rng, 1)
        return out

    # ------------------------------------------------------------------ validation
    def submit_validation(self, proposals: list[_Proposal], parse_cfg: ParseConfig | None = None) -> Any:
        """Parse each proposal's rollout and send its executions to the farm (non-blocking)."""
        val_jobs = []
        for p in proposals:
            p.parse = parse_proposal(p.rollout.text, p.task, parse_cfg or self.cfg.parse)
            if not p.parse.ok:
                p.status = "parse: " + p.parse.result.reason
                continue
            res = p.parse.result
            start = len(val_jobs)
            if p.task is TaskType.INDUCTION:
                val_jobs += [
                    self.executor.proposal_job(p.program.program, x, p.program.imports) for x in res.inputs
                ]
            else:
                val_jobs.append(self.executor.proposal_job(res.program, res.input, res.imports))
            p.jobs = (start, len(val_jobs))
        return self.executor.submit(val_jobs)

    def collect_validation(self, proposals: list[_Proposal], pending: Any, step: int) -> None:
        """Wait for the executions; a proposal whose every execution passed gets its entry."""
        results = pending.results()
        for p in proposals:
            if not p.parse.ok:
                continue
            mine = results[p.jobs[0] : p.jobs[1]]
            bad = next((r for r in mine if not r.ok), None)
            if bad is not None:
                p.status = bad.status
                continue
            res = p.parse.result
            if p.task is TaskType.INDUCTION:
                p.entry = InductionTask(
                    program=p.program.program,
                    inputs=tuple(res.inputs),
                    outputs=tuple(r.value for r in mine),
                    message=res.message,
                    imports=tuple(p.program.imports),
                    step=step,
                )
            else:
                p.entry = Triplet(
                    program=res.program,
                    input=res.input,
                    output=mine[0].value,
                    imports=tuple(res.imports),
                    step=step,
                )

    def propose(
        self,
        rng: np.random.Generator,
        task: TaskType,
        params: Any,
        key: jax.Array,
        step: int,
        parse_cfg: ParseConfig | None = None,
    ) -> list[_Proposal]:
        """Generate and validate one batch of proposals of `task` (used by seeding)."""
        proposals = self._proposer_prompts(rng, task)
        rollouts = self.policy.generate(
            params, [p.prompt_ids for p in proposals], self.cfg.max_response_tokens, key
        )
        for p, r in zip(proposals, rollouts):
            p.rollout = r
        self.collect_validation(proposals, self.submit_validation(proposals, parse_cfg), step)
        return proposals

    # ------------------------------------------------------------------ step
    def run(self, step: int, params: Any, key: jax.Array) -> StepOutput:
        cfg = self.cfg
        t_start = time.perf_counter()
        times: dict[str, float] = {}
        rng = np.random.default_rng([self.seed, step])
        key_main, key_learn = jax.random.split(jax.random.fold_in(key, step))

        solve_tasks: list[_SolveTask] = []
        for task in cfg.task_types:  # sampled first: the buffers as they were before this step
            solve_tasks += self._solver_prompts(rng, task, step)
        proposals: list[_Proposal] = []
        for task in cfg.task_types:
            proposals += self._proposer_prompts(rng, task)
        times["prompts"] = time.perf_counter() - t_start

        t = time.perf_counter()
        rollouts = self.policy.generate(
            params,
            [p.prompt_ids for p in proposals] + [s.prompt_ids for s in solve_tasks],
            cfg.max_response_tokens,
            key_main,
        )
        times["generate"] = time.perf_counter() - t
        for p, r in zip(proposals, rollouts[: len(proposals)]):
            p.rollout = r
        solver_rollouts = rollouts[len(proposals) :]

        pending_val = self.submit_validation(proposals)
        solver_parses = [
            parse_solution(r.text, s.task, cfg.parse) for s, r in zip(solve_tasks, solver_rollouts)
        ]
        # a badly formatted answer earns -1 whatever it says: only the others are checked
        check_idx = [i for i, sp in enumerate(solver_parses) if sp.ok and sp.format_ok]
        pending_checks = self.executor.submit(
            [
                self.executor.answer_job(
                    solve_tasks[i].task, solve_tasks[i].entry, solver_parses[i].result.text
                )
                for i in check_idx
            ]
        )

        t = time.perf_counter()
        self.collect_validation(proposals, pending_val, step)
        times["validate_wait"] = time.perf_counter() - t

        # Learnability: G solver rollouts per valid, formatted proposal (not trained on; a
        # badly formatted proposal earns -1 whatever its solve rate).
        for p in proposals:
            if p.entry is not None:
                p.solver_prompt_ids = self.policy.prompt_ids(self.prompts.solver(p.task, p.entry))
        learn = [p for p in proposals if p.entry is not None and p.parse.format_ok]
        G = cfg.learnability_samples
        learn_prompts, learn_owner, rates = [], [], {}
        for k, p in enumerate(learn):
            ids = p.solver_prompt_ids
            if not self._fits(ids):
                rates[k] = 0.0  # official: a filtered solver prompt counts as never solved
                continue
            learn_prompts += [ids] * G
            learn_owner += [k] * G
        t = time.perf_counter()
        learn_rollouts = (
            self.policy.generate(params, learn_prompts, cfg.max_response_tokens, key_learn)
            if learn_prompts
            else []
        )
        times["learnability_generate"] = time.perf_counter() - t
        learn_jobs, learn_job_owner = [], []
        outcomes: dict[int, list[bool | None]] = {k: [] for k in range(len(learn))}
        for k, r in zip(learn_owner, learn_rollouts):
            answer = learnability_answer(r.text, learn[k].task, cfg.parse)
            if answer.ok:
                learn_jobs.append(self.executor.answer_job(learn[k].task, learn[k].entry, answer.text))
                learn_job_owner.append(k)
            else:
                outcomes[k].append(False)
        t = time.perf_counter()
        for k, res in zip(learn_job_owner, self.executor.submit(learn_jobs).results()):
            outcomes[k].append(res.verdict)
        check_results = pending_checks.results()
        times["checks_wait"] = time.perf_counter() - t
        for k in range(len(learn)):
            rates.setdefault(k, solve_rate(outcomes[k]))

        # Rewards.
        samples: list[Sample] = []
        learn_pos = {id(p): k for k, p in enumerate(learn)}
        for p in proposals:
            valid = p.entry is not None
            rate = rates.get(learn_pos.get(id(p), -1))
            reward = proposer_reward(valid, p.parse.format_ok, rate, cfg.rewards)
            samples.append(
                Sample(
                    Group(p.task, Role.PROPOSE),
                    p.rollout,
                    reward,
                    p.parse.format_ok,
                    valid,
                    solve_rate=rate,
                    status=p.status or "ok",
                )
            )
        checks = dict(zip(check_idx, check_results))
        for i, (s, r, sp) in enumerate(zip(solve_tasks, solver_rollouts, solver_parses)):
            correct = checks[i].verdict if i in checks else None
            reward = solver_reward(sp.format_ok, sp.ok, correct, cfg.rewards)
            status = checks[i].status if i in checks else "parse: " + sp.result.reason
            samples.append(
                Sample(
                    Group(s.task, Role.SOLVE),
                    r,
                    reward,
                    sp.format_ok,
                    sp.ok,
                    correct=bool(correct),
                    status=status,
                )
            )

        # Every valid proposal joins its buffer (format-failed ones too, as the official code;
        # official semantics drop those whose solver prompt is too long, as that code does).
        added: dict[TaskType, list] = {t: [] for t in cfg.task_types}
        for p in proposals:
            if p.entry is None:
                continue
            if cfg.semantics == "official" and not self._fits(p.solver_prompt_ids):
                continue
            if self.buffers.buffer(p.task).add(p.entry):
                added[p.task].append(p.entry)
        if not cfg.train_proposer:
            samples = [s for s in samples if s.group.role is Role.SOLVE]

        times["total"] = time.perf_counter() - t_start
        metrics = step_metrics(
            samples, proposals, learn_rollouts, self.buffers, added, times, self.executor.jobs_run
        )
        return StepOutput(samples, added, metrics)


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def step_metrics(
    samples: list[Sample],
    proposals: list[_Proposal],
    learn_rollouts: list[Rollout],
    buffers: TaskBuffers,
    added: dict,
    times: dict[str, float],
    jobs_run: int,
) -> dict[str, float]:
    """Flat scalar metrics of one step (per task-role rewards, validity, lengths, timings)."""
    m: dict[str, float] = {}
    by_group: dict[str, list[Sample]] = {}
    for s in samples:
        by_group.setdefault(s.group.name, []).append(s)
    for name, ss in by_group.items():
        m[f"reward/{name}"] = _mean([s.reward for s in ss])
        m[f"format_error/{name}"] = _mean([0.0 if s.formatted else 1.0 for s in ss])
        m[f"length/{name}"] = _mean([len(s.rollout.completion_ids) for s in ss])
        m[f"truncated/{name}"] = _mean([1.0 if s.rollout.finish_reason == "length" else 0.0 for s in ss])
        m[f"count/{name}"] = float(len(ss))
        if ss[0].group.role is Role.SOLVE:
            m[f"accuracy/{name}"] = _mean([1.0 if s.correct else 0.0 for s in ss])
    by_task: dict[TaskType, list[_Proposal]] = {}
    for p in proposals:
        by_task.setdefault(p.task, []).append(p)
    for task, ps in by_task.items():
        m[f"valid/propose_{task.value}"] = _mean([1.0 if p.entry is not None else 0.0 for p in ps])
        rates = [
            s.solve_rate
            for s in samples
            if s.group.task is task and s.group.role is Role.PROPOSE and s.solve_rate is not None
        ]
        m[f"solve_rate/{task.value}"] = _mean(rates)
    for task, entries in added.items():
        m[f"new_programs/{task.value}"] = float(len(entries))
    for name, size in buffers.sizes().items():
        m[f"buffer/{name}"] = float(size)
    m["learnability_rollouts"] = float(len(learn_rollouts))
    m["sandbox_jobs_total"] = float(jobs_run)
    gen_tokens = sum(len(s.rollout.completion_ids) for s in samples) + sum(
        len(r.completion_ids) for r in learn_rollouts
    )
    m["generated_tokens"] = float(gen_tokens)
    gen_time = times.get("generate", 0.0) + times.get("learnability_generate", 0.0)
    m["tokens_per_s"] = gen_tokens / gen_time if gen_time > 0 else float("nan")
    m["reward/solve_mean"] = _mean([s.reward for s in samples if s.group.role is Role.SOLVE])
    m["reward/propose_mean"] = _mean([s.reward for s in samples if s.group.role is Role.PROPOSE])
    for k, v in times.items():
        m[f"time/{k}"] = v
    return m

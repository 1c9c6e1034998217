"""A self-play training run: build everything from a config, loop over steps, checkpoint, resume.

Run directory layout (`--workdir`):
  checkpoints/<step>/   orbax: params, opt_state, state (step, buffers, config), model_config
  checkpoints/tokenizer/  tokenizer files (so `azr-jax convert` exports a complete HF dir)
  metrics.jsonl, samples.jsonl, eval.jsonl, tensorboard/, hosts/<process>.json
A remote run directory (`gs://...`, a TPU pod's shared storage) keeps the checkpoints; the logs
are written locally (`log.local_dir`, default under ~/.cache/azr_jax/runs) and mirrored to
`<workdir>/logs/` after every checkpoint (see `azr_jax.rundir`).
A run resumes from its latest checkpoint whenever the directory already holds one; SIGTERM
(TPU preemption) and SIGINT save and exit losing at most the step in progress (`train`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from azr_jax import host_memory, rundir, stopping
from azr_jax import metrics as metrics_lib
from azr_jax.azr.batch import build_update_batches
from azr_jax.azr.buffers import BufferConfig, TaskBuffers, load_seed_induction, load_seed_triplets
from azr_jax.azr.execution import ExecutionOptions, TaskExecutor
from azr_jax.azr.parsing import SEMANTICS, ParseConfig
from azr_jax.azr.policy import Policy
from azr_jax.azr.prompts import PromptConfig, prompt_set
from azr_jax.azr.rewards import RewardConfig
from azr_jax.azr.selfplay import SelfPlay, SelfPlayConfig, StepOutput
from azr_jax.azr.tasks import TaskType
from azr_jax.checkpoint import Checkpointer, abstract_with_shardings, host_save_bytes
from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.rl.advantages import AdvantageConfig
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.train_step import OptimConfig, StepConfig, TrainBatch, Trainer, TrainState
from azr_jax.sampling.sampler import platform_of
from azr_jax.sandbox import FarmConfig, SandboxFarm
from sharding import distributed
from sharding.mesh import describe, mesh_from_config
from sharding.params import put
from sharding.rules import ShardingRules

log = logging.getLogger(__name__)
TOKENIZER_SUBDIR = "tokenizer"


# ---------------------------------------------------------------------------- config -> parts
def selfplay_config(c: ml_collections.ConfigDict) -> SelfPlayConfig:
    if c.azr.semantics not in SEMANTICS:
        raise ValueError(f"azr.semantics must be one of {SEMANTICS}, got {c.azr.semantics!r}")
    prompt = PromptConfig(
        flavour=c.azr.prompt_flavour,
        num_inputs=c.azr.num_inputs,
        timeout_seconds=max(1, int(c.sandbox.timeout_s)),
        single_def=c.azr.reject_multiple_functions,
        official_repo=c.azr.official_repo,
    )
    parse = ParseConfig(
        semantics=c.azr.semantics,
        reject_multiple_functions=c.azr.reject_multiple_functions,
        entry_function=c.azr.entry_function,
        num_inputs=c.azr.num_inputs,
        answer_fallback=c.azr.answer_fallback,
    )
    prompt_set(prompt)  # a bad azr.official_repo fails here, before any model is loaded
    return SelfPlayConfig(
        batch_size=c.azr.batch_size,
        task_types=tuple(TaskType.parse(t) for t in c.azr.task_types),
        learnability_samples=c.azr.learnability_samples,
        max_prompt_tokens=c.azr.max_prompt_tokens,
        max_response_tokens=c.azr.max_response_tokens,
        train_proposer=c.azr.train_proposer,
        prompt=prompt,
        parse=parse,
        rewards=RewardConfig(extreme_solve_rate=c.azr.extreme_solve_rate),
    )


def job_options(c: ml_collections.ConfigDict) -> ExecutionOptions:
    base = dict(timeout_s=float(c.sandbox.timeout_s), memory_mb=int(c.sandbox.memory_mb))
    if c.sandbox.max_output_chars:
        # Official quirk: keep long outputs as head + "..." + tail (unsolvable tasks).
        base.update(truncate_repr=True, truncate_keep_chars=int(c.sandbox.max_output_chars) // 2)
    # Only the parser applies reject_multiple_functions, as in the official code: an induction
    # proposal's inputs for a seed program with several defs are valid.
    return ExecutionOptions.for_semantics(c.azr.semantics, single_function=False, **base)


def buffer_config(c: ml_collections.ConfigDict) -> BufferConfig:
    return BufferConfig(
        max_programs=c.azr.max_programs,
        cap_policy=c.azr.cap_policy,
        num_references=c.azr.num_references,
        past_epoch_window=c.azr.past_epoch_window,
    )


def seed_source(c: ml_collections.ConfigDict) -> str:
    """zero | files | generate: `azr.seed_source` with "auto" resolved."""
    src = c.azr.seed_source
    if src == "auto":
        return "files" if c.azr.seed_io_file else "generate"
    if src not in ("zero", "files", "generate"):
        raise ValueError(f"azr.seed_source must be zero|files|generate|auto, got {src!r}")
    return src


def seed_buffers(c: ml_collections.ConfigDict) -> TaskBuffers | None:
    """Buffers from the configured seed source; None for "generate" (needs the model). Seed
    files are cut to their first `seed_target_size` entries (as the official trainer does); a
    missing induction file leaves the induction seed to `resume_or_init` to generate."""
    cfg = buffer_config(c)
    src = seed_source(c)
    if src == "zero":
        return TaskBuffers.from_seed([], [], cfg)
    if src == "generate":
        return None
    names = ("seed_io_file", "seed_induction_file") if c.azr.seed_induction_file else ("seed_io_file",)
    for name in names:
        path = c.azr[name]
        if not path or not os.path.isfile(path):
            raise FileNotFoundError(f"--config.azr.{name}: seed file not found: {path!r}")
    n = c.azr.seed_target_size
    induction = load_seed_induction(c.azr.seed_induction_file)[:n] if c.azr.seed_induction_file else []
    return TaskBuffers.from_seed(load_seed_triplets(c.azr.seed_io_file)[:n], induction, cfg)


def update_configs(
    c: ml_collections.ConfigDict,
) -> tuple[OptimConfig, LossConfig, StepConfig, AdvantageConfig]:
    return (
        OptimConfig(
            learning_rate=c.optim.learning_rate,
            b1=c.optim.b1,
            b2=c.optim.b2,
            eps=c.optim.eps,
            weight_decay=c.optim.weight_decay,
            clip_norm=c.optim.clip_norm,
            warmup_steps=c.optim.warmup_steps,
        ),
        LossConfig(
            clip_eps_low=c.rl.clip_eps_low,
            clip_eps_high=c.rl.clip_eps_high,
            entropy_coef=c.rl.entropy_coef,
            kl_coef=c.rl.kl_coef,
            aggregation=c.rl.aggregation,
            micro_batch_rows=c.rl.micro_batch_rows,
        ),
        StepConfig(micro_batch_size=c.train.micro_batch_size, logit_chunk=c.train.logit_chunk),
        AdvantageConfig(method=c.rl.advantage),
    )


def load_model(
    c: ml_collections.ConfigDict, rules: ShardingRules, vocab_size: int | None = None
) -> tuple[ModelConfig, Any, str | None]:
    """(model config, sharded params, HF directory or None) from `config.model`."""
    from azr_jax.hf.assets import resolve_model_path

    over = dict(dtype=c.model.dtype, remat=c.model.remat)
    if c.model.init == "hf":
        if not c.model.hf_path:
            raise ValueError(
                "config.model.hf_path is required (an HF model directory, or "
                "embedded:smollm2-135m); pass --config.model.hf_path=DIR"
            )
        path = resolve_model_path(c.model.hf_path)
        from azr_jax.hf.load import load_hf

        cfg, params = load_hf(
            path, rules=rules, param_dtype=c.model.param_dtype, progress=jax.process_index() == 0, **over
        )
        _check_preset(cfg, c.model.get("preset", ""))
        return cfg, params, path
    if c.model.init == "random":
        dims = dict(c.model.random_dims)
        if not dims.get("vocab_size"):
            if not vocab_size:
                raise ValueError("random init needs random_dims.vocab_size or a tokenizer")
            dims["vocab_size"] = vocab_size
        cfg = ModelConfig(param_dtype=c.model.param_dtype, eos_token_id=(), **dims, **over)
        from sharding.params import init_sharded

        params = init_sharded(
            lambda: api.init_params(cfg, seed=c.seed), api.abstract_params(cfg), api.logical_axes(cfg), rules
        )
        return cfg, params, None
    raise ValueError(f"config.model.init must be 'hf' or 'random', got {c.model.init!r}")


def _check_preset(cfg: ModelConfig, preset: str) -> None:
    if not preset:
        return
    from azr_jax.model.presets import get_preset

    want = get_preset(preset)
    fields = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_layers",
        "num_heads",
        "num_kv_heads",
        "head_dim",
    )
    diff = {f: (getattr(cfg, f), getattr(want, f)) for f in fields if getattr(cfg, f) != getattr(want, f)}
    if diff:
        raise ValueError(
            f"checkpoint does not match preset {preset!r}: "
            + ", ".join(f"{k}={a} (preset {b})" for k, (a, b) in diff.items())
        )


# ---------------------------------------------------------------------------- the run
class SelfPlayRun:
    """Owns the model state, buffers, farm and writers of one training run."""

    def __init__(
        self, c: ml_collections.ConfigDict, workdir: str, *, policy: Policy | None = None, farm: Any = None
    ):
        self.c = c
        self.sp_cfg = selfplay_config(c)
        self.workdir = rundir.resolve(workdir)
        self.primary = distributed.is_primary()
        # Logs need a local, appendable directory; a remote workdir gets a mirrored local one.
        self.log_dir = c.log.local_dir or (
            rundir.default_local_dir(self.workdir) if rundir.is_remote(self.workdir) else self.workdir
        )
        self.log_dir = os.path.abspath(self.log_dir)
        self.mirror = (
            rundir.LogMirror(self.log_dir, rundir.join(self.workdir, rundir.LOGS_SUBDIR))
            if self.log_dir != self.workdir
            else None
        )
        made = [
            d
            for d in ((self.workdir,) if not rundir.is_remote(self.workdir) else ()) + (self.log_dir,)
            if not os.path.isdir(d)
        ]
        for d in made:
            os.makedirs(d, exist_ok=True)
        # One trainer per run directory (primary host: the others write no logs of their own).
        self._lock = rundir.RunLock(self.log_dir) if self.primary else None
        try:
            self._build(c, policy, farm)
        except BaseException:  # a start that failed leaves no empty run directory behind
            self._release_lock()
            for d in reversed(made):
                rundir.remove_if_unused(d)
            raise

    def _build(self, c: ml_collections.ConfigDict, policy: Policy | None, farm: Any) -> None:
        self.mesh = mesh_from_config(c.mesh)
        self.rules = ShardingRules(self.mesh)
        log.info("mesh %s", describe(self.mesh))

        tok_path = c.model.tokenizer_path or None
        self.tokenizer = None
        if policy is None or c.model.init == "random":
            from azr_jax.hf.assets import resolve_model_path

            path = resolve_model_path(tok_path or c.model.hf_path)
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.tokenizer_dir = path
        else:
            self.tokenizer_dir = None
        vocab = len(self.tokenizer) if self.tokenizer is not None else None
        self.model_cfg, params, hf_dir = load_model(c, self.rules, vocab)
        self.tokenizer_dir = self.tokenizer_dir or hf_dir

        optim, loss, step_cfg, self.adv_cfg = update_configs(c)
        self.trainer = Trainer(self.model_cfg, rules=self.rules, optim=optim, loss=loss, step_cfg=step_cfg)
        # The AdamW moments (twice the params) are made when first needed (`_with_optimizer`):
        # a fresh run's first generation, which also compiles the sampler, runs without them.
        self.state = TrainState(params, None, None)
        del params

        self.policy = policy or self._make_policy()
        self._own_farm = farm is None
        self.farm = farm or SandboxFarm(
            FarmConfig(num_workers=c.sandbox.num_workers or max(1, os.cpu_count() or 1))
        )
        self.executor = TaskExecutor(
            self.farm,
            job_options(c),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            allgather=distributed.allgather_json,
        )
        buffers = seed_buffers(c) or TaskBuffers.from_seed([], [], buffer_config(c))
        self.selfplay = SelfPlay(self.sp_cfg, self.policy, self.executor, buffers, seed=c.seed)
        log.info(
            "prompts: %s; semantics: %s",
            self.selfplay.prompts.description
            if c.azr.official_repo
            else "azr-jax's own (no azr.official_repo given; "
            "--config.azr.official_repo=CHECKOUT uses the official templates)",
            c.azr.semantics,
        )
        self.key = jax.random.PRNGKey(c.seed)

        self.ckpt = Checkpointer(
            rundir.join(self.workdir, "checkpoints"),
            max_to_keep=c.checkpoint.keep,
            save_every=1,
            async_save=c.checkpoint.async_save,
            # On CPU the arrays live in this process's memory, which an unbounded save's copies
            # would double while it runs (Checkpointer).
            save_concurrent_bytes=(
                host_save_bytes(self.state.params) if platform_of(self.state.params) == "cpu" else None
            ),
        )
        self.step = 0
        self._saved_step: int | None = None  # the last step queued for a checkpoint
        self._config_blob = json.loads(c.to_json_best_effort())
        # Stopping mid-step (see `train`): the main thread marks the part of a step that can be
        # abandoned; `_phase` orders it against the helper thread that saves on a signal.
        self._stops: stopping.StopSignals | None = None
        self._phase = threading.Lock()
        self._interruptible = False
        self._abandoned = False
        self._snapshot: tuple[int, dict[str, Any]] | None = None
        self.metrics = None
        self.samples = None
        self.evals = None
        self._eval_problems: list | None = None

    # ------------------------------------------------------------------ setup
    def _make_policy(self) -> Policy:
        from azr_jax.azr.sampler_policy import build_policy
        from azr_jax.sampling.config import SamplingParams

        c = self.c
        sampling = SamplingParams(
            temperature=c.sampler.temperature, top_p=c.sampler.top_p, top_k=c.sampler.top_k
        )
        return build_policy(
            self.model_cfg,
            self.tokenizer,
            self.rules,
            sampler=c.sampler,
            sampling=sampling,
            template=c.model.template,
            prompt_cfg=self.sp_cfg.prompt,
        )

    def resume_or_init(self) -> int:
        """Restore the latest checkpoint if there is one (else seed the buffers); returns step."""
        latest = self.ckpt.latest_step()
        if latest is None:
            src = seed_source(self.c)
            if src == "generate" or (src == "files" and not self.c.azr.seed_induction_file):
                from azr_jax.azr.seeding import generate_seed

                given = list(self.selfplay.buffers.deduction) if src == "files" else None
                log.info(
                    "seeding %s with the base model (target %d)",
                    "the induction buffer" if given else "buffers",
                    self.c.azr.seed_target_size,
                )
                self.selfplay.buffers = generate_seed(
                    self.selfplay,
                    self.state.params,
                    jax.random.fold_in(self.key, -1),
                    target_size=self.c.azr.seed_target_size,
                    seed=self.c.seed,
                    triplets=given,
                )
            self.step = 0
        else:
            self._with_optimizer()
            shardings = self.trainer.state_shardings
            target = abstract_with_shardings(
                TrainState(self.state.params, self.state.opt_state, self.state.step), shardings
            )
            out = self.ckpt.restore_latest_good(
                params_target=target.params, opt_state_target=target.opt_state
            )
            st = out["state"]
            self.state = TrainState(
                out["params"],
                out["opt_state"],
                put(np.asarray(st["step"], np.int32), shardings.step if shardings else None),
            )
            self.selfplay.buffers.load_state_dict(st["buffers"])
            self.step = int(st["step"])
            self._saved_step = self.step  # a stop before the next step has nothing to save
            log.info("resumed from %s at step %d", self.ckpt.directory, self.step)
        if self.mirror is not None and self.primary:
            self.mirror.pull()  # a fresh VM resuming: bring back the steps already logged
        self.metrics = metrics_lib.MetricsWriter(
            self.log_dir, tensorboard=self.c.log.tensorboard, primary=self.primary, resume_step=self.step
        )
        self.samples = metrics_lib.SamplesWriter(self.log_dir, primary=self.primary, resume_step=self.step)
        self.evals = metrics_lib.SamplesWriter(
            self.log_dir, primary=self.primary, resume_step=self.step, filename="eval.jsonl"
        )
        if self.primary:
            rundir.write_config(self.workdir, self.c.to_json_best_effort(indent=2, sort_keys=True))
        if self.primary and self.tokenizer_dir:
            from azr_jax.convert import copy_tokenizer

            copy_tokenizer(self.tokenizer_dir, rundir.join(self.ckpt.directory, TOKENIZER_SUBDIR))
        return self.step

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        step = self.step + 1
        out: StepOutput = self.selfplay.run(step, self.state.params, self.key)
        host_memory.release()  # what generation freed (compiler, host buffers) before the update
        m = dict(out.metrics, **getattr(self.policy, "take_stats", dict)())
        m["time/selfplay"] = m.pop("time/total", float("nan"))  # "total" is the whole step's
        if out.samples:
            m.update(self._update(out))
            host_memory.release()
        self._enter_critical()
        self.step = step
        if self.c.eval.every and step % self.c.eval.every == 0:
            m.update(self._monitor())
        m["time/total"] = time.perf_counter() - t0
        if self.primary:
            self.metrics.write(step, m)
            if self.c.log.samples_every and step % self.c.log.samples_every == 0:
                self.samples.write(step, _sample_rows(out))
        return m

    def _update(self, out: StepOutput) -> dict[str, float]:
        t = time.perf_counter()
        batch_shards = 1
        for ax in ("data", "fsdp"):
            batch_shards *= self.mesh.shape.get(ax, 1)
        mb = self.trainer.step_cfg.micro_batch_size
        row_multiple = mb * batch_shards // math.gcd(mb, batch_shards)
        ubs = build_update_batches(
            out.samples,
            pad_id=self.policy.pad_id,
            row_multiple=row_multiple,
            max_groups=self.c.train.max_shape_groups,
            advantage=self.adv_cfg,
            loss=self.trainer.loss_cfg,
        )
        batches, drifts = [], []
        for ub in ubs:
            if self.c.rl.recompute_old_logprobs:
                old = distributed.to_host(
                    self.trainer.logprobs(
                        self.state.params, ub.tokens, ub.attn_mask, start=ub.completion_start
                    )
                )
                m = ub.loss_mask.astype(bool)
                drifts.append(np.abs(old[m] - ub.sampler_logprobs[m]))
            else:
                old = ub.sampler_logprobs
            batches.append(
                (
                    TrainBatch(ub.tokens, ub.attn_mask, ub.loss_mask, ub.advantages, old, ub.loss_weights),
                    ub.completion_start,
                )
            )
        self._enter_critical()  # the update donates the old state: no abandoning past here
        self._with_optimizer()
        self.state, tm = self.trainer.update_many(self.state, batches)
        res = {f"train/{k}": v for k, v in tm.items()}
        drift = np.concatenate(drifts) if drifts else np.zeros(0)
        if drift.size:
            res["train/logprob_drift_mean"] = float(drift.mean())
            res["train/logprob_drift_max"] = float(drift.max())
        res["train/rows"] = float(sum(ub.num_real for ub in ubs))
        res["train/update_batches"] = float(len(ubs))
        res["train/padded_tokens"] = float(sum(ub.tokens.size for ub in ubs))
        res["time/update"] = time.perf_counter() - t
        for g in sorted({s.group for s in out.samples}, key=lambda g: g.id):
            abs_sum = sum(float(np.abs(ub.advantages[ub.group_ids == g.id]).sum()) for ub in ubs)
            tokens = sum(int(ub.loss_mask[ub.group_ids == g.id].sum()) for ub in ubs)
            res[f"advantage_abs/{g.name}"] = abs_sum / max(tokens, 1)
        return res

    def _monitor(self) -> dict[str, float]:
        """In-distribution monitors (greedy pass@1, e.g. CRUXEval-I/O) on the current params."""
        from azr_jax.azr.sampler_policy import SamplerPolicy
        from azr_jax.eval.runner import evaluate, scores
        from azr_jax.eval.sources import load_problems
        from azr_jax.sampling.config import SamplingParams

        t = time.perf_counter()
        if self._eval_problems is None:
            self._eval_problems = load_problems(self.c.eval)
        greedy = SamplerPolicy(
            self.tokenizer,
            self.policy.sampler,
            SamplingParams(temperature=0.0),
            template=self.c.model.template,
            prompt_cfg=self.sp_cfg.prompt,
        )
        results = evaluate(
            self._eval_problems,
            greedy,
            self.state.params,
            self.executor,
            max_new_tokens=self.c.eval.max_new_tokens,
            batch_size=self.c.eval.batch_size,
        )
        summary = scores(results)
        if self.primary:
            self.evals.write(self.step, [summary])
        out = {f"eval/{k}": v for k, v in summary.items()}
        out["time/eval"] = time.perf_counter() - t
        return out

    # ------------------------------------------------------------------ loop
    def _state_blob(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "buffers": self.selfplay.buffers.state_dict(),
            "seed": self.c.seed,
            "config": self._config_blob,
        }

    def save(self, force: bool = False, state: dict[str, Any] | None = None) -> None:
        """Queue a checkpoint of the current step (once per step: a stop right after a
        scheduled save does not save again)."""
        if self._saved_step == self.step:
            return
        state = state if state is not None else self._state_blob()
        self._with_optimizer()
        self.ckpt.save(
            self.step,
            params=self.state.params,
            opt_state=self.state.opt_state,
            model_config=self.model_cfg,
            state=state,
            force=force,
        )
        self._saved_step = self.step
        self._push_logs()

    def _with_optimizer(self) -> None:
        """Create the optimizer state (zeros) if this run has none yet."""
        if self.state.opt_state is None:
            self.state = self.trainer.init_state(self.state.params)

    def _push_logs(self) -> None:
        """Mirror the local logs to a remote workdir (primary host only)."""
        if self.mirror is None or not self.primary:
            return
        if self.metrics is not None:
            self.metrics.flush()
        try:
            self.mirror.push()
        except OSError as e:  # storage hiccup: the next checkpoint retries; training goes on
            log.warning("could not mirror logs to %s: %s", self.mirror.remote, e)

    def train(self, total_steps: int) -> None:
        """Steps until `total_steps`, saving every `checkpoint.every` steps and at the end.

        SIGINT/SIGTERM (`azr_jax.stopping`): between steps, the loop saves and returns at
        once. During a step, what is abandoned is that step only: on one host a helper thread
        saves the last finished step right away (its params, optimizer state and a copy of the
        buffers taken when the step began) and ends the process, even while the main thread is
        inside a long generation; on several hosts every host abandons the step at the next
        sampler call (they must agree, so they check together) and saves. Only the update
        itself (it donates the old state) runs to its end once started. A second signal aborts
        at once.
        """
        progress = metrics_lib.StepProgress(
            total_steps, self.step, enabled=self.primary and self.c.log.progress
        )
        self.selfplay.policy = _StopCheckingPolicy(self.policy, self._check_stop)
        try:
            with stopping.StopSignals(self._on_stop_request) as self._stops, progress:
                while self.step < total_steps and not self._should_stop():
                    if not self._begin_step():
                        break
                    try:
                        m = self.train_step()
                    except StepAbandoned:
                        self._abandon_in_main()
                        break
                    progress.update(self.step, m)
                    if self.step % self.c.checkpoint.every == 0 or self.step == total_steps:
                        self.save()
                if self.step < total_steps or self._stops.requested.is_set():
                    self.save(force=True)
                    log.info("stopped at step %d: re-run the same command to continue", self.step)
                self.ckpt.wait()
        finally:
            self.selfplay.policy = self.policy
            self._stops = None
        self.write_host_summary()

    def _stop_requested(self) -> bool:
        return self._stops is not None and self._stops.requested.is_set()

    def _should_stop(self) -> bool:
        """Stop when any host was signalled: hosts must leave the loop at the same step, or the
        others would wait forever in the next collective."""
        return any(distributed.allgather_json(self._stop_requested()))

    def _check_stop(self) -> None:
        """A safe point inside a step (before and after each sampler call)."""
        if self._should_stop():
            raise StepAbandoned

    def _begin_step(self) -> bool:
        """Mark the step abandonable, with what saving the previous step needs; False when a
        signal came in since the loop's check (one host; several agree in `_should_stop`)."""
        with self._phase:
            if self._stop_requested() and jax.process_count() == 1:
                return False
            self._snapshot = (self.step, self._state_blob())
            self._interruptible = True
        return True

    def _enter_critical(self) -> None:
        with self._phase:
            self._interruptible = False

    def _abandon_in_main(self) -> None:
        """Every host reached a safe point after a signal: drop the step's partial work."""
        with self._phase:  # blocks for good if the helper thread is already ending the run
            self._abandoned = True
            self._interruptible = False
        step, blob = self._snapshot
        self.selfplay.buffers.load_state_dict(blob["buffers"])
        log.warning("step %d abandoned", step + 1)

    def _on_stop_request(self, signum: int) -> None:
        """Helper thread, first signal on a one-host run: if the main thread is inside the
        abandonable part of a step, save the previous step now and end the process."""
        if jax.process_count() > 1:
            return  # every host must take part in a save: they stop together at a safe point
        with self._phase:
            if not self._interruptible or self._abandoned:
                return  # between steps, or in the update: the main thread stops next
            self._abandoned = True
            step, blob = self._snapshot
            try:
                log.warning("step %d abandoned; saving step %d", step + 1, step)
                self.save(force=True, state=blob)
                self.ckpt.wait()
                self.write_host_summary(buffers=blob["buffers"])
                self._close_writers()
                self._release_lock()
                log.info("stopped at step %d: re-run the same command to continue", step)
                code = 0
            except BaseException:
                log.exception("could not save step %d", step)
                code = 1
            stopping.flush_logs()
            for d in getattr(self.farm, "scratch_dirs", lambda: [])():
                shutil.rmtree(d, ignore_errors=True)  # its workers die with this process
            os._exit(code)

    def write_host_summary(self, buffers: dict[str, Any] | None = None) -> dict[str, Any]:
        """hosts/<process>.json: what this host ends with, to check hosts agree."""
        import hashlib

        state = buffers if buffers is not None else self.selfplay.buffers.state_dict()
        buffers_json = json.dumps(state, sort_keys=True).encode()
        info: dict[str, Any] = {
            "process_index": jax.process_index(),
            "process_count": jax.process_count(),
            "step": self.step,
            "buffer_sizes": {k: len(v["entries"]) for k, v in state.items()},
            "buffers_sha256": hashlib.sha256(buffers_json).hexdigest(),
            "sandbox_jobs_run": self.executor.jobs_run,
        }
        if self.c.log.params_digest:
            h = hashlib.sha256()
            for leaf in jax.tree.leaves(self.state.params):
                h.update(np.ascontiguousarray(distributed.to_host(leaf)).tobytes())
            info["params_sha256"] = h.hexdigest()
        path = epath.Path(rundir.join(self.workdir, "hosts", f"{jax.process_index()}.json"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=2, sort_keys=True))
        return info

    def _close_writers(self) -> None:
        for w in (self.metrics, self.samples, self.evals):
            if w is not None:
                w.close()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def close(self) -> None:
        try:
            self.ckpt.close()
            self._close_writers()
            if self._own_farm:
                self.farm.close()
        finally:
            self._release_lock()


class StepAbandoned(Exception):
    """Raised at a safe point of a step after a stop signal: the step's work is dropped."""


class _StopCheckingPolicy:
    """The run's policy with a stop check before and after each generation (safe points)."""

    def __init__(self, policy: Policy, check: Any):
        self._policy, self._check = policy, check

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        out = self._policy.generate(*args, **kwargs)
        self._check()
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


def _sample_rows(out: StepOutput, per_group: int = 1) -> list[dict[str, Any]]:
    rows, seen = [], {}
    for s in out.samples:
        if seen.get(s.group.name, 0) >= per_group:
            continue
        seen[s.group.name] = seen.get(s.group.name, 0) + 1
        rows.append(
            {"group": s.group.name, "reward": s.reward, "status": s.status, "text": s.rollout.text[:4000]}
        )
    return rows

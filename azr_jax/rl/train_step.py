"""The jitted policy-gradient update: token log-probs, TRR++ surrogate, AdamW, on sharded params.

One call = one optimizer step over the whole batch (the official AZR setting: all six
task-role groups, one mini-batch, one epoch). The batch is split into micro-batches inside jit
(`lax.scan`), gradients are summed in fp32, and the loss is ``sum_r w_r sum_t loss_rt`` with
per-row weights computed on the host over the *whole step* (`rl.losses.row_weights`: the
aggregation mode), so accumulation gives exactly the full-batch gradient. A step's rows may also
come as several batches of different widths (`update_many`: AZR's proposer prompts are several
times longer than its solver prompts, and one common width would pad every solver row to the
longest proposer prompt); their gradients are summed before the one optimizer step.

Per-token arrays are aligned with `tokens`: entry t belongs to token t given tokens < t
(entry 0 never counts). The vocabulary projection is computed in sequence chunks under remat,
so [batch, seq, vocab] logits are never materialised (Qwen's 152k vocabulary makes that the
first out-of-memory otherwise).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.rl.losses import LossConfig, policy_loss_parts, row_weights, token_entropy, token_logprobs
from sharding.params import put, tree_shardings
from sharding.rules import ShardingRules


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with global-norm clipping (defaults: the official AZR run, azr_method.md §5.3)."""

    learning_rate: float = 1e-6
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01  # paper-branch veRL default; master sets 0.0
    clip_norm: float = 1.0
    warmup_steps: int = 0  # linear warmup, then constant (official: constant)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """Shape knobs of the update (not of the method)."""

    micro_batch_size: int = 8  # rows per gradient-accumulation micro-batch
    logit_chunk: int = 256  # sequence positions per vocabulary-projection chunk


class TrainBatch(NamedTuple):
    """A padded batch of prompt+completion sequences ([B, L] each)."""

    tokens: jax.Array  # int32 ids: left-padded prompt, then completion, then right padding
    attn_mask: jax.Array  # 1 for real tokens (prompt and completion)
    loss_mask: jax.Array  # 1 for completion tokens that are trained on
    advantages: jax.Array  # float32 per-token advantages (0 outside loss_mask)
    old_logprobs: jax.Array  # float32 logprobs of the same tokens before the update
    # optional float32 [B] loss weight per row (rl.losses.row_weights over the whole step, e.g.
    # with the task-role units of micro-token-mean); None: computed from the loss config.
    loss_weights: Any = None


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array


def _zeros_f32(tree: Any) -> Any:
    return jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), tree)


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    if cfg.warmup_steps > 0:
        lr: Any = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
    else:
        lr = cfg.learning_rate
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay),
    )


def sequence_logprobs(
    cfg: ModelConfig,
    params: Any,
    tokens: jax.Array,
    attn_mask: jax.Array,
    *,
    rules: ShardingRules | None = None,
    chunk: int = 256,
    with_entropy: bool = True,
    start: int = 1,
) -> tuple[jax.Array, jax.Array | None]:
    """Log-prob (and entropy) of tokens[:, start:] given their prefixes: [B, L] each, zero before
    `start`. Completions start at a fixed column of the update batch, so the vocabulary
    projection is only computed there, not over the (usually longer) prompts."""
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start must be in [1, {tokens.shape[1]}), got {start}")
    positions = api.positions_from_mask(attn_mask)
    hidden, _ = api.apply(cfg, params, tokens, positions, attn_mask, rules=rules, return_hidden=True)
    B, L, D = hidden.shape
    h = hidden[:, start - 1 : -1]
    targets = tokens[:, start:]
    n = L - start
    c = max(1, min(chunk, n))
    pad = (-n) % c
    if pad:
        h = jnp.pad(h, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
    nc = (n + pad) // c
    h = h.reshape(B, nc, c, D).swapaxes(0, 1)
    targets = targets.reshape(B, nc, c).swapaxes(0, 1)

    @jax.checkpoint
    def one_chunk(hc: jax.Array, tc: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits = api.lm_logits(cfg, params, hc, rules=rules)
        ent = token_entropy(logits) if with_entropy else jnp.zeros(tc.shape, jnp.float32)
        return token_logprobs(logits, tc), ent

    _, (lp, ent) = jax.lax.scan(lambda carry, xs: (carry, one_chunk(*xs)), None, (h, targets))
    lp = lp.swapaxes(0, 1).reshape(B, nc * c)[:, :n]
    ent = ent.swapaxes(0, 1).reshape(B, nc * c)[:, :n]
    zero = jnp.zeros((B, start), jnp.float32)
    lp = jnp.concatenate([zero, lp], axis=1)
    ent = jnp.concatenate([zero, ent], axis=1)
    return lp, (ent if with_entropy else None)


def step_weights(batches: Sequence[TrainBatch], cfg: LossConfig) -> list[np.ndarray]:
    """Each batch's per-row loss weights: the ones it carries, or (when none does) the weights
    of ``cfg.aggregation`` over all rows of the step in order."""
    given = [b.loss_weights is not None for b in batches]
    if all(given):
        return [np.asarray(b.loss_weights, np.float32) for b in batches]
    if any(given):
        raise ValueError("either every batch of a step carries loss_weights or none does")
    masks = [np.asarray(b.loss_mask) for b in batches]
    width = max(m.shape[1] for m in masks)
    rows = np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in masks])
    w = row_weights(rows, cfg)
    return np.split(w, np.cumsum([m.shape[0] for m in masks])[:-1])


class Trainer:
    """Builds the jitted update and logprob functions for one model/mesh/config.

    Parameters are jit *arguments* (donated), so an update never triggers a recompile and the
    sampler can run on the very arrays the update returns.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        *,
        rules: ShardingRules | None = None,
        optim: OptimConfig = OptimConfig(),
        loss: LossConfig = LossConfig(),
        step_cfg: StepConfig = StepConfig(),
    ):
        self.model_cfg = model_cfg
        self.rules = rules or ShardingRules(None)
        self.optim_cfg = optim
        self.loss_cfg = loss
        self.step_cfg = step_cfg
        self.tx = make_optimizer(optim)
        self._grads = None  # built by init_state, which knows the state's shardings
        self.state_shardings: TrainState | None = None
        self._logprobs = jax.jit(self._logprobs_impl, static_argnames=("start",))

    # ------------------------------------------------------------------ state
    def init_state(self, params: Any) -> TrainState:
        """Optimizer state born with the params' shardings (Adam moments mirror the params).

        Without explicit out_shardings the moments, being zeros that do not depend on the
        params' values, would all land on one device.
        """
        if self.rules.mesh is None:
            state = TrainState(params, jax.jit(self.tx.init)(params), jnp.zeros((), jnp.int32))
            self._build(None)
            self.state_shardings = None
            return state
        state_sh = self.shardings(params)
        opt_state = jax.jit(self.tx.init, out_shardings=state_sh.opt_state)(params)
        self.state_shardings = state_sh  # what a checkpoint restore places arrays by
        step = put(np.zeros((), np.int32), state_sh.step)
        self._build(state_sh)
        return TrainState(put(params, state_sh.params), opt_state, step)

    def shardings(self, params: Any) -> TrainState:
        """Where each leaf of the train state lives: params by the sharding rules, the Adam
        moments like the params, counters replicated. `params` may be abstract."""
        abstract = jax.eval_shape(self.tx.init, params)
        param_sh = tree_shardings(params, api.logical_axes(self.model_cfg), self.rules)
        replicated = self.rules.replicated()
        p_struct = jax.tree.structure(params)
        opt_sh = jax.tree.map(
            lambda sub: param_sh if jax.tree.structure(sub) == p_struct else replicated,
            abstract,
            is_leaf=lambda sub: jax.tree.structure(sub) == p_struct,
        )
        return TrainState(param_sh, opt_sh, replicated)

    def lower(self, params: Any, batch: TrainBatch, start: int) -> dict[str, jax.stages.Lowered]:
        """The programs of one update (and of the old-logprob pass) lowered for abstract inputs:
        `params` and `batch` are ShapeDtypeStructs, the batch carrying its sharding. What
        `azr-jax compile` compiles for devices that need not exist (`azr_jax.aot`)."""
        state_sh = self.shardings(params)
        self._build(state_sh)

        def struct(tree: Any, shardings: Any, dtype: Any = None) -> Any:
            return jax.tree.map(
                lambda s, sh: jax.ShapeDtypeStruct(s.shape, dtype or s.dtype, sharding=sh), tree, shardings
            )

        params = struct(params, state_sh.params)
        state = TrainState(
            params,
            struct(jax.eval_shape(self.tx.init, params), state_sh.opt_state),
            jax.ShapeDtypeStruct((), jnp.int32, sharding=state_sh.step),
        )
        grads = struct(params, state_sh.params, jnp.float32)
        # The gradient program's arguments as `update_many` passes them (keep the two in step):
        # the step's per-row loss weights are a host array, every chip a copy.
        weights = jax.ShapeDtypeStruct(batch.tokens.shape[:1], jnp.float32, sharding=state_sh.step)
        # ... and the step's running sums it adds to (donated; `zero_sums` makes the zeros)
        mb = self._micro(batch.tokens.shape[0])
        micro = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct((mb,) + s.shape[1:], s.dtype),
            batch._replace(loss_weights=jax.ShapeDtypeStruct((mb,), jnp.float32)),
        )
        _, parts = jax.eval_shape(functools.partial(self._loss, start=start), params, micro)
        parts = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=state_sh.step), parts)
        grads_args = (params, batch._replace(loss_weights=None), weights, start, (grads, parts))
        return {
            "update/grads": self._grads.lower(*grads_args),
            "update/apply": self._apply.lower(state, grads, parts),
            "old_logprobs": self._logprobs.lower(params, batch.tokens, batch.attn_mask, start=start),
        }

    def _build(self, state_sh: TrainState | None) -> None:
        """The jitted parts of an update: gradients of one batch added to the step's sums (one
        program per batch shape), the zero sums a step starts from, and the optimizer step."""
        if state_sh is None:
            self._grads = jax.jit(self._grads_impl, static_argnums=(3,), donate_argnums=(4,))
            self._zero_grads = jax.jit(_zeros_f32)
            self._apply = jax.jit(self._apply_impl, donate_argnums=(0,))
            return
        p_sh = state_sh.params
        self._grads = jax.jit(
            self._grads_impl,
            in_shardings=(p_sh, None, None, (p_sh, None)),
            out_shardings=(p_sh, None),
            static_argnums=(3,),
            donate_argnums=(4,),
        )
        self._zero_grads = jax.jit(_zeros_f32, in_shardings=(p_sh,), out_shardings=p_sh)
        self._apply = jax.jit(
            self._apply_impl,
            in_shardings=(state_sh, p_sh, None),
            out_shardings=(state_sh, None),
            donate_argnums=(0,),
        )

    # ------------------------------------------------------------------ logprobs
    def _logprobs_impl(
        self, params: Any, tokens: jax.Array, attn_mask: jax.Array, start: int = 1
    ) -> jax.Array:
        mb = self._micro(tokens.shape[0])
        toks = self.rules.constrain(tokens.reshape(-1, mb, tokens.shape[1]), (None, "batch", "seq"))
        mask = self.rules.constrain(attn_mask.reshape(-1, mb, attn_mask.shape[1]), (None, "batch", "seq"))

        def body(_, xs):
            lp, _ = sequence_logprobs(
                self.model_cfg,
                params,
                xs[0],
                xs[1],
                rules=self.rules,
                chunk=self.step_cfg.logit_chunk,
                with_entropy=False,
                start=start,
            )
            return None, lp

        _, lp = jax.lax.scan(body, None, (toks, mask))
        return lp.reshape(tokens.shape)

    def logprobs(self, params: Any, tokens: Any, attn_mask: Any, start: int = 1) -> jax.Array:
        """Per-token logprobs under `params` (the official "recompute old logprobs" pass);
        only tokens from column `start` on (zeros before)."""
        return self._logprobs(params, tokens, attn_mask, start=start)

    # ------------------------------------------------------------------ update
    def _micro(self, batch: int) -> int:
        mb = min(self.step_cfg.micro_batch_size, batch)
        if batch % mb:
            raise ValueError(f"batch size {batch} is not a multiple of micro_batch_size {mb}")
        return mb

    def _grads_impl(
        self, params: Any, batch: TrainBatch, weights: jax.Array, start: int, acc: tuple[Any, Any]
    ) -> tuple[Any, Any]:
        """`acc` plus the fp32 gradient of this batch's share of the step loss (``sum_r
        weights_r sum_t loss_rt``), summed over micro-batches, and the batch's loss parts. `acc`
        (the sums so far, zeros before a step's first batch) is donated: the micro-batch loop
        sums into that buffer, so however many batches a step has, one fp32 gradient copy
        accumulates them."""
        B, L = batch.tokens.shape
        mb = self._micro(B)
        batch = batch._replace(loss_weights=weights)
        micro = jax.tree.map(
            lambda x: self.rules.constrain(
                x.reshape((B // mb, mb) + x.shape[1:]), (None, "batch", "seq")[: x.ndim + 1]
            ),
            batch,
        )
        grad_fn = jax.grad(functools.partial(self._loss, start=start), has_aux=True)

        def body(acc, b):
            grads, parts = grad_fn(params, b)
            acc_grads, acc_parts = acc
            acc_grads = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), acc_grads, grads)
            return (acc_grads, jax.tree.map(jnp.add, acc_parts, parts)), None

        (grads, parts), _ = jax.lax.scan(body, acc, micro)
        return grads, parts

    def _loss(self, params: Any, b: TrainBatch, start: int) -> tuple[Any, Any]:
        """(this micro-batch's weighted loss sum, its loss parts)."""
        logp, ent = sequence_logprobs(
            self.model_cfg,
            params,
            b.tokens,
            b.attn_mask,
            rules=self.rules,
            chunk=self.step_cfg.logit_chunk,
            with_entropy=self.loss_cfg.entropy_coef != 0.0,
            start=start,
        )
        parts = policy_loss_parts(
            logp,
            b.old_logprobs,
            b.advantages,
            b.loss_mask,
            self.loss_cfg,
            entropy=ent,
            weights=b.loss_weights,
        )
        return parts.loss_sum, parts

    def zero_sums(self, params: Any, batch: TrainBatch, start: int = 1) -> tuple[Any, Any]:
        """The accumulator `_grads` starts a step from: fp32 zeros shaped (and sharded) like
        the params, and zero loss parts."""
        mb = self._micro(batch.tokens.shape[0])
        micro = jax.tree.map(lambda x: x[:mb], batch._replace(loss_weights=np.zeros(mb, np.float32)))
        _, parts = jax.eval_shape(functools.partial(self._loss, start=start), params, micro)
        return self._zero_grads(params), jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), parts)

    def _apply_impl(self, state: TrainState, grads: Any, parts: Any) -> tuple[TrainState, dict]:
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = jnp.maximum(parts.token_count, 1.0)
        metrics = {k: v / n for k, v in parts.metric_sums.items()}
        metrics.update(
            loss=parts.loss_sum,
            grad_norm=grad_norm,
            update_norm=optax.tree.norm(updates),
            num_tokens=parts.token_count,
        )
        return TrainState(params, opt_state, state.step + 1), metrics

    def update(
        self, state: TrainState, batch: TrainBatch, start: int = 1
    ) -> tuple[TrainState, dict[str, float]]:
        """One optimizer step; `state` is donated (do not reuse it afterwards). Tokens before
        column `start` (the prompts) carry no loss, so their logits are never computed."""
        return self.update_many(state, [(batch, start)])

    def update_many(
        self, state: TrainState, batches: Sequence[tuple[TrainBatch, int]]
    ) -> tuple[TrainState, dict[str, float]]:
        """One optimizer step over the rows of several batches (each with its own width and
        completion column `start`): exactly the step `update` takes on all rows at once, since
        the per-row loss weights are computed over the whole step (`step_weights`)."""
        if self._grads is None:
            raise RuntimeError("call Trainer.init_state(params) (or restore_state) first")
        if not batches:
            raise ValueError("update_many needs at least one batch")
        # host values: every process computes the same ones from its copy of the batch
        weights = step_weights([b for b, _ in batches], self.loss_cfg)
        acc = None
        for (batch, start), w in zip(batches, weights):
            if acc is None:  # the first batch adds to zeros: one program per batch shape
                acc = self.zero_sums(state.params, batch, start)
            acc = self._grads(state.params, batch._replace(loss_weights=None), w, start, acc)
        new_state, metrics = self._apply(state, acc[0], acc[1])
        return new_state, {k: float(v) for k, v in jax.device_get(metrics).items()}

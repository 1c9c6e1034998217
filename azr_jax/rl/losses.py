"""Policy-gradient loss pieces in fp32: token log-probs, entropy, clipped surrogate, optional KL.

Positions: ``logits[:, t]`` must be the distribution that produced ``targets[:, t]`` (the caller
shifts by one); ``mask`` marks response tokens that count.

For exact gradient accumulation the loss is returned as an *unreduced sum and a denominator*
(:class:`LossParts`); summing parts over micro-batches and dividing at the end gives exactly the
full-batch loss. Aggregation modes:

``micro-token-mean`` (official)
    the token mean within each *aggregation unit* (``micro_batch_rows`` = 16 rows, the official
    ``ppo_micro_batch_size_per_gpu``; the caller cuts units out of one task-role group), then
    the mean over units: veRL's dp_actor loss, ``sum_m policy_loss_m / #micro-batches``. With
    AZR's 6 groups of 64 rows, every group weighs 1/6 whatever its response lengths.
``token-mean``
    sum over all valid tokens of the step / number of valid tokens (long answers weigh more).
``seq-mean-token-mean``
    mean over sequences (with >= 1 valid token) of each sequence's token mean.

Every mode is a weight per row (:func:`row_weights`): ``loss = sum_r w_r sum_t loss_rt``, which
is how the trainer applies it, so memory micro-batches and shape groups never change the loss.

Per-token loss: ``max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))`` (optionally dual-clipped at
``-A c`` for negative A), minus ``entropy_coef * entropy``, plus ``kl_coef * k3`` where
``k3 = exp(ref - logp) - (ref - logp) - 1`` ("low-var KL"). Defaults follow the paper branch:
eps 0.2/0.2, entropy 0.001, no KL, no dual clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Aggregation = Literal["micro-token-mean", "token-mean", "seq-mean-token-mean"]
AGGREGATIONS: tuple[str, ...] = ("micro-token-mean", "token-mean", "seq-mean-token-mean")


@dataclass(frozen=True)
class LossConfig:
    """Loss settings (defaults = official paper-branch values)."""

    clip_eps_low: float = 0.2  # ratio clipped below at 1 - eps_low
    clip_eps_high: float = 0.2  # ratio clipped above at 1 + eps_high (master branch: 0.28)
    dual_clip_c: float | None = None  # dual-clip bound c > 1 for A < 0; None = off
    log_ratio_clamp: float = 20.0  # |logp - old_logp| clamp before exp, for overflow safety
    entropy_coef: float = 0.001  # entropy bonus (subtracted from the loss)
    kl_coef: float = 0.0  # k3 KL to a reference policy; 0 = off (official)
    kl_clamp: float = 10.0  # clamp of the per-token k3 value (as in veRL)
    aggregation: Aggregation = "micro-token-mean"
    micro_batch_rows: int = 16  # rows per aggregation unit of micro-token-mean (not a memory knob)

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.micro_batch_rows < 1:
            raise ValueError(f"micro_batch_rows must be >= 1, got {self.micro_batch_rows}")
        if not (0 <= self.clip_eps_low < 1 and self.clip_eps_high >= 0):
            raise ValueError("need 0 <= clip_eps_low < 1 and clip_eps_high >= 0")
        if self.dual_clip_c is not None and self.dual_clip_c <= 1:
            raise ValueError(f"dual_clip_c must be > 1, got {self.dual_clip_c}")
        if self.log_ratio_clamp <= 0 or self.kl_clamp <= 0:
            raise ValueError("clamps must be positive")


def token_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``log softmax(logits)[target]`` per position, ``[B, T]``, computed in fp32."""
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B, T, V] and targets [B, T], got {logits.shape}, {targets.shape}")
    x = logits.astype(jnp.float32)
    picked = jnp.take_along_axis(x, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(x, axis=-1)


def token_entropy(logits: jax.Array) -> jax.Array:
    """Entropy of the softmax at each position, ``[B, T]``, in fp32 (``lse - E_p[logits]``)."""
    x = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    p = jnp.exp(x - lse)
    return lse[..., 0] - jnp.sum(p * x, axis=-1)


def low_var_kl(logp: jax.Array, ref_logp: jax.Array, clamp: float = 10.0) -> jax.Array:
    """k3 estimator of KL(pi || ref) per token: ``exp(d) - d - 1`` with ``d = ref - logp``."""
    d = ref_logp - logp
    return jnp.clip(jnp.exp(d) - d - 1.0, -clamp, clamp)


def clipped_surrogate(
    logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, cfg: LossConfig = LossConfig()
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-token PPO loss, whether the clip was active, and the ratio (all ``[B, T]``)."""
    log_ratio = jnp.clip(logp - jax.lax.stop_gradient(old_logp), -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
    ratio = jnp.exp(log_ratio)
    adv = jax.lax.stop_gradient(advantages.astype(jnp.float32))
    unclipped = -adv * ratio
    clipped = -adv * jnp.clip(ratio, 1.0 - cfg.clip_eps_low, 1.0 + cfg.clip_eps_high)
    loss = jnp.maximum(unclipped, clipped)
    clip_active = clipped > unclipped
    if cfg.dual_clip_c is not None:
        bound = -adv * cfg.dual_clip_c
        loss = jnp.where(adv < 0, jnp.minimum(loss, bound), loss)
    return loss, clip_active, ratio


class LossParts(NamedTuple):
    """Unreduced pieces of the loss; add parts of micro-batches, then :func:`finalize`."""

    loss_sum: jax.Array  # scalar: sum of the aggregated per-unit losses
    loss_denom: jax.Array  # scalar: tokens (token-mean) or sequences (seq-mean-token-mean)
    metric_sums: dict  # name -> scalar sum over valid tokens
    token_count: jax.Array  # scalar: valid tokens (denominator of every metric)


def consecutive_units(num_rows: int, rows_per_unit: int) -> np.ndarray:
    """Unit ids that cut rows in order into runs of ``rows_per_unit`` (veRL's micro-batch split)."""
    return np.arange(num_rows) // rows_per_unit


def row_weights(loss_mask, cfg: LossConfig, units=None) -> np.ndarray:
    """Per-row weights ``w`` with ``loss = sum_r w_r sum_t loss_rt`` for ``cfg.aggregation``.

    ``units``: aggregation unit of each row for micro-token-mean (-1 = none, e.g. padding
    rows); default: consecutive runs of ``cfg.micro_batch_rows`` rows. Rows and units without
    a trained token get weight 0; an empty step gets all zeros.
    """
    tokens = np.asarray(loss_mask).astype(np.float64).sum(axis=1)
    w = np.zeros(tokens.shape, np.float64)
    if cfg.aggregation == "token-mean":
        w[:] = 1.0 / tokens.sum() if tokens.sum() > 0 else 0.0
    elif cfg.aggregation == "seq-mean-token-mean":
        has = tokens > 0
        w[has] = 1.0 / (has.sum() * tokens[has])
    else:
        units = consecutive_units(len(tokens), cfg.micro_batch_rows) if units is None else np.asarray(units)
        if units.shape != tokens.shape:
            raise ValueError(f"units {units.shape} do not match rows {tokens.shape}")
        valid = units >= 0
        ids, inverse = np.unique(units[valid], return_inverse=True)
        unit_tokens = np.bincount(inverse, weights=tokens[valid], minlength=len(ids))
        counted = unit_tokens > 0
        if counted.any():
            per_unit = np.where(counted, 1.0 / (counted.sum() * np.maximum(unit_tokens, 1e-30)), 0.0)
            w[valid] = per_unit[inverse]
            w[tokens == 0] = 0.0
    return w.astype(np.float32)


def _aggregate(values: jax.Array, mask: jax.Array, cfg: LossConfig) -> tuple[jax.Array, jax.Array]:
    if cfg.aggregation == "token-mean":
        return jnp.sum(values * mask), jnp.sum(mask)
    if cfg.aggregation == "micro-token-mean":  # consecutive units within this batch
        B = mask.shape[0]
        units = jnp.arange(B) // cfg.micro_batch_rows
        n = -(-B // cfg.micro_batch_rows)
        unit_tokens = jax.ops.segment_sum(mask.sum(axis=1), units, num_segments=n)
        unit_loss = jax.ops.segment_sum((values * mask).sum(axis=1), units, num_segments=n)
        has = unit_tokens > 0
        per_unit = jnp.where(has, unit_loss / jnp.maximum(unit_tokens, 1.0), 0.0)
        return per_unit.sum(), has.sum().astype(jnp.float32)
    lengths = mask.sum(axis=1)
    has = lengths > 0
    per_seq = jnp.where(has, (values * mask).sum(axis=1) / jnp.maximum(lengths, 1.0), 0.0)
    return per_seq.sum(), has.sum().astype(jnp.float32)


def policy_loss_parts(
    logp: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    cfg: LossConfig = LossConfig(),
    entropy: jax.Array | None = None,
    ref_logp: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> LossParts:
    """Loss parts from per-token log-probs (and entropy / reference log-probs when used).

    ``weights`` ([B], from :func:`row_weights` over the whole step) replace the aggregation:
    the parts are then ``sum_r w_r sum_t loss_rt`` over denominator 1."""
    if not (logp.shape == old_logp.shape == advantages.shape == mask.shape) or logp.ndim != 2:
        raise ValueError(
            f"logp, old_logp, advantages, mask must share one [B, T] shape; got {logp.shape}, "
            f"{old_logp.shape}, {advantages.shape}, {mask.shape}"
        )
    if cfg.entropy_coef != 0.0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs per-token entropy")
    if cfg.kl_coef != 0.0 and ref_logp is None:
        raise ValueError("kl_coef != 0 needs reference log-probs")
    m = mask.astype(jnp.float32)
    logp = logp.astype(jnp.float32)
    pg, clip_active, ratio = clipped_surrogate(logp, old_logp.astype(jnp.float32), advantages, cfg)
    per_token = pg
    metrics = {
        "pg_loss": jnp.sum(pg * m),
        "clipfrac": jnp.sum(clip_active * m),
        "ratio": jnp.sum(ratio * m),
        "approx_kl_old": jnp.sum((jax.lax.stop_gradient(old_logp) - logp) * m),
    }
    if entropy is not None:
        ent = entropy.astype(jnp.float32)
        per_token = per_token - cfg.entropy_coef * ent
        metrics["entropy"] = jnp.sum(ent * m)
    if ref_logp is not None:
        kl = low_var_kl(logp, jax.lax.stop_gradient(ref_logp.astype(jnp.float32)), cfg.kl_clamp)
        per_token = per_token + cfg.kl_coef * kl
        metrics["kl_ref"] = jnp.sum(kl * m)
    if weights is None:
        loss_sum, denom = _aggregate(per_token, m, cfg)
    else:
        loss_sum = jnp.sum((per_token * m).sum(axis=1) * weights.astype(jnp.float32))
        denom = jnp.ones((), jnp.float32)
    metrics = {k: jax.lax.stop_gradient(v) for k, v in metrics.items()}
    return LossParts(loss_sum, denom, metrics, jnp.sum(m))


def policy_loss_parts_from_logits(
    logits: jax.Array,
    targets: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    cfg: LossConfig = LossConfig(),
    ref_logp: jax.Array | None = None,
) -> LossParts:
    """Loss parts of one (micro-)batch straight from logits ``[B, T, V]``."""
    logp = token_logprobs(logits, targets)
    entropy = token_entropy(logits)
    return policy_loss_parts(logp, old_logp, advantages, mask, cfg, entropy, ref_logp)


def add_parts(a: LossParts, b: LossParts) -> LossParts:
    """Sum two micro-batches' parts (same metric keys required)."""
    if set(a.metric_sums) != set(b.metric_sums):
        raise ValueError(f"metric keys differ: {sorted(a.metric_sums)} vs {sorted(b.metric_sums)}")
    return jax.tree_util.tree_map(jnp.add, a, b)


def finalize(parts: LossParts) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar loss and token-mean metrics; an empty batch gives loss 0 rather than NaN."""
    loss = jnp.where(parts.loss_denom > 0, parts.loss_sum / jnp.maximum(parts.loss_denom, 1e-30), 0.0)
    n = jnp.maximum(parts.token_count, 1.0)
    metrics = {k: v / n for k, v in parts.metric_sums.items()}
    metrics["num_tokens"] = parts.token_count
    metrics["loss"] = jax.lax.stop_gradient(loss)
    return loss, metrics


def policy_loss(
    logits: jax.Array,
    targets: jax.Array,
    old_logp: jax.Array,
    advantages: jax.Array,
    mask: jax.Array,
    cfg: LossConfig = LossConfig(),
    ref_logp: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Single-batch convenience: ``finalize(policy_loss_parts_from_logits(...))``."""
    return finalize(policy_loss_parts_from_logits(logits, targets, old_logp, advantages, mask, cfg, ref_logp))

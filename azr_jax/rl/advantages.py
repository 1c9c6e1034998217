"""Task-Relative REINFORCE++ (TRR++) advantages, one normalisation per (task, role) group.

Inputs are per-sequence scalar rewards ``[B]``, per-sequence group ids ``[B]`` (ints in
``[0, num_groups)``; anything else marks a padding row that gets zero advantage and does not
enter any statistic) and the response mask ``[B, T]``. The output is a masked ``[B, T]`` array of
token advantages. All functions are pure ``jnp`` and jittable with ``num_groups`` (and the
method/eps settings) static; groups are reduced with ``segment_sum``.

Two variants (switch ``method``):

``token_whiten`` (official code, default)
    The scalar reward sits on the last valid token; the return-to-go with discount ``gamma``
    (1.0 officially) then gives every valid token the reward R. Returns are whitened over all
    valid tokens *of the same group*: token-weighted mean, *unbiased* token variance
    (Bessel correction on the token count), ``A = (G - mu) / sqrt(var + eps)`` with eps 1e-8,
    then masked. Long responses weigh more in mu and var.
``sample_zscore`` (paper Eq. 8)
    Per-sample statistics within the group: ``A = (R - mean) / (std + eps)``, broadcast to the
    sample's valid tokens. We use the *population* std (``ddof=0``) by default: Eq. 8 normalises
    by the spread of the group's own rewards (a descriptive statistic of the batch, not an
    estimate of a wider population), and it stays defined for single-sample groups. ``ddof=1``
    is available.

Degenerate groups: one valid sample/token, or all rewards equal, give advantages of ~0 (never
NaN); empty groups are simply unused. A row counts as a sample only if it has a valid token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from azr_jax.azr.tasks import NUM_GROUPS

AdvantageMethod = Literal["token_whiten", "sample_zscore"]
ADVANTAGE_METHODS: tuple[str, ...] = ("token_whiten", "sample_zscore")


@dataclass(frozen=True)
class AdvantageConfig:
    """TRR++ settings (defaults = official code)."""

    method: AdvantageMethod = "token_whiten"  # "sample_zscore" = paper Eq. 8
    num_groups: int = NUM_GROUPS  # {ded, abd, ind} x {propose, solve}
    gamma: float = 1.0  # discount of the return-to-go (token_whiten only)
    whiten_eps: float = 1e-8  # inside the sqrt of the token whitening (veRL masked_whiten)
    zscore_eps: float = 1e-6  # added to the std in the per-sample z-score
    zscore_ddof: int = 0  # 0 = population std (see module docstring), 1 = unbiased

    def __post_init__(self) -> None:
        if self.method not in ADVANTAGE_METHODS:
            raise ValueError(f"method must be one of {ADVANTAGE_METHODS}, got {self.method!r}")
        if self.num_groups < 1:
            raise ValueError("num_groups must be >= 1")
        if self.zscore_ddof not in (0, 1):
            raise ValueError("zscore_ddof must be 0 or 1")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError("gamma must be in [0, 1]")


def _check_shapes(rewards: jax.Array, group_ids: jax.Array, mask: jax.Array) -> None:
    if rewards.ndim != 1 or group_ids.ndim != 1 or mask.ndim != 2:
        raise ValueError(
            f"expected rewards [B], group_ids [B], mask [B, T]; got {rewards.shape}, "
            f"{group_ids.shape}, {mask.shape}"
        )
    if not (rewards.shape[0] == group_ids.shape[0] == mask.shape[0]):
        raise ValueError(f"batch sizes differ: {rewards.shape[0]}, {group_ids.shape[0]}, {mask.shape[0]}")
    if not jnp.issubdtype(group_ids.dtype, jnp.integer):
        raise ValueError(f"group_ids must be integers, got {group_ids.dtype}")


def _row_groups(group_ids: jax.Array, num_groups: int) -> tuple[jax.Array, jax.Array]:
    """Clipped group index per row and whether the row belongs to a real group."""
    valid = (group_ids >= 0) & (group_ids < num_groups)
    return jnp.where(valid, group_ids, 0).astype(jnp.int32), valid


def outcome_returns(rewards: jax.Array, mask: jax.Array, gamma: float = 1.0) -> jax.Array:
    """Return-to-go of a reward placed on each row's last valid token, ``[B, T]``.

    Same recursion as veRL: going backwards, ``g_t = r_t + gamma * g_{t+1}``, reset to 0 after
    every masked-out position. With gamma = 1 every valid token gets R.
    """
    m = mask.astype(jnp.float32)
    T = m.shape[1]
    pos = jnp.arange(T)
    last = jnp.max(jnp.where(m > 0, pos[None, :], -1), axis=1)  # -1 if no valid token
    token_r = jnp.where(pos[None, :] == last[:, None], rewards.astype(jnp.float32)[:, None], 0.0)

    def step(running, xs):
        r_t, m_t = xs
        g = r_t + gamma * running
        return g * m_t, g

    _, g = jax.lax.scan(step, jnp.zeros(m.shape[0], jnp.float32), (token_r.T, m.T), reverse=True)
    return g.T * m


def token_whiten_advantages(
    rewards: jax.Array,
    group_ids: jax.Array,
    mask: jax.Array,
    num_groups: int = NUM_GROUPS,
    gamma: float = 1.0,
    eps: float = 1e-8,
) -> jax.Array:
    """Official TRR++: per-group masked whitening of token returns (unbiased token variance)."""
    rewards, group_ids, mask = jnp.asarray(rewards), jnp.asarray(group_ids), jnp.asarray(mask)
    _check_shapes(rewards, group_ids, mask)
    gid, row_ok = _row_groups(group_ids, num_groups)
    m = mask.astype(jnp.float32) * row_ok[:, None].astype(jnp.float32)
    g = outcome_returns(rewards, m, gamma)
    n = jax.ops.segment_sum(m.sum(1), gid, num_groups)
    total = jax.ops.segment_sum((g * m).sum(1), gid, num_groups)
    mean = total / jnp.maximum(n, 1.0)
    centered = (g - mean[gid][:, None]) * m
    sq = jax.ops.segment_sum((centered**2).sum(1), gid, num_groups)
    var = jnp.where(n > 1, sq / jnp.maximum(n - 1.0, 1.0), 0.0)
    return centered * jax.lax.rsqrt(var[gid] + eps)[:, None] * m


def sample_zscore_advantages(
    rewards: jax.Array,
    group_ids: jax.Array,
    mask: jax.Array,
    num_groups: int = NUM_GROUPS,
    eps: float = 1e-6,
    ddof: int = 0,
) -> jax.Array:
    """Paper Eq. 8: ``(R - mean_group) / (std_group + eps)`` per sample, on its valid tokens."""
    rewards, group_ids, mask = jnp.asarray(rewards), jnp.asarray(group_ids), jnp.asarray(mask)
    _check_shapes(rewards, group_ids, mask)
    gid, row_ok = _row_groups(group_ids, num_groups)
    m = mask.astype(jnp.float32)
    sample = (row_ok & (m.sum(1) > 0)).astype(jnp.float32)
    r = rewards.astype(jnp.float32)
    n = jax.ops.segment_sum(sample, gid, num_groups)
    mean = jax.ops.segment_sum(r * sample, gid, num_groups) / jnp.maximum(n, 1.0)
    centered = (r - mean[gid]) * sample
    sq = jax.ops.segment_sum(centered**2, gid, num_groups)
    var = jnp.where(n > ddof, sq / jnp.maximum(n - ddof, 1.0), 0.0)
    adv = centered / (jnp.sqrt(var)[gid] + eps)
    return adv[:, None] * m * sample[:, None]


def compute_advantages(
    rewards: jax.Array,
    group_ids: jax.Array,
    mask: jax.Array,
    cfg: AdvantageConfig = AdvantageConfig(),
) -> jax.Array:
    """Dispatch on ``cfg.method``; ``cfg`` is hashable so it can be a static jit argument."""
    if cfg.method == "token_whiten":
        return token_whiten_advantages(rewards, group_ids, mask, cfg.num_groups, cfg.gamma, cfg.whiten_eps)
    return sample_zscore_advantages(rewards, group_ids, mask, cfg.num_groups, cfg.zscore_eps, cfg.zscore_ddof)


def group_reward_stats(
    rewards: jax.Array, group_ids: jax.Array, num_groups: int = NUM_GROUPS
) -> dict[str, jax.Array]:
    """Per-group sample count, mean and population std of the scalar rewards (for metrics)."""
    rewards, group_ids = jnp.asarray(rewards), jnp.asarray(group_ids)
    gid, row_ok = _row_groups(group_ids, num_groups)
    w = row_ok.astype(jnp.float32)
    r = rewards.astype(jnp.float32)
    n = jax.ops.segment_sum(w, gid, num_groups)
    mean = jax.ops.segment_sum(r * w, gid, num_groups) / jnp.maximum(n, 1.0)
    var = jax.ops.segment_sum(((r - mean[gid]) ** 2) * w, gid, num_groups) / jnp.maximum(n, 1.0)
    return {"count": n, "mean": mean, "std": jnp.sqrt(var)}

"""Turn a step's samples into the padded arrays of one update, with TRR++ advantages.

Layout of a row: the prompt left-padded to a prompt width P (a bucket over the longest
prompt), then the completion from column P on, then right padding; so the update only projects
onto the vocabulary from column P (`completion_start`). Rows are padded up to a multiple of the micro-batch size and of the mesh's
batch split with dummy rows (group id -1, empty masks: zero advantage, zero loss), and the
sequence up to a quarter-octave bucket (64, 80, 96, 112, 128, 160, ...: at most 25% padding),
so a run compiles a handful of update programs, not one per step.

Loss weights per row (`rl.losses.row_weights`) are computed here over the step's real rows:
for the official micro-token-mean, each task-role group's rows, in order, are cut into units
of `micro_batch_rows` (the official run's 64 rows per group = 4 units of 16).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from azr_jax.azr.selfplay import Sample
from azr_jax.rl.advantages import AdvantageConfig, compute_advantages
from azr_jax.rl.losses import LossConfig, row_weights
from azr_jax.sampling.config import round_up

_advantages = jax.jit(compute_advantages, static_argnames=("cfg",))


@dataclasses.dataclass
class UpdateBatch:
    tokens: np.ndarray  # [R, L] int32
    attn_mask: np.ndarray  # [R, L] int32
    loss_mask: np.ndarray  # [R, L] int32: completion tokens
    advantages: np.ndarray  # [R, L] float32
    rewards: np.ndarray  # [R] float32
    group_ids: np.ndarray  # [R] int32, -1 for padding rows
    sampler_logprobs: np.ndarray  # [R, L] float32 (what the sampler reported)
    num_real: int  # rows before padding
    completion_start: int  # column where every completion starts (the prompt width)
    loss_weights: np.ndarray  # [R] float32: this row's weight in the step's loss (0 for padding)


def bucket_length(n: int, minimum: int = 64) -> int:
    """Smallest k * 2^m >= n with k in {4, 5, 6, 7} (and >= minimum)."""
    n = max(n, minimum)
    m = max(0, n.bit_length() - 3)
    for k in range(4, 9):
        if k * 2**m >= n:
            return k * 2**m
    raise AssertionError("unreachable: 8 * 2^m >= n")


def group_units(group_ids: np.ndarray, rows_per_unit: int) -> np.ndarray:
    """Aggregation unit of each row: each group's rows, in order, cut into runs of
    `rows_per_unit`; -1 for padding rows (group -1)."""
    units = np.full(group_ids.shape, -1, np.int64)
    next_id = 0
    for g in sorted(set(group_ids.tolist()) - {-1}):
        rows = np.flatnonzero(group_ids == g)
        units[rows] = next_id + np.arange(len(rows)) // rows_per_unit
        next_id = int(units[rows].max()) + 1
    return units


def build_update_batch(
    samples: Sequence[Sample],
    *,
    pad_id: int,
    row_multiple: int,
    min_length: int = 64,
    advantage: AdvantageConfig = AdvantageConfig(),
    loss: LossConfig = LossConfig(),
) -> UpdateBatch:
    if not samples:
        raise ValueError("no samples to train on")
    P = bucket_length(max(len(s.rollout.prompt_ids) for s in samples), min_length // 2)
    N = bucket_length(max(max(len(s.rollout.completion_ids) for s in samples), 1), min_length // 2)
    L = P + N
    R = round_up(len(samples), row_multiple)
    loss_cfg = loss
    tokens = np.full((R, L), pad_id, np.int32)
    attn = np.zeros((R, L), np.int32)
    loss_mask = np.zeros((R, L), np.int32)
    lps = np.zeros((R, L), np.float32)
    rewards = np.zeros((R,), np.float32)
    groups = np.full((R,), -1, np.int32)
    for i, s in enumerate(samples):
        p, c = s.rollout.prompt_ids, s.rollout.completion_ids
        tokens[i, P - len(p) : P] = p
        tokens[i, P : P + len(c)] = c
        attn[i, P - len(p) : P + len(c)] = 1
        loss_mask[i, P : P + len(c)] = 1
        lps[i, P : P + len(c)] = np.asarray(s.rollout.logprobs, np.float32)[: len(c)]
        rewards[i] = s.reward
        groups[i] = s.group.id
    adv = np.asarray(_advantages(rewards, groups, loss_mask, cfg=advantage), np.float32)
    weights = row_weights(loss_mask, loss_cfg, group_units(groups, loss_cfg.micro_batch_rows))
    return UpdateBatch(tokens, attn, loss_mask, adv, rewards, groups, lps, len(samples), P, weights)


def plan_shape_groups(
    prompt_lengths: Sequence[int],
    completion_lengths: Sequence[int],
    *,
    row_multiple: int,
    max_groups: int,
    min_length: int = 64,
) -> list[np.ndarray]:
    """Split a step's rows into at most `max_groups` update batches of their own widths, at
    the least padded compute.

    Rows are ordered by prompt length and cut into contiguous runs; a run costs its rows
    (rounded up to `row_multiple`, dummy rows compute too) x its width (bucketed longest
    prompt + bucketed longest completion), and an exact dynamic programme picks the cuts. Each
    extra group is one more compiled update program, hence the cap.
    """
    n = len(prompt_lengths)
    if n == 0:
        raise ValueError("no rows to group")
    if max_groups < 1 or row_multiple < 1:
        raise ValueError(f"max_groups and row_multiple must be >= 1, got {max_groups}, {row_multiple}")
    order = np.argsort(-np.asarray(prompt_lengths), kind="stable")
    plen = np.asarray(prompt_lengths)[order]
    clen = np.asarray(completion_lengths)[order]
    half = min_length // 2

    def cost(i: int, j: int, longest_completion: int) -> int:  # rows order[i:j]
        rows = round_up(j - i, row_multiple)
        return rows * (bucket_length(int(plen[i]), half) + bucket_length(longest_completion, half))

    inf = float("inf")
    # best[k][j]: least cost of the first j rows in k groups; cut[k][j]: where the last starts
    best = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    cut = [[0] * (n + 1) for _ in range(max_groups + 1)]
    best[0][0] = 0
    for k in range(1, max_groups + 1):
        for j in range(1, n + 1):
            longest = 1
            for i in range(j - 1, k - 2, -1):
                longest = max(longest, int(clen[i]))
                if best[k - 1][i] < inf:
                    c = best[k - 1][i] + cost(i, j, longest)
                    if c < best[k][j]:
                        best[k][j], cut[k][j] = c, i
    k = min(range(1, max_groups + 1), key=lambda g: (best[g][n], g))  # fewest groups on ties
    groups, j = [], n
    while k:
        i = cut[k][j]
        groups.append(np.sort(order[i:j]))
        j, k = i, k - 1
    return groups[::-1]


def split_update_batch(
    ub: UpdateBatch, groups: Sequence[np.ndarray], *, pad_id: int, row_multiple: int, min_length: int = 64
) -> list[UpdateBatch]:
    """Re-lay the real rows of `ub` (advantages already computed over the whole step) into one
    narrower batch per group: same tokens, masks, advantages and logprobs, own widths."""
    half = min_length // 2
    P0 = ub.completion_start
    out = []
    for rows in groups:
        plen = [int(ub.attn_mask[r, :P0].sum()) for r in rows]
        clen = [int(ub.loss_mask[r, P0:].sum()) for r in rows]
        P = bucket_length(max(plen), half)
        N = bucket_length(max(max(clen), 1), half)
        R = round_up(len(rows), row_multiple)
        tokens = np.full((R, P + N), pad_id, np.int32)
        arrays = {
            name: np.zeros((R, P + N), getattr(ub, name).dtype)
            for name in ("attn_mask", "loss_mask", "advantages", "sampler_logprobs")
        }
        for i, (r, p, c) in enumerate(zip(rows, plen, clen)):
            src = slice(P0 - p, P0 + c)
            dst = slice(P - p, P + c)
            tokens[i, dst] = ub.tokens[r, src]
            for name, arr in arrays.items():
                arr[i, dst] = getattr(ub, name)[r, src]
        rewards = np.zeros((R,), np.float32)
        group_ids = np.full((R,), -1, np.int32)
        weights = np.zeros((R,), np.float32)
        rewards[: len(rows)] = ub.rewards[rows]
        group_ids[: len(rows)] = ub.group_ids[rows]
        weights[: len(rows)] = ub.loss_weights[rows]
        out.append(
            UpdateBatch(
                tokens,
                arrays["attn_mask"],
                arrays["loss_mask"],
                arrays["advantages"],
                rewards,
                group_ids,
                arrays["sampler_logprobs"],
                len(rows),
                P,
                weights,
            )
        )
    return out


def build_update_batches(
    samples: Sequence[Sample],
    *,
    pad_id: int,
    row_multiple: int,
    max_groups: int = 1,
    min_length: int = 64,
    advantage: AdvantageConfig = AdvantageConfig(),
    loss: LossConfig = LossConfig(),
) -> list[UpdateBatch]:
    """The step's update as one or more batches of their own widths (see `plan_shape_groups`);
    advantages and loss weights are computed over all rows first, so grouping never changes
    them."""
    if max_groups == 1:
        return [
            build_update_batch(
                samples,
                pad_id=pad_id,
                row_multiple=row_multiple,
                min_length=min_length,
                advantage=advantage,
                loss=loss,
            )
        ]
    ub = build_update_batch(
        samples, pad_id=pad_id, row_multiple=1, min_length=min_length, advantage=advantage, loss=loss
    )
    groups = plan_shape_groups(
        [len(s.rollout.prompt_ids) for s in samples],
        [len(s.rollout.completion_ids) for s in samples],
        row_multiple=row_multiple,
        max_groups=max_groups,
        min_length=min_length,
    )
    return split_update_batch(ub, groups, pad_id=pad_id, row_multiple=row_multiple, min_length=min_length)

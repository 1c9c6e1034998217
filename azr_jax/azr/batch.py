"""Turn a step's samples into the padded arrays of one update, with TRR++ advantages.

Layout of a row: the prompt left-padded to a prompt width P (a bucket over the longest
prompt), then the completion from column P on, then right padding; so the update only projects
onto the vocabulary from column P (`completion_start`). Rows are padded up to a multiple of the micro-batch size and of the mesh's
batch split with dummy rows (group id -1, empty masks: zero advantage, zero loss), and the
sequence up to a quarter-octave bucket (64, 80, 96, 112, 128, 160, ...: at most 25% padding),
so a run compiles a handful of update programs, not one per step.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import numpy as np

from azr_jax.azr.selfplay import Sample
from azr_jax.rl.advantages import AdvantageConfig, compute_advantages

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


def bucket_length(n: int, minimum: int = 64) -> int:
    """Smallest k * 2^m >= n with k in {4, 5, 6, 7} (and >= minimum)."""
    n = max(n, minimum)
    m = max(0, n.bit_length() - 3)
    for k in range(4, 9):
        if k * 2**m >= n:
            return k * 2**m
    raise AssertionError("unreachable: 8 * 2^m >= n")


def build_update_batch(samples: Sequence[Sample], *, pad_id: int, row_multiple: int,
                       min_length: int = 64, advantage: AdvantageConfig = AdvantageConfig()
                       ) -> UpdateBatch:
    if not samples:
        raise ValueError("no samples to train on")
    P = bucket_length(max(len(s.rollout.prompt_ids) for s in samples), min_length // 2)
    N = bucket_length(max(max(len(s.rollout.completion_ids) for s in samples), 1), min_length // 2)
    L = P + N
    R = int(math.ceil(len(samples) / row_multiple) * row_multiple)
    tokens = np.full((R, L), pad_id, np.int32)
    attn = np.zeros((R, L), np.int32)
    loss = np.zeros((R, L), np.int32)
    lps = np.zeros((R, L), np.float32)
    rewards = np.zeros((R,), np.float32)
    groups = np.full((R,), -1, np.int32)
    for i, s in enumerate(samples):
        p, c = s.rollout.prompt_ids, s.rollout.completion_ids
        tokens[i, P - len(p): P] = p
        tokens[i, P: P + len(c)] = c
        attn[i, P - len(p): P + len(c)] = 1
        loss[i, P: P + len(c)] = 1
        lps[i, P: P + len(c)] = np.asarray(s.rollout.logprobs, np.float32)[: len(c)]
        rewards[i] = s.reward
        groups[i] = s.group.id
    adv = np.asarray(_advantages(rewards, groups, loss, cfg=advantage), np.float32)
    return UpdateBatch(tokens, attn, loss, adv, rewards, groups, lps, len(samples), P)

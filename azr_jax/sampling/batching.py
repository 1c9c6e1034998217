"""Host-side planning: validate a call's prompts and budgets, split it into chunks and pad each
chunk to its (batch, prompt, generation) buckets.

All checks run over the whole call before any device work, so a bad row 399 fails the call
immediately instead of after the first chunks have been generated.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np

from azr_jax.sampling.config import SamplerConfig, pick_bucket, round_up


@dataclasses.dataclass
class Chunk:
    """One padded sub-batch, ready for the jitted programs.

    Without prompt sharing `tokens` holds one prompt per row (Ub = Bb) and `src` is None.
    With it, `tokens` holds the chunk's distinct prompts (padded to a smaller batch bucket Ub)
    and row j of the chunk decodes from the prefill of prompt `src[j]`. With `group` > 0 the
    rows are laid out in Ub groups of `group` (src[j] = j // group, dummy rows filling short
    groups) and decode reads each prompt's cache once per group (cascade attention).
    """

    rows: np.ndarray  # [n] indices of the caller's rows held here (real rows only)
    tokens: np.ndarray  # [Ub, P] int32, left-padded
    mask: np.ndarray  # [Ub, P] int32, 1 = real prompt token
    budgets: np.ndarray  # [Bb] int32, 0 for dummy rows
    row_ids: np.ndarray  # [Bb] int32, caller row index (dummy rows: an unused id)
    gen_len: int  # N, the generation bucket
    src: np.ndarray | None = None  # [Bb] int32, row -> index into `tokens`
    slots: np.ndarray | None = None  # [n] chunk row of each of `rows` (None: the first n)
    group: int = 0  # rows per prompt in the cascade layout; 0 = not grouped

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = np.arange(len(self.rows))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(batch bucket, prompt bucket, generation bucket): what a compiled program is for."""
        return self.budgets.shape[0], self.tokens.shape[1], self.gen_len


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def validate_prompts(prompts: Sequence[Sequence[int]], vocab_size: int) -> list[np.ndarray]:
    """Each prompt as an int32 array; empty prompts and out-of-vocabulary ids are errors."""
    if (
        isinstance(prompts, (str, bytes))
        or not isinstance(prompts, Sequence)
        and not isinstance(prompts, np.ndarray)
    ):
        raise TypeError(f"prompts must be a sequence of token-id sequences, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts is empty: nothing to generate")
    out = []
    for i, p in enumerate(prompts):
        if isinstance(p, (str, bytes)):
            raise TypeError(f"prompt {i} is text; the Sampler takes token ids (use TextSampler)")
        arr = np.asarray(p)
        if arr.ndim != 1:
            raise ValueError(f"prompt {i} must be a 1-D sequence of token ids, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"prompt {i} must hold integer token ids, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= vocab_size)
        if bad.any():
            raise ValueError(
                f"prompt {i} has token id {int(arr[bad][0])} outside the vocabulary [0, {vocab_size})"
            )
        out.append(arr.astype(np.int32))
    return out


def validate_budgets(max_new_tokens: int | Sequence[int], n: int) -> np.ndarray:
    """One budget per row (an int applies to all); each must be >= 1."""
    if _is_int(max_new_tokens):
        budgets = [int(max_new_tokens)] * n
    else:
        if isinstance(max_new_tokens, (str, bytes)) or not hasattr(max_new_tokens, "__len__"):
            raise TypeError(
                f"max_new_tokens must be an int or a sequence of ints, got {type(max_new_tokens).__name__}"
            )
        budgets = list(max_new_tokens)
        if len(budgets) != n:
            raise ValueError(f"max_new_tokens has {len(budgets)} entries for {n} prompts")
        if not all(_is_int(b) for b in budgets):
            raise TypeError(f"max_new_tokens entries must be ints, got {budgets[:8]}")
    arr = np.asarray(budgets, np.int64)
    if (arr <= 0).any():
        i = int(np.argmax(arr <= 0))
        raise ValueError(f"max_new_tokens must be >= 1, got {int(arr[i])} for prompt {i}")
    return arr.astype(np.int32)


def plan_chunks(
    prompts: list[np.ndarray], budgets: np.ndarray, config: SamplerConfig, batch_multiple: int, pad_id: int
) -> list[Chunk]:
    """Group rows into chunks of at most `config.max_batch` and pad each to its buckets.

    Rows are ordered by prompt length before chunking so a large call's chunks each get a
    tight prompt bucket. Each chunk's batch is padded with dummy rows (budget 0, one pad token)
    up to a batch bucket that is also a multiple of `batch_multiple` (the mesh's batch split).
    """
    lengths = np.array([len(p) for p in prompts])
    _check_fits(lengths, budgets, config)
    order = np.argsort(-lengths, kind="stable")
    chunks = []
    for start in range(0, len(order), config.max_batch):
        rows = np.sort(order[start : start + config.max_batch])
        n = len(rows)
        B = round_up(pick_bucket(n, config.batch_buckets, "batch size"), batch_multiple)
        P = pick_bucket(int(lengths[rows].max()), config.prompt_buckets, "prompt length")
        N = pick_bucket(int(budgets[rows].max()), config.gen_buckets, "max_new_tokens")
        _check_cache(P, N, lengths[rows], budgets[rows], config)
        distinct, src = _distinct_prompts([prompts[r] for r in rows])
        U = round_up(pick_bucket(len(distinct), config.batch_buckets, "batch size"), batch_multiple)
        group = (_cascade_layout(src, U, B, config) if config.share_prompts else None) or 0
        if group:  # prompt u's rows sit at u * group + 0, 1, ...
            B = U * group
            slots = _group_slots(src, U, group)
            src = (np.arange(B) // group).astype(np.int32)
        else:
            if not config.share_prompts or U >= B:  # nothing to share (or no smaller bucket)
                distinct, src, U = [prompts[r] for r in rows], None, B
            slots = np.arange(n)
            if src is not None:  # dummy rows (budget 0, never decoded) read the last prompt slot
                src = np.concatenate([src, np.full((B - n,), U - 1, np.int32)])
        tokens, mask = _pad_prompts(distinct, U, P, pad_id)
        chunk_budgets = np.zeros((B,), np.int32)
        chunk_budgets[slots] = budgets[rows]
        row_ids = np.full((B,), -1, np.int32)
        row_ids[slots] = rows
        chunks.append(
            Chunk(
                rows=rows,
                tokens=tokens,
                mask=mask,
                budgets=chunk_budgets,
                row_ids=row_ids,
                gen_len=N,
                src=src,
                slots=slots,
                group=group,
            )
        )
    return chunks


def _check_fits(lengths: np.ndarray, budgets: np.ndarray, config: SamplerConfig) -> None:
    """Every prompt within the largest prompt bucket, every budget within the largest
    generation bucket (nothing is truncated)."""
    too_long = lengths > config.prompt_buckets[-1]
    if too_long.any():
        i = int(np.argmax(too_long))
        raise ValueError(
            f"prompt {i} has {lengths[i]} tokens, more than the largest prompt bucket "
            f"{config.prompt_buckets[-1]} (SamplerConfig.prompt_buckets); it is not "
            "truncated: shorten it or add a larger bucket"
        )
    if budgets.max() > config.gen_buckets[-1]:
        i = int(np.argmax(budgets))
        raise ValueError(
            f"max_new_tokens {budgets[i]} (prompt {i}) exceeds the largest generation "
            f"bucket {config.gen_buckets[-1]} (SamplerConfig.gen_buckets)"
        )


def _check_cache(P: int, N: int, lengths: np.ndarray, budgets: np.ndarray, config: SamplerConfig) -> None:
    if config.max_cache_len is not None and P + N - 1 > config.max_cache_len:
        raise ValueError(
            f"prompt bucket {P} + generation bucket {N} - 1 = {P + N - 1} cache slots exceed "
            f"max_cache_len "
            f"{config.max_cache_len} (longest prompt {lengths.max()}, largest budget "
            f"{budgets.max()}); lower max_new_tokens or raise max_cache_len"
        )


def _distinct_prompts(prompts: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct prompts in first-seen order and, per row, the index of its prompt."""
    index: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    src = np.empty((len(prompts),), np.int32)
    for j, p in enumerate(prompts):
        key = p.tobytes()
        if key not in index:
            index[key] = len(distinct)
            distinct.append(p)
        src[j] = index[key]
    return distinct, src


def _pad_prompts(prompts: list[np.ndarray], U: int, P: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad prompts into [U, P] tokens and mask; rows past the prompts are dummies."""
    tokens = np.full((U, P), pad_id, np.int32)
    mask = np.zeros((U, P), np.int32)
    for j, prompt in enumerate(prompts):
        tokens[j, P - len(prompt) :] = prompt
        mask[j, P - len(prompt) :] = 1
    mask[len(prompts) :, -1] = 1  # dummy rows: one pad token, so no attention row is fully masked
    return tokens, mask


def _cascade_layout(src: np.ndarray, U: int, B: int, config: SamplerConfig) -> int | None:
    """Rows per group for the cascade layout, or None when it does not pay: no prompt repeats,
    or U groups of the largest group's bucket would need more rows than the flat batch B
    (uneven groups; the copy-the-cache sharing then handles them)."""
    largest = int(np.bincount(src).max())
    if largest < 2:
        return None
    group = pick_bucket(largest, config.batch_buckets, "batch size")
    return group if U * group <= B else None


def _group_slots(src: np.ndarray, U: int, group: int) -> np.ndarray:
    """Chunk row of each of the chunk's rows in the cascade layout: the k-th row of prompt u
    goes to u * group + k."""
    slots = np.empty((len(src),), np.int64)
    filled = np.zeros((U,), np.int64)
    for j, u in enumerate(src):
        slots[j] = u * group + filled[u]
        filled[u] += 1
    return slots


@dataclasses.dataclass
class QueuePlan:
    """The continuous engine's host-side queue: the caller's rows with the rows of each prompt
    next to each other, distinct prompts right-padded, every size padded to a bucket."""

    order: np.ndarray  # [n] caller row at each queue position
    row_ids: np.ndarray  # [R] int32, caller row per queue position (padding: -1)
    src: np.ndarray  # [R] int32 prompt index
    budgets: np.ndarray  # [R] int32 (padding: 0)
    tokens: np.ndarray  # [U, Ps] int32, right-padded
    lengths: np.ndarray  # [U] int32
    refs: np.ndarray  # [U] int32 rows per prompt
    gen_len: int  # N
    group: int  # most rows of one prompt (a bucket)


def pow2(n: int) -> int:
    """The queue's buckets: the next power of two (few programs for any call size)."""
    return 1 << max(0, int(n) - 1).bit_length()


def prompt_width(prompt_bucket: int, page_size: int, prefill_chunk: int) -> int:
    """The continuous engine's prompt width: the bucket rounded up to whole prefill passes of
    whole pages (a pass is at most `prefill_chunk` tokens)."""
    chunk = min(prefill_chunk, round_up(prompt_bucket, page_size))
    return round_up(prompt_bucket, math.lcm(page_size, chunk))


def plan_queue(
    prompts: list[np.ndarray],
    budgets: np.ndarray,
    config: SamplerConfig,
    page_size: int,
    prefill_chunk: int,
    pad_id: int,
    share: bool,
) -> QueuePlan:
    """Queue the call's rows for the continuous engine (`prompt_width` wide prompts)."""
    lengths = np.array([len(p) for p in prompts])
    _check_fits(lengths, budgets, config)
    P = pick_bucket(int(lengths.max()), config.prompt_buckets, "prompt length")
    N = pick_bucket(int(budgets.max()), config.gen_buckets, "max_new_tokens")
    _check_cache(P, N, lengths, budgets, config)
    if share:
        distinct, src = _distinct_prompts(prompts)
    else:
        distinct, src = prompts, np.arange(len(prompts), dtype=np.int32)
    order = np.argsort(src, kind="stable")  # a prompt's rows next to each other
    R, U = pow2(len(prompts)), pow2(len(distinct))
    Ps = prompt_width(P, page_size, prefill_chunk)
    tokens = np.full((U, Ps), pad_id, np.int32)
    for j, p in enumerate(distinct):
        tokens[j, : len(p)] = p
    counts = np.bincount(src, minlength=U).astype(np.int32)
    pad = lambda a, fill: np.concatenate([a, np.full((R - len(a),), fill, np.int32)])
    return QueuePlan(
        order=order,
        row_ids=pad(order.astype(np.int32), -1),
        src=pad(src[order].astype(np.int32), 0),
        budgets=pad(budgets[order].astype(np.int32), 0),
        tokens=tokens,
        lengths=np.array([len(p) for p in distinct] + [0] * (U - len(distinct)), np.int32),
        refs=counts,
        gen_len=N,
        group=pow2(int(counts.max())),
    )

"""Sampler knobs: what to sample (`SamplingParams`) and how programs are shaped (`SamplerConfig`).

Both are frozen dataclasses validated on construction, so a bad value fails where it is written
(a config file, a CLI flag) rather than deep inside a jitted program.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

# Prompt lengths: four buckets per doubling (at most 1/5 of a prefill is padding; prefill
# cost is linear in the bucket), ending at AZR's 6,144-token prompt limit and 8,192. Each
# bucket met is one more compiled program pair: configs with known prompt lengths list fewer.
DEFAULT_PROMPT_BUCKETS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768,
                          896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144,
                          7168, 8192)
# Generation budgets: small budgets (eval answers, tests) get small programs, AZR's 8,096-token
# responses fit the last bucket.
DEFAULT_GEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# Batch sizes: powers of two with 1.5x steps in between (at most 1/3 of a batch is dummy
# rows), so the ~400-row AZR step (and its 192/64-row sub-batches) and the small steps of the
# CPU config (12 rows) pad few dummy rows.
DEFAULT_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How the next token is drawn from the logits.

    temperature 0 means greedy (argmax). Filters apply in HF's order: temperature, then top-k,
    then top-p on the renormalised survivors. top_k = 0 and top_p = 1 switch a filter off; the
    sampler compiles a sort-free program when both are off.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        t, p, k = self.temperature, self.top_p, self.top_k
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {t!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 < p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {p!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = off), got {k!r}")
        object.__setattr__(self, "temperature", float(t))
        object.__setattr__(self, "top_p", float(p))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _check_buckets(name: str, buckets: Sequence[int]) -> tuple[int, ...]:
    out = tuple(buckets)
    if not out:
        raise ValueError(f"{name} must not be empty")
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in out):
        raise ValueError(f"{name} must be positive ints, got {out}")
    if list(out) != sorted(set(out)):
        raise ValueError(f"{name} must be strictly increasing, got {out}")
    return out


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Static-shape policy of the sampler.

    Every call pads its prompts, budgets and batch up to the next bucket, so a run compiles one
    program per (batch, prompt, generation) bucket triple it meets, not one per call.
    `max_batch` splits large calls into chunks, bounding the KV cache's memory
    (batch x (prompt + generation) x layers x kv_heads x head_dim x 2). `max_cache_len`, when
    set, rejects any call whose cache (prompt bucket + generation bucket - 1 slots) would
    exceed it.
    """

    prompt_buckets: tuple[int, ...] = DEFAULT_PROMPT_BUCKETS
    gen_buckets: tuple[int, ...] = DEFAULT_GEN_BUCKETS
    batch_buckets: tuple[int, ...] = DEFAULT_BATCH_BUCKETS
    max_batch: int = 256
    max_cache_len: int | None = None
    # Prompt tokens per prefill pass: bounds prefill attention memory to
    # batch x heads x prefill_chunk x prompt_bucket scores.
    prefill_chunk: int = 512
    # Prefill each distinct prompt of a chunk once and copy its cache to the rows that repeat
    # it (AZR's G learnability rollouts of one task are G identical prompts): G x less prefill
    # compute. Results do not depend on it; off = every row is prefilled on its own.
    share_prompts: bool = True
    # Give the decode program one weight buffer per layer (a Python loop over layers) instead
    # of the stacked arrays (a scan), for one extra copy of the layer weights during the call.
    # XLA copies each layer's matmul weights out of the stack at every scan step: on CPU a
    # small-batch decode step is about a third faster unstacked; on an H200 (jax 0.11.2,
    # Qwen2.5-1.5B shape, bf16) those copies were 29% of a batch-1 step and unstacking cut
    # the decode step from 3.97 to 1.66 ms at batch 1 and from 7.81 to 2.58 ms at batch 64
    # (same run, benchmarks/RESULTS.md).
    # None = on unless the params live on a TPU, where slicing the stack is free and memory
    # is what the chip lacks.
    unstack_layers: bool | None = None
    # With unstacked decode weights: multiply each [out, in] matrix (and a tied LM head) as
    # this many parts along its output axis, one batched matmul (`decoder._linear`). XLA:CPU's
    # matmul kernels spread a batched matmul over their threads far better than one matmul
    # with a few rows: on 2 cores (SmolLM2, fp32), same-run pairs, a batch-32 decode step
    # went 206 -> 171 and 226 -> 193 ms, batch 8 103 -> 80 and 138 -> 105 ms
    # (benchmarks/RESULTS.md); a lone row gains nothing.
    # None = 2 for CPU chunks of 2 or more rows (measured on 2 cores; more cores may want
    # more), else 1 (GPU kernels need no help).
    decode_matmul_splits: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_buckets", _check_buckets("prompt_buckets", self.prompt_buckets))
        object.__setattr__(self, "gen_buckets", _check_buckets("gen_buckets", self.gen_buckets))
        object.__setattr__(self, "batch_buckets", _check_buckets("batch_buckets", self.batch_buckets))
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {self.max_batch!r}")
        if self.max_batch > self.batch_buckets[-1]:
            raise ValueError(f"max_batch {self.max_batch} exceeds the largest batch bucket "
                             f"{self.batch_buckets[-1]}")
        if isinstance(self.prefill_chunk, bool) or not isinstance(self.prefill_chunk, int) or \
                self.prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be an int >= 1, got {self.prefill_chunk!r}")
        if not isinstance(self.share_prompts, bool):
            raise ValueError(f"share_prompts must be a bool, got {self.share_prompts!r}")
        if self.unstack_layers is not None and not isinstance(self.unstack_layers, bool):
            raise ValueError(f"unstack_layers must be None or a bool, got {self.unstack_layers!r}")
        if self.decode_matmul_splits is not None and (
                isinstance(self.decode_matmul_splits, bool)
                or not isinstance(self.decode_matmul_splits, int) or self.decode_matmul_splits < 1):
            raise ValueError(f"decode_matmul_splits must be None or an int >= 1, got "
                             f"{self.decode_matmul_splits!r}")
        if self.max_cache_len is not None and (
                not isinstance(self.max_cache_len, int) or self.max_cache_len < 2):
            raise ValueError(f"max_cache_len must be None or an int >= 2, got {self.max_cache_len!r}")


def pick_bucket(n: int, buckets: Sequence[int], what: str) -> int:
    """Smallest bucket >= n; a value beyond the largest bucket is an error, never a truncation."""
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(f"{what} {n} exceeds the largest configured bucket {buckets[-1]} "
                     f"(buckets: {tuple(buckets)})")


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple

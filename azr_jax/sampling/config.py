"""Sampler knobs: what to sample (`SamplingParams`) and how programs are shaped (`SamplerConfig`).

Both are frozen dataclasses validated on construction, so a bad value fails where it is written
(a config file, a CLI flag) rather than deep inside a jitted program.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

# Prompt lengths: four buckets per doubling (at most 1/5 of a prefill is padding; prefill
# cost is linear in the bucket), ending at AZR's 6,144-token prompt limit and 8,192. Each
# bucket met is one more compiled program pair: configs with known prompt lengths list fewer.
DEFAULT_PROMPT_BUCKETS = (
    64,
    80,
    96,
    112,
    128,
    160,
    192,
    224,
    256,
    320,
    384,
    448,
    512,
    640,
    768,
    896,
    1024,
    1280,
    1536,
    1792,
    2048,
    2560,
    3072,
    3584,
    4096,
    5120,
    6144,
    7168,
    8192,
)
# Generation budgets: small budgets (eval answers, tests) get small programs, AZR's 8,096-token
# responses fit the last bucket.
DEFAULT_GEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# Batch sizes: powers of two with 1.5x steps in between (at most 1/3 of a batch is dummy
# rows), so the ~400-row AZR step (and its 192/64-row sub-batches) and the small steps of the
# CPU config (12 rows) pad few dummy rows.
DEFAULT_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
ENGINES = ("auto", "static", "continuous")


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
    # The decode plan (`sampling/plan.py`): each field below is one platform- or batch-
    # dependent choice; None / "auto" lets `make_plan` choose, anything else forces it.
    # Measurements behind the auto rules: benchmarks/RESULTS.md.
    #
    # engine: "static" (chunks of up to max_batch rows decode until their longest row ends,
    # over a cache preallocated for prompt bucket + generation bucket slots) or "continuous"
    # (max_batch decode slots; a finished row's slot takes the next queued prompt, whose
    # prefill runs between decode steps; the KV cache is paged and a step reads only the
    # pages rows have filled). "auto": see `make_plan`.
    engine: str = "auto"
    # Decode on one weight buffer per layer (a Python loop over layers, [out, in] matrices)
    # instead of the stacked arrays (a scan that copies each layer's weights out of the stack
    # at every step on CPU and GPU), for one extra copy of the layer weights during the call.
    # None = on unless the params live on a TPU, where memory is what the chip lacks.
    unstack_layers: bool | None = None
    # With unstacked decode weights: multiply each [out, in] matrix (and a tied LM head) as
    # this many parts along its output axis, one batched matmul (`decoder._linear`): XLA:CPU
    # spreads a batched matmul over its threads far better than one matmul with few rows.
    # None = 2 for CPU decodes of 2 or more rows (measured on 2 cores; more cores may want
    # more), else 1.
    decode_matmul_splits: int | None = None
    # Static engine with unstacked weights: store cached keys [B, kv_heads, head_dim, S]
    # (faster CPU scores) instead of [B, kv_heads, S, head_dim] (faster on an H200).
    # None = on for CPU only.
    keys_last: bool | None = None
    # Continuous engine: tokens per KV page, and how many read extents a decode step is
    # compiled for (the pools' first 1/2^k, k < read_extents; a step reads the smallest extent
    # that holds every page in use, so at most twice what rows have filled). None = by platform.
    page_size: int | None = None
    read_extents: int | None = None
    # Continuous engine: decode step widths compiled, slots / 2^k for k < decode_widths; once
    # the queue is empty the rows left run on the narrowest that holds them. None = 3.
    decode_widths: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_buckets", _check_buckets("prompt_buckets", self.prompt_buckets))
        object.__setattr__(self, "gen_buckets", _check_buckets("gen_buckets", self.gen_buckets))
        object.__setattr__(self, "batch_buckets", _check_buckets("batch_buckets", self.batch_buckets))
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {self.max_batch!r}")
        if self.max_batch > self.batch_buckets[-1]:
            raise ValueError(
                f"max_batch {self.max_batch} exceeds the largest batch bucket {self.batch_buckets[-1]}"
            )
        if (
            isinstance(self.prefill_chunk, bool)
            or not isinstance(self.prefill_chunk, int)
            or self.prefill_chunk < 1
        ):
            raise ValueError(f"prefill_chunk must be an int >= 1, got {self.prefill_chunk!r}")
        if not isinstance(self.share_prompts, bool):
            raise ValueError(f"share_prompts must be a bool, got {self.share_prompts!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("unstack_layers", "keys_last"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be None or a bool, got {value!r}")
        for name in ("decode_matmul_splits", "page_size", "read_extents", "decode_widths"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")
        if self.max_cache_len is not None and (
            not isinstance(self.max_cache_len, int) or self.max_cache_len < 2
        ):
            raise ValueError(f"max_cache_len must be None or an int >= 2, got {self.max_cache_len!r}")


def pick_bucket(n: int, buckets: Sequence[int], what: str) -> int:
    """Smallest bucket >= n; a value beyond the largest bucket is an error, never a truncation."""
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(
        f"{what} {n} exceeds the largest configured bucket {buckets[-1]} (buckets: {tuple(buckets)})"
    )


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


_TRISTATE = {"auto": None, "on": True, "off": False}


def sampler_config(section) -> SamplerConfig:
    """A `SamplerConfig` from a config file's `sampler` section (`azr_jax/defaults.py`), where
    "auto" (tri-state fields) and 0 (int fields) mean the decode plan's own rule."""

    def tristate(name: str) -> bool | None:
        value = section.get(name, "auto")
        if isinstance(value, bool):
            return value
        if value not in _TRISTATE:
            raise ValueError(f"sampler.{name} must be one of {tuple(_TRISTATE)}, got {value!r}")
        return _TRISTATE[value]

    auto_int = lambda name: section.get(name, 0) or None
    return SamplerConfig(
        prompt_buckets=tuple(section.prompt_buckets),
        gen_buckets=tuple(section.gen_buckets),
        max_batch=section.max_batch,
        engine=section.get("engine", "auto"),
        prefill_chunk=section.get("prefill_chunk", 512),
        share_prompts=section.get("share_prompts", True),
        unstack_layers=tristate("unstack_layers"),
        keys_last=tristate("keys_last"),
        decode_matmul_splits=auto_int("decode_matmul_splits"),
        page_size=auto_int("page_size"),
        read_extents=auto_int("read_extents"),
        decode_widths=auto_int("decode_widths"),
    )

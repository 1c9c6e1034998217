"""The decode plan: every platform- and batch-dependent choice of a sampler call, made in one
function (`make_plan`) from (platform, rows, `SamplerConfig`) and carried as one object.

Each choice is a `SamplerConfig` field (None / "auto" = the rule below), so any of them can be
forced or turned off from a config file or the command line (`--config.sampler.<field>=...`).
The rules and the measurements behind them: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import dataclasses

from azr_jax.model.decoder import Layout
from azr_jax.sampling.config import SamplerConfig, pick_bucket, round_up

# Tokens per KV page, by platform (a TPU tile holds 64+ rows of a page), and how many read
# extents a paged decode step is compiled for (the first 1/4, 1/2 or all of the prompt slots
# and pages: a step reads at most twice what is in use, or a quarter of the cache, at one
# compiled step per extent; CPU steps are bound by matmuls rather than bytes).
_PAGE_SIZE = {"cpu": 16, "gpu": 16, "tpu": 64}
_READ_EXTENTS = {"cpu": 2, "gpu": 3, "tpu": 3}
# Decode widths (slots, slots / 2, slots / 4): once the queue is empty the rows left run on
# the narrowest step that holds them, instead of riding a full-width step through the tail.
_DECODE_WIDTHS = 3


@dataclasses.dataclass(frozen=True)
class DecodePlan:
    """How one call (or, for the static engine, one chunk) is decoded; hashable, so it is part
    of the jit key of the programs it shapes."""

    engine: str  # "static" | "continuous"
    slots: int  # rows decoded at once: a static chunk's batch bucket, or continuous slots
    unstack_layers: bool  # decode on per-layer [out, in] weights (else the stacked scan)
    matmul_splits: int  # decode matmuls in this many batched parts (`decoder._linear`)
    keys_last: bool  # static engine: slot keys stored [B, K, H, S]
    share_prompts: bool  # rows that repeat a prompt share its prefill (and its cache reads)
    prefill_chunk: int  # prompt tokens per prefill pass
    page_size: int  # continuous engine: tokens per KV page
    read_extents: int  # continuous engine: pool extents a step can read (one program each)
    decode_widths: int  # continuous engine: step widths slots / 2^k (one program each)

    @property
    def layout(self) -> Layout:
        """The decode step's weight layout."""
        return Layout(out_in=self.unstack_layers, splits=self.matmul_splits if self.unstack_layers else 1)


def make_plan(
    platform: str, rows: int, config: SamplerConfig, batch_multiple: int = 1, engine: str | None = None
) -> DecodePlan:
    """The plan for `rows` rows on `platform` ("cpu", "gpu" or "tpu"); `engine` forces the
    engine (the static engine plans each chunk of a call with its own batch).

    - engine: continuous when the queue is longer than the slots (rows > max_batch: a freed
      slot has a next prompt to take); static for a call that fits one chunk (its dense slot
      cache costs less per step than the paged bookkeeping, measured on CPU; its GPU steps
      were measured on an H200, the continuous engine's were not yet).
    - slots: the batch bucket of min(rows, max_batch), a multiple of the mesh's batch split.
    - unstack_layers: off on TPU (memory), else on.
    - matmul_splits: 2 on CPU with 2+ slots, else 1.
    - keys_last: on CPU for the static engine on unstacked weights.
    """
    c = config
    engine = engine or c.engine
    if engine == "auto":
        engine = "continuous" if rows > c.max_batch else "static"
    slots = round_up(pick_bucket(min(rows, c.max_batch), c.batch_buckets, "batch size"), batch_multiple)
    unstack = c.unstack_layers if c.unstack_layers is not None else platform != "tpu"
    splits = c.decode_matmul_splits
    if splits is None:
        splits = 2 if platform == "cpu" and slots >= 2 else 1
    keys_last = c.keys_last if c.keys_last is not None else platform == "cpu" and unstack
    page = c.page_size or _PAGE_SIZE.get(platform, 16)
    extents = c.read_extents or _READ_EXTENTS.get(platform, 4)
    widths = c.decode_widths or _DECODE_WIDTHS
    return DecodePlan(
        engine=engine,
        slots=slots,
        unstack_layers=unstack,
        matmul_splits=splits,
        keys_last=keys_last,
        share_prompts=c.share_prompts,
        prefill_chunk=c.prefill_chunk,
        page_size=page,
        read_extents=extents,
        decode_widths=widths,
    )

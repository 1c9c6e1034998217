"""`Sampler`: token ids in, token ids + logprobs + masks out, on the caller's (sharded) params.

Thin orchestration around `loop.prefill` / `loop.decode`: validate, plan chunks and buckets,
place the padded arrays on the mesh, run, and stitch the chunks back into the caller's row
order. All math lives in the jitted programs.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import api, rope
from azr_jax.model.config import ModelConfig
from azr_jax.sampling import loop
from azr_jax.sampling.batching import Chunk, plan_chunks, validate_budgets, validate_prompts
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.ops import SamplingMode
from sharding import distributed
from sharding.params import put
from sharding.rules import ShardingRules

FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclasses.dataclass
class SampleOutput:
    """Per-row results, in the caller's row order; N = the largest requested budget.

    `logprobs` are log softmax(logits / T) at the sampled token (T = 1 for greedy), *before*
    top-k/top-p filtering: exactly what a trainer's full forward pass recomputes.
    """

    tokens: np.ndarray  # [B, N] int32 generated ids, pad_token_id after each row's end
    logprobs: np.ndarray  # [B, N] float32, 0 after each row's end
    mask: np.ndarray  # [B, N] bool, True for real completion tokens (stop token included)
    lengths: np.ndarray  # [B] int32
    finish_reasons: list[str]  # 'stop' (drew a stop token) | 'length' (budget used up)
    steps: int = 0  # token slots the longest-running chunk drew (early exit makes it < N)
    prefill_seconds: float = 0.0  # wall time of the prefill programs (all chunks)
    decode_seconds: float = 0.0  # wall time of the decode loops (all chunks)

    def completion(self, i: int) -> list[int]:
        """Row i's generated ids (stop token included, padding removed)."""
        return self.tokens[i, : self.lengths[i]].tolist()


_unstack_layers = jax.jit(api.unstack_layers)
_build_rope_table = jax.jit(rope.table, static_argnums=(0, 1))


def _batch_multiple(rules: ShardingRules | None) -> int:
    """How many ways the mesh splits the batch axis: every batch bucket is a multiple of it."""
    if rules is None or rules.mesh is None:
        return 1
    spec = rules.spec(("batch",))
    axes = spec[0] if len(spec) else None
    axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return int(np.prod([rules.mesh.shape[a] for a in axes])) if axes else 1


def _platforms(params: api.Params) -> set[str]:
    """The platforms ('cpu', 'gpu', 'tpu') holding the params' first leaf."""
    leaf = jax.tree.leaves(params)[0]
    return {d.platform for d in getattr(leaf, "devices", lambda: ())()}


def _as_key(key: jax.Array) -> jax.Array:
    """A scalar typed PRNG key from either a typed key or a raw uint32 key (`PRNGKey`)."""
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(f"key must be a jax PRNG key (jax.random.key(seed)), got {type(key).__name__}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.ndim != 1:
        raise TypeError(f"key must be a PRNG key (typed, or raw uint32 data), got "
                        f"{key.dtype}{list(key.shape)}")
    return jax.random.wrap_key_data(jnp.asarray(key))


class Sampler:
    """Batched generation for one model config.

    `params` are passed to each call (a jit argument, so updated params never recompile).
    `stop_token_ids` default to the config's EOS ids; an empty tuple disables stopping.
    """

    def __init__(self, cfg: ModelConfig, *, rules: ShardingRules | None = None,
                 config: SamplerConfig = SamplerConfig(),
                 stop_token_ids: Sequence[int] | None = None, pad_token_id: int = 0):
        self.cfg = cfg
        self.rules = rules
        self.config = config
        stops = tuple(cfg.eos_token_id) if stop_token_ids is None else tuple(stop_token_ids)
        for t in stops + (pad_token_id,):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < cfg.vocab_size:
                raise ValueError(f"stop/pad token id {t!r} is outside the vocabulary [0, {cfg.vocab_size})")
        self.stop_token_ids = tuple(int(t) for t in stops)
        self.pad_token_id = int(pad_token_id)
        self.batch_multiple = _batch_multiple(rules)
        self._rope_tables: dict[int, tuple[jax.Array, jax.Array]] = {}

    # ------------------------------------------------------------------ public
    def generate(self, params: api.Params, prompts: Sequence[Sequence[int]],
                 max_new_tokens: int | Sequence[int], sampling: SamplingParams,
                 key: jax.Array) -> SampleOutput:
        """Generate for every prompt (token ids, any lengths); same key -> same output."""
        if not isinstance(sampling, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")
        mode = SamplingMode.of(sampling)
        if mode.top_k > self.cfg.vocab_size:
            raise ValueError(f"top_k={mode.top_k} exceeds the vocabulary size {self.cfg.vocab_size}")
        key = _as_key(key)
        rows = validate_prompts(prompts, self.cfg.vocab_size)
        budgets = validate_budgets(max_new_tokens, len(rows))
        chunks = plan_chunks(rows, budgets, self.config, self.batch_multiple, self.pad_token_id)

        n_rows, width = len(rows), int(budgets.max())
        tokens = np.full((n_rows, width), self.pad_token_id, np.int32)
        logprobs = np.zeros((n_rows, width), np.float32)
        lengths = np.zeros((n_rows,), np.int32)
        steps = 0
        clock = {"prefill": 0.0, "decode": 0.0}
        temperature = jnp.float32(sampling.temperature if not sampling.greedy else 1.0)
        top_p = jnp.float32(sampling.top_p)
        if self.rules is not None and self.rules.mesh is not None:
            key = put(key, self.rules.replicated())
        unstack = self._unstack(params)
        on_cpu = _platforms(params) == {"cpu"}  # CPU-only decode choices (splits, key layout)
        # One copy per call, shared by every chunk's decode program. The prefill keeps the
        # stacked weights: it reads each layer once per chunk, so a copy out of the stack costs
        # it nothing extra (and XLA 0.11.2 on an H200 crashed on the unstacked batch-64 prefill).
        decode_params = _unstack_layers(params) if unstack else params
        for chunk in chunks:
            splits = self._matmul_splits(on_cpu, len(chunk.budgets)) if unstack else 1
            spec = self.spec(chunk.gen_len, mode, cascade=chunk.group > 0, per_layer_cache=unstack,
                             matmul_splits=splits, keys_last=unstack and on_cpu)
            state = self._run(params, decode_params, chunk, spec, key, temperature, top_p, clock)
            # to_host: on a multi-host mesh the rows are spread over hosts; every host needs all.
            out_tok, out_lp, out_len, step = (distributed.to_host(a) for a in (
                state.tokens, state.logprobs, state.lengths, state.step))
            w = min(width, chunk.gen_len)
            tokens[chunk.rows, :w] = out_tok[chunk.slots, :w]
            logprobs[chunk.rows, :w] = out_lp[chunk.slots, :w]
            lengths[chunk.rows] = out_len[chunk.slots]
            steps = max(steps, int(step))
        mask = np.arange(width)[None, :] < lengths[:, None]
        stop_set = set(self.stop_token_ids)
        reasons = [FINISH_STOP if n and int(tokens[i, n - 1]) in stop_set else FINISH_LENGTH
                   for i, n in enumerate(lengths)]
        return SampleOutput(tokens=tokens, logprobs=logprobs, mask=mask, lengths=lengths,
                            finish_reasons=reasons, steps=steps,
                            prefill_seconds=clock["prefill"], decode_seconds=clock["decode"])

    # ------------------------------------------------------------------ internals
    def spec(self, gen_len: int, mode: SamplingMode, cascade: bool = False,
             per_layer_cache: bool = False, matmul_splits: int = 1, keys_last: bool = False
             ) -> loop.ProgramSpec:
        return loop.ProgramSpec(cfg=self.cfg, rules=self.rules, gen_len=gen_len, mode=mode,
                                stop_ids=self.stop_token_ids, pad_id=self.pad_token_id,
                                prefill_chunk=self.config.prefill_chunk, cascade=cascade,
                                per_layer_cache=per_layer_cache, matmul_splits=matmul_splits,
                                keys_last=keys_last)

    def _unstack(self, params: api.Params) -> bool:
        if self.config.unstack_layers is not None:
            return self.config.unstack_layers
        return "tpu" not in _platforms(params)

    def _matmul_splits(self, on_cpu: bool, batch: int) -> int:
        """`SamplerConfig.decode_matmul_splits`, or its auto rule: 2 for a CPU decode of 2 or
        more rows (a single row's matrix-vector products gain nothing), else 1."""
        if self.config.decode_matmul_splits is not None:
            return self.config.decode_matmul_splits
        return 2 if on_cpu and batch >= 2 else 1

    def _rope_table(self, length: int) -> tuple[jax.Array, jax.Array]:
        """cos/sin for positions [0, length) (a prompt bucket + a generation bucket covers every
        position a chunk reaches); one small table per length, kept for later calls."""
        if length not in self._rope_tables:
            table = _build_rope_table(self.cfg, length)
            if self.rules is not None and self.rules.mesh is not None:
                table = put(table, self.rules.replicated())
            self._rope_tables[length] = table
        return self._rope_tables[length]

    def _place(self, arr: np.ndarray) -> jax.Array:
        """Host array -> device, split over the mesh's batch axes when there is a mesh."""
        if self.rules is None or self.rules.mesh is None:
            return jnp.asarray(arr)
        names = ("batch",) + (None,) * (arr.ndim - 1)
        return put(arr, self.rules.sharding(names, arr.shape))

    def _run(self, params: api.Params, decode_params: api.Params, chunk: Chunk,
             spec: loop.ProgramSpec, key: jax.Array, temperature: jax.Array, top_p: jax.Array,
             clock: dict[str, float]) -> loop.DecodeState:
        """Prefill (on `params`) then decode (on `decode_params`, the same weights, maybe
        unstacked) one chunk; waits on each so `clock` splits the time (the decode program
        needs the prefill's result anyway, so the wait costs nothing)."""
        t0 = time.perf_counter()
        rope_table = self._rope_table(chunk.tokens.shape[1] + spec.gen_len)
        state = loop.prefill(params, self._place(chunk.tokens), self._place(chunk.mask),
                             self._place(chunk.budgets), self._place(chunk.row_ids), key,
                             temperature, top_p, rope_table,
                             None if chunk.src is None else self._place(chunk.src), spec=spec)
        jax.block_until_ready(state)
        t1 = time.perf_counter()
        state = jax.block_until_ready(loop.decode(decode_params, state, temperature, top_p,
                                                     rope_table, spec=spec))
        clock["prefill"] += t1 - t0
        clock["decode"] += time.perf_counter() - t1
        return state

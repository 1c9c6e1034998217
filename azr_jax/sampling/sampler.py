"""`Sampler`: token ids in, token ids + logprobs + masks out, on the caller's (sharded) params.

Thin orchestration around the two engines' jitted programs: validate, make the decode plan
(`plan.make_plan`), then either plan static chunks (`loop.prefill` / `loop.decode` per chunk) or
one queue (`continuous.generate`), place the padded arrays on the mesh, run, and put the rows
back into the caller's order. All math lives in the jitted programs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.model import api, rope
from azr_jax.model.config import ModelConfig
from azr_jax.sampling import continuous, loop
from azr_jax.sampling.batching import Chunk, plan_chunks, plan_queue, validate_budgets, validate_prompts
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.ops import SamplingMode
from azr_jax.sampling.plan import DecodePlan, make_plan
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
    steps: int = 0  # tokens the longest row drew (the static engine's early exit: < N)
    prefill_seconds: float = 0.0  # wall time of the prefill programs (static engine)
    decode_seconds: float = 0.0  # wall time of the decode loops (continuous: the whole program)
    engine: str = "static"
    # Decode steps (summed over static chunks) and the rows they computed, summed over steps:
    # real or not (a finished row riding along, a dummy row, a free slot).
    decode_steps: int = 0
    slot_steps: int = 0
    decode_tokens: int = 0  # tokens drawn by decode steps (a row's first token is prefill's)
    kv_bytes_read: float = 0.0  # KV cache bytes the decode steps read (keys + values)

    @property
    def slot_utilisation(self) -> float:
        """Decode tokens / (slots x decode steps): 1 = no step computed an idle row."""
        return self.decode_tokens / self.slot_steps if self.slot_steps else float("nan")

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes the decode steps read per generated token."""
        n = int(self.lengths.sum())
        return self.kv_bytes_read / n if n else float("nan")

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


def platform_of(params: api.Params) -> str:
    """One platform name for the decode plan: 'tpu' or 'gpu' if any device is one, else 'cpu'."""
    found = _platforms(params)
    return next((p for p in ("tpu", "gpu") if p in found), "cpu")


def _kv_bytes_per_slot(cfg: ModelConfig) -> int:
    """Key + value bytes of one cached token over all layers."""
    return 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * jnp.dtype(cfg.dtype).itemsize


def _as_key(key: jax.Array) -> jax.Array:
    """A scalar typed PRNG key from either a typed key or a raw uint32 key (`PRNGKey`)."""
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(f"key must be a jax PRNG key (jax.random.key(seed)), got {type(key).__name__}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if key.dtype != jnp.uint32 or key.ndim != 1:
        raise TypeError(
            f"key must be a PRNG key (typed, or raw uint32 data), got {key.dtype}{list(key.shape)}"
        )
    return jax.random.wrap_key_data(jnp.asarray(key))


class Sampler:
    """Batched generation for one model config.

    `params` are passed to each call (a jit argument, so updated params never recompile).
    `stop_token_ids` default to the config's EOS ids; an empty tuple disables stopping.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        rules: ShardingRules | None = None,
        config: SamplerConfig = SamplerConfig(),
        stop_token_ids: Sequence[int] | None = None,
        pad_token_id: int = 0,
    ):
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
    def generate(
        self,
        params: api.Params,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams,
        key: jax.Array,
    ) -> SampleOutput:
        """Generate for every prompt (token ids, any lengths); same key -> same output."""
        if not isinstance(sampling, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")
        mode = SamplingMode.of(sampling)
        if mode.top_k > self.cfg.vocab_size:
            raise ValueError(f"top_k={mode.top_k} exceeds the vocabulary size {self.cfg.vocab_size}")
        key = _as_key(key)
        rows = validate_prompts(prompts, self.cfg.vocab_size)
        budgets = validate_budgets(max_new_tokens, len(rows))
        if self.rules is not None and self.rules.mesh is not None:
            key = put(key, self.rules.replicated())
        platform = platform_of(params)
        plan = make_plan(platform, len(rows), self.config, self.batch_multiple)
        # One copy per call of the weights as the decode step reads them. The prefill keeps the
        # stacked weights: it reads each layer once per pass, so a copy out of the stack costs
        # it nothing extra (and XLA 0.11.2 on an H200 crashed on the unstacked batch-64 prefill).
        decode_params = _unstack_layers(params) if plan.unstack_layers else params
        run = self._continuous if plan.engine == "continuous" else self._static
        out = run(params, decode_params, rows, budgets, mode, sampling, key, plan, platform)
        out.mask = np.arange(out.tokens.shape[1])[None, :] < out.lengths[:, None]
        stop_set = set(self.stop_token_ids)
        out.finish_reasons = [
            FINISH_STOP if n and int(out.tokens[i, n - 1]) in stop_set else FINISH_LENGTH
            for i, n in enumerate(out.lengths)
        ]
        return out

    # ------------------------------------------------------------------ engines
    def _static(
        self,
        params: api.Params,
        decode_params: api.Params,
        rows: list[np.ndarray],
        budgets: np.ndarray,
        mode: SamplingMode,
        sampling: SamplingParams,
        key: jax.Array,
        plan: DecodePlan,
        platform: str,
    ) -> SampleOutput:
        chunks = plan_chunks(rows, budgets, self.config, self.batch_multiple, self.pad_token_id)
        n_rows, width = len(rows), int(budgets.max())
        out = SampleOutput(
            tokens=np.full((n_rows, width), self.pad_token_id, np.int32),
            logprobs=np.zeros((n_rows, width), np.float32),
            mask=None,
            lengths=np.zeros((n_rows,), np.int32),
            finish_reasons=[],
        )
        clock = {"prefill": 0.0, "decode": 0.0}
        temperature, top_p = _strengths(sampling)
        for chunk in chunks:
            B, P, N = chunk.shape
            chunk_plan = make_plan(platform, B, self.config, self.batch_multiple, engine="static")
            spec = self.spec(N, mode, chunk_plan, cascade=chunk.group > 0)
            state = self._run(params, decode_params, chunk, spec, key, temperature, top_p, clock)
            # to_host: on a multi-host mesh the rows are spread over hosts; every host needs all.
            out_tok, out_lp, out_len, step = (
                distributed.to_host(a) for a in (state.tokens, state.logprobs, state.lengths, state.step)
            )
            w = min(width, N)
            out.tokens[chunk.rows, :w] = out_tok[chunk.slots, :w]
            out.logprobs[chunk.rows, :w] = out_lp[chunk.slots, :w]
            out.lengths[chunk.rows] = out_len[chunk.slots]
            out.steps = max(out.steps, int(step))
            steps = int(step) - 1
            out.decode_steps += steps
            out.slot_steps += B * steps
            out.decode_tokens += int(np.maximum(out_len - 1, 0).sum())
            U = chunk.tokens.shape[0]
            slots = B * (N - 1) + U * P if chunk.group else B * (P + N - 1)
            out.kv_bytes_read += float(steps) * slots * _kv_bytes_per_slot(self.cfg)
        out.prefill_seconds, out.decode_seconds = clock["prefill"], clock["decode"]
        return out

    def _continuous(
        self,
        params: api.Params,
        decode_params: api.Params,
        rows: list[np.ndarray],
        budgets: np.ndarray,
        mode: SamplingMode,
        sampling: SamplingParams,
        key: jax.Array,
        plan: DecodePlan,
        platform: str,
    ) -> SampleOutput:
        queue = plan_queue(
            rows,
            budgets,
            self.config,
            plan.page_size,
            plan.prefill_chunk,
            self.pad_token_id,
            plan.share_prompts,
        )
        spec = continuous.ProgramSpec(
            cfg=self.cfg,
            rules=self.rules,
            plan=plan,
            mode=mode,
            stop_ids=self.stop_token_ids,
            pad_id=self.pad_token_id,
            shapes=continuous.Shapes(
                queue=len(queue.row_ids),
                prompts=len(queue.lengths),
                prompt_len=queue.tokens.shape[1],
                gen_len=queue.gen_len,
                group=queue.group,
            ),
        )
        temperature, top_p = _strengths(sampling)
        rope_table = self._rope_table(queue.tokens.shape[1] + queue.gen_len)
        q = continuous.Queue(
            *(
                self._put(a)
                for a in (
                    queue.row_ids,
                    queue.src,
                    queue.budgets,
                    np.int32(len(rows)),
                    queue.tokens,
                    queue.lengths,
                    queue.refs,
                )
            )
        )
        t0 = time.perf_counter()
        state = jax.block_until_ready(
            continuous.generate(params, decode_params, q, key, temperature, top_p, rope_table, spec=spec)
        )
        seconds = time.perf_counter() - t0
        tok, lp, lengths = (distributed.to_host(a) for a in (state.tokens, state.logprobs, state.lengths))
        stats = continuous.Stats(*(distributed.to_host(a).item() for a in state.stats))
        n, width = len(rows), int(budgets.max())
        out = SampleOutput(
            tokens=np.empty((n, width), np.int32),
            logprobs=np.empty((n, width), np.float32),
            mask=None,
            lengths=np.empty((n,), np.int32),
            finish_reasons=[],
            decode_seconds=seconds,
            engine="continuous",
        )
        out.tokens[queue.order] = tok[:n, :width]
        out.logprobs[queue.order] = lp[:n, :width]
        out.lengths[queue.order] = lengths[:n]
        out.steps = int(lengths.max())
        out.decode_steps = int(stats.steps)
        out.slot_steps = int(stats.slots)
        out.decode_tokens = int(stats.tokens)
        out.kv_bytes_read = (stats.prompt_tokens + stats.gen_tokens) * _kv_bytes_per_slot(self.cfg)
        return out

    # ------------------------------------------------------------------ internals
    def spec(
        self, gen_len: int, mode: SamplingMode, plan: DecodePlan, cascade: bool = False
    ) -> loop.ProgramSpec:
        return loop.ProgramSpec(
            cfg=self.cfg,
            rules=self.rules,
            gen_len=gen_len,
            mode=mode,
            stop_ids=self.stop_token_ids,
            pad_id=self.pad_token_id,
            plan=plan,
            cascade=cascade,
        )

    def _put(self, arr: np.ndarray) -> jax.Array:
        """Host array -> device, replicated on the mesh when there is one."""
        if self.rules is None or self.rules.mesh is None:
            return jnp.asarray(arr)
        return put(np.asarray(arr), self.rules.replicated())

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

    def _run(
        self,
        params: api.Params,
        decode_params: api.Params,
        chunk: Chunk,
        spec: loop.ProgramSpec,
        key: jax.Array,
        temperature: jax.Array,
        top_p: jax.Array,
        clock: dict[str, float],
    ) -> loop.DecodeState:
        """Prefill (on `params`) then decode (on `decode_params`, the same weights, maybe
        unstacked) one chunk; waits on each so `clock` splits the time (the decode program
        needs the prefill's result anyway, so the wait costs nothing)."""
        t0 = time.perf_counter()
        rope_table = self._rope_table(chunk.tokens.shape[1] + spec.gen_len)
        state = loop.prefill(
            params,
            self._place(chunk.tokens),
            self._place(chunk.mask),
            self._place(chunk.budgets),
            self._place(chunk.row_ids),
            key,
            temperature,
            top_p,
            rope_table,
            None if chunk.src is None else self._place(chunk.src),
            spec=spec,
        )
        jax.block_until_ready(state)
        t1 = time.perf_counter()
        state = jax.block_until_ready(
            loop.decode(decode_params, state, temperature, top_p, rope_table, spec=spec)
        )
        clock["prefill"] += t1 - t0
        clock["decode"] += time.perf_counter() - t1
        return state


def _strengths(sampling: SamplingParams) -> tuple[jax.Array, jax.Array]:
    """The traced sampling strengths (temperature 1 for greedy: logprobs are unscaled)."""
    return (jnp.float32(sampling.temperature if not sampling.greedy else 1.0), jnp.float32(sampling.top_p))

"""The decoder transformer (Qwen2/Qwen2.5 and Llama 3.x), in Flax NNX: weights, one decoder
block, and the plain forward that training and prefill run.

Layout choices, each for a reason:
- Layer weights are *stacked* along a leading `layers` axis and the forward runs `lax.scan` over
  them: one layer is compiled once (fast compiles for a 48-layer 14B model), and per-layer remat
  is a `jax.checkpoint` around the scan body.
- Attention projections keep heads as a real dimension ([embed, heads, head_dim]) so tensor
  parallelism shards heads, never the middle of a head.
- Every parameter carries `logical_axes` metadata; `sharding/rules.py` maps those names to the
  mesh. The model itself only places a few activation constraints through the same rules.
- The KV cache is an explicit input/output (not module state), so the sampler can donate it to
  jit and the trainer never sees it.
- One decoder block (`block`) serves both this forward and the one-token decode step
  (`model/decode.py`); what differs is the attention it is handed and the weight layout
  (`Layout`: stacked, or `unstack_layers`' per-layer [out, in] matrices).

Forward contract: token ids [B, T], positions [B, T] (pad-aware: left padding gets position 0
and real tokens count from 0), attention mask [B, T] (1 = real token); returns fp32 logits
[B, T, V] (and the updated cache when one is given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from azr_jax.model.config import ModelConfig
from azr_jax.model.rope import apply_rope, inverse_frequencies, rope_tables
from sharding.rules import ShardingRules

# Large negative instead of -inf: a fully masked query row (a left-pad position) then yields a
# uniform, finite softmax instead of NaNs that would poison gradients through the mask.
MASK_VALUE = -1e30


class KVCache(NamedTuple):
    """Dense keys/values of a batch of prompts, written by the chunked prefill.

    k, v: [layers, B, S, kv_heads, head_dim]; valid: [B, S] (slot holds a real token);
    index: int32 scalar, the next slot to write (all rows advance together because prompts are
    left-padded to a common length). The decode step reads other layouts (`model/decode.py`),
    made from this one once per call.
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype: Any = None) -> KVCache:
        dtype = jnp.dtype(dtype or cfg.dtype)
        shape = (cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim)
        return cls(
            jnp.zeros(shape, dtype),
            jnp.zeros(shape, dtype),
            jnp.zeros((batch, length), bool),
            jnp.zeros((), jnp.int32),
        )

    @staticmethod
    def logical_axes() -> KVCache:
        kv = ("layers", "batch", "cache_seq", "act_kv_heads", "head_dim")
        return KVCache(kv, kv, ("batch", "cache_seq"), ())


def _param(
    key: jax.Array, shape: tuple[int, ...], dtype: Any, axes: tuple[str, ...], std: float | None = 0.02
) -> nnx.Param:
    value = jnp.ones(shape, dtype) if std is None else std * jax.random.normal(key, shape, dtype)
    return nnx.Param(value, logical_axes=axes)


def _zeros(shape: tuple[int, ...], dtype: Any, axes: tuple[str, ...]) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, dtype), logical_axes=axes)


class DecoderLayers(nnx.Module):
    """All decoder blocks, weights stacked on a leading `layers` axis."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        L, D, N, K, H, F = (
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
            cfg.intermediate_size,
        )
        pd = jnp.dtype(cfg.param_dtype)
        self.attn_norm = _param(None, (L, D), pd, ("layers", "norm"), std=None)
        self.q_proj = _param(rngs.params(), (L, D, N, H), pd, ("layers", "embed", "heads", "head_dim"))
        self.k_proj = _param(rngs.params(), (L, D, K, H), pd, ("layers", "embed", "kv_heads", "head_dim"))
        self.v_proj = _param(rngs.params(), (L, D, K, H), pd, ("layers", "embed", "kv_heads", "head_dim"))
        self.o_proj = _param(rngs.params(), (L, N, H, D), pd, ("layers", "heads", "head_dim", "embed"))
        if cfg.qkv_bias:
            self.q_bias = _zeros((L, N, H), pd, ("layers", "heads", "head_dim"))
            self.k_bias = _zeros((L, K, H), pd, ("layers", "kv_heads", "head_dim"))
            self.v_bias = _zeros((L, K, H), pd, ("layers", "kv_heads", "head_dim"))
        if cfg.o_bias:
            self.o_bias = _zeros((L, D), pd, ("layers", "norm"))
        self.mlp_norm = _param(None, (L, D), pd, ("layers", "norm"), std=None)
        self.gate_proj = _param(rngs.params(), (L, D, F), pd, ("layers", "embed", "mlp"))
        self.up_proj = _param(rngs.params(), (L, D, F), pd, ("layers", "embed", "mlp"))
        self.down_proj = _param(rngs.params(), (L, F, D), pd, ("layers", "mlp", "embed"))
        if cfg.mlp_bias:
            self.gate_bias = _zeros((L, F), pd, ("layers", "mlp"))
            self.up_bias = _zeros((L, F), pd, ("layers", "mlp"))
            self.down_bias = _zeros((L, D), pd, ("layers", "norm"))

    def stacked(self) -> dict[str, jax.Array]:
        """The raw stacked arrays, keyed by parameter name (what `lax.scan` iterates over)."""
        return {k: v[...] for k, v in vars(self).items() if isinstance(v, nnx.Param)}


class Transformer(nnx.Module):
    """Embedding -> N decoder blocks -> final RMSNorm -> LM head (tied or separate)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = jnp.dtype(cfg.param_dtype)
        self.embed = _param(rngs.params(), (cfg.vocab_size, cfg.hidden_size), pd, ("vocab", "embed"))
        self.layers = DecoderLayers(cfg, rngs)
        self.final_norm = _param(None, (cfg.hidden_size,), pd, ("norm",), std=None)
        if not cfg.tie_word_embeddings:
            self.lm_head = _param(rngs.params(), (cfg.hidden_size, cfg.vocab_size), pd, ("embed", "vocab"))

    # ------------------------------------------------------------------ forward
    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        attn_mask: jax.Array,
        cache: KVCache | None = None,
        *,
        rules: ShardingRules | None = None,
        return_hidden: bool = False,
    ) -> tuple[jax.Array, KVCache | None]:
        return forward(
            self.cfg,
            self.pure(),
            tokens,
            positions,
            attn_mask,
            cache,
            rules=rules,
            return_hidden=return_hidden,
        )

    def logits(self, hidden: jax.Array, *, rules: ShardingRules | None = None) -> jax.Array:
        return lm_head(self.cfg, self.pure(), hidden, rules=rules)

    def pure(self) -> dict[str, Any]:
        """The weights as the plain dict `forward` takes (same keys as `nnx.to_pure_dict`)."""
        out = {"embed": self.embed[...], "layers": self.layers.stacked(), "final_norm": self.final_norm[...]}
        if not self.cfg.tie_word_embeddings:
            out["lm_head"] = self.lm_head[...]
        return out


# Matrices that `unstack_layers` stores as [out, in] ("NK" for the matmul library), and how.
_OUT_IN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
    """A decode-time view of the params: `layers` as a tuple of per-layer dicts, matrices
    stored 2-D as [out, in] (q_proj [heads * head_dim, embed], ...). Only the decode step reads
    it (not the optimizer, checkpoints or export).

    Why: (1) each step of a layer scan copies that layer's weights out of the stacked arrays
    before its matmuls (a dot needs its own buffer), on XLA:CPU and XLA:GPU alike; with one
    buffer per layer the decode step runs a Python loop and nothing is copied. (2) At decode's
    small M the CPU matmul kernels run faster on [out, in] weights. Costs one copy of the
    layer weights per sampler call. Measurements: benchmarks/RESULTS.md (stops 11-12).
    """
    stacked = params["layers"]
    n = next(iter(stacked.values())).shape[0]

    def layer(i: int) -> dict[str, jax.Array]:
        out = {}
        for k, v in stacked.items():
            w = v[i]
            if k in ("q_proj", "k_proj", "v_proj"):  # [embed, heads, head_dim] -> 2-D
                w = w.reshape(w.shape[0], -1)
            elif k == "o_proj":  # [heads, head_dim, embed] -> 2-D
                w = w.reshape(-1, w.shape[-1])
            out[k] = w.T if k in _OUT_IN else w
        return out

    return {**params, "layers": tuple(layer(i) for i in range(n))}


def _linear(x: jax.Array, w: jax.Array, splits: int = 1, **kw: Any) -> jax.Array:
    """x [..., in] times an [out, in] matrix -> [..., out].

    With `splits` > 1 (and `out` divisible), the matrix is viewed as [splits, out / splits,
    in] (a free reshape) and multiplied as one batched matmul whose parts are put back side
    by side: XLA:CPU's matmul kernels spread a batched matmul over their threads far better
    than one matmul with a few rows (benchmarks/RESULTS.md, stop 13).
    """
    if splits == 1 or w.shape[0] % splits:
        return jnp.einsum("...d,ed->...e", x, w, **kw)
    y = jnp.einsum("...d,ced->c...e", x, w.reshape(splits, w.shape[0] // splits, w.shape[1]), **kw)
    return jnp.moveaxis(y, 0, -2).reshape(*x.shape[:-1], w.shape[0])


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a block's weights are stored and multiplied (static: part of a jit key).

    Stacked (the stored layout, `out_in` False): einsums over [embed, heads, head_dim] etc.
    `out_in`: `unstack_layers`' 2-D [out, in] matrices, multiplied in `splits` batched parts
    along the output axis (`_linear`).
    """

    out_in: bool = False
    splits: int = 1

    def __post_init__(self) -> None:
        s = self.splits
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"matmul_splits must be an int >= 1, got {s!r}")

    def heads(self, h: jax.Array, w: jax.Array, n: int, head_dim: int) -> jax.Array:
        """[B, T, D] -> [B, T, n, head_dim] (q, k or v)."""
        if self.out_in:
            return _linear(h, w, self.splits).reshape(*h.shape[:-1], n, head_dim)
        return jnp.einsum("btd,dnh->btnh", h, w)

    def merge_heads(self, a: jax.Array, w: jax.Array) -> jax.Array:
        """[B, T, N, H] -> [B, T, D] (o_proj)."""
        if self.out_in:
            return _linear(a.reshape(*a.shape[:2], -1), w, self.splits)
        return jnp.einsum("btnh,nhd->btd", a, w)

    def dense(self, h: jax.Array, w: jax.Array) -> jax.Array:
        """[B, T, in] -> [B, T, out] (MLP matrices, stored [in, out] when stacked)."""
        return _linear(h, w, self.splits) if self.out_in else jnp.einsum("bti,io->bto", h, w)

    @property
    def head_splits(self) -> int:
        """Parts for a tied LM head ([vocab, embed] is an [out, in] matrix either way)."""
        return self.splits if self.out_in else 1


STACKED = Layout()

# attend(q [B,T,N,H], k, v [B,T,K,H]) -> (attention output [B,T,N,H], what the caller keeps)
Attend = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, Any]]


def block(
    cfg: ModelConfig,
    rules: ShardingRules,
    layout: Layout,
    p: dict[str, jax.Array],
    x: jax.Array,
    cos: jax.Array,
    sin: jax.Array,
    attend: Attend,
) -> tuple[jax.Array, Any]:
    """One decoder block on hidden states [B, T, D]: pre-norm attention then a SwiGLU MLP.
    `attend` owns everything about keys and values (cache reads and writes); its second
    output is returned as is."""
    dtype = jnp.dtype(cfg.dtype)
    p = {k: v.astype(dtype) for k, v in p.items()}
    h = rms_norm(x, p["attn_norm"], cfg.rms_norm_eps)
    q = layout.heads(h, p["q_proj"], cfg.num_heads, cfg.head_dim)
    k = layout.heads(h, p["k_proj"], cfg.num_kv_heads, cfg.head_dim)
    v = layout.heads(h, p["v_proj"], cfg.num_kv_heads, cfg.head_dim)
    if cfg.qkv_bias:
        q, k, v = q + p["q_bias"], k + p["k_bias"], v + p["v_bias"]
    q = rules.constrain(apply_rope(q, cos, sin), ("batch", "seq", "act_heads", None))
    k = rules.constrain(apply_rope(k, cos, sin), ("batch", "seq", "act_kv_heads", None))
    v = rules.constrain(v, ("batch", "seq", "act_kv_heads", None))
    attn, kept = attend(q, k, v)
    out = layout.merge_heads(attn, p["o_proj"])
    if cfg.o_bias:
        out = out + p["o_bias"]
    x = rules.constrain(x + out, ("batch", "seq", "act_embed"))

    h = rms_norm(x, p["mlp_norm"], cfg.rms_norm_eps)
    gate, up = layout.dense(h, p["gate_proj"]), layout.dense(h, p["up_proj"])
    if cfg.mlp_bias:
        gate, up = gate + p["gate_bias"], up + p["up_bias"]
    act = rules.constrain(silu(gate) * up, ("batch", "seq", "act_mlp"))
    down = layout.dense(act, p["down_proj"])
    if cfg.mlp_bias:
        down = down + p["down_bias"]
    return rules.constrain(x + down, ("batch", "seq", "act_embed")), kept


def embed(cfg: ModelConfig, params: dict[str, Any], tokens: jax.Array, rules: ShardingRules) -> jax.Array:
    x = jnp.take(params["embed"], tokens, axis=0).astype(jnp.dtype(cfg.dtype))
    return rules.constrain(x, ("batch", "seq", "act_embed"))


def rope_at(
    cfg: ModelConfig, positions: jax.Array, rope_table: tuple[jax.Array, jax.Array] | None
) -> tuple[jax.Array, jax.Array]:
    """cos/sin [B, T, head_dim] for `positions`: gathered from `rope.table`'s (cos, sin) when
    given (a decode loop computes it once, outside the loop: XLA:CPU otherwise recomputes sin/cos
    inside every layer's fusions), else computed."""
    if rope_table is None:
        return rope_tables(positions, inverse_frequencies(cfg))
    return tuple(jnp.take(t, positions, axis=0) for t in rope_table)


def forward(
    cfg: ModelConfig,
    params: dict[str, Any],
    tokens: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None = None,
    *,
    rules: ShardingRules | None = None,
    return_hidden: bool = False,
    fresh_cache: bool = False,
    rope_table: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """Logits [B, T, V] in fp32 (or final hidden states [B, T, D] with `return_hidden`), on the
    stacked params (a `lax.scan` over layers).

    Without a cache, query t attends keys s <= t that are real tokens. With a cache, the
    T new tokens are written at slots [index, index + T) and attend every valid slot before
    `index` plus each other. `fresh_cache` says the cache holds nothing yet (a prompt's first
    chunk), so it is only written, never read. `rope_table`: see `rope_at`.
    """
    rules = rules or ShardingRules(None)
    T = tokens.shape[1]
    attn_mask = attn_mask.astype(bool)
    x = embed(cfg, params, tokens, rules)
    cos, sin = rope_at(cfg, positions, rope_table)
    self_mask = jnp.tril(jnp.ones((T, T), bool))[None, :, :] & attn_mask[:, None, :]
    reads = cache is not None and not fresh_cache
    cache_mask = _cache_mask(cache, T) if reads else None

    def layer(x: jax.Array, inputs: tuple[dict[str, jax.Array], Any]):
        p, kv = inputs
        attend = lambda q, k, v: _attention(cfg, q, k, v, self_mask, kv, cache_mask)
        x, new_kv = block(cfg, rules, STACKED, p, x, cos, sin, attend)
        return x, None if cache is None else new_kv

    if cfg.remat != "none":
        policy = {
            "full": jax.checkpoint_policies.nothing_saveable,
            "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
        }[cfg.remat]
        layer = jax.checkpoint(layer, policy=policy)
    x, new_kv = jax.lax.scan(layer, x, (params["layers"], (cache.k, cache.v) if reads else None))
    new_cache = None if cache is None else _write(cache, new_kv, attn_mask)
    x = rms_norm(x, params["final_norm"], cfg.rms_norm_eps)
    if return_hidden:
        return x, new_cache
    return lm_head(cfg, params, x, rules=rules), new_cache


def _cache_mask(cache: KVCache, T: int) -> jax.Array:
    """[B, T, S]: the new tokens attend the cache's valid slots before `index`."""
    S = cache.valid.shape[1]
    before = jnp.arange(S) < cache.index
    return jnp.broadcast_to((cache.valid & before[None, :])[:, None, :], (cache.valid.shape[0], T, S))


def _write(cache: KVCache, new_kv: tuple[jax.Array, jax.Array], attn_mask: jax.Array) -> KVCache:
    """The new tokens' keys/values ([layers, B, T, K, H]) written at `index`, once, after the
    layers (the cache is only read inside them, so XLA never copies it)."""
    at = (0, 0, cache.index, 0, 0)
    k, v = (
        jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), at)
        for buf, new in zip((cache.k, cache.v), new_kv)
    )
    valid = jax.lax.dynamic_update_slice(cache.valid, attn_mask, (0, cache.index))
    return KVCache(k, v, valid, cache.index + attn_mask.shape[1])


def _attention(
    cfg: ModelConfig,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    self_mask: jax.Array,
    kv: tuple[jax.Array, jax.Array] | None,
    cache_mask: jax.Array | None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Grouped-query attention of T new tokens over (a dense cache layer [B, S, K, H] and) each
    other; query heads are [kv_heads, group] so keys/values are never repeated. Returns the
    output [B, T, N, H] and the new (k, v) for the caller to write."""
    B, T, N, H = q.shape
    dtype = jnp.dtype(cfg.dtype)
    qg = q.reshape(B, T, cfg.num_kv_heads, cfg.q_per_kv, H)
    scale = H**-0.5
    scores = [
        jnp.where(
            self_mask[:, None, None],
            jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale,
            MASK_VALUE,
        )
    ]
    values = [v]
    if kv is not None:
        ck, cv = kv[0].astype(dtype), kv[1].astype(dtype)
        scores.insert(
            0,
            jnp.where(
                cache_mask[:, None, None],
                jnp.einsum("btkgh,bskh->bkgts", qg, ck, preferred_element_type=jnp.float32) * scale,
                MASK_VALUE,
            ),
        )
        values.insert(0, cv)
    probs = jax.nn.softmax(jnp.concatenate(scores, axis=-1), axis=-1).astype(dtype)
    out, start = 0, 0
    for val in values:  # one product per key block: the cache is never copied into a concat
        width = val.shape[1]
        out = out + jnp.einsum("bkgts,bskh->btkgh", probs[..., start : start + width], val)
        start += width
    return out.reshape(B, T, N, H), (k, v)


def lm_head(
    cfg: ModelConfig,
    params: dict[str, Any],
    hidden: jax.Array,
    *,
    rules: ShardingRules | None = None,
    splits: int = 1,
) -> jax.Array:
    """LM head on final hidden states; fp32 output whatever the compute dtype. `splits`: see
    `_linear` (the tied embedding is [vocab, embed], an [out, in] matrix; an untied head is
    stored [embed, vocab] and is multiplied whole)."""
    rules = rules or ShardingRules(None)
    dtype = hidden.dtype
    if cfg.tie_word_embeddings:
        out = _linear(hidden, params["embed"].astype(dtype), splits, preferred_element_type=jnp.float32)
    else:
        out = jnp.einsum(
            "btd,dv->btv", hidden, params["lm_head"].astype(dtype), preferred_element_type=jnp.float32
        )
    return rules.constrain(out.astype(jnp.float32), ("batch", "seq", "act_vocab"))


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    """RMSNorm with fp32 statistics, cast back before the weight (HF's order of operations)."""
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return weight.astype(x.dtype) * xf.astype(x.dtype)


def silu(x: jax.Array) -> jax.Array:
    """x / (1 + e^-x): the same rounding as torch's SiLU (XLA's logistic differs in the last
    bits, which over 30 layers is enough to matter for 1e-4 logit parity)."""
    return x / (1 + jnp.exp(-x))

"""The decoder transformer (Qwen2/Qwen2.5 and Llama 3.x), in Flax NNX.

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

Forward contract: token ids [B, T], positions [B, T] (pad-aware: left padding gets position 0
and real tokens count from 0), attention mask [B, T] (1 = real token); returns fp32 logits
[B, T, V] (and the updated cache when one is given).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from azr_jax.model.config import ModelConfig
from azr_jax.model.rope import apply_rope, inverse_frequencies, rope_tables
from sharding.rules import ShardingRules

# Large negative instead of -inf: a fully masked query row (a left-pad position) then yields a
# uniform, finite softmax instead of NaNs that would poison gradients through the mask.
_MASK_VALUE = -1e30


class KVCache(NamedTuple):
    """Per-layer keys/values for incremental decoding.

    k, v: [layers, B, S, kv_heads, head_dim]; valid: [B, S] (slot holds a real token);
    index: int32 scalar, the next slot to write (all rows advance together because prompts are
    left-padded to a common length).
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype: Any = None) -> "KVCache":
        dtype = jnp.dtype(dtype or cfg.dtype)
        shape = (cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim)
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                   jnp.zeros((batch, length), bool), jnp.zeros((), jnp.int32))

    @staticmethod
    def logical_axes() -> "KVCache":
        kv = ("layers", "batch", "cache_seq", "act_kv_heads", "head_dim")
        return KVCache(kv, kv, ("batch", "cache_seq"), ())


def _param(key: jax.Array, shape: tuple[int, ...], dtype: Any, axes: tuple[str, ...],
           std: float | None = 0.02) -> nnx.Param:
    value = jnp.ones(shape, dtype) if std is None else std * jax.random.normal(key, shape, dtype)
    return nnx.Param(value, logical_axes=axes)


def _zeros(shape: tuple[int, ...], dtype: Any, axes: tuple[str, ...]) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, dtype), logical_axes=axes)


class DecoderLayers(nnx.Module):
    """All decoder blocks, weights stacked on a leading `layers` axis."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        L, D, N, K, H, F = (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads,
                            cfg.head_dim, cfg.intermediate_size)
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
            self.lm_head = _param(rngs.params(), (cfg.hidden_size, cfg.vocab_size), pd,
                                  ("embed", "vocab"))

    # ------------------------------------------------------------------ forward
    def __call__(self, tokens: jax.Array, positions: jax.Array, attn_mask: jax.Array,
                 cache: KVCache | None = None, *, rules: ShardingRules | None = None,
                 return_hidden: bool = False) -> tuple[jax.Array, KVCache | None]:
        """Logits [B, T, V] in fp32 (or final hidden states [B, T, D] with `return_hidden`).

        Without a cache, query t attends keys s <= t that are real tokens. With a cache, the
        T new tokens are written at slots [index, index + T) and attend every valid slot up to
        their own.
        """
        cfg = self.cfg
        rules = rules or ShardingRules(None)
        dtype = jnp.dtype(cfg.dtype)
        B, T = tokens.shape
        attn_mask = attn_mask.astype(bool)

        x = jnp.take(self.embed[...], tokens, axis=0).astype(dtype)
        x = rules.constrain(x, ("batch", "seq", "act_embed"))
        cos, sin = rope_tables(positions, inverse_frequencies(cfg))

        causal = jnp.tril(jnp.ones((T, T), bool))
        self_mask = causal[None, :, :] & attn_mask[:, None, :]  # [B, T(query), T(key)]
        if cache is None:
            cache_mask, kv_in = None, None
        else:
            # The new tokens attend the cache's valid slots before `index` plus each other; the
            # cache is only read inside the layers and written once below, in place.
            S = cache.valid.shape[1]
            before = jnp.arange(S) < cache.index
            cache_mask = jnp.broadcast_to((cache.valid & before[None, :])[:, None, :], (B, T, S))
            kv_in = (cache.k, cache.v)

        layer_fn = _make_layer_fn(cfg, rules, cos, sin, self_mask, cache_mask)
        if cfg.remat == "full":
            layer_fn = jax.checkpoint(layer_fn, policy=jax.checkpoint_policies.nothing_saveable)
        elif cfg.remat == "dots":
            layer_fn = jax.checkpoint(
                layer_fn, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)

        x, new_kv = jax.lax.scan(layer_fn, x, (self.layers.stacked(), kv_in))
        new_cache = None
        if cache is not None:
            at = (0, 0, cache.index, 0, 0)
            new_cache = KVCache(
                jax.lax.dynamic_update_slice(cache.k, new_kv[0].astype(cache.k.dtype), at),
                jax.lax.dynamic_update_slice(cache.v, new_kv[1].astype(cache.v.dtype), at),
                jax.lax.dynamic_update_slice(cache.valid, attn_mask, (0, cache.index)),
                cache.index + T)

        x = rms_norm(x, self.final_norm[...], cfg.rms_norm_eps)
        if return_hidden:
            return x, new_cache
        return self.logits(x, rules=rules), new_cache

    def logits(self, hidden: jax.Array, *, rules: ShardingRules | None = None) -> jax.Array:
        """LM head on final hidden states; fp32 output whatever the compute dtype."""
        rules = rules or ShardingRules(None)
        dtype = hidden.dtype
        if self.cfg.tie_word_embeddings:
            out = jnp.einsum("btd,vd->btv", hidden, self.embed[...].astype(dtype),
                             preferred_element_type=jnp.float32)
        else:
            out = jnp.einsum("btd,dv->btv", hidden, self.lm_head[...].astype(dtype),
                             preferred_element_type=jnp.float32)
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


def _decode_scores(qg: jax.Array, ck: jax.Array) -> jax.Array:
    """q.k over the cache for one new token: [B,1,K,G,H] x [B,S,K,H] -> [B,K,G,1,S] in fp32.

    Written as multiply + reduce rather than a dot: XLA can fuse the layer scan's cache slice
    into the reduction instead of copying it out for a dot, and reading the cache dominates a
    decode step at large batch (measured on 2 CPU cores, SmolLM2: a B=8 step 244 -> 191 ms,
    B=32 584 -> 385-452 ms, with the prompt-sharing change; benchmarks/RESULTS.md).
    """
    prod = qg[:, 0, None, :, :, :].astype(jnp.float32) * ck[:, :, :, None, :].astype(jnp.float32)
    return jnp.sum(prod, axis=-1).transpose(0, 2, 3, 1)[:, :, :, None, :]  # [B,S,K,G] -> ...


def _decode_values(probs: jax.Array, cv: jax.Array) -> jax.Array:
    """probs [B,K,G,1,S] x cache values [B,S,K,H] -> [B,1,K,G,H], as a fused reduce (see
    `_decode_scores`)."""
    p = probs[:, :, :, 0, :].transpose(0, 3, 1, 2)  # [B,S,K,G]
    out = jnp.sum(p[..., None].astype(jnp.float32) * cv[:, :, :, None, :].astype(jnp.float32), axis=1)
    return out.astype(cv.dtype)[:, None]


def _make_layer_fn(cfg: ModelConfig, rules: ShardingRules, cos: jax.Array, sin: jax.Array,
                   self_mask: jax.Array, cache_mask: jax.Array | None):
    """The scan body: one decoder block on (hidden, (layer params, layer cache or None)).

    Returns the new hidden state and this layer's new keys/values ([B, T, kv_heads, head_dim]),
    which the caller writes into the cache; the cache itself is only read here, so a decode
    step never copies it.
    """
    dtype = jnp.dtype(cfg.dtype)
    scale = cfg.head_dim ** -0.5
    G = cfg.q_per_kv

    def layer(x: jax.Array, inputs: tuple[dict[str, jax.Array], Any]):
        p, kv = inputs
        p = {k: v.astype(dtype) for k, v in p.items()}
        B, T, _ = x.shape

        h = rms_norm(x, p["attn_norm"], cfg.rms_norm_eps)
        q = jnp.einsum("btd,dnh->btnh", h, p["q_proj"])
        k = jnp.einsum("btd,dkh->btkh", h, p["k_proj"])
        v = jnp.einsum("btd,dkh->btkh", h, p["v_proj"])
        if cfg.qkv_bias:
            q, k, v = q + p["q_bias"], k + p["k_bias"], v + p["v_bias"]
        q = rules.constrain(apply_rope(q, cos, sin), ("batch", "seq", "act_heads", None))
        k = rules.constrain(apply_rope(k, cos, sin), ("batch", "seq", "act_kv_heads", None))
        v = rules.constrain(v, ("batch", "seq", "act_kv_heads", None))

        # Grouped-query attention: query heads are [kv_heads, group] so K/V are never repeated.
        qg = q.reshape(B, T, cfg.num_kv_heads, G, cfg.head_dim)
        scores = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
        scores = jnp.where(self_mask[:, None, None, :, :], scores, _MASK_VALUE)
        if kv is not None:  # keys of earlier tokens, from the cache
            ck, cv = kv[0].astype(dtype), kv[1].astype(dtype)
            S = ck.shape[1]
            if T == 1:
                cached = _decode_scores(qg, ck) * scale
            else:
                cached = jnp.einsum("btkgh,bskh->bkgts", qg, ck,
                                    preferred_element_type=jnp.float32) * scale
            cached = jnp.where(cache_mask[:, None, None, :, :], cached, _MASK_VALUE)
            probs = jax.nn.softmax(jnp.concatenate([cached, scores], axis=-1), axis=-1).astype(dtype)
            if T == 1:
                attn = _decode_values(probs[..., :S], cv)
            else:
                attn = jnp.einsum("bkgts,bskh->btkgh", probs[..., :S], cv)
            attn = attn + jnp.einsum("bkgts,bskh->btkgh", probs[..., S:], v)
        else:
            probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
            attn = jnp.einsum("bkgts,bskh->btkgh", probs, v)
        attn = attn.reshape(B, T, cfg.num_heads, cfg.head_dim)
        out = jnp.einsum("btnh,nhd->btd", attn, p["o_proj"])
        if cfg.o_bias:
            out = out + p["o_bias"]
        x = rules.constrain(x + out, ("batch", "seq", "act_embed"))

        h = rms_norm(x, p["mlp_norm"], cfg.rms_norm_eps)
        gate = jnp.einsum("btd,df->btf", h, p["gate_proj"])
        up = jnp.einsum("btd,df->btf", h, p["up_proj"])
        if cfg.mlp_bias:
            gate, up = gate + p["gate_bias"], up + p["up_bias"]
        act = rules.constrain(silu(gate) * up, ("batch", "seq", "act_mlp"))
        down = jnp.einsum("btf,fd->btd", act, p["down_proj"])
        if cfg.mlp_bias:
            down = down + p["down_bias"]
        x = rules.constrain(x + down, ("batch", "seq", "act_embed"))
        return x, ((k, v) if kv is not None else None)

    return layer

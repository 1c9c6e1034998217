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
  jit and the trainer never sees it. It can carry a shared prefix (cascade attention): rows
  that continue the same prompt read that prompt's keys once per group, not once per row.
- The forward is a pure function of a params dict (`forward`); `unstack_layers` gives it a
  decode-time view with one buffer per layer, for XLA:CPU where slicing the stack costs copies.

Forward contract: token ids [B, T], positions [B, T] (pad-aware: left padding gets position 0
and real tokens count from 0), attention mask [B, T] (1 = real token); returns fp32 logits
[B, T, V] (and the updated cache when one is given).
"""
from __future__ import annotations

import dataclasses
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

    Optional shared prefix (cascade attention): prefix_k [layers, U, kv_heads, P, head_dim],
    prefix_v [layers, U, kv_heads, head_dim, P] (each with the contracted axis last, the layout
    CPU matmul kernels read fastest) and
    prefix_valid [U, P] hold U prompts, each shared by B // U consecutive rows (row b reads
    prefix b // (B // U)) and read once per group instead of once per row. `k`/`v` then hold only
    what each row generated after its prompt.
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array
    prefix_k: jax.Array | None = None
    prefix_v: jax.Array | None = None
    prefix_valid: jax.Array | None = None

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype: Any = None) -> "KVCache":
        dtype = jnp.dtype(dtype or cfg.dtype)
        shape = (cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim)
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                   jnp.zeros((batch, length), bool), jnp.zeros((), jnp.int32))

    def per_layer(self, keys_last: bool = False) -> "KVCache":
        """The same cache as tuples of per-layer arrays, for one-token decode steps on the
        unstacked forward (`unstack_layers`): a layer then reads its own buffers instead of a
        slice of the stack, which XLA:CPU would copy at every step. Per-layer k/v are
        [B, kv_heads, S, head_dim], so each (row, head) reads contiguous keys (2 CPU cores,
        SmolLM2, B=32: a layer's cache attention 0.67 -> 0.40 ms at 63 slots, 8.8 -> 7.3 ms at
        447); the prefix keeps its layout.

        `keys_last` stores keys as [B, kv_heads, head_dim, S] instead (values unchanged): the
        CPU scores matmul reads that faster (2 cores, SmolLM2, 63 slots, alone: 250 -> 130 us
        at B=32, 74 -> 32 us at B=8, equal at B=1; in a profiled batch-32 step 0.65 -> 0.37 ms
        per layer), but on an H200 it made Qwen2.5-1.5B decode steps 8-14% slower at batch 64
        and 256, so the sampler uses it on CPU only. The forward reading the cache must be
        told (`forward(keys_last=...)`).
        """
        if isinstance(self.k, tuple):
            return self
        split = lambda a: None if a is None else tuple(a)
        return self._replace(k=tuple(x.transpose(_buffer_order(keys_last)) for x in self.k),
                             v=tuple(x.transpose(_buffer_order(False)) for x in self.v),
                             prefix_k=split(self.prefix_k), prefix_v=split(self.prefix_v))

    @staticmethod
    def per_layer_axes(keys_last: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Logical axes of one per-layer (k, v) buffer pair (see `per_layer`)."""
        v = ("batch", "act_kv_heads", "cache_seq", "head_dim")
        return (("batch", "act_kv_heads", "head_dim", "cache_seq") if keys_last else v), v

    @staticmethod
    def logical_axes() -> "KVCache":
        kv = ("layers", "batch", "cache_seq", "act_kv_heads", "head_dim")
        pk = ("layers", "batch", "act_kv_heads", "cache_seq", "head_dim")
        pv = ("layers", "batch", "act_kv_heads", "head_dim", "cache_seq")
        return KVCache(kv, kv, ("batch", "cache_seq"), (), pk, pv, ("batch", "cache_seq"))


def _buffer_order(slots_last: bool) -> tuple[int, int, int, int]:
    """The transpose from [B, slots, kv_heads, head_dim] (a stacked cache layer, or a step's new
    k/v) to a per-layer buffer: [B, kv_heads, slots, head_dim], or with `slots_last`
    [B, kv_heads, head_dim, slots] (`KVCache.per_layer`)."""
    return (0, 2, 3, 1) if slots_last else (0, 2, 1, 3)


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
        return forward(self.cfg, self.pure(), tokens, positions, attn_mask, cache, rules=rules,
                       return_hidden=return_hidden)

    def logits(self, hidden: jax.Array, *, rules: ShardingRules | None = None) -> jax.Array:
        return lm_head(self.cfg, self.pure(), hidden, rules=rules)

    def pure(self) -> dict[str, Any]:
        """The weights as the plain dict `forward` takes (same keys as `nnx.to_pure_dict`)."""
        out = {"embed": self.embed[...], "layers": self.layers.stacked(),
               "final_norm": self.final_norm[...]}
        if not self.cfg.tie_word_embeddings:
            out["lm_head"] = self.lm_head[...]
        return out


# Matrices that `unstack_layers` stores as [out, in] ("NK" for the matmul library), and how.
_OUT_IN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
    """A decode-time view of the params: `layers` as a tuple of per-layer dicts, matrices
    stored 2-D as [out, in] (q_proj [heads * head_dim, embed], ...). Only `forward` reads it
    (not the optimizer, checkpoints or export).

    Why: (1) each step of the layer scan copies that layer's weights out of the stacked
    arrays before its matmuls (a dot needs its own buffer): on XLA:CPU, and on XLA:GPU too
    (an H200, Qwen2.5-1.5B shape: 29% of a batch-1 decode step). With one buffer per layer
    `forward` runs a Python loop and nothing is copied. (2) At decode's small M the CPU matmul
    kernels run about 1.45x faster on [out, in] weights (2 cores, M=32, SmolLM2 shapes:
    40 -> 58 GFLOP/s for 576x1536). Costs one copy of the layer weights per sampler call; the
    sampler uses it for decode on every backend but TPU.
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
    in] (a free reshape) and multiplied as one batched matmul whose halves are put back side
    by side: XLA:CPU's matmul kernels spread a batched matmul over their threads far better
    than one matmul with a few rows (2 cores, SmolLM2, 30 layers of decode matmuls: 55-66 ->
    34-44 ms at 2-8 rows; equal at 1 row). The sampler turns it on for CPU decode.
    """
    if splits == 1 or w.shape[0] % splits:
        return jnp.einsum("...d,ed->...e", x, w, **kw)
    y = jnp.einsum("...d,ced->c...e", x, w.reshape(splits, w.shape[0] // splits, w.shape[1]),
                   **kw)
    return jnp.moveaxis(y, 0, -2).reshape(*x.shape[:-1], w.shape[0])


def forward(cfg: ModelConfig, params: dict[str, Any], tokens: jax.Array, positions: jax.Array,
            attn_mask: jax.Array, cache: KVCache | None = None, *,
            rules: ShardingRules | None = None, return_hidden: bool = False,
            fresh_cache: bool = False, rope_table: tuple[jax.Array, jax.Array] | None = None,
            matmul_splits: int = 1, keys_last: bool = False
            ) -> tuple[jax.Array, KVCache | None]:
    """Logits [B, T, V] in fp32 (or final hidden states [B, T, D] with `return_hidden`).

    Without a cache, query t attends keys s <= t that are real tokens. With a cache, the
    T new tokens are written at slots [index, index + T) and attend every valid slot up to
    their own, and the valid slots of their row's shared prefix when the cache has one.
    `fresh_cache` says the cache holds nothing yet (a prompt's first chunk), so it is only
    written, never read. `params["layers"]` is a dict of stacked arrays (scanned) or a tuple of
    per-layer dicts (`unstack_layers`, run as a Python loop). `rope_table` is `rope.table`'s
    (cos, sin) for positions below its length: a decode loop computes it once, outside the loop,
    and each step gathers its rows (XLA:CPU otherwise recomputes sin/cos inside every layer's
    fusions). `matmul_splits`: how unstacked [out, in] matrices and a tied LM head are
    multiplied (see `_linear`); the stacked layout ignores it. `keys_last`: a per-layer
    cache holds its keys as `KVCache.per_layer(keys_last=True)` made them.
    """
    if isinstance(matmul_splits, bool) or not isinstance(matmul_splits, int) or matmul_splits < 1:
        raise ValueError(f"matmul_splits must be an int >= 1, got {matmul_splits!r}")
    rules = rules or ShardingRules(None)
    dtype = jnp.dtype(cfg.dtype)
    B, T = tokens.shape
    attn_mask = attn_mask.astype(bool)

    x = jnp.take(params["embed"], tokens, axis=0).astype(dtype)
    x = rules.constrain(x, ("batch", "seq", "act_embed"))
    if rope_table is None:
        cos, sin = rope_tables(positions, inverse_frequencies(cfg))
    else:
        cos, sin = (jnp.take(t, positions, axis=0) for t in rope_table)

    layers = params["layers"]
    per_layer_cache = cache is not None and isinstance(cache.k, tuple)
    if per_layer_cache and isinstance(layers, dict):
        raise ValueError("a per-layer KV cache needs unstacked params (unstack_layers)")
    if per_layer_cache and (T != 1 or fresh_cache):
        raise ValueError(f"a per-layer KV cache takes one token per row per step, got {T} "
                         "(prefill into a stacked cache, then call per_layer())")
    causal = jnp.tril(jnp.ones((T, T), bool))
    self_mask = causal[None, :, :] & attn_mask[:, None, :]  # [B, T(query), T(key)]
    attn = _Attention(mode="none" if cache is None else "fresh" if fresh_cache else
                      "in_place" if per_layer_cache and T == 1 else "append", self_mask=self_mask)
    kv_in = None
    if cache is not None:
        S = cache.valid.shape[1]
        if attn.mode == "in_place":
            # One new token per row, written into its layer's buffer before attending it: the
            # buffer then has one producer and one reader, and XLA updates it in place.
            valid = jax.lax.dynamic_update_slice(cache.valid, attn_mask, (0, cache.index))
            attn.cache_mask = (valid & (jnp.arange(S) <= cache.index)[None, :])[:, None, :]
            attn.write_index = cache.index
            attn.keys_last = keys_last
        else:
            # The new tokens attend the cache's valid slots before `index` plus each other; the
            # cache is only read inside the layers and written once below, in place.
            before = jnp.arange(S) < cache.index
            attn.cache_mask = jnp.broadcast_to((cache.valid & before[None, :])[:, None, :],
                                               (B, T, S))
        if attn.mode != "fresh":
            kv_in = (cache.k, cache.v)
            if cache.prefix_k is not None:
                kv_in += (cache.prefix_k, cache.prefix_v)
                attn.prefix_mask = cache.prefix_valid

    out_in = not isinstance(layers, dict)
    splits = matmul_splits if out_in else 1  # only the [out, in] layout is split
    layer_fn = _make_layer_fn(cfg, rules, cos, sin, attn, out_in=out_in, splits=splits)
    if cfg.remat == "full":
        layer_fn = jax.checkpoint(layer_fn, policy=jax.checkpoint_policies.nothing_saveable)
    elif cfg.remat == "dots":
        layer_fn = jax.checkpoint(
            layer_fn, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)

    if isinstance(layers, dict):
        x, new_kv = jax.lax.scan(layer_fn, x, (layers, kv_in))
    else:
        outs = []
        for i, p in enumerate(layers):
            x, kv = layer_fn(x, (p, None if kv_in is None else tuple(a[i] for a in kv_in)))
            outs.append(kv)
        new_kv = None if cache is None else tuple(zip(*outs))  # (k per layer, v per layer)
    new_cache = None
    if attn.mode == "in_place":
        new_cache = cache._replace(k=new_kv[0], v=new_kv[1], valid=valid, index=cache.index + 1)
    elif cache is not None:
        def write(buf, new):
            new = new if isinstance(new, jax.Array) else jnp.stack(new)
            at = (0, 0, cache.index, 0, 0)
            return jax.lax.dynamic_update_slice(buf, new.astype(buf.dtype), at)
        new_cache = cache._replace(
            k=write(cache.k, new_kv[0]), v=write(cache.v, new_kv[1]),
            valid=jax.lax.dynamic_update_slice(cache.valid, attn_mask, (0, cache.index)),
            index=cache.index + T)

    x = rms_norm(x, params["final_norm"], cfg.rms_norm_eps)
    if return_hidden:
        return x, new_cache
    return lm_head(cfg, params, x, rules=rules, splits=splits), new_cache


def lm_head(cfg: ModelConfig, params: dict[str, Any], hidden: jax.Array, *,
            rules: ShardingRules | None = None, splits: int = 1) -> jax.Array:
    """LM head on final hidden states; fp32 output whatever the compute dtype. `splits`: see
    `_linear` (the tied embedding is [vocab, embed], an [out, in] matrix; an untied head is
    stored [embed, vocab] and is multiplied whole)."""
    rules = rules or ShardingRules(None)
    dtype = hidden.dtype
    if cfg.tie_word_embeddings:
        out = _linear(hidden, params["embed"].astype(dtype), splits,
                      preferred_element_type=jnp.float32)
    else:
        out = jnp.einsum("btd,dv->btv", hidden, params["lm_head"].astype(dtype),
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


def _prefix_attention(qg: jax.Array, pk: jax.Array, valid: jax.Array, scale: float
                      ) -> jax.Array:
    """Scores of B rows' queries [B,T,K,G,H] against U shared prefixes' keys [U,K,P,H] (row b
    reads prefix b // (B // U)) -> [B,K,G,T,P] fp32, masked by valid [U, P].

    The queries of a prefix's rows form one [rows*T*G, H] x [H, P] matmul per kv head, so each
    prefix is read once per group, not once per row (cascade attention). The prefix is stored
    in the layout that matmul reads, so no step transposes it (2 CPU cores: 2x faster than
    [U,P,K,H] for SmolLM2 shapes).
    """
    B, T, K, G, H = qg.shape
    U, P = valid.shape
    qu = qg.reshape(U, B // U, T, K, G, H)
    s = jnp.einsum("urtkgh,ukph->urkgtp", qu, pk, preferred_element_type=jnp.float32) * scale
    s = jnp.where(valid[:, None, None, None, None, :], s, _MASK_VALUE)
    return s.reshape(B, K, G, T, P)


def _prefix_values(probs: jax.Array, pv: jax.Array) -> jax.Array:
    """probs [B,K,G,T,P] x shared prefix values [U,K,H,P] -> [B,T,K,G,H]."""
    B, K, G, T, P = probs.shape
    U = pv.shape[0]
    pu = probs.reshape(U, B // U, K, G, T, P)
    return jnp.einsum("urkgtp,ukhp->urtkgh", pu, pv).reshape(B, T, K, G, pv.shape[-2])


@dataclasses.dataclass
class _Attention:
    """How a layer's attention treats the cache (set up once per forward by `forward`).

    mode: "none" (no cache), "fresh" (empty cache: attend the new tokens only, return their
    k/v), "append" (attend valid cache slots + the new tokens, return the new k/v for the
    caller to write), "in_place" (one token, per-layer buffers: write it at `write_index`,
    attend the buffer, return the updated buffers).
    """

    mode: str
    self_mask: jax.Array  # [B, T, T]
    cache_mask: jax.Array | None = None  # [B, T, S]
    prefix_mask: jax.Array | None = None  # [U, P]
    write_index: jax.Array | None = None
    keys_last: bool = False  # "in_place" keys are [B, K, H, S] (`KVCache.per_layer`)


def _make_layer_fn(cfg: ModelConfig, rules: ShardingRules, cos: jax.Array, sin: jax.Array,
                   att: _Attention, out_in: bool = False, splits: int = 1):
    """The scan body: one decoder block on (hidden, (layer params, layer cache or None)).

    The layer cache is (k, v) or, with a shared prefix, (k, v, prefix_k, prefix_v).
    Returns the new hidden state and, with a cache, this layer's new keys/values
    ([B, T, kv_heads, head_dim]) for the caller to write (the cache itself is only read here,
    so a decode step never copies it), or in "in_place" mode its updated buffers.
    `out_in`: the weights are `unstack_layers`' [out, in] matrices, multiplied in `splits`
    parts (`_linear`).
    """
    dtype = jnp.dtype(cfg.dtype)
    scale = cfg.head_dim ** -0.5
    G = cfg.q_per_kv

    def layer(x: jax.Array, inputs: tuple[dict[str, jax.Array], Any]):
        p, kv = inputs
        p = {k: v.astype(dtype) for k, v in p.items()}
        B, T, _ = x.shape

        h = rms_norm(x, p["attn_norm"], cfg.rms_norm_eps)
        if out_in:
            proj = lambda w, n: _linear(h, w, splits).reshape(B, T, n, cfg.head_dim)
            q = proj(p["q_proj"], cfg.num_heads)
            k = proj(p["k_proj"], cfg.num_kv_heads)
            v = proj(p["v_proj"], cfg.num_kv_heads)
        else:
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
        parts, values = [], []  # score blocks over the key axis, and how to apply their probs
        if att.mode != "in_place":  # the new tokens among themselves
            scores = jnp.einsum("btkgh,bskh->bkgts", qg, k,
                                preferred_element_type=jnp.float32) * scale
            parts.append(jnp.where(att.self_mask[:, None, None, :, :], scores, _MASK_VALUE))
            values.append(lambda pr, v=v: jnp.einsum("bkgts,bskh->btkgh", pr, v))
        out_kv = None if att.mode == "none" else (k, v)
        if kv is not None:  # keys of earlier tokens, from the cache
            ck, cv = kv[0], kv[1]
            if att.mode == "in_place":  # per-layer values [B, K, S, H], keys that or [B, K, H, S]
                def write(buf, new, slots_last):
                    order = _buffer_order(slots_last)
                    at = [0, 0, 0, 0]
                    at[order.index(1)] = att.write_index  # where the slot axis went
                    return jax.lax.dynamic_update_slice(buf, new.transpose(order).astype(buf.dtype),
                                                        at)
                ck, cv = write(ck, k, att.keys_last), write(cv, v, False)
                out_kv = (ck, cv)
            ck, cv = ck.astype(dtype), cv.astype(dtype)
            if att.mode == "in_place":
                cached = jnp.einsum("bkgh,bkhs->bkgs" if att.keys_last else "bkgh,bksh->bkgs",
                                    qg[:, 0], ck,
                                    preferred_element_type=jnp.float32)[:, :, :, None, :] * scale
                values.insert(0, lambda pr, cv=cv: jnp.einsum("bkgs,bksh->bkgh", pr[:, :, :, 0],
                                                              cv)[:, None])
            elif T == 1:
                cached = _decode_scores(qg, ck) * scale
                values.insert(0, lambda pr, cv=cv: _decode_values(pr, cv))
            else:
                cached = jnp.einsum("btkgh,bskh->bkgts", qg, ck,
                                    preferred_element_type=jnp.float32) * scale
                values.insert(0, lambda pr, cv=cv: jnp.einsum("bkgts,bskh->btkgh", pr, cv))
            parts.insert(0, jnp.where(att.cache_mask[:, None, None, :, :], cached, _MASK_VALUE))
            if att.prefix_mask is not None:
                pk, pv = kv[2].astype(dtype), kv[3].astype(dtype)
                parts.insert(0, _prefix_attention(qg, pk, att.prefix_mask, scale))
                values.insert(0, lambda pr, pv=pv: _prefix_values(pr, pv))
        probs = jax.nn.softmax(jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0],
                               axis=-1).astype(dtype)
        attn, start = 0, 0
        for block, apply_probs in zip(parts, values):
            width = block.shape[-1]
            attn = attn + apply_probs(probs[..., start:start + width])
            start += width
        if out_in:
            attn = attn.reshape(B, T, cfg.num_heads * cfg.head_dim)
            out = _linear(attn, p["o_proj"], splits)
        else:
            attn = attn.reshape(B, T, cfg.num_heads, cfg.head_dim)
            out = jnp.einsum("btnh,nhd->btd", attn, p["o_proj"])
        if cfg.o_bias:
            out = out + p["o_bias"]
        x = rules.constrain(x + out, ("batch", "seq", "act_embed"))

        h = rms_norm(x, p["mlp_norm"], cfg.rms_norm_eps)
        if out_in:
            gate, up = _linear(h, p["gate_proj"], splits), _linear(h, p["up_proj"], splits)
        else:
            gate = jnp.einsum("btd,df->btf", h, p["gate_proj"])
            up = jnp.einsum("btd,df->btf", h, p["up_proj"])
        if cfg.mlp_bias:
            gate, up = gate + p["gate_bias"], up + p["up_bias"]
        act = rules.constrain(silu(gate) * up, ("batch", "seq", "act_mlp"))
        down = (_linear(act, p["down_proj"], splits) if out_in
                else jnp.einsum("btf,fd->btd", act, p["down_proj"]))
        if cfg.mlp_bias:
            down = down + p["down_bias"]
        x = rules.constrain(x + down, ("batch", "seq", "act_embed"))
        return x, out_kv

    return layer

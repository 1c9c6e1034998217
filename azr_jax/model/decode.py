"""The decode step: one new token per row through the decoder, reading and writing a KV cache.

`decode_step` runs the decoder blocks (`decoder.block`) on one token per row; everything about
the cache is the job of an *attention backend* handed to it, one per cache type:

- `SlotAttention` over a `SlotKV`: the static engine's cache, B rows x S slots that every row
  writes at one shared index (prompts left-padded to a common length), optionally after a
  `PrefixKV` of U prompts that groups of rows share (cascade attention: each prompt is read
  once per group, not once per row).
- `PagedAttention` over a `PagedKV`: the continuous engine's cache, prompt slots (one prompt
  each, read once for all the rows that continue it) and a pool of fixed-size pages of
  generated tokens (a page belongs to one row). A step reads only the first prompt slots and
  pages, as many as hold every one in use (a static extent the engine picks per step), so
  reads follow what rows have actually filled rather than a preallocated maximum.

Weights are either stacked ([layers, ...], a `fori_loop` over layers: what TPUs keep) or
`unstack_layers`' per-layer [out, in] matrices (a Python loop: no per-step copy out of the
stack); cache buffers follow the same choice (stacked arrays or tuples of per-layer arrays)
and are updated in place: a layer writes its new token into its buffer before attending it,
so each buffer has one producer and one reader per step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from azr_jax.model.config import ModelConfig
from azr_jax.model.decoder import MASK_VALUE, Layout, block, embed, lm_head, rms_norm, rope_at
from sharding.rules import ShardingRules

Buffers = Any  # a stacked [layers, ...] array, or a tuple of per-layer arrays


class PrefixKV(NamedTuple):
    """U prompts' keys/values shared by groups of rows: row b reads prompt b // (B // U).

    k: [layers, U, kv_heads, P, head_dim], v: [layers, U, kv_heads, head_dim, P] (each with the
    contracted axis last, the layout the two per-group matmuls read), valid: [U, P].
    """

    k: Buffers
    v: Buffers
    valid: jax.Array


class SlotKV(NamedTuple):
    """The static engine's decode cache: per layer k [B, kv_heads, S, head_dim] (or, with
    `SlotAttention.keys_last`, [B, kv_heads, head_dim, S]) and v [B, kv_heads, S, head_dim];
    valid [B, S]; index: the slot every row writes next; an optional shared `PrefixKV` (then
    k/v hold only what rows generated)."""

    k: Buffers
    v: Buffers
    valid: jax.Array
    index: jax.Array
    prefix: PrefixKV | None = None


class PagedKV(NamedTuple):
    """The continuous engine's decode cache, per layer: prompt slots [slots, kv_heads, P,
    head_dim] (one prompt's keys/values each) and pages [pages, kv_heads, page_size, head_dim]
    of generated keys/values. What fills them and who reads which slot or page is the engine's
    bookkeeping (`PagedAttention`). Slots/pages and heads lead, so the scores are one batched
    matmul over (unit, head) with no transpose.

    new_k, new_v: [layers, B, kv_heads, head_dim], the step's own keys/values, which the
    layers attend directly and `PagedAttention.end` writes into the pages after the step
    (so a step only reads the cache: the engine can pick among compiled steps with
    `lax.switch` without XLA copying the cache in and out of the branches).
    """

    prompt_k: Buffers
    prompt_v: Buffers
    gen_k: Buffers
    gen_v: Buffers
    new_k: jax.Array | None = None
    new_v: jax.Array | None = None


def _read(buf: Buffers, i: int | jax.Array) -> jax.Array:
    return buf[i]


def _update(buf: Buffers, i: int | jax.Array, new: jax.Array, at: tuple) -> Buffers:
    """`new` written into layer i at offsets `at` (in place inside a loop carry)."""
    if isinstance(buf, tuple):
        return buf[:i] + (jax.lax.dynamic_update_slice(buf[i], new.astype(buf[i].dtype), at),) + buf[i + 1 :]
    return jax.lax.dynamic_update_slice(buf, new[None].astype(buf.dtype), (i, *at))


def _scatter_all(buf: Buffers, idx: tuple, new: jax.Array) -> Buffers:
    """new[i] scattered into layer i of `buf` at index arrays `idx`, every layer
    (out-of-range indices dropped)."""
    if isinstance(buf, tuple):
        return tuple(b.at[idx].set(n.astype(b.dtype), mode="drop") for b, n in zip(buf, new))
    return jax.vmap(lambda b, n: b.at[idx].set(n.astype(b.dtype), mode="drop"))(buf, new)


def decode_step(
    cfg: ModelConfig,
    params: dict[str, Any],
    tokens: jax.Array,
    positions: jax.Array,
    kv: Any,
    attention: Any,
    *,
    layout: Layout,
    rules: ShardingRules | None = None,
    rope_table: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, Any]:
    """fp32 logits [B, V] for one new token per row (tokens, positions: [B]) and the cache
    with their keys/values written. `attention(i, q, k, v, kv) -> (out, kv)` is the backend
    for `kv`'s type; `layout` says how the weights are stored (unstacked params come with
    per-layer buffers, stacked params with stacked ones)."""
    rules = rules or ShardingRules(None)
    x = embed(cfg, params, tokens[:, None], rules)
    cos, sin = rope_at(cfg, positions[:, None], rope_table)
    layers = params["layers"]

    def layer(i: int | jax.Array, p: dict[str, jax.Array], x: jax.Array, kv: Any):
        return block(cfg, rules, layout, p, x, cos, sin, lambda q, k, v: attention(i, q, k, v, kv))

    if isinstance(layers, tuple):
        for i, p in enumerate(layers):
            x, kv = layer(i, p, x, kv)
    else:
        x, kv = jax.lax.fori_loop(
            0, cfg.num_layers, lambda i, c: layer(i, jax.tree.map(lambda a: a[i], layers), *c), (x, kv)
        )
    x = rms_norm(x, params["final_norm"], cfg.rms_norm_eps)
    return lm_head(cfg, params, x, rules=rules, splits=layout.head_splits)[:, 0], kv


def _grouped(cfg: ModelConfig, q: jax.Array) -> jax.Array:
    """[B, 1, N, H] -> [B, kv_heads, group, H]: K/V heads are never repeated."""
    return q[:, 0].reshape(q.shape[0], cfg.num_kv_heads, cfg.q_per_kv, cfg.head_dim)


# --------------------------------------------------------------------------- static slots
def _slot_order(slots_last: bool) -> tuple[int, int, int, int]:
    """The transpose from [B, slots, kv_heads, head_dim] (a dense cache layer, or a step's new
    k/v) to a slot buffer: [B, kv_heads, slots, head_dim], or [B, kv_heads, head_dim, slots]."""
    return (0, 2, 3, 1) if slots_last else (0, 2, 1, 3)


def slot_buffers(k: jax.Array, v: jax.Array, keys_last: bool, per_layer: bool) -> tuple[Buffers, Buffers]:
    """A dense cache's [layers, B, S, K, H] keys/values in `SlotKV`'s layouts: per-layer tuples
    (for unstacked weights) or stacked."""
    kt = lambda x: x.transpose(_slot_order(keys_last))
    vt = lambda x: x.transpose(_slot_order(False))
    if per_layer:
        return tuple(kt(x) for x in k), tuple(vt(x) for x in v)
    return jax.vmap(kt)(k), jax.vmap(vt)(v)


def prefix_buffers(k: jax.Array, v: jax.Array, valid: jax.Array, per_layer: bool) -> PrefixKV:
    """U prompts' dense cache ([layers, U, P, K, H]) as a shared `PrefixKV`."""
    pk, pv = k.transpose(0, 1, 3, 2, 4), v.transpose(0, 1, 3, 4, 2)
    if per_layer:
        pk, pv = tuple(pk), tuple(pv)
    return PrefixKV(pk, pv, valid)


@dataclasses.dataclass(frozen=True)
class SlotAttention:
    """Attention of one new token per row over a `SlotKV`; built once per step (`begin`)."""

    cfg: ModelConfig
    keys_last: bool  # keys stored [B, K, H, S] (faster CPU scores; slower on an H200)
    mask: jax.Array  # [B, S]: valid slots up to and including this step's
    index: jax.Array

    @classmethod
    def begin(cls, cfg: ModelConfig, kv: SlotKV, keys_last: bool) -> tuple[SlotAttention, SlotKV]:
        S = kv.valid.shape[1]
        valid = jax.lax.dynamic_update_slice(kv.valid, jnp.ones((kv.valid.shape[0], 1), bool), (0, kv.index))
        mask = valid & (jnp.arange(S) <= kv.index)[None, :]
        return cls(cfg, keys_last, mask, kv.index), kv._replace(valid=valid)

    def end(self, kv: SlotKV) -> SlotKV:
        return kv._replace(index=kv.index + 1)

    def __call__(
        self, i: int | jax.Array, q: jax.Array, k: jax.Array, v: jax.Array, kv: SlotKV
    ) -> tuple[jax.Array, SlotKV]:
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        scale = cfg.head_dim**-0.5
        k_at = (0, 0, 0, self.index) if self.keys_last else (0, 0, self.index, 0)
        kv = kv._replace(
            k=_update(kv.k, i, k.transpose(_slot_order(self.keys_last)), k_at),
            v=_update(kv.v, i, v.transpose(_slot_order(False)), (0, 0, self.index, 0)),
        )
        qg = _grouped(cfg, q)
        ck, cv = _read(kv.k, i).astype(dtype), _read(kv.v, i).astype(dtype)
        own = (
            jnp.einsum(
                "bkgh,bkhs->bkgs" if self.keys_last else "bkgh,bksh->bkgs",
                qg,
                ck,
                preferred_element_type=jnp.float32,
            )
            * scale
        )
        parts = [jnp.where(self.mask[:, None, None, :], own, MASK_VALUE)]
        values = [lambda pr: jnp.einsum("bkgs,bksh->bkgh", pr, cv)]
        if kv.prefix is not None:
            pk, pv = _read(kv.prefix.k, i).astype(dtype), _read(kv.prefix.v, i).astype(dtype)
            parts.insert(0, _prefix_scores(qg, pk, kv.prefix.valid, scale))
            values.insert(0, lambda pr: _prefix_values(pr, pv))
        probs = jax.nn.softmax(jnp.concatenate(parts, axis=-1), axis=-1).astype(dtype)
        out, start = 0, 0
        for block_scores, apply in zip(parts, values):
            width = block_scores.shape[-1]
            out = out + apply(probs[..., start : start + width])
            start += width
        return out.reshape(q.shape), kv


def _prefix_scores(qg: jax.Array, pk: jax.Array, valid: jax.Array, scale: float) -> jax.Array:
    """Scores of B rows' queries [B,K,G,H] against U shared prompts' keys [U,K,P,H] (row b reads
    prompt b // (B // U)) -> [B,K,G,P] fp32, masked by valid [U, P]. A prompt's rows form one
    [rows*G, H] x [H, P] matmul per kv head, so each prompt is read once per group."""
    B, K, G, H = qg.shape
    U, P = valid.shape
    s = (
        jnp.einsum(
            "urkgh,ukph->urkgp", qg.reshape(U, B // U, K, G, H), pk, preferred_element_type=jnp.float32
        )
        * scale
    )
    s = jnp.where(valid[:, None, None, None, :], s, MASK_VALUE)
    return s.reshape(B, K, G, P)


def _prefix_values(probs: jax.Array, pv: jax.Array) -> jax.Array:
    """probs [B,K,G,P] x shared prompt values [U,K,H,P] -> [B,K,G,H]."""
    B, K, G, P = probs.shape
    U = pv.shape[0]
    out = jnp.einsum("urkgp,ukhp->urkgh", probs.reshape(U, B // U, K, G, P), pv)
    return out.reshape(B, K, G, pv.shape[2])


# --------------------------------------------------------------------------- paged pools
class PoolView(NamedTuple):
    """Who reads a cache unit (a prompt slot or a generated page) this step and how full it
    is: readers [units, R], the rows that read each unit (R = 1 for generated pages; for
    prompt slots, up to the most rows one prompt has), B where none; fill [units], the tokens
    each unit holds."""

    readers: jax.Array
    fill: jax.Array


@dataclasses.dataclass(frozen=True)
class PagedAttention:
    """Attention of one new token per row over a `PagedKV` (built by the engine per step).

    Each layer reads the first `extents` prompt slots and generated pages (static: the engine
    picks the smallest of a few extents that holds every one in use) and the row's own new
    key/value: each unit's scores against the queries of its readers, a softmax partial (max,
    sum, weighted values) per (unit, reader), merged into the rows. A prompt is read once
    however many rows continue it. `end` then writes the new keys/values at (write_page,
    write_offset) of the generated pages (rows with write_page out of range write nothing).
    """

    cfg: ModelConfig
    extents: tuple[int, int]  # static: prompt slots and generated pages read
    write_page: jax.Array  # [B]
    write_offset: jax.Array  # [B]
    prompt: PoolView
    gen: PoolView

    def start(self, kv: PagedKV, batch: int) -> PagedKV:
        """`kv` ready for a step of `batch` rows (room for their new keys/values)."""
        shape = (self.cfg.num_layers, batch, self.cfg.num_kv_heads, self.cfg.head_dim)
        zeros = jnp.zeros(shape, jnp.dtype(self.cfg.dtype))
        return kv._replace(new_k=zeros, new_v=zeros)

    def end(self, kv: PagedKV) -> PagedKV:
        """The step's keys/values into the generated pool (in place in a loop carry)."""
        at = (self.write_page, slice(None), self.write_offset)
        return kv._replace(
            gen_k=_scatter_all(kv.gen_k, at, kv.new_k),
            gen_v=_scatter_all(kv.gen_v, at, kv.new_v),
            new_k=None,
            new_v=None,
        )

    def __call__(
        self, i: int | jax.Array, q: jax.Array, k: jax.Array, v: jax.Array, kv: PagedKV
    ) -> tuple[jax.Array, PagedKV]:
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        kv = kv._replace(
            new_k=kv.new_k.at[i].set(k[:, 0].astype(kv.new_k.dtype)),
            new_v=kv.new_v.at[i].set(v[:, 0].astype(kv.new_v.dtype)),
        )
        qg = _grouped(cfg, q)
        B, K, G, H = qg.shape
        parts = [
            self._units(qg, _read(pk, i)[:n], _read(pv, i)[:n], view, n)
            for pk, pv, view, n in (
                (kv.prompt_k, kv.prompt_v, self.prompt, self.extents[0]),
                (kv.gen_k, kv.gen_v, self.gen, self.extents[1]),
            )
        ]
        own = (
            jnp.einsum("bkgh,bkh->bkg", qg, k[:, 0].astype(dtype), preferred_element_type=jnp.float32)
            * cfg.head_dim**-0.5
        )
        parts.append(
            (
                jnp.arange(B),
                own,
                jnp.ones_like(own),
                jnp.broadcast_to(v[:, 0, :, None].astype(jnp.float32), (B, K, G, H)),
            )
        )
        rows, m, total, out = (jnp.concatenate(x, axis=0) for x in zip(*parts))
        out = _combine(rows, m, total, out, B)
        return out.astype(dtype).reshape(q.shape), kv

    def _units(
        self, qg: jax.Array, pk: jax.Array, pv: jax.Array, view: PoolView, n: int
    ) -> tuple[jax.Array, ...]:
        """Softmax partials of n units [n, K, length, H] for their readers: (reader row, max,
        sum of exp, exp-weighted values), one entry per (unit, reader)."""
        dtype = jnp.dtype(self.cfg.dtype)
        B, K, G, H = qg.shape
        readers, fill = view.readers[:n], view.fill[:n]
        R = readers.shape[1]
        q = jnp.take(qg, readers, axis=0, mode="clip")  # [n, R, K, G, H]
        q = q.transpose(0, 2, 1, 3, 4).reshape(n, K, R * G, H)
        s = (
            jnp.einsum("pkqh,pksh->pkqs", q, pk.astype(dtype), preferred_element_type=jnp.float32)
            * self.cfg.head_dim**-0.5
        )
        real = (jnp.arange(pk.shape[2])[None, :] < fill[:, None])[:, None, None, :]
        s = jnp.where(real, s, MASK_VALUE)
        m = jnp.max(s, axis=-1)
        e = jnp.where(real, jnp.exp(s - m[..., None]), 0.0)
        o = jnp.einsum(
            "pkqs,pksh->pkqh", e.astype(dtype), pv.astype(dtype), preferred_element_type=jnp.float32
        )
        per_row = lambda x: (
            x.reshape(n, K, R, G, *x.shape[3:]).swapaxes(1, 2).reshape(n * R, K, G, *x.shape[3:])
        )
        return readers.reshape(-1), per_row(m), per_row(e.sum(-1)), per_row(o)


def _combine(rows: jax.Array, m: jax.Array, total: jax.Array, out: jax.Array, B: int) -> jax.Array:
    """Attention outputs [B, K, G, H] from per-unit softmax partials (max m, sum of exp,
    exp-weighted values), entry j belonging to row `rows[j]` (B = nobody)."""
    row_max = jnp.full((B,) + m.shape[1:], MASK_VALUE, jnp.float32).at[rows].max(m, mode="drop")
    w = jnp.exp(m - jnp.take(row_max, rows, axis=0, mode="clip"))
    total = jnp.zeros_like(row_max).at[rows].add(w * total, mode="drop")
    out = jnp.zeros((B,) + out.shape[1:], jnp.float32).at[rows].add(w[..., None] * out, mode="drop")
    return out / jnp.maximum(total, 1e-30)[..., None]

"""The static engine's two jitted programs: prefill (prompt -> cache + first token) and decode.

Shapes are fixed by the caller's buckets: tokens [B, P] left-padded, a generation buffer of N
slots and a KV cache of P + N - 1 slots (the last drawn token is never fed back). Left padding
puts every row's last prompt token in the same column, so all rows write the cache at one shared
index and a decode step is a single [B, 1] forward.

Rows that continue the same prompt (a chunk in the cascade layout, `ProgramSpec.cascade`) keep
that prompt's prefill as a shared prefix of the cache instead: U prompts x P slots, read once per
group at each step, plus N - 1 slots of their own.

Decode is one `lax.while_loop` that runs until every row has hit a stop token or its own budget
(rows have per-row budgets), or the buffer is full. Rows that finish keep riding along (static
shapes) but draw nothing: their tokens stay `pad`, their mask False, their length fixed.

Randomness: the token at generation step t of caller row r uses key fold_in(fold_in(key, r), t).
A row's samples therefore depend only on (key, its row index, its logits), not on which other
rows share its chunk, how the batch was padded, or the bucket sizes.

Both programs take the rotary tables (`rope.table`, cos/sin for every position the cache can
hold) as an input computed once per call: computed inside, XLA:CPU fuses sin/cos into each
layer's attention and recomputes them per layer (and, in decode, per step).

Params are a traced argument of both programs (never closed over), so the train step can update
them without a recompile; the decode program donates its state (KV cache included), so the loop
reuses the prefill's buffers instead of holding a second copy of the cache.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.model.decode import PrefixKV, SlotAttention, SlotKV, decode_step, prefix_buffers, slot_buffers
from azr_jax.model.decoder import KVCache
from azr_jax.sampling.ops import SamplingMode, row_keys, sample
from azr_jax.sampling.plan import DecodePlan
from sharding.rules import ShardingRules


class DecodeState(NamedTuple):
    """Everything the decode loop carries; leaves are batch-sharded like the activations."""

    step: jax.Array  # int32 scalar: generation slot the next drawn token goes to
    tokens: jax.Array  # [B, N] int32, pad after each row's end
    logprobs: jax.Array  # [B, N] fp32, 0 after each row's end
    last: jax.Array  # [B] int32, the latest drawn token (next decoder input)
    position: jax.Array  # [B] int32, position id of `last`
    done: jax.Array  # [B] bool
    lengths: jax.Array  # [B] int32, tokens drawn so far (stop token included)
    budgets: jax.Array  # [B] int32, per-row limit (0 = dummy row)
    row_ids: jax.Array  # [B] int32, the row's index in the caller's batch (its PRNG stream)
    key: jax.Array  # typed PRNG key, scalar
    cache: SlotKV


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Static description of one compiled program pair (the jit cache key)."""

    cfg: ModelConfig
    rules: ShardingRules | None  # hashed by identity: one set of programs per rules object
    gen_len: int  # N, the generation bucket
    mode: SamplingMode
    stop_ids: tuple[int, ...]
    pad_id: int
    plan: DecodePlan
    cascade: bool = False  # rows share their prompt's cache as a prefix (see `prefill`)


def _rules(spec: ProgramSpec) -> ShardingRules:
    return spec.rules if spec.rules is not None else ShardingRules(None)


def _cache_axes(cache: SlotKV, keys_last: bool) -> SlotKV:
    """Logical axes of a `SlotKV` (per-layer buffers lack the leading layers axis)."""
    v = ("batch", "act_kv_heads", "cache_seq", "head_dim")
    k = ("batch", "act_kv_heads", "head_dim", "cache_seq") if keys_last else v
    per_layer = isinstance(cache.k, tuple)
    lead = () if per_layer else ("layers",)
    prefix = None
    if cache.prefix is not None:
        prefix = PrefixKV(
            lead + v, lead + ("batch", "act_kv_heads", "head_dim", "cache_seq"), ("batch", "cache_seq")
        )
    return SlotKV(lead + k, lead + v, ("batch", "cache_seq"), (), prefix)


def _constrain_state(state: DecodeState, rules: ShardingRules, keys_last: bool = False) -> DecodeState:
    """Pin the carried state to batch sharding (and the cache to its logical axes) so the
    while-loop carry has one fixed layout on any mesh."""
    if not rules.active:
        return state
    row = ("batch",)
    grid = ("batch", None)

    ax = _cache_axes(state.cache, keys_last)

    def pin(a, names):  # per-layer buffers: a tuple of arrays
        if isinstance(a, tuple):
            return tuple(rules.constrain(x, names) for x in a)
        return rules.constrain(a, names)

    c = state.cache
    prefix = (
        None
        if c.prefix is None
        else PrefixKV(
            pin(c.prefix.k, ax.prefix.k), pin(c.prefix.v, ax.prefix.v), pin(c.prefix.valid, ax.prefix.valid)
        )
    )
    cache = SlotKV(pin(c.k, ax.k), pin(c.v, ax.v), pin(c.valid, ax.valid), c.index, prefix)
    return state._replace(
        tokens=rules.constrain(state.tokens, grid),
        logprobs=rules.constrain(state.logprobs, grid),
        last=rules.constrain(state.last, row),
        position=rules.constrain(state.position, row),
        done=rules.constrain(state.done, row),
        lengths=rules.constrain(state.lengths, row),
        budgets=rules.constrain(state.budgets, row),
        row_ids=rules.constrain(state.row_ids, row),
        cache=cache,
    )


def _record(state: DecodeState, tokens: jax.Array, logprobs: jax.Array, spec: ProgramSpec) -> DecodeState:
    """Write the tokens drawn at `state.step` for the rows still running and update finished
    flags (stop token drawn, or budget used up)."""
    active = ~state.done
    tokens = jnp.where(active, tokens, spec.pad_id).astype(jnp.int32)
    logprobs = jnp.where(active, logprobs, 0.0).astype(jnp.float32)
    col = (jnp.int32(0), state.step)
    buf = jax.lax.dynamic_update_slice(state.tokens, tokens[:, None], col)
    lp_buf = jax.lax.dynamic_update_slice(state.logprobs, logprobs[:, None], col)
    lengths = state.lengths + active.astype(jnp.int32)
    if spec.stop_ids:
        stopped = active & jnp.isin(tokens, jnp.asarray(spec.stop_ids, jnp.int32))
    else:
        stopped = jnp.zeros_like(active)
    done = state.done | stopped | (lengths >= state.budgets)
    return state._replace(
        step=state.step + 1,
        tokens=buf,
        logprobs=lp_buf,
        last=tokens,
        position=state.position + 1,
        done=done,
        lengths=lengths,
    )


def _prefill_cache(
    spec: ProgramSpec,
    params: api.Params,
    tokens: jax.Array,
    mask: jax.Array,
    positions: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, KVCache]:
    """Fill a P-slot cache with the prompts, `prefill_chunk` tokens at a time; returns the last
    position's final hidden state [B, 1, D] and the cache.

    Chunking bounds the attention scores to [B, heads, chunk, P] instead of [B, heads, P, P]
    (at P = 6144 the unchunked scores alone outgrow a GPU). A leading remainder chunk takes
    P mod chunk tokens, so any bucket works with any chunk size.
    """
    cfg, rules = spec.cfg, _rules(spec)
    B, P = tokens.shape
    C = min(spec.plan.prefill_chunk, P)
    head = P % C or C  # the first pass: the remainder, or one whole chunk
    # The first pass only writes the empty cache (nothing earlier to attend).
    hidden, cache = api.apply(
        cfg,
        params,
        tokens[:, :head],
        positions[:, :head],
        mask[:, :head],
        KVCache.zeros(cfg, B, P),
        rules=rules,
        return_hidden=True,
        fresh_cache=True,
        rope_table=rope_table,
    )

    def chunk(i: jax.Array, carry: tuple[jax.Array, KVCache]) -> tuple[jax.Array, KVCache]:
        take = lambda a: jax.lax.dynamic_slice_in_dim(a, head + i * C, C, axis=1)
        h, cache = api.apply(
            cfg,
            params,
            take(tokens),
            take(positions),
            take(mask),
            carry[1],
            rules=rules,
            return_hidden=True,
            rope_table=rope_table,
        )
        return h[:, -1:], cache

    return jax.lax.fori_loop(0, (P - head) // C, chunk, (hidden[:, -1:], cache))


def _extend(cache: KVCache, extra: int) -> KVCache:
    """Append `extra` empty slots to a prefilled cache (one copy, outside the decode loop)."""
    if extra <= 0:
        return cache
    pad5 = ((0, 0), (0, 0), (0, extra), (0, 0), (0, 0))
    return KVCache(
        jnp.pad(cache.k, pad5),
        jnp.pad(cache.v, pad5),
        jnp.pad(cache.valid, ((0, 0), (0, extra))),
        cache.index,
    )


def _share(
    src: jax.Array,
    hidden: jax.Array,
    cache: KVCache,
    positions: jax.Array,
    tokens: jax.Array,
    rules: ShardingRules,
) -> tuple[jax.Array, KVCache, jax.Array, jax.Array]:
    """Copy each distinct prompt's prefill (last hidden state, cache, positions) to every row
    that decodes from it: [U, ...] -> [B, ...] along the batch axis."""
    axes = KVCache.logical_axes()
    cache = cache._replace(
        k=rules.constrain(cache.k[:, src], axes.k),
        v=rules.constrain(cache.v[:, src], axes.v),
        valid=rules.constrain(cache.valid[src], axes.valid),
    )
    return hidden[src], cache, positions[src], tokens[src]


@functools.partial(jax.jit, static_argnames=("spec",))
def prefill(
    params: api.Params,
    tokens: jax.Array,
    mask: jax.Array,
    budgets: jax.Array,
    row_ids: jax.Array,
    key: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
    src: jax.Array | None = None,
    *,
    spec: ProgramSpec,
) -> DecodeState:
    """Run the prompts through the model, build the decode cache and draw token 0.

    With `src` ([B] indices), `tokens`/`mask` hold U distinct prompts and row b decodes from
    prompt src[b]: the prefill runs on U rows. Without `spec.cascade` its cache is then copied
    to the B rows. With it (rows grouped: src[b] = b // (B // U)) the U prompt caches stay as
    they are and become the decode cache's shared prefix, read once per group at every step;
    the rows' own cache then only holds their N - 1 generated slots.
    Only the last position's hidden state goes through the LM head: a [B, P, V] logits tensor
    would be the largest buffer of the whole call (32 x 512 x 49k fp32 = 3 GB).
    """
    cfg, rules, N = spec.cfg, _rules(spec), spec.gen_len
    B = budgets.shape[0]
    positions = api.positions_from_mask(mask)
    hidden, cache = _prefill_cache(spec, params, tokens, mask, positions, rope_table)
    plan = spec.plan
    prefix = None
    if spec.cascade:
        prefix = prefix_buffers(cache.k, cache.v, cache.valid, plan.unstack_layers)
        cache = KVCache.zeros(cfg, B, max(N - 1, 1))
        hidden, positions, tokens = hidden[src], positions[src], tokens[src]
    else:
        if src is not None:
            hidden, cache, positions, tokens = _share(src, hidden, cache, positions, tokens, rules)
        cache = _extend(cache, N - 1)
    k, v = slot_buffers(cache.k, cache.v, plan.keys_last, plan.unstack_layers)
    slots = SlotKV(k, v, cache.valid, cache.index, prefix)
    logits = api.lm_logits(cfg, params, hidden, rules=rules)[:, 0]
    state = DecodeState(
        step=jnp.int32(0),
        tokens=jnp.full((B, N), spec.pad_id, jnp.int32),
        logprobs=jnp.zeros((B, N), jnp.float32),
        last=tokens[:, -1],
        position=positions[:, -1],
        done=budgets <= 0,
        lengths=jnp.zeros((B,), jnp.int32),
        budgets=budgets,
        row_ids=row_ids,
        key=key,
        cache=slots,
    )
    drawn, logprobs = sample(logits, row_keys(key, row_ids, state.step), temperature, top_p, spec.mode)
    return _constrain_state(_record(state, drawn, logprobs, spec), rules, plan.keys_last)


@functools.partial(jax.jit, static_argnames=("spec",), donate_argnames=("state",))
def decode(
    params: api.Params,
    state: DecodeState,
    temperature: jax.Array,
    top_p: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
    *,
    spec: ProgramSpec,
) -> DecodeState:
    """Draw tokens 1.. N-1 until every row is done; returns the final state."""
    cfg, rules, N, plan = spec.cfg, _rules(spec), spec.gen_len, spec.plan

    def cond(s: DecodeState) -> jax.Array:
        return (s.step < N) & ~jnp.all(s.done)

    def body(s: DecodeState) -> DecodeState:
        attention, cache = SlotAttention.begin(cfg, s.cache, plan.keys_last)
        logits, cache = decode_step(
            cfg,
            params,
            s.last,
            s.position,
            cache,
            attention,
            layout=plan.layout,
            rules=rules,
            rope_table=rope_table,
        )
        drawn, logprobs = sample(logits, row_keys(s.key, s.row_ids, s.step), temperature, top_p, spec.mode)
        s = s._replace(cache=attention.end(cache))
        return _constrain_state(_record(s, drawn, logprobs, spec), rules, plan.keys_last)

    return jax.lax.while_loop(cond, body, _constrain_state(state, rules, plan.keys_last))

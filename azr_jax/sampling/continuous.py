"""The continuous engine: one jitted program that decodes a whole queue of rows in a fixed
number of slots, refilling a slot as soon as its row ends.

Each iteration of the program's `while_loop`:
1. admits queued rows into free slots, one row at a time: the first row of a prompt prefills
   it (on the stacked weights, `prefill_chunk` tokens per pass, into a scratch cache that is
   then copied into prompt pages) and every row draws its first token from that prompt's last
   hidden state; a row that ends there (stop token, budget 1) frees its slot at once;
2. runs one decode step for every occupied slot (`model.decode.decode_step` with
   `PagedAttention`) and frees the slots whose rows ended.
It stops when the queue is empty and no slot is occupied.

The KV cache (`PagedKV`) holds prompt slots, one prompt each, shared by all the rows that
continue it (read once for all of them) and freed when its last row ends, and a pool of
pages of generated tokens, one row each. Slots and pages are taken lowest index first, so the
ones in use stay packed at the front, and a step reads the smallest of
`DecodePlan.read_extents` extents (the first 1/8, 1/4, ... of each) that holds every one in
use: reads follow what rows have filled (within 2x), not the preallocated maximum. Both are
sized for the worst case (every decode slot a distinct prompt, every row at the generation
bucket), so allocation never fails.

Randomness is the static engine's: token t of caller row r uses fold_in(fold_in(key, r), t),
so results do not depend on slots, admission order or timing; greedy and sampled outputs equal
the static engine's (same key), up to float rounding of the logits.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.model.decode import PagedAttention, PagedKV, PoolView, decode_step
from azr_jax.model.decoder import KVCache, forward
from azr_jax.sampling.ops import SamplingMode, row_keys, sample
from azr_jax.sampling.plan import DecodePlan
from sharding.rules import ShardingRules


@dataclasses.dataclass(frozen=True)
class Shapes:
    """The static sizes of one continuous program (with the plan: its jit key)."""

    queue: int  # R: queued rows (a bucket; rows past the call's are never admitted)
    prompts: int  # U: distinct prompts (a bucket)
    prompt_len: int  # Ps: prompt tokens per prompt, a multiple of the page and prefill chunk
    gen_len: int  # N: the generation bucket
    group: int  # most rows one prompt has (prompt pages list that many readers)


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Static description of one continuous program (the jit cache key)."""

    cfg: ModelConfig
    rules: ShardingRules | None
    plan: DecodePlan
    shapes: Shapes
    mode: SamplingMode
    stop_ids: tuple[int, ...]
    pad_id: int

    @property
    def prompt_slots(self) -> int:
        """Prompts the cache holds at once: one per decode slot, plus one whose first rows
        ended while its later rows still wait in the queue."""
        return min(self.shapes.prompts, self.plan.slots + 1)

    @property
    def gen_pages(self) -> int:
        """Pages one row's generated tokens can take (the last drawn token is never fed back)."""
        return max(1, -(-(self.shapes.gen_len - 1) // self.plan.page_size))

    @property
    def widths(self) -> tuple[int, ...]:
        """The decode widths a step can run at, narrowest first: slots / 2^k, k <
        `plan.decode_widths` (one compiled step each); a narrower one serves once fewer rows
        are left than it holds (the queue's tail)."""
        S, n = self.plan.slots, self.plan.decode_widths
        return tuple(sorted({max(1, S // 2**k) for k in range(n)}))

    def extents(self, gen_pool: int) -> list[tuple[int, int]]:
        """The (prompt slots, generated pages) a step may read, smallest first: the first
        1/2^k of each, k = read_extents - 1 .. 0 (one compiled step each)."""
        n, slots = self.plan.read_extents, self.prompt_slots
        return [(-(-slots // 2**k), -(-gen_pool // 2**k)) for k in range(n - 1, -1, -1)]


class Queue(NamedTuple):
    """The call's rows in queue order (rows of one prompt next to each other)."""

    row_ids: jax.Array  # [R] caller row (its PRNG stream)
    src: jax.Array  # [R] prompt index
    budgets: jax.Array  # [R]
    n_rows: jax.Array  # int32 scalar: real rows
    tokens: jax.Array  # [U, Ps] right-padded prompts
    lengths: jax.Array  # [U]
    refs: jax.Array  # [U] rows per prompt


class Stats(NamedTuple):
    steps: jax.Array  # decode steps run
    slots: jax.Array  # rows the decode steps computed (their widths), summed
    tokens: jax.Array  # tokens drawn by decode steps (not the first token of a row)
    prompt_tokens: jax.Array  # fp32: prompt-slot tokens the steps read (per layer)
    gen_tokens: jax.Array  # fp32: generated-page tokens the steps read (per layer)


class State(NamedTuple):
    next: jax.Array  # queue index of the next row to admit
    # slots [S]
    slot_row: jax.Array  # queue index, -1 = free
    slot_prompt: jax.Array
    last: jax.Array  # the slot's latest token (next decoder input)
    drawn: jax.Array  # tokens its row has drawn
    gen_table: jax.Array  # [S, gen_pages] page ids
    # prompts [U]
    refs: jax.Array  # rows of the prompt not finished yet
    resident: jax.Array  # its pages hold its keys/values
    hidden: jax.Array  # [U, D] final hidden state at its last token
    # cache units
    prompt_owner: jax.Array  # [prompt slots] prompt index, -1 = free
    gen_owner: jax.Array  # [pool] slot, -1 = free
    gen_base: jax.Array  # [pool] index of the page's first token in its row's generation
    kv: PagedKV
    # outputs, by queue index
    tokens: jax.Array  # [R, N]
    logprobs: jax.Array  # [R, N]
    lengths: jax.Array  # [R]
    stats: Stats


def _take_free(owner: jax.Array, want: jax.Array) -> jax.Array:
    """Page ids for requests (want [k] bool, in order): the lowest free pages (owner < 0);
    requests not wanted get the out-of-range id (writes to it are dropped)."""
    free = jnp.cumsum(owner < 0)
    rank = jnp.cumsum(want) - 1
    ids = jnp.searchsorted(free, rank + 1).astype(jnp.int32)
    return jnp.where(want, ids, owner.shape[0])


def _top(owner: jax.Array) -> jax.Array:
    """Units (slots or pages) up to and including the highest one in use."""
    used = owner >= 0
    return jnp.where(used.any(), owner.shape[0] - jnp.argmax(used[::-1]), 0)


def _release(s: State, prompts: jax.Array, ended: jax.Array) -> State:
    """One ended row per entry of `prompts` where `ended`: drop its prompt reference and free
    the slots of prompts nobody needs any more."""
    refs = s.refs.at[prompts].add(-ended.astype(jnp.int32), mode="drop")
    owner = s.prompt_owner
    gone = (owner >= 0) & (jnp.take(refs, owner, mode="clip") <= 0)
    return s._replace(refs=refs, resident=s.resident & (refs > 0), prompt_owner=jnp.where(gone, -1, owner))


def _prefill(
    spec: ProgramSpec,
    params: api.Params,
    q: Queue,
    u: jax.Array,
    s: State,
    rope_table: tuple[jax.Array, jax.Array],
) -> State:
    """Prompt u through the model (`prefill_chunk` tokens per pass, as many passes as its
    length needs) into the lowest free prompt slot; keeps its last hidden state."""
    cfg, Ps = spec.cfg, spec.shapes.prompt_len
    C = min(spec.plan.prefill_chunk, Ps)
    n = q.lengths[u]
    tokens = q.tokens[u][None]
    mask = (jnp.arange(Ps) < n)[None]
    positions = jnp.arange(Ps, dtype=jnp.int32)[None]
    take = lambda a, c: jax.lax.dynamic_slice_in_dim(a, c * C, C, axis=1)

    def last_of(h: jax.Array, c: jax.Array, last: jax.Array) -> jax.Array:
        at = n - 1 - c * C
        return jnp.where((at >= 0) & (at < C), h[0, jnp.clip(at, 0, C - 1)], last)

    def chunk(c: jax.Array, carry: tuple[jax.Array, KVCache]) -> tuple[jax.Array, KVCache]:
        h, cache = forward(
            cfg,
            params,
            take(tokens, c),
            take(positions, c),
            take(mask, c),
            carry[1],
            rules=spec.rules,
            return_hidden=True,
            rope_table=rope_table,
        )
        return last_of(h, c, carry[0]), cache

    # the first pass only writes the empty cache
    h, cache = forward(
        cfg,
        params,
        tokens[:, :C],
        positions[:, :C],
        mask[:, :C],
        KVCache.zeros(cfg, 1, Ps),
        rules=spec.rules,
        return_hidden=True,
        fresh_cache=True,
        rope_table=rope_table,
    )
    last = last_of(h, jnp.int32(0), jnp.zeros_like(h[0, 0]))
    last, cache = jax.lax.fori_loop(1, (n + C - 1) // C, chunk, (last, cache))

    slot = _take_free(s.prompt_owner, jnp.ones((1,), bool))
    kv = s.kv._replace(
        prompt_k=_write_prompt(s.kv.prompt_k, slot, cache.k),
        prompt_v=_write_prompt(s.kv.prompt_v, slot, cache.v),
    )
    return s._replace(
        kv=kv,
        resident=s.resident.at[u].set(True),
        prompt_owner=s.prompt_owner.at[slot].set(u, mode="drop"),
        hidden=s.hidden.at[u].set(last.astype(s.hidden.dtype)),
    )


def _write_prompt(slots, at: jax.Array, dense: jax.Array):
    """A prompt's dense [layers, 1, Ps, K, H] cache into prompt slot `at` ([1])."""
    unit = lambda x: x.transpose(0, 2, 1, 3)  # [1, Ps, K, H] -> [1, K, Ps, H]
    if isinstance(slots, tuple):
        return tuple(p.at[at].set(unit(d).astype(p.dtype), mode="drop") for p, d in zip(slots, dense))
    return slots.at[:, at].set(jax.vmap(unit)(dense).astype(slots.dtype), mode="drop")


def _admit_one(
    spec: ProgramSpec,
    params: api.Params,
    q: Queue,
    s: State,
    key: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
) -> State:
    """The next queued row into the lowest free slot (its prompt prefilled first if no row
    before it did); draws its first token. A row that ends there takes no slot."""
    r = s.next
    u = q.src[r]
    s = jax.lax.cond(s.resident[u], lambda s: s, lambda s: _prefill(spec, params, q, u, s, rope_table), s)
    logits = api.lm_logits(spec.cfg, params, s.hidden[u][None, None], rules=spec.rules)[:, 0]
    tok, lp = sample(logits, row_keys(key, q.row_ids[r][None], 0), temperature, top_p, spec.mode)
    tok, lp = tok[0], lp[0]
    ended = _stops(spec, tok) | (q.budgets[r] <= 1)
    slot = jnp.where(ended, s.slot_row.shape[0], jnp.argmax(s.slot_row < 0))
    s = s._replace(
        next=r + 1,
        tokens=s.tokens.at[r, 0].set(tok),
        logprobs=s.logprobs.at[r, 0].set(lp),
        lengths=s.lengths.at[r].set(1),
        slot_row=s.slot_row.at[slot].set(r, mode="drop"),
        slot_prompt=s.slot_prompt.at[slot].set(u, mode="drop"),
        last=s.last.at[slot].set(tok, mode="drop"),
        drawn=s.drawn.at[slot].set(1, mode="drop"),
    )
    return _release(s, u[None], ended[None])


def _stops(spec: ProgramSpec, tokens: jax.Array) -> jax.Array:
    if not spec.stop_ids:
        return jnp.zeros(tokens.shape, bool)
    return jnp.isin(tokens, jnp.asarray(spec.stop_ids, jnp.int32))


def _views(spec: ProgramSpec, q: Queue, s: State, live: jax.Array) -> tuple[PoolView, PoolView]:
    """Who reads which prompt slot and generated page this step, and how many tokens each
    holds."""
    S, page = live.shape[0], spec.plan.page_size
    U = q.lengths.shape[0]
    # a prompt slot is read by every live row of its prompt (ranked by decode slot)
    same = live[:, None] & live[None, :] & (s.slot_prompt[:, None] == s.slot_prompt[None, :])
    rank = jnp.sum(same & (jnp.arange(S)[None, :] < jnp.arange(S)[:, None]), axis=1)
    table = (
        jnp.full((U, spec.shapes.group), S, jnp.int32)
        .at[jnp.where(live, s.slot_prompt, U), rank]
        .set(jnp.arange(S, dtype=jnp.int32), mode="drop")
    )
    owner = s.prompt_owner
    used = owner >= 0
    readers = jnp.where(used[:, None], jnp.take(table, owner, axis=0, mode="clip"), S)
    prompt = PoolView(readers, jnp.where(used, jnp.take(q.lengths, owner, mode="clip"), 0))
    # a generated page is read by its row, up to the tokens written before this step
    gen_used = s.gen_owner >= 0
    written = jnp.take(s.drawn, s.gen_owner, mode="clip") - 1
    gfill = jnp.where(gen_used, jnp.clip(written - s.gen_base, 0, page), 0)
    gen = PoolView(jnp.where(gen_used, s.gen_owner, S)[:, None], gfill)
    return prompt, gen


def _compact(s: State) -> State:
    """Occupied slots moved to the front, in order (a narrower decode step then covers them)."""
    order = jnp.argsort((s.slot_row < 0).astype(jnp.int32), stable=True)
    where = jnp.argsort(order)  # slot i moves to where[i]
    take = lambda a: jnp.take(a, order, axis=0)
    owner = s.gen_owner
    return s._replace(
        slot_row=take(s.slot_row),
        slot_prompt=take(s.slot_prompt),
        last=take(s.last),
        drawn=take(s.drawn),
        gen_table=take(s.gen_table),
        gen_owner=jnp.where(owner >= 0, jnp.take(where, owner, mode="clip"), owner),
    )


def _decode(
    spec: ProgramSpec,
    params: api.Params,
    q: Queue,
    s: State,
    key: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
) -> State:
    """One decode step for every occupied slot; frees the slots whose rows end. The step runs
    on the narrowest of `spec.widths` that holds the occupied slots (moved to the front) and
    reads the smallest of `spec.extents` that holds every page in use: one `lax.switch` over
    the compiled (width, extent) pairs."""
    s = _compact(s)
    S, page = s.slot_row.shape[0], spec.plan.page_size
    live = s.slot_row >= 0
    t = s.drawn - 1  # index of `last` among the row's fed tokens: where its k/v goes
    # a row starting a page takes the lowest free generated page
    need = live & (t % page == 0)
    fresh = _take_free(s.gen_owner, need)
    slot_ids = jnp.arange(S, dtype=jnp.int32)
    col = jnp.clip(t // page, 0, spec.gen_pages - 1)
    gen_table = s.gen_table.at[jnp.where(need, slot_ids, S), col].set(fresh, mode="drop")
    s = s._replace(
        gen_table=gen_table,
        gen_owner=s.gen_owner.at[fresh].set(slot_ids, mode="drop"),
        gen_base=s.gen_base.at[fresh].set(col * page, mode="drop"),
    )
    prompt, gen = _views(spec, q, s, live)
    n_pool = s.gen_owner.shape[0]
    write = (jnp.where(live, jnp.take_along_axis(gen_table, col[:, None], 1)[:, 0], n_pool), t % page)
    position = jnp.take(q.lengths, s.slot_prompt, mode="clip") + t
    row = jnp.where(live, s.slot_row, 0)
    keys = row_keys(key, q.row_ids[row], s.drawn)
    widths, extents = spec.widths, spec.extents(n_pool)
    fits = [(_top(s.prompt_owner) <= a) & (_top(s.gen_owner) <= b) for a, b in extents]
    pick_e = len(extents) - jnp.sum(jnp.stack(fits).astype(jnp.int32))
    pick_w = jnp.sum(jnp.asarray(widths) < live.sum()).astype(jnp.int32)

    def step(width: int, extent: tuple[int, int], kv: PagedKV):
        cut = lambda x: x[:width]
        narrow = lambda v: v._replace(readers=jnp.minimum(v.readers, width))
        attention = PagedAttention(spec.cfg, extent, *write, narrow(prompt), narrow(gen))
        logits, kv = decode_step(
            spec.cfg,
            params,
            cut(s.last),
            cut(position),
            attention.start(kv, width),
            attention,
            layout=spec.plan.layout,
            rules=spec.rules,
            rope_table=rope_table,
        )
        tok, lp = sample(logits, cut(keys), temperature, top_p, spec.mode)
        pad = lambda x, axis=0: jnp.pad(x, [(0, S - width if a == axis else 0) for a in range(x.ndim)])
        return pad(tok), pad(lp), pad(kv.new_k, 1), pad(kv.new_v, 1)

    # the pools are only read inside the branches (a branch that wrote them would make XLA
    # copy every pool in and out of the switch); the step's keys/values are written after it
    branches = [functools.partial(step, w, e) for w in widths for e in extents]
    tok, lp, new_k, new_v = jax.lax.switch(pick_w * len(extents) + pick_e, branches, s.kv)
    kv = PagedAttention(spec.cfg, extents[-1], *write, prompt, gen).end(
        s.kv._replace(new_k=new_k, new_v=new_v)
    )
    R = q.row_ids.shape[0]
    at = (jnp.where(live, s.slot_row, R), s.drawn)
    drawn = s.drawn + live
    ended = live & (_stops(spec, tok) | (drawn >= q.budgets[row]))
    read = jnp.asarray(extents, jnp.float32)[pick_e] * jnp.float32((spec.shapes.prompt_len, page))
    stats = s.stats._replace(
        steps=s.stats.steps + 1,
        slots=s.stats.slots + jnp.asarray(widths, jnp.int32)[pick_w],
        tokens=s.stats.tokens + live.sum(dtype=jnp.int32),
        prompt_tokens=s.stats.prompt_tokens + read[0],
        gen_tokens=s.stats.gen_tokens + read[1],
    )
    s = s._replace(
        kv=kv,
        last=tok,
        drawn=drawn,
        stats=stats,
        tokens=s.tokens.at[at].set(tok, mode="drop"),
        logprobs=s.logprobs.at[at].set(lp, mode="drop"),
        lengths=s.lengths.at[at[0]].set(drawn, mode="drop"),
        gen_owner=jnp.where((s.gen_owner >= 0) & jnp.take(ended, s.gen_owner, mode="clip"), -1, s.gen_owner),
        slot_row=jnp.where(ended, -1, s.slot_row),
    )
    return _release(s, s.slot_prompt, ended)


def init_state(spec: ProgramSpec, key: jax.Array) -> State:
    """Empty slots, pools and outputs for `spec`'s shapes."""
    cfg, plan, sh = spec.cfg, spec.plan, spec.shapes
    S, page = plan.slots, plan.page_size
    n_gen = spec.gen_pages * S
    dtype = jnp.dtype(cfg.dtype)
    K, H, L = cfg.num_kv_heads, cfg.head_dim, cfg.num_layers
    prompts = jnp.zeros((L, spec.prompt_slots, K, sh.prompt_len, H), dtype)
    pages = jnp.zeros((L, n_gen, K, page, H), dtype)
    kv = PagedKV(prompts, prompts, pages, pages)
    if plan.unstack_layers:
        kv = PagedKV(*(tuple(x) for x in kv[:4]))
    i32 = lambda shape, v: jnp.full(shape, v, jnp.int32)
    zero = jnp.int32(0)
    return State(
        next=zero,
        slot_row=i32((S,), -1),
        slot_prompt=i32((S,), 0),
        last=i32((S,), 0),
        drawn=i32((S,), 0),
        gen_table=i32((S, spec.gen_pages), n_gen),
        refs=i32((sh.prompts,), 0),
        resident=jnp.zeros((sh.prompts,), bool),
        hidden=jnp.zeros((sh.prompts, cfg.hidden_size), dtype),
        prompt_owner=i32((spec.prompt_slots,), -1),
        gen_owner=i32((n_gen,), -1),
        gen_base=i32((n_gen,), 0),
        kv=kv,
        tokens=i32((sh.queue, sh.gen_len), spec.pad_id),
        logprobs=jnp.zeros((sh.queue, sh.gen_len), jnp.float32),
        lengths=i32((sh.queue,), 0),
        stats=Stats(zero, zero, zero, jnp.float32(0), jnp.float32(0)),
    )


@functools.partial(jax.jit, static_argnames=("spec",))
def generate(
    params: api.Params,
    decode_params: api.Params,
    queue: Queue,
    key: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    rope_table: tuple[jax.Array, jax.Array],
    *,
    spec: ProgramSpec,
) -> State:
    """Decode the whole queue; prefill on `params` (stacked), decode on `decode_params` (the
    same weights, maybe unstacked)."""
    state = init_state(spec, key)._replace(refs=queue.refs)

    def admit(s: State) -> State:
        return jax.lax.while_loop(
            lambda s: jnp.any(s.slot_row < 0) & (s.next < queue.n_rows),
            lambda s: _admit_one(spec, params, queue, s, key, temperature, top_p, rope_table),
            s,
        )

    def step(s: State) -> State:
        s = admit(s)
        return jax.lax.cond(
            jnp.any(s.slot_row >= 0),
            lambda s: _decode(spec, decode_params, queue, s, key, temperature, top_p, rope_table),
            lambda s: s,
            s,
        )

    return jax.lax.while_loop(lambda s: (s.next < queue.n_rows) | jnp.any(s.slot_row >= 0), step, state)

"""The sampling step as pure functions: logits [B, V] in, one token and its logprob per row out.

Which filters exist is *static* (`SamplingMode`, part of the jit key), their strengths are
traced scalars: changing the temperature or top_p never recompiles, and the common AZR setting
(temperature 1, top_p 1, top_k 0) compiles to a program with no sort over the vocabulary.

Returned logprobs are those of the sampled token under the temperature-scaled, *unfiltered*
distribution, log softmax(logits / T), with T = 1 for greedy. That is the quantity a trainer
recomputes with one full forward pass (it never applies top-k/top-p), so the two can be compared
or the sampler's value used as the "old" policy logprob directly.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from azr_jax.sampling.config import SamplingParams


@dataclasses.dataclass(frozen=True)
class SamplingMode:
    """The program-shaping part of `SamplingParams` (hashable: a jit static argument)."""

    greedy: bool = False
    top_k: int = 0  # 0 = no top-k filter
    top_p: bool = False  # compile the nucleus filter in

    @classmethod
    def of(cls, params: SamplingParams) -> SamplingMode:
        if params.greedy:
            return cls(greedy=True)
        return cls(greedy=False, top_k=params.top_k, top_p=params.top_p < 1.0)


def row_keys(key: jax.Array, rows: jax.Array, steps: jax.Array) -> jax.Array:
    """The PRNG key of each row's draw: fold_in(fold_in(key, row), step), row = the caller's
    row index. Both engines draw with it, so a row's samples depend on (key, row, step, its
    logits) only: not on batching, slots or when the row ran."""
    steps = jnp.broadcast_to(steps, rows.shape)
    return jax.vmap(lambda r, t: jax.random.fold_in(jax.random.fold_in(key, r), t))(rows, steps)


def token_logprobs(logits: jax.Array, tokens: jax.Array, temperature: jax.Array) -> jax.Array:
    """log softmax(logits / T)[token] per row, without materialising the [B, V] log-softmax."""
    scaled = logits.astype(jnp.float32) / temperature
    picked = jnp.take_along_axis(scaled, tokens[:, None], axis=-1)[:, 0]
    return picked - jax.nn.logsumexp(scaled, axis=-1)


def nucleus_mask(sorted_logits: jax.Array, top_p: jax.Array) -> jax.Array:
    """Keep mask over logits sorted in descending order: the smallest prefix whose probability
    mass reaches top_p (a token stays while the mass strictly above it is < top_p), so the most
    likely token always survives."""
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_above = jnp.cumsum(probs, axis=-1) - probs
    return mass_above < top_p


def nucleus_keep(logits: jax.Array, top_p: jax.Array) -> jax.Array:
    """The nucleus of `nucleus_mask` without sorting the vocabulary: keep token i iff the
    probability mass strictly above it is < top_p, i.e. iff p_i >= p*, the smallest kept
    probability. p* is found exactly by bisection over the bit patterns of the fp32
    probabilities (non-negative floats order like their int32 bits): 30 masked sums over
    [B, V] instead of a [B, V] sort, which on CPU costs more than the model's decode step.
    Tokens tied with p* are all kept (a sort keeps an arbitrary subset of a tie).
    """
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    bits = jax.lax.bitcast_convert_type(probs, jnp.int32)
    B = probs.shape[0]
    # invariant: mass above bit pattern lo >= top_p > mass above hi; hi ends at p*'s bits
    lo = jnp.zeros((B,), jnp.int32)
    hi = jnp.full((B,), jax.lax.bitcast_convert_type(jnp.float32(1.0), jnp.int32))

    def halve(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        above = jnp.sum(jnp.where(bits > mid[:, None], probs, 0.0), axis=-1)
        small = above < top_p
        return jnp.where(small, lo, mid), jnp.where(small, mid, hi)

    _, hi = jax.lax.fori_loop(0, 31, halve, (lo, hi))  # 2^31 > 1.0f's bits: converged
    return bits >= hi[:, None]


def _categorical(keys: jax.Array, logits: jax.Array) -> jax.Array:
    """One draw per row, each row from its own key (so a row's sample does not depend on which
    other rows share its batch)."""
    return jax.vmap(jax.random.categorical)(keys, logits)


def sample(
    logits: jax.Array, keys: jax.Array, temperature: jax.Array, top_p: jax.Array, mode: SamplingMode
) -> tuple[jax.Array, jax.Array]:
    """Draw one token per row.

    logits: [B, V] (any float dtype; computed in fp32); keys: [B] typed PRNG keys; temperature,
    top_p: traced scalars (temperature is ignored in greedy mode). Returns (tokens int32 [B],
    logprobs fp32 [B]).
    """
    logits = logits.astype(jnp.float32)
    if mode.greedy:
        tokens = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return tokens, token_logprobs(logits, tokens, jnp.float32(1.0))

    scaled = logits / temperature
    vocab = scaled.shape[-1]
    if mode.top_k == 0 and not mode.top_p:
        tokens = _categorical(keys, scaled)
    elif mode.top_k == 0:  # nucleus only: sort-free
        tokens = _categorical(keys, jnp.where(nucleus_keep(scaled, top_p), scaled, -jnp.inf))
    else:
        # Sorted descending; exactly k candidates even when logits tie at the boundary.
        cand, idx = jax.lax.top_k(scaled, min(mode.top_k, vocab))
        if mode.top_p:
            cand = jnp.where(nucleus_mask(cand, top_p), cand, -jnp.inf)
        choice = _categorical(keys, cand)
        tokens = jnp.take_along_axis(idx, choice[:, None], axis=-1)[:, 0]
    tokens = tokens.astype(jnp.int32)
    return tokens, token_logprobs(scaled, tokens, jnp.float32(1.0))

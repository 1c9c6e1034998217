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
    def of(cls, params: SamplingParams) -> "SamplingMode":
        if params.greedy:
            return cls(greedy=True)
        return cls(greedy=False, top_k=params.top_k, top_p=params.top_p < 1.0)


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


def _categorical(keys: jax.Array, logits: jax.Array) -> jax.Array:
    """One draw per row, each row from its own key (so a row's sample does not depend on which
    other rows share its batch)."""
    return jax.vmap(lambda k, l: jax.random.categorical(k, l))(keys, logits)


def sample(logits: jax.Array, keys: jax.Array, temperature: jax.Array, top_p: jax.Array,
           mode: SamplingMode) -> tuple[jax.Array, jax.Array]:
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
    else:
        if mode.top_k:
            # Sorted descending; exactly k candidates even when logits tie at the boundary.
            cand, idx = jax.lax.top_k(scaled, min(mode.top_k, vocab))
        else:
            iota = jnp.broadcast_to(jnp.arange(vocab, dtype=jnp.int32), scaled.shape)
            neg, idx = jax.lax.sort_key_val(-scaled, iota, dimension=-1)
            cand = -neg
        if mode.top_p:
            cand = jnp.where(nucleus_mask(cand, top_p), cand, -jnp.inf)
        choice = _categorical(keys, cand)
        tokens = jnp.take_along_axis(idx, choice[:, None], axis=-1)[:, 0]
    tokens = tokens.astype(jnp.int32)
    return tokens, token_logprobs(scaled, tokens, jnp.float32(1.0))

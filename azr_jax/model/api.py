"""Functional entry points to the decoder: params are a plain nested dict of arrays.

Outside the model everything (optimizer, checkpoints, sampler, HF conversion, sharding) works
on that dict; `apply` re-binds it to the NNX module inside jit. The graph definition depends
only on the (frozen, hashable) config, so it is built once per config and cached.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from flax import nnx

from azr_jax.model.config import ModelConfig
from azr_jax.model.decoder import KVCache, Transformer, forward, lm_head, unstack_layers
from sharding.rules import ShardingRules

Params = dict[str, Any]


@functools.cache
def _abstract(cfg: ModelConfig) -> tuple[Any, Params, Params]:
    model = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    shapes = nnx.to_pure_dict(state)
    axes = jax.tree.map(
        lambda v: v.get_metadata()["logical_axes"], state, is_leaf=lambda x: isinstance(x, nnx.Variable)
    )
    return graphdef, shapes, nnx.to_pure_dict(axes) if not isinstance(axes, dict) else axes


def graphdef(cfg: ModelConfig) -> Any:
    return _abstract(cfg)[0]


def abstract_params(cfg: ModelConfig) -> Params:
    """Shapes and dtypes of every parameter ([jax.ShapeDtypeStruct] leaves), no memory used."""
    return _abstract(cfg)[1]


def logical_axes(cfg: ModelConfig) -> Params:
    """The same tree as the params, with each leaf's tuple of logical axis names."""
    return _abstract(cfg)[2]


def init_params(cfg: ModelConfig, seed: int = 0) -> Params:
    """Random initialisation (normal(0.02) weights, unit norms, zero biases)."""
    return nnx.to_pure_dict(nnx.state(Transformer(cfg, rngs=nnx.Rngs(seed))))


def bind(cfg: ModelConfig, params: Params) -> Transformer:
    return nnx.merge(graphdef(cfg), params)


def apply(
    cfg: ModelConfig,
    params: Params,
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
    """Forward pass on the stacked params; see `decoder.forward` for the contract (the
    one-token decode step, on stacked or unstacked params, is `model.decode.decode_step`)."""
    return forward(
        cfg,
        params,
        tokens,
        positions,
        attn_mask,
        cache,
        rules=rules,
        return_hidden=return_hidden,
        fresh_cache=fresh_cache,
        rope_table=rope_table,
    )


def lm_logits(
    cfg: ModelConfig, params: Params, hidden: jax.Array, *, rules: ShardingRules | None = None
) -> jax.Array:
    """LM head alone, for callers that chunk the vocabulary projection (the RL loss)."""
    return lm_head(cfg, params, hidden, rules=rules)


def positions_from_mask(attn_mask: jax.Array) -> jax.Array:
    """Positions for left-padded rows: real tokens count 0, 1, ...; pads get 0."""
    import jax.numpy as jnp

    mask = attn_mask.astype(jnp.int32)
    return jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0)


__all__ = [
    "KVCache",
    "Params",
    "abstract_params",
    "apply",
    "bind",
    "graphdef",
    "init_params",
    "lm_logits",
    "logical_axes",
    "positions_from_mask",
    "unstack_layers",
]

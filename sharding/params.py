"""Place parameter trees on a mesh according to their logical axes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from sharding.rules import ShardingRules


def tree_shardings(shapes: Any, axes: Any, rules: ShardingRules) -> Any:
    """NamedSharding per leaf of `shapes` (arrays or ShapeDtypeStructs), from the axes tree.

    `axes` has the same structure as `shapes` with a tuple of logical names at each leaf.
    """
    return jax.tree.map(lambda s, a: rules.sharding(a, s.shape), shapes, axes)


def shard_params(params: Any, axes: Any, rules: ShardingRules) -> Any:
    """Move a freshly initialised or loaded (host or single-device) tree onto the mesh."""
    return put(params, tree_shardings(params, axes, rules))


def put(tree: Any, shardings: Any) -> Any:
    """`jax.device_put` that also works when a sharding spans several hosts.

    Every host passes the same global value; each keeps only the shards of its own devices
    (`device_put` refuses shardings with devices of other processes). `shardings` is one
    Sharding for every leaf or a tree matching `tree`. Typed PRNG keys are placed through
    their raw key data.
    """

    def one(x: Any, s: jax.sharding.Sharding) -> jax.Array:
        if s.is_fully_addressable:
            return jax.device_put(x, s)
        if isinstance(x, jax.Array) and not x.is_fully_addressable:  # already global: reshard
            if x.sharding.is_equivalent_to(s, x.ndim):
                return x
            return jax.jit(lambda a: a, out_shardings=s)(x)
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x), s), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return array_from_host(host.shape, host.dtype, s, lambda index: host[index])

    if shardings is None:
        return jax.device_put(tree)
    if isinstance(shardings, jax.sharding.Sharding):
        return jax.tree.map(lambda x: one(x, shardings), tree)
    return jax.tree.map(one, tree, shardings)


def array_from_host(
    shape: tuple[int, ...],
    dtype: Any,
    sharding: NamedSharding,
    read: Callable[[tuple[slice, ...]], np.ndarray],
) -> jax.Array:
    """Build a global array from a host reader, one addressable shard at a time.

    Each host only reads the slices its own devices hold, so a multi-host load never gathers
    a whole tensor on one machine.
    """

    def cb(index: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(read(index), dtype=dtype)

    return jax.make_array_from_callback(tuple(shape), sharding, cb)


def init_sharded(init_fn: Callable[[], Any], shapes: Any, axes: Any, rules: ShardingRules) -> Any:
    """Run `init_fn` under jit with sharded outputs: parameters are born distributed, never
    materialised on one device first (what makes a 14B init fit)."""
    return jax.jit(init_fn, out_shardings=tree_shardings(shapes, axes, rules))()

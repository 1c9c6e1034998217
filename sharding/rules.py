"""Logical axis names -> mesh axes: the one table that decides how everything is sharded.

The model names every parameter dimension (`embed`, `heads`, `mlp`, ...) and a few activation
dimensions (`batch`, `act_heads`, ...). These rules turn the names into `PartitionSpec`s for a
given mesh. Keeping the mapping here, not in the model, is what lets one model file serve a
laptop (everything replicated), 8 fake CPU devices and a TPU pod.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MeshAxes = str | tuple[str, ...] | None

# Training / default rules: FSDP over `embed` of every weight, tensor parallel over heads, MLP
# columns and vocabulary; batch split over both data-parallel axes.
DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
    # parameters
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("norm", None),
    # activations and KV cache
    ("batch", ("data", "fsdp")),
    ("seq", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    ("cache_seq", None),
)


class ShardingRules:
    """Resolves logical names to shardings on one mesh.

    A dimension whose size is not divisible by its mesh axes falls back to fewer axes
    (ultimately replication), with one log line, instead of failing: e.g. SmolLM2's 9 heads on a
    4-way tensor axis are replicated while its MLP is still split.
    """

    def __init__(self, mesh: Mesh | None, rules: Iterable[tuple[str, MeshAxes]] = DEFAULT_RULES):
        self.mesh = mesh
        self.rules: dict[str, MeshAxes] = dict(rules)
        self._warned: set[tuple] = set()

    @property
    def active(self) -> bool:
        """Whether sharding constraints do anything (more than one device)."""
        return self.mesh is not None and self.mesh.size > 1

    def _axes(self, name: str | None) -> tuple[str, ...]:
        if name is None:
            return ()
        if name not in self.rules:
            raise KeyError(f"no sharding rule for logical axis {name!r}; rules: {sorted(self.rules)}")
        axes = self.rules[name]
        if axes is None:
            return ()
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        present = self.mesh.shape if self.mesh is not None else {}
        return tuple(a for a in axes if a in present and present[a] > 1)

    def spec(self, names: Sequence[str | None], shape: Sequence[int] | None = None) -> PartitionSpec:
        """PartitionSpec for a tensor whose dimensions carry `names`.

        With `shape`, axes that do not divide a dimension are dropped (last first).
        """
        if shape is not None and len(shape) != len(names):
            raise ValueError(f"logical axes {tuple(names)} do not match shape {tuple(shape)}")
        used: set[str] = set()
        out: list[MeshAxes] = []
        for i, name in enumerate(names):
            axes = tuple(a for a in self._axes(name) if a not in used)
            if shape is not None:
                while axes and shape[i] % math.prod(self.mesh.shape[a] for a in axes):
                    key = (name, shape[i], axes)
                    if key not in self._warned:
                        self._warned.add(key)
                        log.info(
                            "logical axis %r (size %d) not divisible by mesh axes %s: dropping %r",
                            name,
                            shape[i],
                            axes,
                            axes[-1],
                        )
                    axes = axes[:-1]
            used.update(axes)
            out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
        while out and out[-1] is None:
            out.pop()
        return PartitionSpec(*out)

    def sharding(self, names: Sequence[str | None], shape: Sequence[int] | None = None) -> NamedSharding:
        if self.mesh is None:
            raise ValueError("ShardingRules has no mesh")
        return NamedSharding(self.mesh, self.spec(names, shape))

    def constrain(self, x: jax.Array, names: Sequence[str | None]) -> jax.Array:
        """`with_sharding_constraint` on an activation; a no-op without a multi-device mesh."""
        if not self.active:
            return x
        return jax.lax.with_sharding_constraint(x, self.sharding(names, x.shape))

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())


def rules_from_overrides(overrides: Mapping[str, Any] | None) -> tuple[tuple[str, MeshAxes], ...]:
    """DEFAULT_RULES with some names remapped (from a config), e.g. {'embed': None}."""
    rules = dict(DEFAULT_RULES)
    for k, v in (overrides or {}).items():
        if k not in rules:
            raise KeyError(f"unknown logical axis {k!r} in sharding overrides; known: {sorted(rules)}")
        rules[k] = tuple(v) if isinstance(v, list) else v
    return tuple(rules.items())

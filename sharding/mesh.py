"""Device mesh construction: one mesh with axes (data, fsdp, tensor) for every topology.

`data` replicates parameters and splits the batch, `fsdp` splits both the batch and the
parameters (ZeRO-3 style: XLA all-gathers a layer's weights when it needs them), `tensor`
splits attention heads, MLP columns and the vocabulary (Megatron style). The same three names
serve one CPU, 8 fake CPU devices, one GPU and a TPU pod; only the sizes change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

AXES = ("data", "fsdp", "tensor")


def resolve_axis_sizes(
    sizes: Sequence[int], num_devices: int, names: Sequence[str] = AXES
) -> tuple[int, ...]:
    """Replace a single -1 by "the rest of the devices" and check the product.

    Raises ValueError with the offending numbers, so a mis-sized launch fails before any
    compilation instead of deep inside XLA.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) != len(names):
        raise ValueError(f"mesh needs {len(names)} sizes for axes {tuple(names)}, got {sizes}")
    bad = [s for s in sizes if s == 0 or s < -1]
    if bad:
        raise ValueError(f"mesh sizes must be positive or -1, got {dict(zip(names, sizes))}")
    free = [i for i, s in enumerate(sizes) if s == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(names, sizes))}")
    fixed = math.prod(s for s in sizes if s != -1)
    if free:
        if num_devices % fixed:
            raise ValueError(
                f"mesh {dict(zip(names, sizes))}: the fixed axes use {fixed} devices, which does "
                f"not divide the {num_devices} available devices"
            )
        sizes[free[0]] = num_devices // fixed
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"mesh {dict(zip(names, sizes))} needs {math.prod(sizes)} devices but "
            f"{num_devices} are available (set one axis to -1 to use the rest)"
        )
    return tuple(sizes)


def make_mesh(
    data: int = 1, fsdp: int = -1, tensor: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """A mesh over `devices` (default: all devices of all hosts).

    Axis types are `Auto` on purpose: sharding is decided by the in/out shardings of jit and by
    a few `with_sharding_constraint`s in the model (classic pjit propagation), not carried in the
    array types, so the same model code runs unsharded on one device.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_axis_sizes((data, fsdp, tensor), len(devices))
    types = (AxisType.Auto,) * len(AXES)
    if len(devices) == len(jax.devices()) or devices[0].platform != jax.default_backend():
        # A whole slice (this process's devices, or the compile-only devices of a TPU topology
        # descriptor): let jax pick a topology-aware device order (matters on TPU pods).
        try:
            return jax.make_mesh(shape, AXES, axis_types=types, devices=devices)
        except NotImplementedError:
            # A mesh axis that is no product of the torus' axis sizes (data=2 on a 4x4x4 v5p):
            # split a physical axis rather than refuse (what jax does by default on v5e).
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
            return Mesh(grid, AXES, axis_types=types)
    return Mesh(np.asarray(devices).reshape(shape), AXES, axis_types=types)


def mesh_from_config(cfg, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Build the mesh from an ml_collections block with `data`, `fsdp`, `tensor` fields and an
    optional `num_devices` (0 or absent = every device; n = the first n devices)."""
    n = int(cfg.get("num_devices", 0) or 0)
    if devices is None and n:
        if n > jax.device_count():
            raise ValueError(f"mesh.num_devices={n} but only {jax.device_count()} devices exist")
        devices = jax.devices()[:n]
    return make_mesh(int(cfg.data), int(cfg.fsdp), int(cfg.tensor), devices=devices)


def describe(mesh: Mesh) -> str:
    return " x ".join(f"{n}={s}" for n, s in mesh.shape.items()) + f" ({mesh.size} devices)"

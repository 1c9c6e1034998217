"""Accelerator datasheet numbers and Cloud TPU slice names: the one table MFU, step-time bounds
and `azr-jax compile`'s fit checks read.

Peaks are dense bf16 matmul rates (no sparsity), HBM is per chip. TPU figures are Google's Cloud
TPU system-architecture pages; GPU figures NVIDIA's SXM datasheets (the H100 PCIe/NVL and A100
differ: listed separately). A slice name is the `--accelerator-type` of `gcloud compute tpus`:
v4 and v5p names count TensorCores (2 per chip, one JAX device per chip: "megacore"), v5e and
v6e names count chips.
"""

from __future__ import annotations

import dataclasses
import math
import re

GiB = 1024**3


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    bf16_flops: float  # dense peak, FLOP/s
    hbm_bytes: int
    hbm_bandwidth: float  # bytes/s


CHIPS: dict[str, Chip] = {
    # key: jax `device.device_kind`
    "TPU v4": Chip("TPU v4", 275e12, 32 * GiB, 1.2e12),
    "TPU v5 lite": Chip("TPU v5e", 197e12, 16 * GiB, 819e9),
    "TPU v5": Chip("TPU v5p", 459e12, 95 * GiB, 2.765e12),
    "TPU v5p": Chip("TPU v5p", 459e12, 95 * GiB, 2.765e12),
    "TPU v6 lite": Chip("TPU v6e", 918e12, 32 * GiB, 1.64e12),
    "TPU v6e": Chip("TPU v6e", 918e12, 32 * GiB, 1.64e12),
    "NVIDIA H100 80GB HBM3": Chip("H100 SXM", 989e12, 80 * 10**9, 3.35e12),
    "NVIDIA H100 PCIe": Chip("H100 PCIe", 756e12, 80 * 10**9, 2.0e12),
    "NVIDIA H100 NVL": Chip("H100 NVL", 835e12, 94 * 10**9, 3.9e12),
    "NVIDIA H200": Chip("H200 SXM", 989e12, 141 * 10**9, 4.8e12),
    "NVIDIA A100-SXM4-80GB": Chip("A100 SXM 80GB", 312e12, 80 * 10**9, 2.039e12),
}


def chip(device_kind: str) -> Chip | None:
    """The datasheet entry of a JAX device kind, or None (CPUs, unlisted accelerators)."""
    if device_kind in CHIPS:
        return CHIPS[device_kind]
    for kind, spec in CHIPS.items():  # e.g. "NVIDIA H200 NVL" -> the H200 entry
        if kind.startswith("NVIDIA") and device_kind.startswith(kind):
            return spec
    return None


# ---------------------------------------------------------------------------- TPU slices
@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """One Cloud TPU slice: what `jax.experimental.topologies.get_topology_desc` needs."""

    name: str  # the accelerator type, e.g. "v5p-128"
    generation: str  # "v4" | "v5e" | "v5p" | "v6e"
    shape: tuple[int, ...]  # chips along each torus axis
    chips_per_host: tuple[int, ...]

    @property
    def chips(self) -> int:
        return math.prod(self.shape)

    @property
    def hosts(self) -> int:
        return self.chips // math.prod(self.chips_per_host)

    @property
    def topology_name(self) -> str:  # libtpu's name, e.g. "v5p:4x4x4"
        return f"{self.generation}:{'x'.join(map(str, self.shape))}"

    @property
    def chip_config(self) -> str:  # v4/v5p: both TensorCores of a chip form one device
        return "megacore" if self.generation in ("v4", "v5p") else "default"

    @property
    def chip(self) -> Chip:
        return CHIPS[
            {"v4": "TPU v4", "v5e": "TPU v5 lite", "v5p": "TPU v5", "v6e": "TPU v6 lite"}[self.generation]
        ]


# generation -> (accelerator-type count per chip, smallest multi-host shape, chips per host
# there, most chips on one host)
_GENERATIONS = {
    "v4": (2, (2, 2, 1), (2, 2, 1), 4),
    "v5p": (2, (2, 2, 1), (2, 2, 1), 4),
    "v5e": (1, (2, 2), (2, 2), 8),
    "v6e": (1, (2, 2), (2, 2), 8),
}
_SLICE_RE = re.compile(r"^(v4|v5p|v5e|v5litepod|v6e)-(\d+)$")


def _shape(chips: int, base: tuple[int, ...]) -> tuple[int, ...] | None:
    """The standard torus shape of `chips` chips: from `base`, double the smallest axis (the
    last of equals) until the count is reached (v5p: 2x2x1, 2x2x2, 2x2x4, 2x4x4, 4x4x4, ...)."""
    shape = list(base)
    while math.prod(shape) < chips:
        i = max(j for j, s in enumerate(shape) if s == min(shape))
        shape[i] *= 2
    return tuple(shape) if math.prod(shape) == chips else None


def parse_slice(name: str) -> TpuSlice:
    """`v4-32`, `v5e-64` (or `v5litepod-64`), `v5p-128`, `v6e-256` -> a TpuSlice; ValueError
    naming the accepted forms otherwise."""
    m = _SLICE_RE.match(name)
    count = int(m.group(2)) if m else 0
    gen = {"v5litepod": "v5e"}.get(m.group(1), m.group(1)) if m else ""
    if gen:
        per_chip, base, host, one_host = _GENERATIONS[gen]
        chips = count // per_chip
        single = {1: (1, 1), 4: (2, 2), 8: (2, 4)} if len(base) == 2 else {4: (2, 2, 1)}
        shape = single.get(chips) if chips <= one_host else _shape(chips, base)
        if shape is not None and count % per_chip == 0:
            return TpuSlice(name, gen, shape, shape if chips <= one_host else host)
    raise ValueError(
        f"unknown TPU slice {name!r}: expected v4-N or v5p-N (N TensorCores: 8, 16, 32, 64, ...) "
        "or v5e-N / v6e-N (N chips: 1, 4, 8, 16, 32, ...)"
    )


def is_tpu_slice(name: str) -> bool:
    return bool(_SLICE_RE.match(name))

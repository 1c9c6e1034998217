"""Which JAX backends a process starts: decided once, before JAX starts any.

libtpu is installed on machines without TPUs too: `azr-jax compile` needs it to compile for TPU
slices on a CPU (it comes with the `test` and `tpu` extras). Left alone, JAX then tries to
start a TPU runtime on its first operation on any machine; without TPU chips that fails after
printing five error lines to stderr and loading libtpu.so (~100 MB of RSS), and JAX falls back
to the CPU. JAX already skips CUDA when no NVIDIA device is visible; `skip_absent_tpu` does the
same for TPU. An explicit `JAX_PLATFORMS` always wins, and nothing changes on a machine with an
accelerator (TPU chips or a GPU device node).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys

_GOOGLE_PCI_VENDOR = "0x1ae0"  # every Cloud TPU chip is a PCI device of this vendor
_GPU_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


def tpu_attached() -> bool:
    """A Google PCI device is present (what JAX itself checks before starting a TPU runtime)."""
    for path in glob.glob("/sys/bus/pci/devices/*/vendor"):
        try:
            with open(path, encoding="ascii") as f:
                if f.read().strip() == _GOOGLE_PCI_VENDOR:
                    return True
        except OSError:
            continue
    return False


def skip_absent_tpu() -> bool:
    """Restrict JAX to the CPU when libtpu is installed but neither a TPU nor a GPU is attached
    and the user set no `JAX_PLATFORMS`; returns whether it did. Must run before JAX starts a
    backend (it is called when `azr_jax` is imported); compiling for a TPU topology
    (`azr_jax.aot`) loads libtpu by itself and is not affected."""
    if "JAX_PLATFORMS" in os.environ or importlib.util.find_spec("libtpu") is None:
        return False
    if tpu_attached() or any(os.path.exists(p) for p in _GPU_DEVICE_NODES):
        return False
    os.environ["JAX_PLATFORMS"] = "cpu"
    if "jax" in sys.modules:  # imported already: its config read the environment at import
        import jax

        if not jax.config.jax_platforms:
            jax.config.update("jax_platforms", "cpu")
    return True

"""Host memory of one checkpoint save on the CPU backend: orbax's default against the bound the
trainer uses there (`Checkpointer(save_concurrent_bytes=host_save_bytes(params))`).

A train state shaped like the tiny_cpu demo's (SmolLM2-135M: 0.54 GB of fp32 params, 1.08 GB
of Adam moments; random values, so nothing compresses) is saved asynchronously, then waited
for, in a fresh process per variant. The table gives the RSS the save added at its peak (the
kernel's high-water mark, reset just before the save) and the save's wall time.

Usage: python benchmarks/checkpoint_save.py [--leaves 5] [--leaf_mb 108]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return int(dict(line.split(":", 1) for line in f)[field].split()[0]) / 1024


def child(variant: str, leaves: int, leaf_mb: int) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, str(REPO))
    import jax
    import jax.numpy as jnp

    from azr_jax.checkpoint import Checkpointer, host_save_bytes
    from azr_jax.model.config import ModelConfig

    n = leaf_mb * (1 << 20) // 4
    params = {f"w{i}": jax.random.normal(jax.random.key(i), (n,), jnp.float32) for i in range(leaves)}
    opt = {"mu": {k: v * 0.5 for k, v in params.items()}, "nu": {k: v * v for k, v in params.items()}}
    jax.block_until_ready((params, opt))
    cfg = ModelConfig(
        architecture="qwen2", vocab_size=96, hidden_size=32, intermediate_size=64,
        num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
    )  # fmt: skip
    bound = host_save_bytes(params) if variant == "bounded" else None
    directory = tempfile.mkdtemp(prefix="azr-ckpt-bench-")
    try:
        ck = Checkpointer(directory, save_concurrent_bytes=bound)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark: the peak below is the save's own
        base, t0 = _rss_mb(), time.perf_counter()
        ck.save(1, params=params, model_config=cfg, opt_state=opt, state={"step": 1})
        ck.wait()
        seconds = time.perf_counter() - t0
        ck.close()
        print(
            json.dumps(
                {"variant": variant, "bound": bound, "added_mb": _rss_mb("VmHWM") - base, "s": seconds}
            )
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leaves", type=int, default=5)
    p.add_argument("--leaf_mb", type=int, default=108)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.leaves, args.leaf_mb)
        return
    state_gb = 3 * args.leaves * args.leaf_mb * (1 << 20) / 1e9
    print(f"train state {state_gb:.2f} GB ({args.leaves} leaves of {args.leaf_mb} MiB, x3 with Adam)")
    print(f"{'save':<28}{'RSS added at peak (MB)':>24}{'wall s':>9}")
    for variant in ("orbax default", "bounded"):
        cmd = [
            sys.executable,
            __file__,
            f"--child={variant}",
            f"--leaves={args.leaves}",
            f"--leaf_mb={args.leaf_mb}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        name = variant if row["bound"] is None else f"bounded ({row['bound'] / 1e9:.2f} GB per item)"
        print(f"{name:<28}{row['added_mb']:>24.0f}{row['s']:>9.1f}")


if __name__ == "__main__":
    main()

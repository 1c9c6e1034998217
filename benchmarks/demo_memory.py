"""Where the tiny_cpu demo's memory goes: one self-play step's two big phases, run twice.

Each variant runs in its own process (peak RSS is per process), in the trainer's order:
SmolLM2-135M, then twice: one generation call shaped like a demo step (24 prompts of 250-500
tokens, 128 new tokens, the demo's buckets) and one update shaped like it (12 x 640 + 12 x 384
tokens, two batch widths). The AdamW moments are made before the first generation (before
this change) or before the first update (the trainer now). For each phase it prints the phase's own peak
RSS (the kernel's high-water mark is reset before each phase), the RSS after it, the CPU seconds
it used (user + sys: steadier than wall time on a shared machine), and glibc's view of the
heap after it: bytes in use, bytes freed but still held by malloc (returned to the system only
by `malloc_trim`), and bytes in mmapped blocks (the large arrays). The first generation and
update include XLA compilation.

Variants (peers in the same run): the demo config before this change (remat none,
micro-batch 4, decoding on unstacked weights, heap not trimmed) and after it (the config as shipped: configs/tiny_cpu.py).

Usage: python benchmarks/demo_memory.py [--variants before,after]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "before": {
        "remat": "none",
        "micro_batch_size": 4,
        "unstack_layers": "on",
        "trim": False,
        "lazy_optimizer": False,
    },
    # configs/tiny_cpu.py as shipped; heap trimmed between phases and the optimizer state made
    # at the first update, as the trainer does
    "after": {},
    "after_mb1": {"micro_batch_size": 1},
    "after_mb4": {"micro_batch_size": 4},
}


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _rss_gb() -> tuple[float, float]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return (int(fields["VmRSS"].split()[0]) / 1e6, int(fields["VmHWM"].split()[0]) / 1e6)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child(spec: dict) -> None:
    """Runs in the variant's own process; prints one JSON line per phase."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, str(REPO))
    import jax
    import numpy as np
    from transformers import AutoTokenizer

    from azr_jax import host_memory
    from azr_jax.azr.run import load_model, selfplay_config, update_configs
    from azr_jax.azr.sampler_policy import build_policy
    from azr_jax.config_files import load_config, resolve_config_path
    from azr_jax.rl.train_step import StepConfig, TrainBatch, Trainer
    from azr_jax.sampling.config import SamplingParams
    from sharding.mesh import mesh_from_config
    from sharding.rules import ShardingRules

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    c = load_config(resolve_config_path("configs/tiny_cpu.py"))
    c.model.remat = spec.get("remat", c.model.remat)
    c.sampler.unstack_layers = spec.get("unstack_layers", c.sampler.unstack_layers)
    mb = spec.get("micro_batch_size", c.train.micro_batch_size)
    trim = spec.get("trim", True)
    t0, c0 = time.time(), _cpu_s()

    def phase(name: str) -> None:
        nonlocal t0, c0
        _, peak = _rss_gb()
        if trim:
            host_memory.release()
        rss, _ = _rss_gb()
        mi = libc.mallinfo2()
        print(
            json.dumps(
                {
                    "phase": name,
                    "peak_gb": peak,
                    "rss_after_gb": rss,
                    "cpu_s": _cpu_s() - c0,
                    "wall_s": time.time() - t0,
                    "heap_in_use_gb": mi.uordblks / 1e9,
                    "heap_free_held_gb": mi.fordblks / 1e9,
                    "mmapped_gb": mi.hblkhd / 1e9,
                }
            ),
            flush=True,
        )
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark: the next phase's peak is its own
        t0, c0 = time.time(), _cpu_s()

    rules = ShardingRules(mesh_from_config(c.mesh))
    cfg, params, path = load_model(c, rules)
    optim, loss, _, _ = update_configs(c)
    trainer = Trainer(
        cfg,
        rules=rules,
        optim=optim,
        loss=loss,
        step_cfg=StepConfig(micro_batch_size=mb, logit_chunk=c.train.logit_chunk),
    )
    lazy = spec.get("lazy_optimizer", True)
    state = None if lazy else trainer.init_state(params)
    policy = build_policy(
        cfg,
        AutoTokenizer.from_pretrained(path),
        rules,
        sampler=c.sampler,
        sampling=SamplingParams(temperature=0.7, top_p=0.95),
        template=c.model.template,
        prompt_cfg=selfplay_config(c).prompt,
    )
    phase("load" + ("" if lazy else " + optimizer state"))
    rng = np.random.default_rng(0)
    prompts = [list(map(int, rng.integers(100, 40000, size=int(n)))) for n in rng.integers(250, 500, size=24)]

    def batch(rows: int, prompt: int, new: int) -> tuple[TrainBatch, int]:
        width = prompt + new
        tokens = rng.integers(100, 40000, size=(rows, width)).astype(np.int32)
        loss_mask = np.zeros((rows, width), np.int32)
        loss_mask[:, prompt:] = 1
        adv = rng.normal(size=(rows, width)).astype(np.float32) * loss_mask
        return TrainBatch(
            tokens, np.ones_like(tokens), loss_mask, adv, np.full((rows, width), -2.0, np.float32)
        ), prompt

    batches = [batch(12, 512, 128), batch(12, 256, 128)]
    for i in range(2):
        policy.generate(params if state is None else state.params, prompts, 128, jax.random.PRNGKey(i))
        phase(f"generate {i}")
        if state is None:
            state = trainer.init_state(params)
            del params
        state, _ = trainer.update_many(state, batches)
        phase(f"update {i}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default="before,after")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    print(
        "| variant | phase | peak RSS GB | RSS after GB | CPU s | wall s | heap in use GB | "
        "heap freed, held GB | mmapped GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.variants.split(","):
        spec = VARIANTS[name]
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=REPO
        )
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            print(
                f"| {name} | {r['phase']} | {r['peak_gb']:.2f} | {r['rss_after_gb']:.2f} | "
                f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['heap_in_use_gb']:.2f} | "
                f"{r['heap_free_held_gb']:.2f} | {r['mmapped_gb']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

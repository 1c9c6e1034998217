"""Train-step throughput and MFU: azr-jax's jitted update against HF transformers (torch).

One update = forward + backward + AdamW on a random model of a paper shape, bf16 compute on fp32
master weights, rematerialised per layer as the paper configs do (`--remat`), a batch of
`--batch` sequences of each `--seq-lens` tokens, every position trained (the LM head over the
whole sequence, as HF's loss does). The peer is the HF model (`Qwen2ForCausalLM`, sdpa attention,
gradient checkpointing for any remat but "none", torch.autocast bf16, torch.optim.AdamW) on the
same shape and device. Each (framework, length) runs in a subprocess of its own, so its peak
memory is its own: the device's peak bytes in use on a GPU/TPU, the process's peak RSS on a CPU.

MFU = model FLOPs per step (6 x weights x tokens + causal attention, `azr_jax.flops`) / step
time / the device's dense bf16 peak (`azr_jax.hardware`; no peak is known for a CPU).

Usage:
  python benchmarks/train_step.py                      # CPU: the tiny preset, 4k and 8k tokens
  python benchmarks/train_step.py --preset qwen2.5-1.5b --batch 8   # on a GPU
  python benchmarks/train_step.py --preset qwen2.5-3b --frameworks jax
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from azr_jax import flops as flops_lib  # noqa: E402
from azr_jax.model.config import ModelConfig  # noqa: E402
from azr_jax.model.presets import get_preset  # noqa: E402

# Published config.json dims (random weights: throughput depends on the shape only).
PRESETS = {
    # A Qwen2.5-shaped toy for CPUs: 2 layers, a 32k vocabulary.
    "tiny": ModelConfig(
        architecture="qwen2",
        vocab_size=32768,
        hidden_size=256,
        intermediate_size=768,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=64,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        qkv_bias=True,
    ),
    "qwen2.5-1.5b": ModelConfig(
        architecture="qwen2",
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
        head_dim=128,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        qkv_bias=True,
        max_position_embeddings=32768,
    ),
    "qwen2.5-3b": get_preset("qwen2.5-coder-3b"),  # Qwen2.5-3B has the same dims
}


def model_config(args: argparse.Namespace) -> ModelConfig:
    return PRESETS[args.preset].replace(dtype="bfloat16", param_dtype="float32", remat=args.remat)


def _timed(step, steps: int) -> float:
    """Fastest of `steps` calls of `step()` (which must wait for its result), after one untimed
    call (compilation, allocator warm-up)."""
    step()
    best = float("inf")
    for _ in range(steps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return best


# ----------------------------------------------------------------------------------- workers
def run_jax(args: argparse.Namespace, seq: int) -> dict:
    import jax
    import numpy as np

    from azr_jax.model import api
    from azr_jax.rl.train_step import StepConfig, TrainBatch, Trainer

    cfg = model_config(args)
    device = jax.devices()[0]
    params = jax.jit(lambda: api.init_params(cfg, seed=0))()
    trainer = Trainer(cfg, step_cfg=StepConfig(micro_batch_size=args.batch, logit_chunk=512))
    state = trainer.init_state(params)
    del params
    rng = np.random.default_rng(0)
    shape = (args.batch, seq)
    ones = np.ones(shape, np.int32)
    batch = jax.device_put(
        TrainBatch(
            rng.integers(0, cfg.vocab_size, shape, dtype=np.int32),
            ones,
            ones,
            rng.standard_normal(shape).astype(np.float32),
            np.zeros(shape, np.float32),
        )
    )
    holder = {"state": state}

    def step():  # `update` returns host floats: it has waited for the step
        holder["state"], _ = trainer.update(holder["state"], batch)

    seconds = _timed(step, args.steps)
    stats = device.memory_stats() or {}
    return dict(
        seconds=seconds,
        device=device.device_kind,
        platform=device.platform,
        peak_bytes=stats.get("peak_bytes_in_use"),
    )


def run_torch(args: argparse.Namespace, seq: int) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = model_config(args)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    hf = AutoConfig.for_model(**cfg.to_hf_dict())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf, torch_dtype=torch.float32, attn_implementation="sdpa").to(
        dev
    )
    if cfg.remat != "none":
        model.gradient_checkpointing_enable()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, seq), device=dev)

    def step():
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev == "cuda":
            torch.cuda.synchronize()

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = _timed(step, args.steps)
    kind = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else None
    return dict(seconds=seconds, device=kind, platform="gpu" if dev == "cuda" else "cpu", peak_bytes=peak)


# ----------------------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    framework, seq = args.worker.split(":")
    out = (run_jax if framework == "jax" else run_torch)(args, int(seq))
    if out["peak_bytes"] is None:  # a CPU: the process's peak RSS stands in for device memory
        out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["peak_is_rss"] = True
    print("RESULT " + json.dumps(out), flush=True)


def _spawn(args: argparse.Namespace, framework: str, seq: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        f"--worker={framework}:{seq}",
        f"--preset={args.preset}",
        f"--batch={args.batch}",
        f"--remat={args.remat}",
        f"--steps={args.steps}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return dict(error=f"exit {proc.returncode}: {tail[:160]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--seq-lens", default="4096,8192", help="tokens per sequence, comma-separated")
    p.add_argument("--batch", type=int, default=1, help="sequences per step")
    p.add_argument(
        "--remat",
        default="full",
        choices=("none", "full", "dots"),
        help="per-layer rematerialisation (paper configs: full)",
    )
    p.add_argument("--steps", type=int, default=2, help="timed steps (the fastest counts)")
    p.add_argument("--frameworks", default="jax,torch")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    from azr_jax.hardware import chip

    cfg = model_config(args)
    print(
        f"train step: {args.preset} ({cfg.num_params() / 1e9:.3f}B params), batch "
        f"{args.batch}, bf16 compute / fp32 weights, remat {args.remat}, AdamW; fastest of "
        f"{args.steps} steps after a warm-up step"
    )
    cols = ("framework", "seq", "device", "step s", "tokens/s", "TFLOP/s", "MFU", "peak GiB")
    rows = []
    for seq in (int(s) for s in args.seq_lens.split(",")):
        model_flops = flops_lib.train_flops(cfg, args.batch, seq)
        for fw in args.frameworks.split(","):
            r = _spawn(args, fw, seq)
            if "error" in r:
                rows.append((fw, seq, r["error"], "-", "-", "-", "-", "-"))
                continue
            spec = chip(r["device"])
            achieved = model_flops / r["seconds"]
            mfu = f"{100 * achieved / spec.bf16_flops:.1f}%" if spec else "-"
            mem = f"{r['peak_bytes'] / 2**30:.2f}" + (" (RSS)" if r.get("peak_is_rss") else "")
            rows.append(
                (
                    fw,
                    seq,
                    r["device"],
                    f"{r['seconds']:.3f}",
                    f"{args.batch * seq / r['seconds']:,.0f}",
                    f"{achieved / 1e12:.3f}",
                    mfu,
                    mem,
                )
            )
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    for row in (cols, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()

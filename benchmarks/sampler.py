"""Sampler throughput: azr-jax against HF `model.generate` (torch), and a GPU roofline section.

CPU section (always): SmolLM2-135M-Instruct (the embedded model, fp32), AZR solver prompts
rendered with the chat template (the prompts most AZR rollouts use), greedy, a fixed number of
new tokens per row (stop tokens off on both sides, so both produce exactly B x N tokens).
The batch cycles 4 distinct prompts (so batch 32 = 4 prompts x 8 rows, the shape of AZR's
learnability rollouts). For each batch size it runs azr-jax (one untimed call first to compile),
again with prompt sharing off when prompts repeat (`share: off` rows: every row prefilled on its
own, as HF does), and HF generate (default sdpa attention, left padding, one untimed short call
first) in the same process, and prints new tokens/s and the ratio. torch runs with whichever of
1 or all cores is faster for a short calibration generate (on a shared machine OpenMP with all
cores can be 10x slower).
With --repeats N each side is timed N times and its fastest call counts. --cpu-matmul-splits
auto,1 adds rows with the decode matrices whole (`SamplerConfig.decode_matmul_splits`);
--engines static,continuous runs each sampler engine (`SamplerConfig.engine`; default: the
decode plan's choice).

GPU section (only when jax's default device is a GPU): a Qwen2.5-1.5B-shaped model with random
weights in bf16 (params and compute), prompts of --gpu-prompt-len random tokens, --gpu-new-tokens
new tokens. Reports tokens/s and the fraction of the HBM-bandwidth roofline of a decode step:
(bytes of params + bytes of KV cache the step reads) / step time / peak bandwidth. The KV term is
given two ways: what the engine reports it read (the static engine: its whole preallocated
cache, every step; the continuous engine: the pages in use, in whole blocks) and the ideal
(only the filled slots, on average prompt + N/2); each over the bandwidth a jitted elementwise
pass measures on the card in the same run, and the first also over the datasheet peak. For --gpu-hf-batch-sizes, HF generate (torch, bf16, same shape, temperature 1) runs the
same prompts on the GPU and the ratio is printed.

Usage:
  python benchmarks/sampler.py                        # CPU table, batch 1, 8, 32; 64 new tokens
  python benchmarks/sampler.py --batch-sizes 32 --new-tokens 128
  python benchmarks/sampler.py --skip-cpu             # GPU section only (needs a GPU)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from azr_jax.model import api  # noqa: E402
from azr_jax.model.config import ModelConfig  # noqa: E402
from azr_jax.sampling import Sampler, SamplerConfig, SamplingParams  # noqa: E402
from azr_jax.sampling.demo_prompts import azr_task_prompts  # noqa: E402
from azr_jax.sampling.plan import make_plan  # noqa: E402
from azr_jax.sampling.sampler import platform_of  # noqa: E402
from azr_jax.sampling.text import Tokenizer  # noqa: E402

# Published Qwen2.5-1.5B config.json dims (no checkpoint needed: the roofline is shape-bound).
QWEN2_5_1_5B = ModelConfig(
    architecture="qwen2",
    vocab_size=151936,
    hidden_size=1536,
    intermediate_size=8960,
    num_layers=28,
    num_heads=12,
    num_kv_heads=2,
    head_dim=128,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    qkv_bias=True,
    max_position_embeddings=32768,
    bos_token_id=151643,
    eos_token_id=(151643,),
    dtype="bfloat16",
    param_dtype="bfloat16",
    remat="none",
)

# --*-unstack-layers choices -> SamplerConfig.unstack_layers (auto: the sampler's own rule).
UNSTACK_CHOICES = {"auto": None, "on": True, "off": False}


def _splits(choice: str) -> int | None:
    """A --cpu-matmul-splits entry -> SamplerConfig.decode_matmul_splits (auto: the default)."""
    return None if choice == "auto" else int(choice)


# Peak HBM bandwidth by device kind substring (vendor datasheets, bytes/s).
PEAK_HBM = (("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100", 2.0e12), ("L4", 0.3e12))


# ----------------------------------------------------------------------------------------- CPU
def _torch_threads(model, torch, ids) -> int:
    """1 or all cores, whichever runs a short generate faster right now."""
    best, best_t = None, float("inf")
    for n in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(n)
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=4,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        dt = time.perf_counter() - t
        if dt < best_t:
            best, best_t = n, dt
    torch.set_num_threads(best)
    return best


def _hf_generate(model, torch, rows: list[list[int]], n: int, pad: int) -> tuple[float, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=pad
        )
    dt = time.perf_counter() - t
    new = out[:, width:].numpy()
    assert new.shape == (len(rows), n), new.shape  # exactly n tokens per row
    return dt, new


def cpu_section(args: argparse.Namespace) -> None:
    """Both sides on the host CPU (jax pinned to its CPU device even on a GPU machine)."""
    with jax.default_device(jax.devices("cpu")[0]):
        _cpu_section(args)


def _cpu_section(args: argparse.Namespace) -> None:
    import torch
    import transformers

    from azr_jax.hf.assets import smollm2_hf_dir
    from azr_jax.hf.load import load_hf

    d = smollm2_hf_dir()
    cfg, params = load_hf(d)
    tok = Tokenizer(d)
    hf = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    # One sampler per table variant: (engine, prompt sharing, decode matmul splits); sharing
    # off runs with the first splits setting only.
    first = args.cpu_matmul_splits[0]
    variants = [(e, "on", sp) for e in args.engines for sp in args.cpu_matmul_splits] + [
        (e, "off", first) for e in args.engines
    ]
    samplers = {
        (engine, share, sp): Sampler(
            cfg,
            config=SamplerConfig(
                engine=engine, share_prompts=share == "on", decode_matmul_splits=_splits(sp)
            ),
            stop_token_ids=(),
        )
        for engine, share, sp in variants
    }
    greedy = SamplingParams(temperature=0.0)
    N = args.new_tokens
    threads = None if args.no_hf else _torch_threads(hf, torch, torch.tensor([[1] * 32]))

    print(
        f"\n## CPU: SmolLM2-135M-Instruct fp32, {N} new tokens/row, greedy, "
        f"{os.cpu_count()} cores, jax {jax.__version__}, torch {torch.__version__} "
        f"({threads} thread(s)), transformers {transformers.__version__}"
    )
    header = (
        "| batch | distinct prompts | prompt tok (mean/max) | engine | share | splits "
        "| azr-jax new tok/s "
        "| prefill s | decode ms/step | compile s | HF new tok/s | HF s | ratio "
        "| rows identical |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for B in args.batch_sizes:
        rows = [tok.encode_prompt(p) for p in azr_task_prompts(B, proposers=False)]
        lens = [len(r) for r in rows]
        distinct = len({tuple(r) for r in rows})
        runs = []
        for variant in samplers if distinct < B else [v for v in samplers if v[1] == "on"]:
            t = time.perf_counter()
            samplers[variant].generate(params, rows, N, greedy, jax.random.key(0))  # compile + warm
            compile_s = time.perf_counter() - t
            best = None
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = samplers[variant].generate(params, rows, N, greedy, jax.random.key(0))
                dt = time.perf_counter() - t
                if best is None or dt < best[0]:
                    best = (dt, out)
            ours_s, out = best
            runs.append((variant, out, B * N / ours_s, compile_s - ours_s))
        hf_s = hf_tokens = None
        if not args.no_hf:
            _hf_generate(hf, torch, rows, 2, tok.hf.pad_token_id or 0)  # warm
            hf_s, hf_tokens = min(
                (_hf_generate(hf, torch, rows, N, tok.hf.pad_token_id or 0) for _ in range(args.repeats)),
                key=lambda r: r[0],
            )
        for (_, share, splits), out, ours, compile_s in runs:
            step_ms = 1e3 * out.decode_seconds / max(out.decode_steps, 1)
            if hf_s is None:
                hf_cols = "| - | - | - | - |"
            else:
                same = int((hf_tokens == out.tokens).all(axis=1).sum())
                hf_rate = B * N / hf_s
                hf_cols = f"| {hf_rate:.1f} | {hf_s:.1f} | {ours / hf_rate:.2f}x | {same}/{B} |"
            print(
                f"| {B} | {distinct} | {np.mean(lens):.0f}/{max(lens)} | {out.engine} "
                f"| {share} | {splits} "
                f"| {ours:.1f} "
                f"| {out.prefill_seconds:.1f} | {step_ms:.0f} | {compile_s:.1f} {hf_cols}",
                flush=True,
            )


# ----------------------------------------------------------------------------------------- GPU
def _peak_bandwidth(kind: str, override: float | None) -> float | None:
    if override:
        return override * 1e9
    for name, bw in PEAK_HBM:
        if name.lower() in kind.lower():
            return bw
    return None


def _copy_bandwidth(n_bytes: float = 4e9, repeats: int = 10) -> float:
    """Measured device-memory ceiling: bytes read + written per second by a jitted elementwise
    pass over an n_bytes bf16 buffer (median of `repeats`). Datasheet peaks are never reached,
    so the roofline is also given against this."""
    x = jnp.ones((int(n_bytes // 2),), jnp.bfloat16)
    f = jax.jit(lambda a: a + 1)
    f(x).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(x).block_until_ready()
        times.append(time.perf_counter() - t)
    del x
    return 2 * n_bytes / float(np.median(times))


def _hf_gpu_model(cfg: ModelConfig):
    """The same shape as a transformers model, random bf16 weights, built on the GPU."""
    import torch
    import transformers

    hf_cfg = transformers.AutoConfig.for_model(**cfg.to_hf_dict("bfloat16"))
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.bfloat16)
    return model.eval()


def _hf_gpu_generate(model, rows: list[list[int]], n: int) -> float:
    """Seconds for HF generate to sample n tokens per row (temperature 1, no filters)."""
    import torch

    ids = torch.tensor(rows, device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            eos_token_id=None,
            pad_token_id=0,
        )
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    assert out.shape == (len(rows), len(rows[0]) + n), out.shape
    return dt


def gpu_section(args: argparse.Namespace) -> None:
    dev = jax.devices()[0]
    if dev.platform != "gpu":
        print(f"\n## GPU: skipped (jax default device is {dev.platform!r}, not a GPU)")
        return
    cfg = QWEN2_5_1_5B
    peak = _peak_bandwidth(dev.device_kind, args.hbm_gbps)
    copy_bw = _copy_bandwidth()
    params = jax.jit(lambda: api.init_params(cfg, seed=0))()
    param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    P, N = args.gpu_prompt_len, args.gpu_new_tokens
    config = SamplerConfig(unstack_layers=UNSTACK_CHOICES[args.gpu_unstack_layers], engine=args.gpu_engine)
    sampler = Sampler(cfg, config=config, stop_token_ids=())
    plan = make_plan(platform_of(params), max(args.gpu_batch_sizes), config)
    kv_per_slot = (
        cfg.num_layers
        * cfg.num_kv_heads
        * cfg.head_dim
        * 2  # k and v
        * jnp.dtype(cfg.dtype).itemsize
    )
    hf = None
    if args.gpu_hf_batch_sizes:
        import torch
        import transformers

        if torch.cuda.is_available():
            hf = _hf_gpu_model(cfg)
            _hf_gpu_generate(hf, [[5] * 8], 2)  # warm: cuBLAS handles, kernels
            hf_versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
        else:
            hf_versions = "HF peer skipped: torch sees no CUDA device"
    else:
        hf_versions = "HF peer off"
    print(
        f"\n## GPU: {dev.device_kind}, Qwen2.5-1.5B shape, bf16, random weights "
        f"({param_bytes / 1e9:.2f} GB), prompt {P}, {N} new tokens, temperature 1, "
        f"unstack_layers {args.gpu_unstack_layers} ({plan.unstack_layers}), engine "
        f"{args.gpu_engine} ({plan.engine}); "
        f"jax {jax.__version__}; {hf_versions}"
    )
    sheet = "unknown (use --hbm-gbps)" if peak is None else f"{peak / 1e12:.2f} TB/s"
    print(f"HBM: datasheet {sheet}, measured copy (read + write) {copy_bw / 1e12:.2f} TB/s")
    print(
        "| batch | new tok/s | prefill s | decode ms/step | decode tok/s | bytes/step read "
        "(GB) | % of copy BW (as read) | % of copy BW (ideal KV) | % of datasheet (as read) "
        "| HF new tok/s | ratio |"
    )
    print("|---" * 11 + "|")
    rng = np.random.default_rng(0)
    for B in args.gpu_batch_sizes:
        rows = rng.integers(3, cfg.vocab_size, (B, P)).tolist()
        sampler.generate(params, rows, N, SamplingParams(1.0), jax.random.key(0))  # compile
        t = time.perf_counter()
        out = sampler.generate(params, rows, N, SamplingParams(1.0), jax.random.key(1))
        total = time.perf_counter() - t
        steps = out.decode_steps
        step_s = out.decode_seconds / steps  # continuous: includes its prefill
        read = param_bytes + out.kv_bytes_read / steps
        ideal = param_bytes + B * (P + N / 2) * kv_per_slot
        frac = lambda b, bw, s=step_s: "-" if bw is None else f"{b / s / bw:.0%}"
        ours = B * N / total
        hf_cols = "| - | - |"
        if hf is not None and B in args.gpu_hf_batch_sizes:
            hf_rate = B * N / _hf_gpu_generate(hf, rows, N)
            hf_cols = f"| {hf_rate:.0f} | {ours / hf_rate:.2f}x |"
        print(
            f"| {B} | {ours:.0f} | {out.prefill_seconds:.2f} | {1e3 * step_s:.2f} "
            f"| {B * steps / out.decode_seconds:.0f} | {read / 1e9:.2f} | {frac(read, copy_bw)} "
            f"| {frac(ideal, copy_bw)} | {frac(read, peak)} {hf_cols}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(x) for x in s.split(",")]
    ap.add_argument("--batch-sizes", type=ints, default=[1, 8, 32])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--no-hf", action="store_true", help="azr-jax only (no torch baseline)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed calls per side; the fastest counts (a shared VM's noise)",
    )
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument(
        "--cpu-matmul-splits",
        type=lambda s: s.split(","),
        default=["auto"],
        help="comma list of SamplerConfig.decode_matmul_splits values for the CPU "
        "table ('auto' = the sampler's default; e.g. auto,1 adds whole-matrix "
        "rows to compare)",
    )
    ap.add_argument(
        "--engines",
        type=lambda s: s.split(","),
        default=["auto"],
        help="comma list of SamplerConfig.engine values for the CPU table",
    )
    ap.add_argument("--gpu-engine", choices=("auto", "static", "continuous"), default="auto")
    ap.add_argument("--gpu-batch-sizes", type=ints, default=[1, 16, 64, 256])
    ap.add_argument("--gpu-prompt-len", type=int, default=512)
    ap.add_argument("--gpu-new-tokens", type=int, default=512)
    ap.add_argument(
        "--gpu-hf-batch-sizes",
        type=lambda s: ints(s) if s else [],
        default=[1, 64],
        help="GPU batch sizes that also run HF generate ('' = none)",
    )
    ap.add_argument(
        "--gpu-unstack-layers",
        choices=tuple(UNSTACK_CHOICES),
        default="auto",
        help="SamplerConfig.unstack_layers for the GPU section (auto: the default)",
    )
    ap.add_argument(
        "--hbm-gbps",
        type=float,
        default=None,
        help="peak HBM bandwidth in GB/s when the device kind is not in the table",
    )
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    for engine in args.engines:
        if engine not in ("auto", "static", "continuous"):
            ap.error(f"--engines takes auto, static or continuous, got {engine!r}")
    for sp in args.cpu_matmul_splits:
        if sp != "auto" and not (sp.isdigit() and int(sp) >= 1):
            ap.error(f"--cpu-matmul-splits takes 'auto' or ints >= 1, got {sp!r}")
    print(f"# sampler benchmark: {platform.node()} {platform.machine()}, jax devices {jax.devices()}")
    if not args.skip_cpu:
        cpu_section(args)
    gpu_section(args)


if __name__ == "__main__":
    main()

"""Rollout engines on a paper-shaped workload: static chunks vs continuous batching, same run.

Workload (AZR, azr_method.md): one self-play step samples `--rows` rollouts of distinct prompts
(proposers and solvers), then G = `--group-size` learnability rollouts for each of `--groups`
valid proposals (G rows repeating one prompt). Response lengths vary widely; here each row's
length is forced (its `max_new_tokens`, stop tokens off) and drawn from a lognormal with median
`--median` and p99 at `--cap` (sigma = ln(cap / median) / 2.326), clipped to [1, cap]. Prompts
are random tokens, `--prompt-min`..`--prompt-max` long. The model has random weights (the
engines' cost does not depend on what the weights say); temperature 1.

Both engines decode the two calls (main, then learnability) with the same number of rows at
once (`--slots`: the static engine's chunk, the continuous engine's slots) and the same key;
each call runs once untimed first (compiles), then timed. Printed per engine and call: decode
steps, slot utilisation (decode tokens / (slots x steps)), KV bytes read per generated token,
wall seconds, tokens/s, and whether the two engines produced the same tokens.

Paper scale is a median of ~1k tokens with an 8k cap (`--paper`: a Qwen2.5-1.5B-shaped bf16
model, for a GPU). The CPU default scales lengths down 32x (median 32, cap 256, prompts 64-256
tokens) on a small model so both engines finish in a few minutes on 2 cores.

Usage:
  python benchmarks/rollout.py                   # CPU: small model, lengths / 32
  python benchmarks/rollout.py --paper           # GPU: Qwen2.5-1.5B shape, median 1k, cap 8k
  python benchmarks/rollout.py --slots 64 --rows 384 --groups 48
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from azr_jax.model import api  # noqa: E402
from azr_jax.model.config import ModelConfig  # noqa: E402
from azr_jax.sampling import Sampler, SamplerConfig, SamplingParams  # noqa: E402
from azr_jax.sampling.config import DEFAULT_GEN_BUCKETS, DEFAULT_PROMPT_BUCKETS  # noqa: E402

# A small random Qwen2-shaped model for the CPU run (fp32).
SMALL = ModelConfig(
    architecture="qwen2",
    vocab_size=8192,
    hidden_size=256,
    intermediate_size=768,
    num_layers=4,
    num_heads=4,
    num_kv_heads=2,
    head_dim=64,
    tie_word_embeddings=True,
    qkv_bias=True,
    remat="none",
)


def lengths(rng: np.random.Generator, n: int, median: float, cap: int) -> np.ndarray:
    """Heavy-tailed forced response lengths: lognormal, median `median`, p99 at `cap`."""
    sigma = np.log(cap / median) / 2.326
    return np.clip(np.round(rng.lognormal(np.log(median), sigma, n)), 1, cap).astype(int)


def workload(args: argparse.Namespace, vocab: int) -> list[tuple[str, list, list[int]]]:
    """[(call name, prompts, budgets)]: the main call and the learnability call."""
    rng = np.random.default_rng(args.seed)
    prompt = lambda: rng.integers(3, vocab, int(rng.integers(args.prompt_min, args.prompt_max + 1))).tolist()
    main = [prompt() for _ in range(args.rows)]
    learn = [p for p in (prompt() for _ in range(args.groups)) for _ in range(args.group_size)]
    return [
        ("main", main, lengths(rng, len(main), args.median, args.cap).tolist()),
        ("learnability", learn, lengths(rng, len(learn), args.median, args.cap).tolist()),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--paper",
        action="store_true",
        help="paper lengths (median 1000, cap 8192, prompts 256-2048) on a "
        "Qwen2.5-1.5B-shaped bf16 model: for a GPU",
    )
    ap.add_argument("--rows", type=int, default=384)
    ap.add_argument("--groups", type=int, default=24)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument("--median", type=float, default=None)
    ap.add_argument("--cap", type=int, default=None)
    ap.add_argument("--prompt-min", type=int, default=None)
    ap.add_argument("--prompt-max", type=int, default=None)
    ap.add_argument("--engines", type=lambda s: s.split(","), default=["static", "continuous"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    scale = (1000.0, 8192, 256, 2048) if args.paper else (32.0, 256, 64, 256)
    for name, value in zip(("median", "cap", "prompt_min", "prompt_max"), scale):
        if getattr(args, name) is None:
            setattr(args, name, value)
    bad = [e for e in args.engines if e not in ("static", "continuous")]
    if bad or args.cap < 1 or args.median < 1 or args.prompt_min < 1 or args.prompt_max < args.prompt_min:
        ap.error(
            f"bad engines {bad} or lengths (median {args.median}, cap {args.cap}, prompts "
            f"{args.prompt_min}-{args.prompt_max})"
        )

    if args.paper:
        from sampler import QWEN2_5_1_5B

        cfg = QWEN2_5_1_5B
    else:
        cfg = SMALL
    params = jax.jit(lambda: api.init_params(cfg, seed=0))()
    calls = workload(args, cfg.vocab_size)
    gen_bucket = next(b for b in DEFAULT_GEN_BUCKETS + (args.cap,) if b >= args.cap)
    prompt_buckets = tuple(b for b in DEFAULT_PROMPT_BUCKETS if b < args.prompt_max) + (
        next(b for b in DEFAULT_PROMPT_BUCKETS + (args.prompt_max,) if b >= args.prompt_max),
    )
    base = SamplerConfig(
        prompt_buckets=prompt_buckets,
        gen_buckets=(gen_bucket,),
        max_batch=args.slots,
        batch_buckets=tuple(sorted({1, 2, 4, 8, 16, args.slots})),
    )
    sp = SamplingParams(1.0)
    all_budgets = np.concatenate([np.asarray(b) for _, _, b in calls])
    print(f"# rollout benchmark: {platform.node()}, jax {jax.__version__}, devices {jax.devices()}")
    print(
        f"model: {'Qwen2.5-1.5B shape' if args.paper else 'small'} random, {cfg.dtype}, "
        f"{cfg.num_layers} layers, hidden {cfg.hidden_size}; slots {args.slots}; calls: "
        f"{args.rows} distinct rows, then {args.groups} x {args.group_size} learnability rows; "
        f"forced lengths lognormal median {args.median:g}, cap {args.cap}: mean "
        f"{all_budgets.mean():.0f}, p50 {np.median(all_budgets):.0f}, p99 "
        f"{np.percentile(all_budgets, 99):.0f}, max {all_budgets.max()}; prompts "
        f"{args.prompt_min}-{args.prompt_max} tokens"
    )
    print(
        "| engine | call | rows | tokens | decode steps | slot util. | KV MB read "
        "| KV KB/token | wall s | tok/s | same tokens |"
    )
    print("|---" * 11 + "|")
    outputs: dict[str, list] = {}
    for engine in args.engines:
        sampler = Sampler(cfg, config=dataclasses.replace(base, engine=engine), stop_token_ids=())
        totals = dict(tokens=0, steps=0, slot_steps=0, decode_tokens=0, kv=0.0, wall=0.0)
        for i, (name, prompts, budgets) in enumerate(calls):
            key = jax.random.key(args.seed + i)
            sampler.generate(params, prompts, budgets, sp, key)  # compile + warm
            t = time.perf_counter()
            out = sampler.generate(params, prompts, budgets, sp, key)
            wall = time.perf_counter() - t
            assert out.engine == engine
            assert (out.lengths == np.asarray(budgets)).all()
            outputs.setdefault(engine, []).append(out.tokens)
            same = "-"
            if engine != args.engines[0]:
                ref = outputs[args.engines[0]][i]
                same = f"{int((ref == out.tokens).all(axis=1).sum())}/{len(budgets)}"
            n = int(out.lengths.sum())
            for k, v in (
                ("tokens", n),
                ("steps", out.decode_steps),
                ("slot_steps", out.slot_steps),
                ("decode_tokens", out.decode_tokens),
                ("kv", out.kv_bytes_read),
                ("wall", wall),
            ):
                totals[k] += v
            print(
                f"| {engine} | {name} | {len(budgets)} | {n} | {out.decode_steps} "
                f"| {out.slot_utilisation:.1%} | {out.kv_bytes_read / 1e6:.0f} "
                f"| {out.kv_bytes_per_token / 1e3:.1f} | {wall:.1f} | {n / wall:.0f} "
                f"| {same} |",
                flush=True,
            )
        t = totals
        print(
            f"| {engine} | **both** | {sum(len(b) for _, _, b in calls)} | {t['tokens']} "
            f"| {t['steps']} | **{t['decode_tokens'] / t['slot_steps']:.1%}** "
            f"| {t['kv'] / 1e6:.0f} | {t['kv'] / t['tokens'] / 1e3:.1f} | {t['wall']:.1f} "
            f"| **{t['tokens'] / t['wall']:.0f}** | |",
            flush=True,
        )


if __name__ == "__main__":
    main()

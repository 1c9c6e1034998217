"""Where a decode step's device time goes: trace one `Sampler.generate` call and sum its kernels.

Companion to `sampler.py`'s GPU section (same Qwen2.5-1.5B-shaped bf16 model, random weights).
For each batch size it compiles, then traces one call with `jax.profiler` and reads the trace
back with `jax.profiler.ProfileData`. It prints, per decode step:
  - wall time (the sampler's own decode clock / steps),
  - kernels launched and the summed kernel time (busy); wall - busy is launch/sync overhead,
  - the kernels that take the most time (name, the HLO op it came from where the trace says).
A step far over its bytes / bandwidth floor with busy << wall is launch-bound; busy ~ wall
points at the kernels listed.

Usage (needs a GPU; on a CPU the device plane is absent and it says so):
  python benchmarks/decode_profile.py --batch-sizes 1,64 --new-tokens 128
  XLA_FLAGS=--xla_gpu_... python benchmarks/decode_profile.py     # A/B an XLA option
"""

from __future__ import annotations

import argparse
import collections
import glob
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sampler import QWEN2_5_1_5B, UNSTACK_CHOICES  # noqa: E402

from azr_jax.model import api  # noqa: E402
from azr_jax.sampling import Sampler, SamplerConfig, SamplingParams  # noqa: E402


def _device_events(trace_dir: str) -> list:
    """All events on device planes ('/device:GPU:0', ...) of the newest trace under trace_dir."""
    files = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))
    if not files:
        raise RuntimeError(f"no .xplane.pb under {trace_dir}")
    data = jax.profiler.ProfileData.from_file(files[-1])
    events, names = [], set()
    for plane in data.planes:
        if not plane.name.startswith("/device:"):
            continue
        for line in plane.lines:
            names.add(line.name)
            # Streams carry kernels and memcpys; the XLA-op/module summary lines duplicate them.
            if line.name.lower().startswith("stream"):
                events.extend(line.events)
    if names and not events:
        print(f"device planes have no stream lines; lines: {sorted(names)}")
    return events


def profile(sampler: Sampler, params, rows: list[list[int]], n: int, top: int) -> None:
    sp = SamplingParams(1.0)
    sampler.generate(params, rows, n, sp, jax.random.key(0))  # compile
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        t = time.perf_counter()
        out = sampler.generate(params, rows, n, sp, jax.random.key(1))
        total = time.perf_counter() - t
        jax.profiler.stop_trace()
        events = _device_events(d)
    B, steps = len(rows), out.decode_steps
    wall_ms = 1e3 * out.decode_seconds / steps  # the continuous engine's clock has its prefill
    print(
        f"\n### batch {B}, {out.engine} engine: call {total:.2f} s, prefill "
        f"{out.prefill_seconds:.3f} s, decode {wall_ms:.2f} ms/step over {steps} steps"
    )
    if not events:
        print("no device plane in the trace (not a GPU run?)")
        return
    by_name: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    op_of: dict[str, str] = {}
    for e in events:
        rec = by_name[e.name]
        rec[0] += 1
        rec[1] += e.duration_ns
        if e.name not in op_of:
            stats = dict(e.stats)
            op_of[e.name] = str(stats.get("hlo_op", stats.get("tf_op", "")))[:40]
    busy_ns = sum(r[1] for r in by_name.values())
    count = sum(r[0] for r in by_name.values())
    # Whole-call sums include the prefill; per-step figures divide by decode steps, which
    # dominate the call (prefill is printed above to judge).
    print(
        f"whole call: {count} kernels/copies, busy {busy_ns / 1e6:.1f} ms of {1e3 * total:.0f}"
        f" ms wall; per decode step ~{count / steps:.0f} launches, busy "
        f"{busy_ns / 1e6 / steps:.2f} ms vs wall {wall_ms:.2f} ms"
    )
    print("| kernel | hlo op | count | total ms | share of busy |")
    print("|---|---|---|---|---|")
    for name, (c, ns) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"| {name[:70]} | {op_of[name]} | {c} | {ns / 1e6:.1f} | {ns / busy_ns:.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(x) for x in s.split(",")]
    ap.add_argument("--batch-sizes", type=ints, default=[1, 64])
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument(
        "--unstack-layers",
        choices=tuple(UNSTACK_CHOICES),
        default="auto",
        help="SamplerConfig.unstack_layers (auto: the sampler's own choice)",
    )
    ap.add_argument(
        "--engine",
        choices=("auto", "static", "continuous"),
        default="auto",
        help="SamplerConfig.engine (auto: the decode plan's choice)",
    )
    args = ap.parse_args()
    if min(args.batch_sizes) < 1 or args.prompt_len < 1 or args.new_tokens < 2:
        ap.error("batch sizes and --prompt-len must be >= 1, --new-tokens >= 2")
    cfg = QWEN2_5_1_5B
    print(
        f"# decode profile: {jax.devices()[0].device_kind}, jax {jax.__version__}, "
        f"Qwen2.5-1.5B shape bf16, prompt {args.prompt_len}, {args.new_tokens} new tokens, "
        f"unstack_layers {args.unstack_layers}, engine {args.engine}"
    )
    params = jax.jit(lambda: api.init_params(cfg, seed=0))()
    sampler = Sampler(
        cfg,
        config=SamplerConfig(unstack_layers=UNSTACK_CHOICES[args.unstack_layers], engine=args.engine),
        stop_token_ids=(),
    )
    rng = np.random.default_rng(0)
    for B in args.batch_sizes:
        rows = rng.integers(3, cfg.vocab_size, (B, args.prompt_len)).tolist()
        profile(sampler, params, rows, args.new_tokens, args.top)


if __name__ == "__main__":
    main()

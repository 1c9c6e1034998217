"""azr-jax compile --config=configs/X.py:<tpu topology> [--slice=S] [--programs=a,b] [--json=F]

Compiles the step's programs (update, old-logprob pass, sampler prefill and decode, at their
largest shapes) for every chip of a Cloud TPU slice on this machine, no TPU needed (libtpu's
compiler, `azr_jax/aot.py`), and prints each program's per-chip memory against the chip's HBM,
its FLOPs and a step-time lower bound. Exits 1 when a program does not fit.
"""

from __future__ import annotations

import json
import sys

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file with a TPU topology (configs/*.py:v5p-128).", lock_config=True
)
flags.DEFINE_string(
    "slice",
    None,
    "Compile for this TPU slice instead of the config's topology "
    "(v4-N, v5e-N, v5p-N, v6e-N; the mesh's -1 axis takes its chips).",
)
flags.DEFINE_list(
    "programs",
    None,
    "Only these programs (update/grads, update/apply, "
    "old_logprobs, sampler/prefill, sampler/decode, "
    "sampler/continuous).",
)
flags.DEFINE_string("json", None, "Also write the numbers to this JSON file.")
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    from azr_jax import aot

    c = FLAGS.config
    tpu = aot.config_slice(c, FLAGS.slice)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    try:
        report = aot.compile_config(c, tpu, tuple(FLAGS.programs or ()), progress=log)
    except aot.LibtpuMissing as e:
        print(f"azr-jax compile: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(aot.format_report(report, config_flags.get_config_filename(FLAGS["config"])))
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(aot.report_json(report), f, indent=2)
    if not report.fits():
        print(f"azr-jax compile: error: {report.misfits()}", file=sys.stderr)
        raise SystemExit(1)

"""azr-jax plot RUN_DIR [--out=DIR]

Draws the training curves of a run directory's metrics.jsonl (rewards, accuracy, valid
proposals, lengths, the update: loss, grad norm, entropy, KL, clip fraction; timings, buffer
sizes; eval.jsonl scores when present) as PNG files in DIR (default RUN_DIR/plots) and prints
the path of each file written. Safe to run while the trainer is still writing: a half-written
last line is ignored.
"""

from __future__ import annotations

from absl import flags

from azr_jax.plot import plot_run

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Directory for the PNG files (default: RUN_DIR/plots).")

USAGE = "usage: azr-jax plot RUN_DIR [--out=DIR]"


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"expected exactly one RUN_DIR, got {argv[1:]}\n{USAGE}")
    written = plot_run(argv[1], FLAGS.out)
    for path in written:
        print(path)
    if not written:
        print(f"no figures written: {argv[1]} has no plottable metrics")

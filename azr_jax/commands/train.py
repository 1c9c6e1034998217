"""azr-jax train --config=configs/X.py[:topology] --workdir=DIR [--config.key=value ...] [--resume]

Runs Absolute Zero self-play. Re-running with the same --workdir continues from its latest
checkpoint (--resume additionally insists that one exists).
"""
from __future__ import annotations

import logging

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:topology]).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, tensorboard/.")
flags.DEFINE_bool("resume", False, "Require an existing checkpoint in --workdir and continue it.")
flags.mark_flags_as_required(["config", "workdir"])

log = logging.getLogger("azr_jax.train")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    from sharding import distributed
    distributed.initialize()  # before anything touches a JAX backend

    from azr_jax.azr.run import SelfPlayRun
    c = FLAGS.config
    run = SelfPlayRun(c, FLAGS.workdir)
    try:
        if FLAGS.resume and run.ckpt.latest_step() is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {run.ckpt.directory}")
        start = run.resume_or_init()
        if start >= c.total_steps:
            log.info("run already at step %d >= total_steps %d: nothing to do", start, c.total_steps)
            return
        log.info("training steps %d..%d in %s", start + 1, c.total_steps, run.workdir)
        run.train(c.total_steps)
        log.info("stopped at step %d; checkpoints in %s", run.step, run.ckpt.directory)
    finally:
        run.close()

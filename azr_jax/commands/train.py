"""azr-jax train --config=configs/X.py[:topology] --workdir=DIR [--config.key=value ...] [--resume]

Runs Absolute Zero self-play. Re-running with the same --workdir continues from its latest
checkpoint (--resume additionally insists that one exists). Ctrl-C or SIGTERM saves and exits
(losing at most the step in progress); a second Ctrl-C aborts without saving. The resolved
config is written to <workdir>/config.json.
"""

from __future__ import annotations

import logging

from absl import flags
from ml_collections import config_flags

from azr_jax import preflight
from azr_jax.errors import UsageError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Training config file (configs/*.py[:topology]).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, tensorboard/.")
flags.DEFINE_bool("resume", False, "Require an existing checkpoint in --workdir and continue it.")
flags.mark_flags_as_required(["config", "workdir"])

log = logging.getLogger("azr_jax.train")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {argv[1:]}: flags take the form --name=value")
    c = FLAGS.config
    preflight.check_train(c, FLAGS.workdir, resume=FLAGS.resume)  # bad input fails here, fast

    from sharding import distributed

    distributed.initialize()  # before anything touches a JAX backend

    from azr_jax.azr.run import SelfPlayRun

    run = SelfPlayRun(c, FLAGS.workdir)
    try:
        start = run.resume_or_init()
        if start >= c.total_steps:
            log.info("run already at step %d >= total_steps %d: nothing to do", start, c.total_steps)
            return
        log.info("training steps %d..%d in %s", start + 1, c.total_steps, run.workdir)
        run.train(c.total_steps)
        if run.step >= c.total_steps:
            log.info("finished step %d; checkpoints in %s", run.step, run.ckpt.directory)
    finally:
        run.close()

"""A job run in this process, with the farm's exact semantics and none of its isolation.

For unit tests and debugging of trusted snippets only: the judge (judge.py) drives the same steps
a worker would, and each step's payload goes through marshal and its result through JSON, as
between a worker and its child, but the step runs here (`child.run_step`), not in a sandbox.
Never pass model-written code to it.
"""

from __future__ import annotations

import contextlib
import io
import marshal
import sys

from . import child, codec
from . import judge as judging
from .jobs import Job, Result


def run_step(step: judging.Step) -> judging.Outcome:
    """One step in-process: payload and message cross the same encodings as in the farm."""
    payload = marshal.loads(judging.payload_bytes(step.payload))
    stdout = child.BoundedWriter(int(payload.get("limits", {}).get("max_stdout", 1 << 20)))
    saved_in = sys.stdin
    try:
        sys.stdin = io.StringIO(payload.get("stdin", ""))
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            message = child.run_step(payload, stdout)
    finally:
        sys.stdin = saved_in
    return judging.read_message(payload.get("kind", ""), codec.dumps(message).encode())


def run_job(job: Job) -> dict:
    """The job's result (wire dict), computed in this process."""
    gen = judging.judge(job)
    try:
        step = next(gen)
        while True:
            step = gen.send(run_step(step))
    except StopIteration as stop:
        return stop.value


def run(job: Job) -> Result:
    return Result.from_wire(dict(run_job(job), wall_s=0.0))

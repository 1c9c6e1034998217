"""Run directories in object storage: URL-safe paths, and the log mirror a gs:// run relies on.

There is no GCS here; the mirror works on epath paths, so a local directory stands in for the
bucket and the test checks the same copy logic a `gs://` workdir uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from azr_jax import rundir
from azr_jax.metrics import read_metrics

REPO = Path(__file__).resolve().parents[1]


def test_remote_paths_are_kept_intact(tmp_path):
    assert rundir.is_remote("gs://bucket/run") and not rundir.is_remote(str(tmp_path))
    assert rundir.resolve("gs://bucket/run/") == "gs://bucket/run"
    assert rundir.join("gs://bucket/run", "checkpoints") == "gs://bucket/run/checkpoints"
    assert rundir.resolve("rel") == os.path.abspath("rel")
    a, b = rundir.default_local_dir("gs://b/run-a"), rundir.default_local_dir("gs://b/run/a")
    assert a != b and "://" not in a and a == rundir.default_local_dir("gs://b/run-a")


def test_mirror_push_then_pull_on_a_fresh_machine(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "bucket" / "run" / "logs"
    (local / "tensorboard").mkdir(parents=True)
    (local / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (local / "tensorboard" / "events.out").write_bytes(b"\x00\x01tb")
    (local / "metrics.jsonl.tmp").write_text("half-written")
    (local / rundir.LOCK_FILE).write_text('{"host": "vm", "pid": 7}')  # this host's, not mirrored
    assert rundir.LogMirror(str(local), str(remote)).push() == 2
    assert not (remote / rundir.LOCK_FILE).exists()
    assert (remote / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    assert not (remote / "metrics.jsonl.tmp").exists()

    fresh = tmp_path / "fresh"
    assert rundir.LogMirror(str(fresh), str(remote)).pull() == 2
    assert (fresh / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    assert (fresh / "tensorboard" / "events.out").read_bytes() == b"\x00\x01tb"
    # a machine that already has newer logs keeps them
    (fresh / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    assert rundir.LogMirror(str(fresh), str(remote)).pull() == 0
    assert len((fresh / "metrics.jsonl").read_text().splitlines()) == 3
    # nothing to pull from a mirror that does not exist yet
    assert rundir.LogMirror(str(tmp_path / "other"), str(tmp_path / "none")).pull() == 0


@pytest.mark.slow
def test_train_mirrors_logs_and_resumes_from_the_mirror(tmp_path):
    """`log.local_dir` set: logs are written there and mirrored to <workdir>/logs; a second
    invocation with a new, empty local dir (a fresh VM) pulls them back and continues."""
    pytest.importorskip("transformers")
    workdir = tmp_path / "run"

    def train(steps: int, local: Path) -> None:
        cmd = [
            sys.executable,
            "-m",
            "azr_jax.cli",
            "train",
            f"--config={REPO / 'configs' / 'debug_random.py'}",
            f"--workdir={workdir}",
            f"--config.total_steps={steps}",
            "--config.log.tensorboard=False",
            "--config.log.progress=False",
            f"--config.log.local_dir={local}",
        ]
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-4000:]

    train(1, tmp_path / "vm1")
    assert [r["step"] for r in read_metrics(str(tmp_path / "vm1"))] == [1]
    assert [r["step"] for r in read_metrics(str(workdir / "logs"))] == [1]
    assert not (workdir / "metrics.jsonl").exists()  # logs live in the local dir only

    train(2, tmp_path / "vm2")  # resumes from checkpoint 1 with the pulled metrics
    assert [r["step"] for r in read_metrics(str(tmp_path / "vm2"))] == [1, 2]
    assert [r["step"] for r in read_metrics(str(workdir / "logs"))] == [1, 2]
    summary = json.loads((workdir / "hosts" / "0.json").read_text())
    assert summary["step"] == 2

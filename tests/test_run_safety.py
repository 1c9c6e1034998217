"""What keeps a run safe: two-stage stop signals, the run-directory lock, checkpoint fallback,
metrics continuity on resume, log lines around the progress bar; then the whole trainer under
SIGTERM/SIGINT, a second trainer, a damaged checkpoint and a deleted metrics file.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax import metrics as metrics_lib
from azr_jax import rundir
from azr_jax.checkpoint import Checkpointer, CheckpointError, host_save_bytes
from azr_jax.errors import UsageError
from azr_jax.model.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(
    architecture="llama",
    vocab_size=32,
    hidden_size=8,
    intermediate_size=16,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    head_dim=4,
)


def _env() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# ----------------------------------------------------------------------------- signals
STOP_SCRIPT = r"""
import sys, time, jax, jax.numpy as jnp
from azr_jax.stopping import StopSignals

def on_request(signum):
    print(f"requested {signum} after {time.time() - t0:.1f}s", flush=True)

@jax.jit
def spin(n):  # one long XLA call: Python signal handlers cannot run until it returns
    return jax.lax.fori_loop(0, n, lambda i, x: jnp.sin(x) + 1e-9 * i, jnp.zeros(256))

spin(10).block_until_ready()
t0 = time.time()
with StopSignals(on_request) as stops:
    print("ready", flush=True)
    out = spin(int(sys.argv[1])).block_until_ready()
    print(f"computation ended after {time.time() - t0:.1f}s", flush=True)
"""


def _start_spinner(iterations: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", STOP_SCRIPT, str(iterations)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_first_signal_is_seen_during_a_long_xla_call_and_the_second_aborts():
    # Calibrate: how many iterations take about 20 s here (the machine may be busy).
    out = _start_spinner(4_000_000).communicate(timeout=600)[0]
    seconds = float(out.split("computation ended after ")[1].split("s")[0])
    n = int(4_000_000 * 20 / max(seconds, 0.05))
    proc = _start_spinner(n)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    lines = [proc.stdout.readline() for _ in range(2)]  # the log line and the callback's
    assert "SIGINT: stopping at the next safe point" in lines[0], lines
    assert lines[1].startswith(f"requested {int(signal.SIGINT)}"), lines
    seen = time.time() - t0
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=600)[0]
    aborted = time.time() - t0
    assert proc.returncode == 128 + signal.SIGINT, rest
    assert "aborting now without saving" in rest and "computation ended" not in rest
    assert seen < aborted < 10 < 20  # both came in the middle of the ~20 s XLA call


# ----------------------------------------------------------------------------- lock
def test_run_lock_refuses_a_second_owner_and_takes_over_a_dead_ones(tmp_path, caplog):
    lock = rundir.RunLock(str(tmp_path))
    owner = json.loads((tmp_path / rundir.LOCK_FILE).read_text())
    assert owner["pid"] == os.getpid() and owner["host"]
    with pytest.raises(UsageError, match=rf"in use by pid {os.getpid()} on host .*kill -TERM {os.getpid()}"):
        rundir.RunLock(str(tmp_path))
    lock.release()
    assert (tmp_path / rundir.LOCK_FILE).read_text() == ""
    # A trainer killed with SIGKILL leaves its record behind but no flock: taken over.
    (tmp_path / rundir.LOCK_FILE).write_text(
        json.dumps({"host": "vm-7", "pid": 999999, "started": "yesterday"})
    )
    with caplog.at_level(logging.WARNING, logger="azr_jax.rundir"):
        lock = rundir.RunLock(str(tmp_path))
    assert "taking over the lock of pid 999999 on host vm-7 (started yesterday)" in caplog.text
    lock.release()


def test_a_killed_owner_releases_the_lock(tmp_path):
    code = (
        "import sys, time; from azr_jax import rundir; lock = rundir.RunLock(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(UsageError, match=f"in use by pid {proc.pid}"):
        rundir.RunLock(str(tmp_path))
    proc.kill()
    proc.wait()
    rundir.RunLock(str(tmp_path)).release()


def test_remove_if_unused(tmp_path):
    d = tmp_path / "run"
    (d / "checkpoints").mkdir(parents=True)
    (d / rundir.LOCK_FILE).write_text("")
    assert rundir.remove_if_unused(str(d)) and not d.exists()
    (d / "checkpoints").mkdir(parents=True)
    (d / "checkpoints" / "1").write_text("x")
    assert not rundir.remove_if_unused(str(d)) and d.exists()


# ----------------------------------------------------------------------------- checkpoints
def _three_steps(directory: Path) -> dict:
    rng = np.random.default_rng(0)
    saved = {}
    with Checkpointer(directory, async_save=False) as ck:
        for s in (1, 2, 3):
            w = rng.normal(size=(64, 64)).astype(np.float32)
            saved[s] = w
            ck.save(
                s,
                params={"w": jnp.asarray(w)},
                model_config=TINY,
                opt_state={"m": jnp.zeros(3)},
                state={"step": s, "buffers": [s] * 50},
            )
    return saved


def _targets():
    return dict(
        params_target={"w": jax.ShapeDtypeStruct((64, 64), jnp.float32)},
        opt_state_target={"m": jax.ShapeDtypeStruct((3,), jnp.float32)},
    )


def test_restore_falls_back_past_damaged_steps(tmp_path, caplog):
    saved = _three_steps(tmp_path)
    for f in glob.glob(f"{tmp_path}/3/params/**/d/*", recursive=True):  # truncated array data
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    with open(tmp_path / "2" / "state" / "metadata", "r+b") as fh:  # truncated state JSON
        fh.truncate(40)
    ck = Checkpointer(tmp_path, async_save=False)
    with pytest.raises(CheckpointError, match=rf"checkpoint step 2: state \({tmp_path}/2/state/metadata\)"):
        ck.restore(2, **_targets())
    with caplog.at_level(logging.WARNING, logger="azr_jax.checkpoint"):
        out = ck.restore_latest_good(**_targets())
    assert out["step"] == 1 and out["state"]["step"] == 1
    np.testing.assert_array_equal(np.asarray(out["params"]["w"]), saved[1])
    warnings = [r.getMessage() for r in caplog.records if r.name == "azr_jax.checkpoint"]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"checkpoint step 3: params ({tmp_path}/3/params) is unreadable")
    assert warnings[1].startswith(
        f"checkpoint step 2: state ({tmp_path}/2/state/metadata) is unreadable: JSONDecodeError"
    )
    assert all("falling back to the previous step" in w for w in warnings)
    assert ck.all_steps() == [1] and len(glob.glob(f"{tmp_path}/[23].broken-*")) == 2
    # The run saves those steps again later without "already exists".
    ck.save(2, params={"w": jnp.zeros((64, 64))}, model_config=TINY, force=True)
    ck.wait()
    assert ck.all_steps() == [1, 2]
    ck.close()


def test_restore_refuses_a_state_of_another_step(tmp_path):
    _three_steps(tmp_path)
    (tmp_path / "3" / "state" / "metadata").write_text(json.dumps({"step": 7}))
    with Checkpointer(tmp_path, async_save=False) as ck:
        with pytest.raises(CheckpointError, match="checkpoint step 3: state .* records step 7"):
            ck.restore(3, **_targets())


def test_bounded_save_round_trips_and_leaves_room_for_the_largest_array(tmp_path):
    """The CPU trainer's save, with its in-flight bytes bounded, writes what an unbounded save
    writes (asynchronously, as the trainer saves); the bound is the largest array, at least
    256 MiB."""
    mib = 1 << 20
    assert host_save_bytes({"a": jax.ShapeDtypeStruct((10,), jnp.float32)}) == 256 * mib
    big = {"a": jax.ShapeDtypeStruct((100 * mib,), jnp.float32), "b": [jax.ShapeDtypeStruct((3,), jnp.int8)]}
    assert host_save_bytes(big) == 400 * mib
    w = np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32)
    for bound in (None, host_save_bytes({"w": w})):
        with Checkpointer(tmp_path / str(bound), save_concurrent_bytes=bound) as ck:
            ck.save(
                1,
                params={"w": jnp.asarray(w)},
                model_config=TINY,
                opt_state={"m": jnp.ones(3)},
                state={"step": 1},
            )
            ck.wait()
            out = ck.restore(1, **_targets())
        np.testing.assert_array_equal(np.asarray(out["params"]["w"]), w)
        np.testing.assert_array_equal(np.asarray(out["opt_state"]["m"]), np.ones(3, np.float32))
        assert out["state"]["step"] == 1


# ----------------------------------------------------------------------------- metrics
def test_resume_reports_missing_metrics_rows(tmp_path, caplog):
    with metrics_lib.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        for step in (1, 2, 5):
            w.write(step, {"x": 1.0})
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        metrics_lib.MetricsWriter(str(tmp_path), tensorboard=False, resume_step=6).close()
    assert "has no rows for steps 3-4, 6 of the 6 before the checkpoint" in caplog.text
    caplog.clear()
    os.remove(tmp_path / "metrics.jsonl")  # deleted by hand
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        metrics_lib.MetricsWriter(str(tmp_path), tensorboard=False, resume_step=4).close()
    assert "no rows for steps 1-4 of the 4" in caplog.text and "continues at step 5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        with metrics_lib.MetricsWriter(str(tmp_path / "b"), tensorboard=False) as w:
            w.write(1, {"x": 1.0})
        metrics_lib.MetricsWriter(str(tmp_path / "b"), tensorboard=False, resume_step=1).close()
    assert "no rows" not in caplog.text


def test_log_lines_print_above_the_progress_bar(monkeypatch):
    import tqdm

    written = []
    monkeypatch.setattr(tqdm.tqdm, "write", classmethod(lambda cls, s, file=None, **kw: written.append(s)))
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("LOG %(message)s"))
    root.addHandler(console)
    try:
        with metrics_lib.StepProgress(3, enabled=True):
            assert console not in root.handlers
            logging.getLogger("azr_jax.test").warning("checkpoint step 1")
        assert console in root.handlers
    finally:
        root.removeHandler(console)
    assert written == ["LOG checkpoint step 1"]
    assert metrics_lib.progress_postfix({"time/total": 12.0, "time/update": 9.0})["s/step"] == "12.0"


# ----------------------------------------------------------------------------- the trainer
def _train(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "azr_jax.cli",
        "train",
        f"--config={REPO / 'configs' / 'debug_random.py'}",
        f"--workdir={workdir}",
        "--config.log.tensorboard=False",
        "--config.log.progress=False",
        *extra,
    ]


def _committed(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return (
        sorted(int(p.name) for p in d.iterdir() if p.name.isdigit() and (p / "commit_success.txt").exists())
        if d.is_dir()
        else []
    )


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"trainer exited before {what}: " + proc.stdout.read()[-3000:]
        assert time.time() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.05)


def _metrics_steps(workdir: Path) -> list[int]:
    return [r["step"] for r in metrics_lib.read_metrics(str(workdir))]


@pytest.mark.slow
def test_sigterm_second_trainer_damaged_checkpoint_and_deleted_metrics(tmp_path):
    """SIGTERM right after a scheduled save: exit 0, no double save, hosts/0.json; a second
    trainer on the same run directory is refused; then the latest checkpoint is damaged and
    metrics.jsonl deleted: the resume falls back one step and reports the gap."""
    assets = pytest.importorskip("azr_jax.hf.assets")
    assets.smollm2_hf_dir()
    workdir = tmp_path / "run"
    a = subprocess.Popen(
        _train(workdir, "--config.total_steps=50", "--config.checkpoint.every=1"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: len(_committed(workdir)) >= 2, a, "second checkpoint")
    b = subprocess.run(
        _train(workdir, "--config.total_steps=50"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert b.returncode == 2, b.stderr[-3000:]
    assert f"is in use by pid {a.pid} on host" in b.stderr.strip().splitlines()[-1]
    a.send_signal(signal.SIGTERM)
    out = a.communicate(timeout=600)[0]
    assert a.returncode == 0, out[-3000:]
    assert "already exists" not in out and "Traceback" not in out
    latest = _committed(workdir)[-1]
    host = json.loads((workdir / "hosts" / "0.json").read_text())
    assert host["step"] == latest and host["process_count"] == 1
    assert _metrics_steps(workdir) == list(range(1, latest + 1))
    config = json.loads((workdir / "config.json").read_text())
    assert config["total_steps"] == 50 and config["model"]["init"] == "random"
    assert (workdir / rundir.LOCK_FILE).read_text() == ""

    for f in glob.glob(f"{workdir}/checkpoints/{latest}/params/**/d/*", recursive=True):
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    os.remove(workdir / "metrics.jsonl")
    r = subprocess.run(
        _train(workdir, f"--config.total_steps={latest}"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (
        f"checkpoint step {latest}: params ({workdir}/checkpoints/{latest}/params) is unreadable" in r.stderr
        and "falling back to the previous step" in r.stderr
    )
    assert f"has no rows for steps 1-{latest - 1} of the {latest - 1}" in r.stderr or (
        latest == 2 and "has no rows for steps 1 of the 1" in r.stderr
    )
    assert _committed(workdir)[-1] == latest and _metrics_steps(workdir) == [latest]


@pytest.mark.slow
def test_sigint_during_a_long_generation_saves_the_previous_step(tmp_path):
    """checkpoint.every=100 and Ctrl-C while step 2 generates (1k tokens per row): the run
    saves step 1 (never scheduled) within seconds and exits 0; resuming continues at step 2."""
    assets = pytest.importorskip("azr_jax.hf.assets")
    assets.smollm2_hf_dir()
    workdir = tmp_path / "run"
    long = [
        "--config.checkpoint.every=100",
        "--config.azr.max_response_tokens=1024",
        "--config.sampler.gen_buckets=1024",
    ]
    a = subprocess.Popen(
        _train(workdir, "--config.total_steps=3", *long),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: (workdir / "metrics.jsonl").is_file() and _metrics_steps(workdir) == [1], a, "step 1")
    time.sleep(1.0)  # step 2 is generating now
    a.send_signal(signal.SIGINT)
    out = a.communicate(timeout=600)[0]
    assert a.returncode == 0, out[-3000:]
    assert "step 2 abandoned" in out and "stopped at step 1" in out
    assert _committed(workdir) == [1] and _metrics_steps(workdir) == [1]
    assert json.loads((workdir / "hosts" / "0.json").read_text())["step"] == 1
    r = subprocess.run(  # the answers' length is not part of the checkpoint: resume with short ones
        _train(workdir, "--config.total_steps=2", "--config.checkpoint.every=100"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stderr and _metrics_steps(workdir) == [1, 2]

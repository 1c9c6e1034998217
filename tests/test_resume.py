"""Exact resume: 4 steps straight == 2 steps, SIGKILL, `--resume`, 2 more steps.

Both runs go through the real `azr-jax train` command (debug_random config, real sampler,
farm, update and async orbax checkpoints). The killed run is SIGKILLed as soon as its step-2
checkpoint is committed, so it dies in the middle of step 3. After resuming, the final params,
optimizer state, buffers, metrics and logged samples must equal the straight run's exactly
(timings excepted).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from azr_jax.checkpoint import Checkpointer
from azr_jax.metrics import read_metrics

pytest.importorskip("transformers")
assets = pytest.importorskip("azr_jax.hf.assets")

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO.parent / "shared" / "data" / "azr_seed"


def _cmd(workdir: Path, *extra: str) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "azr_jax.cli",
        "train",
        f"--config={REPO / 'configs' / 'debug_random.py'}",
        f"--workdir={workdir}",
        "--config.total_steps=4",
        "--config.log.tensorboard=False",
        "--config.log.progress=False",
    ]
    if (SEED_DIR / "7b_coder_seed_io.jsonl").exists():  # solver tasks then vary from step to step
        cmd += [
            "--config.azr.seed_source=files",
            f"--config.azr.seed_io_file={SEED_DIR / '7b_coder_seed_io.jsonl'}",
            f"--config.azr.seed_induction_file={SEED_DIR / '7b_coder_code_f_seed_io.jsonl'}",
        ]
    return cmd + list(extra)


def _env() -> dict:
    # one CPU device per process: the two runs share the machine
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")


def _committed(workdir: Path, step: int) -> bool:
    d = workdir / "checkpoints" / str(step)
    return d.is_dir() and (d / "commit_success.txt").exists()


def _restore(workdir: Path):
    ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
    try:
        from azr_jax.model import api
        from azr_jax.rl.train_step import OptimConfig, make_optimizer

        cfg = ckpt.restore_model_config()
        params = api.abstract_params(cfg)
        opt = jax.eval_shape(make_optimizer(OptimConfig()).init, params)
        return ckpt.restore(params_target=params, opt_state_target=opt)
    finally:
        ckpt.close()


def _strip(rows):
    drop = ("time", "tokens_per_s")
    return [{k: v for k, v in r.items() if not k.startswith(drop)} for r in rows]


@pytest.mark.slow
def test_sigkill_and_resume_match_a_straight_run(tmp_path):
    assets.smollm2_hf_dir()  # convert the tokenizer's model once, before two processes race
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    a = subprocess.Popen(_cmd(straight), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    b = subprocess.Popen(_cmd(killed), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 900
    while not _committed(killed, 2):
        assert b.poll() is None, b.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "no step-2 checkpoint"
        time.sleep(0.05)
    b.send_signal(signal.SIGKILL)
    b.wait()
    assert not _committed(killed, 4)
    rows = read_metrics(killed)
    assert 2 <= rows[-1]["step"] <= 3  # died after its step-2 checkpoint, before the end

    r = subprocess.run(_cmd(killed, "--resume"), env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from" in r.stderr
    assert a.wait(timeout=900) == 0, a.stdout.read().decode()[-3000:]

    sa, sb = _restore(straight), _restore(killed)
    assert sa["step"] == sb["step"] == 4
    for name in ("params", "opt_state"):
        la, lb = jax.tree.leaves(sa[name]), jax.tree.leaves(sb[name])
        assert len(la) == len(lb)
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert sa["state"]["buffers"] == sb["state"]["buffers"]
    assert sa["state"]["step"] == sb["state"]["step"] == 4
    ma, mb = read_metrics(straight), read_metrics(killed)
    assert [m["step"] for m in mb] == [1, 2, 3, 4]
    assert _strip(ma) == _strip(mb)
    read = lambda p: [json.loads(line) for line in open(p / "samples.jsonl")]
    assert read(straight) == read(killed)

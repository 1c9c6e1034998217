"""Multi-host for real: two `azr-jax train` processes joined by `jax.distributed` on localhost.

Each process owns one CPU device; the mesh spans both (fsdp=2, the config's default), so params,
optimizer state, the sampler's batches and the update are sharded across processes, and the sandbox jobs of every
step are split between hosts and their verdicts all-gathered. After one self-play step both
hosts must hold identical buffers and identical (gathered) params, and the sandbox jobs each host
ran must be its own share: together they cover the run's jobs, neither host ran them all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
assets = pytest.importorskip("azr_jax.hf.assets")

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO.parent / "shared" / "data" / "azr_seed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _cmd(workdir: Path, steps: int) -> list[str]:
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
        "--config.log.params_digest=True",
        "--config.azr.answer_fallback=True",
    ]
    if (SEED_DIR / "7b_coder_seed_io.jsonl").exists():  # real programs: real sandbox work
        cmd += [
            "--config.azr.seed_source=files",
            f"--config.azr.seed_io_file={SEED_DIR / '7b_coder_seed_io.jsonl'}",
            f"--config.azr.seed_induction_file={SEED_DIR / '7b_coder_code_f_seed_io.jsonl'}",
        ]
    return cmd


def _run_two_hosts(workdir: Path, steps: int, timeout: float = 900) -> list[dict]:
    port = _free_port()
    procs = []
    for i in range(2):
        env = dict(
            os.environ,
            XLA_FLAGS="--xla_force_host_platform_device_count=1",
            JAX_PLATFORMS="cpu",
            AZR_COORDINATOR=f"localhost:{port}",
            AZR_NUM_PROCESSES="2",
            AZR_PROCESS_ID=str(i),
        )
        log = open(workdir.parent / f"host{i}.log", "wb")
        procs.append(
            (subprocess.Popen(_cmd(workdir, steps), env=env, stdout=log, stderr=subprocess.STDOUT), log)
        )
    deadline = time.time() + timeout
    try:
        for p, _ in procs:
            p.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    logs = [(workdir.parent / f"host{i}.log").read_text(errors="replace") for i in range(2)]
    for i, (p, _) in enumerate(procs):
        assert p.returncode == 0, f"host {i} exited {p.returncode}:\n{logs[i][-4000:]}"
    return [json.loads((workdir / "hosts" / f"{i}.json").read_text()) for i in range(2)]


@pytest.mark.slow
def test_two_processes_one_selfplay_step_agree(tmp_path):
    assets.smollm2_hf_dir()  # convert the tokenizer's model once, before two processes race
    workdir = tmp_path / "run"
    h0, h1 = _run_two_hosts(workdir, steps=1)

    assert (h0["process_index"], h1["process_index"]) == (0, 1)
    assert h0["process_count"] == h1["process_count"] == 2
    assert h0["step"] == h1["step"] == 1
    # identical state on both hosts
    assert h0["buffer_sizes"] == h1["buffer_sizes"]
    assert h0["buffers_sha256"] == h1["buffers_sha256"]
    assert h0["params_sha256"] == h1["params_sha256"]
    # each host ran its own share of the sandbox jobs (job j on host j % 2)
    total = h0["sandbox_jobs_run"] + h1["sandbox_jobs_run"]
    assert total >= 4, (h0, h1)
    assert 0 < h0["sandbox_jobs_run"] < total and 0 < h1["sandbox_jobs_run"] < total
    assert abs(h0["sandbox_jobs_run"] - h1["sandbox_jobs_run"]) <= max(2, total // 4)

    # only the primary host writes the run's logs; the step really trained
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    assert (workdir / "checkpoints" / "1").is_dir()

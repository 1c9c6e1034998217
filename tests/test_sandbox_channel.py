"""The result channel cannot be broken: any bytes a job writes give that job one status, the workers
stay up, and the farm answers ordinary jobs afterwards.

- fuzz: 2,000 jobs write 5 frames each (10,000 frames: random bytes, truncated JSON, deep nesting,
  megabyte frames, wrong types, made-up tokens, writes of several frames interleaved), then end in
  one of several ways;
- wedge: 500 jobs that crash in every way a job can (the issue's deep-JSON frame that used to kill
  a worker, wrong-typed frames, signals, os._exit), then an ordinary batch.
"""

import json
import random

import pytest

from azr_jax.sandbox import FarmConfig, JobOptions, SandboxFarm, output_job

OPTS = JobOptions(timeout_s=2.0, semantics="strict", determinism=False)
FRAMES_PER_JOB = 5
FUZZ_JOBS = 2000
WEDGE_JOBS = 500


@pytest.fixture(scope="module")
def farm():
    with SandboxFarm(FarmConfig(num_workers=2)) as f:
        yield f


def _frame(rng: random.Random) -> str:
    """Python source of a bytes expression: one adversarial frame."""
    good = {"status": "ok", "value": "1", "stdout": "", "token": "%016x" % rng.getrandbits(64)}
    kind = rng.randrange(9)
    if kind == 0:
        return f"bytes.fromhex({rng.randbytes(rng.randrange(1, 300)).hex()!r})"
    if kind == 1:
        text = json.dumps(good)
        return repr(text[: rng.randrange(len(text))].encode())
    if kind == 2:
        depth = rng.randrange(10, 200_000)
        return f"b'[' * {depth}" if rng.random() < 0.5 else f"b'{{\"a\":' * {depth}"
    if kind == 3:
        return f"b'\"' + b'x' * {rng.randrange(1 << 20, 3 << 20)}"  # a megabyte-sized string, never closed
    if kind == 4:
        wrong = dict(
            good,
            **{
                rng.choice(["status", "value", "stdout", "pairs", "enc", "pair_verdicts"]): rng.choice(
                    [5, None, [], {}, True, 1.5]
                )
            },
        )
        return repr(json.dumps(wrong).encode())
    if kind == 5:
        return repr(json.dumps(good).encode())  # a well-formed frame with a made-up token
    if kind == 6:
        return repr(json.dumps([good, good]).encode())
    if kind == 7:
        return repr(("\udc80" * rng.randrange(1, 50)).encode("utf-8", "surrogatepass"))
    return repr(b"\x01" * rng.randrange(1, 10))  # fake "ready" bytes


_ENDINGS = [
    "    os._exit(0)",
    "    return 1",
    "    os.kill(os.getpid(), 9)",
    "    raise ValueError('after the frames')",
    "    os.close(3)\n    return 1",
]


def _fuzz_program(rng: random.Random) -> str:
    frames = [_frame(rng) for _ in range(FRAMES_PER_JOB)]
    lines = ["import os", "def f(x):", f"    frames = [{', '.join(frames)}]"]
    if rng.random() < 0.5:  # interleave pieces of the frames
        lines += [
            "    pieces = [frame[i:i + 7] for frame in frames for i in range(0, min(len(frame), 70), 7)]",
            "    pieces.sort(key=lambda p: hash(p) % 97)",
            "    for piece in pieces:",
            "        os.write(3, piece)",
        ]
    else:
        lines += ["    for frame in frames:", "        os.write(3, frame)"]
    lines.append(rng.choice(_ENDINGS))
    return "\n".join(lines)


ALLOWED = {
    "error: SandboxError: unreadable result from the child",
    "error: SandboxError: unauthenticated result from the child",
    "killed",
    "output_too_large",
    "timeout",
}


@pytest.mark.slow  # ~8 s: 10,000 fuzzed frames
def test_fuzzed_frames_give_every_job_exactly_one_status(farm):
    rng = random.Random(20240612)
    workers = farm.worker_pids()
    jobs = [output_job(_fuzz_program(rng), "1", (), OPTS) for _ in range(FUZZ_JOBS)]
    futures = farm.submit(jobs)
    results = [f.result(timeout=900) for f in futures]
    assert len(results) == FUZZ_JOBS == len(futures)
    unexpected = [r for r in results if r.status not in ALLOWED]
    assert unexpected == [], unexpected[:3]
    assert farm.worker_pids() == workers  # no worker died
    ordinary = farm.run([output_job("def f(x):\n    return x + 1", str(i)) for i in range(50)])
    assert [r.value for r in ordinary] == [str(i + 1) for i in range(50)]


CRASHES = [
    "import os\ndef f(x):\n    os.write(3, b'[' * 100000)\n    os._exit(0)",
    'import os\ndef f(x):\n    os.write(3, b\'{"status": "ok", "pair_verdicts": 5}\')\n    os._exit(0)',
    "import ctypes\ndef f(x):\n    ctypes.string_at(0)",
    "import os\ndef f(x):\n    os._exit(7)",
    "import os\ndef f(x):\n    os.abort()",
    "import os, signal\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)",
    "import os\ndef f(x):\n    os.write(3, bytes(range(256)) * 100)\n    os._exit(1)",
    "import faulthandler\ndef f(x):\n    faulthandler._stack_overflow()",  # C stack overflow
    "import os\ndef f(x):\n    os.close(3)\n    os.close(0)\n    return 1",
    "def f(x):\n    raise MemoryError",
]


def test_crashing_jobs_cannot_wedge_the_farm(farm):
    workers = farm.worker_pids()
    jobs = [output_job(CRASHES[i % len(CRASHES)], "1", (), OPTS) for i in range(WEDGE_JOBS)]
    results = farm.run(jobs, timeout=900)
    assert len(results) == WEDGE_JOBS and all(not r.ok for r in results)
    assert farm.worker_pids() == workers  # nothing had to be restarted
    ordinary = farm.run([output_job("def f(x):\n    return sorted(x)", repr([i, 3, 1])) for i in range(100)])
    assert [r.value for r in ordinary] == [repr(sorted([i, 3, 1])) for i in range(100)]

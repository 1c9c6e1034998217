"""The farm as a service: async submission, ordering, probes, worker replacement, process hygiene."""

import dataclasses
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from azr_jax.sandbox import (
    FarmConfig,
    IsolationConfig,
    Job,
    JobOptions,
    SandboxFarm,
    check_abduction,
    check_deduction,
    check_induction,
    output_job,
    program_job,
    run_output,
    run_program,
    submit_outputs,
)

SLEEPY = JobOptions(static_checks=False, timeout_s=60.0)


@pytest.fixture(scope="module")
def farm():
    with SandboxFarm(FarmConfig(num_workers=2)) as f:
        yield f


def sandbox_processes(uids, worker_pids=()) -> list[str]:
    """Live (non-zombie) processes that belong to a farm: its sandbox uids, its workers and every
    descendant of them (zygotes, children)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        table[int(entry.name)] = (
            int(fields["Uid"].split()[0]),
            int(fields["PPid"]),
            fields["State"].split()[0],
            fields["Name"].strip(),
        )
    ours = set(worker_pids)
    grew = True
    while grew:
        grew = False
        for pid, (_, ppid, _, _) in table.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    return [
        f"{pid} uid={uid} ppid={ppid} {name}"
        for pid, (uid, ppid, state, name) in table.items()
        if state != "Z" and (uid in uids or pid in ours)
    ]


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds (an event wait with a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def farm_tmp_entries() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("azr-sandbox-")}


def test_isolation_report_is_one_line_and_layers_are_active_here(farm):
    report = farm.isolation_report
    assert "\n" not in report and report.startswith("sandbox farm: 2 workers")
    layers = farm.isolation
    for key in ("setuid", "netns", "ipcns", "pidns", "jail", "seccomp", "rlimits", "pdeathsig"):
        assert key in layers and f"{key}={layers[key]}" in report
    if sys.platform == "linux" and os.geteuid() == 0 and platform.machine() in ("x86_64", "aarch64"):
        # The machine this project runs on: every layer must be live, not merely configured.
        keys = ("setuid", "netns", "ipcns", "pidns", "jail", "seccomp", "rlimits")
        assert {k: layers[k] for k in keys} == dict.fromkeys(keys, "on")
        assert (
            layers["guarantee_network"]
            == layers["guarantee_fork"]
            == layers["guarantee_file_writes"]
            == "blocked"
        )
        assert layers["guarantee_host_files"] == "hidden" and layers["guarantee_signal_others"] == "blocked"
        assert layers["guarantee_ipc"] == "blocked" and layers["guarantee_host_pids"] == "hidden"


def test_results_come_back_in_submission_order(farm):
    rng = random.Random(0)
    sizes = [rng.choice([10, 10**5, 10**6]) for _ in range(40)]
    program = "def f(n):\n    total = 0\n    for i in range(n):\n        total += i * i\n    return total"
    results = farm.run([output_job(program, str(n)) for n in sizes])
    assert [r.status for r in results] == ["ok"] * len(sizes)
    assert [int(r.value) for r in results] == [sum(i * i for i in range(n)) for n in sizes]
    assert all(isinstance(r.wall_s, float) for r in results)  # measured, never asserted on


def test_submit_does_not_block(farm):
    (future,) = farm.submit([program_job("import time\ntime.sleep(1.0)\nprint('done')", options=SLEEPY)])
    assert not future.done()  # submit returned while the job still sleeps
    result = future.result(timeout=60)
    assert result.status == "ok" and result.stdout == "done\n"  # and it ran to the end


def test_concurrent_submitters(farm):
    outputs: dict[int, list] = {}

    def client(k: int) -> None:
        futures = farm.submit([output_job("def f(a, b):\n    return a * b", f"{k}, {i}") for i in range(25)])
        outputs[k] = [f.result(timeout=60).value for f in futures]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outputs == {k: [repr(k * i) for i in range(25)] for k in range(4)}


def test_probe_helpers(farm):
    prog = "def f(s, k):\n    return s[k:] + s[:k]"
    assert run_output(farm, prog, "'abcdef', 2").value == repr("abcdef"[2:] + "abcdef"[:2])
    assert check_deduction(farm, "'cdefab'", '"cdefab"').verdict is True
    assert check_deduction(farm, "'cdefab'", "'cdefba'").verdict is False
    assert check_abduction(farm, prog, (), "'cdefab'", "'abcdef', 2").verdict is True
    assert check_abduction(farm, prog, (), "'cdefab'", "'abcdef', 3").verdict is False
    assert (
        check_abduction(farm, prog, (), "'cdefab'", "'abcdef', -4").verdict is True
    )  # any valid input counts
    pairs = [("'xyz', 1", "'yzx'"), ("'ab', 0", "'ab'")]
    good = check_induction(farm, "def f(s, k):\n    k %= len(s)\n    return s[k:] + s[:k]", (), pairs)
    assert good.verdict is True and good.pair_verdicts == (True, True)
    half = check_induction(farm, "def f(s, k):\n    return s[1:] + s[:1]", (), pairs)
    assert half.verdict is False and half.pair_verdicts == (True, False)
    # The original program's imports are prepended to the agent's code.
    counted = check_induction(
        farm,
        "def f(s):\n    return dict(Counter(s))",
        ("from collections import Counter",),
        [("'aab'", "{'a': 2, 'b': 1}")],
    )
    assert counted.verdict is True


def test_run_program_for_eval_harness(farm):
    ok = run_program(
        farm,
        "import hashlib\ndef add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint(hashlib.sha256(b'x').hexdigest())",
    )
    import hashlib

    assert ok.status == "ok" and ok.stdout == hashlib.sha256(b"x").hexdigest() + "\n"
    failed = run_program(farm, "def add(a, b):\n    return a - b\nassert add(2, 3) == 5, 'wrong sum'")
    assert failed.status == "error: AssertionError: wrong sum"
    echoed = run_program(
        farm, "n = int(input())\nprint(sum(map(int, input().split())) * n)", stdin="3\n1 2 3\n"
    )
    assert echoed.status == "ok" and echoed.stdout == "18\n"
    assert run_program(farm, "while True:\n    pass", timeout_s=0.5).status == "timeout"


def test_cross_seed_determinism(farm):
    words = repr([f"word{i}" for i in range(20)])
    cases = [
        ("def f(s):\n    return hash(s)", "'abc'", False),
        ("def f(xs):\n    return list(set(xs))", words, False),
        ("def f(xs):\n    return set(xs)", words, True),  # equal values, whatever the iteration order
        ("def f(xs):\n    return sorted(set(xs))", words, True),
    ]
    same_child = farm.run([output_job(p, i) for p, i, _ in cases])
    assert all(r.status == "ok" for r in same_child)  # one process, one hash seed: undetectable
    crossed = [
        f.result(timeout=60)
        for f in submit_outputs(farm, [output_job(p, i) for p, i, _ in cases], cross_seed=True)
    ]
    for (_, _, deterministic), r in zip(cases, crossed, strict=True):
        if deterministic:
            assert r.status == "ok"
        else:
            assert r.status == "error: NondeterminismError: output differs under another hash seed"


def test_truncation_and_repr_limit(farm):
    prog = "def f(n):\n    return list(range(n))"
    full = repr(list(range(1000)))
    strict = JobOptions(semantics="strict", max_repr_chars=len(full))
    assert run_output(farm, prog, "1000", options=strict).value == full
    assert (
        run_output(
            farm, prog, "1000", options=dataclasses.replace(strict, max_repr_chars=len(full) - 1)
        ).status
        == "output_too_large"
    )
    truncated = run_output(farm, prog, "1000").value  # official storage
    assert truncated == full[:200] + "..." + full[-200:]


def test_bad_input_is_refused(farm):
    with pytest.raises(TypeError):
        farm.submit(["def f(): pass"])
    with pytest.raises(ValueError):
        Job("output", "def f(x): return x", (), ())
    with pytest.raises(ValueError):
        Job("nonsense")
    with pytest.raises(ValueError):
        JobOptions(timeout_s=0)
    with pytest.raises(TypeError):
        JobOptions(banned_modules="random")


def test_same_results_with_one_job_per_message():
    jobs = [output_job("def f(x):\n    return x[::-1]", repr(f"s{i}")) for i in range(30)]
    with SandboxFarm(FarmConfig(num_workers=1, jobs_per_message=1, max_inflight_per_worker=1)) as f1:
        single = [r.value for r in f1.run(jobs)]
    assert single == [repr(f"s{i}"[::-1]) for i in range(30)]


def test_dead_worker_is_replaced_and_its_job_reported_killed():
    cfg = FarmConfig(num_workers=1)
    with SandboxFarm(cfg) as f:
        (before,) = f.worker_pids()
        uids = f.sandbox_uids()
        (future,) = f.submit([program_job("import time\ntime.sleep(30)", options=SLEEPY)])
        wait_until(
            lambda: len(sandbox_processes(set(), [before])) >= 4, what="the worker, its zygote and children"
        )
        tree = {int(p.split()[0]) for p in sandbox_processes(set(), [before])}  # worker, zygote, children
        os.kill(before, signal.SIGKILL)
        result = future.result(timeout=30)
        assert result.status == "killed" and result.verdict is None and result.detail == "sandbox worker died"
        assert run_output(f, "def f(x):\n    return x + 1", "41").value == "42"
        (after,) = f.worker_pids()
        assert after != before
        # The sleeping child died with its worker (parent-death signals, pid namespace): nothing is left.
        alive = lambda: {int(p.split()[0]) for p in sandbox_processes(uids, [])} & tree  # noqa: E731
        wait_until(lambda: not alive(), what="the dead worker's processes to go")


def test_close_leaves_no_processes_and_no_files():
    cfg = FarmConfig(num_workers=2)
    tmp_before = farm_tmp_entries()
    f = SandboxFarm(cfg)
    pids = f.worker_pids()
    uids = f.sandbox_uids()
    scratch = f.scratch_dirs()
    assert scratch and all(os.path.isdir(d) for d in scratch)
    futures = f.submit([program_job("import time\ntime.sleep(30)", options=SLEEPY) for _ in range(3)])
    wait_until(
        lambda: any(f"uid={u}" in p for p in sandbox_processes(uids, pids) for u in uids),
        what="children to run",
    )
    closed = threading.Event()
    threading.Thread(target=lambda: (f.close(), closed.set()), daemon=True).start()
    assert closed.wait(60), "close() hung on sleeping children"
    assert all(fut.done() for fut in futures)
    for fut in futures:
        assert fut.cancelled() or fut.result().status == "killed"
    assert sandbox_processes(uids, pids) == []
    assert not any(os.path.exists(d) for d in scratch)
    if "PYTEST_XDIST_WORKER" not in os.environ:  # no other farm runs beside us: nothing new at all
        assert farm_tmp_entries() <= tmp_before
    with pytest.raises(RuntimeError):
        f.submit([output_job("def f(x):\n    return x", "1")])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # jax's note that fork and threads do not mix
def test_close_stops_workers_while_a_forked_process_holds_their_pipes():
    """A process forked from this one after the farm started (a pebble or multiprocessing pool
    does it) holds the write end of every worker's stdin, so EOF never reaches a worker. close()
    must still stop each worker itself (exit status 0, its running child killed) rather than
    wait out close_timeout_s and kill it (status -9), which is what it did before."""
    f = SandboxFarm(FarmConfig(num_workers=2, close_timeout_s=120.0))
    pids, uids = f.worker_pids(), f.sandbox_uids()
    futures = f.submit([program_job("import time\ntime.sleep(60)", options=SLEEPY)])
    wait_until(
        lambda: any(f"uid={u}" in p for p in sandbox_processes(uids, pids) for u in uids),
        what="the child to run",
    )
    hold_r, hold_w = os.pipe()
    holder = os.fork()
    if holder == 0:  # keeps every inherited descriptor open until the test lets it go
        os.close(hold_w)
        os.read(hold_r, 1)
        os._exit(0)
    os.close(hold_r)
    try:
        workers = list(f._all_workers)
        f.close()
        assert [w.proc.returncode for w in workers] == [0, 0]
        assert futures[0].done() and futures[0].result().status == "killed"
        assert sandbox_processes(uids, pids) == []
    finally:
        os.close(hold_w)
        os.waitpid(holder, 0)


def test_degraded_farm_without_optional_layers_still_works():
    iso = IsolationConfig(
        drop_privileges=False, network_namespace=False, filesystem_jail=False, seccomp=False
    )
    with SandboxFarm(FarmConfig(num_workers=1, isolation=iso)) as f:
        for key in ("setuid", "netns", "jail", "seccomp"):
            assert f.isolation[key] == "off: disabled"
        assert f.isolation["rlimits"] == "on"
        assert run_output(f, "def f(x):\n    return sorted(x)", "[3, 1, 2]").value == "[1, 2, 3]"
        assert (
            run_output(f, "def f(x):\n    while True: pass", "1", options=JobOptions(timeout_s=0.5)).status
            == "timeout"
        )
        assert run_output(f, "def f(x):\n    return bytearray(2 * 1024**3)", "1").status == "memory"


NON_ROOT_SCRIPT = """
import importlib.util as u, json, sys
d = sys.argv[1]
s = u.spec_from_file_location('sbx', d + '/__init__.py', submodule_search_locations=[d])
m = u.module_from_spec(s); sys.modules['sbx'] = m; s.loader.exec_module(m)
with m.SandboxFarm(m.FarmConfig(num_workers=1)) as farm:
    probes = [('def f(x):\\n    return x * 2', '21'),
              ('import os\\ndef f(x):\\n    return os.fork()', '1'),
              ('import os\\ndef f(x):\\n    os.kill(os.getppid(), 9)\\n    return 1', '1'),
              ('def f(x):\\n    return x + 1', '1')]
    out = [m.run_output(farm, p, i) for p, i in probes]
    print(json.dumps({'layers': farm.isolation, 'results': [[r.status, r.value] for r in out]}))
"""


def _python_for_uid(uid: int) -> str | None:
    """An interpreter another uid can execute (this one may live under /root)."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not candidate or not os.path.exists(candidate):
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                preexec_fn=lambda: (os.setgroups([]), os.setgid(uid), os.setuid(uid)),
                capture_output=True,
                cwd="/",
            )
        except OSError:  # not executable by that uid
            continue
        if probe.returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="needs root to impersonate a normal user"
)
def test_farm_degrades_gracefully_without_root():
    uid = 65534
    python = _python_for_uid(uid)
    if python is None:
        pytest.skip("no Python >= 3.11 executable by an unprivileged uid")
    # The checkout may sit under a directory the unprivileged uid cannot read (a 0700 temp dir):
    # it imports a world-readable copy of the package.
    top = Path(tempfile.mkdtemp(prefix="azr-nonroot-"))
    try:
        package = top / "sandbox"
        shutil.copytree(
            Path(__file__).resolve().parents[1] / "azr_jax" / "sandbox",
            package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for path in [top, *top.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        proc = subprocess.run(
            [python, "-c", NON_ROOT_SCRIPT, str(package)],
            preexec_fn=lambda: (os.setgroups([]), os.setgid(uid), os.setuid(uid)),
            capture_output=True,
            text=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            timeout=120,
        )
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["layers"]["setuid"].startswith("off")
    statuses = report["results"]
    assert statuses[0] == ["ok", "42"] and statuses[3] == ["ok", "2"]
    if report["layers"]["seccomp"] == "on":  # the layer that does not need root
        assert statuses[1][0] == "error: PermissionError: [Errno 1] Operation not permitted"
        assert statuses[2][0] == "error: PermissionError: [Errno 1] Operation not permitted"
    else:
        assert statuses[1][0].startswith("error: BlockingIOError")  # RLIMIT_NPROC applies to non-root


def test_results_are_plain_picklable_dataclasses(farm):
    import pickle

    (result,) = farm.run([output_job("def f(x):\n    return x", "'a'")])
    assert pickle.loads(pickle.dumps(result)) == result
    assert dataclasses.asdict(result)["value"] == "'a'"


def test_submit_fails_at_once_when_workers_can_no_longer_be_started():
    with SandboxFarm(FarmConfig(num_workers=1, max_worker_restarts=0)) as f:
        (worker,) = f.worker_pids()
        futures = f.submit([program_job("import time\ntime.sleep(30)", options=SLEEPY) for _ in range(3)])
        os.kill(worker, signal.SIGKILL)
        for fut in futures:  # the running job and the queued ones all resolve
            result = fut.result(timeout=60)
            assert result.status == "killed" and result.verdict is None
        with pytest.raises(RuntimeError, match="cannot run jobs any more"):
            f.submit([output_job("def f(x):\n    return x", "1")])


def test_watchdog_replaces_a_wedged_worker():
    with SandboxFarm(FarmConfig(num_workers=1, watchdog_grace_s=0.5)) as f:
        (worker,) = f.worker_pids()
        os.kill(worker, signal.SIGSTOP)  # a worker that never answers again
        (future,) = f.submit([output_job("def f(x):\n    return x", "1", options=JobOptions(timeout_s=0.5))])
        result = future.result(timeout=60)  # allowance 2 x 0.5 s + 5 s + grace, then the worker is replaced
        assert result.status == "killed" and result.detail == "sandbox worker died"
        assert run_output(f, "def f(x):\n    return x * 2", "21").value == "42"
        assert f.worker_pids() != [worker]


def test_pending_results_have_a_deadline():
    from concurrent.futures import Future

    from azr_jax.azr.execution import TaskExecutor

    class Silent:  # a farm whose results never come back
        num_workers = 1

        def submit(self, jobs):
            return [Future() for _ in jobs]

    pending = TaskExecutor(Silent()).submit([output_job("def f(x):\n    return x", "1")])
    with pytest.raises(TimeoutError, match="not answering"):
        pending.results(timeout_s=0.2)


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="sandbox uids need root")
def test_two_farms_never_share_a_uid(monkeypatch):
    """Two farms on one host (two trainers, parallel test processes) that draw the same random
    first block still get disjoint uids: a block is held by a lock while its worker lives."""
    import azr_jax.sandbox.farm as farm_module

    class SameDraw:
        def randrange(self, n):
            return 0

    monkeypatch.setattr(farm_module.random, "SystemRandom", SameDraw)
    with SandboxFarm(FarmConfig(num_workers=2)) as a, SandboxFarm(FarmConfig(num_workers=2)) as b:
        ua, ub = a.sandbox_uids(), b.sandbox_uids()
        assert ua and ub and not ua & ub
        assert b.run([output_job("def f(x):\n    return x + 1", "1")])[0].value == "2"
    with SandboxFarm(FarmConfig(num_workers=2)) as c:  # blocks are given back on close
        assert c.sandbox_uids() == ua

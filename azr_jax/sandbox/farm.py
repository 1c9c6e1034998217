"""The farm: a pool of persistent worker processes fed asynchronously from the trainer.

Workers are started with `subprocess` (never forked from the trainer, which runs JAX threads) as a
tiny bootstrap that loads this package by file path, so they never import jax or even
`azr_jax/__init__`. Jobs queue per worker group (main / alternate hash seed); a worker holds at
most `max_inflight_per_worker` jobs, sent `jobs_per_message` at a time, so a slow job delays at
most a few others. Each worker has a writer thread (so a full pipe never blocks the caller) and a
reader thread that resolves futures. A worker that dies is replaced; the job it was running comes
back `killed` and the jobs queued behind it are re-dispatched. A watchdog replaces a worker whose
job runs far past its own budget, so every future resolves; once workers can no longer be
started, queued jobs resolve as `killed` and `submit()` raises at once.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import fcntl
import logging
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from .config import UIDS_PER_WORKER, FarmConfig
from .isolation import CLEAN_ENV
from .jobs import PROBE_PAIRS, STATUS_KILLED, Job, Result
from .protocol import SHUTDOWN_FRAME, FrameReader, ProtocolError, encode_frame, write_all

logger = logging.getLogger("azr_jax.sandbox")

# Makes this directory importable as package `_azr_sandbox` (independent of how azr_jax is
# installed, and without running its __init__, so the worker loads neither the farm's threading and
# logging nor anything else it does not need) and runs the worker loop. argv[1] is the directory.
WORKER_BOOTSTRAP = (
    "import sys, importlib.util as u\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "d = sys.argv[1]\n"
    "s = u.spec_from_file_location('_azr_sandbox', d + '/__init__.py', submodule_search_locations=[d])\n"
    "sys.modules['_azr_sandbox'] = u.module_from_spec(s)\n"
    "from _azr_sandbox.worker import main\n"
    "main()\n"
)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_MAIN, _ALT = "main", "alt"
# Order of the layers in the one-line isolation report.
_LAYER_ORDER = ("setuid", "netns", "ipcns", "pidns", "jail", "seccomp", "rlimits", "pdeathsig")
# Seconds between two watchdog looks at the workers' current jobs.
_WATCHDOG_PERIOD_S = 1.0


def _lost(job: Job, detail: str) -> Result:
    """Result for a job the farm could not complete (infrastructure failure: verdict None)."""
    n = job.units if job.probe == PROBE_PAIRS else 0
    return Result(
        STATUS_KILLED,
        verdict=None,
        pair_verdicts=(None,) * n,
        pair_statuses=(STATUS_KILLED,) * n,
        detail=detail,
    )


@dataclasses.dataclass
class _Pending:
    id: int
    job: Job
    future: Future
    started: float = 0.0  # when the worker began it (the previous result arrived), for the watchdog


def _allowance(job: Job) -> float:
    """Wall seconds a worker may spend on a job: its steps' budgets (two at most) plus start-up."""
    return 2 * job.options.timeout_s * job.units + 5.0


class _Worker:
    """Parent-side handle of one worker process."""

    def __init__(self, farm: SandboxFarm, slot: int, group: str):
        self.farm, self.slot, self.group = farm, slot, group
        self.inflight: collections.deque[_Pending] = collections.deque()
        self.ready = threading.Event()
        self.dead = False
        self.hello: dict[str, Any] = {}
        self.fatal: str | None = None
        self.sendq: queue.SimpleQueue = queue.SimpleQueue()
        cfg = farm.config
        self.scratch = tempfile.mkdtemp(prefix="azr-sandbox-")
        os.chmod(self.scratch, 0o755)  # children under another uid must traverse it when there is no jail
        seed = cfg.hash_seed if group == _MAIN else cfg.alt_hash_seed
        env = dict(CLEAN_ENV)
        self.proc = subprocess.Popen(
            [farm.python, "-s", "-B", "-c", WORKER_BOOTSTRAP, _PACKAGE_DIR],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        iso = cfg.isolation
        block, self._uid_lock = _claim_uid_block(iso, farm.uid_offset + slot)
        self.uids = [iso.uid_base + block * UIDS_PER_WORKER + k for k in range(UIDS_PER_WORKER)]
        init = {
            "type": "init",
            "isolation": dataclasses.asdict(iso),
            "uids": self.uids,
            "preload": list(cfg.preload_modules),
            "scratch": self.scratch,
            "python": farm.python,
            "hash_seed": seed,
        }
        self.sendq.put(encode_frame(init))
        self.writer = threading.Thread(target=self._write_loop, name=f"azr-sandbox-w{slot}-tx", daemon=True)
        self.reader = threading.Thread(target=self._read_loop, name=f"azr-sandbox-w{slot}-rx", daemon=True)
        self.writer.start()
        self.reader.start()

    def _write_loop(self) -> None:
        fd = self.proc.stdin.fileno()
        try:
            while True:
                item = self.sendq.get()
                if item is None:
                    break
                write_all(fd, item if isinstance(item, bytes) else encode_frame(item))
        except OSError:
            pass  # the worker is gone; the reader notices and handles it
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def _read_loop(self) -> None:
        reader = FrameReader(self.proc.stdout.fileno())
        try:
            while True:
                message = reader.read()
                if message is None:
                    break
                if not isinstance(message, dict):
                    raise ProtocolError("worker message is not an object")
                kind = message.get("type")
                if kind == "result":
                    self.farm._on_result(self, message)
                elif kind == "hello":
                    self.hello = message
                    self.farm._on_ready(self)
                elif kind == "fatal":
                    self.fatal = str(message.get("error"))
                    break
        except Exception as exc:  # noqa: BLE001 - anything wrong in the stream: replace the worker
            logger.warning("sandbox worker %d: bad message stream (%s); restarting it", self.proc.pid, exc)
            self.kill()
        finally:
            self.ready.set()  # wake a farm waiting for start-up even on failure
            self.farm._on_exit(self)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def release_uids(self) -> None:
        """Give the uid block back (the worker and its children are gone)."""
        if self._uid_lock is not None:
            os.close(self._uid_lock)
            self._uid_lock = None


def _claim_uid_block(iso: Any, start: int) -> tuple[int, int | None]:
    """The first uid block from `start` on that no live worker on this host holds, held through
    an flock on a file per block until `release_uids` (or the process's death): two farms on one
    host (two trainers, parallel test processes) never give their children the same uid, so a
    child cannot signal another farm's children either. Without root the uids are not used and
    no lock is taken."""
    blocks = iso.uid_span // UIDS_PER_WORKER
    if os.geteuid() != 0 or not iso.drop_privileges:
        return start % blocks, None
    directory = os.path.join(tempfile.gettempdir(), "azr-jax-uid-blocks")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for k in range(blocks):
        block = (start + k) % blocks
        fd = os.open(
            os.path.join(directory, f"{iso.uid_base}-{block}.lock"),
            os.O_CREAT | os.O_RDWR | os.O_CLOEXEC,
            0o600,
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return block, fd
    raise RuntimeError(f"every sandbox uid block ({blocks} of {UIDS_PER_WORKER}) is held by a live worker")


class SandboxFarm:
    """Persistent sandbox workers; `submit` jobs, get futures of `Result`s in submission order.

    Thread-safe. Use as a context manager or call `close()`.
    """

    def __init__(self, config: FarmConfig | None = None, *, num_workers: int | None = None):
        config = config or FarmConfig()
        if num_workers is not None:
            config = dataclasses.replace(config, num_workers=num_workers)
        self.config = config
        self.python = sys.executable
        self.uid_offset = random.SystemRandom().randrange(config.isolation.uid_span // UIDS_PER_WORKER)
        self._lock = threading.Lock()
        self._closed = False
        self._next_id = 0
        self._restarts = 0
        self._pending: dict[str, collections.deque[_Pending]] = {
            _MAIN: collections.deque(),
            _ALT: collections.deque(),
        }
        self._workers: dict[str, list[_Worker]] = {_MAIN: [], _ALT: []}
        self._all_workers: list[_Worker] = []
        self._dead: dict[str, str] = {}  # group -> why it has no workers and gets none
        self._stop = threading.Event()
        self.isolation: dict[str, str] = {}
        self.isolation_report = ""
        try:
            for slot in range(config.num_workers):
                self._start_worker(slot, _MAIN)
            self._wait_ready(self._workers[_MAIN])
        except BaseException:
            self.close()
            raise
        self._watchdog = threading.Thread(target=self._watch, name="azr-sandbox-watchdog", daemon=True)
        self._watchdog.start()
        _LIVE_FARMS.add(self)
        first = self._workers[_MAIN][0].hello
        self.isolation = dict(first.get("layers", {}))
        self.isolation_report = self._format_report()
        logger.info(self.isolation_report)

    # ---------------------------------------------------------------- public API
    @property
    def num_workers(self) -> int:
        return self.config.num_workers

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        with self._lock:
            return [w.proc.pid for w in self._all_workers if not w.dead]

    def scratch_dirs(self) -> list[str]:
        """Host directories this farm created (one per worker started); close() removes them."""
        with self._lock:
            return [w.scratch for w in self._all_workers]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the live workers, their zygotes and every child
        the zygotes have reaped: the farm's cost outside the calling process (Linux /proc)."""
        with self._lock:
            pids = [w.proc.pid for w in self._all_workers if not w.dead]
            pids += [
                w.hello.get("zygote_pid")
                for w in self._all_workers
                if not w.dead and w.hello.get("zygote_pid")
            ]
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        return total

    def sandbox_uids(self) -> set[int]:
        """The uids this farm's children run under (when the setuid layer is on)."""
        with self._lock:
            return {uid for w in self._all_workers for uid in w.uids}

    def submit(self, jobs: Iterable[Job]) -> list[Future]:
        """Queue jobs without blocking; one Future[Result] per job, in the given order."""
        jobs = list(jobs)
        for job in jobs:
            if not isinstance(job, Job):
                raise TypeError(f"submit() takes Job objects, got {type(job).__name__}")
        futures: list[Future] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandbox farm is closed")
            wanted = {_ALT if job.alt_seed else _MAIN for job in jobs}
            for group in wanted & set(self._dead):
                raise RuntimeError(f"the sandbox farm cannot run jobs any more: {self._dead[group]}")
            groups = set()
            for job in jobs:
                future: Future = Future()
                group = _ALT if job.alt_seed else _MAIN
                self._pending[group].append(_Pending(self._next_id, job, future))
                self._next_id += 1
                futures.append(future)
                groups.add(group)
            if _ALT in groups and not self._workers[_ALT]:
                for i in range(self.config.num_alt_workers):
                    self._start_worker(self.config.num_workers + i, _ALT)
            for group in groups:
                self._pump(group)
        return futures

    def run(self, jobs: Iterable[Job], timeout: float | None = None) -> list[Result]:
        """Submit and wait for every result (`timeout`: seconds for the whole batch)."""
        futures = self.submit(jobs)
        deadline = None if timeout is None else time.monotonic() + timeout
        return [
            f.result(None if deadline is None else max(0.0, deadline - time.monotonic())) for f in futures
        ]

    def close(self) -> None:
        """Stop every worker (their running children are killed) and remove their directories."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            cancelled = [p for q in self._pending.values() for p in q]
            for q in self._pending.values():
                q.clear()
            workers = list(self._all_workers)
        for p in cancelled:
            p.future.cancel()
        for w in workers:
            # The shutdown frame stops a worker (and kills its running child) even while a process
            # forked from this one keeps the pipe open; EOF on its stdin does when none does.
            w.sendq.put(SHUTDOWN_FRAME)
            w.sendq.put(None)
        deadline = time.monotonic() + self.config.close_timeout_s
        for w in workers:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()
                w.proc.wait()
            w.kill()  # anything left in its process group
            w.release_uids()
        me = threading.current_thread()
        for w in workers:
            for thread in (w.reader, w.writer):
                if thread is not me:  # close() may be called from a result callback
                    thread.join(timeout=self.config.close_timeout_s)
            for p in list(w.inflight):
                _resolve(p.future, _lost(p.job, "farm closed"))
            w.inflight.clear()
            shutil.rmtree(w.scratch, ignore_errors=True)

    def __enter__(self) -> SandboxFarm:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- internals
    def _start_worker(self, slot: int, group: str) -> _Worker:
        worker = _Worker(self, slot, group)
        self._workers[group].append(worker)
        self._all_workers.append(worker)
        return worker

    def _wait_ready(self, workers: Sequence[_Worker]) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        for w in workers:
            if not w.ready.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"sandbox worker did not start within {self.config.start_timeout_s} s")
            if w.fatal or not w.hello:
                raise RuntimeError(f"sandbox worker failed to start: {w.fatal or 'exited during start-up'}")

    def _format_report(self) -> str:
        layers = self.isolation
        names = sorted(
            (k for k in layers if not k.startswith("guarantee_")),
            key=lambda k: (_LAYER_ORDER + (k,)).index(k),
        )
        parts = [f"{k}={layers[k]}" for k in names]
        guarantees = [
            f"{k[len('guarantee_') :]}={v}" for k, v in layers.items() if k.startswith("guarantee_")
        ]
        return (
            f"sandbox farm: {self.config.num_workers} workers, hash seed {self.config.hash_seed}; "
            f"layers: {' '.join(parts)}; guarantees: {' '.join(guarantees)}"
        )

    def _pump(self, group: str) -> None:
        """Send queued jobs to workers with room (caller holds the lock)."""
        pending = self._pending[group]
        cap, per_msg = self.config.max_inflight_per_worker, self.config.jobs_per_message
        while pending:
            live = [w for w in self._workers[group] if w.hello and not w.dead]
            if not live:
                return
            worker = min(live, key=lambda w: len(w.inflight))
            room = cap - len(worker.inflight)
            if room < min(per_msg, len(pending)):
                return
            batch = [pending.popleft() for _ in range(min(per_msg, room, len(pending)))]
            batch = [p for p in batch if not p.future.cancelled()]
            if not batch:
                continue
            if not worker.inflight:
                batch[0].started = time.monotonic()
            worker.inflight.extend(batch)
            worker.sendq.put({"type": "jobs", "jobs": [[p.id, p.job.to_wire()] for p in batch]})

    def _on_ready(self, worker: _Worker) -> None:
        with self._lock:
            worker.ready.set()
            if not self._closed:
                self._pump(worker.group)

    def _on_result(self, worker: _Worker, message: dict[str, Any]) -> None:
        result = Result.from_wire(message.get("result"))
        with self._lock:
            if not worker.inflight or worker.inflight[0].id != message.get("id"):
                raise ProtocolError(f"result for unexpected job {message.get('id')}")
            pending = worker.inflight.popleft()
            if worker.inflight:
                worker.inflight[0].started = time.monotonic()
            if not self._closed:
                self._pump(worker.group)
        _resolve(pending.future, result)

    def _on_exit(self, worker: _Worker) -> None:
        """Reader thread ended: the worker exited (or was killed). Re-queue and replace."""
        lost: list[_Pending] = []
        with self._lock:
            worker.dead = True
            if worker in self._workers[worker.group]:
                self._workers[worker.group].remove(worker)
            if self._closed:
                return
            queued = list(worker.inflight)
            worker.inflight.clear()
            if queued:
                lost.append(queued[0])  # the job it was running
                self._pending[worker.group].extendleft(reversed(queued[1:]))
            started_ok = bool(worker.hello)
            replace = started_ok and self._restarts < self.config.max_worker_restarts
            if replace:
                self._restarts += 1
                logger.warning("sandbox worker %d died; starting a replacement", worker.proc.pid)
                self._start_worker(worker.slot, worker.group)
            else:
                why = (
                    worker.fatal
                    or f"no restarts left (max_worker_restarts={self.config.max_worker_restarts})"
                )
                logger.error("sandbox worker %d exited (%s); not replaced", worker.proc.pid, why)
                if not self._workers[worker.group]:
                    self._dead[worker.group] = f"every {worker.group} worker is gone; last one: {why}"
                    lost.extend(self._pending[worker.group])
                    self._pending[worker.group].clear()
        try:
            worker.proc.wait(timeout=self.config.close_timeout_s)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.proc.wait()
        worker.release_uids()
        shutil.rmtree(worker.scratch, ignore_errors=True)
        for p in lost:
            _resolve(p.future, _lost(p.job, "sandbox worker died"))

    def _watch(self) -> None:
        """Replace a worker whose current job runs far past its own budget (it is wedged)."""
        grace = self.config.watchdog_grace_s
        while not self._stop.wait(_WATCHDOG_PERIOD_S):
            now = time.monotonic()
            with self._lock:
                wedged = [
                    w
                    for w in self._all_workers
                    if not w.dead
                    and w.inflight
                    and w.inflight[0].started
                    and now - w.inflight[0].started > _allowance(w.inflight[0].job) + grace
                ]
            for w in wedged:
                logger.error("sandbox worker %d is wedged on a job; replacing it", w.proc.pid)
                w.kill()


# Farms not yet closed, closed at interpreter exit so their temporary directories go too (the
# workers themselves exit on their own when our end of their stdin closes).
_LIVE_FARMS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_farms() -> None:
    for farm in list(_LIVE_FARMS):
        farm.close()


def _resolve(future: Future, result: Result) -> None:
    if not future.done():
        try:
            future.set_result(result)
        except Exception:  # noqa: BLE001 - cancelled concurrently
            pass

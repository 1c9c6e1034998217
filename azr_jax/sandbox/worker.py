"""The worker process: a warm, jax-free Python that forks one locked-down child per job.

Started by the farm (farm.py) with a scrubbed environment; talks to it over stdin/stdout frames
(protocol.py). The worker itself never runs job code: it creates the working directory, forks,
waits for the child's JSON result with a wall-clock deadline, kills the child's process group on
timeout, and reports. While it waits it also watches stdin, so a vanished farm (EOF) makes it kill
its child and exit at once.
"""

from __future__ import annotations

import errno
import gc
import importlib
import io
import json
import os
import select
import shutil
import signal
import socket
import sys
import time
from typing import Any

from . import harness
from .config import IsolationConfig
from .isolation import RESULT_FD, SandboxSetupError, WorkerIsolation, lock_down_child, prepare_worker
from .jobs import (
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_PAIRS,
    STATUS_KILLED,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    Job,
    Result,
    error_status,
    options_from_wire,
)
from .protocol import FrameReader, encode_frame, write_all

# Result bytes we accept from a child beyond its stdout and repr budgets (JSON escapes can take six
# bytes per character).
_RESULT_SLACK_BYTES = 1 << 16
_JSON_BYTES_PER_CHAR = 6
# Fallback statuses written when the child cannot even build its result.
_MEMORY_STATUS = "memory"
_INTERNAL_STATUS = "error: SandboxError: the harness failed to report"
# Random bytes of the per-job token that authenticates a child's result (see _child_main).
_TOKEN_BYTES = 16
# Polling period for a child that closed its result pipe, when pidfd_open is unavailable.
_POLL_S = 0.002
# The layer probe at worker start: its limits, and a small stdlib module no worker preloads.
_PROBE_TIMEOUT_S = 10.0
_PROBE_MEMORY_MB = 512
_PROBE_MODULE = "colorsys"


class FarmGone(Exception):
    """stdin reached EOF: the farm closed us or died."""


class _Sink(io.TextIOBase):
    """stderr of a child: accepted and dropped."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return len(s)


def job_from_wire(data: dict[str, Any]) -> Job:
    return Job(
        probe=data["probe"],
        program=data["program"],
        imports=tuple(data["imports"]),
        args=tuple(data["args"]),
        options=options_from_wire(data["options"]),
        stdin=data.get("stdin", ""),
    )


def _write_result(payload: bytes) -> None:
    try:
        write_all(RESULT_FD, payload)
    except OSError:
        pass


def _child_main(
    job: Job, codes: harness.CodeCache, iso: WorkerIsolation, result_w: int, workdir: str, budget_s: float, token: str
) -> None:
    """Runs in the forked child. Never returns.

    The result carries `token`, which the worker checks: job code that writes a made-up result to
    the pipe and exits is not believed unless it digs the token out of this process's memory.
    """
    memory_message = json.dumps({"status": _MEMORY_STATUS, "token": token}).encode()
    internal_message = json.dumps({"status": _INTERNAL_STATUS, "token": token}).encode()
    try:
        try:
            lock_down_child(iso, result_w, workdir, budget_s, job.options.memory_mb)
        except SandboxSetupError as exc:
            msg = {"status": error_status("SandboxSetupError", str(exc)), "detail": "setup", "token": token}
            data = json.dumps(msg).encode()
            for fd in (RESULT_FD, result_w):
                try:
                    write_all(fd, data)
                    break
                except OSError:
                    continue
            return
        stdout = harness.BoundedWriter(job.options.max_stdout_chars)
        sys.stdout, sys.stderr, sys.stdin = stdout, _Sink(), io.StringIO(job.stdin)
        out = harness.run_job(job, stdout, codes, checked=True)
        out["token"] = token
        try:
            _write_result(json.dumps(out).encode())
        except MemoryError:
            _write_result(memory_message)
    except MemoryError:
        _write_result(memory_message)
    except BaseException:  # noqa: BLE001 - the child must always end in os._exit
        _write_result(internal_message)
    finally:
        os._exit(0)


def _kill(pid: int) -> None:
    for fn in (os.killpg, os.kill):
        try:
            fn(pid, signal.SIGKILL)
        except OSError:
            pass


class Worker:
    """One worker's state and job loop."""

    def __init__(self, iso: WorkerIsolation, reader: FrameReader, out_fd: int):
        self.iso = iso
        self.reader = reader
        self.out_fd = out_fd
        self.counter = 0
        self.has_pidfd = hasattr(os, "pidfd_open")

    def send(self, message: Any) -> None:
        write_all(self.out_fd, encode_frame(message))

    def _watch_stdin(self, readable: list[int]) -> None:
        if self.reader.fd in readable:
            self.reader.fill()
            if self.reader.eof:
                raise FarmGone()

    def run_one(self, job_wire: dict[str, Any]) -> Result:
        """Fork, supervise and reap one child."""
        t0 = time.monotonic()
        try:
            job = job_from_wire(job_wire)
        except (KeyError, TypeError, ValueError) as exc:
            return Result(error_status("SandboxError", f"malformed job: {exc}"))
        rejected = harness.rejection(job)
        if rejected is not None:  # refused without forking
            return Result.from_wire(rejected, time.monotonic() - t0)
        codes = harness.precompile(job)
        opts = job.options
        units = job.units
        budget = opts.timeout_s * units + (self.iso.config.alarm_grace_s if units > 1 else 0.0)
        max_bytes = (opts.max_repr_chars + opts.max_stdout_chars) * _JSON_BYTES_PER_CHAR + _RESULT_SLACK_BYTES
        self.counter += 1
        workdir = os.path.join(self.iso.work_base, f"job-{self.counter}")
        os.mkdir(workdir, 0o755)
        token = os.urandom(_TOKEN_BYTES).hex()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _child_main(job, codes, self.iso, w, workdir, budget, token)
        os.close(w)
        try:
            return self._supervise(pid, r, t0, budget, max_bytes, job, token)
        finally:
            os.close(r)
            try:
                os.rmdir(workdir)  # the usual case: the job could not write into it
            except OSError:
                shutil.rmtree(workdir, ignore_errors=True)

    def _supervise(self, pid: int, r: int, t0: float, budget: float, max_bytes: int, job: Job, token: str) -> Result:
        """Collect the child's result until it exits, the deadline passes or it writes too much."""
        deadline = t0 + budget
        pidfd = os.pidfd_open(pid) if self.has_pidfd else -1
        chunks: list[bytes] = []
        size = 0
        pipe_open, wait_status, outcome = True, None, None
        try:
            while wait_status is None or pipe_open:
                now = time.monotonic()
                if now >= deadline:
                    outcome = STATUS_TIMEOUT
                    break
                watch = [self.reader.fd]
                if pipe_open:
                    watch.append(r)
                if wait_status is None and pidfd >= 0:
                    watch.append(pidfd)
                wait = deadline - now
                if pidfd < 0 and wait_status is None and not pipe_open:
                    wait = min(wait, _POLL_S)  # no pidfd: poll for the exit of a child that closed its pipe
                readable, _, _ = select.select(watch, [], [], wait)
                self._watch_stdin(readable)
                if r in readable:
                    data = os.read(r, 1 << 16)
                    if data:
                        size += len(data)
                        chunks.append(data)
                        if size > max_bytes:
                            outcome = STATUS_OUTPUT_TOO_LARGE
                            break
                    else:
                        pipe_open = False
                if wait_status is None and (pidfd < 0 or pidfd in readable):
                    got, status = os.waitpid(pid, os.WNOHANG)
                    wait_status = status if got == pid else None
                if wait_status is not None and pipe_open:
                    size += self._drain(r, chunks)
                    pipe_open = False
        except FarmGone:
            _kill(pid)
            if wait_status is None:
                os.waitpid(pid, 0)
            raise
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        wall = time.monotonic() - t0
        if outcome is not None:
            _kill(pid)
            if wait_status is None:
                os.waitpid(pid, 0)
            return _failed(job, outcome, wall, "stopped by the worker")
        return _interpret(b"".join(chunks), wait_status, wall, job, token)

    @staticmethod
    def _drain(r: int, chunks: list[bytes]) -> int:
        """Read what an exited child left in its pipe, without blocking (a stray grandchild may hold it)."""
        os.set_blocking(r, False)
        size = 0
        try:
            while data := os.read(r, 1 << 16):
                chunks.append(data)
                size += len(data)
        except BlockingIOError:
            pass
        return size


def _failed(job: Job, status: str, wall: float, detail: str) -> Result:
    """A result the job never reported itself; answer checks count it as a wrong answer."""
    checking = job.probe in (PROBE_EQUAL, PROBE_CALL_EQUAL, PROBE_PAIRS)
    n = job.units if job.probe == PROBE_PAIRS else 0
    return Result(
        status,
        wall_s=wall,
        verdict=False if checking else None,
        pair_verdicts=(False,) * n,
        pair_statuses=(status,) * n,
        detail=detail,
    )


def _interpret(data: bytes, wait_status: int, wall: float, job: Job, token: str) -> Result:
    """Turn the child's message (or its death) into a Result."""
    if data:
        try:
            message = json.loads(data)
            if not isinstance(message, dict) or message.pop("token", None) != token:
                return _failed(job, error_status("SandboxError", "unauthenticated result from the child"), wall, "")
            return Result.from_wire(message, wall)
        except ValueError as exc:
            return _failed(job, error_status("SandboxError", "unreadable result from the child"), wall, str(exc)[:200])
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        if sig == signal.SIGXCPU:
            return _failed(job, STATUS_TIMEOUT, wall, "CPU time limit")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return _failed(job, STATUS_KILLED, wall, f"terminated by {name}")
    return _failed(
        job, STATUS_KILLED, wall, f"exited with code {os.waitstatus_to_exitcode(wait_status)} without a result"
    )


def _layer_probe() -> dict[str, Any]:
    """Runs in a locked-down child: observe which guarantees actually hold."""
    out: dict[str, Any] = {"uid": os.getuid()}
    out["host_fs_hidden"] = not os.path.exists("/etc/passwd") and not os.path.exists("/proc/self")
    sys.modules.pop(_PROBE_MODULE, None)
    try:
        importlib.import_module(_PROBE_MODULE)
        out["stdlib"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["stdlib"] = f"{type(exc).__name__}: {exc}"
    out["socket"] = _attempt(lambda: socket.socket().close())
    out["file_write"] = _attempt(lambda: os.close(os.open("azr-layer-probe", os.O_WRONLY | os.O_CREAT, 0o600)))
    out["fork"] = _attempt(_fork_and_reap)
    out["signal_worker"] = _attempt(lambda: os.kill(os.getppid(), 0))  # signal 0: permission check only
    return out


def _fork_and_reap() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _attempt(fn) -> str:
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def _run_layer_probe(iso: WorkerIsolation) -> dict[str, Any]:
    workdir = os.path.join(iso.work_base, "layer-probe")
    os.makedirs(workdir, 0o755, exist_ok=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            try:
                lock_down_child(iso, w, workdir, _PROBE_TIMEOUT_S, _PROBE_MEMORY_MB)
                payload = _layer_probe()
            except SandboxSetupError as exc:
                payload = {"setup_error": str(exc)}
            data = json.dumps(payload).encode()
            for fd in (RESULT_FD, w):
                try:
                    write_all(fd, data)
                    break
                except OSError:
                    continue
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        readable, _, _ = select.select([r], [], [], deadline - time.monotonic())
        if not readable:
            break
        data = os.read(r, 1 << 16)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    _kill(pid)
    os.waitpid(pid, 0)
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"setup_error": "layer probe child died"}


def verify_layers(iso: WorkerIsolation) -> None:
    """Probe a real locked-down child; switch off layers that fail, record what holds."""
    layers = iso.layers
    for _ in range(4):
        probe = _run_layer_probe(iso)
        err = probe.get("setup_error")
        if err is None:
            if iso.uid is not None and probe.get("stdlib") != "ok":
                iso.uid = None
                layers["setuid"] = f"off: python install unreadable by the sandbox uid ({probe.get('stdlib')})"
                continue
            break
        step = err.split(":", 1)[0]
        if step == "jail" and iso.jail:
            iso.jail = None
            layers["jail"] = f"off: {err}"
        elif step == "setuid" and iso.uid is not None:
            iso.uid = None
            layers["setuid"] = f"off: {err}"
        elif step == "seccomp" and iso.seccomp is not None:
            iso.seccomp = None
            layers["seccomp"] = f"off: {err}"
        else:
            raise RuntimeError(f"sandbox child cannot be set up: {err}")
    else:
        raise RuntimeError("sandbox layer probing did not converge")
    if iso.uid is not None:
        layers["setuid"] = "on" if probe["uid"] == iso.uid else f"off: child uid is {probe['uid']}"
    if iso.jail:
        layers["jail"] = "on" if probe["host_fs_hidden"] else "off: host files visible in the jail"
    if iso.seccomp is not None:
        blocked = probe["socket"] == "EPERM" and probe["file_write"] == "EPERM" and probe["fork"] == "EPERM"
        layers["seccomp"] = "on" if blocked else f"off: filter not effective ({probe})"
    layers["rlimits"] = "on"
    layers["pdeathsig"] = "on"
    names = [name for _, name in socket.if_nameindex()]
    if layers.get("netns") == "on" and names != ["lo"]:
        layers["netns"] = f"off: interfaces {names} visible"
    layers["guarantee_network"] = "blocked" if layers.get("netns") == "on" or probe["socket"] != "allowed" else "OPEN"
    layers["guarantee_fork"] = "blocked" if probe["fork"] != "allowed" else "OPEN"
    layers["guarantee_file_writes"] = "blocked" if probe["file_write"] != "allowed" else "empty files only (FSIZE=0)"
    layers["guarantee_host_files"] = "hidden" if probe["host_fs_hidden"] else "readable (permissions only)"
    layers["guarantee_signal_others"] = "blocked" if probe["signal_worker"] != "allowed" else "OPEN"


def main() -> None:
    """Entry point of a worker process (see farm.WORKER_BOOTSTRAP)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_out = os.dup(1)
    os.dup2(2, 1)  # a stray print in the worker must never corrupt the protocol stream
    reader = FrameReader(0)
    init = reader.read()
    if init is None:
        return
    cfg = IsolationConfig(**init["isolation"])
    for name in init.get("preload", ()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs speed
            pass
    try:
        iso = prepare_worker(cfg, init.get("uid"), init["scratch"])
        verify_layers(iso)
    except Exception as exc:  # noqa: BLE001
        write_all(proto_out, encode_frame({"type": "fatal", "error": f"{type(exc).__name__}: {exc}"}))
        return
    worker = Worker(iso, reader, proto_out)
    gc.freeze()  # keep the collector from dirtying (copy-on-write) the worker's objects in every child
    worker.send({"type": "hello", "pid": os.getpid(), "layers": iso.layers, "uid": iso.uid})
    try:
        while True:
            message = reader.read()
            if message is None or message.get("type") == "shutdown":
                break
            if message.get("type") == "jobs":
                for job_id, job_wire in message["jobs"]:
                    result = worker.run_one(job_wire)
                    worker.send({"type": "result", "id": job_id, "result": result.to_wire()})
    except (FarmGone, BrokenPipeError):
        pass

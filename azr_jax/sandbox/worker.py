"""The worker process: judges jobs, and has each of their steps run by a fresh sandboxed child.

Started by the farm (farm.py) with a scrubbed environment; talks to it over stdin/stdout frames
(protocol.py). At start it builds its namespaces and jail (isolation.py) and starts its zygote
(zygote.py), the small clean interpreter that forks the children. Per job it runs the judge
(judge.py): the judge's steps go to children one at a time, each with a wall-clock deadline; the
worker reads what a child writes (bounded), kills it at the deadline, and turns every outcome, any
bytes at all, into a status for that job. The worker itself never runs job code, so golds, other
jobs' data and the comparison live where no model-written code has run. While it waits it also
watches stdin, so a vanished farm (EOF) makes it kill its children and exit at once.
"""

from __future__ import annotations

import collections
import dataclasses
import marshal
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from . import judge as judging
from . import zygote
from .config import IsolationConfig
from .isolation import CLEAN_ENV, WorkerIsolation, prepare_worker
from .jobs import (
    STATUS_KILLED,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    Job,
    Result,
    error_status,
    options_from_wire,
)
from .lockdown import READY
from .protocol import FrameReader, encode_frame, write_all

# Result bytes accepted from a child beyond its stdout budget and its value budget (a wire tree of
# judging.VALUE_NODES nodes; JSON escapes can take six bytes per character).
_RESULT_SLACK_BYTES = 16 << 20
_JSON_BYTES_PER_CHAR = 6
# How long the zygote may take to answer (a ready child, an exit report) before it is considered broken.
_ZYGOTE_REPLY_S = 30.0
_KILL_REPORT_S = 10.0
_LAYER_PROBE_S = 20.0
_LAYER_PROBE_MB = 512


class FarmGone(Exception):
    """stdin reached EOF: the farm closed us or died."""


class ZygoteGone(RuntimeError):
    """The zygote stopped answering: the worker cannot run jobs any more."""


def job_from_wire(data: dict[str, Any]) -> Job:
    return Job(
        probe=data["probe"],
        program=data["program"],
        imports=tuple(data["imports"]),
        args=tuple(data["args"]),
        options=options_from_wire(data["options"]),
        stdin=data.get("stdin", ""),
    )


@dataclasses.dataclass
class _Child:
    zpid: int
    job_w: int
    res_r: int
    pidfd: int


class ZygoteLink:
    """The worker's end of its zygote: start it, configure it, take ready children, hear of exits."""

    def __init__(self, python: str, package_dir: str, hash_seed: int, preload: list[str]):
        self.args = (python, package_dir, hash_seed, preload)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = [p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)]
        env = dict(CLEAN_ENV, PYTHONHASHSEED=str(hash_seed), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [
                python,
                "-S",
                "-B",
                "-c",
                zygote.BOOTSTRAP,
                package_dir,
                marshal.dumps(path).hex(),
                str(theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
            cwd="/",
        )
        theirs.close()
        self.sock = ours
        self.preload = preload
        self.generation = 0
        self.ready: collections.deque[_Child] = collections.deque()
        self.watching: int | None = None  # zpid of the child whose exit status we wait for
        self.exit_status: int | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def _receive(self, timeout: float) -> None:
        """Handle one message from the zygote (waiting at most `timeout`)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise ZygoteGone(f"zygote did not answer within {timeout:.0f} s")
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 3)
        except OSError as exc:
            raise ZygoteGone(f"zygote unreachable: {exc}") from None
        if not data:
            raise ZygoteGone(f"zygote exited (code {self.proc.poll()})")
        message = marshal.loads(data)
        op = message.get("op")
        if op == "child":
            if message["gen"] == self.generation and len(fds) == 3:
                self.ready.append(_Child(message["zpid"], *fds))
            else:  # a child of an older configuration: dropped (it sees EOF and exits)
                for fd in fds:
                    os.close(fd)
        elif op == "exit":
            if message["zpid"] == self.watching:
                self.exit_status = message["status"]
        elif op == "configured":
            self.configured_gen = message["gen"]

    def pump(self) -> None:
        """Handle every message waiting, without blocking."""
        while select.select([self.sock], [], [], 0)[0]:
            self._receive(0)

    def configure(self, cfg: dict) -> None:
        self.generation += 1
        message = {"op": "config", "cfg": cfg, "gen": self.generation}
        if self.generation == 1:
            message["preload"] = self.preload
        self._drop_ready()
        try:
            self.sock.sendmsg([marshal.dumps(message)])
        except OSError as exc:
            raise ZygoteGone(f"zygote unreachable: {exc}") from None
        deadline = time.monotonic() + _ZYGOTE_REPLY_S * 2
        self.configured_gen = 0
        while self.configured_gen != self.generation:
            self._receive(max(0.0, deadline - time.monotonic()))

    def _drop_ready(self) -> None:
        while self.ready:
            child = self.ready.popleft()
            for fd in (child.job_w, child.res_r, child.pidfd):
                os.close(fd)

    def take(self) -> _Child:
        """A ready child (locked down, waiting for its payload); its exit status will be recorded."""
        self.pump()
        deadline = time.monotonic() + _ZYGOTE_REPLY_S
        while not self.ready:
            self._receive(max(0.0, deadline - time.monotonic()))
        child = self.ready.popleft()
        self.watching, self.exit_status = child.zpid, None
        return child

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.exit_status is None:
            self._receive(max(0.0, deadline - time.monotonic()))
        return self.exit_status

    def restart(self) -> ZygoteLink:
        """A new zygote (one that installed a seccomp filter cannot drop it)."""
        self.close()
        return ZygoteLink(*self.args)

    def close(self) -> None:
        try:
            self._drop_ready()
            self.sock.close()
        finally:
            try:
                self.proc.kill()  # its pid namespace, and so every child, goes with it
            except OSError:
                pass
            self.proc.wait()


class Worker:
    """One worker's state and job loop."""

    def __init__(self, iso: WorkerIsolation, reader: FrameReader, out_fd: int, link: ZygoteLink):
        self.iso = iso
        self.reader = reader
        self.out_fd = out_fd
        self.link = link
        self.counter = 0

    def send(self, message: Any) -> None:
        write_all(self.out_fd, encode_frame(message))

    # ------------------------------------------------------------------------------------ jobs
    def run_one(self, job_wire: Any) -> Result:
        """Judge one job; any failure of ours becomes a status for this job, never a dead worker."""
        t0 = time.monotonic()
        try:
            job = job_from_wire(job_wire)
        except Exception as exc:  # noqa: BLE001 - KeyError, TypeError, ValueError...
            return Result(error_status("SandboxError", f"malformed job: {type(exc).__name__}: {exc}"))
        try:
            out = self._judge(job)
        except (FarmGone, ZygoteGone):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must not take the worker down
            out = judging.failed(
                job,
                judging.Outcome(
                    {}, error_status("SandboxError", f"worker: {type(exc).__name__}: {exc}"), infra=True
                ),
            )
        out["wall_s"] = time.monotonic() - t0
        try:
            return Result.from_wire(out)
        except ValueError as exc:
            return Result(error_status("SandboxError", f"worker built a malformed result: {exc}"))

    def _judge(self, job: Job) -> dict:
        gen = judging.judge(job)
        try:
            step = next(gen)
            while True:
                step = gen.send(self.run_step(step, job))
        except StopIteration as stop:
            return stop.value

    def run_step(self, step: judging.Step, job: Job) -> judging.Outcome:
        """Spawn a child for one step, feed it, supervise it, read what it wrote."""
        workdir = None
        if self.iso.per_job_workdir:
            self.counter += 1
            workdir = os.path.join(self.iso.work_base, f"job-{self.counter}")
            os.mkdir(workdir, 0o755)
            step.payload["limits"]["workdir"] = self.iso.child_path(workdir)
        try:
            opts = job.options
            max_bytes = opts.max_stdout_chars * _JSON_BYTES_PER_CHAR + _RESULT_SLACK_BYTES
            return self._supervise(step, max_bytes)
        finally:
            if workdir is not None:
                try:
                    os.rmdir(workdir)  # the usual case: the job could not write into it
                except OSError:
                    shutil.rmtree(workdir, ignore_errors=True)

    def _supervise(self, step: judging.Step, max_bytes: int) -> judging.Outcome:
        """Give a ready child the step's payload; collect what it writes until it closes its pipe,
        exits, passes its deadline or writes too much; then make sure it is gone."""
        link = self.link
        child = link.take()
        deadline = time.monotonic() + step.budget_s
        kind = step.payload.get("kind", "")
        token = os.urandom(8).hex()  # echoed by the harness: a frame job code writes blind is refused
        step.payload["token"] = token
        todo = memoryview(judging.payload_bytes(step.payload))
        os.set_blocking(child.job_w, False)
        os.set_blocking(child.res_r, False)
        chunks: list[bytes] = []
        size, eof, outcome = 0, False, None
        try:
            written, job_open = self._feed(child, todo)
            todo = todo[written:]
            while True:
                size, eof = self._read_available(child.res_r, chunks, size)
                if size > max_bytes:
                    outcome = judging.Outcome({}, STATUS_OUTPUT_TOO_LARGE, "stopped by the worker")
                    break
                if eof:
                    break
                if link.exit_status is not None:  # exited, and a stray holder keeps the pipe open
                    size, _ = self._read_available(child.res_r, chunks, size)
                    break
                now = time.monotonic()
                if now >= deadline:
                    outcome = judging.Outcome({}, STATUS_TIMEOUT, "stopped by the worker")
                    break
                reads = [self.reader.fd, link.fileno(), child.res_r]
                readable, writable, _ = select.select(
                    reads, [child.job_w] if job_open else [], [], deadline - now
                )
                if self.reader.fd in readable:
                    self.reader.fill()
                    if self.reader.shutdown_pending():
                        raise FarmGone()
                if link.fileno() in readable:
                    link.pump()
                if writable:
                    written, job_open = self._feed(child, todo)
                    todo = todo[written:]
        finally:
            self._kill(child)  # nothing a step started outlives it
            for fd in (child.job_w, child.res_r, child.pidfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if outcome is not None:
            return outcome
        data = b"".join(chunks)
        if len(data) > len(READY):
            return _interpret(kind, data, None, token)
        return _interpret(kind, data, link.wait_exit(_KILL_REPORT_S), token)

    @staticmethod
    def _read_available(fd: int, chunks: list[bytes], size: int) -> tuple[int, bool]:
        """Read what the pipe holds now (non-blocking). Returns (total size, end of file)."""
        try:
            while True:
                data = os.read(fd, 1 << 16)
                if not data:
                    return size, True
                chunks.append(data)
                size += len(data)
        except BlockingIOError:
            return size, False

    @staticmethod
    def _feed(child: _Child, todo: memoryview) -> tuple[int, bool]:
        """Write what the pipe takes of the payload; close it once complete. (written, still open)"""
        try:
            written = os.write(child.job_w, todo[: 1 << 16]) if todo else 0
        except BlockingIOError:
            return 0, True
        except OSError:  # the child is gone (EPIPE): its exit explains the rest
            written = len(todo)
        if written == len(todo):
            os.close(child.job_w)
            child.job_w = -1
            return written, False
        return written, True

    @staticmethod
    def _kill(child: _Child) -> None:
        try:
            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        except OSError:
            pass


def _interpret(kind: str, data: bytes, wait_status: int | None, token: str | None = None) -> judging.Outcome:
    """Turn what a child wrote (or its death) into an Outcome; any bytes at all are handled."""
    if not data.startswith(READY):
        # The child never completed its lockdown: the sandbox failed, not the job.
        status = error_status("SandboxSetupError", "the child failed before running the job")
        try:
            import json

            message = json.loads(data) if data else {}
            if isinstance(message, dict) and isinstance(message.get("status"), str):
                status = message["status"]
        except Exception:  # noqa: BLE001
            pass
        return judging.Outcome({}, status, _death(wait_status), infra=True)
    data = data[len(READY) :]
    if data:
        return judging.read_message(kind, data, token)
    if os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGXCPU:
        return judging.Outcome({}, STATUS_TIMEOUT, "CPU time limit")
    return judging.Outcome({}, STATUS_KILLED, _death(wait_status))


def _death(wait_status: int | None) -> str:
    if wait_status is None:
        return ""
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"terminated by {name}"
    return f"exited with code {os.waitstatus_to_exitcode(wait_status)} without a result"


# -------------------------------------------------------------------------------- layer checks
def _probe(worker: Worker) -> dict[str, Any]:
    """Run the layer probe in a real locked-down child."""
    step = judging.Step(
        {"kind": "layers", "limits": {"timeout": _LAYER_PROBE_S, "memory_mb": _LAYER_PROBE_MB}},
        _LAYER_PROBE_S,
    )
    outcome = worker._supervise(step, 1 << 20)
    if outcome.infra:
        return {"setup_error": outcome.status.split("SandboxSetupError: ", 1)[-1]}
    if outcome.status != "ok":
        return {"setup_error": f"layer probe: {outcome.status} ({outcome.detail})"}
    return outcome.message


def verify_layers(worker: Worker) -> None:
    """Probe a real locked-down child; switch off layers that fail, record what holds."""
    iso = worker.iso
    layers = iso.layers
    for _ in range(6):
        worker.link.configure(iso.zygote_config())
        probe = _probe(worker)
        err = probe.get("setup_error")
        if err is None:
            if iso.uids and probe.get("stdlib") != "ok":
                iso.uids = None
                layers["setuid"] = (
                    f"off: python install unreadable by the sandbox uid ({probe.get('stdlib')})"
                )
                continue
            break
        step = err.split(":", 1)[0]
        if step == "jail" and iso.jail:
            iso.jail = None  # children stay in the worker's view of the same directories
            layers["jail"] = f"off: {err}"
        elif step == "setuid" and iso.uids:
            iso.uids = None
            layers["setuid"] = f"off: {err}"
        elif step == "seccomp" and iso.seccomp is not None:
            iso.seccomp = iso.seccomp_zygote = None
            iso.per_job_workdir = True
            layers["seccomp"] = f"off: {err}"
            worker.link = worker.link.restart()
        elif step == "ipc" and iso.ipc_per_child:
            iso.ipc_per_child = False
        else:
            raise RuntimeError(f"sandbox child cannot be set up: {err}")
    else:
        raise RuntimeError("sandbox layer probing did not converge")
    if iso.uids:
        layers["setuid"] = "on" if probe["uid"] in iso.uids else f"off: child uid is {probe['uid']}"
    if iso.jail:
        layers["jail"] = "on" if probe["host_fs_hidden"] else "off: host files visible in the jail"
    if iso.seccomp is not None:
        blocked = (
            all(probe[k] == "EPERM" for k in ("socket", "file_write", "sysv_ipc", "mqueue"))
            and probe["fork"] != "allowed"
        )
        layers["seccomp"] = "on" if blocked else f"off: filter not effective ({probe})"
    layers["rlimits"] = "on"
    layers["pdeathsig"] = "on"
    names = [name for _, name in socket.if_nameindex()]
    if layers.get("netns") == "on" and names != ["lo"]:
        layers["netns"] = f"off: interfaces {names} visible"
    layers["guarantee_network"] = (
        "blocked" if layers.get("netns") == "on" or probe["socket"] != "allowed" else "OPEN"
    )
    layers["guarantee_fork"] = "blocked" if probe["fork"] != "allowed" else "OPEN"
    layers["guarantee_file_writes"] = (
        "blocked" if probe["file_write"] != "allowed" else "empty files only (FSIZE=0)"
    )
    layers["guarantee_host_files"] = "hidden" if probe["host_fs_hidden"] else "readable (permissions only)"
    layers["guarantee_signal_others"] = "blocked" if probe["signal_worker"] != "allowed" else "OPEN"
    ipc_open = probe["sysv_ipc"] == "allowed" or probe["mqueue"] == "allowed"
    private = layers.get("ipcns") == "on"
    layers["guarantee_ipc"] = (
        "blocked"
        if not ipc_open
        else ("private per job" if iso.ipc_per_child else "private per worker" if private else "OPEN")
    )
    layers["guarantee_host_pids"] = (
        "hidden" if probe["visible_pids"] <= 8 else f"{probe['visible_pids']} visible"
    )


def main() -> None:
    """Entry point of a worker process (see farm.WORKER_BOOTSTRAP)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_out = os.dup(1)
    os.dup2(2, 1)  # a stray print in the worker must never corrupt the protocol stream
    reader = FrameReader(0)
    init = reader.read()
    if init is None:
        return
    link = None
    try:
        cfg = IsolationConfig(**init["isolation"])
        iso = prepare_worker(cfg, init.get("uids"), init["scratch"])
        link = ZygoteLink(
            init.get("python", sys.executable),
            os.path.dirname(os.path.abspath(__file__)),
            int(init.get("hash_seed", 0)),
            list(init.get("preload", ())),
        )
        worker = Worker(iso, reader, proto_out, link)
        verify_layers(worker)
    except Exception as exc:  # noqa: BLE001
        write_all(proto_out, encode_frame({"type": "fatal", "error": f"{type(exc).__name__}: {exc}"}))
        if link is not None:
            link.close()
        return
    link = worker.link
    hello = {
        "type": "hello",
        "pid": os.getpid(),
        "zygote_pid": link.proc.pid,
        "layers": iso.layers,
        "uids": iso.uids,
    }
    worker.send(hello)
    try:
        while True:
            message = reader.read()
            if not isinstance(message, dict) or message.get("type") == "shutdown":
                break
            if message.get("type") == "jobs":
                for job_id, job_wire in message["jobs"]:
                    result = worker.run_one(job_wire)
                    worker.send({"type": "result", "id": job_id, "result": result.to_wire()})
    except (FarmGone, BrokenPipeError):
        pass
    except ZygoteGone as exc:
        try:
            worker.send({"type": "fatal", "error": f"ZygoteGone: {exc}"})
        except OSError:
            pass
    finally:
        link.close()

"""The zygote: a small, clean interpreter that forks one sandboxed child per job step.

Each worker starts one zygote (`python -S`: no site hooks, a few preloaded modules) inside the
worker's namespaces; with a pid namespace it is that namespace's init, so a job sees no host pid
and everything in it dies with the zygote. The zygote never receives job data: a child gets its
payload from the worker on its own pipe, so the image it is forked from holds no other job's
program, input or gold. A small image also makes each fork cheap (page tables are copied per fork).

Protocol with the worker (a SOCK_SEQPACKET socket; marshal messages, written only by the worker
and the zygote, never by job code): the worker sends {"op": "config", ...} once (again after a
layer is switched off) and {"op": "spawn"} per step; the zygote answers {"op": "spawned", "zpid"}
with three descriptors (job pipe write end, result pipe read end, pidfd of the child) and, when a
child exits, {"op": "exit", "zpid", "status"}. A spare child is forked ahead of each request, so
its fork and lockdown overlap the previous step.

Loaded by file path (`BOOTSTRAP`): package `_azr_sandbox`, without the package's __init__.
"""

from __future__ import annotations

import builtins
import gc
import marshal
import posix
import select
import sys

import _socket

from . import child, lockdown

BOOTSTRAP = (
    "import sys, marshal\n"
    "d = sys.argv[1]\n"
    "sys.path[:] = marshal.loads(bytes.fromhex(sys.argv[2]))\n"
    "pkg = type(sys)('_azr_sandbox')\n"
    "pkg.__path__ = [d]\n"
    "sys.modules['_azr_sandbox'] = pkg\n"
    "from _azr_sandbox.zygote import main\n"
    "main(int(sys.argv[3]))\n"
)
_MAX_MESSAGE = 1 << 20
_SETUP_EXIT = 3
_INT_BYTES = 4


def _send(sock, message: dict, fds: tuple[int, ...] = ()) -> None:
    data = marshal.dumps(message)
    if fds:
        raw = b"".join(fd.to_bytes(_INT_BYTES, sys.byteorder, signed=True) for fd in fds)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw)])
    else:
        sock.sendmsg([data])


def _install_site_builtins() -> None:
    """What `site` would add to builtins (exit, quit, ...): programs may call exit()."""
    import _sitebuiltins

    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    builtins.copyright = _sitebuiltins._Printer("copyright", sys.copyright)
    builtins.credits = _sitebuiltins._Printer("credits", "Thanks to CWI, CNRI, BeOpen, Zope Corporation, the PSF and many others.")
    builtins.license = _sitebuiltins._Printer("license", "See https://www.python.org/psf/license/")
    builtins.help = _sitebuiltins._Helper()


class Zygote:
    def __init__(self, sock):
        self.sock = sock
        self.cfg: dict = {}
        self.devnull = posix.open("/dev/null", posix.O_RDWR)
        self.pid = posix.getpid()
        self.spare: tuple[int, int, int, int] | None = None  # zpid, pidfd, job_w, res_r
        self.watched: dict[int, int] = {}  # pidfd -> zpid of children not yet reaped

    def fork_child(self) -> tuple[int, int, int, int]:
        job_r, job_w = posix.pipe()
        res_r, res_w = posix.pipe()
        zpid = posix.fork()
        if zpid == 0:  # pragma: no cover - the child
            self.child_main(job_r, res_w)
        posix.close(job_r)
        posix.close(res_w)
        pidfd = posix.pidfd_open(zpid)
        self.watched[pidfd] = zpid
        return zpid, pidfd, job_w, res_r

    def child_main(self, job_r: int, res_w: int) -> None:  # pragma: no cover - runs in the child
        code = 0
        try:
            try:
                lockdown.lock_down(self.cfg, job_r, res_w, self.devnull, self.pid)
            except lockdown.SetupError as exc:
                message = child.codec.dumps({"status": child.error_status("SandboxSetupError", str(exc))}).encode()
                for fd in (lockdown.RESULT_FD, res_w):
                    try:
                        posix.write(fd, message)
                        break
                    except OSError:
                        continue
                code = _SETUP_EXIT
                return
            posix.write(lockdown.RESULT_FD, lockdown.READY)
            chunks = []
            while True:
                data = posix.read(lockdown.JOB_FD, 1 << 16)
                if not data:
                    break
                chunks.append(data)
            payload_bytes = b"".join(chunks)
            payload = marshal.loads(payload_bytes)
            limits = payload.get("limits", {})
            lockdown.apply_job_limits(limits, self.cfg.get("cpu_grace", 1))
            if limits.get("workdir"):
                posix.chdir(limits["workdir"])
            if payload.get("kind") == "layers":
                posix.write(lockdown.RESULT_FD, child.codec.dumps(lockdown.layer_probe()).encode())
                return
            del payload
            child.run_in_child(payload_bytes, lockdown.RESULT_FD)
        except MemoryError:
            _quiet_write(b'{"status":"memory"}')
        except BaseException:  # noqa: BLE001 - the child must always end in _exit
            _quiet_write(b'{"status":"error: SandboxError: the harness failed to report"}')
        finally:
            posix._exit(code)

    def handle(self, message: dict) -> None:
        op = message.get("op")
        if op == "config":
            self.cfg = message["cfg"]
            self.drop_spare()
            self.spare = self.fork_child()
            _send(self.sock, {"op": "configured", "pid": self.pid})
        elif op == "spawn":
            spare = self.spare or self.fork_child()
            self.spare = None
            zpid, pidfd, job_w, res_r = spare
            _send(self.sock, {"op": "spawned", "zpid": zpid}, (job_w, res_r, pidfd))
            posix.close(job_w)
            posix.close(res_r)
            self.spare = self.fork_child()

    def drop_spare(self) -> None:
        if self.spare is not None:
            zpid, pidfd, job_w, res_r = self.spare
            self.spare = None
            for fd in (job_w, res_r):
                posix.close(fd)
            try:
                posix.kill(zpid, 9)
            except OSError:
                pass

    def reap(self, pidfd: int) -> None:
        zpid = self.watched.pop(pidfd)
        posix.close(pidfd)
        try:
            _, status = posix.waitpid(zpid, 0)
        except ChildProcessError:
            status = 0
        if self.spare is not None and self.spare[0] == zpid:  # the spare died before its job came
            _, _, job_w, res_r = self.spare
            self.spare = None
            posix.close(job_w)
            posix.close(res_r)
        _send(self.sock, {"op": "exit", "zpid": zpid, "status": status})

    def loop(self) -> None:
        fd = self.sock.fileno()
        while True:
            readable, _, _ = select.select([fd, *self.watched], [], [])
            for pidfd in [r for r in readable if r != fd]:
                self.reap(pidfd)
            if fd in readable:
                data = self.sock.recv(_MAX_MESSAGE)
                if not data:
                    return
                self.handle(marshal.loads(data))


def _quiet_write(data: bytes) -> None:
    try:
        posix.write(lockdown.RESULT_FD, data)
    except OSError:
        pass


def main(sock_fd: int) -> None:
    """Entry point (see BOOTSTRAP): runs until the worker closes the socket."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, sock_fd)
    lockdown.prctl(lockdown.PR_SET_PDEATHSIG, lockdown.SIGKILL)  # the worker gone: we go (and our children)
    _install_site_builtins()
    zygote = Zygote(sock)
    first = marshal.loads(sock.recv(_MAX_MESSAGE))
    for name in first.get("preload", ()):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module only costs speed
            pass
    gc.collect()
    gc.freeze()  # keep the collector from dirtying (copy-on-write) the zygote's objects in every child
    zygote.handle(first)
    try:
        zygote.loop()
    except (BrokenPipeError, ConnectionResetError):
        pass

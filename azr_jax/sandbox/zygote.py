"""The zygote: a small, clean interpreter that forks one sandboxed child per job step.

Each worker starts one zygote (`python -S`: no site hooks, a few preloaded modules) inside the
worker's namespaces; with a pid namespace it is that namespace's init, so a job sees no host pid
and everything in it dies with the zygote. The zygote never receives job data: a child gets its
payload from the worker on its own pipe, so the image it is forked from holds no other job's
program, input or gold. A small image also makes each fork cheap (page tables are copied per fork).

Protocol with the worker (a SOCK_SEQPACKET socket; marshal messages, written only by the worker
and the zygote, never by job code): the worker sends {"op": "config", "gen", ...} (again after a
layer is switched off); the zygote keeps READY_CHILDREN children in the worker's hands, each sent
as {"op": "child", "zpid", "gen"} with three descriptors (job pipe write end, result pipe read
end, pidfd), and when a child exits it reports {"op": "exit", "zpid", "status"} and forks the
next one, so each fork and lockdown overlaps the worker's current step.

Loaded by file path (`BOOTSTRAP`): package `_azr_sandbox`, without the package's __init__.
"""

from __future__ import annotations

import _socket
import builtins
import gc
import marshal
import posix
import select
import sys

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
# Children each worker holds ready (forked, locked down, waiting for a payload): one runs a step
# while the next is already there, so forking overlaps the previous step.
READY_CHILDREN = 2
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
    builtins.credits = _sitebuiltins._Printer(
        "credits", "Thanks to CWI, CNRI, BeOpen, Zope Corporation, the PSF and many others."
    )
    builtins.license = _sitebuiltins._Printer("license", "See https://www.python.org/psf/license/")
    builtins.help = _sitebuiltins._Helper()


class Zygote:
    def __init__(self, sock):
        self.sock = sock
        self.cfg: dict = {}
        self.generation = -1
        self.devnull = posix.open("/dev/null", posix.O_RDWR)
        self.pid = posix.getpid()
        self.watched: dict[int, tuple[int, int]] = {}  # pidfd -> (zpid, generation) of unreaped children
        self.filtered = False  # the zygote part of the seccomp filter is installed (irreversible)
        self.forks = 0  # children forked: each takes the next of the worker's uids

    def push(self) -> None:
        """Fork a child (it locks itself down and waits for its payload) and hand it to the worker."""
        job_r, job_w = posix.pipe()
        res_r, res_w = posix.pipe()
        uids = self.cfg.get("uids")
        uid = uids[self.forks % len(uids)] if uids else None
        self.forks += 1
        zpid = posix.fork()
        if zpid == 0:  # pragma: no cover - the child
            self.child_main(job_r, res_w, uid)
        posix.close(job_r)
        posix.close(res_w)
        pidfd = posix.pidfd_open(zpid)
        self.watched[pidfd] = (zpid, self.generation)
        _send(self.sock, {"op": "child", "zpid": zpid, "gen": self.generation}, (job_w, res_r, pidfd))
        posix.close(job_w)
        posix.close(res_r)

    def child_main(
        self, job_r: int, res_w: int, uid: int | None
    ) -> None:  # pragma: no cover - runs in the child
        code = 0
        try:
            try:
                lockdown.lock_down(self.cfg, job_r, res_w, self.devnull, self.pid, uid)
            except lockdown.SetupError as exc:
                message = child.codec.dumps(
                    {"status": child.error_status("SandboxSetupError", str(exc))}
                ).encode()
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
            if not chunks:  # the worker dropped us unused (e.g. after a reconfiguration)
                return
            payload = marshal.loads(b"".join(chunks))
            del chunks
            limits = payload.get("limits", {})
            lockdown.apply_job_limits(limits, self.cfg.get("cpu_grace", 1))
            if limits.get("workdir"):
                posix.chdir(limits["workdir"])
            if payload.get("kind") == "layers":
                report = dict(lockdown.layer_probe(), token=payload.get("token", ""))
                posix.write(lockdown.RESULT_FD, child.codec.dumps(report).encode())
                return
            child.run_in_child(payload, lockdown.RESULT_FD)
        except BaseException:  # noqa: BLE001 - the child must always end in _exit
            pass  # nothing (or a partial frame) on the pipe: the worker reports how the child ended
        finally:
            posix._exit(code)

    def handle(self, message: dict) -> None:
        if message.get("op") == "config":
            self.cfg = message["cfg"]
            self.generation = message["gen"]
            if self.cfg.get("zygote_seccomp") is not None and not self.filtered:
                lockdown.install_seccomp(self.cfg["zygote_seccomp"], [])  # inherited by every child
                self.filtered = True
            _send(self.sock, {"op": "configured", "pid": self.pid, "gen": self.generation})
            for _ in range(READY_CHILDREN):
                self.push()

    def reap(self, pidfd: int) -> None:
        """A child exited: report it, and replace it so the worker always has children ready."""
        zpid, generation = self.watched.pop(pidfd)
        posix.close(pidfd)
        try:
            _, status = posix.waitpid(zpid, 0)
        except ChildProcessError:
            status = 0
        _send(self.sock, {"op": "exit", "zpid": zpid, "status": status})
        if generation == self.generation:
            self.push()

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

"""What every sandboxed child applies to itself before it reads its job: the per-child layers.

Runs in the zygote's image, so it imports only small built-in modules (posix, resource, and
`_ctypes` directly: the `ctypes` package would add half a megabyte to every fork).
The sequence (`lock_down`): new session; descriptors 0 = job pipe, 1-2 = /dev/null, 3 = result
pipe, nothing else; rlimits (no core, no file size, few descriptors, no processes); a new SysV
IPC / mqueue namespace; chroot into the worker's read-only jail and an empty working directory;
a dedicated unprivileged uid (root) or no capabilities (user namespace); parent-death signal;
the seccomp filter the worker compiled. The job's own limits (CPU, address space) follow once its
payload has arrived (`apply_job_limits`). Any failure raises SetupError naming the step.
"""

from __future__ import annotations

import _ctypes
import posix
import resource

CLONE_NEWIPC = 0x08000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SIGKILL = 9
JOB_FD, RESULT_FD = 0, 3
READY = b"\x01"  # first byte on the result pipe: the lockdown is complete, job output follows
_FD_SWEEP = 1 << 16
_FILTER_BYTES = 8  # sizeof(struct sock_filter)


class _Long(_ctypes._SimpleCData):  # arguments: ints and pointers (LP64)
    _type_ = "l"


class _Int(_ctypes._SimpleCData):  # the libc calls used here return int
    _type_ = "i"


class _Byte(_ctypes._SimpleCData):
    _type_ = "c"


class _Function(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Libc:
    _handle = _ctypes.dlopen(None, 0)


def _libc_function(name: str, nargs: int) -> _Function:
    fn = _Function((name, _Libc()))
    fn.argtypes = (_Long,) * nargs
    return fn


def _address(buf: bytearray) -> int:
    """Address of a bytearray's storage (the bytearray must outlive its use)."""
    return _ctypes.addressof(_Byte.from_buffer(buf))


_prctl = _libc_function("prctl", 5)
_unshare = _libc_function("unshare", 1)
_capset = _libc_function("capset", 2)


class SetupError(RuntimeError):
    """An isolation step failed for this child: the job must not run."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {posix.strerror(err)}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_prctl(option, arg, 0, 0, 0), f"prctl({option})")


def unshare(flags: int) -> None:
    _check(_unshare(flags), "unshare")


def drop_capabilities() -> None:
    """Clear every capability of the calling process (matters inside a user namespace)."""
    header = bytearray((0x20080522).to_bytes(4, "little") + bytes(4))  # _LINUX_CAPABILITY_VERSION_3, pid 0
    data = bytearray(24)  # two {effective, permitted, inheritable} words, all zero
    _check(_capset(_address(header), _address(data)), "capset")


def install_seccomp(program: bytes, pid_slots: list[int]) -> None:
    """Install a packed sock_filter program, with this process's pid patched into `pid_slots`."""
    code = bytearray(program)
    own = posix.getpid().to_bytes(4, "little")
    for i in pid_slots:  # the k field of instruction i (little-endian architectures only)
        code[i * _FILTER_BYTES + 4 : i * _FILTER_BYTES + 8] = own
    fprog = bytearray(16)  # struct sock_fprog {u16 len; pad; sock_filter *filter}
    fprog[0:2] = (len(code) // _FILTER_BYTES).to_bytes(2, "little")
    fprog[8:16] = _address(code).to_bytes(8, "little")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _check(_prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _address(fprog), 0, 0), "seccomp")


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def lock_down(
    cfg: dict, job_r: int, res_w: int, devnull: int, parent_pid: int, uid: int | None = None
) -> None:
    """Apply every per-child layer to the calling (freshly forked) process. Raises SetupError."""
    step = "setsid"
    try:
        posix.setsid()
        step = "descriptors"
        posix.dup2(job_r, JOB_FD)
        posix.dup2(devnull, 1)
        posix.dup2(devnull, 2)
        posix.dup2(res_w, RESULT_FD)
        posix.closerange(RESULT_FD + 1, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], _FD_SWEEP))
        step = "rlimits"
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_FSIZE, 0)
        _set_limit(resource.RLIMIT_NOFILE, cfg["nofile"])
        _set_limit(resource.RLIMIT_NPROC, cfg["nproc"])
        if cfg.get("ipc_per_child"):
            step = "ipc"
            unshare(CLONE_NEWIPC)
        step = "jail"
        if cfg.get("jail"):
            posix.chroot(cfg["jail"])
        posix.chdir(cfg["workdir"])
        step = "setuid"
        if uid is not None:
            posix.setgroups([])
            posix.setgid(uid)
            posix.setuid(uid)
        elif cfg.get("in_userns"):
            drop_capabilities()
        step = "pdeathsig"  # after setuid: a credential change clears it
        prctl(PR_SET_PDEATHSIG, SIGKILL)
        if posix.getppid() != parent_pid:
            posix._exit(1)  # the zygote is already gone
        step = "seccomp"
        if cfg.get("seccomp") is not None:
            install_seccomp(cfg["seccomp"], cfg.get("pid_slots", []))
    except OSError as exc:
        raise SetupError(f"{step}: {exc}") from exc


def apply_job_limits(limits: dict, cpu_grace_s: int) -> None:
    """CPU seconds and address space of this job (soft = hard: the job cannot raise them)."""
    budget = float(limits.get("timeout", 10.0))
    cpu = int(budget) + (1 if budget != int(budget) else 0) + cpu_grace_s
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU first, SIGKILL a second later
    _set_limit(resource.RLIMIT_AS, int(limits.get("memory_mb", 1024)) << 20)


def layer_probe() -> dict:
    """Runs in a locked-down child: observe which guarantees actually hold."""
    import errno
    import sys

    out: dict = {"uid": posix.getuid(), "pid": posix.getpid()}
    out["host_fs_hidden"] = not _exists("/etc/passwd") and not _exists("/proc/self")
    sys.modules.pop("colorsys", None)
    try:
        __import__("colorsys")
        out["stdlib"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["stdlib"] = f"{type(exc).__name__}: {exc}"

    def attempt(fn) -> str:
        try:
            fn()
            return "allowed"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))

    import _socket

    out["socket"] = attempt(lambda: _socket.socket().close())
    out["file_write"] = attempt(
        lambda: posix.close(posix.open("azr-layer-probe", posix.O_WRONLY | posix.O_CREAT, 0o600))
    )
    out["fork"] = attempt(_fork_and_reap)
    out["signal_worker"] = attempt(lambda: posix.kill(posix.getppid(), 0))  # signal 0: permission check only
    out["sysv_ipc"] = attempt(_shmget)
    out["mqueue"] = attempt(_mq_open)
    out["visible_pids"] = _visible_pids()
    return out


def _exists(path: str) -> bool:
    try:
        posix.stat(path)
        return True
    except OSError:
        return False


def _fork_and_reap() -> None:
    pid = posix.fork()
    if pid == 0:
        posix._exit(0)
    posix.waitpid(pid, 0)


def _shmget() -> None:
    ret = _libc_function("shmget", 3)(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    if ret < 0:
        err = _ctypes.get_errno()
        raise OSError(err, posix.strerror(err))
    _libc_function("shmctl", 3)(ret, 0, 0)  # IPC_RMID


def _mq_open() -> None:
    name = bytearray(b"/azr-layer-probe\0")
    ret = _libc_function("mq_open", 4)(_address(name), 0o100 | 0o2, 0o600, 0)  # O_CREAT | O_RDWR
    if ret < 0:
        err = _ctypes.get_errno()
        raise OSError(err, posix.strerror(err))
    _libc_function("mq_unlink", 1)(_address(name))


def _visible_pids(limit: int = 1 << 15) -> int:
    """How many pids below `limit` this process can see (getpgid succeeds or fails with EPERM)."""
    seen = 0
    for pid in range(1, limit):
        try:
            posix.getpgid(pid)
            seen += 1
        except PermissionError:
            seen += 1
        except OSError:
            pass
    return seen

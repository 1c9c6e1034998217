"""Isolation layers: what a worker sets up once, and what every forked child applies to itself.

Worker (once, at start): an empty network namespace; a private mount namespace holding a read-only
"jail" root (Python install and system libraries bind-mounted, no /etc, /home, /proc, /root, repo);
a precompiled seccomp filter. As non-root the worker tries a user namespace to get the same two
namespaces. Child (per job, after fork, before any job code): new session, descriptors closed except
the result pipe, stdin/stdout/stderr on /dev/null, rlimits (address space, CPU, no processes, no file
size, few descriptors, no core), chroot into the jail and an empty working directory, a dedicated
unprivileged uid, parent-death signal, seccomp, scrubbed environment. Every step is best effort at
worker start (a layer that does not work is reported "off: <why>") and fail-closed per job (a layer
that worked at start but fails for a job aborts the job).
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
from dataclasses import dataclass, field

from .config import IsolationConfig
from .seccomp import CompiledFilter, syscall_table

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME = 0x8, 0x400, 0x800, 0x1000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
PR_SET_PDEATHSIG = 1
RESULT_FD = 3  # the child's only descriptor besides 0-2: its result pipe
_MIN_FD_SWEEP = 1 << 16  # close at least this many descriptor numbers in a child
# Environment of every child (and worker): nothing inherited from the trainer. Numeric libraries are
# held to one thread, since threads count against the child's process limit.
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "HOME": "/nonexistent",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Device nodes bind-mounted into the jail's /dev.
JAIL_DEVICES = ("null", "zero", "urandom", "random")
# System directories bind-mounted (read-only) besides the Python install: shared libraries for C
# extensions loaded lazily by the job.
JAIL_SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SandboxSetupError(RuntimeError):
    """An isolation step that worked at worker start failed for one child: the job is not run."""


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def set_parent_death_signal(sig: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def drop_capabilities() -> None:
    """Clear every capability of the calling process (matters inside a user namespace)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit data words
    data = (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


@dataclass
class WorkerIsolation:
    """What the worker prepared, consumed by every child it forks."""

    config: IsolationConfig
    uid: int | None = None  # drop to this uid/gid in each child (None: keep ours)
    jail: str | None = None  # jail root (worker's view); children chroot here
    work_base: str = ""  # worker's view of the directory holding per-job working directories
    seccomp: CompiledFilter | None = None
    in_user_namespace: bool = False
    devnull_fd: int = -1
    worker_pid: int = 0
    layers: dict[str, str] = field(default_factory=dict)

    def child_workdir(self, worker_path: str) -> str:
        """The path a child sees for a working directory the worker created."""
        if self.jail:
            return "/" + os.path.relpath(worker_path, self.jail)
        return worker_path


def _enter_namespaces(cfg: IsolationConfig, iso: WorkerIsolation) -> int:
    """Unshare net/mount namespaces (via a user namespace when not root). Returns the flags obtained."""
    wanted = (CLONE_NEWNET if cfg.network_namespace else 0) | (CLONE_NEWNS if cfg.filesystem_jail else 0)
    if not wanted:
        return 0
    if os.geteuid() == 0:
        try:
            unshare(wanted)
            return wanted
        except OSError as exc:
            iso.layers["namespaces"] = f"off: {exc}"
            return 0
    uid, gid = os.getuid(), os.getgid()
    try:
        unshare(CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")
        iso.in_user_namespace = True
        unshare(wanted)
        return wanted
    except OSError as exc:
        iso.layers["namespaces"] = f"off: user namespace unavailable ({exc.strerror or exc})"
        return 0


def _python_dirs() -> list[str]:
    """Directories the interpreter may import from (resolved)."""
    dirs = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    dirs.update(p for p in sys.path if p and os.path.isabs(p))
    out = set()
    for d in dirs:
        while d and not os.path.isdir(d):  # e.g. python311.zip: take its directory
            d = os.path.dirname(d)
        if d and d != "/":
            out.add(os.path.realpath(d))
    return sorted(out)


def _covering(paths: list[str]) -> list[str]:
    """Drop every path that lies inside another one of the list."""
    kept: list[str] = []
    for p in sorted(set(paths)):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def _bind_readonly(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    flags = os.statvfs(target).f_flag
    keep = 0
    for st, ms in (
        (ST_NOEXEC, MS_NOEXEC),
        (ST_NOATIME, MS_NOATIME),
        (ST_NODIRATIME, MS_NODIRATIME),
        (ST_RELATIME, MS_RELATIME),
    ):
        if flags & st:
            keep |= ms
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _build_jail(cfg: IsolationConfig, iso: WorkerIsolation, jail_dir: str) -> None:
    """Populate `jail_dir` (already created) with a tmpfs and read-only binds of what Python needs."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate to the host
    mount("tmpfs", jail_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={cfg.jail_tmpfs_mb}m,mode=755")
    links, binds = [], []
    for top in JAIL_SYSTEM_DIRS:
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.isdir(top):
            binds.append(top)
    binds = _covering(binds + _python_dirs())
    for source in binds:
        target = jail_dir + source
        os.makedirs(target, mode=0o755, exist_ok=True)
        _bind_readonly(source, target)
    for path, dest in links:
        if not os.path.lexists(jail_dir + path):
            os.symlink(dest, jail_dir + path)
    os.makedirs(jail_dir + "/dev", mode=0o755, exist_ok=True)
    for name in JAIL_DEVICES:
        if os.path.exists("/dev/" + name):
            node = f"{jail_dir}/dev/{name}"
            open(node, "w").close()
            mount("/dev/" + name, node, None, MS_BIND)
    for sub in ("tmp", "work"):
        os.makedirs(f"{jail_dir}/{sub}", mode=0o755, exist_ok=True)
    iso.jail = jail_dir
    iso.work_base = jail_dir + "/work"


def prepare_worker(cfg: IsolationConfig, uid: int | None, scratch_dir: str) -> WorkerIsolation:
    """Set up the worker-wide layers. `scratch_dir` is an empty directory the farm created for us."""
    iso = WorkerIsolation(config=cfg, worker_pid=os.getpid())
    # Inherited by every child (cheaper here than per fork): a clean environment, and file-size
    # overruns that fail with EFBIG instead of killing the process.
    os.environ.clear()
    os.environ.update(CLEAN_ENV)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    iso.devnull_fd = os.open(os.devnull, os.O_RDWR)
    got = _enter_namespaces(cfg, iso)
    iso.layers["netns"] = "on" if got & CLONE_NEWNET else iso.layers.get("namespaces", "off: disabled")
    iso.work_base = scratch_dir
    if got & CLONE_NEWNS:
        try:
            _build_jail(cfg, iso, scratch_dir)
            iso.layers["jail"] = "on"
        except OSError as exc:
            iso.jail, iso.work_base = None, scratch_dir
            iso.layers["jail"] = f"off: {exc}"
    else:
        iso.layers["jail"] = iso.layers.get("namespaces", "off: disabled") if cfg.filesystem_jail else "off: disabled"
    iso.layers.pop("namespaces", None)
    if cfg.drop_privileges and uid is not None and os.geteuid() == 0 and not iso.in_user_namespace:
        iso.uid = uid
    else:
        iso.layers["setuid"] = "off: " + ("disabled" if not cfg.drop_privileges else "not root")
    table = syscall_table()
    if cfg.seccomp and table is not None:
        iso.seccomp = CompiledFilter(table, cfg.allow_threads)
    else:
        iso.layers["seccomp"] = "off: " + ("disabled" if not cfg.seccomp else "no syscall table for this architecture")
    return iso


def _set_limit(which: int, value: int) -> None:
    resource.setrlimit(which, (value, value))


def lock_down_child(iso: WorkerIsolation, result_fd: int, workdir: str, timeout_s: float, memory_mb: int) -> None:
    """Apply every per-child layer to the calling (freshly forked) process. Raises SandboxSetupError."""
    cfg = iso.config
    step = "setsid"
    try:
        os.setsid()
        step = "descriptors"
        for fd in (0, 1, 2):
            os.dup2(iso.devnull_fd, fd)
        if result_fd != RESULT_FD:
            os.dup2(result_fd, RESULT_FD)
        os.closerange(RESULT_FD + 1, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], _MIN_FD_SWEEP))
        step = "rlimits"
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_FSIZE, 0)
        _set_limit(resource.RLIMIT_NOFILE, cfg.max_open_files)
        _set_limit(resource.RLIMIT_NPROC, cfg.max_threads if cfg.allow_threads else 0)
        cpu = int(math.ceil(timeout_s)) + cfg.cpu_grace_s
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU first, SIGKILL a second later
        step = "jail"
        if iso.jail:
            os.chroot(iso.jail)
        os.chdir(iso.child_workdir(workdir))
        step = "setuid"
        if iso.uid is not None:
            os.setgroups([])
            os.setgid(iso.uid)
            os.setuid(iso.uid)
        elif iso.in_user_namespace:
            drop_capabilities()
        step = "pdeathsig"  # after setuid: a credential change clears it
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != iso.worker_pid:
            os._exit(1)  # the worker is already gone
        step = "seccomp"
        if iso.seccomp is not None:
            iso.seccomp.install()
        step = "memory"
        _set_limit(resource.RLIMIT_AS, memory_mb << 20)
    except OSError as exc:
        raise SandboxSetupError(f"{step}: {exc}") from exc

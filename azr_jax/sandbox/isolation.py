"""Worker-wide isolation: the namespaces and the jail a worker builds once, before its zygote starts.

Per worker: an empty network namespace; a private SysV IPC / mqueue namespace; a private mount
namespace holding a read-only "jail" root (Python install and system libraries bind-mounted; no
/etc, /home, /proc, /root, repo); a new pid namespace for its children (the zygote is its init);
the seccomp filter compiled once. As non-root the worker first enters a user namespace (its uid
mapped to 0 inside, so the zygote it executes keeps the capabilities it needs to chroot its
children, which then drop them). Every layer is best effort at worker start ("off: <why>") and
fail-closed per job (lockdown.py: a child whose layer fails does not run its job).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass, field

from .config import IsolationConfig
from .seccomp import CompiledFilter, syscall_table

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME = 0x8, 0x400, 0x800, 0x1000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
# Environment of every worker and zygote: nothing inherited from the trainer. Numeric libraries are
# held to one thread, since threads count against a child's process limit.
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
# The children's working directory inside the jail (empty; nobody can write there).
JAIL_WORKDIR = "/work"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


@dataclass
class WorkerIsolation:
    """What the worker prepared; `zygote_config` is what each child applies (lockdown.py)."""

    config: IsolationConfig
    uids: list[int] | None = None  # children drop to these uids/gids in turn (None: keep ours)
    jail: str | None = None  # jail root (worker's view); children chroot here
    work_base: str = ""  # worker's view of the children's working directory
    seccomp: CompiledFilter | None = None  # the per-child part
    seccomp_zygote: CompiledFilter | None = None  # the part the zygote installs for all its children
    in_user_namespace: bool = False
    ipc_per_child: bool = False
    pid_namespace: bool = False
    per_job_workdir: bool = False
    layers: dict[str, str] = field(default_factory=dict)

    def child_path(self, worker_path: str) -> str:
        """The path a child sees for a directory the worker created."""
        if self.jail:
            return "/" + os.path.relpath(worker_path, self.jail)
        return worker_path

    def needs_child_filter(self) -> bool:
        """The per-child seccomp part refuses new processes, signals to others and clearing the
        parent-death signal. Other layers already guarantee all three when each child has its own
        unprivileged uid (no signal reaches another uid; RLIMIT_NPROC=0 binds a non-root uid), runs
        in the worker's pid namespace (everything dies with the zygote) and threads are off; then
        the part is skipped: the kernel compiles a filter per install, a cost paid per job."""
        return not (self.uids and self.pid_namespace and not self.config.allow_threads)

    def zygote_config(self) -> dict:
        cfg = self.config
        return {
            "uids": self.uids,
            "jail": self.jail,
            "workdir": self.child_path(self.work_base),
            "seccomp": None
            if self.seccomp is None or not self.needs_child_filter()
            else self.seccomp.program,
            "zygote_seccomp": None if self.seccomp is None else self.seccomp_zygote.program,
            "pid_slots": [] if self.seccomp is None else list(self.seccomp.pid_slots),
            "nofile": cfg.max_open_files,
            "nproc": cfg.max_threads if cfg.allow_threads else 0,
            "cpu_grace": cfg.cpu_grace_s,
            "ipc_per_child": self.ipc_per_child,
            "in_userns": self.in_user_namespace,
        }


def _enter_namespaces(cfg: IsolationConfig, iso: WorkerIsolation) -> int:
    """Unshare net/mount/IPC namespaces (via a user namespace when not root). Returns the flags obtained."""
    wanted = (
        (CLONE_NEWNET if cfg.network_namespace else 0)
        | (CLONE_NEWNS if cfg.filesystem_jail else 0)
        | (CLONE_NEWIPC if cfg.ipc_namespace else 0)
    )
    if not wanted and not cfg.pid_namespace:
        return 0
    if os.geteuid() != 0:
        uid, gid = os.getuid(), os.getgid()
        try:
            unshare(CLONE_NEWUSER)
            with open("/proc/self/setgroups", "w") as fh:
                fh.write("deny")
            with open("/proc/self/uid_map", "w") as fh:
                fh.write(f"0 {uid} 1")  # root inside: the zygote keeps its capabilities across exec
            with open("/proc/self/gid_map", "w") as fh:
                fh.write(f"0 {gid} 1")
            iso.in_user_namespace = True
        except OSError as exc:
            iso.layers["namespaces"] = f"off: user namespace unavailable ({exc.strerror or exc})"
            return 0
    try:
        if wanted:
            unshare(wanted)
        return wanted
    except OSError as exc:
        iso.layers["namespaces"] = f"off: {exc}"
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
    for sub in ("tmp", JAIL_WORKDIR.lstrip("/")):
        os.makedirs(f"{jail_dir}/{sub}", mode=0o755, exist_ok=True)
    iso.jail = jail_dir
    iso.work_base = jail_dir + JAIL_WORKDIR


def prepare_worker(cfg: IsolationConfig, uids: list[int] | None, scratch_dir: str) -> WorkerIsolation:
    """Set up the worker-wide layers. `scratch_dir` is an empty directory the farm created for us.

    Afterwards the worker's next child (its zygote) starts a new pid namespace when that layer is on."""
    iso = WorkerIsolation(config=cfg)
    os.environ.clear()
    os.environ.update(CLEAN_ENV)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    got = _enter_namespaces(cfg, iso)
    off = iso.layers.get("namespaces", "off: disabled")
    iso.layers["netns"] = "on" if got & CLONE_NEWNET else off
    iso.layers["ipcns"] = "on" if got & CLONE_NEWIPC else off
    iso.work_base = scratch_dir
    if got & CLONE_NEWNS:
        try:
            _build_jail(cfg, iso, scratch_dir)
            iso.layers["jail"] = "on"
        except OSError as exc:
            iso.jail, iso.work_base = None, scratch_dir
            iso.layers["jail"] = f"off: {exc}"
    else:
        iso.layers["jail"] = off if cfg.filesystem_jail else "off: disabled"
    if cfg.pid_namespace and (os.geteuid() == 0 or iso.in_user_namespace):
        try:
            unshare(CLONE_NEWPID)
            iso.pid_namespace = True
            iso.layers["pidns"] = "on"
        except OSError as exc:
            iso.layers["pidns"] = f"off: {exc}"
    else:
        iso.layers["pidns"] = "off: disabled" if not cfg.pid_namespace else off
    iso.layers.pop("namespaces", None)
    if cfg.drop_privileges and uids and os.geteuid() == 0 and not iso.in_user_namespace:
        iso.uids = list(uids)
    else:
        iso.layers["setuid"] = "off: " + ("disabled" if not cfg.drop_privileges else "not root")
    table = syscall_table()
    if cfg.seccomp and table is not None:
        iso.seccomp = CompiledFilter(table, cfg.allow_threads, "child")
        iso.seccomp_zygote = CompiledFilter(table, cfg.allow_threads, "zygote")
    else:
        iso.layers["seccomp"] = "off: " + (
            "disabled" if not cfg.seccomp else "no syscall table for this architecture"
        )
    # Without the filter a job could create files in its working directory, or SysV IPC objects:
    # give each job its own directory and its own IPC namespace (dear: ~0.5 ms per child).
    iso.per_job_workdir = iso.seccomp is None
    iso.ipc_per_child = iso.seccomp is None and bool(got & CLONE_NEWIPC)
    return iso

"""A seccomp-bpf filter, compiled by the worker, that every sandbox child installs on itself.

It is the one isolation layer that also works without root (with no_new_privs), so it carries the
"no network, no new processes, no file writes" guarantees on a laptop too. What it refuses (EPERM
unless noted): socket() (socketpair stays, asyncio needs it), fork/vfork/execve and clone without
CLONE_THREAD (clone3 answers ENOSYS so libc falls back to clone, whose flags we can see), opening a
file for writing or creating it, every call that creates/removes/renames/links/chmods/chowns/
truncates a path, and the system-administration calls (mount, ptrace, namespaces, modules, bpf,
keyrings, io_uring, ...), and every SysV IPC (shared memory, semaphores, message queues) and
POSIX message-queue call. Syscall numbers are per architecture; other architectures get no filter.
"""

from __future__ import annotations

import platform
import struct

# struct seccomp_data offsets: nr (u32) at 0, arch (u32) at 4, args[i] (u64) at 16 + 8*i.
_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16
# BPF opcodes (linux/bpf_common.h).
_LD_W_ABS = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06
# seccomp return actions.
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_EPERM, _ENOSYS = 1, 38
# open flags that mean "may modify a file": O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND.
_WRITE_OPEN_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000
_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000
# prctl option the filter protects (the parent-death signal).
_PR_SET_PDEATHSIG = 1

_DENIED_NAMES = (
    "socket",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "creat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "ftruncate",
    "mknod",
    "mknodat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "memfd_create",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "reboot",
    "swapon",
    "swapoff",
    "sethostname",
    "setdomainname",
    "acct",
    "quotactl",
    "name_to_handle_at",
    "open_by_handle_at",
    "fanotify_init",
    "personality",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "syslog",
    "pidfd_getfd",
    "pidfd_send_signal",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semctl",
    "semtimedop",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
)
# Signal-sending calls whose first argument is a pid/tgid: only the caller itself (or, for kill and
# rt_sigqueueinfo, its own process group, pid 0) may be targeted. Without this, a child running under
# the worker's own uid (no root) could kill the worker or the trainer.
_SIGNAL_CALLS = ("kill", "rt_sigqueueinfo", "tgkill", "rt_tgsigqueueinfo", "tkill")
# Placeholder for the child's pid, patched into the instructions at install time.
_OWN_PID_PLACEHOLDER = 0xFFFFFFFE

# Per-architecture tables: audit arch, syscall numbers (from the kernel's unistd headers).
_X86_64 = {
    "arch": 0xC000003E,
    "kill": 62,
    "tkill": 200,
    "tgkill": 234,
    "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297,
    "pidfd_send_signal": 424,
    "prctl": 157,
    "open": 2,
    "openat": 257,
    "openat2": 437,
    "clone": 56,
    "clone3": 435,
    "socket": 41,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "execveat": 322,
    "creat": 85,
    "mkdir": 83,
    "mkdirat": 258,
    "rmdir": 84,
    "unlink": 87,
    "unlinkat": 263,
    "rename": 82,
    "renameat": 264,
    "renameat2": 316,
    "link": 86,
    "linkat": 265,
    "symlink": 88,
    "symlinkat": 266,
    "chmod": 90,
    "fchmod": 91,
    "fchmodat": 268,
    "fchmodat2": 452,
    "chown": 92,
    "fchown": 93,
    "lchown": 94,
    "fchownat": 260,
    "truncate": 76,
    "ftruncate": 77,
    "mknod": 133,
    "mknodat": 259,
    "utime": 132,
    "utimes": 235,
    "utimensat": 280,
    "futimesat": 261,
    "setxattr": 188,
    "lsetxattr": 189,
    "fsetxattr": 190,
    "removexattr": 197,
    "lremovexattr": 198,
    "fremovexattr": 199,
    "memfd_create": 319,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "unshare": 272,
    "setns": 308,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "bpf": 321,
    "perf_event_open": 298,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "sethostname": 170,
    "setdomainname": 171,
    "acct": 163,
    "quotactl": 179,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "fanotify_init": 300,
    "personality": 135,
    "mount_setattr": 442,
    "move_mount": 429,
    "open_tree": 428,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "syslog": 103,
    "pidfd_getfd": 438,
    "shmget": 29,
    "shmat": 30,
    "shmctl": 31,
    "shmdt": 67,
    "semget": 64,
    "semop": 65,
    "semctl": 66,
    "semtimedop": 220,
    "msgget": 68,
    "msgsnd": 69,
    "msgrcv": 70,
    "msgctl": 71,
    "mq_open": 240,
    "mq_unlink": 241,
    "mq_timedsend": 242,
    "mq_timedreceive": 243,
    "mq_notify": 244,
    "mq_getsetattr": 245,
}
_AARCH64 = {  # asm-generic numbering; no legacy open/fork/mkdir/... calls exist there
    "arch": 0xC00000B7,
    "kill": 129,
    "tkill": 130,
    "tgkill": 131,
    "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240,
    "pidfd_send_signal": 424,
    "prctl": 167,
    "openat": 56,
    "openat2": 437,
    "clone": 220,
    "clone3": 435,
    "socket": 198,
    "execve": 221,
    "execveat": 281,
    "mkdirat": 34,
    "unlinkat": 35,
    "renameat": 38,
    "renameat2": 276,
    "linkat": 37,
    "symlinkat": 36,
    "fchmod": 52,
    "fchmodat": 53,
    "fchmodat2": 452,
    "fchown": 55,
    "fchownat": 54,
    "truncate": 45,
    "ftruncate": 46,
    "mknodat": 33,
    "utimensat": 88,
    "setxattr": 5,
    "lsetxattr": 6,
    "fsetxattr": 7,
    "removexattr": 14,
    "lremovexattr": 15,
    "fremovexattr": 16,
    "memfd_create": 279,
    "ptrace": 117,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "mount": 40,
    "umount2": 39,
    "pivot_root": 41,
    "chroot": 51,
    "unshare": 97,
    "setns": 268,
    "kexec_load": 104,
    "kexec_file_load": 294,
    "init_module": 105,
    "finit_module": 273,
    "delete_module": 106,
    "bpf": 280,
    "perf_event_open": 241,
    "keyctl": 219,
    "add_key": 217,
    "request_key": 218,
    "userfaultfd": 282,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "reboot": 142,
    "swapon": 224,
    "swapoff": 225,
    "sethostname": 161,
    "setdomainname": 162,
    "acct": 89,
    "quotactl": 60,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "fanotify_init": 262,
    "personality": 92,
    "mount_setattr": 442,
    "move_mount": 429,
    "open_tree": 428,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "syslog": 116,
    "pidfd_getfd": 438,
    "shmget": 194,
    "shmat": 196,
    "shmctl": 195,
    "shmdt": 197,
    "semget": 190,
    "semop": 193,
    "semctl": 191,
    "semtimedop": 192,
    "msgget": 186,
    "msgsnd": 189,
    "msgrcv": 188,
    "msgctl": 187,
    "mq_open": 180,
    "mq_unlink": 181,
    "mq_timedsend": 182,
    "mq_timedreceive": 183,
    "mq_notify": 184,
    "mq_getsetattr": 185,
}
_TABLES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def syscall_table(machine: str | None = None) -> dict[str, int] | None:
    """Syscall numbers for this machine's architecture, or None if we have no table for it."""
    return _TABLES.get((machine or platform.machine()).lower())


# Refused only in the children: the zygote needs them to fork and lock down each child.
_CHILD_ONLY = ("fork", "vfork", "chroot")
PARTS = ("all", "zygote", "child")


def build_program(
    table: dict[str, int], allow_threads: bool, part: str = "all"
) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions. Linear: every test jumps over one RET.

    `part` splits it in two stacked filters with the same effect on a child: "zygote" (installed
    once by the zygote, inherited by every child: everything but what forking and locking down a
    child needs) and "child" (the short rest, installed by each child: no processes, no exec, no
    signals to others, keep the parent-death signal). The kernel compiles a filter when it is
    installed, so a short per-child part makes each child cheaper."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    deny = _RET_ERRNO | _EPERM
    names = (
        _DENIED_NAMES
        if part == "all"
        else tuple(n for n in _DENIED_NAMES if (n in _CHILD_ONLY) == (part == "child"))
    )
    prog: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, table["arch"]),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),  # a foreign ABI (e.g. 32-bit int 0x80) is not allowed at all
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if table is _X86_64:
        prog += [(_JGE_K, 0, 1, _X32_SYSCALL_BIT), (_RET_K, 0, 0, deny)]
    for name in names:
        if name in table:
            prog += [(_JEQ_K, 0, 1, table[name]), (_RET_K, 0, 0, deny)]
    if "clone3" in table:  # flags live in a struct we cannot read: make libc fall back to clone()
        prog += [(_JEQ_K, 0, 1, table["clone3"]), (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS)]
    if "openat2" in table and part != "child":
        prog += [(_JEQ_K, 0, 1, table["openat2"]), (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS)]
    # Argument checks. A block that matches always returns, so the accumulator still holds nr for
    # the next block when it does not match.
    arg_checks = []
    if part != "child":
        arg_checks.append(("openat", 2, _WRITE_OPEN_FLAGS, deny, _RET_ALLOW))
        if "open" in table:
            arg_checks.append(("open", 1, _WRITE_OPEN_FLAGS, deny, _RET_ALLOW))
    if part != "zygote":
        clone_thread = _RET_ALLOW if allow_threads else deny
        arg_checks.append(("clone", 0, _CLONE_THREAD, clone_thread, deny))
    for name, arg, value, if_equal in (("prctl", 0, _PR_SET_PDEATHSIG, deny),) if part != "zygote" else ():
        # The child must keep its parent-death signal, or it could outlive a killed worker.
        prog += [
            (_JEQ_K, 0, 4, table[name]),
            (_LD_W_ABS, 0, 0, _OFF_ARGS + 8 * arg),
            (_JEQ_K, 0, 1, value),
            (_RET_K, 0, 0, if_equal),
            (_RET_K, 0, 0, _RET_ALLOW),
        ]
    for name in _SIGNAL_CALLS if part != "zygote" else ():
        prog += [
            (_JEQ_K, 0, 5, table[name]),
            (_LD_W_ABS, 0, 0, _OFF_ARGS),
            (_JEQ_K, 2, 0, 0),
            (_JEQ_K, 1, 0, _OWN_PID_PLACEHOLDER),
            (_RET_K, 0, 0, deny),
            (_RET_K, 0, 0, _RET_ALLOW),
        ]
    for name, arg, mask, if_set, if_clear in arg_checks:
        prog += [
            (_JEQ_K, 0, 4, table[name]),
            (_LD_W_ABS, 0, 0, _OFF_ARGS + 8 * arg),  # low 32 bits (little-endian)
            (_JSET_K, 0, 1, mask),
            (_RET_K, 0, 0, if_set),
            (_RET_K, 0, 0, if_clear),
        ]
    prog.append((_RET_K, 0, 0, _RET_ALLOW))
    return prog


class CompiledFilter:
    """A filter ready to install: built once by the worker, installed by each sandboxed child
    (lockdown.install_seccomp patches the child's own pid into `pid_slots`)."""

    def __init__(self, table: dict[str, int], allow_threads: bool, part: str = "all"):
        prog = build_program(table, allow_threads, part)
        self.program = pack_program(prog)
        self.pid_slots = [
            i for i, ins in enumerate(prog) if ins[0] == _JEQ_K and ins[3] == _OWN_PID_PLACEHOLDER
        ]
        self.length = len(prog)

    def install(self) -> None:
        """Apply no_new_privs and the filter to the calling process (irreversible)."""
        from .lockdown import install_seccomp

        install_seccomp(self.program, self.pid_slots)


def pack_program(prog: list[tuple[int, int, int, int]]) -> bytes:
    """Raw sock_filter bytes (used by tests to check the encoding)."""
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)

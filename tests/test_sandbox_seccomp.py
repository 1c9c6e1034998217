"""The seccomp filter, judged by the kernel itself: a throwaway process installs it and tries things."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from azr_jax.sandbox import seccomp

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import ctypes, json, os, socket, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
from azr_jax.sandbox.seccomp import CompiledFilter, syscall_table
allow_threads = sys.argv[2] == "1"
scratch = tempfile.mkdtemp()
existing = os.path.join(scratch, "existing.txt")
with open(existing, "w") as fh:
    fh.write("data")
if sys.argv[3] == "split":  # as a sandboxed child has it: the zygote's part, then its own
    CompiledFilter(syscall_table(), allow_threads, "zygote").install()
    CompiledFilter(syscall_table(), allow_threads, "child").install()
else:
    CompiledFilter(syscall_table(), allow_threads).install()
libc = ctypes.CDLL(None, use_errno=True)

def libc_call(name, *args):
    def call():
        if getattr(libc, name)(*args) < 0:
            raise OSError(ctypes.get_errno(), name)
    return call

def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return os.strerror(exc.errno)
    except RuntimeError as exc:
        return "RuntimeError: " + str(exc)

def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()

out = {
    "read_existing": attempt(lambda: open(existing).read()),
    "write_existing": attempt(lambda: open(existing, "a")),
    "create": attempt(lambda: open(os.path.join(scratch, "new"), "w")),
    "mkdir": attempt(lambda: os.mkdir(os.path.join(scratch, "d"))),
    "unlink": attempt(lambda: os.unlink(existing)),
    "rename": attempt(lambda: os.rename(existing, existing + ".x")),
    "chmod": attempt(lambda: os.chmod(existing, 0o777)),
    "socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
    "unix_socket": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
    "socketpair": attempt(lambda: [s.close() for s in socket.socketpair()]),
    "fork": attempt(fork),
    "exec": attempt(lambda: os.execv("/bin/true", ["true"])),
    "thread": attempt(thread),
    "signal_parent": attempt(lambda: os.kill(os.getppid(), 0)),
    "signal_all": attempt(lambda: os.kill(-1, 0)),
    "signal_self": attempt(lambda: os.kill(os.getpid(), 0)),
    "signal_own_group": attempt(lambda: os.kill(0, 0)),
    "pipe": attempt(lambda: os.pipe()),
    "shmget": attempt(libc_call("shmget", 0, 4096, 0o1000 | 0o600)),
    "semget": attempt(libc_call("semget", 0, 1, 0o1000 | 0o600)),
    "msgget": attempt(libc_call("msgget", 0, 0o1000 | 0o600)),
    "mq_open": attempt(libc_call("mq_open", b"/azr-seccomp-test", 0o100 | 0o2, 0o600, None)),
}
print(json.dumps(out))
"""

supported = sys.platform == "linux" and seccomp.syscall_table() is not None
pytestmark = pytest.mark.skipif(
    not supported, reason=f"no seccomp table for {platform.machine()} / {sys.platform}"
)


def run_probe(allow_threads: bool, mode: str = "all") -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO), "1" if allow_threads else "0", mode],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["all", "split"])
def test_kernel_enforces_the_filter(mode):
    out = run_probe(allow_threads=False, mode=mode)
    denied = os.strerror(1)  # EPERM
    assert out["read_existing"] == "allowed" and out["pipe"] == "allowed" and out["socketpair"] == "allowed"
    for key in (
        "write_existing",
        "create",
        "mkdir",
        "unlink",
        "rename",
        "chmod",
        "socket",
        "unix_socket",
        "fork",
        "exec",
        "shmget",
        "semget",
        "msgget",
        "mq_open",
    ):
        assert out[key] == denied, (key, out[key])
    assert out["thread"] == "RuntimeError: can't start new thread"
    assert out["signal_parent"] == denied and out["signal_all"] == denied
    assert out["signal_self"] == "allowed" and out["signal_own_group"] == "allowed"


@pytest.mark.parametrize("mode", ["all", "split"])
def test_threads_can_be_allowed(mode):
    out = run_probe(allow_threads=True, mode=mode)
    assert out["thread"] == "allowed"
    assert out["fork"] == os.strerror(1)  # processes stay forbidden


def test_program_shape():
    table = seccomp.syscall_table()
    prog = seccomp.build_program(table, allow_threads=False)
    assert len(prog) < 4096  # kernel limit on filter length
    assert prog[0] == (0x20, 0, 0, 4)  # load the architecture first
    assert prog[1][3] == table["arch"]
    assert prog[-1] == (0x06, 0, 0, 0x7FFF0000)  # default: allow
    for index, (code, jt, jf, _) in enumerate(prog):
        if code & 0x07 == 0x05:  # a jump: both targets inside the program
            assert index + 1 + max(jt, jf) < len(prog)
    assert len(seccomp.pack_program(prog)) == 8 * len(prog)  # struct sock_filter is 8 bytes


def test_split_parts_refuse_together_what_the_whole_filter_refuses():
    table = seccomp.syscall_table()
    zygote = seccomp.build_program(table, False, "zygote")
    child = seccomp.build_program(table, False, "child")
    refused = lambda prog: {
        ins[3]
        for ins, nxt in zip(prog, prog[1:])
        if ins[0] == 0x15 and nxt[0] == 0x06 and nxt[3] != 0x7FFF0000
    }  # noqa: E731
    whole = refused(seccomp.build_program(table, False))
    assert refused(zygote) | refused(child) == whole
    assert table["fork"] not in refused(zygote) and table["fork"] in refused(child)  # the zygote must fork
    assert len(child) < len(zygote) / 3  # the part compiled per child is short


def test_unknown_architecture_has_no_table():
    assert seccomp.syscall_table("sparc64") is None
    assert (
        seccomp.syscall_table("x86_64")["socket"] == 41 and seccomp.syscall_table("aarch64")["socket"] == 198
    )

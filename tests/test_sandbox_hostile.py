"""Hostile jobs: every attack asserts its exact status (or a False verdict), then that the farm still
answers an ordinary job; the last test checks that nothing was left on the host (SysV IPC objects,
POSIX message queues, files, processes).

Expected outcomes are those of this machine's layers (root: uid drop, network, IPC, pid and mount
namespaces, filesystem jail, seccomp, rlimits). `test_layers_this_suite_relies_on` fails loudly if
any of them is missing, so a passing suite really means the layers held.
"""

import dataclasses
import os
import random
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from azr_jax.sandbox import (
    FarmConfig,
    JobOptions,
    SandboxFarm,
    abduction_job,
    check_induction,
    deduction_job,
    induction_job,
    output_job,
    program_job,
    submit_outputs,
)

SECRET_NAME, SECRET_VALUE = "AZR_SANDBOX_TEST_SECRET", uuid.uuid4().hex
FAST = JobOptions(timeout_s=1.0, semantics="strict")
OFFICIAL = JobOptions(timeout_s=1.0)
LOOSE = dataclasses.replace(
    FAST, static_checks=False, single_function=False
)  # no AST gate: runtime layers only
ONCE = dataclasses.replace(FAST, determinism=False)
ROOMY = dataclasses.replace(
    FAST, timeout_s=10.0
)  # legitimate work that takes ~1 s on a loaded 2-core machine
ANSWER = JobOptions(timeout_s=2.0, single_function=False)
EPERM = "error: PermissionError: [Errno 1] Operation not permitted"
# No new process: the per-child uid's RLIMIT_NPROC (with the per-child seccomp part, when a machine
# needs it, EPERM). Either way the call fails.
NO_PROCESS = ("error: BlockingIOError: [Errno 11] Resource temporarily unavailable", EPERM)
NONDET = "error: NondeterminismError: two calls with the same input returned different values"
UNREADABLE = "error: SandboxError: unreadable result from the child"
UNAUTHENTICATED = "error: SandboxError: unauthenticated result from the child"


def host_state() -> dict:
    """What a job could leave behind on the host: IPC objects, message queues, temporary files."""
    state = {}
    for kind in ("shm", "sem", "msg"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        state[kind] = sorted(line.split()[1] for line in lines)
    state["mqueue"] = sorted(os.listdir("/dev/mqueue")) if os.path.isdir("/dev/mqueue") else []
    # Other programs share /tmp: only names our attacks use (the farm's own scratch directories are
    # checked by test_sandbox_farm).
    state["tmp"] = sorted(
        p for p in os.listdir(tempfile.gettempdir()) if p.startswith("azr-hostile-") and "target" not in p
    )
    # /dev/shm holds other processes' POSIX semaphores (multiprocessing's sem.mp-*, e.g. a parallel
    # test worker's): only the names our attacks use.
    shm = os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []
    state["dev_shm"] = sorted(p for p in shm if p.startswith("azr-hostile"))
    return state


@pytest.fixture(scope="module")
def before():
    return host_state()


@pytest.fixture(scope="module")
def farm(before):
    os.environ[SECRET_NAME] = SECRET_VALUE  # the trainer's environment holds a secret
    try:
        with SandboxFarm(FarmConfig(num_workers=2)) as f:
            yield f
    finally:
        os.environ.pop(SECRET_NAME, None)


@pytest.fixture(scope="module")
def outside_file():
    """A file outside any sandbox that hostile jobs try to delete."""
    fd, path = tempfile.mkstemp(prefix="azr-hostile-target-")
    os.write(fd, b"keep me")
    os.close(fd)
    yield path
    os.unlink(path)


def assert_still_answers(farm) -> None:
    x = random.randrange(10**6)
    (result,) = farm.run([output_job("def f(x):\n    return [x, x * 3]", str(x))])
    assert result.status == "ok" and result.value == repr([x, x * 3])


def run_case(farm, program: str, argument: str = "1", options: JobOptions = FAST):
    (result,) = farm.run([output_job(program, argument, (), options)])
    return result


def test_layers_this_suite_relies_on(farm):
    wanted = ("setuid", "netns", "ipcns", "pidns", "jail", "seccomp", "rlimits", "pdeathsig")
    assert {k: farm.isolation[k] for k in wanted} == dict.fromkeys(wanted, "on"), farm.isolation_report


def _libc(call: str) -> str:
    return f"import ctypes\ndef f(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n    return [{call}, ctypes.get_errno()]"


# (id, program, argument, options, exact status); "~" prefix: status starts with the rest.
CASES = [
    ("infinite_loop", "def f(x):\n    while True:\n        pass", "1", FAST, "timeout"),
    (
        "loop_inside_except",
        "def f(x):\n    try:\n        1 / 0\n    except BaseException:\n        while True:\n            pass",
        "1",
        FAST,
        "timeout",
    ),
    ("os_fork", "import os\ndef f(x):\n    return os.fork()", "1", FAST, NO_PROCESS),
    ("fork_bomb_loop", "import os\ndef f(x):\n    while True:\n        os.fork()", "1", FAST, NO_PROCESS),
    (
        "os_posix_spawn",
        "import os\ndef f(x):\n    return os.posix_spawn('/bin/true', ['true'], {})",
        "1",
        FAST,
        NO_PROCESS,
    ),
    ("execv", "import os\ndef f(x):\n    os.execv('/bin/sh', ['sh', '-c', 'true'])", "1", FAST, EPERM),
    (
        "multiprocessing_import",
        "import multiprocessing\ndef f(x):\n    return 1",
        "1",
        FAST,
        "rejected: banned module 'multiprocessing' (imported as 'multiprocessing')",
    ),
    (
        "multiprocessing_runtime",
        "def f(x):\n    m = __import__('multi' + 'processing')\n    p = m.Process(target=print)\n    p.start()\n    return 1",
        "1",
        FAST,
        NO_PROCESS,
    ),
    ("memory_bomb_alloc", "def f(x):\n    return len(bytearray(8 * 1024 ** 3))", "1", FAST, "memory"),
    (
        "memory_bomb_growth",
        "def f(x):\n    a = []\n    while True:\n        a.append(' ' * 10 ** 8)",
        "1",
        dataclasses.replace(FAST, timeout_s=5.0),
        "memory",
    ),
    (
        "mmap_huge",
        "import mmap\ndef f(x):\n    return len(mmap.mmap(-1, 8 * 1024 ** 3))",
        "1",
        FAST,
        "error: OSError: [Errno 12] Cannot allocate memory",
    ),
    (
        "deep_recursion",
        "def f(x):\n    return f(x + 1)",
        "1",
        FAST,
        "error: RecursionError: maximum recursion depth exceeded",
    ),
    ("segfault", "import ctypes\ndef f(x):\n    return ctypes.string_at(0)", "1", FAST, "killed"),
    ("abort", "import os\ndef f(x):\n    os.abort()", "1", FAST, "killed"),
    ("huge_print", "def f(x):\n    while True:\n        print('x' * 1000)", "1", FAST, "output_too_large"),
    ("huge_return_strict", "def f(x):\n    return 'x' * 10 ** 7", "1", FAST, "output_too_large"),
    (
        "huge_stdout_fd",
        "import os\ndef f(x):\n    os.write(1, b'x' * 10 ** 7)\n    return 1",
        "1",
        FAST,
        "ok",
    ),  # fd 1 is /dev/null
    (
        "flood_result_pipe",
        "import os\ndef f(x):\n    while True:\n        os.write(3, b'x' * 65536)",
        "1",
        FAST,
        "output_too_large",
    ),
    (
        "write_inside_workdir",
        "def f(x):\n    open('notes.txt', 'w').write('x')\n    return 1",
        "1",
        FAST,
        EPERM + ": 'notes.txt'",
    ),
    (
        "mkdir_inside_workdir",
        "import os\ndef f(x):\n    os.mkdir('sub')\n    return 1",
        "1",
        FAST,
        EPERM + ": 'sub'",
    ),
    (
        "remove_workdir",
        "import os\ndef f(x):\n    os.rmdir(os.getcwd())\n    return 1",
        "1",
        FAST,
        "~" + EPERM + ": '/work",
    ),
    (
        "write_dev_null",
        "def f(x):\n    open('/dev/null', 'w').write('x')\n    return 1",
        "1",
        FAST,
        EPERM + ": '/dev/null'",
    ),
    ("memfd", "import os\ndef f(x):\n    return os.memfd_create('x')", "1", FAST, EPERM),
    (
        "read_etc_passwd",
        "def f(x):\n    return open('/etc/passwd').read()",
        "1",
        FAST,
        "error: FileNotFoundError: [Errno 2] No such file or directory: '/etc/passwd'",
    ),
    (
        "read_proc_environ",
        "def f(x):\n    return open('/proc/1/environ').read()",
        "1",
        FAST,
        "error: FileNotFoundError: [Errno 2] No such file or directory: '/proc/1/environ'",
    ),
    (
        "read_proc_self_mem",
        "def f(x):\n    return open('/proc/self/mem', 'rb').read(1)",
        "1",
        FAST,
        "error: FileNotFoundError: [Errno 2] No such file or directory: '/proc/self/mem'",
    ),
    (
        "list_root",
        "import os\ndef f(x):\n    return sorted(set(os.listdir('/')) - {'usr', 'lib', 'lib64', 'bin', 'sbin', 'dev', 'tmp', 'work', 'root', 'opt', 'home'})",
        "1",
        FAST,
        "ok",
    ),
    (
        "dunder_import_literal",
        "def f(x):\n    return __import__('subprocess').run(['true']).returncode",
        "1",
        FAST,
        "rejected: banned module 'subprocess' (imported as 'subprocess')",
    ),
    (
        "importlib_literal",
        "import importlib\ndef f(x):\n    return importlib.import_module('subprocess').run(['true']).returncode",
        "1",
        FAST,
        "rejected: banned module 'subprocess' (imported as 'subprocess')",
    ),
    (
        "getattr_builtins_trick",
        "import builtins\ndef f(x):\n    m = getattr(builtins, '__imp' + 'ort__')('sub' + 'process')\n    return m.run(['true']).returncode",
        "1",
        FAST,
        NO_PROCESS,
    ),
    ("sys_exit_strict", "import sys\ndef f(x):\n    sys.exit(3)", "1", FAST, "error: SystemExit: 3"),
    (
        "sys_exit_official",
        "import sys\ndef f(x):\n    sys.exit(3)",
        "1",
        OFFICIAL,
        "ok",
    ),  # valid with output '' officially
    ("os_exit", "import os\ndef f(x):\n    os._exit(0)", "1", FAST, "killed"),
    ("kill_worker", "import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n    return 1", "1", FAST, EPERM),
    # kill(-1) reports success when other processes exist, even if it may signal none of them
    ("kill_everything", "import os\ndef f(x):\n    os.kill(-1, 9)\n    return 1", "1", FAST, ("ok", EPERM)),
    ("kill_zygote_init", "import os\ndef f(x):\n    os.kill(1, 9)\n    return 1", "1", FAST, EPERM),
    (
        "kill_neighbours",
        "import os\ndef f(x):\n    hit = []\n    for pid in range(1, 64):\n        try:\n            os.kill(pid, 9)\n            hit.append(pid)\n        except OSError:\n            pass\n    return [p for p in hit if p != os.getpid()]",
        "1",
        ONCE,
        "ok",
    ),
    (
        "pidfd_signal",
        "import os, signal\ndef f(x):\n    return signal.pidfd_send_signal(os.pidfd_open(1), 9)",
        "1",
        FAST,
        EPERM,
    ),
    ("setuid_root", "import os\ndef f(x):\n    os.setuid(0)\n    return 1", "1", FAST, EPERM),
    (
        "raise_rlimit",
        "import resource\ndef f(x):\n    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n    return 1",
        "1",
        FAST,
        "error: ValueError: not allowed to raise maximum limit",
    ),
    (
        "alarm_tampering",
        "import signal\ndef f(x):\n    signal.alarm(1)\n    while True:\n        pass",
        "1",
        dataclasses.replace(FAST, timeout_s=3.0),
        "killed",
    ),
    (
        "ignore_all_signals",
        "import signal\ndef f(x):\n    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):\n        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass",
        "1",
        FAST,
        "timeout",
    ),
    (
        "clear_pdeathsig",
        _libc("libc.prctl(1, 0, 0, 0, 0)"),
        "1",
        FAST,
        "ok",
    ),  # harmless: the pid namespace dies with the zygote
    (
        "thread_import",
        "import threading\ndef f(x):\n    return 1",
        "1",
        FAST,
        "rejected: banned module 'threading' (imported as 'threading')",
    ),
    (
        "thread_left_running",
        "def f(x):\n    t = __import__('thread' + 'ing').Thread(target=lambda: [0 for _ in iter(int, 1)])\n    t.start()\n    return 1",
        "1",
        FAST,
        "error: RuntimeError: can't start new thread",
    ),
    (
        "unpicklable_value",
        "def f(x):\n    return (i for i in range(x))",
        "3",
        dataclasses.replace(ONCE, require_picklable=True),
        "error: TypeError: cannot pickle 'generator' object",
    ),
    (
        "unreprable_value",
        "class A:\n    def __repr__(self):\n        raise ValueError('no repr for you')\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return A()",
        "1",
        dataclasses.replace(FAST, single_function=False),
        "error: ValueError: no repr for you",
    ),
    ("nan_output", "def f(x):\n    return float('nan')", "1", FAST, NONDET),
    ("million_digit_int", "def f(x):\n    return 10 ** 1000000", "1", ROOMY, "output_too_large"),
    (
        "million_digit_int_unlocked",
        "import sys\ndef f(x):\n    sys.set_int_max_str_digits(0)\n    return 10 ** 1000000",
        "1",
        ROOMY,
        "output_too_large",
    ),
    ("nondeterminism_id", "def f(x):\n    return id(x)", "[1, 2]", FAST, NONDET),
    (
        "nondeterminism_counter",
        "import itertools\nc = itertools.count()\ndef f(x):\n    return next(c)",
        "1",
        FAST,
        NONDET,
    ),
    ("input_call", "def f(x):\n    return input()", "1", FAST, "rejected: code contains 'input('"),
    (
        "input_call_runtime",
        "def f(x):\n    return input()",
        "1",
        LOOSE,
        "error: EOFError: EOF when reading a line",
    ),
    (
        "forged_result",
        'import os\ndef f(x):\n    os.write(3, b\'{"status": "ok", "value": "42"}\')\n    os._exit(0)',
        "1",
        FAST,
        UNAUTHENTICATED,
    ),
    (
        "deep_json_frame",
        "import os\ndef f(x):\n    os.write(3, b'[' * 100000)\n    os._exit(0)",
        "1",
        FAST,
        UNREADABLE,
    ),
    (
        "wrong_type_frame",
        'import os\ndef f(x):\n    os.write(3, b\'{"status": "ok", "pair_verdicts": 5}\')\n    os._exit(0)',
        "1",
        FAST,
        UNAUTHENTICATED,
    ),
    (
        "garbage_then_normal",
        "import os\ndef f(x):\n    os.write(3, b'\\xff\\x00garbage')\n    return 1",
        "1",
        FAST,
        UNREADABLE,
    ),
    (
        "partial_frame_then_hang",
        "import os\ndef f(x):\n    os.write(3, b'{\"status\": ')\n    while True:\n        pass",
        "1",
        FAST,
        "timeout",
    ),
    (
        "close_result_pipe_and_hang",
        "import os\ndef f(x):\n    os.close(3)\n    while True:\n        pass",
        "1",
        FAST,
        "killed",
    ),
    ("ptrace", _libc("libc.ptrace(16, 1, 0, 0)"), "1", FAST, "ok"),
    ("process_vm_readv", _libc("libc.process_vm_readv(1, 0, 0, 0, 0, 0)"), "1", FAST, "ok"),
    (
        "unshare",
        "import ctypes\ndef f(x):\n    libc = ctypes.CDLL(None, use_errno=True)\n    return [libc.unshare(0x10000000), ctypes.get_errno()]",
        "1",
        FAST,
        "ok",
    ),
    ("mount", _libc("libc.mount(b'none', b'/work', b'tmpfs', 0, None)"), "1", FAST, "ok"),
    ("bpf", _libc("libc.syscall(321, 0, 0, 0)"), "1", FAST, "ok"),
    ("io_uring", _libc("libc.syscall(425, 1, 0)"), "1", FAST, "ok"),
    ("userfaultfd", _libc("libc.syscall(323, 0)"), "1", FAST, "ok"),
    ("keyctl", _libc("libc.syscall(250, 0, 0, 0, 0, 0)"), "1", FAST, "ok"),
    ("sysv_shm", _libc("libc.shmget(0, 1 << 20, 0o1600)"), "1", FAST, "ok"),
    ("sysv_sem", _libc("libc.semget(0, 1, 0o1600)"), "1", FAST, "ok"),
    ("sysv_msg", _libc("libc.msgget(0, 0o1600)"), "1", FAST, "ok"),
    ("posix_mqueue", _libc("libc.mq_open(b'/azr-hostile', 0o102, 0o600, None)"), "1", FAST, "ok"),
    ("posix_shm_file", "def f(x):\n    return open('/dev/shm/azr-hostile', 'w')", "1", FAST, "~" + EPERM),
]
# Cases whose "ok" value must show the call was refused: [-1, EPERM].
REFUSED_VALUE = {
    "ptrace",
    "process_vm_readv",
    "unshare",
    "mount",
    "bpf",
    "io_uring",
    "userfaultfd",
    "keyctl",
    "sysv_shm",
    "sysv_sem",
    "sysv_msg",
    "posix_mqueue",
}


@pytest.mark.parametrize("name, program, argument, options, expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_case(farm, name, program, argument, options, expected):
    result = run_case(farm, program, argument, options)
    if isinstance(expected, tuple):
        assert result.status.split(":")[:3] in [e.split(":")[:3] for e in expected], result
    elif expected.startswith("~"):
        assert result.status.startswith(expected[1:]), result
    else:
        assert result.status == expected, result
    if name in REFUSED_VALUE:
        assert result.value == "[-1, 1]", result  # the call failed with EPERM
    details = {
        "segfault": "terminated by SIGSEGV",
        "abort": "terminated by SIGABRT",
        "os_exit": "exited with code 0 without a result",
        "alarm_tampering": "terminated by SIGALRM",
    }
    if name in details:
        assert result.detail == details[name]
    if name == "kill_neighbours":
        assert result.value == "[]"  # no other process could be signalled
    if name == "list_root":
        assert result.value == "[]"  # nothing but the jail's own directories
    if name == "sys_exit_official":
        assert result.value == ""
    assert_still_answers(farm)


# Answer checks that must be judged False however they are written: (id, job builder).
GOLD_PROGRAM = "def f(x):\n    return x * 2"
ANSWER_CASES = [
    ("deduction_calls_f", lambda: deduction_job("6", "f(3)", GOLD_PROGRAM, (), ANSWER)),
    (
        "deduction_reads_gold_from_frame",
        lambda: deduction_job(
            "6", "eval(__import__('sys')._getframe(2).f_locals['gold_text'])", GOLD_PROGRAM, (), ANSWER
        ),
    ),
    ("deduction_reads_gold_local", lambda: deduction_job("6", "eval(gold_output)", GOLD_PROGRAM, (), ANSWER)),
    (
        "deduction_scans_memory_for_gold",
        lambda: deduction_job(
            "'secret-gold-7431'",
            "[o for o in __import__('gc').get_objects() if isinstance(o, str) and o.startswith('secret-gold')][:1] or 0",
            "",
            (),
            ANSWER,
        ),
    ),
    (
        "deduction_patches_comparison",
        lambda: deduction_job(
            "6",
            "(setattr(__import__('sys').modules.get('_azr_sandbox.values') or __import__('sys'), 'same_value', lambda a, b: True), 5)[1]",
            GOLD_PROGRAM,
            (),
            ANSWER,
        ),
    ),
    (
        "deduction_always_equal",
        lambda: deduction_job(
            "6", "type('L', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()", "", (), ANSWER
        ),
    ),
    (
        "deduction_always_equal_int",
        lambda: deduction_job(
            "6",
            "type('L', (int,), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})(5)",
            "",
            (),
            ANSWER,
        ),
    ),
    (
        "deduction_forges_verdict",
        lambda: deduction_job(
            "6",
            "__import__('os').write(3, b'{\"status\":\"ok\",\"verdict\":true}') and __import__('os')._exit(0)",
            "",
            (),
            ANSWER,
        ),
    ),
    ("abduction_walrus_f", lambda: abduction_job(GOLD_PROGRAM, "6", "(f := lambda *a: 6)", (), ANSWER)),
    ("abduction_calls_f", lambda: abduction_job(GOLD_PROGRAM, "6", "f(3) // 2 + 1", (), ANSWER)),
    (
        "abduction_always_equal_arg",
        lambda: abduction_job(
            "def f(x):\n    return x", "6", "type('L', (), {'__eq__': lambda s, o: True})()", (), ANSWER
        ),
    ),
    (
        "abduction_patches_builtins",
        lambda: abduction_job(
            "def f(x):\n    return abs(x)",
            "6",
            "[setattr(__import__('builtins'), 'abs', lambda v: 6), 1][1]",
            (),
            ANSWER,
        ),
    ),
    ("abduction_tuple_injection", lambda: abduction_job(GOLD_PROGRAM, "6", "1), (1", (), ANSWER)),
    ("abduction_multiline_print", lambda: abduction_job(GOLD_PROGRAM, "6", "1)\nprint(1", (), ANSWER)),
    (
        "abduction_frame_reading",
        lambda: abduction_job(
            GOLD_PROGRAM, "6", "__import__('sys')._getframe(1).f_locals.get('gold', 0)", (), ANSWER
        ),
    ),
    (
        "abduction_forged_call_frame",
        lambda: abduction_job(
            GOLD_PROGRAM, "6", '__import__(\'os\').write(3, b\'{"status":"ok","enc":6}\') and 0', (), ANSWER
        ),
    ),
    (
        "abduction_gold_is_code",
        lambda: abduction_job(GOLD_PROGRAM, "__import__('random').random() < 2", "1", (), ANSWER),
    ),
    (
        "induction_reads_hidden_outputs",
        lambda: induction_job(
            "import gc\ndef f(x):\n    for o in gc.get_objects():\n        if isinstance(o, dict) and 'pairs' in o:\n            return o\n    return None",
            [("1", "2"), ("5", "10")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_frame_walk",
        lambda: induction_job(
            "import sys\ndef f(x):\n    fr = sys._getframe()\n    while fr.f_back:\n        fr = fr.f_back\n    return fr.f_locals.get('gold', x)",
            [("1", "2"), ("5", "10")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_liar",
        lambda: induction_job(
            "class L:\n    def __eq__(self, o):\n        return True\n    __hash__ = object.__hash__\ndef f(x):\n    return L()",
            [("1", "2"), ("5", "10")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_liar_in_list",
        lambda: induction_job(
            "class L(list):\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return L([x])",
            [("1", "[2]")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_liar_str",
        lambda: induction_job(
            "class S(str):\n    def __eq__(self, o):\n        return True\n    __hash__ = str.__hash__\ndef f(x):\n    return S('?')",
            [("1", "'2'")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_fake_number",
        lambda: induction_job(
            "import numbers\nclass N:\n    def __eq__(self, o):\n        return True\n    def __float__(self):\n        return 0.0\nnumbers.Real.register(N)\ndef f(x):\n    return N()",
            [("1", "2.0")],
            (),
            ANSWER,
        ),
    ),
    (
        "induction_forged_pairs",
        lambda: induction_job(
            'import os\ndef f(x):\n    os.write(3, b\'{"status":"ok","pairs":[{"status":"ok","enc":2},{"status":"ok","enc":10}]}\')\n    os._exit(0)',
            [("1", "2"), ("5", "10")],
            (),
            ANSWER,
        ),
    ),
]


@pytest.mark.parametrize("name, build", ANSWER_CASES, ids=[c[0] for c in ANSWER_CASES])
def test_hostile_answer_is_never_right(farm, name, build):
    results = farm.run([build() for _ in range(3)])
    assert [r.verdict for r in results] == [False] * 3, results  # and the same verdict every time
    assert_still_answers(farm)


def test_stored_gold_that_is_code_gives_identical_verdicts(farm):
    # The case: a proposal whose repr is code; its stored "gold" is never executed.
    gold = "__import__('random').random() < 0.5"
    results = farm.run([abduction_job("def f(x):\n    return x", gold, "True", (), ANSWER) for _ in range(8)])
    assert [r.verdict for r in results] == [False] * 8


def test_honest_answers_still_win(farm):
    jobs = [
        deduction_job("6", "6", GOLD_PROGRAM, (), ANSWER),
        deduction_job("[6, 6]", "[6] * 2", GOLD_PROGRAM, (), ANSWER),
        abduction_job(GOLD_PROGRAM, "6", "3", (), ANSWER),
        abduction_job(GOLD_PROGRAM, "6", "int('3')", (), ANSWER),
        induction_job("def f(x):\n    return x + x", [("1", "2"), ("5", "10")], (), ANSWER),
    ]
    assert [r.verdict for r in farm.run(jobs)] == [True] * len(jobs)


def test_batch_mates_are_invisible(farm):
    marker = "batchmate-" + uuid.uuid4().hex
    spy = (
        "import gc, sys\ndef f(x):\n"
        "    seen = [o for o in gc.get_objects() if isinstance(o, (str, bytes, dict, list)) and "
        + repr(marker)
        + " in repr(o)]\n"
        "    frames, fr = [], sys._getframe()\n"
        "    while fr:\n        frames.append(repr(fr.f_locals))\n        fr = fr.f_back\n"
        "    return bool(seen) or any(" + repr(marker) + " in text for text in frames)"
    )
    jobs = []
    for _ in range(8):  # spies and jobs carrying the marker (program, input, gold) share messages
        jobs.append(output_job(f"def f(x):\n    return {marker!r}", "1", (), ONCE))
        jobs.append(abduction_job(GOLD_PROGRAM, repr(marker), repr(marker), (), ANSWER))
        jobs.append(output_job(spy, "1", (), dataclasses.replace(ONCE, single_function=False)))
    results = farm.run(jobs)
    spies = results[2::3]
    assert [r.value for r in spies] == ["False"] * 8, spies


def test_a_job_cannot_kill_the_jobs_after_it(farm):
    killer = "import os\ndef f(x):\n    for sig in (9, 15, 19):\n        try:\n            os.kill(-1, sig)\n        except OSError:\n            pass\n    return 1"
    ordinary = "def f(x):\n    return x + 1"
    results = farm.run([output_job(killer, "1", (), ONCE)] + [output_job(ordinary, str(i)) for i in range(8)])
    assert [r.value for r in results[1:]] == [str(i + 1) for i in range(8)], results


def test_job_state_does_not_reach_the_next_job(farm):
    poison = (
        "import builtins, math, sys\ndef f(x):\n"
        "    builtins.len = lambda v: 0\n    math.pi = 3\n    sys.modules['json'] = None\n"
        "    import collections\n    collections.Counter = dict\n    return 1"
    )
    check = "import math, collections\ndef f(x):\n    return [len([1, 2]), math.pi, collections.Counter('aa')['a']]"
    results = farm.run([output_job(poison, "1", (), ONCE), output_job(check, "1", (), ONCE)] * 4)
    assert all(r.value == repr([2, 3.141592653589793, 2]) for r in results[1::2]), results


def test_pid_namespace_hides_the_host(farm):
    counter = "import os\ndef f(x):\n    seen = 0\n    for pid in range(1, 1 << 15):\n        try:\n            os.getpgid(pid)\n            seen += 1\n        except PermissionError:\n            seen += 1\n        except OSError:\n            pass\n    return [seen, os.getpid() < 1000]"
    result = run_case(farm, counter, "1", ONCE)
    seen, small = eval(result.value)  # noqa: S307 - a list of an int and a bool we produced
    assert seen <= 4 and small  # the zygote (pid 1), ready children, ourselves


def test_file_creation_outside_is_blocked(farm):
    target = os.path.join(tempfile.gettempdir(), f"azr-hostile-{uuid.uuid4().hex}")
    result = run_case(farm, f"def f(x):\n    open({target!r}, 'w').write('pwned')\n    return 1")
    assert result.status == f"{EPERM}: {target!r}"
    assert not os.path.exists(target)
    assert_still_answers(farm)


def test_file_deletion_outside_is_blocked(farm, outside_file):
    result = run_case(farm, f"import os\ndef f(x):\n    os.remove({outside_file!r})\n    return 1")
    assert result.status == f"{EPERM}: {outside_file!r}"
    with open(outside_file, "rb") as fh:
        assert fh.read() == b"keep me"
    assert_still_answers(farm)


def test_shell_command_does_not_run(farm):
    marker = os.path.join(tempfile.gettempdir(), f"azr-hostile-{uuid.uuid4().hex}")
    result = run_case(farm, f"import os\ndef f(x):\n    return os.system('touch {marker}')")
    assert result.status == "ok" and int(result.value) != 0  # system() could not spawn a shell
    assert not os.path.exists(marker)
    assert_still_answers(farm)


def test_environment_is_scrubbed(farm):
    assert os.environ[SECRET_NAME] == SECRET_VALUE
    result = run_case(
        farm, f"import os\ndef f(x):\n    return [os.environ.get({SECRET_NAME!r}), sorted(os.environ)]"
    )
    assert result.status == "ok"
    assert eval(result.value)[0] is None  # noqa: S307 - a repr of a list of strings we produced ourselves
    assert SECRET_VALUE not in result.value
    assert_still_answers(farm)


def test_socket_to_loopback_listener_never_connects(farm):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        program = "import socket\ndef f(port):\n    s = socket.create_connection(('127.0.0.1', port), timeout=1)\n    s.sendall(b'hi')\n    return 1"
        result = run_case(farm, program, str(port))
        assert result.status == EPERM
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert_still_answers(farm)


def test_only_the_job_pipes_are_inherited(farm):
    program = "import os\ndef f(x):\n    fds = []\n    for fd in range(64):\n        try:\n            os.fstat(fd)\n            fds.append(fd)\n        except OSError:\n            pass\n    return fds"
    result = run_case(farm, program)
    assert result.status == "ok" and result.value == "[0, 1, 2, 3]"
    assert_still_answers(farm)


def test_cross_seed_catches_hash_and_set_order_nondeterminism(farm):
    words = repr([f"item{i}" for i in range(20)])
    jobs = [
        output_job("def f(s):\n    return hash(s)", "'azr'", (), FAST),
        output_job("def f(xs):\n    return list(set(xs))", words, (), FAST),
        output_job("def f(xs):\n    return '-'.join({x: 0 for x in set(xs)})", words, (), FAST),
    ]
    for future in submit_outputs(farm, jobs, cross_seed=True):
        assert (
            future.result(timeout=60).status
            == "error: NondeterminismError: output differs under another hash seed"
        )
    assert_still_answers(farm)


def test_always_equal_object_cannot_pass_an_answer_check(farm):
    agent = "class Liar:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\ndef f(x):\n    return Liar()"
    result = check_induction(farm, agent, (), [("1", "2"), ("'a'", "'b'")])
    assert result.verdict is False and result.pair_verdicts == (False, False)
    nested = check_induction(farm, agent.replace("return Liar()", "return [Liar()]"), (), [("1", "[2]")])
    assert nested.verdict is False
    assert_still_answers(farm)


def test_sleeping_children_are_killed_on_timeout(farm):
    program = "def f(x):\n    __import__('ti' + 'me').sleep(30)\n    return 1"
    result = run_case(farm, program, "1", dataclasses.replace(FAST, timeout_s=0.5))
    assert result.status == "timeout"
    assert_still_answers(farm)


def test_eval_scripts_are_sandboxed_too(farm):
    (result,) = farm.run([program_job("import os\nos.kill(os.getppid(), 9)")])
    assert result.status == EPERM
    assert_still_answers(farm)


def test_hostile_suite_is_large_enough():
    named_tests = 18  # the attack tests of this module besides the two tables
    assert len(CASES) + len(ANSWER_CASES) + named_tests >= 80


def test_nothing_is_left_on_the_host(farm, before):
    assert_still_answers(farm)
    assert host_state() == before

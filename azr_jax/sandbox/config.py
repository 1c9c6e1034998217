"""Every tunable of the sandbox farm, in one place.

Three dataclasses, one per scope: `JobOptions` travels with each job (eval jobs relax what AZR jobs
enforce), `IsolationConfig` fixes how every child is locked down, `FarmConfig` sizes the pool.
Defaults follow the official AZR executor where it has one (azr_method.md §3, §7) and say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .wire import SEMANTICS

# uids per worker, used in turn by its children: more than the children alive at once (one running,
# the zygote's ready ones, one being reaped).
UIDS_PER_WORKER = 8

# The official `banned_words` list (azr_method.md §3 item 5). Dotted entries never match a single
# import component in the official check; we additionally match them against full dotted names.
OFFICIAL_BANNED_MODULES: tuple[str, ...] = (
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "os.sys",
    "os.path",
    "sys.exit",
    "os.environ",
    "calendar",
)


@dataclass(frozen=True)
class JobOptions:
    """Per-job limits and checks. Immutable so one instance can be shared by thousands of jobs."""

    # "official": the official AZR executor's verdicts (azr_method.md §3, §10; sandbox README,
    # "Deviations"): a proposal whose run ends in an exception whose last traceback line lacks
    # "error" is valid with output '', outputs are stored stripped and cut to 200+"..."+200
    # characters, an induction pair that raises such an exception is left out of the verdict.
    # "strict": the paper's stated rules: deterministic, error-free programs, no empty outputs,
    # full outputs (up to max_repr_chars), every hidden pair must pass. Reward hacks are closed in both.
    semantics: str = "official"
    # Wall-clock limit per job in seconds (official `execute_max_timeout`); the induction probe
    # grants it per hidden pair.
    timeout_s: float = 10.0
    # Address-space limit (RLIMIT_AS) of the child, MiB. The official executor has none.
    memory_mb: int = 1024
    # Run the AST checks (parse, banned imports, `input(`, entry function) before executing.
    # Eval-harness jobs (HumanEval tests importing hashlib, ...) switch this off.
    static_checks: bool = True
    # Modules whose import rejects the program (only used when static_checks is on).
    banned_modules: tuple[str, ...] = OFFICIAL_BANNED_MODULES
    # Official `reject_multiple_functions=True`: one function definition in the program and it is
    # the top-level `f` (counted as the official parser counts, see static_checks.py). False allows
    # helpers and classes.
    single_function: bool = True
    # Two calls of f in the same child compared with `!=` (official determinism check, §3 item 7).
    determinism: bool = True
    # Largest accepted repr of a returned value when outputs are kept whole (strict); longer ones
    # give status `output_too_large`.
    max_repr_chars: int = 4096
    # Keep reprs longer than 2*truncate_keep_chars as head + "..." + tail (azr_method.md §10.2)
    # instead of refusing them. None: as the semantics says (official: yes, strict: no).
    truncate_repr: bool | None = None
    truncate_keep_chars: int = 200
    # Captured stdout bound; a job that prints more gets status `output_too_large`.
    max_stdout_chars: int = 1 << 20
    # Also require the returned value itself to pickle (the official executor pickles only the
    # repr string, which always succeeds). Off by default.
    require_picklable: bool = False
    # When the gold text is not data (e.g. `[inf]`, `dict_keys([1])`), accept an answer whose repr
    # (deduction: whose text) equals it. Official behaviour is False: such tasks are unsolvable.
    repr_fallback: bool = False

    def __post_init__(self) -> None:
        if self.semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {self.semantics!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64 (Python itself needs it), got {self.memory_mb}")
        if self.max_repr_chars < 1 or self.max_stdout_chars < 0 or self.truncate_keep_chars < 1:
            raise ValueError("max_repr_chars/truncate_keep_chars must be >= 1, max_stdout_chars >= 0")
        if isinstance(self.banned_modules, str):
            raise TypeError("banned_modules must be a sequence of module names, not one string")
        object.__setattr__(self, "banned_modules", tuple(self.banned_modules))

    @property
    def official(self) -> bool:
        return self.semantics == "official"

    @property
    def truncates(self) -> bool:
        """Whether stored outputs are cut to head + "..." + tail (truncate_repr, else the semantics)."""
        return self.official if self.truncate_repr is None else self.truncate_repr


@dataclass(frozen=True)
class IsolationConfig:
    """Which isolation layers the workers try to enable; each degrades gracefully when unavailable."""

    # Run each child under its own unprivileged uid/gid (needs root). Each worker holds a block of
    # UIDS_PER_WORKER uids in [uid_base, uid_base + uid_span): the first block from a random one on
    # that no live worker of any farm on this host holds (a lock file per block), and its children
    # take them in turn, so no two live children share a uid and none can signal another.
    drop_privileges: bool = True
    uid_base: int = 64000
    uid_span: int = 1000
    # Each worker lives in an empty network namespace (only a down loopback): no network at all.
    network_namespace: bool = True
    # Each worker builds a read-only root (Python install + system libraries, nothing else) in a
    # private mount namespace, and every child is chrooted into it with an empty working directory.
    filesystem_jail: bool = True
    # seccomp-bpf filter in every child: no socket(), fork/exec, file creation or modification,
    # mount/ptrace/namespace calls (x86_64 and aarch64 only).
    seccomp: bool = True
    # RLIMIT_NOFILE of the child (Python needs a handful of descriptors to import modules).
    max_open_files: int = 64
    # Threads are refused (RLIMIT_NPROC 0); if allowed, at most this many per child.
    allow_threads: bool = False
    max_threads: int = 8
    # Extra seconds of RLIMIT_CPU beyond the job's timeout (the parent's wall clock is the real guard).
    cpu_grace_s: int = 1
    # Extra wall time for multi-pair (induction) jobs, so each pair's in-child alarm fires before
    # the worker's hard kill and per-pair outcomes survive.
    alarm_grace_s: float = 0.5
    # Size of the tmpfs that holds the jail skeleton and the per-job working directories.
    jail_tmpfs_mb: int = 16
    # Each worker gets a private SysV IPC / POSIX message-queue namespace (the seccomp filter also
    # refuses every SysV IPC and mqueue call), and each child a new one of its own.
    ipc_namespace: bool = True
    # Each worker's children live in a new pid namespace whose init is the worker's zygote: a job
    # sees no host pid, and everything in it dies with the zygote.
    pid_namespace: bool = True

    def __post_init__(self) -> None:
        if self.uid_base <= 0 or self.uid_span < UIDS_PER_WORKER:
            raise ValueError(f"uid_base must be positive and uid_span >= {UIDS_PER_WORKER}")
        if self.max_open_files < 16:
            raise ValueError("max_open_files must be >= 16")


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class FarmConfig:
    """Size and plumbing of the worker pool."""

    # Persistent worker processes; default one per CPU core.
    num_workers: int = field(default_factory=_default_workers)
    # Jobs per IPC message to a worker, and the most jobs queued at one worker (keeps the pool
    # balanced when some jobs are slow while amortising message overhead).
    jobs_per_message: int = 4
    max_inflight_per_worker: int = 8
    # PYTHONHASHSEED of the main workers: fixed so set iteration order, and thus outputs, are
    # reproducible across runs and resumes. The alternate workers (cross-seed determinism check)
    # use alt_hash_seed, which must differ.
    hash_seed: int = 1234
    alt_hash_seed: int = 4321
    num_alt_workers: int = 1
    # Modules imported once in each worker's zygote, so the children forked from it do not pay
    # for them. Every module also makes each fork dearer (the zygote's image is copied per job):
    # the default keeps to small, often imported ones (benchmarks/RESULTS.md, sandbox section).
    preload_modules: tuple[str, ...] = ("math", "itertools", "collections", "heapq", "bisect")
    # Seconds to wait for workers to start (they build their jail) and to exit on close().
    start_timeout_s: float = 60.0
    close_timeout_s: float = 5.0
    # Dead workers are replaced, at most this many times over the farm's life (a crash loop stops);
    # then submit() raises and every queued job resolves as `killed`.
    max_worker_restarts: int = 100
    # A worker whose current job has run this many seconds past the job's own budget is declared
    # wedged: it is killed and replaced, and its job resolves as `killed` (no result wait hangs).
    watchdog_grace_s: float = 30.0
    isolation: IsolationConfig = field(default_factory=IsolationConfig)

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.num_alt_workers < 1:
            raise ValueError("num_workers and num_alt_workers must be >= 1")
        if self.jobs_per_message < 1 or self.max_inflight_per_worker < self.jobs_per_message:
            raise ValueError("need 1 <= jobs_per_message <= max_inflight_per_worker")
        if not self.watchdog_grace_s > 0:
            raise ValueError("watchdog_grace_s must be > 0")
        if self.hash_seed == self.alt_hash_seed:
            raise ValueError("alt_hash_seed must differ from hash_seed")
        for seed in (self.hash_seed, self.alt_hash_seed):
            if not 0 <= seed <= 4294967295:
                raise ValueError(f"hash seeds must be in [0, 2**32-1], got {seed}")

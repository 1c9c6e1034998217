"""Run directories that may live in object storage (`gs://bucket/run` on a TPU pod).

Checkpoints go straight to the run directory (orbax writes `gs://` itself, every host its own
shards). The log files (metrics.jsonl, samples.jsonl, eval.jsonl, tensorboard/, hosts/) are
appended line by line, which object storage cannot do, so for a remote run directory they are
written to a local directory and mirrored to `<workdir>/logs/` after every checkpoint. A run
that resumes on a fresh VM (preemption) first pulls the mirror back, so the metrics of the
steps it already did are neither lost nor duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time

from etils import epath

from azr_jax.errors import UsageError

log = logging.getLogger(__name__)

LOGS_SUBDIR = "logs"
LOCK_FILE = "run.lock"
CONFIG_FILE = "config.json"


def is_remote(path: str | os.PathLike) -> bool:
    """True for URL-style paths (`gs://...`, `s3://...`) that only orbax/epath can write."""
    return "://" in os.fspath(path)


def resolve(path: str | os.PathLike) -> str:
    """Absolute local path, or the remote URL unchanged (abspath would mangle `gs://`)."""
    path = os.fspath(path)
    return path.rstrip("/") if is_remote(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    """Path join that keeps URLs intact."""
    return "/".join([base.rstrip("/"), *parts]) if is_remote(base) else os.path.join(base, *parts)


def default_local_dir(workdir: str) -> str:
    """Where a remote run's logs are written on this host (stable across restarts)."""
    root = os.environ.get("AZR_JAX_CACHE", os.path.expanduser("~/.cache/azr_jax"))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", workdir.split("://", 1)[-1]).strip("_")[-80:]
    digest = hashlib.sha256(workdir.encode()).hexdigest()[:8]
    return os.path.join(root, "runs", f"{name}-{digest}")


class LogMirror:
    """Copies a local log directory to `<remote>/logs/` and back.

    Files are copied whole: they are small (one JSON line per step) and a whole-file copy is
    atomic per object in GCS, so a preempted copy leaves the previous version intact.
    """

    def __init__(self, local_dir: str, remote_dir: str):
        self.local = os.path.abspath(local_dir)
        self.remote = epath.Path(remote_dir)

    def _local_files(self) -> list[str]:
        out = []
        for root, _, files in os.walk(self.local):
            for name in files:
                if not name.endswith(".tmp") and name != LOCK_FILE:  # the lock is this host's
                    out.append(os.path.relpath(os.path.join(root, name), self.local))
        return sorted(out)

    def push(self) -> int:
        """Upload every local log file; returns how many were copied."""
        n = 0
        for rel in self._local_files():
            dst = self.remote / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(epath.Path(self.local, rel).read_bytes())
            n += 1
        return n

    def pull(self) -> int:
        """Download the mirror into an empty local directory (a fresh VM resuming a run).

        A local directory that already holds metrics is left alone: it is at least as recent
        as the mirror, which is only written after checkpoints.
        """
        if os.path.exists(os.path.join(self.local, "metrics.jsonl")) or not self.remote.exists():
            return 0
        n = 0
        for src in _walk(self.remote):
            rel = os.fspath(src.relative_to(self.remote))
            if rel == LOCK_FILE:
                continue
            dst = epath.Path(self.local, rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
            n += 1
        if n:
            log.info("pulled %d log files from %s into %s", n, self.remote, self.local)
        return n


def _walk(root: epath.Path) -> list[epath.Path]:
    """Every file under `root` (epath's rglob refuses `**` on GCS, so walk level by level)."""
    files, dirs = [], [root]
    while dirs:
        for p in dirs.pop().iterdir():
            (dirs if p.is_dir() else files).append(p)
    return sorted(files)


# ---------------------------------------------------------------------------- lock


class RunLock:
    """One trainer per run directory: an exclusive `flock` on `<dir>/run.lock`, which holds the
    owner's host and pid.

    The kernel drops a flock when its process dies (even SIGKILL), so a lock left by a dead
    trainer is simply taken over (with a log line naming it), and two live trainers can never
    both hold it. The file stays local: a remote (gs://) run locks its local log directory.
    """

    def __init__(self, directory: str):
        self.path = os.path.join(directory, LOCK_FILE)
        self._file = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = self._owner()
            self._file.close()
            who = (
                (f"pid {owner.get('pid')} on host {owner.get('host')} (started {owner.get('started', '?')})")
                if owner
                else "another process"
            )
            raise UsageError(
                f"run directory {directory} is in use by {who}: wait for it, stop "
                f"it (kill -TERM {owner.get('pid', '<pid>')}), or use another "
                "--workdir"
            ) from None
        old = self._owner()
        if old:
            log.warning(
                "taking over the lock of pid %s on host %s (started %s): that trainer is gone",
                old.get("pid"),
                old.get("host"),
                old.get("started", "?"),
            )
        self._file.seek(0)
        self._file.truncate()
        self._file.write(
            json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            )
            + "\n"
        )
        self._file.flush()

    def _owner(self) -> dict:
        try:
            self._file.seek(0)
            return json.loads(self._file.read() or "{}")
        except ValueError:
            return {}

    def release(self) -> None:
        """Empty the file, then unlock (a crash before this leaves the owner in it: stale)."""
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.flush()
        self._file.close()  # closing drops the flock


def write_config(workdir: str, config_json: str) -> None:
    """<workdir>/config.json: the resolved config of the latest start (local or remote)."""
    path = epath.Path(join(workdir, CONFIG_FILE))
    tmp = epath.Path(join(workdir, CONFIG_FILE + ".tmp"))
    tmp.write_text(config_json)
    tmp.replace(path)


def remove_if_unused(directory: str, ours: tuple[str, ...] = (LOCK_FILE, CONFIG_FILE)) -> bool:
    """Remove a directory that holds nothing but `ours` and empty directories (what a start
    that failed leaves); True when it was removed."""
    if not os.path.isdir(directory):
        return False
    for root, _dirs, files in os.walk(directory):
        if any(not (root == directory and f in ours) for f in files):
            return False
    shutil.rmtree(directory, ignore_errors=True)
    return True

"""Host-side work with a time and memory bound: a function of plain JSON arguments run in a
helper process.

Symbolic math comparisons go through sympy, which can spin for minutes or exhaust memory on a
hostile answer (`9^{9^{9^{9}}}` makes `evalf` run for over a minute). The evaluating process must
stay responsive, so such calls run in a persistent helper process started with an address-space
limit; a call that does not answer within its time bound kills the helper (a fresh one starts on
the next call) and reports a timeout. The helper imports only the target module.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from typing import Any

_BOOT = r"""
import importlib, json, resource, sys
limit = int(sys.argv[1]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
fn = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])
for line in sys.stdin:
    try:
        out = {"ok": fn(*json.loads(line))}
    except MemoryError:
        out = {"error": "memory"}
    except Exception as err:
        out = {"error": type(err).__name__}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""

TIMEOUT = "timeout"
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BoundedFunction:
    """`call(*args)` -> ("ok", value) | ("timeout", None) | ("error", reason), each call within
    `timeout_s` seconds and the helper within `memory_mb` of address space. Thread-safe."""

    def __init__(self, module: str, name: str, *, timeout_s: float = 5.0, memory_mb: int = 1024):
        self.module, self.name = module, name
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.timeouts = 0
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
        return subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(self.memory_mb), self.module, self.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            close_fds=True,
        )

    def call(self, *args: Any, timeout_s: float | None = None) -> tuple[str, Any]:
        limit = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            ready: list = []
            try:
                proc.stdin.write(json.dumps(list(args)) + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], limit)
                line = proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError, ValueError):
                line = ""
            if not line:
                self._kill()
                if ready:  # the helper died (e.g. out of memory)
                    return "error", "helper died"
                self.timeouts += 1
                return TIMEOUT, None
            reply = json.loads(line)
            if "ok" in reply:
                return "ok", reply["ok"]
            if reply.get("error") == "memory":
                self._kill()
            return "error", reply.get("error")

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._kill()

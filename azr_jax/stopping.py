"""SIGINT/SIGTERM for a long-running loop: the first asks for a stop, the second aborts at once.

Python runs signal handlers only in the main thread and only between bytecodes, so a handler
cannot run while the main thread waits minutes inside one XLA program (a long generation).
The C-level handler still writes the signal number to the wakeup fd (`signal.set_wakeup_fd`)
at once, so a watcher thread reading that fd learns of every signal immediately:
- first signal: `requested` is set and `on_request(signum)` runs in a helper thread (the
  trainer saves its last finished step from there while the main thread is still busy);
- second signal: the process exits at once with status 128 + signum, saving nothing (the
  last committed checkpoint stays valid: orbax commits a step atomically).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager installing the two-stage handling of SIGINT and SIGTERM."""

    def __init__(self, on_request: Callable[[int], None] | None = None):
        self.on_request = on_request
        self.requested = threading.Event()
        self.signum: int | None = None
        self._count = 0
        self._pipe: tuple[int, int] | None = None
        self._old_fd = -1
        self._old_handlers: dict[int, Any] = {}
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> StopSignals:
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        self._old_handlers = {s: signal.signal(s, _ignore_in_python) for s in SIGNALS}
        self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._watcher = threading.Thread(target=self._watch, name="stop-signals", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pipe is None:
            return
        signal.set_wakeup_fd(self._old_fd)
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        r, w = self._pipe
        os.write(w, b"\0")  # wakes the watcher up to leave
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        os.close(r)
        os.close(w)
        self._pipe = None

    def _watch(self) -> None:
        assert self._pipe is not None
        r = self._pipe[0]
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            for signum in data:
                if signum == 0:
                    return
                if signum in SIGNALS:
                    self._received(signum)

    def _received(self, signum: int) -> None:
        self._count += 1
        name = signal.Signals(signum).name
        if self._count > 1:
            log.error("%s again: aborting now without saving (the last checkpoint stays)", name)
            flush_logs()
            os._exit(128 + signum)
        self.signum = signum
        self.requested.set()
        log.warning(
            "%s: stopping at the next safe point (%s again aborts without saving)",
            name,
            "Ctrl-C" if signum == signal.SIGINT else name,
        )
        if self.on_request is not None:
            threading.Thread(target=self.on_request, args=(signum,), name="stop-request", daemon=True).start()


def _ignore_in_python(signum: int, frame: Any) -> None:
    """The Python-level handler: nothing to do, the watcher thread has already seen it
    (installed so the C-level handler, which writes the wakeup fd, stays in place)."""


def flush_logs() -> None:
    for h in logging.getLogger().handlers:
        try:
            h.flush()
        except Exception:  # a closed stream must not keep us from exiting
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass

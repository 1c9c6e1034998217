"""Length-prefixed JSON frames over pipes (farm <-> worker).

JSON rather than pickle so that neither side can be made to execute code by what it reads.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

_HEADER = struct.Struct(">I")
# Largest frame either side accepts; a batch of jobs or one result is far below this.
MAX_FRAME_BYTES = 1 << 30
_READ_CHUNK = 1 << 20


class ProtocolError(RuntimeError):
    """The other side sent something that is not a valid frame."""


def encode_frame(message: Any) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _HEADER.pack(len(payload)) + payload


# The farm's last frame to a worker. It is written before stdin is closed because EOF alone
# never arrives while any process forked from the farm's host after the worker started (a
# multiprocessing or pebble pool, say) still holds the pipe's write end.
SHUTDOWN_FRAME = encode_frame({"type": "shutdown"})


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameReader:
    """Accumulates bytes from a descriptor and yields complete frames."""

    def __init__(self, fd: int):
        self.fd = fd
        self.eof = False
        self._buf = bytearray()
        self._pos = 0

    def fill(self) -> None:
        """One read(); sets `eof` when the writer has closed its end."""
        data = os.read(self.fd, _READ_CHUNK)
        if data:
            if self._pos > (1 << 20) and self._pos > len(self._buf) // 2:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data
        else:
            self.eof = True

    def pop(self) -> Any | None:
        """The next complete frame, or None if it has not fully arrived."""
        avail = len(self._buf) - self._pos
        if avail < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(self._buf, self._pos)
        if length > MAX_FRAME_BYTES:
            raise ProtocolError(f"incoming frame of {length} bytes exceeds {MAX_FRAME_BYTES}")
        if avail < _HEADER.size + length:
            return None
        start = self._pos + _HEADER.size
        payload = bytes(self._buf[start : start + length])
        self._pos = start + length
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise ProtocolError(f"undecodable frame: {exc}") from exc

    def shutdown_pending(self) -> bool:
        """EOF, or the farm's shutdown frame last in the buffer. A frame's JSON holds no raw
        control bytes, so the header's zero bytes cannot match inside another frame."""
        return self.eof or self._buf.endswith(SHUTDOWN_FRAME)

    def read(self) -> Any | None:
        """Block until a frame arrives; None at end of stream."""
        while True:
            message = self.pop()
            if message is not None:
                return message
            if self.eof:
                return None
            self.fill()

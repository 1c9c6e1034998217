"""Minimal safetensors reader/writer on numpy (memory-mapped, bf16 included).

The `safetensors` package's numpy backend cannot represent bfloat16, and its flax backend puts
every tensor on the default device. The format is a length-prefixed JSON header followed by raw
little-endian tensor bytes, so reading it ourselves gives zero-copy views of any dtype and lets
the loader decide where each array goes.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import ml_dtypes
import numpy as np

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype(bool),
}
_NAMES = {v: k for k, v in _DTYPES.items()}
# Header sizes beyond this are certainly corrupt (real headers are a few hundred KiB).
_MAX_HEADER = 100 * 2**20


class SafetensorsError(ValueError):
    """A safetensors file could not be read; the message names the file (and tensor)."""


class SafetensorsFile:
    """Read-only view of one `.safetensors` file; tensors come back as numpy views."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"safetensors file not found: {self.path}")
        self._file = open(self.path, "rb")
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < 8:
                raise SafetensorsError(f"unreadable safetensors file {self.path}: only {size} bytes")
            (n,) = struct.unpack("<Q", self._file.read(8))
            if n > min(_MAX_HEADER, size - 8):
                raise SafetensorsError(
                    f"unreadable safetensors file {self.path}: header length {n} is invalid"
                )
            try:
                header = json.loads(self._file.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SafetensorsError(
                    f"unreadable safetensors file {self.path}: header is not JSON ({e})"
                ) from None
            if not isinstance(header, dict):
                raise SafetensorsError(f"unreadable safetensors file {self.path}: bad header")
            self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
            self._data_start = 8 + n
            self._header = header
            for name, info in header.items():
                self._check_entry(name, info, size)
            self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except Exception:
            self._file.close()
            raise

    def _check_entry(self, name: str, info: Any, size: int) -> None:
        try:
            dtype, shape, (a, b) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(
                f"unreadable safetensors file {self.path}: tensor {name!r} has a malformed header entry"
            ) from None
        if dtype not in _DTYPES:
            raise SafetensorsError(f"{self.path}: tensor {name!r} has unsupported dtype {dtype}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype].itemsize
        if b - a != nbytes or a < 0 or self._data_start + b > size:
            raise SafetensorsError(
                f"unreadable safetensors file {self.path}: tensor {name!r} data range [{a}, {b}) "
                f"does not fit shape {shape} {dtype} or the file is truncated"
            )

    def keys(self) -> list[str]:
        return list(self._header)

    def __contains__(self, name: str) -> bool:
        return name in self._header

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._info(name)["shape"])

    def dtype(self, name: str) -> np.dtype:
        return _DTYPES[self._info(name)["dtype"]]

    def _info(self, name: str) -> dict[str, Any]:
        try:
            return self._header[name]
        except KeyError:
            raise KeyError(f"tensor {name!r} not found in {self.path}") from None

    def get(self, name: str) -> np.ndarray:
        """Zero-copy, read-only view of one tensor."""
        info = self._info(name)
        a, b = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        if b == a:
            return np.zeros(info["shape"], dtype)
        buf = np.frombuffer(
            self._mm, dtype=dtype, count=(b - a) // dtype.itemsize, offset=self._data_start + a
        )
        return buf.reshape(info["shape"])

    def close(self) -> None:
        # Views handed out keep the mmap alive; closing the mmap under them would crash, so
        # only the file descriptor is released here.
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def dtype_name(dtype: Any) -> str:
    dt = np.dtype(dtype)
    if dt not in _NAMES:
        raise ValueError(f"dtype {dt} cannot be stored in safetensors")
    return _NAMES[dt]


def write_file(
    path: str | os.PathLike, tensors: Iterable[tuple[str, np.ndarray]], metadata: dict[str, str] | None = None
) -> int:
    """Write tensors (in the given order) to `path`; returns bytes of tensor data written.

    Written to a temporary name and renamed, so an interrupted export never leaves a
    truncated file that looks valid.
    """
    items = [(name, np.ascontiguousarray(arr)) for name, arr in tensors]
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, arr in items:
        header[name] = {
            "dtype": dtype_name(arr.dtype),
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)  # align tensor data to 8 bytes like the reference writer
    tmp = os.fspath(path) + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, arr in items:
            f.write(arr.reshape(-1).view(np.uint8).data)
    os.replace(tmp, path)
    return offset


def iter_tensors(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    with SafetensorsFile(path) as f:
        for k in f.keys():
            yield k, f.get(k)

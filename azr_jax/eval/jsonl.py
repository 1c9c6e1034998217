"""Reading benchmark files: JSON Lines, optionally gzip-compressed.

Every upstream benchmark we support ships as JSONL (one JSON object per line), sometimes gzipped
(`HumanEval.jsonl.gz`, `HumanEvalPlus-v0.1.10.jsonl.gz`). Errors name the file and the line so a
user with a truncated download or a wrong file sees where it breaks, not a bare JSONDecodeError.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

SUPPORTED_SUFFIXES = (".jsonl", ".jsonl.gz")


class BenchmarkFileError(ValueError):
    """A benchmark file is missing, unreadable or not in the expected upstream format."""


@dataclass(frozen=True)
class Row:
    """One parsed JSON object and where it came from (for error messages)."""

    data: dict[str, Any]
    path: str
    line: int

    def where(self) -> str:
        """`file:line`, or just the source name for records that do not come from a file."""
        return f"{self.path}:{self.line}" if self.line else self.path

    def fail(self, message: str) -> BenchmarkFileError:
        """An error that names this row's file and line."""
        return BenchmarkFileError(f"{self.where()}: {message}")

    def require(self, *keys: str) -> None:
        """Raise a clear error when a field the upstream format guarantees is absent."""
        missing = [k for k in keys if k not in self.data]
        if missing:
            present = ", ".join(sorted(self.data)) or "(none)"
            raise self.fail(f"missing field(s) {missing}; fields present: {present}")

    def text(self, key: str) -> str:
        """A required string field (numbers are accepted and turned into text)."""
        self.require(key)
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(f"field {key!r} should be text, got {type(value).__name__}")
        return str(value)


def _open_text(path: str) -> io.TextIOBase:
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield each non-blank line of a `.jsonl` / `.jsonl.gz` file as a `Row`."""
    path = os.fspath(path)
    if not path.endswith(SUPPORTED_SUFFIXES):
        raise BenchmarkFileError(
            f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not os.path.isfile(path):
        raise BenchmarkFileError(f"{path}: no such file")
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as err:
                    raise BenchmarkFileError(f"{path}:{number}: invalid JSON ({err.msg})") from err
                if not isinstance(data, dict):
                    raise BenchmarkFileError(
                        f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
                yield Row(data=data, path=path, line=number)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise BenchmarkFileError(f"{path}: cannot read ({err})") from err


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """All rows of a file; an empty file is an error (a benchmark always has problems)."""
    rows = list(read_jsonl(path))
    if not rows:
        raise BenchmarkFileError(f"{os.fspath(path)}: file holds no problems")
    return rows

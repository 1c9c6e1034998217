"""Reading benchmark files: JSON Lines, optionally gzip-compressed.

Every upstream benchmark we support ships as JSONL (one JSON object per line), sometimes gzipped
(`HumanEval.jsonl.gz`, `HumanEvalPlus-v0.1.10.jsonl.gz`). Errors name the file and the line so a
user with a truncated download or a wrong file sees where it breaks, not a bare JSONDecodeError.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
# Rows skipped since the process started ("file:line (task X): why"), for summaries and tests.
SKIPPED_ROWS: list[str] = []

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
    return open(path, encoding="utf-8")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Row]:
    """Yield each non-blank line of a `.jsonl` / `.jsonl.gz` file as a `Row`."""
    path = os.fspath(path)
    if not path.endswith(SUPPORTED_SUFFIXES):
        raise BenchmarkFileError(
            f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
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
                    report_skipped(f"{path}:{number}", None, f"invalid JSON ({err.msg})")
                    continue
                if not isinstance(data, dict):
                    report_skipped(
                        f"{path}:{number}", None, f"expected a JSON object, got {type(data).__name__}"
                    )
                    continue
                yield Row(data=data, path=path, line=number)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise BenchmarkFileError(f"{path}: cannot read ({err})") from err


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """All rows of a file; an empty file is an error (a benchmark always has problems)."""
    rows = list(read_jsonl(path))
    if not rows:
        raise BenchmarkFileError(f"{os.fspath(path)}: file holds no problems")
    return rows


def report_skipped(where: str, task: Any, reason: str) -> None:
    """One warning line naming the file, line and task of a row that cannot be used."""
    message = f"{where}" + (f" (task {task})" if task is not None else "") + f": {reason}"
    SKIPPED_ROWS.append(message)
    log.warning("skipping malformed benchmark row %s", message)


def _task_of(row: Row) -> Any:
    for key in ("task_id", "id", "question_id", "unique_id", "idx"):
        if key in row.data:
            return row.data[key]
    return None


def build_each(rows: list[Row], build: Callable[[Row], T]) -> list[T]:
    """`build(row)` for every row; a row that raises BenchmarkFileError is reported (file, line,
    task) and skipped, never the whole file. A file with no usable row is an error."""
    out = []
    first_skip = len(SKIPPED_ROWS)
    for row in rows:
        try:
            out.append(build(row))
        except BenchmarkFileError as err:
            reason = str(err)
            prefix = f"{row.where()}: "
            report_skipped(
                row.where(), _task_of(row), reason[len(prefix) :] if reason.startswith(prefix) else reason
            )
    if rows and not out:
        first = SKIPPED_ROWS[first_skip] if len(SKIPPED_ROWS) > first_skip else "?"
        raise BenchmarkFileError(
            f"{rows[0].path}: no usable problem in the file (every row was malformed; first: {first})"
        )
    return out

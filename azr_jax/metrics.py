"""Run-directory logging for the self-play trainer: metrics.jsonl, samples.jsonl, TensorBoard, tqdm.

Layout of a run directory (only the primary process of a multi-host run writes any of it):

    <run_dir>/metrics.jsonl   one JSON object per step: {"step", "time" (unix), <flat scalars>}
    <run_dir>/samples.jsonl   a few decoded generations per step: {"step", ...row}
    <run_dir>/tensorboard/    tensorboardX event files mirroring the finite numeric scalars

Why JSONL is the source of truth: every line is flushed and fsync'd as it is written, so a
SIGKILL loses at most the line being written, and a human or `azr-jax plot` can read it with no
TensorBoard install. Non-finite floats (NaN for a task-role group that was empty this step) are
written as JSON `null`, so every complete line is strict JSON; lines are ASCII-only
(`ensure_ascii`), so a partial last line can never leave half a UTF-8 character behind.

Resume: a run restored from checkpoint step k logged steps past k before it died. Passing
`resume_step=k` (or calling `truncate_after(k)`) rewrites the file atomically (temp file +
`os.replace`) with exactly the rows whose step is <= k, drops an interrupted last line with a
warning, and opens TensorBoard with `purge_step=k+1` so TensorBoard hides the stale events.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import operator
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"
TENSORBOARD_DIR = "tensorboard"
# tensorboardX's background thread flushes at most this often (seconds); the JSONL is the
# durable record, TensorBoard only needs to be fresh enough to watch a run.
TB_FLUSH_SECS = 10
_RESERVED_KEYS = ("step", "time")


class JsonlError(ValueError):
    """A JSONL file is corrupt somewhere other than its last line (which may be a torn write)."""


# --------------------------------------------------------------------------- reading


def _iter_jsonl(path: str) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Yield (line number, raw line, parsed object) for every non-blank line of `path`.

    The last non-blank line may be a torn write from a killed process: if it does not parse it
    is skipped with a warning. Any earlier line that does not parse is real corruption and raises
    `JsonlError` naming file:line, because silently skipping it would hide lost data.
    """
    bad: tuple[int, Exception] | None = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            if bad is not None:
                raise JsonlError(f"{path}:{bad[0]}: invalid JSON line ({bad[1]})")
            try:
                row = json.loads(raw)
            except ValueError as e:  # includes UnicodeDecodeError
                bad = (lineno, e)
                continue
            if not isinstance(row, dict):
                raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, raw, row
    if bad is not None:
        logger.warning("%s:%d: ignoring a partial last line (interrupted write?)", path, bad[0])


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """All rows of a JSONL file, tolerating a torn last line (see `_iter_jsonl`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    return [row for _, _, row in _iter_jsonl(path)]


def read_metrics(path_or_run_dir: str) -> list[dict[str, Any]]:
    """Rows of a run's metrics.jsonl (give the file or its run directory); `null` stays None."""
    path = path_or_run_dir
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {METRICS_FILE} at {path_or_run_dir}")
    return read_jsonl(path)


# --------------------------------------------------------------------------- values


def _check_step(step: Any) -> int:
    """Steps are non-negative integers (numpy/jax integers accepted, bools and floats not)."""
    if isinstance(step, bool):
        raise ValueError(f"step must be an integer, got {step!r}")
    try:
        step = operator.index(step)
    except TypeError:
        raise ValueError(f"step must be an integer, got {type(step).__name__} {step!r}") from None
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


def _json_scalar(where: str, value: Any) -> Any:
    """A JSON-safe scalar: ints stay ints, non-finite floats become None, 0-d arrays unwrap."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy / jax 0-d
        return _json_scalar(where, value.item())
    raise ValueError(f"{where}: expected a scalar (number, bool, str or None), got {type(value).__name__}")


def _json_value(where: str, value: Any) -> Any:
    """Recursively JSON-safe copy of a sample row (dicts with str keys, lists, scalars)."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _json_value(f"{where}.{k}", v)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(f"{where}[{i}]", v) for i, v in enumerate(value)]
    return _json_scalar(where, value)


def _dump_line(row: Mapping[str, Any]) -> bytes:
    return (json.dumps(row, allow_nan=False, ensure_ascii=True) + "\n").encode("ascii")


# --------------------------------------------------------------------------- writing


def _fsync_dir(path: str) -> None:
    """Make a rename durable; not every platform can open a directory, which is fine to skip."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rewrite_through_step(path: str, keep_through: int | None) -> int | None:
    """Atomically rewrite a step-keyed JSONL file keeping rows with step <= `keep_through`.

    `keep_through=None` keeps every complete row and only repairs the tail (drops a torn last
    line, terminates a last line that lacks its newline). Returns the largest step kept, or None
    when no row is left. Rows without an integer "step" are corruption and raise `JsonlError`.
    """
    tmp = f"{path}.tmp"
    last: int | None = None
    try:
        with open(tmp, "wb") as out:
            for lineno, raw, row in _iter_jsonl(path):
                try:
                    step = _check_step(row.get("step"))
                except ValueError as e:
                    raise JsonlError(f"{path}:{lineno}: bad 'step' ({e})") from None
                if keep_through is not None and step > keep_through:
                    continue
                out.write(raw.rstrip(b"\r\n") + b"\n")
                last = step if last is None else max(last, step)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return last


class _StepLog:
    """An append-only, step-keyed JSONL file with per-line fsync and truncate-on-resume.

    `strict=True` requires each written step to exceed the last one (one metrics row per step),
    `strict=False` only forbids going backwards (several sample rows share a step). Writing a
    step that is not after the file's last one means a resume forgot `resume_step`, so it raises
    instead of leaving a file with two histories interleaved.
    """

    def __init__(self, path: str, *, strict: bool, resume_step: int | None) -> None:
        self.path = path
        self._strict = strict
        self._file: IO[bytes] | None = None
        self._last_step: int | None = None
        if resume_step is not None:
            resume_step = _check_step(resume_step)
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            self._last_step = rewrite_through_step(path, resume_step)
        self._open()

    @property
    def last_step(self) -> int | None:
        """Largest step in the file (None when empty)."""
        return self._last_step

    def _open(self) -> None:
        self._file = open(self.path, "ab")

    def truncate_after(self, step: int) -> None:
        """Drop every row with step > `step` (see `rewrite_through_step`)."""
        step = _check_step(step)
        self.close()
        self._last_step = rewrite_through_step(self.path, step) if os.path.isfile(self.path) else None
        self._open()

    def check_order(self, step: int) -> None:
        last = self._last_step
        if last is not None and (step < last or (self._strict and step == last)):
            raise ValueError(
                f"step {step} is not after the last step {last} already in {self.path}; "
                "when resuming pass resume_step=<checkpoint step> so later rows are dropped"
            )

    def append(self, lines: Sequence[bytes], step: int) -> None:
        """Write whole lines in one call, then flush and fsync: a kill tears at most one line."""
        if self._file is None:
            raise ValueError(f"{self.path} is closed")
        self._file.write(b"".join(lines))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_step = step

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def missing_steps(path: str, through: int) -> list[int]:
    """Steps 1..`through` that have no row in the step-keyed JSONL file at `path`."""
    have = set()
    if os.path.isfile(path):
        for _, _, row in _iter_jsonl(path):
            if isinstance(row.get("step"), int):
                have.add(row["step"])
    return [s for s in range(1, through + 1) if s not in have]


def _ranges(steps: Sequence[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    out: list[str] = []
    start = prev = None
    for s in list(steps) + [None]:
        if s is not None and prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = s
    return ", ".join(out)


def report_gaps(path: str, resume_step: int) -> list[int]:
    """Warn (one line) when a resumed run's metrics lack rows of steps it already trained."""
    missing = missing_steps(path, resume_step)
    if missing:
        logger.warning(
            "%s has no rows for steps %s of the %d before the checkpoint (file deleted "
            "or replaced?); logging continues at step %d, the gap stays",
            path,
            _ranges(missing),
            resume_step,
            resume_step + 1,
        )
    return missing


class MetricsWriter:
    """One metrics row per step to metrics.jsonl, mirrored to TensorBoard (primary host only).

    `resume_step`: the checkpoint step a resumed run starts from (0 for a fresh start that should
    discard an old file); rows after it are dropped and TensorBoard purges steps > it. None
    appends to whatever is there (and then refuses steps that do not come after it).
    """

    def __init__(
        self, run_dir: str, *, tensorboard: bool = True, primary: bool = True, resume_step: int | None = None
    ) -> None:
        self.run_dir = run_dir
        self.primary = primary
        self._tensorboard = tensorboard
        self._log: _StepLog | None = None
        self._tb: Any = None
        if not primary:
            return
        os.makedirs(run_dir, exist_ok=True)
        self._log = _StepLog(os.path.join(run_dir, METRICS_FILE), strict=True, resume_step=resume_step)
        if resume_step:
            report_gaps(self._log.path, _check_step(resume_step))
        if tensorboard:
            self._open_tb(None if resume_step is None else _check_step(resume_step) + 1)

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, METRICS_FILE)

    @property
    def last_step(self) -> int | None:
        """Largest step already logged (None when nothing is, or on a non-primary host)."""
        return None if self._log is None else self._log.last_step

    def _open_tb(self, purge_step: int | None) -> None:
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(
            os.path.join(self.run_dir, TENSORBOARD_DIR), purge_step=purge_step, flush_secs=TB_FLUSH_SECS
        )

    def truncate_after(self, step: int) -> None:
        """Resume at checkpoint `step`: keep rows <= step, make TensorBoard hide later events."""
        if self._log is None:
            return
        self._log.truncate_after(step)
        if self._tensorboard:
            if self._tb is not None:
                self._tb.close()
            self._open_tb(_check_step(step) + 1)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Log one step's flat scalar metrics (NaN/inf are written as null and not sent to TB)."""
        step = _check_step(step)
        clean: dict[str, Any] = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"metric names must be non-empty strings, got {key!r}")
            if key in _RESERVED_KEYS:
                raise ValueError(f"metric name {key!r} is reserved for the row itself")
            clean[key] = _json_scalar(f"metric {key!r}", value)
        if self._log is None:
            return
        self._log.check_order(step)
        now = time.time()
        self._log.append([_dump_line({"step": step, "time": now, **clean})], step)
        if self._tb is not None:
            for key, value in clean.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, global_step=step, walltime=now)
            self._tb.flush()

    def flush(self) -> None:
        """Push TensorBoard's buffered events to disk (the JSONL is fsync'd on every write)."""
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SamplesWriter:
    """Rows stamped with a step (decoded generations to samples.jsonl; in-training eval scores
    to eval.jsonl via `filename`), with the same resume semantics as the metrics."""

    def __init__(
        self,
        run_dir: str,
        *,
        primary: bool = True,
        resume_step: int | None = None,
        filename: str = SAMPLES_FILE,
    ) -> None:
        self.run_dir = run_dir
        self.primary = primary
        self.filename = filename
        self._log: _StepLog | None = None
        if primary:
            os.makedirs(run_dir, exist_ok=True)
            self._log = _StepLog(os.path.join(run_dir, filename), strict=False, resume_step=resume_step)

    @property
    def path(self) -> str:
        return os.path.join(self.run_dir, self.filename)

    def truncate_after(self, step: int) -> None:
        if self._log is not None:
            self._log.truncate_after(step)

    def write(self, step: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append `rows` (JSON-able dicts, e.g. prompt/completion/reward) stamped with `step`."""
        step = _check_step(step)
        if isinstance(rows, Mapping):
            raise ValueError("rows must be a sequence of dicts, got a single dict")
        lines = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValueError(f"sample row {i}: expected a dict, got {type(row).__name__}")
            if "step" in row:
                raise ValueError(f"sample row {i}: 'step' is reserved for the row itself")
            lines.append(_dump_line({"step": step, **_json_value(f"sample row {i}", row)}))
        if self._log is None or not lines:
            return
        self._log.check_order(step)
        self._log.append(lines, step)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> SamplesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- progress bar

# (metric key, short label, format) shown in the tqdm postfix when present and finite:
# the two role-level mean rewards, the valid-proposal rate per task type, seconds per step
# (`time/total`: the whole step, generation to update) and generation throughput.
PROGRESS_KEYS: tuple[tuple[str, str, str], ...] = (
    ("reward/solve_mean", "R_solve", "{:+.3f}"),
    ("reward/propose_mean", "R_prop", "{:+.3f}"),
    ("valid/propose_deduction", "valid_ded", "{:.2f}"),
    ("valid/propose_abduction", "valid_abd", "{:.2f}"),
    ("valid/propose_induction", "valid_ind", "{:.2f}"),
    ("time/total", "s/step", "{:.1f}"),
    ("tokens_per_s", "tok/s", "{:.0f}"),
)


def progress_postfix(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The PROGRESS_KEYS present in `metrics` with a finite numeric value, formatted."""
    out: dict[str, str] = {}
    for key, label, fmt in PROGRESS_KEYS:
        value = metrics.get(key)
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out[label] = fmt.format(value)
    return out


class _BarSafeHandler(logging.Handler):
    """Stands in for a console log handler while a bar is shown: formats with the original
    handler and prints through `tqdm.write`, which clears the bar, prints the line and redraws
    the bar below it (a plain write would land in the middle of the bar's line)."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__(inner.level)
        self.inner = inner

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.inner.format(record), file=sys.stderr)
        except Exception:  # a logging failure must never stop training
            self.handleError(record)


def _is_console(handler: logging.Handler) -> bool:
    if type(handler).__name__ == "ABSLHandler":  # absl's root handler writes to stderr
        return True
    return getattr(handler, "stream", None) in (sys.stderr, sys.stdout)


class StepProgress:
    """tqdm bar over training steps that shows a few headline numbers (see PROGRESS_KEYS).

    While the bar is shown, console log lines are printed above it instead of through it.
    """

    def __init__(self, total_steps: int, initial_step: int = 0, enabled: bool = True) -> None:
        total_steps, initial_step = _check_step(total_steps), _check_step(initial_step)
        if initial_step > total_steps:
            raise ValueError(f"initial_step {initial_step} > total_steps {total_steps}")
        from tqdm import tqdm

        self._bar = tqdm(
            total=total_steps, initial=initial_step, disable=not enabled, unit="step", dynamic_ncols=True
        )
        self._n = initial_step
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []
        if enabled:
            root = logging.getLogger()
            for h in list(root.handlers):
                if _is_console(h):
                    wrapper = _BarSafeHandler(h)
                    root.removeHandler(h)
                    root.addHandler(wrapper)
                    self._swapped.append((h, wrapper))

    @property
    def n(self) -> int:
        """The last step reported."""
        return self._n

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Move the bar to `step` (the step just finished) and refresh the postfix."""
        step = _check_step(step)
        if metrics:
            self._bar.set_postfix(progress_postfix(metrics), refresh=False)
        if step > self._n:
            self._bar.update(step - self._n)
            self._n = step
        else:
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
        root = logging.getLogger()
        for original, wrapper in self._swapped:
            root.removeHandler(wrapper)
            root.addHandler(original)
        self._swapped = []

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

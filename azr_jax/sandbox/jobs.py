"""Job and result records, and their JSON form for the pipes between farm, worker and child.

JSON (never pickle) crosses every process boundary: a child runs untrusted code, so whatever it
sends back must be parsed by something that cannot execute it.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import JobOptions
from .wire import (  # noqa: F401 - re-exported
    CHECKING_PROBES,
    ERROR_PREFIX,
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_OUTPUT,
    PROBE_PAIRS,
    PROBE_SCRIPT,
    PROBES,
    REJECTED_PREFIX,
    STATUS_KILLED,
    STATUS_MEMORY,
    STATUS_OK,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    error_status,
)


@dataclass(frozen=True)
class Job:
    """One execution request. Picklable and hashable-free on purpose: it is plain data."""

    probe: str
    program: str = ""
    imports: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    options: JobOptions = field(default_factory=JobOptions)
    # Run on the alternate-hash-seed workers (second half of the cross-seed determinism check).
    alt_seed: bool = False
    # Text served as sys.stdin (eval harness programs that read input).
    stdin: str = ""

    def __post_init__(self) -> None:
        if self.probe not in PROBES:
            raise ValueError(f"unknown probe {self.probe!r}; expected one of {PROBES}")
        for name in ("program", "stdin"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Job.{name} must be str, got {type(getattr(self, name)).__name__}")
        for name in ("imports", "args"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"Job.{name} must be a sequence of str")
            object.__setattr__(self, name, tuple(value))
        if not isinstance(self.options, JobOptions):
            raise TypeError("Job.options must be a JobOptions")
        expected = {PROBE_OUTPUT: 1, PROBE_EQUAL: 2, PROBE_CALL_EQUAL: 2, PROBE_SCRIPT: 0}
        if self.probe in expected and len(self.args) != expected[self.probe]:
            raise ValueError(f"probe {self.probe!r} takes {expected[self.probe]} args, got {len(self.args)}")
        if self.probe == PROBE_PAIRS and (len(self.args) == 0 or len(self.args) % 2):
            raise ValueError("probe 'pairs' takes a non-empty, even number of args (input, output, ...)")

    @property
    def units(self) -> int:
        """How many timeout budgets the job gets (one per hidden pair for induction)."""
        return len(self.args) // 2 if self.probe == PROBE_PAIRS else 1

    def to_wire(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "program": self.program,
            "imports": list(self.imports),
            "args": list(self.args),
            "options": _options_wire(self.options),
            "stdin": self.stdin,
        }


@dataclass(frozen=True)
class Result:
    """Outcome of one job. `verdict` is set by answer-checking probes; None means "not applicable"
    or "the harness itself failed" (never a wrong answer)."""

    status: str
    value: str | None = None
    stdout: str = ""
    wall_s: float = 0.0
    verdict: bool | None = None
    pair_verdicts: tuple[bool | None, ...] = ()
    pair_statuses: tuple[str, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @classmethod
    def from_wire(cls, data: Any, wall_s: Any = None) -> Result:
        """Build a Result from a wire dict, refusing anything that is not exactly the expected shape
        (ValueError): a malformed message never becomes a Result or an exception of another type."""
        if not isinstance(data, dict):
            raise ValueError("result must be a JSON object")
        status = data.get("status")
        if not isinstance(status, str) or not status:
            raise ValueError("result without a status")
        value = data.get("value")
        if value is not None and not isinstance(value, str):
            raise ValueError("result value must be a string or null")
        verdict = data.get("verdict")
        if verdict is not None and not isinstance(verdict, bool):
            raise ValueError("verdict must be a bool or null")
        pv = data.get("pair_verdicts") or []
        ps = data.get("pair_statuses") or []
        if not isinstance(pv, list) or not isinstance(ps, list):
            raise ValueError("per-pair outcomes must be lists")
        if not all(v is None or isinstance(v, bool) for v in pv) or not all(isinstance(s, str) for s in ps):
            raise ValueError("malformed per-pair outcomes")
        stdout = data.get("stdout") or ""
        detail = data.get("detail") or ""
        if not isinstance(stdout, str) or not isinstance(detail, str):
            raise ValueError("stdout/detail must be strings")
        wall = data.get("wall_s", 0.0) if wall_s is None else wall_s
        if isinstance(wall, bool) or not isinstance(wall, (int, float)):
            raise ValueError("wall_s must be a number")
        return cls(status, value, stdout, float(wall), verdict, tuple(pv), tuple(ps), detail)

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "value": self.value,
            "stdout": self.stdout,
            "wall_s": self.wall_s,
            "verdict": self.verdict,
            "pair_verdicts": list(self.pair_verdicts),
            "pair_statuses": list(self.pair_statuses),
            "detail": self.detail,
        }


@functools.lru_cache(maxsize=64)
def _options_wire(options: JobOptions) -> dict[str, Any]:
    """JSON form of a JobOptions; jobs of one batch share an instance, so this runs once per batch."""
    return asdict(options)


def options_from_wire(data: dict[str, Any]) -> JobOptions:
    items = tuple((k, tuple(v) if type(v) is list else v) for k, v in data.items())
    return _options_from_items(items)


@functools.lru_cache(maxsize=64)
def _options_from_items(items: tuple) -> JobOptions:
    """Jobs of one batch share their options: build (and validate) each distinct one once."""
    return JobOptions(**dict(items))

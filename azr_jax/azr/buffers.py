"""Task buffers D_ded, D_abd, D_ind: entries, seeding from files, sampling, checkpoint state.

All randomness comes from an explicit ``numpy.random.Generator`` argument, so every host of a
multi-host run that holds the same buffers and the same generator state draws the same tasks.
Buffers serialise to plain JSON-able dicts for checkpoints.

Official-code behaviours reproduced here (see azr_method.md §1.2-§1.4):

* reference sampling for ded/abd proposers: K entries, uniform, without replacement;
* induction proposer programs: uniform over the concatenation D_abd ++ D_ded (the seed is loaded
  into both, so seed programs are twice as likely as programs proposed for one task only);
* solver tasks, strategy ``max_new``: entries added within ``past_epoch_window`` steps first,
  sampled without replacement up to B, the rest drawn uniformly without replacement from the
  whole buffer (independently of the first draw; with replacement only when the buffer holds
  fewer entries than the rest, where the official ``random.sample`` raises);
* capacity ``max_programs`` with policy ``keep_first`` (official: the list is truncated to its
  first entries, so once full every new entry is silently dropped) or ``ring`` (oldest evicted).
  Recency here is decided by each entry's ``step``; the official code instead counts per-step
  additions (counts that ignore truncation), so with ``keep_first`` on a full buffer it would
  still treat the list tail as "recent". We do not reproduce that second-order quirk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from azr_jax.azr.tasks import TaskType

CapPolicy = Literal["keep_first", "ring"]
CAP_POLICIES: tuple[str, ...] = ("keep_first", "ring")


def _str_tuple(values: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValueError(f"{what} must be a list of strings, got {type(values).__name__}")
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{what} must contain only strings")
    return tuple(values)


@dataclass(frozen=True)
class Triplet:
    """A validated (program, input, output) task; ``output`` is the repr string of f(input)."""

    program: str
    input: str
    output: str
    imports: tuple[str, ...] = ()
    step: int = 0  # training step at which the entry was added (seed = 0)

    def __post_init__(self) -> None:
        for name in ("program", "input", "output"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Triplet.{name} must be a str")
        object.__setattr__(self, "imports", _str_tuple(self.imports, "imports"))
        if not isinstance(self.step, (int, np.integer)) or isinstance(self.step, bool):
            raise ValueError(f"Triplet.step must be an int, got {self.step!r}")
        object.__setattr__(self, "step", int(self.step))

    def to_json(self, include_step: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "program": self.program,
            "input": self.input,
            "output": self.output,
            "imports": list(self.imports),
        }
        if include_step:
            d["step"] = self.step
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Triplet:
        return cls(d["program"], d["input"], d["output"], tuple(d.get("imports", ())), d.get("step", 0))

    @classmethod
    def from_seed_record(cls, d: dict[str, Any], step: int = 0) -> Triplet:
        """Read an official ``*_seed_io.jsonl`` record (snippet/input/output/imports/...)."""
        missing = [k for k in ("snippet", "input", "output") if k not in d]
        if missing:
            raise ValueError(f"seed record lacks keys {missing}")
        return cls(d["snippet"], d["input"], d["output"], _str_tuple(d.get("imports", []), "imports"), step)


@dataclass(frozen=True)
class InductionTask:
    """A program with N (input, output) pairs and the proposer's message.

    The first ``floor(N/2)`` pairs (proposer order, no shuffling) are shown to the solver; the
    rest are hidden and used to check the solver's program.
    """

    program: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    message: str
    imports: tuple[str, ...] = ()
    step: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.program, str) or not isinstance(self.message, str):
            raise ValueError("InductionTask.program and .message must be str")
        object.__setattr__(self, "inputs", _str_tuple(self.inputs, "inputs"))
        object.__setattr__(self, "outputs", _str_tuple(self.outputs, "outputs"))
        object.__setattr__(self, "imports", _str_tuple(self.imports, "imports"))
        if len(self.inputs) != len(self.outputs):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.outputs)} outputs")
        if len(self.inputs) < 2:
            raise ValueError("an induction task needs at least 2 pairs (one given, one hidden)")
        if not isinstance(self.step, (int, np.integer)) or isinstance(self.step, bool):
            raise ValueError(f"InductionTask.step must be an int, got {self.step!r}")
        object.__setattr__(self, "step", int(self.step))

    @property
    def num_given(self) -> int:
        return len(self.inputs) // 2

    @property
    def given_pairs(self) -> list[tuple[str, str]]:
        k = self.num_given
        return list(zip(self.inputs[:k], self.outputs[:k]))

    @property
    def hidden_pairs(self) -> list[tuple[str, str]]:
        k = self.num_given
        return list(zip(self.inputs[k:], self.outputs[k:]))

    def to_json(self, include_step: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "program": self.program,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "message": self.message,
            "imports": list(self.imports),
        }
        if include_step:
            d["step"] = self.step
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InductionTask:
        return cls(
            d["program"],
            tuple(d["inputs"]),
            tuple(d["outputs"]),
            d["message"],
            tuple(d.get("imports", ())),
            d.get("step", 0),
        )

    @classmethod
    def from_seed_record(cls, d: dict[str, Any], step: int = 0) -> InductionTask:
        """Read an official ``*_code_f_seed_io.jsonl`` record (snippet/inputs/outputs/message/imports)."""
        missing = [k for k in ("snippet", "inputs", "outputs", "message") if k not in d]
        if missing:
            raise ValueError(f"induction seed record lacks keys {missing}")
        return cls(
            d["snippet"],
            _str_tuple(d["inputs"], "inputs"),
            _str_tuple(d["outputs"], "outputs"),
            d["message"],
            _str_tuple(d.get("imports", []), "imports"),
            step,
        )


Entry = Triplet | InductionTask
E = TypeVar("E", Triplet, InductionTask)

# §1.3: the identity program is the fallback seed when no seed corpus is given.
_IDENTITY_PROGRAM = "def f(a):\n    return a"
ZERO_TRIPLET = Triplet(program=_IDENTITY_PROGRAM, input='"Hello world"', output='"Hello world"')
# Induction twin: six inputs of varied types (string, int, dict call, float tuple, a string that
# holds a nested list, a big int); the outputs equal the inputs, as in the official entry
# (answers are compared by value, so the literal spelling does not matter).
_ZERO_INDUCTION_INPUTS = (
    '"Hello world"',
    "1",
    "dict(a=1, b=2)",
    "(0.5, 1.5, 2.5)",
    '"[[0, 1], [1, 0]]"',
    "12345678901234567890",
)
ZERO_INDUCTION = InductionTask(
    program=_IDENTITY_PROGRAM,
    inputs=_ZERO_INDUCTION_INPUTS,
    outputs=_ZERO_INDUCTION_INPUTS,
    message="Write a function that gives back exactly what it receives.",
)


def entry_key(entry: Entry | dict[str, Any]) -> str:
    """Canonical JSON of an entry without its step: equal keys = duplicate entries."""
    d = entry if isinstance(entry, dict) else entry.to_json(include_step=False)
    return json.dumps(d, sort_keys=True, ensure_ascii=False)


def dedup_exact(items: Iterable[Any]) -> list[Any]:
    """Drop exact duplicates (same JSON, step ignored), keeping first occurrences in order."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = entry_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            rows.append(row)
    return rows


def load_seed_triplets(path: str | Path, step: int = 0) -> list[Triplet]:
    """Triplets of an official ``*_seed_io.jsonl`` file (loaded into both D_ded and D_abd)."""
    out = []
    for i, row in enumerate(_read_jsonl(path), 1):
        try:
            out.append(Triplet.from_seed_record(row, step))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: record {i}: {e}") from e
    return out


def load_seed_induction(path: str | Path, step: int = 0) -> list[InductionTask]:
    """Induction tasks of an official ``*_code_f_seed_io.jsonl`` file."""
    out = []
    for i, row in enumerate(_read_jsonl(path), 1):
        try:
            out.append(InductionTask.from_seed_record(row, step))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: record {i}: {e}") from e
    return out


class Buffer(Generic[E]):
    """An append-only list of entries with a capacity policy and seeded sampling."""

    def __init__(
        self,
        kind: Literal["triplet", "induction"],
        max_size: int = 16384,
        cap_policy: CapPolicy = "keep_first",
        entries: Iterable[E] = (),
    ) -> None:
        if kind not in ("triplet", "induction"):
            raise ValueError(f"kind must be 'triplet' or 'induction', got {kind!r}")
        if not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be a positive int, got {max_size!r}")
        if cap_policy not in CAP_POLICIES:
            raise ValueError(f"cap_policy must be one of {CAP_POLICIES}, got {cap_policy!r}")
        self.kind = kind
        self.max_size = max_size
        self.cap_policy = cap_policy
        self._entries: list[E] = []
        self.num_dropped = 0  # entries refused (keep_first) or evicted (ring) so far
        self.extend(entries)

    @property
    def _entry_type(self) -> type:
        return Triplet if self.kind == "triplet" else InductionTask

    def add(self, entry: E) -> bool:
        """Append ``entry``; returns False if the cap policy dropped it (keep_first when full)."""
        if not isinstance(entry, self._entry_type):
            raise TypeError(f"{self.kind} buffer cannot hold a {type(entry).__name__}")
        if len(self._entries) >= self.max_size:
            self.num_dropped += 1
            if self.cap_policy == "keep_first":
                return False
            self._entries.pop(0)
        self._entries.append(entry)
        return True

    def extend(self, entries: Iterable[E]) -> int:
        """Append several entries; returns how many were stored."""
        return sum(self.add(e) for e in entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries)

    def __getitem__(self, i: int) -> E:
        return self._entries[i]

    @property
    def entries(self) -> tuple[E, ...]:
        return tuple(self._entries)

    def _require_nonempty(self) -> None:
        if not self._entries:
            raise ValueError(f"cannot sample from an empty {self.kind} buffer (seed it first)")

    def sample_without_replacement(self, rng: np.random.Generator, k: int) -> list[E]:
        """``min(k, len)`` distinct entries, uniformly (proposer references)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if k == 0:
            return []
        self._require_nonempty()
        idx = rng.choice(len(self._entries), size=min(k, len(self._entries)), replace=False)
        return [self._entries[i] for i in idx]

    def sample_uniform(self, rng: np.random.Generator, n: int) -> list[E]:
        """``n`` entries drawn uniformly with replacement."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        self._require_nonempty()
        return [self._entries[i] for i in rng.integers(0, len(self._entries), size=n)]

    def recent_indices(self, current_step: int, window: int) -> np.ndarray:
        """Indices of entries with ``current_step - step <= window``."""
        steps = np.fromiter((e.step for e in self._entries), dtype=np.int64, count=len(self._entries))
        return np.flatnonzero(current_step - steps <= window)

    def sample_recent_first(
        self, rng: np.random.Generator, batch_size: int, current_step: int, window: int = 1
    ) -> list[E]:
        """``max_new`` solver sampling: recent entries first (≤ B, no repeats), then a uniform
        fill without replacement from the whole buffer (with replacement if it is too small)."""
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if batch_size == 0:
            return []
        self._require_nonempty()
        recent = self.recent_indices(current_step, window)
        if len(recent) > batch_size:
            picked = rng.choice(recent, size=batch_size, replace=False)
        else:
            picked = rng.permutation(recent)
        rest = batch_size - len(picked)
        fill = rng.choice(len(self._entries), size=rest, replace=rest > len(self._entries))
        return [self._entries[i] for i in np.concatenate([picked, fill]).astype(np.int64)]

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state (entries, capacity, policy, drop counter)."""
        return {
            "kind": self.kind,
            "max_size": self.max_size,
            "cap_policy": self.cap_policy,
            "num_dropped": self.num_dropped,
            "entries": [e.to_json() for e in self._entries],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace this buffer's contents with ``state`` (kind must match)."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for a {state.get('kind')!r} buffer, this one is {self.kind!r}")
        entries = [self._entry_type.from_json(d) for d in state["entries"]]
        if len(entries) > int(state["max_size"]):
            raise ValueError("state holds more entries than its max_size")
        self.max_size = int(state["max_size"])
        if state["cap_policy"] not in CAP_POLICIES:
            raise ValueError(f"bad cap_policy {state['cap_policy']!r} in state")
        self.cap_policy = state["cap_policy"]
        self._entries = entries
        self.num_dropped = int(state["num_dropped"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Buffer:
        buf = cls(state["kind"], int(state["max_size"]), state["cap_policy"])
        buf.load_state_dict(state)
        return buf


@dataclass(frozen=True)
class BufferConfig:
    """Buffer sizes and sampling knobs (defaults = official self-play settings)."""

    max_programs: int = 16384  # per-buffer cap (Table 3 "Max Programs")
    cap_policy: CapPolicy = "keep_first"  # official: newest dropped when full; "ring": oldest
    num_references: int = 6  # K reference triplets per ded/abd proposer prompt
    past_epoch_window: int = 1  # "recent" = added within this many steps (max_new strategy)

    def __post_init__(self) -> None:
        if self.max_programs < 1:
            raise ValueError("max_programs must be >= 1")
        if self.cap_policy not in CAP_POLICIES:
            raise ValueError(f"cap_policy must be one of {CAP_POLICIES}")
        if self.num_references < 0 or self.past_epoch_window < 0:
            raise ValueError("num_references and past_epoch_window must be >= 0")


@dataclass
class TaskBuffers:
    """D_ded, D_abd and D_ind together, with the sampling used to build each step's prompts."""

    deduction: Buffer[Triplet]
    abduction: Buffer[Triplet]
    induction: Buffer[InductionTask]
    cfg: BufferConfig = field(default_factory=BufferConfig)

    @classmethod
    def from_seed(
        cls,
        triplets: Sequence[Triplet],
        induction: Sequence[InductionTask],
        cfg: BufferConfig = BufferConfig(),
    ) -> TaskBuffers:
        """D_ded = D_abd = the seed triplets; D_ind = the induction seed.

        An empty seed falls back to the identity zero triplet / zero induction task (§1.3).
        """
        triplets = list(triplets) or [ZERO_TRIPLET]
        induction = list(induction) or [ZERO_INDUCTION]

        def make(kind: Literal["triplet", "induction"], items: Sequence[Any]) -> Buffer:
            return Buffer(kind, cfg.max_programs, cfg.cap_policy, items)

        return cls(make("triplet", triplets), make("triplet", triplets), make("induction", induction), cfg)

    @classmethod
    def from_seed_files(
        cls, triplet_path: str | Path, induction_path: str | Path, cfg: BufferConfig = BufferConfig()
    ) -> TaskBuffers:
        return cls.from_seed(load_seed_triplets(triplet_path), load_seed_induction(induction_path), cfg)

    def buffer(self, task: TaskType | str) -> Buffer:
        task = TaskType.parse(task)
        return {
            TaskType.DEDUCTION: self.deduction,
            TaskType.ABDUCTION: self.abduction,
            TaskType.INDUCTION: self.induction,
        }[task]

    def sample_references(
        self, rng: np.random.Generator, task: TaskType | str, batch_size: int
    ) -> list[list[Triplet]]:
        """For each ded/abd proposer prompt, K references from that task's own buffer."""
        task = TaskType.parse(task)
        if task is TaskType.INDUCTION:
            raise ValueError("induction proposers get one program, use sample_induction_programs")
        buf = self.buffer(task)
        return [buf.sample_without_replacement(rng, self.cfg.num_references) for _ in range(batch_size)]

    def sample_induction_programs(self, rng: np.random.Generator, n: int) -> list[Triplet]:
        """One program per induction proposer prompt, uniform over D_abd ++ D_ded."""
        pool = self.abduction.entries + self.deduction.entries
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n and not pool:
            raise ValueError("no programs to build induction prompts from")
        return [pool[i] for i in rng.integers(0, len(pool), size=n)] if n else []

    def sample_solver_tasks(
        self, rng: np.random.Generator, task: TaskType | str, batch_size: int, current_step: int
    ) -> list[Entry]:
        """B solver tasks of ``task`` with the ``max_new`` strategy."""
        return self.buffer(task).sample_recent_first(
            rng, batch_size, current_step, self.cfg.past_epoch_window
        )

    def sizes(self) -> dict[str, int]:
        return {
            "deduction": len(self.deduction),
            "abduction": len(self.abduction),
            "induction": len(self.induction),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "deduction": self.deduction.state_dict(),
            "abduction": self.abduction.state_dict(),
            "induction": self.induction.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("deduction", "abduction", "induction"):
            if name not in state:
                raise ValueError(f"buffer state lacks {name!r}")
        self.deduction.load_state_dict(state["deduction"])
        self.abduction.load_state_dict(state["abduction"])
        self.induction.load_state_dict(state["induction"])

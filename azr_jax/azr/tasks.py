"""Task types, roles and the six (task, role) groups of AZR.

Every part of the trainer (advantages, metrics, batching) refers to a group by the same small
integer, so the order is fixed here once: tasks in the order deduction, abduction, induction,
and within a task the proposer before the solver, i.e. ``group_id = 2 * task_index + role_index``.

The official code names (``code_o`` = deduction, ``code_i`` = abduction, ``code_f`` = induction;
``gen_`` = propose, ``pred_`` = solve) are accepted as aliases so seed files and logs written by
the reference implementation can be read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TaskType(str, enum.Enum):
    """What the solver must infer from a (program, input, output) triplet."""

    DEDUCTION = "deduction"  # given program + input, predict the output
    ABDUCTION = "abduction"  # given program + output, predict an input
    INDUCTION = "induction"  # given input/output pairs + message, write the program

    @property
    def code_name(self) -> str:
        """Name used by the official implementation (``code_o``/``code_i``/``code_f``)."""
        return _TASK_CODE_NAMES[self]

    @property
    def short(self) -> str:
        """Three-letter tag for compact metric names."""
        return self.value[:3]

    @property
    def index(self) -> int:
        return TASK_ORDER.index(self)

    @classmethod
    def parse(cls, name: str | TaskType) -> TaskType:
        """Accept our names, 3-letter tags and the official ``code_*`` aliases."""
        if isinstance(name, TaskType):
            return name
        key = str(name).strip().lower()
        if key in _TASK_ALIASES:
            return _TASK_ALIASES[key]
        raise ValueError(f"unknown task type {name!r}; expected one of {sorted(_TASK_ALIASES)}")


class Role(str, enum.Enum):
    """Which side of self-play produced a response."""

    PROPOSE = "propose"
    SOLVE = "solve"

    @property
    def code_prefix(self) -> str:
        """Prefix used by the official implementation (``gen`` / ``pred``)."""
        return "gen" if self is Role.PROPOSE else "pred"

    @property
    def index(self) -> int:
        return ROLE_ORDER.index(self)

    @classmethod
    def parse(cls, name: str | Role) -> Role:
        if isinstance(name, Role):
            return name
        key = str(name).strip().lower()
        if key in _ROLE_ALIASES:
            return _ROLE_ALIASES[key]
        raise ValueError(f"unknown role {name!r}; expected one of {sorted(_ROLE_ALIASES)}")


_TASK_CODE_NAMES = {
    TaskType.DEDUCTION: "code_o",
    TaskType.ABDUCTION: "code_i",
    TaskType.INDUCTION: "code_f",
}
_TASK_ALIASES = {}
for _t in TaskType:
    _TASK_ALIASES[_t.value] = _t
    _TASK_ALIASES[_t.value[:3]] = _t
    _TASK_ALIASES[_TASK_CODE_NAMES[_t]] = _t
_ROLE_ALIASES = {
    "propose": Role.PROPOSE,
    "proposer": Role.PROPOSE,
    "gen": Role.PROPOSE,
    "solve": Role.SOLVE,
    "solver": Role.SOLVE,
    "pred": Role.SOLVE,
}

TASK_ORDER: tuple[TaskType, ...] = (TaskType.DEDUCTION, TaskType.ABDUCTION, TaskType.INDUCTION)
ROLE_ORDER: tuple[Role, ...] = (Role.PROPOSE, Role.SOLVE)


@dataclass(frozen=True)
class Group:
    """One (task, role) pair; the unit over which TRR++ normalises rewards."""

    task: TaskType
    role: Role

    @property
    def id(self) -> int:
        return group_id(self.task, self.role)

    @property
    def name(self) -> str:
        """Metric-friendly name, e.g. ``propose_deduction``."""
        return f"{self.role.value}_{self.task.value}"

    @property
    def code_name(self) -> str:
        """Official name, e.g. ``gen_code_o``."""
        return f"{self.role.code_prefix}_{self.task.code_name}"


def group_id(task: TaskType | str, role: Role | str) -> int:
    """Stable integer id of a (task, role) group: ``2 * task_index + role_index``."""
    return TaskType.parse(task).index * len(ROLE_ORDER) + Role.parse(role).index


ALL_GROUPS: tuple[Group, ...] = tuple(Group(t, r) for t in TASK_ORDER for r in ROLE_ORDER)
NUM_GROUPS: int = len(ALL_GROUPS)


def group_from_id(gid: int) -> Group:
    """Inverse of :func:`group_id`."""
    if not isinstance(gid, int) or isinstance(gid, bool) or not 0 <= gid < NUM_GROUPS:
        raise ValueError(f"group id must be an int in [0, {NUM_GROUPS}), got {gid!r}")
    return ALL_GROUPS[gid]


def group_from_name(name: str) -> Group:
    """Parse ``propose_deduction`` style or official ``gen_code_o`` style names."""
    for g in ALL_GROUPS:
        if name in (g.name, g.code_name):
            return g
    raise ValueError(
        f"unknown group {name!r}; expected one of {[g.name for g in ALL_GROUPS]} "
        f"or {[g.code_name for g in ALL_GROUPS]}"
    )

"""Scalar rewards of AZR (azr_method.md §4.2): proposer learnability and format-aware solver reward.

Proposer (per proposal):

==================================================  =========================================
invalid / unparseable / failed validation            ``invalid`` (-1)
valid task, R1 format flag 0 (still buffered)        ``format_error`` (-1)
valid, formatted, solve rate a in (0, 1)             1 - a
valid, formatted, a in {0, 1}                        ``-0.5`` (official code) or ``0`` (paper Eq. 4)
==================================================  =========================================

The last row is the one paper-vs-code discrepancy here: switch ``extreme_solve_rate`` selects
``"official"`` (default, -0.5, GitHub issue #37) or ``"paper"`` (0).

Solver (per answer): +1 correct and formatted, -0.5 formatted but wrong, -1 format flag 0 (or,
for induction, no code block). A harness failure (``None``) counts as wrong. Evaluation uses
plain 0/1 accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RewardConfig:
    """Reward values (defaults = official code)."""

    # Paper-vs-code switch for a solve rate of exactly 0 or 1: "official" -> extreme_reward_official,
    # "paper" -> 0 (Eq. 4).
    extreme_solve_rate: Literal["official", "paper"] = "official"
    extreme_reward_official: float = -0.5
    proposer_invalid: float = -1.0  # unparseable or failed validation/execution
    proposer_format_error: float = -1.0  # valid task but the think/answer format check failed
    solver_correct: float = 1.0
    solver_wrong: float = -0.5  # well formatted but wrong (Eq. 6)
    solver_format_error: float = -1.0

    def __post_init__(self) -> None:
        if self.extreme_solve_rate not in ("official", "paper"):
            raise ValueError(
                f"extreme_solve_rate must be 'official' or 'paper', got {self.extreme_solve_rate!r}"
            )


def solve_rate(outcomes: Sequence[bool | float | int | None]) -> float:
    """Mean of the G learnability outcomes, ``None`` (harness failure) excluded.

    Returns 0.0 when there are no usable outcomes (no rollouts, all failed, or the solver prompt
    was filtered out), as the official code does.
    """
    usable = []
    for o in outcomes:
        if o is None:
            continue
        v = float(o)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"learnability outcomes must be in [0, 1] or None, got {o!r}")
        usable.append(v)
    return sum(usable) / len(usable) if usable else 0.0


def learnability_reward(rate: float, cfg: RewardConfig = RewardConfig()) -> float:
    """1 - a for a strictly between 0 and 1; the configured value at a = 0 or a = 1."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"solve rate must be in [0, 1], got {rate}")
    if rate in (0.0, 1.0):
        return cfg.extreme_reward_official if cfg.extreme_solve_rate == "official" else 0.0
    return 1.0 - rate


def proposer_reward(
    valid: bool, formatted: bool, rate: float | None, cfg: RewardConfig = RewardConfig()
) -> float:
    """Reward of one proposal given validity, the R1 format flag and the solve rate.

    ``rate`` is only read for valid, formatted proposals (it may be None otherwise).
    """
    if not valid:
        return cfg.proposer_invalid
    if not formatted:
        return cfg.proposer_format_error
    if rate is None:
        raise ValueError("a valid, formatted proposal needs a solve rate")
    return learnability_reward(rate, cfg)


def solver_reward(
    formatted: bool, parsed: bool, correct: bool | None, cfg: RewardConfig = RewardConfig()
) -> float:
    """Format-aware solver reward.

    ``parsed`` is False when the answer could not be extracted at all (no ``<answer>``, or no
    code block for induction); ``correct=None`` means the checking harness failed (counts as wrong).
    """
    if not formatted or not parsed:
        return cfg.solver_format_error
    return cfg.solver_correct if correct else cfg.solver_wrong


def eval_accuracy(correct: bool | None) -> float:
    """Validation/evaluation score: 1.0 if correct, else 0.0 (harness failure included)."""
    return 1.0 if correct else 0.0

"""The reward table of azr_method.md §4.2, case by case."""

import numpy as np
import pytest

from azr_jax.azr.rewards import (
    RewardConfig,
    eval_accuracy,
    learnability_reward,
    proposer_reward,
    solve_rate,
    solver_reward,
)

PAPER = RewardConfig(extreme_solve_rate="paper")


@pytest.mark.parametrize(
    "outcomes, expected",
    [
        ([True] * 8, 1.0),
        ([False] * 8, 0.0),
        ([True, False, False, False, False, False, False, False], 1 / 8),
        ([1, 1, 0, None, None, 0, 1, 0], 3 / 6),  # harness failures excluded
        ([None] * 8, 0.0),  # nothing usable
        ([], 0.0),  # no rollouts (e.g. solver prompt filtered)
        ([np.bool_(True), 0.0], 0.5),
    ],
)
def test_solve_rate(outcomes, expected):
    assert solve_rate(outcomes) == pytest.approx(expected)


def test_solve_rate_rejects_out_of_range():
    with pytest.raises(ValueError):
        solve_rate([2])


@pytest.mark.parametrize(
    "valid, formatted, rate, official, paper",
    [
        (False, False, None, -1.0, -1.0),  # unparseable / invalid program
        (False, True, None, -1.0, -1.0),  # validation failure even if well formatted
        (True, False, 0.5, -1.0, -1.0),  # valid task (buffered) but format flag 0
        (True, True, 1 / 8, 0.875, 0.875),  # best attainable with G = 8
        (True, True, 0.5, 0.5, 0.5),
        (True, True, 7 / 8, 0.125, 0.125),
        (True, True, 0.0, -0.5, 0.0),  # never solved: code -0.5, paper 0
        (True, True, 1.0, -0.5, 0.0),  # always solved: code -0.5, paper 0
    ],
)
def test_proposer_reward_table(valid, formatted, rate, official, paper):
    assert proposer_reward(valid, formatted, rate) == pytest.approx(official)
    assert proposer_reward(valid, formatted, rate, PAPER) == pytest.approx(paper)


def test_proposer_reward_needs_rate_when_valid_and_formatted():
    with pytest.raises(ValueError):
        proposer_reward(True, True, None)
    with pytest.raises(ValueError):
        learnability_reward(1.5)
    with pytest.raises(ValueError):
        RewardConfig(extreme_solve_rate="both")


def test_learnability_from_outcomes():
    assert learnability_reward(solve_rate([1, 0, 0, 0])) == pytest.approx(0.75)
    assert learnability_reward(solve_rate([1, None])) == pytest.approx(-0.5)


@pytest.mark.parametrize(
    "formatted, parsed, correct, expected",
    [
        (True, True, True, 1.0),
        (True, True, False, -0.5),
        (True, True, None, -0.5),  # harness failure counts as wrong
        (False, True, True, -1.0),  # correct but badly formatted
        (False, True, False, -1.0),
        (True, False, None, -1.0),  # induction without a code block
    ],
)
def test_solver_reward_table(formatted, parsed, correct, expected):
    assert solver_reward(formatted, parsed, correct) == expected


def test_eval_accuracy():
    assert [eval_accuracy(c) for c in (True, False, None)] == [1.0, 0.0, 0.0]

"""TRR++ advantages vs hand values and a plain-Python reference loop."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.rl.advantages import (
    AdvantageConfig,
    compute_advantages,
    group_reward_stats,
    outcome_returns,
    sample_zscore_advantages,
    token_whiten_advantages,
)

# ---------------------------------------------------------------- plain-Python references


def ref_returns(rewards, mask, gamma):
    B, T = len(mask), len(mask[0])
    out = [[0.0] * T for _ in range(B)]
    for b in range(B):
        valid = [t for t in range(T) if mask[b][t]]
        last = valid[-1] if valid else None
        running = 0.0
        for t in reversed(range(T)):
            running = (rewards[b] if t == last else 0.0) + gamma * running
            out[b][t] = running
            running *= mask[b][t]
    return out


def ref_token_whiten(rewards, gids, mask, groups=6, gamma=1.0, eps=1e-8):
    B, T = len(mask), len(mask[0])
    rets = ref_returns(rewards, mask, gamma)
    out = [[0.0] * T for _ in range(B)]
    for g in range(groups):
        cells = [(b, t) for b in range(B) if gids[b] == g for t in range(T) if mask[b][t]]
        if not cells:
            continue
        vals = [rets[b][t] for b, t in cells]
        n = len(vals)
        mu = sum(vals) / n
        var = sum((v - mu) ** 2 for v in vals) / (n - 1) if n > 1 else 0.0
        for b, t in cells:
            out[b][t] = (rets[b][t] - mu) / math.sqrt(var + eps)
    return out


def ref_sample_zscore(rewards, gids, mask, groups=6, eps=1e-6, ddof=0):
    B, T = len(mask), len(mask[0])
    out = [[0.0] * T for _ in range(B)]
    for g in range(groups):
        rows = [b for b in range(B) if gids[b] == g and any(mask[b])]
        if not rows:
            continue
        vals = [rewards[b] for b in rows]
        n = len(vals)
        mu = sum(vals) / n
        var = sum((v - mu) ** 2 for v in vals) / (n - ddof) if n > ddof else 0.0
        for b in rows:
            a = (rewards[b] - mu) / (math.sqrt(var) + eps)
            for t in range(T):
                out[b][t] = a if mask[b][t] else 0.0
    return out


def mixed_batch():
    """All six groups, varied lengths and rewards, one padding row, one row with a mask hole."""
    lengths = [3, 7, 1, 5, 2, 6, 4, 4, 7, 2, 3, 5, 1, 6, 0]
    gids = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5, -1]
    rewards = [0.875, -1.0, -0.5, 1.0, -0.5, -1.0, 0.25, -1.0, 1.0, 1.0, -0.5, -0.5, 0.625, 1.0, 3.0]
    T = 7
    mask = [[1 if t < L else 0 for t in range(T)] for L in lengths]
    mask[14] = [1, 1, 0, 0, 0, 0, 0]  # padding row (group -1) with tokens: must be ignored
    mask[6] = [1, 0, 1, 1, 0, 0, 0]  # a hole inside a response
    return rewards, gids, mask


# ---------------------------------------------------------------- hand-computed cases


def test_token_whiten_hand_values():
    # group 0: R=+1 over 1 token, R=-1 over 3 tokens -> token returns [1, -1, -1, -1]
    # mean -0.5, unbiased var = (2.25 + 3 * 0.25) / 3 = 1 -> advantages 1.5 and -0.5
    rewards = jnp.array([1.0, -1.0])
    gids = jnp.array([0, 0])
    mask = jnp.array([[1, 0, 0], [1, 1, 1]])
    adv = token_whiten_advantages(rewards, gids, mask)
    expected = np.array([[1.5, 0, 0], [-0.5, -0.5, -0.5]]) / math.sqrt(1 + 1e-8)
    np.testing.assert_allclose(np.asarray(adv), expected, rtol=1e-6, atol=1e-7)


def test_sample_zscore_hand_values():
    # same batch, per-sample: mean 0, population std 1 -> +-1 / (1 + 1e-6), lengths irrelevant
    adv = sample_zscore_advantages(
        jnp.array([1.0, -1.0]), jnp.array([0, 0]), jnp.array([[1, 0, 0], [1, 1, 1]])
    )
    a = 1 / (1 + 1e-6)
    np.testing.assert_allclose(np.asarray(adv), [[a, 0, 0], [-a, -a, -a]], rtol=1e-6)
    # unbiased std: sqrt(2) -> +-1/sqrt(2)
    adv = sample_zscore_advantages(
        jnp.array([1.0, -1.0]), jnp.array([0, 0]), jnp.array([[1, 0], [1, 1]]), ddof=1
    )
    np.testing.assert_allclose(
        np.asarray(adv)[:, 0], [1 / (math.sqrt(2) + 1e-6), -1 / (math.sqrt(2) + 1e-6)], rtol=1e-6
    )


def test_outcome_returns_with_discount():
    g = outcome_returns(jnp.array([1.0, 2.0]), jnp.array([[1, 1, 1, 0], [1, 0, 1, 1]]), gamma=0.5)
    np.testing.assert_allclose(np.asarray(g), [[0.25, 0.5, 1.0, 0.0], [0.0, 0.0, 1.0, 2.0]])


# ---------------------------------------------------------------- reference-loop comparisons


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_token_whiten_matches_reference_on_six_groups(gamma):
    rewards, gids, mask = mixed_batch()
    adv = token_whiten_advantages(jnp.array(rewards), jnp.array(gids), jnp.array(mask), gamma=gamma)
    np.testing.assert_allclose(
        np.asarray(adv), ref_token_whiten(rewards, gids, mask, gamma=gamma), rtol=2e-5, atol=2e-6
    )
    assert np.all(np.asarray(adv)[14] == 0)  # padding row
    assert np.all(np.asarray(adv)[np.array(mask) == 0] == 0)


@pytest.mark.parametrize("ddof", [0, 1])
def test_sample_zscore_matches_reference_on_six_groups(ddof):
    rewards, gids, mask = mixed_batch()
    adv = sample_zscore_advantages(jnp.array(rewards), jnp.array(gids), jnp.array(mask), ddof=ddof)
    np.testing.assert_allclose(
        np.asarray(adv), ref_sample_zscore(rewards, gids, mask, ddof=ddof), rtol=2e-5, atol=2e-6
    )


def test_groups_are_normalised_independently():
    # Shifting every reward of one group by a constant leaves all advantages unchanged.
    rewards, gids, mask = mixed_batch()
    shifted = [r + (10.0 if g == 3 else 0.0) for r, g in zip(rewards, gids)]
    for fn in (token_whiten_advantages, sample_zscore_advantages):
        a = fn(jnp.array(rewards), jnp.array(gids), jnp.array(mask))
        b = fn(jnp.array(shifted), jnp.array(gids), jnp.array(mask))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)


def test_jit_with_static_config_matches_eager():
    rewards, gids, mask = mixed_batch()
    args = (jnp.array(rewards), jnp.array(gids, dtype=jnp.int32), jnp.array(mask, dtype=jnp.bool_))
    for method in ("token_whiten", "sample_zscore"):
        cfg = AdvantageConfig(method=method)
        eager = compute_advantages(*args, cfg)
        jitted = jax.jit(compute_advantages, static_argnames="cfg")(*args, cfg=cfg)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- degenerate groups


@pytest.mark.parametrize("method", ["token_whiten", "sample_zscore"])
def test_degenerate_groups_give_zero_not_nan(method):
    cfg = AdvantageConfig(method=method)
    # group 0: single sample with a single token; group 1: all rewards equal (0.3, awkward in fp32);
    # group 2: one sample, several tokens; groups 3-5 empty; a row with no valid token in group 4.
    rewards = jnp.array([0.7, 0.3, 0.3, 0.3, -1.0, 5.0])
    gids = jnp.array([0, 1, 1, 1, 2, 4])
    mask = jnp.array([[1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    adv = np.asarray(compute_advantages(rewards, gids, mask, cfg))
    assert np.all(np.isfinite(adv))
    np.testing.assert_allclose(adv, 0.0, atol=1e-3)


def test_all_rows_padding_or_empty():
    adv = token_whiten_advantages(jnp.array([1.0, 2.0]), jnp.array([-1, 6]), jnp.ones((2, 3)))
    assert np.all(np.asarray(adv) == 0)


def test_input_validation():
    with pytest.raises(ValueError, match="batch sizes"):
        token_whiten_advantages(jnp.zeros(3), jnp.zeros(2, jnp.int32), jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="integers"):
        sample_zscore_advantages(jnp.zeros(2), jnp.zeros(2), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="expected"):
        token_whiten_advantages(jnp.zeros((2, 1)), jnp.zeros(2, jnp.int32), jnp.ones((2, 4)))
    with pytest.raises(ValueError):
        AdvantageConfig(method="gae")
    with pytest.raises(ValueError):
        AdvantageConfig(zscore_ddof=2)


def test_group_reward_stats():
    stats = group_reward_stats(jnp.array([1.0, 3.0, -1.0, 7.0]), jnp.array([0, 0, 2, -1]))
    np.testing.assert_allclose(np.asarray(stats["count"]), [2, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(np.asarray(stats["mean"])[[0, 2]], [2.0, -1.0])
    np.testing.assert_allclose(np.asarray(stats["std"])[[0, 2]], [1.0, 0.0])

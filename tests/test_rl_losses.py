"""Loss pieces: log-probs/entropy vs numpy, clipped surrogate hand values, gradient signs,
exact micro-batch accumulation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.rl.losses import (
    LossConfig,
    add_parts,
    clipped_surrogate,
    finalize,
    low_var_kl,
    policy_loss,
    policy_loss_parts,
    policy_loss_parts_from_logits,
    token_entropy,
    token_logprobs,
)


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


# ---------------------------------------------------------------- log-probs and entropy


def test_token_logprobs_and_entropy_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 9)).astype(np.float32) * 3
    targets = rng.integers(0, 9, size=(3, 4))
    lp = np_log_softmax(logits)
    want_lp = np.take_along_axis(lp, targets[..., None], -1)[..., 0]
    want_ent = -(np.exp(lp) * lp).sum(-1)
    got_lp = token_logprobs(jnp.array(logits), jnp.array(targets))
    got_ent = token_entropy(jnp.array(logits))
    assert got_lp.dtype == jnp.float32 and got_ent.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got_lp), want_lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_ent), want_ent, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(token_entropy(jnp.zeros((1, 1, 5)))), [[math.log(5)]], rtol=1e-6)


def test_bf16_logits_are_upcast_and_extremes_are_stable():
    rng = np.random.default_rng(1)
    logits = jnp.array(rng.normal(size=(2, 3, 11)) * 4, dtype=jnp.bfloat16)
    targets = jnp.array(rng.integers(0, 11, size=(2, 3)))
    got = token_logprobs(logits, targets)
    assert got.dtype == jnp.float32
    want = np.take_along_axis(
        np_log_softmax(np.asarray(logits.astype(jnp.float32))), np.asarray(targets)[..., None], -1
    )[..., 0]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    big = jnp.array([[[1e4, 0.0, -1e4]]], dtype=jnp.float32)
    lp = token_logprobs(jnp.concatenate([big, big], 1), jnp.array([[0, 2]]))
    np.testing.assert_allclose(np.asarray(lp), [[0.0, -2e4]], atol=1e-3)
    assert np.all(np.isfinite(np.asarray(token_entropy(big))))


def test_token_logprobs_shape_check():
    with pytest.raises(ValueError):
        token_logprobs(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4), jnp.int32))


# ---------------------------------------------------------------- surrogate


@pytest.mark.parametrize(
    "adv, ratio, loss, clipped",
    [
        (1.0, 1.0, -1.0, False),
        (1.0, 1.5, -1.2, True),  # max(-1.5, -1.2)
        (1.0, 0.5, -0.5, False),  # max(-0.5, -0.8)
        (-1.0, 1.5, 1.5, False),  # max(1.5, 1.2)
        (-1.0, 0.5, 0.8, True),  # max(0.5, 0.8)
        (2.0, 1.1, -2.2, False),
    ],
)
def test_clipped_surrogate_hand_values(adv, ratio, loss, clipped):
    logp = jnp.array([[math.log(ratio)]])
    out, active, r = clipped_surrogate(logp, jnp.zeros((1, 1)), jnp.array([[adv]]))
    np.testing.assert_allclose(float(out[0, 0]), loss, rtol=1e-6)
    assert bool(active[0, 0]) is clipped
    np.testing.assert_allclose(float(r[0, 0]), ratio, rtol=1e-6)


def test_asymmetric_clip_dual_clip_and_log_ratio_clamp():
    cfg = LossConfig(clip_eps_low=0.2, clip_eps_high=0.28)
    out, _, _ = clipped_surrogate(jnp.array([[math.log(2.0)]]), jnp.zeros((1, 1)), jnp.array([[1.0]]), cfg)
    np.testing.assert_allclose(float(out[0, 0]), -1.28, rtol=1e-6)
    cfg = LossConfig(dual_clip_c=3.0)
    out, _, _ = clipped_surrogate(jnp.array([[math.log(10.0)]]), jnp.zeros((1, 1)), jnp.array([[-1.0]]), cfg)
    np.testing.assert_allclose(float(out[0, 0]), 3.0, rtol=1e-6)  # min(max(10, 1.2), 3)
    out, _, _ = clipped_surrogate(jnp.array([[math.log(10.0)]]), jnp.zeros((1, 1)), jnp.array([[-1.0]]))
    np.testing.assert_allclose(float(out[0, 0]), 10.0, rtol=1e-5)  # dual clip off by default
    out, _, r = clipped_surrogate(jnp.array([[500.0]]), jnp.zeros((1, 1)), jnp.array([[-1.0]]))
    assert np.isfinite(float(out[0, 0])) and float(r[0, 0]) == pytest.approx(math.exp(20.0), rel=1e-5)
    with pytest.raises(ValueError):
        LossConfig(dual_clip_c=1.0)
    with pytest.raises(ValueError):
        LossConfig(aggregation="sum")


def test_low_var_kl_hand_value():
    d = math.log(0.25) - math.log(0.5)  # ref - logp
    want = math.exp(d) - d - 1  # 0.5 + ln 2 - 1
    got = low_var_kl(jnp.array([math.log(0.5)]), jnp.array([math.log(0.25)]))
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-6)
    assert float(low_var_kl(jnp.array([0.3]), jnp.array([0.3]))[0]) == 0.0


# ---------------------------------------------------------------- loss value and gradient on a toy


def _toy(adv):
    logits = jnp.zeros((1, 2, 3))  # uniform: logp = -ln 3, entropy = ln 3
    targets = jnp.array([[0, 2]])
    old = token_logprobs(logits, targets)
    return logits, targets, old, jnp.array([adv]), jnp.ones((1, 2))


def test_two_token_toy_loss_value():
    logits, targets, old, adv, mask = _toy([2.0, -1.0])
    loss, metrics = policy_loss(logits, targets, old, adv, mask)
    # ratio 1: per-token pg = -A = [-2, 1], token-mean -0.5, minus 0.001 * ln 3
    assert float(loss) == pytest.approx(-0.5 - 0.001 * math.log(3), rel=1e-6)
    assert float(metrics["pg_loss"]) == pytest.approx(-0.5, rel=1e-6)
    assert float(metrics["entropy"]) == pytest.approx(math.log(3), rel=1e-6)
    assert float(metrics["clipfrac"]) == 0.0 and float(metrics["ratio"]) == pytest.approx(1.0)
    assert float(metrics["num_tokens"]) == 2.0
    with_kl, m2 = policy_loss(
        logits, targets, old, adv, mask, LossConfig(kl_coef=0.5), ref_logp=old + jnp.log(0.5)
    )
    k3 = 0.5 - math.log(0.5) - 1
    assert float(with_kl) == pytest.approx(-0.5 - 0.001 * math.log(3) + 0.5 * k3, rel=1e-6)
    assert float(m2["kl_ref"]) == pytest.approx(k3, rel=1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_gradient_moves_logprob_with_advantage_sign(sign):
    logits, targets, old, adv, mask = _toy([sign, 0.0])
    grad = jax.jit(jax.grad(lambda lg: policy_loss(lg, targets, old, adv, mask)[0]))(logits)
    # d loss / d logit of the taken token at position 0 has the sign of -A
    assert np.sign(float(grad[0, 0, 0])) == -sign
    # position 1 has A = 0: only the (tiny) entropy term acts there, and at uniform logits its
    # gradient vanishes
    np.testing.assert_allclose(np.asarray(grad[0, 1]), 0.0, atol=1e-7)
    new_logits = logits - 1.0 * grad
    before = float(token_logprobs(logits, targets)[0, 0])
    after = float(token_logprobs(new_logits, targets)[0, 0])
    assert (after - before) * sign > 0


def test_clipped_tokens_get_no_policy_gradient():
    logp0 = jnp.array([[math.log(1.5)]])
    g = jax.grad(
        lambda lp: (
            policy_loss_parts(
                lp, jnp.zeros((1, 1)), jnp.array([[1.0]]), jnp.ones((1, 1)), LossConfig(entropy_coef=0.0)
            ).loss_sum
        )
    )(logp0)
    assert float(g[0, 0]) == 0.0
    g = jax.grad(
        lambda lp: (
            policy_loss_parts(
                lp, jnp.zeros((1, 1)), jnp.array([[1.0]]), jnp.ones((1, 1)), LossConfig(entropy_coef=0.0)
            ).loss_sum
        )
    )(jnp.array([[math.log(0.5)]]))
    assert float(g[0, 0]) == pytest.approx(-0.5)  # d(-A r)/d logp = -A r


# ---------------------------------------------------------------- aggregation and accumulation


def test_seq_mean_token_mean_hand_value():
    # seq 0: 1 token, A=3 -> -3; seq 1: 3 tokens, A=1 -> mean -1; seq 2: empty
    logp = jnp.zeros((3, 3))
    adv = jnp.array([[3.0, 0, 0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]])
    mask = jnp.array([[1, 0, 0], [1, 1, 1], [0, 0, 0]])
    parts = policy_loss_parts(
        logp, logp, adv, mask, LossConfig(entropy_coef=0.0, aggregation="seq-mean-token-mean")
    )
    assert float(finalize(parts)[0]) == pytest.approx(-2.0)
    parts = policy_loss_parts(logp, logp, adv, mask, LossConfig(entropy_coef=0.0))
    assert float(finalize(parts)[0]) == pytest.approx(-1.5)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean"])
def test_micro_batch_accumulation_is_exact(aggregation):
    rng = np.random.default_rng(2)
    B, T, V = 5, 6, 7
    logits = jnp.array(rng.normal(size=(B, T, V)), jnp.float32)
    targets = jnp.array(rng.integers(0, V, size=(B, T)))
    old = token_logprobs(logits, targets) + jnp.array(rng.normal(size=(B, T)) * 0.1, jnp.float32)
    adv = jnp.array(rng.normal(size=(B, T)) + np.array([[2.0], [2.0], [0], [0], [0]]), jnp.float32)
    lengths = np.array([6, 1, 2, 5, 3])
    mask = jnp.array((np.arange(T)[None] < lengths[:, None]).astype(np.float32))
    cfg = LossConfig(aggregation=aggregation)

    def full(lg):
        return finalize(policy_loss_parts_from_logits(lg, targets, old, adv, mask, cfg))[0]

    def accumulated(lg):
        parts = [
            policy_loss_parts_from_logits(lg[s], targets[s], old[s], adv[s], mask[s], cfg)
            for s in (slice(0, 2), slice(2, 5))
        ]
        return finalize(add_parts(*parts))[0]

    def naive(lg):  # mean of micro-batch means: differs when token counts differ
        return jnp.mean(
            jnp.stack(
                [
                    finalize(policy_loss_parts_from_logits(lg[s], targets[s], old[s], adv[s], mask[s], cfg))[
                        0
                    ]
                    for s in (slice(0, 2), slice(2, 5))
                ]
            )
        )

    full_v, full_g = jax.jit(jax.value_and_grad(full))(logits)
    acc_v, acc_g = jax.jit(jax.value_and_grad(accumulated))(logits)
    np.testing.assert_allclose(float(acc_v), float(full_v), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(acc_g), np.asarray(full_g), rtol=1e-5, atol=1e-7)
    assert abs(float(jax.jit(naive)(logits)) - float(full_v)) > 1e-3  # so the check has teeth


def test_empty_batch_loss_is_zero_and_errors():
    z = jnp.zeros((2, 3))
    loss, metrics = finalize(policy_loss_parts(z, z, z, z, LossConfig(entropy_coef=0.0)))
    assert float(loss) == 0.0 and float(metrics["num_tokens"]) == 0.0
    with pytest.raises(ValueError, match="entropy"):
        policy_loss_parts(z, z, z, z)
    with pytest.raises(ValueError, match="reference"):
        policy_loss_parts(z, z, z, z, LossConfig(entropy_coef=0.0, kl_coef=0.1))
    with pytest.raises(ValueError, match="share"):
        policy_loss_parts(z, z, jnp.zeros((2, 4)), z, LossConfig(entropy_coef=0.0))
    a = policy_loss_parts(z, z, z, jnp.ones((2, 3)), LossConfig(entropy_coef=0.0))
    b = policy_loss_parts(z, z, z, jnp.ones((2, 3)), LossConfig(entropy_coef=0.0), entropy=z)
    with pytest.raises(ValueError, match="metric keys"):
        add_parts(a, b)


def test_policy_loss_jits():
    logits, targets, old, adv, mask = _toy([1.0, -0.5])
    eager = policy_loss(logits, targets, old, adv, mask)[0]
    jitted = jax.jit(lambda *a: policy_loss(*a)[0])(logits, targets, old, adv, mask)
    np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)

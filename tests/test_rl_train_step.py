"""The jitted update: chunked logprobs, exact micro-batch accumulation, sharded == 1 device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.rl.losses import LossConfig, policy_loss_parts, token_entropy, token_logprobs
from azr_jax.rl.train_step import (
    OptimConfig,
    StepConfig,
    TrainBatch,
    Trainer,
    make_optimizer,
    sequence_logprobs,
)
from sharding.mesh import make_mesh
from sharding.rules import ShardingRules

CFG = ModelConfig(
    architecture="qwen2",
    vocab_size=96,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    qkv_bias=True,
    tie_word_embeddings=False,
    remat="full",
)


def _batch(B=8, P=6, C=7, seed=0) -> TrainBatch:
    rng = np.random.default_rng(seed)
    L = P + C
    tokens = rng.integers(1, CFG.vocab_size, (B, L)).astype(np.int32)
    attn = np.ones((B, L), np.int32)
    loss = np.zeros((B, L), np.int32)
    for i in range(B):
        pl = rng.integers(1, P + 1)  # prompt length (left padded)
        cl = rng.integers(1, C + 1)  # completion length (right padded)
        attn[i, : P - pl] = 0
        attn[i, P + cl :] = 0
        tokens[i, : P - pl] = 0
        tokens[i, P + cl :] = 0
        loss[i, P : P + cl] = 1
    adv = (rng.normal(size=(B, 1)) * loss).astype(np.float32)
    old = (rng.normal(size=(B, L)) * 0.1 - 3.0).astype(np.float32) * loss
    return TrainBatch(tokens, attn, loss, adv, old)


def _reference_logprobs(params, tokens, attn):
    logits, _ = api.apply(CFG, params, tokens, api.positions_from_mask(attn), attn)
    lp = token_logprobs(logits[:, :-1], tokens[:, 1:])
    ent = token_entropy(logits[:, :-1])
    z = jnp.zeros((tokens.shape[0], 1))
    return jnp.concatenate([z, lp], 1), jnp.concatenate([z, ent], 1)


@pytest.mark.slow  # ~17 s: one compile per chunk size
def test_chunked_logprobs_match_full_forward():
    params = api.init_params(CFG, seed=1)
    b = _batch()
    lp, ent = sequence_logprobs(CFG, params, b.tokens, b.attn_mask, chunk=5)  # 12 % 5 != 0
    ref_lp, ref_ent = _reference_logprobs(params, b.tokens, b.attn_mask)
    m = b.attn_mask.astype(bool)
    np.testing.assert_allclose(np.asarray(lp)[m], np.asarray(ref_lp)[m], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ent)[m], np.asarray(ref_ent)[m], atol=1e-5)
    # only the completion columns (from 6 on): same values there, zeros before
    lp6, _ = sequence_logprobs(CFG, params, b.tokens, b.attn_mask, chunk=4, start=6)
    np.testing.assert_allclose(np.asarray(lp6)[:, 6:], np.asarray(lp)[:, 6:], atol=1e-6)
    assert not np.asarray(lp6)[:, :6].any()


@pytest.mark.slow
def test_microbatched_update_equals_full_batch_reference():
    params = api.init_params(CFG, seed=2)
    b = _batch(seed=3)
    # eps large enough that the first Adam step is smooth in g (at eps=1e-8 it is ~lr*sign(g),
    # which turns 1e-9 gradient noise on near-zero entries into full-size differences)
    optim = OptimConfig(learning_rate=1e-2, weight_decay=0.01, eps=1e-3)
    lcfg = LossConfig()

    def ref_loss(p):
        lp, ent = _reference_logprobs(p, b.tokens, b.attn_mask)
        parts = policy_loss_parts(lp, b.old_logprobs, b.advantages, b.loss_mask, lcfg, entropy=ent)
        return parts.loss_sum / parts.loss_denom

    ref_value, grads = jax.value_and_grad(ref_loss)(params)
    tx = make_optimizer(optim)
    upd, _ = tx.update(grads, tx.init(params), params)
    ref_params = optax.apply_updates(params, upd)

    trainer = Trainer(CFG, optim=optim, loss=lcfg, step_cfg=StepConfig(micro_batch_size=2, logit_chunk=4))
    state = trainer.init_state(jax.tree.map(jnp.array, params))
    state, metrics = trainer.update(state, b)
    assert metrics["loss"] == pytest.approx(float(ref_value), rel=1e-5, abs=1e-7)
    assert metrics["grad_norm"] == pytest.approx(float(optax.tree.norm(grads)), rel=1e-4)
    assert int(state.step) == 1
    jax.tree.map(
        lambda a, r: np.testing.assert_allclose(np.asarray(a), np.asarray(r), atol=1e-5),
        state.params,
        ref_params,
    )


@pytest.mark.slow  # ~14 s: compiles the whole update (test_rl_official_loss runs one in the fast tier)
def test_positive_advantage_raises_its_tokens_logprob():
    params = api.init_params(CFG, seed=4)
    b = _batch(seed=5)
    b = b._replace(advantages=b.loss_mask.astype(np.float32))  # every trained token: A = +1
    trainer = Trainer(
        CFG, optim=OptimConfig(learning_rate=1e-2, weight_decay=0.0), step_cfg=StepConfig(micro_batch_size=4)
    )
    before = np.asarray(trainer.logprobs(params, b.tokens, b.attn_mask))
    state = trainer.init_state(jax.tree.map(jnp.array, params))
    state, _ = trainer.update(state, b._replace(old_logprobs=before.astype(np.float32)))
    after = np.asarray(trainer.logprobs(state.params, b.tokens, b.attn_mask))
    m = b.loss_mask.astype(bool)
    assert after[m].sum() > before[m].sum()


@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")
def test_sharded_update_matches_one_device():
    params = api.init_params(CFG, seed=6)
    b = _batch(seed=7)
    results = []
    for mesh in (make_mesh(1, 1, 1, devices=jax.devices()[:1]), make_mesh(2, 2, 2)):
        trainer = Trainer(
            CFG,
            rules=ShardingRules(mesh),
            optim=OptimConfig(learning_rate=1e-2, eps=1e-3),
            step_cfg=StepConfig(micro_batch_size=4),
        )
        state = trainer.init_state(jax.tree.map(jnp.array, params))
        old = trainer.logprobs(state.params, b.tokens, b.attn_mask)
        state, metrics = trainer.update(state, b._replace(old_logprobs=np.asarray(old)))
        mu = state.opt_state[1][0].mu["layers"]["q_proj"]
        results.append((metrics, jax.device_get(state.params), mu.sharding))
    (m1, p1, _), (m8, p8, sh8) = results
    assert sh8.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")  # Adam moments sharded too
    assert m8["loss"] == pytest.approx(m1["loss"], rel=1e-5, abs=1e-7)
    assert m8["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-4)
    jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, atol=1e-5), p8, p1)

"""A step's rows as several update batches of their own widths (`build_update_batches`,
`Trainer.update_many`): the grouping is the cheapest one, it moves no token, advantage or
logprob, and the optimizer step equals the one-batch step on the same rows."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.azr.batch import bucket_length, build_update_batch, build_update_batches, plan_shape_groups
from azr_jax.azr.policy import Rollout
from azr_jax.azr.selfplay import Sample
from azr_jax.azr.tasks import ALL_GROUPS
from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.train_step import OptimConfig, StepConfig, TrainBatch, Trainer

CFG = ModelConfig(
    architecture="qwen2",
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    tie_word_embeddings=True,
    remat="none",
)


def test_grouping_hand_computed():
    # widths: bucket(400) = 448, bucket(100) = 112, completions bucket(10) = 32 (min 32)
    assert (bucket_length(400, 32), bucket_length(100, 32), bucket_length(10, 32)) == (448, 112, 32)
    plens, clens = [100, 400, 100, 400], [10] * 4
    # rows padded to 2: one batch 4 x 480 = 1920 > two batches 2 x 480 + 2 x 144 = 1248
    groups = plan_shape_groups(plens, clens, row_multiple=2, max_groups=2, min_length=64)
    assert [g.tolist() for g in groups] == [[1, 3], [0, 2]]
    # rows padded to 4: two batches cost 4 x 480 + 4 x 144 = 2496 > 1920, so one batch
    groups = plan_shape_groups(plens, clens, row_multiple=4, max_groups=2, min_length=64)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3]]
    assert [g.tolist() for g in plan_shape_groups(plens, clens, row_multiple=1, max_groups=1)] == [
        [0, 1, 2, 3]
    ]
    with pytest.raises(ValueError, match="no rows"):
        plan_shape_groups([], [], row_multiple=1, max_groups=2)


def _cost(groups, plens, clens, rm):
    return sum(
        -(-len(g) // rm)
        * rm
        * (bucket_length(max(plens[i] for i in g), 32) + bucket_length(max(clens[i] for i in g), 32))
        for g in groups
    )


@pytest.mark.parametrize("seed", range(6))
def test_grouping_is_the_cheapest_contiguous_split(seed):
    """Brute force over every way to cut the rows (ordered by prompt length) into <= 3 runs."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    plens = rng.integers(20, 900, n).tolist()
    clens = rng.integers(1, 300, n).tolist()
    rm = int(rng.choice([1, 2, 4]))
    got = plan_shape_groups(plens, clens, row_multiple=rm, max_groups=3)
    assert sorted(np.concatenate(got).tolist()) == list(range(n))
    order = np.argsort(-np.asarray(plens), kind="stable").tolist()
    best = min(
        _cost([order[a:b] for a, b in zip((0,) + cuts, cuts + (n,))], plens, clens, rm)
        for k in range(3)
        for cuts in itertools.combinations(range(1, n), k)
    )
    assert _cost([g.tolist() for g in got], plens, clens, rm) == best


def _samples(seed: int, n: int = 12) -> list[Sample]:
    """Rows like an AZR step: long proposer prompts, short solver prompts, mixed completions."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        group = ALL_GROUPS[i % 6]
        plen = int(rng.integers(40, 60)) if group.name.startswith("propose") else int(rng.integers(5, 14))
        clen = int(rng.integers(1, 20))
        comp = rng.integers(1, CFG.vocab_size, clen).tolist()
        r = Rollout(
            rng.integers(1, CFG.vocab_size, plen).tolist(),
            comp,
            rng.normal(-2.0, 0.5, clen).astype(np.float32),
            "",
            "stop",
        )
        out.append(Sample(group, r, float(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0])), True, True))
    return out


def test_split_batches_hold_the_same_rows():
    samples = _samples(0)
    one = build_update_batch(samples, pad_id=0, row_multiple=2, min_length=16)
    parts = build_update_batches(samples, pad_id=0, row_multiple=2, max_groups=3, min_length=16)
    assert len(parts) > 1
    assert sum(p.tokens.size for p in parts) < one.tokens.size
    seen = []
    for p in parts:
        assert p.tokens.shape[0] % 2 == 0
        for i in range(p.num_real):
            # find the row of the one-batch layout that this row is (its tokens are unique)
            real = p.attn_mask[i].astype(bool)
            j = next(
                j
                for j in range(one.num_real)
                if one.attn_mask[j].sum() == real.sum()
                and (one.tokens[j][one.attn_mask[j].astype(bool)] == p.tokens[i][real]).all()
            )
            seen.append(j)
            ref = one.attn_mask[j].astype(bool)
            assert p.loss_weights[i] == one.loss_weights[j]
            for name in ("loss_mask", "advantages", "sampler_logprobs"):
                np.testing.assert_array_equal(getattr(p, name)[i][real], getattr(one, name)[j][ref])
                assert not getattr(p, name)[i][~real].any()
            assert p.rewards[i] == one.rewards[j] and p.group_ids[i] == one.group_ids[j]
            # completions start at the batch's own prompt width
            assert p.loss_mask[i, : p.completion_start].sum() == 0
        assert (p.group_ids[p.num_real :] == -1).all() and not p.loss_mask[p.num_real :].any()
    assert sorted(seen) == list(range(len(samples)))


@pytest.mark.slow
@pytest.mark.parametrize("aggregation", ["micro-token-mean", "token-mean", "seq-mean-token-mean"])
def test_update_many_equals_one_batch_update(aggregation):
    samples = _samples(1)
    lcfg = LossConfig(aggregation=aggregation, micro_batch_rows=1)  # 2 rows/group: 2 units each
    one = build_update_batch(samples, pad_id=0, row_multiple=2, min_length=16, loss=lcfg)
    parts = build_update_batches(samples, pad_id=0, row_multiple=2, max_groups=3, min_length=16, loss=lcfg)
    assert len(parts) > 1
    params = api.init_params(CFG, seed=3)
    results = []
    for batches in ([one], parts):
        trainer = Trainer(
            CFG,
            optim=OptimConfig(learning_rate=1e-2, eps=1e-3),
            loss=lcfg,
            step_cfg=StepConfig(micro_batch_size=2, logit_chunk=8),
        )
        state = trainer.init_state(jax.tree.map(jnp.array, params))
        args = [
            (
                TrainBatch(
                    b.tokens, b.attn_mask, b.loss_mask, b.advantages, b.sampler_logprobs, b.loss_weights
                ),
                b.completion_start,
            )
            for b in batches
        ]
        state, metrics = trainer.update_many(state, args)
        results.append((metrics, jax.device_get(state.params)))
    (m1, p1), (m2, p2) = results
    for k in ("loss", "grad_norm", "num_tokens", "entropy"):
        assert m2[k] == pytest.approx(m1[k], rel=1e-4, abs=1e-7), k
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), p2, p1)
    with pytest.raises(ValueError, match="at least one batch"):
        trainer.update_many(state, [])

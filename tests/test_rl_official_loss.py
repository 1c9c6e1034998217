"""Loss and gradient of one update against the official aggregation (veRL core_algos + the
dp_actor micro-batch loop), run in torch from the official files on a random 6 x 64-row batch.

The official `DataParallelPPOActor.update_policy` is executed as written (with stand-ins for the
model forward, the optimizer and the tensor container); it cuts the 384 rows into micro-batches
of 16, takes each one's token-mean loss and divides by 384 // 16 = 24. azr-jax computes the same
loss as per-row weights over task-role units (`azr.batch.group_units` + `rl.losses.row_weights`).
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import official_azr
import pytest

from azr_jax.azr.batch import group_units
from azr_jax.rl.losses import LossConfig, policy_loss_parts, row_weights, token_entropy, token_logprobs

torch = pytest.importorskip("torch")

GROUPS, ROWS, T, V = 6, 64, 24, 11
ENTROPY_COEF, CLIP = 0.001, 0.2


def _official():
    tf = official_azr.load(
        "verl/verl/utils/torch_functional.py",
        "masked_mean",
        "entropy_from_logits",
        "logprobs_from_logits_v2",
        namespace={"torch": torch},
    )
    verl_F = types.SimpleNamespace(masked_mean=tf.masked_mean, entropy_from_logits=tf.entropy_from_logits)
    ca = official_azr.load(
        "verl/verl/trainer/ppo/core_algos.py",
        "compute_policy_loss",
        namespace={"torch": torch, "verl_F": verl_F},
    )
    actor = official_azr.load(
        "verl/verl/workers/actor/dp_actor.py",
        "DataParallelPPOActor.update_policy",
        namespace={
            "torch": torch,
            "verl_F": verl_F,
            "masked_mean": tf.masked_mean,
            "core_algos": ca,
            "append_to_dict": lambda m, d: [m.setdefault(k, []).append(v) for k, v in d.items()],
        },
    )
    return tf, actor.update_policy


class _Rows(dict):
    """A stand-in for the TensorDict the actor splits: a dict of [rows, ...] tensors."""

    def split(self, n):
        rows = len(next(iter(self.values())))
        return [_Rows({k: v[i : i + n] for k, v in self.items()}) for i in range(0, rows, n)]

    def cuda(self):
        return self

    def __len__(self):
        return len(next(iter(self.values())))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    R = GROUPS * ROWS
    lengths = rng.integers(1, T + 1, R)
    lengths[:ROWS] = rng.integers(15, T + 1, ROWS)  # proposer-like long answers in group 0
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
    logits = rng.normal(0, 2, (R, T, V)).astype(np.float32)
    targets = rng.integers(0, V, (R, T))
    adv = (rng.normal(0, 1, (R, 1)) * mask).astype(np.float32)
    adv[rng.random(R) < 0.1] = 0.0
    old = (
        np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))[
            np.arange(R)[:, None], np.arange(T)[None], targets
        ]
        + rng.normal(0, 0.3, (R, T))
    ).astype(np.float32)  # ratios away from 1: clipping happens
    groups = np.repeat(np.arange(GROUPS), ROWS).astype(np.int32)
    return logits, targets, mask, adv, old, groups


def official_loss_and_grad(logits, targets, mask, adv, old):
    tf, update_policy = _official()
    lt = torch.tensor(logits, requires_grad=True)
    rows = torch.arange(len(logits))

    def forward(micro_batch, temperature):
        idx = micro_batch["input_ids"][:, 0]
        lg = lt[idx] / temperature
        return tf.entropy_from_logits(lg), tf.logprobs_from_logits_v2(lg, micro_batch["responses"])

    captured = {}

    def optimizer_step():
        captured["grad"] = lt.grad.detach().clone()
        return torch.tensor(0.0)

    cfg = types.SimpleNamespace(
        ppo_mini_batch_size=len(logits),
        ppo_micro_batch_size_per_gpu=16,
        use_dynamic_bsz=False,
        clip_ratio=CLIP,
        entropy_coeff=ENTROPY_COEF,
        use_kl_loss=False,
    )
    actor = types.SimpleNamespace(
        config=cfg,
        actor_module=types.SimpleNamespace(train=lambda: None),
        actor_optimizer=types.SimpleNamespace(zero_grad=lambda: setattr(lt, "grad", None)),
        _forward_micro_batch=forward,
        _optimizer_step=optimizer_step,
    )
    batch = _Rows(
        responses=torch.tensor(targets),
        input_ids=rows[:, None],
        attention_mask=torch.tensor(np.concatenate([np.ones_like(mask), mask], 1)),
        position_ids=rows[:, None],
        old_log_probs=torch.tensor(old),
        advantages=torch.tensor(adv),
    )
    data = types.SimpleNamespace(
        meta_info={"temperature": 1.0}, select=lambda batch_keys: types.SimpleNamespace(batch=batch)
    )
    metrics = update_policy(actor, data)
    n = len(metrics["actor/pg_loss"])
    loss = (
        sum(p - ENTROPY_COEF * e for p, e in zip(metrics["actor/pg_loss"], metrics["actor/entropy_loss"])) / n
    )
    return loss, captured["grad"].numpy(), n


def ours_loss_and_grad(logits, targets, mask, adv, old, groups, cfg=LossConfig()):
    w = row_weights(mask, cfg, group_units(groups, cfg.micro_batch_rows))

    def loss(lg):
        parts = policy_loss_parts(
            token_logprobs(lg, targets),
            old,
            adv,
            mask,
            cfg,
            entropy=token_entropy(lg),
            weights=jnp.asarray(w),
        )
        return parts.loss_sum

    value, grad = jax.value_and_grad(loss)(jnp.asarray(logits))
    return float(value), np.asarray(grad)


def test_one_update_equals_the_official_micro_batch_aggregation():
    logits, targets, mask, adv, old, groups = _batch()
    want_loss, want_grad, n_micro = official_loss_and_grad(logits, targets, mask, adv, old)
    assert n_micro == GROUPS * ROWS // 16 == 24
    loss, grad = ours_loss_and_grad(logits, targets, mask, adv, old, groups)
    assert abs(loss - want_loss) < 1e-6
    assert np.abs(grad - want_grad).max() < 1e-6
    # the whole-step token mean (rl.aggregation=token-mean) is a different objective here
    tm_loss, tm_grad = ours_loss_and_grad(
        logits, targets, mask, adv, old, groups, LossConfig(aggregation="token-mean")
    )
    assert np.abs(tm_grad - want_grad).max() > 1e-5


def test_each_task_role_group_weighs_one_sixth():
    _, _, mask, _, _, groups = _batch(1)
    w = row_weights(mask, LossConfig(), group_units(groups, 16))
    per_group = [float((w[groups == g] * mask[groups == g].sum(1)).sum()) for g in range(GROUPS)]
    np.testing.assert_allclose(per_group, [1 / 6] * 6, rtol=1e-6)
    tm = row_weights(mask, LossConfig(aggregation="token-mean"))
    assert (tm * mask.sum(1))[groups == 0].sum() > 1.25 / 6  # long answers weigh more in a token mean

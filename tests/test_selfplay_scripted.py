"""One full self-play step driven by a scripted policy, through the real farm and update.

The policy returns prepared texts (valid and invalid proposals, right and wrong answers); the
test checks every reward against the table of azr_method.md §4.2 computed by hand, the TRR++
advantages against an independent numpy whitening, the buffer additions, and that exactly one
optimizer update happened and equals a reference AdamW step on the same batch.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from azr_jax.azr.batch import build_update_batch
from azr_jax.azr.policy import Rollout
from azr_jax.azr.tasks import TaskType
from azr_jax.model import api
from azr_jax.rl.losses import policy_loss_parts, token_entropy, token_logprobs
from azr_jax.rl.train_step import make_optimizer

pytest.importorskip("transformers")
assets = pytest.importorskip("azr_jax.hf.assets")


def answer(think: str, body: str) -> str:
    return f"{think}</think>\n<answer>\n{body}\n</answer>"


PY = "```python\n{}\n```"
INP = "```input\n{}\n```"
OUT = "```output\n{}\n```"

# Proposals, by (task, row).
PROPOSALS = {
    ("ded", 0): answer("double it", PY.format("def f(x):\n    return x * 2") + "\n" + INP.format("3")),
    ("ded", 1): answer("oops", PY.format("def f(x):\n    return x + 1")),  # no input block
    ("abd", 0): answer("reverse", PY.format("def f(s):\n    return s[::-1]") + "\n" + INP.format("'abc'")),
    # valid task, but the think/answer format is broken (no </think>): -1, still buffered
    ("abd", 1): "no closing tag <answer>\n"
    + PY.format("def f(n):\n    return n % 7")
    + "\n"
    + INP.format("100")
    + "\n</answer>",
    ("ind", 0): answer(
        "inputs",
        "\n".join(INP.format(x) for x in ("1", "2", "'a'", "[1]")) + "\n```message\nreturn the argument\n```",
    ),
    ("ind", 1): answer(
        "inputs", "\n".join(INP.format(x) for x in ("1", "undefined_name", "3", "4")) + "\n```message\nx\n```"
    ),
}
# Solver answers to the seed tasks (identity programs), by (task, row).
SOLUTIONS = {
    ("ded", 0): answer("identity", OUT.format("'Hello world'")),
    ("ded", 1): answer("guess", OUT.format("'Hello'")),
    ("abd", 0): answer("identity", INP.format('"Hello world"')),
    ("abd", 1): "I refuse to use tags",
    ("ind", 0): answer("identity", PY.format("def f(a):\n    return a")),
    ("ind", 1): answer("constant", PY.format("def f(a):\n    return 1")),
}
# Learnability answers (G=2 per valid, formatted proposal).
LEARN = {
    "ded": [answer("2*3", OUT.format("6")), answer("3+4", OUT.format("7"))],  # rate 1/2
    "abd": [answer("r", INP.format("'abc'")), answer("r", INP.format('"abc"'))],  # rate 1
    "ind": [answer("zero", PY.format("def f(a):\n    return 0"))] * 2,  # rate 0
}
EXPECTED_REWARDS = {
    "propose_deduction": [0.5, -1.0],
    "propose_abduction": [-0.5, -1.0],
    "propose_induction": [-0.5, -1.0],
    "solve_deduction": [1.0, -0.5],
    "solve_abduction": [1.0, -1.0],
    "solve_induction": [1.0, -0.5],
}


def _kind(text: str) -> tuple[str, str]:
    if "## Task: write a new Python program" in text:
        return ("propose", "ded" if "work out the output" in text else "abd")
    if "## Task: write" in text and "inputs for the program" in text:
        return ("propose", "ind")
    for marker, task in (
        ("## Task: find the output", "ded"),
        ("## Task: find an input", "abd"),
        ("## Task: recover the function", "ind"),
    ):
        if marker in text:
            return ("solve", task)
    raise AssertionError(f"unrecognised prompt: {text[:300]}")


class ScriptedPolicy:
    """Answers each prompt with the prepared text for its role and row."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.calls = []

    def prompt_ids(self, user_prompt: str) -> list[int]:
        return self.tok.encode(
            "<|im_start|>user\n" + user_prompt + "<|im_end|>\n<|im_start|>assistant\n<think>",
            add_special_tokens=False,
        )

    def generate(self, params, prompts, max_new_tokens, key):
        self.calls.append(len(prompts))
        rows = collections.Counter()
        learn_rows = collections.Counter()
        out = []
        for ids in prompts:
            text = self.tok.decode(ids)
            role, task = _kind(text)
            if role == "solve" and any(m in text for m in ("x * 2", "s[::-1]", "return the argument")):
                reply = LEARN[task][learn_rows[task] % 2]  # a learnability rollout
                learn_rows[task] += 1
            else:
                table = PROPOSALS if role == "propose" else SOLUTIONS
                reply = table[(task, rows[(role, task)])]
                rows[(role, task)] += 1
            comp = self.tok.encode(reply, add_special_tokens=False) + [self.tok.eos_token_id]
            out.append(Rollout(list(ids), comp, np.zeros(len(comp), np.float32), reply, "stop"))
        return out


# One real step through SelfPlayRun (model, farm, update) shared by every test here.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import importlib.util
    import pathlib

    from transformers import AutoTokenizer

    from azr_jax.azr.run import SelfPlayRun

    spec = importlib.util.spec_from_file_location(
        "debug_random", pathlib.Path(__file__).resolve().parents[1] / "configs" / "debug_random.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.azr.batch_size, c.azr.learnability_samples, c.azr.num_inputs = 2, 2, 4
    c.azr.max_response_tokens = 256
    c.mesh.update(dict(data=1, fsdp=1, tensor=1, num_devices=1))
    c.optim.learning_rate = 1e-3
    c.log.tensorboard = False
    tok = AutoTokenizer.from_pretrained(assets.smollm2_hf_dir())
    policy = ScriptedPolicy(tok)
    workdir = tmp_path_factory.mktemp("scripted")
    r = SelfPlayRun(c, str(workdir), policy=policy)
    r.resume_or_init()
    params_before = jax.device_get(r.state.params)
    captured = {}
    orig = r.selfplay.run

    def spy(step, params, key):
        out = orig(step, params, key)
        captured["out"] = out
        return out

    r.selfplay.run = spy
    metrics = r.train_step()
    yield r, policy, captured["out"], metrics, params_before
    r.close()


def test_rewards_follow_the_table(run):
    _, _, out, metrics, _ = run
    got = collections.defaultdict(list)
    for s in out.samples:
        got[s.group.name].append(s.reward)
    assert dict(got) == EXPECTED_REWARDS
    assert metrics["reward/propose_deduction"] == pytest.approx(-0.25)
    assert metrics["valid/propose_abduction"] == 1.0 and metrics["valid/propose_deduction"] == 0.5
    assert metrics["accuracy/solve_induction"] == 0.5
    rates = [s.solve_rate for s in out.samples if s.group.name == "propose_deduction"]
    assert rates == [0.5, None]


def test_one_generation_call_for_all_prompts_then_learnability(run):
    _, policy, _, _, _ = run
    # 6 groups x B=2 in one call, then 3 valid formatted proposals x G=2
    assert policy.calls == [12, 6]


def test_buffer_additions(run):
    r, _, out, _, _ = run
    added = {t.value: [e.program for e in es] for t, es in out.added.items()}
    assert added["deduction"] == ["def f(x):\n    return x * 2"]
    assert added["abduction"] == ["def f(s):\n    return s[::-1]", "def f(n):\n    return n % 7"]
    assert [e.outputs for e in out.added[TaskType.INDUCTION]] == [("1", "2", "'a'", "[1]")]
    ded = r.selfplay.buffers.deduction.entries
    assert ded[-1].output == "6" and ded[-1].step == 1 and len(ded) == 2
    assert r.selfplay.buffers.abduction.entries[-1].output == "2"


def _whiten_reference(rewards, groups, mask):
    adv = np.zeros(mask.shape, np.float64)
    for g in set(groups.tolist()) - {-1}:
        rows = groups == g
        vals = np.repeat(rewards[rows], mask[rows].sum(1))
        mu, var = vals.mean(), vals.var(ddof=1) if vals.size > 1 else 0.0
        adv[rows] = (rewards[rows][:, None] - mu) / np.sqrt(var + 1e-8) * mask[rows]
    return adv


def test_advantages_and_the_single_update(run):
    r, _, out, metrics, before = run
    lcfg = r.trainer.loss_cfg
    assert lcfg.aggregation == "micro-token-mean" and lcfg.micro_batch_rows == 16
    ub = build_update_batch(
        out.samples, pad_id=r.policy.pad_id, row_multiple=4, advantage=r.adv_cfg, loss=lcfg
    )
    np.testing.assert_allclose(
        ub.advantages, _whiten_reference(ub.rewards, ub.group_ids, ub.loss_mask), atol=1e-5
    )
    # official aggregation by hand: each group (2 rows < 16: one micro-batch) is one token mean,
    # and the six are averaged
    tokens = ub.loss_mask.sum(1)
    want_w = np.array([1.0 / (6 * tokens[ub.group_ids == g].sum()) if g >= 0 else 0.0 for g in ub.group_ids])
    np.testing.assert_allclose(ub.loss_weights, want_w, rtol=1e-6)
    assert int(r.state.step) == 1
    assert int(r.state.opt_state[1][0].count) == 1  # exactly one AdamW step

    cfg = r.model_cfg
    params = jax.tree.map(jnp.asarray, before)

    def ref_logps(p):
        logits, _ = api.apply(cfg, p, ub.tokens, api.positions_from_mask(ub.attn_mask), ub.attn_mask)
        z = jnp.zeros((ub.tokens.shape[0], 1))
        return (
            jnp.concatenate([z, token_logprobs(logits[:, :-1], ub.tokens[:, 1:])], 1),
            jnp.concatenate([z, token_entropy(logits[:, :-1])], 1),
        )

    old = jax.lax.stop_gradient(ref_logps(params)[0])

    def loss(p):
        lp, ent = ref_logps(p)
        parts = policy_loss_parts(
            lp, old, ub.advantages, ub.loss_mask, lcfg, entropy=ent, weights=jnp.asarray(want_w, jnp.float32)
        )
        return parts.loss_sum

    value, grads = jax.value_and_grad(loss)(params)
    tx = make_optimizer(r.trainer.optim_cfg)
    upd, _ = tx.update(grads, tx.init(params), params)
    want = optax.apply_updates(params, upd)
    assert metrics["train/loss"] == pytest.approx(float(value), rel=1e-4, abs=1e-6)
    got = jax.device_get(r.state.params)
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), got, before)
    assert max(jax.tree.leaves(moved)) > 0
    # AdamW's first step is ~lr*sign(g): compare where gradients are not vanishingly small.
    jax.tree.map(
        lambda g, w, gr: np.testing.assert_allclose(
            np.asarray(g)[np.abs(np.asarray(gr)) > 1e-6],
            np.asarray(w)[np.abs(np.asarray(gr)) > 1e-6],
            atol=1e-6,
        ),
        got,
        want,
        grads,
    )

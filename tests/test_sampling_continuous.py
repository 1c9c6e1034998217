"""The continuous engine against the static one (same outputs on mixed lengths, early stops,
budgets at the cap, a queue longer than the slots, shared prompts, a mesh) and its per-call
measurements against a plain-Python simulation of the slot schedule."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

import hf_models
from azr_jax.hf.load import load_hf
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.plan import make_plan
from azr_jax.sampling.programs import lower_programs
from azr_jax.sampling.sampler import Sampler, _kv_bytes_per_slot
from sharding.mesh import make_mesh
from sharding.rules import ShardingRules

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

EOS = hf_models.TINY["eos_token_id"]
VOCAB = hf_models.TINY["vocab_size"]
TRIGGER = 7  # the eos model's next token is EOS whenever its input token is this
# 3 decode slots (a batch bucket of 3), pages of 4 tokens read in blocks of 2 pages, prefill
# passes of 8 tokens: small enough that prompts span several pages and passes.
CONFIG = SamplerConfig(
    prompt_buckets=(8, 16, 32),
    gen_buckets=(8, 16, 24),
    max_batch=3,
    batch_buckets=(1, 2, 3, 4, 8, 16),
    page_size=4,
    read_extents=2,
    prefill_chunk=8,
)
STATIC = dataclasses.replace(CONFIG, engine="static", max_batch=16)
CONTINUOUS = dataclasses.replace(CONFIG, engine="continuous")
GREEDY = SamplingParams(temperature=0.0)


def _rows(seed: int, lengths) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(8, VOCAB, n).tolist() for n in lengths]


@pytest.fixture(scope="module")
def eos_model(tmp_path_factory):
    """A llama whose next token is forced to EOS whenever the input token is TRIGGER (hidden
    dimension 0 is written only by TRIGGER's embedding and the LM head reads EOS from it)."""
    d = str(tmp_path_factory.mktemp("eos_cont"))
    model = hf_models.build("llama3_scaled", d)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 0.0
        emb[TRIGGER, 0] = 50.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[EOS, :] = 0.0
        model.lm_head.weight[EOS, 0] = 100.0
    model.save_pretrained(d)
    cfg, params = load_hf(d)
    return d, cfg, params


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("qwen_cont"))
    hf_models.build("qwen2_tied", d)
    cfg, params = load_hf(d)
    return d, cfg, params


def _both(cfg, params, rows, budgets, sp, key, stops=(EOS,), config=CONTINUOUS, rules=None, run_params=None):
    static = Sampler(cfg, config=STATIC, stop_token_ids=stops).generate(params, rows, budgets, sp, key)
    cont = Sampler(cfg, rules=rules, config=config, stop_token_ids=stops).generate(
        params if run_params is None else run_params, rows, budgets, sp, key
    )
    assert static.engine == "static" and cont.engine == "continuous"
    return static, cont


def _assert_same(static, cont, atol=1e-5):
    np.testing.assert_array_equal(cont.lengths, static.lengths)
    np.testing.assert_array_equal(cont.tokens, static.tokens)
    np.testing.assert_allclose(cont.logprobs, static.logprobs, atol=atol)
    assert cont.finish_reasons == static.finish_reasons
    np.testing.assert_array_equal(cont.mask, static.mask)


@pytest.mark.parametrize(
    "sp",
    [GREEDY, pytest.param(SamplingParams(1.0, top_p=0.9), marks=pytest.mark.slow)],
    ids=["greedy", "top_p"],
)
def test_continuous_equals_static_on_mixed_lengths(eos_model, sp):
    """9 rows in 3 slots: prompts of 2-29 tokens (1-8 pages, 1-4 prefill passes), budgets from 1
    to the generation cap, two rows that stop at their first token (their prompts end in
    TRIGGER), one with budget 1, rows that run to the cap (24 tokens)."""
    _, cfg, params = eos_model
    rows = _rows(0, (5, 29, 11, 2, 17, 9, 13, 4, 21))
    rows[2] = rows[2] + [TRIGGER]  # ends at step 1: its first token is EOS
    rows[6] = rows[6] + [TRIGGER]
    budgets = [20, 24, 16, 1, 24, 7, 12, 24, 3]
    static, cont = _both(cfg, params, rows, budgets, sp, jax.random.key(3))
    _assert_same(static, cont)
    assert cont.completion(2) == [EOS] and cont.completion(6) == [EOS]
    assert cont.lengths[3] == 1
    assert (cont.lengths == 24).any()  # some row ran to the cap


@pytest.mark.slow  # ~15 s
def test_queue_longer_than_the_slots_and_its_measurements(qwen):
    """12 rows with forced lengths (stop tokens off) through 3 slots: outputs equal the static
    engine's, and the decode steps, decode tokens, rows computed and slot utilisation equal a
    plain-Python simulation of the schedule (admit the next row into a free slot before each
    step; a row of budget 1 never takes a slot; a lone row left runs on a 1-row step). The KV
    bytes read are at least what the rows had filled, and far below the static engine's."""
    _, cfg, params = qwen
    rows = _rows(1, (6, 14, 3, 9, 22, 5, 11, 7, 18, 2, 13, 8))
    budgets = [24, 3, 17, 1, 9, 24, 2, 12, 5, 20, 1, 8]
    sp = SamplingParams(1.0)
    static, cont = _both(cfg, params, rows, budgets, sp, jax.random.key(4), stops=())
    _assert_same(static, cont)
    np.testing.assert_array_equal(cont.lengths, budgets)

    # 3 slots: steps 3 rows wide, or 1 once a single row is left (slots // 2 = 1)
    steps, tokens, computed, filled = _simulate(budgets, [len(r) for r in rows], 3, (1, 3))
    assert (cont.decode_steps, cont.decode_tokens, cont.slot_steps) == (steps, tokens, computed)
    assert cont.slot_utilisation == pytest.approx(tokens / computed)
    assert cont.slot_utilisation > static.slot_utilisation
    per_slot = _kv_bytes_per_slot(cfg)
    assert filled * per_slot <= cont.kv_bytes_read
    assert cont.kv_bytes_per_token < static.kv_bytes_per_token / 2


def _simulate(budgets, prompt_lengths, slots, widths):
    """(decode steps, decode tokens, rows computed: the narrowest of `widths` holding the rows
    left, KV tokens the live rows had filled), each summed over steps."""
    queue = list(zip(budgets, prompt_lengths))
    live, steps, tokens, computed, filled = [], 0, 0, 0, 0
    while queue or live:
        while queue and len(live) < slots:
            budget, n = queue.pop(0)
            if budget > 1:
                live.append([budget - 1, n, 0])  # decode tokens left, prompt, own tokens
        if live:
            steps += 1
            tokens += len(live)
            computed += min(w for w in widths if w >= len(live))
            for row in live:
                row[0] -= 1
                row[2] += 1
                filled += row[1] + row[2]
            live = [row for row in live if row[0] > 0]
    return steps, tokens, computed, filled


@pytest.mark.slow  # ~50 s: compiles both engines on an 8-device mesh
def test_shared_prompts_and_a_mesh(qwen):
    """Rows repeating 3 prompts (AZR's G learnability rollouts) in 4 slots: the engine reads
    each prompt's slot once for all its live rows. Equal to the static engine, to sharing off,
    and on a mesh that splits the batch in 2 and the heads in 4 (8 fake devices)."""
    d, cfg, params = qwen
    a, b, c = _rows(2, (13, 5, 26))
    rows = [a, b, a, c, a, b, a, c, b, a]
    budgets = [24, 9, 3, 16, 24, 1, 12, 7, 20, 5]
    sp = SamplingParams(1.0, top_k=20)
    config = dataclasses.replace(CONTINUOUS, max_batch=4)
    static, cont = _both(cfg, params, rows, budgets, sp, jax.random.key(5), stops=(), config=config)
    _assert_same(static, cont)
    assert len({tuple(cont.tokens[i]) for i in (0, 4)}) == 2  # copies are different samples
    off = Sampler(cfg, config=dataclasses.replace(config, share_prompts=False), stop_token_ids=()).generate(
        params, rows, budgets, sp, jax.random.key(5)
    )
    _assert_same(static, off)
    assert cont.kv_bytes_read < off.kv_bytes_read  # a shared prompt is read once per step
    rules = ShardingRules(make_mesh(1, 2, 4))
    _, sharded = load_hf(d, rules=rules)
    mesh_out = Sampler(cfg, rules=rules, config=config, stop_token_ids=()).generate(
        sharded, rows, budgets, sp, jax.random.key(5)
    )
    _assert_same(static, mesh_out, atol=2e-5)


@pytest.mark.slow  # ~12 s
def test_stacked_weights_on_the_continuous_engine(qwen):
    """TPUs keep the stacked weights (`unstack_layers` off): the paged step then loops over
    stacked pools; outputs equal the static engine's."""
    _, cfg, params = qwen
    rows = _rows(3, (4, 19, 9, 12, 6))
    budgets = [10, 24, 2, 15, 6]
    config = dataclasses.replace(CONTINUOUS, unstack_layers=False)
    static, cont = _both(cfg, params, rows, budgets, GREEDY, jax.random.key(6), stops=(), config=config)
    _assert_same(static, cont)


def test_programs_lower_on_abstract_inputs(qwen):
    """`lower_programs` (what `azr-jax compile` builds on): each engine's programs lower from
    shapes alone, for the plan's layout (stacked weights for a TPU plan); the static engine's
    decode program compiles on the state its prefill program returns."""
    _, cfg, _ = qwen
    for platform in ("cpu", "tpu"):
        for engine in ("static", "continuous"):
            plan = make_plan(platform, 12, dataclasses.replace(CONFIG, engine=engine))
            lowered = lower_programs(cfg, plan, rows=12, prompt_len=16, gen_len=8, group=4)
            assert sorted(lowered) == (["continuous"] if engine == "continuous" else ["decode", "prefill"])
            assert all(isinstance(p, jax.stages.Lowered) for p in lowered.values())
    assert lowered_static_decode(cfg).compile().memory_analysis() is not None


def lowered_static_decode(cfg):
    plan = make_plan("cpu", 3, dataclasses.replace(CONFIG, engine="static"))
    return lower_programs(cfg, plan, rows=3, prompt_len=8, gen_len=8)["decode"]

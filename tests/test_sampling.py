"""Sampler end to end on tiny random HF models: parity with torch `generate`, logprobs against a
full forward pass, early stopping, determinism, meshes, compile counts and input errors."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import pytest
from scipy import stats

import hf_models
from azr_jax.hf.load import load_hf
from azr_jax.model import api, decoder
from azr_jax.sampling import loop
from azr_jax.sampling import sampler as sampler_module
from azr_jax.sampling.batching import plan_chunks
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.plan import make_plan
from azr_jax.sampling.sampler import Sampler
from sharding.mesh import make_mesh
from sharding.rules import ShardingRules

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("torch_one_thread")

EOS = hf_models.TINY["eos_token_id"]
VOCAB = hf_models.TINY["vocab_size"]
# Small buckets keep the tiny-model programs few (compiles dominate this file's run time).
CONFIG = SamplerConfig(
    prompt_buckets=(8, 16, 32), gen_buckets=(8, 16, 24), max_batch=8, batch_buckets=(1, 2, 4, 8)
)
LENGTHS = (5, 17, 11, 2, 9)
GREEDY = SamplingParams(temperature=0.0)


def _rows(seed: int, lengths=LENGTHS) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, VOCAB, n).tolist() for n in lengths]


def _hf_greedy(model, row: list[int], n: int, eos: int | None) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([row]),
            attention_mask=torch.ones(1, len(row), dtype=torch.long),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
        )
    return out[0, len(row) :].tolist()


@pytest.fixture(
    scope="module", params=["qwen2_untied", pytest.param("llama3_scaled", marks=pytest.mark.slow)]
)
def tiny(request, tmp_path_factory):
    d = str(tmp_path_factory.mktemp(request.param))
    model = hf_models.build(request.param, d)
    cfg, params = load_hf(d)
    return model, cfg, params


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("qwen_mesh"))
    model = hf_models.build("qwen2_untied", d)
    cfg, params = load_hf(d)
    return d, model, cfg, params


@functools.partial(jax.jit, static_argnums=0)
def _forward(cfg, params, tokens, mask):
    return api.apply(cfg, params, tokens, api.positions_from_mask(mask), mask)[0]


def _full_forward_logprobs(cfg, params, prompts, out, temperature: float) -> np.ndarray:
    """Independent check of the returned logprobs: one cache-free forward over left-padded
    prompt + completion, log-softmax of logits / T at each sampled token."""
    P = max(len(p) for p in prompts)
    N = out.tokens.shape[1]
    tok = np.zeros((len(prompts), P + N), np.int32)
    mask = np.zeros_like(tok)
    for i, p in enumerate(prompts):
        tok[i, P - len(p) : P] = p
        mask[i, P - len(p) : P] = 1
    tok[:, P:] = out.tokens
    mask[:, P:] = out.mask
    logits = _forward(cfg, params, tok, mask)
    logp = jax.nn.log_softmax(np.asarray(logits)[:, P - 1 : P + N - 1] / temperature, axis=-1)
    return np.take_along_axis(np.asarray(logp), out.tokens[..., None], -1)[..., 0]


# --------------------------------------------------------------------------- parity with HF
@pytest.mark.parametrize(
    "unstack", [pytest.param(True, marks=pytest.mark.slow), False], ids=["unstacked", "stacked"]
)
def test_greedy_matches_hf_generate_on_mixed_length_batch(tiny, unstack):
    """Both layer layouts: per-layer buffers (the CPU and GPU default) and the stacked scan
    (what TPUs run)."""
    model, cfg, params = tiny
    rows = _rows(0)
    config = dataclasses.replace(CONFIG, unstack_layers=unstack)
    sampler = Sampler(cfg, config=config, stop_token_ids=(EOS,))
    out = sampler.generate(params, rows, 20, GREEDY, jax.random.key(0))
    for i, row in enumerate(rows):
        want = _hf_greedy(model, row, 20, EOS)
        assert out.completion(i) == want, (i, out.completion(i), want)
        assert out.finish_reasons[i] == ("stop" if want[-1] == EOS else "length")
    # greedy logprobs are log softmax(logits) (T = 1) at the argmax
    ref = _full_forward_logprobs(cfg, params, rows, out, 1.0)
    np.testing.assert_allclose(out.logprobs[out.mask], ref[out.mask], atol=1e-4)


@pytest.mark.slow  # ~12 s: compiles both weight layouts
def test_unstacked_weights_feed_decode_only_and_tpu_keeps_the_stack(tiny, monkeypatch):
    """With `unstack_layers` the static engine's decode program gets per-layer weights and the
    prefill the stacked ones (an unstacked GPU prefill crashed XLA). Decode matmuls run in 2
    batched parts on CPU for 2+ rows by default (`decoder._linear`), whole for 1 row or when
    told; the CPU slot cache holds keys [B, K, H, S]."""
    _, cfg, params = tiny
    seen = []
    for name in ("prefill", "decode"):
        real = getattr(loop, name)

        def spy(p, *a, _name=name, _real=real, **k):
            plan = k["spec"].plan
            seen.append((_name, isinstance(p["layers"], tuple), plan.matmul_splits, plan.keys_last))
            return _real(p, *a, **k)

        monkeypatch.setattr(loop, name, spy)
    for splits, rows, want in ((None, 2, 2), (None, 1, 1), (1, 2, 1), (3, 1, 3)):
        seen.clear()
        config = dataclasses.replace(CONFIG, unstack_layers=True, decode_matmul_splits=splits)
        Sampler(cfg, config=config, stop_token_ids=()).generate(
            params, _rows(0)[:rows], 4, GREEDY, jax.random.key(0)
        )
        want_seen = [("prefill", False, want, True), ("decode", True, want, True)]
        assert seen == want_seen, (splits, rows)


class _Leaf:
    """A stand-in param leaf on another platform."""

    def __init__(self, platform):
        self.platform = platform

    def devices(self):
        return {type("Dev", (), {"platform": self.platform})()}


def test_the_decode_plan_is_chosen_in_one_place(tiny):
    """`make_plan`'s rules per (platform, rows) and every choice forced from the config."""
    _, _, params = tiny
    assert sampler_module.platform_of(params) == "cpu"
    assert sampler_module.platform_of({"w": _Leaf("gpu")}) == "gpu"
    assert sampler_module.platform_of({"w": _Leaf("tpu")}) == "tpu"
    cpu = make_plan("cpu", 5, CONFIG)
    assert (cpu.engine, cpu.slots, cpu.unstack_layers, cpu.matmul_splits, cpu.keys_last) == (
        "static",
        8,
        True,
        2,
        True,
    )
    assert make_plan("cpu", 9, CONFIG).engine == "continuous"  # a queue longer than the slots
    assert make_plan("cpu", 1, CONFIG).matmul_splits == 1
    gpu = make_plan("gpu", 5, CONFIG)
    assert (gpu.engine, gpu.unstack_layers, gpu.matmul_splits, gpu.keys_last) == ("static", True, 1, False)
    assert make_plan("gpu", 9, CONFIG).engine == "continuous"
    tpu = make_plan("tpu", 5, CONFIG)
    assert (tpu.engine, tpu.unstack_layers, tpu.keys_last) == ("static", False, False)
    assert (tpu.page_size, tpu.read_extents, cpu.page_size, cpu.read_extents) == (64, 3, 16, 2)
    assert make_plan("cpu", 3, CONFIG, batch_multiple=2).slots == 4
    forced = dataclasses.replace(
        CONFIG,
        engine="static",
        unstack_layers=False,
        keys_last=False,
        decode_matmul_splits=3,
        page_size=8,
        read_extents=5,
        decode_widths=2,
        share_prompts=False,
        prefill_chunk=16,
    )
    got = make_plan("gpu", 50, forced)
    assert (
        got.engine,
        got.unstack_layers,
        got.keys_last,
        got.matmul_splits,
        got.page_size,
        got.read_extents,
        got.decode_widths,
        got.share_prompts,
        got.prefill_chunk,
    ) == ("static", False, False, 3, 8, 5, 2, False, 16)
    assert got.layout == decoder.Layout()  # stacked weights: whole matmuls
    assert make_plan("cpu", 50, forced, engine="continuous").engine == "continuous"


@pytest.mark.parametrize(
    "sp",
    [pytest.param(SamplingParams(0.8), marks=pytest.mark.slow), SamplingParams(1.2, top_k=20, top_p=0.9)],
    ids=["t0.8", "t1.2_topk_topp"],
)
def test_sampled_logprobs_equal_full_forward(qwen, sp):
    _, _, cfg, params = qwen
    rows = _rows(1)
    out = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(
        params, rows, [24, 3, 17, 24, 9], sp, jax.random.key(5)
    )
    assert out.lengths.tolist() == [24, 3, 17, 24, 9] and out.tokens.shape == (5, 24)
    ref = _full_forward_logprobs(cfg, params, rows, out, sp.temperature)
    np.testing.assert_allclose(out.logprobs[out.mask], ref[out.mask], atol=1e-4)
    assert (out.logprobs[~out.mask] == 0).all() and (out.tokens[~out.mask] == 0).all()


def _pooled_chi2(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square p-value, tokens with expected count < 5 pooled into one bin."""
    probs = probs.astype(np.float64) / probs.sum()
    expected = probs * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], counts.sum() - expected[big].sum())
    return stats.chisquare(obs, exp).pvalue


def test_first_token_frequencies_match_model_probabilities(qwen):
    """Whole pipeline: 2048 copies of one prompt, one token each at T = 0.25; the counts follow
    softmax(logits / T) of a full forward (rows draw independently from one key)."""
    _, _, cfg, params = qwen
    row = _rows(2, (6,))[0]
    big = SamplerConfig(prompt_buckets=(8,), gen_buckets=(8,), batch_buckets=(2048,), max_batch=2048)
    out = Sampler(cfg, config=big, stop_token_ids=()).generate(
        params, [row] * 2048, 1, SamplingParams(0.25), jax.random.key(9)
    )
    logits = api.apply(cfg, params, np.array([row]), np.arange(6)[None], np.ones((1, 6)))[0][0, -1]
    counts = np.bincount(out.tokens[:, 0], minlength=VOCAB)
    assert _pooled_chi2(counts, np.asarray(jax.nn.softmax(logits / 0.25))) > 1e-3
    # power: the same counts reject the T = 1 distribution
    assert _pooled_chi2(counts, np.asarray(jax.nn.softmax(logits))) < 1e-6


# --------------------------------------------------------------------------- stopping
@pytest.fixture(scope="module")
def eos_model(tmp_path_factory):
    """A llama whose next token is forced to EOS whenever the input token is TRIGGER: hidden
    dimension 0 is written only by TRIGGER's embedding (layers never write it) and the LM head
    reads EOS from it."""
    d = str(tmp_path_factory.mktemp("eos"))
    model = hf_models.build("llama3_scaled", d)
    trigger = 7
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 0.0
        emb[trigger, 0] = 50.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[EOS, :] = 0.0
        model.lm_head.weight[EOS, 0] = 100.0
    model.save_pretrained(d)
    cfg, params = load_hf(d)
    return model, cfg, params, trigger


def test_rows_stop_early_like_hf(eos_model):
    model, cfg, params, trigger = eos_model
    rows = _rows(3)
    rows[1] = rows[1] + [trigger]  # this row must stop at once
    rows[3] = rows[3] + [trigger]
    sampler = Sampler(cfg, config=CONFIG, stop_token_ids=(EOS,))
    out = sampler.generate(params, rows, 16, GREEDY, jax.random.key(0))
    for i, row in enumerate(rows):
        want = _hf_greedy(model, row, 16, EOS)
        assert out.completion(i) == want
        assert out.lengths[i] == len(want)
        assert out.mask[i].sum() == len(want) and not out.mask[i, len(want) :].any()
        assert (out.tokens[i, len(want) :] == 0).all()
    assert out.completion(1) == [EOS] and out.completion(3) == [EOS]
    assert out.finish_reasons[1] == out.finish_reasons[3] == "stop"
    assert out.steps == out.lengths.max()  # the loop ran only as long as the longest row


def test_loop_exits_when_every_row_has_stopped(eos_model):
    _, cfg, params, trigger = eos_model
    rows = [r + [trigger] for r in _rows(4)]
    out = Sampler(cfg, config=CONFIG, stop_token_ids=(EOS,)).generate(
        params, rows, 16, GREEDY, jax.random.key(1)
    )
    assert out.lengths.tolist() == [1] * 5 and out.finish_reasons == ["stop"] * 5
    assert out.steps == 1  # prefill drew the EOS; the decode loop never iterated
    assert out.tokens.shape == (5, 16) and (out.tokens[:, 0] == EOS).all()


def test_per_row_budgets_and_length_finish(qwen):
    _, _, cfg, params = qwen
    out = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(
        params, _rows(5), [1, 7, 3, 24, 2], GREEDY, jax.random.key(0)
    )
    assert out.lengths.tolist() == [1, 7, 3, 24, 2] and out.tokens.shape == (5, 24)
    assert out.finish_reasons == ["length"] * 5 and out.steps == 24


# --------------------------------------------------------------------------- determinism
@pytest.mark.slow  # ~11 s: several chunkings, each compiled
def test_same_key_same_output_and_chunking_invariance(qwen):
    _, _, cfg, params = qwen
    rows = _rows(6)
    sp = SamplingParams(1.0)
    a = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(params, rows, 24, sp, jax.random.key(3))
    b = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(params, rows, 24, sp, jax.random.key(3))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    c = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(params, rows, 24, sp, jax.random.key(4))
    assert (a.tokens != c.tokens).mean() > 0.5
    # chunks of 2 rows, other buckets, and the prompt prefilled 7 tokens at a time (a 4-token
    # remainder chunk then 4 full chunks): each row's samples depend on (key, row index) only
    small = SamplerConfig(
        prompt_buckets=(32,), gen_buckets=(24,), max_batch=2, batch_buckets=(2,), prefill_chunk=7
    )
    d = Sampler(cfg, config=small, stop_token_ids=()).generate(params, rows, 24, sp, jax.random.key(3))
    np.testing.assert_array_equal(a.tokens, d.tokens)
    np.testing.assert_allclose(a.logprobs, d.logprobs, atol=1e-5)
    # a raw uint32 key works like the typed key it wraps
    e = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(
        params, rows, 24, sp, jax.random.key_data(jax.random.key(3))
    )
    np.testing.assert_array_equal(a.tokens, e.tokens)


# --------------------------------------------------------------------------- shared prompts
def _check_sharing_changes_nothing(d, cfg, params, config, rows, sp, key, copies, mesh=True):
    """A call with prompt sharing gives each row the tokens (same key) and logprobs of the same
    call with sharing off and logprobs equal to a full forward pass; the rows in `copies` (one
    prompt's repeats) are different samples. With `mesh`, the same on a mesh that splits the
    batch in 2."""
    shared = Sampler(cfg, config=config, stop_token_ids=()).generate(params, rows, 24, sp, key)
    off = dataclasses.replace(config, share_prompts=False)
    alone = Sampler(cfg, config=off, stop_token_ids=()).generate(params, rows, 24, sp, key)
    np.testing.assert_array_equal(shared.tokens, alone.tokens)
    np.testing.assert_allclose(shared.logprobs, alone.logprobs, atol=1e-5)
    ref = _full_forward_logprobs(cfg, params, rows, shared, sp.temperature)
    np.testing.assert_allclose(shared.logprobs, ref, atol=1e-4)
    assert len({tuple(shared.tokens[i]) for i in copies}) == len(copies)
    if mesh:
        rules = ShardingRules(make_mesh(1, 2, 4))
        _, sharded = load_hf(d, rules=rules)
        mesh_out = Sampler(cfg, rules=rules, config=config, stop_token_ids=()).generate(
            sharded, rows, 24, sp, key
        )
        np.testing.assert_array_equal(mesh_out.tokens, shared.tokens)
        np.testing.assert_allclose(mesh_out.logprobs, shared.logprobs, atol=2e-5)


@pytest.mark.slow  # ~15 s
def test_repeated_prompts_are_prefilled_once(qwen):
    """AZR's learnability rollouts repeat one prompt G times: the chunk prefills each distinct
    prompt once (a smaller batch bucket) and every row still samples its own continuation,
    equal to what it gets with sharing off and to a full forward pass."""
    d, _, cfg, params = qwen
    a, b, c = _rows(8, lengths=(5, 17, 11))
    rows = [a, b, a, c, a, b, a, c]
    sp = SamplingParams(1.0, top_p=0.9)
    (chunk,) = plan_chunks([np.asarray(r, np.int32) for r in rows], np.full(8, 24, np.int32), CONFIG, 1, 0)
    assert chunk.tokens.shape == (4, 32) and chunk.budgets.shape == (8,)  # 3 distinct -> bucket 4
    for j, r in enumerate(rows):
        assert chunk.tokens[chunk.src[j], -len(r) :].tolist() == r
    off = dataclasses.replace(CONFIG, share_prompts=False)
    assert (
        plan_chunks([np.asarray(r, np.int32) for r in rows], np.full(8, 24, np.int32), off, 1, 0)[0].src
        is None
    )

    # the four copies of prompt `a` are four different samples; on a mesh that splits the
    # batch in 2 the distinct prompts are sharded too
    _check_sharing_changes_nothing(d, cfg, params, CONFIG, rows, sp, jax.random.key(9), copies=(0, 2, 4, 6))


def test_cascade_layout_groups_rows_by_prompt():
    """Equal repeats (AZR's G rollouts per task) are laid out as groups of rows per prompt,
    dummy rows filling short groups; uneven repeats that would need more rows than the flat
    batch keep the copy-the-cache layout."""
    a, b, c = (np.asarray(r, np.int32) for r in _rows(8, lengths=(5, 17, 11)))
    rows = [a, b, b, a, a, b, b, a]  # 2 prompts x 4 rows, interleaved
    (chunk,) = plan_chunks(rows, np.arange(1, 9, dtype=np.int32) + 8, CONFIG, 1, 0)
    assert chunk.group == 4 and chunk.tokens.shape == (2, 32) and chunk.budgets.shape == (8,)
    # caller rows 0, 3, 4, 7 (prompt a) take slots 0-3 in order; rows 1, 2, 5, 6 slots 4-7
    assert chunk.slots.tolist() == [0, 4, 5, 1, 2, 6, 7, 3]
    assert chunk.src.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert chunk.row_ids[chunk.slots].tolist() == chunk.rows.tolist() == list(range(8))
    assert chunk.budgets[chunk.slots].tolist() == list(range(9, 17))
    assert chunk.tokens[0, -5:].tolist() == a.tolist() and chunk.tokens[1, -17:].tolist() == b.tolist()
    # 3 rows of a, 1 of b: groups of 3 (batch bucket 4) x 2 prompts = 8 rows > flat bucket 4
    (lop,) = plan_chunks([a, a, b, a], np.full(4, 8, np.int32), CONFIG, 1, 0)
    assert lop.group == 0 and lop.src.tolist() == [0, 0, 1, 0]
    # 3 rows of a, 2 of b: groups of 4 (bucket of 3) x 2 prompts = 8 = the flat bucket of 5;
    # the short groups' free slots are dummy rows (budget 0, row id -1)
    (short,) = plan_chunks([a, b, a, b, a], np.full(5, 8, np.int32), CONFIG, 1, 0)
    assert short.group == 4 and short.slots.tolist() == [0, 4, 1, 5, 2]
    assert short.budgets.tolist() == [8, 8, 8, 0, 8, 8, 0, 0]
    assert short.row_ids.tolist() == [0, 2, 4, -1, 1, 3, -1, -1]


@pytest.mark.slow  # ~10 s each (test_model_hf's shared-prefix decode runs in the fast tier)
@pytest.mark.parametrize("unstack", [True, False], ids=["unstacked", "stacked"])
def test_grouped_rows_read_a_shared_prefix(qwen, unstack):
    """Decoding in the cascade layout gives each row the tokens (same key) and logprobs it gets
    with sharing off, and logprobs equal to a full forward pass; on one device (both layer
    layouts) and on a mesh that splits the batch in 2."""
    d, _, cfg, params = qwen
    a, b = _rows(10, lengths=(9, 4))
    rows = [a, b, a, b, b, a, a, b]
    sp = SamplingParams(1.0, top_p=0.9)
    config = dataclasses.replace(CONFIG, unstack_layers=unstack)
    assert (
        plan_chunks([np.asarray(r, np.int32) for r in rows], np.full(8, 24, np.int32), config, 1, 0)[0].group
        == 4
    )
    _check_sharing_changes_nothing(
        d, cfg, params, config, rows, sp, jax.random.key(5), copies=(0, 2, 5, 6), mesh=not unstack
    )


# --------------------------------------------------------------------------- meshes
@pytest.mark.slow  # 6-8 s each (test_sharding's sharded forward runs in the fast tier)
@pytest.mark.parametrize(
    "shape, sp",
    [((1, 2, 4), SamplingParams(0.9, top_k=20, top_p=0.95)), ((8, 1, 1), SamplingParams(1.0))],
    ids=["fsdp2_tensor4", "data8"],
)
def test_mesh_results_equal_one_device(qwen, shape, sp):
    """Sharded params, cache and batch give the tokens (same key) and logprobs of one device;
    the top-k/top-p case runs its sort on tensor-sharded logits."""
    d, _, cfg, params = qwen
    rows = _rows(7)
    budgets = [10, 4, 24, 16, 7]
    ref = Sampler(cfg, config=CONFIG, stop_token_ids=()).generate(
        params, rows, budgets, sp, jax.random.key(2)
    )
    rules = ShardingRules(make_mesh(*shape))
    _, sharded = load_hf(d, rules=rules)
    assert len(sharded["layers"]["gate_proj"].sharding.device_set) == 8
    sampler = Sampler(cfg, rules=rules, config=CONFIG, stop_token_ids=())
    assert sampler.batch_multiple == {(1, 2, 4): 2, (8, 1, 1): 8}[shape]
    out = sampler.generate(sharded, rows, budgets, sp, jax.random.key(2))
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    np.testing.assert_array_equal(out.lengths, ref.lengths)
    np.testing.assert_allclose(out.logprobs, ref.logprobs, atol=2e-5)
    assert out.finish_reasons == ref.finish_reasons


# --------------------------------------------------------------------------- compilation
def _jit_cache_sizes() -> tuple[int, int] | None:
    if not hasattr(loop.prefill, "_cache_size"):
        return None
    return loop.prefill._cache_size(), loop.decode._cache_size()


@pytest.mark.slow  # ~13 s: ten sampler calls
def test_ten_calls_in_one_bucket_compile_once(qwen):
    _, _, cfg, params = qwen
    cfg = cfg.replace(rms_norm_eps=cfg.rms_norm_eps * (1 + 1e-12))  # fresh jit cache key
    sampler = Sampler(cfg, config=CONFIG, stop_token_ids=())
    compiles = []

    def listener(event: str, duration: float, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    rng = np.random.default_rng(0)
    before = _jit_cache_sizes()
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for call in range(10):
            n = int(rng.integers(5, 9))  # batch bucket 8
            rows = [rng.integers(3, VOCAB, int(rng.integers(17, 33))).tolist() for _ in range(n)]
            budgets = rng.integers(17, 25, n).tolist()  # generation bucket 24
            sp = SamplingParams(float(rng.uniform(0.5, 1.5)))  # temperature is traced
            sampler.generate(params, rows, budgets, sp, jax.random.key(call))
            if call == 0:
                first = len(compiles)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert first >= 2 and len(compiles) == first  # calls 2..10 compiled nothing at all
    if before is not None:  # jit's (private) cache size: one new entry per program
        after = _jit_cache_sizes()
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "prompts, budget, match",
    [
        ([[5, 6], []], 4, "prompt 1 is empty"),
        ([], 4, "prompts is empty"),
        ([[5] * 33], 4, "prompt 0 has 33 tokens, more than the largest prompt bucket 32"),
        ([[5, 6]], 0, "max_new_tokens must be >= 1, got 0"),
        ([[5, 6], [7]], [3, -1], "max_new_tokens must be >= 1, got -1 for prompt 1"),
        ([[5, 6], [7]], [3], "max_new_tokens has 1 entries for 2 prompts"),
        ([[5, 6]], 25, "max_new_tokens 25 .* exceeds the largest generation bucket 24"),
        ([[5, VOCAB]], 4, f"token id {VOCAB} outside the vocabulary"),
        ([[5, -1]], 4, "token id -1 outside the vocabulary"),
    ],
)
def test_bad_input_is_a_clear_error(qwen, prompts, budget, match):
    _, _, cfg, params = qwen
    with pytest.raises(ValueError, match=match):
        Sampler(cfg, config=CONFIG).generate(params, prompts, budget, GREEDY, jax.random.key(0))


def test_bad_types_and_settings(qwen):
    _, _, cfg, params = qwen
    s = Sampler(cfg, config=CONFIG)
    with pytest.raises(TypeError, match="takes token ids"):
        s.generate(params, ["hello"], 4, GREEDY, jax.random.key(0))
    with pytest.raises(TypeError, match="SamplingParams"):
        s.generate(params, [[5]], 4, {"temperature": 1.0}, jax.random.key(0))
    with pytest.raises(ValueError, match="top_k=1000 exceeds the vocabulary size"):
        s.generate(params, [[5]], 4, SamplingParams(top_k=1000), jax.random.key(0))
    with pytest.raises(TypeError, match="PRNG key"):
        s.generate(params, [[5]], 4, GREEDY, 0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        Sampler(cfg, stop_token_ids=(VOCAB,))
    with pytest.raises(ValueError, match="share_prompts must be a bool"):
        SamplerConfig(share_prompts="yes")
    for name in ("unstack_layers", "keys_last"):
        with pytest.raises(ValueError, match=f"{name} must be None or a bool"):
            SamplerConfig(**{name: 1})
    for name in ("decode_matmul_splits", "page_size", "read_extents", "decode_widths"):
        for bad in (0, True, 1.5):
            with pytest.raises(ValueError, match=f"{name} must be None or an int"):
                SamplerConfig(**{name: bad})
    with pytest.raises(ValueError, match="engine must be one of"):
        SamplerConfig(engine="dynamic")
    with pytest.raises(ValueError, match="cache slots exceed max_cache_len 30"):
        Sampler(
            cfg, config=SamplerConfig(prompt_buckets=(16, 32), gen_buckets=(8, 16), max_cache_len=30)
        ).generate(params, [[5] * 20], 10, GREEDY, jax.random.key(0))

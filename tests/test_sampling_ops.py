"""The sampling step in isolation: distributions (chi-square), filters, logprobs, config checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from azr_jax.sampling.config import SamplerConfig, SamplingParams, pick_bucket, sampler_config
from azr_jax.sampling.ops import SamplingMode, nucleus_keep, sample

# A fixed small distribution with a long tail (the tail tokens are what filters must remove).
LOGITS = np.log(np.array([0.30, 0.20, 0.15, 0.12, 0.08, 0.06, 0.04, 0.03, 0.015, 0.005]))
V = LOGITS.size
DRAWS = 40_000


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _reference_probs(logits: np.ndarray, p: SamplingParams) -> np.ndarray:
    """HF's warper order written out in numpy: temperature, top-k, then top-p on the rest."""
    scaled = logits / p.temperature
    order = np.argsort(-scaled, kind="stable")
    keep = np.zeros(V, bool)
    keep[order[: p.top_k or V]] = True
    probs = np.where(keep, _softmax(np.where(keep, scaled, -np.inf)), 0.0)
    if p.top_p < 1:
        ranked = probs[order]
        above = np.cumsum(ranked) - ranked
        drop = order[above >= p.top_p]
        probs[drop] = 0.0
    return probs / probs.sum()


@pytest.fixture(scope="module")
def draw():
    """Sample DRAWS tokens from LOGITS (one row per draw, each with its own key)."""
    cache = {}

    def run(params: SamplingParams, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        mode = SamplingMode.of(params)
        if mode not in cache:
            cache[mode] = jax.jit(lambda l, k, t, p: sample(l, k, t, p, mode))
        keys = jax.random.split(jax.random.key(seed), DRAWS)
        logits = jnp.broadcast_to(jnp.asarray(LOGITS, jnp.float32), (DRAWS, V))
        tok, lp = cache[mode](logits, keys, jnp.float32(params.temperature or 1.0), jnp.float32(params.top_p))
        return np.asarray(tok), np.asarray(lp)

    return run


def _chi2_pvalue(tokens: np.ndarray, probs: np.ndarray) -> float:
    support = probs > 0
    counts = np.bincount(tokens, minlength=V)
    assert counts[~support].sum() == 0, "a token outside the support was drawn"
    return stats.chisquare(counts[support], probs[support] * len(tokens)).pvalue


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(1.0),
        SamplingParams(0.6),
        SamplingParams(1.3, top_k=4),
        SamplingParams(1.0, top_p=0.7),
        SamplingParams(0.9, top_k=6, top_p=0.8),
    ],
    ids=["t1", "t0.6", "topk4", "topp0.7", "topk6_topp0.8"],
)
def test_empirical_frequencies_match_distribution(draw, params):
    tokens, logprobs = draw(params)
    want = _reference_probs(LOGITS, params)
    assert _chi2_pvalue(tokens, want) > 1e-3
    # logprob = log softmax(logits / T) at the drawn token, before any filter
    full = np.log(_softmax(LOGITS / params.temperature))
    np.testing.assert_allclose(logprobs, full[tokens], atol=1e-5)


def test_chi_square_has_power(draw):
    """The same test rejects a wrong distribution, so passing it means something."""
    tokens, _ = draw(SamplingParams(0.6))
    assert _chi2_pvalue(tokens, _reference_probs(LOGITS, SamplingParams(1.0))) < 1e-6


def test_top_k_and_top_p_never_emit_excluded_tokens(draw):
    for params, allowed in [
        (SamplingParams(1.0, top_k=3), {0, 1, 2}),
        (SamplingParams(1.0, top_p=0.45), {0, 1}),  # 0.30 < 0.45 <= 0.50
        (SamplingParams(1.0, top_p=0.55), {0, 1, 2}),
        (SamplingParams(1.0, top_p=0.3), {0}),
        (SamplingParams(5.0, top_k=2, top_p=0.99), {0, 1}),
    ]:
        tokens, _ = draw(params, seed=7)
        assert set(np.unique(tokens).tolist()) == allowed, params


def test_top_k_exact_count_with_ties():
    """Tied logits at the k boundary still give exactly k candidates."""
    logits = jnp.zeros((DRAWS // 4, 8), jnp.float32)
    keys = jax.random.split(jax.random.key(3), logits.shape[0])
    tok, _ = sample(logits, keys, jnp.float32(1.0), jnp.float32(1.0), SamplingMode(top_k=3))
    assert len(np.unique(np.asarray(tok))) == 3


def test_greedy_is_argmax_with_unscaled_logprob():
    logits = jax.random.normal(jax.random.key(0), (16, 50)) * 3
    keys = jax.random.split(jax.random.key(1), 16)
    tok, lp = sample(logits, keys, jnp.float32(0.5), jnp.float32(0.2), SamplingMode(greedy=True))
    np.testing.assert_array_equal(np.asarray(tok), np.argmax(np.asarray(logits), -1))
    ref = jax.nn.log_softmax(logits)[jnp.arange(16), tok]
    np.testing.assert_allclose(np.asarray(lp), np.asarray(ref), atol=1e-6)


def test_same_keys_same_tokens_different_keys_differ(draw):
    a, _ = draw(SamplingParams(1.0), seed=11)
    b, _ = draw(SamplingParams(1.0), seed=11)
    c, _ = draw(SamplingParams(1.0), seed=12)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.5


def test_no_sort_over_the_vocabulary_without_top_k():
    """Temperature-only and top-p sampling compile without a sort over the vocabulary (the
    nucleus is found by bisection); only top-k sorts (its k candidates)."""
    logits = jnp.zeros((4, 1000), jnp.float32)
    keys = jax.random.split(jax.random.key(0), 4)
    args = (logits, keys, jnp.float32(1.0), jnp.float32(0.9))

    def hlo(mode):
        return jax.jit(lambda l, k, t, p: sample(l, k, t, p, mode)).lower(*args).as_text()

    assert "stablehlo.sort" not in hlo(SamplingMode())
    assert "stablehlo.sort" not in hlo(SamplingMode(top_p=True))


@pytest.mark.parametrize("seed", range(4))
def test_sort_free_nucleus_equals_the_sorted_one(seed):
    """Rows of random logits (vocabularies up to 50k, peaked to flat): the bisection keeps
    exactly the tokens a sort + exclusive cumulative sum keeps (numpy reference, float64), up
    to fp32 rounding of the mass at the boundary."""
    rng = np.random.default_rng(seed)
    vocab = int(rng.choice([7, 300, 4096, 49152]))
    logits = rng.normal(0.0, rng.uniform(0.1, 8.0, (16, 1)), (16, vocab)).astype(np.float32)
    for top_p in (0.05, 0.5, 0.9, 0.95, 0.999):
        got = np.asarray(nucleus_keep(jnp.asarray(logits), jnp.float32(top_p)))
        for row, keep in zip(logits, got):
            probs = _softmax(row.astype(np.float64))
            order = np.argsort(-probs, kind="stable")
            above = np.cumsum(probs[order]) - probs[order]
            want = np.zeros(vocab, bool)
            want[order[above < top_p]] = True
            # a token whose mass above is within fp32 rounding of top_p may go either way
            close = np.zeros(vocab, bool)
            close[order[np.abs(above - top_p) < 1e-5]] = True
            np.testing.assert_array_equal(keep[~close], want[~close])
            assert keep.sum() >= 1 and keep[order[0]]


def test_sort_free_nucleus_keeps_every_tied_token():
    """Where the smallest kept probability is tied, all tied tokens stay (a sort would keep an
    arbitrary subset): four equal tokens at top_p 0.5 are all kept; the most likely token always
    survives."""
    keep = nucleus_keep(jnp.zeros((1, 4), jnp.float32), jnp.float32(0.5))
    assert np.asarray(keep).tolist() == [[True] * 4]
    keep = nucleus_keep(jnp.asarray([[9.0, 0.0, 0.0]], jnp.float32), jnp.float32(0.01))
    assert np.asarray(keep).tolist() == [[True, False, False]]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(top_k=2.5), "top_k"),
    ],
)
def test_invalid_sampling_params(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(prompt_buckets=()), "prompt_buckets must not be empty"),
        (dict(gen_buckets=(32, 16)), "strictly increasing"),
        (dict(batch_buckets=(0, 4)), "positive"),
        (dict(max_batch=512), "largest batch bucket"),
        (dict(prefill_chunk=0), "prefill_chunk"),
        (dict(max_cache_len=1), "max_cache_len"),
    ],
)
def test_invalid_sampler_config(kw, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig(**kw)


def test_sampler_config_from_the_config_file():
    """`c.sampler` (azr_jax/defaults.py) -> SamplerConfig: "auto" / 0 leave a decode-plan
    choice to `make_plan`, other values force it, a bad value is one clear error."""
    from azr_jax.defaults import base_config

    section = base_config().sampler
    got = sampler_config(section)
    assert got == SamplerConfig(
        prompt_buckets=section.prompt_buckets, gen_buckets=section.gen_buckets, max_batch=section.max_batch
    )
    section.update(
        engine="continuous",
        unstack_layers="off",
        keys_last="on",
        decode_matmul_splits=3,
        page_size=32,
        read_extents=8,
        decode_widths=2,
        share_prompts=False,
        prefill_chunk=256,
    )
    got = sampler_config(section)
    assert (
        got.engine,
        got.unstack_layers,
        got.keys_last,
        got.decode_matmul_splits,
        got.page_size,
        got.read_extents,
        got.decode_widths,
        got.share_prompts,
        got.prefill_chunk,
    ) == ("continuous", False, True, 3, 32, 8, 2, False, 256)
    section.keys_last = "yes"
    with pytest.raises(ValueError, match="sampler.keys_last must be one of"):
        sampler_config(section)
    section.keys_last = "auto"
    section.engine = "fast"
    with pytest.raises(ValueError, match="engine must be one of"):
        sampler_config(section)


def test_pick_bucket():
    assert pick_bucket(1, (16, 32), "x") == 16
    assert pick_bucket(17, (16, 32), "x") == 32
    with pytest.raises(ValueError, match="prompt length 33 exceeds the largest configured bucket 32"):
        pick_bucket(33, (16, 32), "prompt length")

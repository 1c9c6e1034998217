"""The real embedded model: batched greedy generation through the text layer equals HF torch
`generate` token for token (64 new tokens, 4 AZR prompts of different lengths in one padded
batch), and the returned logprobs equal a full forward pass."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import hf_models
from azr_jax.model import api
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.demo_prompts import azr_task_prompts
from azr_jax.sampling.text import TextSampler

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("torch_one_thread")
pytest.importorskip("gguf")
assets = pytest.importorskip("azr_jax.hf.assets")

NEW_TOKENS = 64


@pytest.fixture(scope="module")
def smollm2():
    d, cfg, params, ref = hf_models.smollm2_and_reference()
    return d, cfg, params, ref


# static: the 4 prompts in one chunk; continuous: 2 slots, so 2 prompts wait for a free slot
# (one compiled step: the width and extent switches are tested on tiny models)
ENGINES = {
    "static": SamplerConfig(batch_buckets=(4,), max_batch=4),
    "continuous": SamplerConfig(
        batch_buckets=(2,), max_batch=2, engine="continuous", read_extents=1, decode_widths=1
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_greedy_64_tokens_on_real_prompts_equal_hf(smollm2, engine):
    d, cfg, params, ref = smollm2
    ts = TextSampler.from_dir(d, cfg, config=ENGINES[engine])
    prompts = [p for i, p in enumerate(azr_task_prompts(6)) if i in (0, 1, 3, 4)]
    out = ts.generate(params, prompts, NEW_TOKENS, SamplingParams(temperature=0.0), jax.random.key(0))
    assert out.sample.engine == engine
    lengths = [len(ids) for ids in out.prompt_ids]
    assert len(set(lengths)) == 4, lengths  # four different lengths, so real padding
    eos = ts.tokenizer.eos_token_ids[0]
    for i, ids in enumerate(out.prompt_ids):
        with torch.no_grad():
            want = ref.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos,
            )[0, len(ids) :].tolist()
        assert out.completion_ids(i) == want, i
        assert out.texts[i] == ts.tokenizer.hf.decode(want, skip_special_tokens=True)
    # logprobs against one cache-free forward over left-padded prompt + completion
    P, N = max(lengths), out.sample.tokens.shape[1]
    tok = np.zeros((len(prompts), P + N), np.int32)
    mask = np.zeros_like(tok)
    for i, ids in enumerate(out.prompt_ids):
        tok[i, P - len(ids) : P], mask[i, P - len(ids) : P] = ids, 1
    tok[:, P:], mask[:, P:] = out.sample.tokens, out.sample.mask
    logits = jax.jit(lambda p, t, m: api.apply(cfg, p, t, api.positions_from_mask(m), m)[0])(
        params, tok, mask
    )
    logp = jax.nn.log_softmax(logits[:, P - 1 : -1], axis=-1)
    want = np.take_along_axis(np.asarray(logp), out.sample.tokens[..., None], -1)[..., 0]
    m = out.sample.mask
    np.testing.assert_allclose(out.sample.logprobs[m], want[m], atol=1e-4)

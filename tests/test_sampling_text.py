"""Text layer: tokenizer loading (sentencepiece and tokenizer.json), AZR templates, decoding,
stop strings cut consistently in text, ids, logprobs and masks."""

from __future__ import annotations

import copy
import io
import json

import jax
import numpy as np
import pytest

import hf_models
from azr_jax.azr.prompts import R1_INSTRUCTION
from azr_jax.hf.load import load_hf
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.text import TextSampler, Tokenizer, first_stop, tokens_through

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("torch_one_thread")
spm = pytest.importorskip("sentencepiece")

CONFIG = SamplerConfig(prompt_buckets=(128, 192, 256), gen_buckets=(24,), batch_buckets=(4,), max_batch=4)
PROMPTS = ["def f(x): return x + 1", "The answer is 42.", "Think step by step about the task."]


@pytest.fixture(scope="module")
def spm_model_dir(tmp_path_factory):
    """A tiny random llama (vocab 160) next to a sentencepiece tokenizer trained on the spot."""
    d = tmp_path_factory.mktemp("spm_llama")
    model = hf_models.build("llama3_scaled", str(d))
    corpus = [
        "def f(x):",
        "    return x + 1",
        "The answer is <answer> 42 </answer>.",
        "Think step by step about the task.",
        "User: Assistant: <think>",
    ] * 20
    corpus += [f"line {i} alpha beta gamma delta {i * 7}" for i in range(200)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        vocab_size=hf_models.TINY["vocab_size"],
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    (d / "tokenizer.model").write_bytes(buf.getvalue())
    (d / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "legacy": False,
            }
        )
    )
    return d, model


@pytest.fixture(scope="module")
def text_sampler(spm_model_dir):
    d, model = spm_model_dir
    cfg, params = load_hf(d)
    return TextSampler.from_dir(d, cfg, config=CONFIG), params, model


def test_sentencepiece_tokenizer_and_base_template(spm_model_dir):
    d, _ = spm_model_dir
    tok = Tokenizer(d)
    assert tok.template == "base"  # no chat template shipped
    assert len(tok) == hf_models.TINY["vocab_size"] and tok.eos_token_ids == (2,)
    text = tok.render("add one")
    assert text == f"{R1_INSTRUCTION}\nUser: add one\nAssistant: <think>"
    ids = tok.encode_prompt("add one")
    assert tok.hf(text)["input_ids"][0] == tok.hf.bos_token_id  # the tokenizer's default...
    assert ids == tok.hf(text)["input_ids"][1:]  # ...but R1 prompts carry no BOS
    assert Tokenizer(d, template="raw").encode_prompt("add one") == tok.encode("add one")
    with pytest.raises(ValueError, match="has no chat template"):
        Tokenizer(d, template="chat")
    with pytest.raises(ValueError, match="template must be one of"):
        Tokenizer(d, template="r1")
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        Tokenizer(d / "missing")


def test_chat_template_with_think_prefix():
    """SmolLM2's tokenizer.json + chat template: system = R1 instruction, reply opens <think>."""
    assets = pytest.importorskip("azr_jax.hf.assets")
    try:
        d = assets.smollm2_hf_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    tok = Tokenizer(d)
    assert tok.template == "chat"
    want = (
        f"<|im_start|>system\n{R1_INSTRUCTION}<|im_end|>\n<|im_start|>user\nadd one<|im_end|>\n"
        "<|im_start|>assistant\n<think>"
    )
    assert tok.render("add one") == want
    ids = tok.encode_prompt("add one")
    assert ids == tok.hf(want, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.hf.convert_tokens_to_ids("<|im_start|>")
    assert tok.eos_token_ids == (tok.hf.convert_tokens_to_ids("<|im_end|>"),)


def test_text_generation_matches_hf_and_stop_strings_cut_everything(text_sampler):
    ts, params, model = text_sampler
    tok = ts.tokenizer
    out = ts.generate(params, PROMPTS, 20, SamplingParams(temperature=0.0), jax.random.key(0))
    for i, prompt in enumerate(PROMPTS):
        ids = out.prompt_ids[i]
        with torch.no_grad():
            ref = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=20,
                do_sample=False,
                eos_token_id=2,
                pad_token_id=0,
            )
        want = ref[0, len(ids) :].tolist()
        assert out.completion_ids(i) == want
        assert out.texts[i] == tok.hf.decode(want, skip_special_tokens=True)
        assert out.stop_strings[i] is None
    # Stop at a string taken from the middle of row 0's text (it spans token boundaries or not,
    # either way the ids must be the shortest prefix whose text contains it).
    full = out.texts[0]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    ts_stop = TextSampler(ts.sampler, tok, stop_strings=("\x00never", stop))
    cut = ts_stop.generate(params, PROMPTS, 20, SamplingParams(temperature=0.0), jax.random.key(0))
    end = full.index(stop) + len(stop)
    assert cut.texts[0] == full[:end] and cut.stop_strings[0] == stop
    assert cut.sample.finish_reasons[0] == "stop"
    k = int(cut.sample.lengths[0])
    ids0 = out.completion_ids(0)
    assert cut.completion_ids(0) == ids0[:k]
    assert stop in tok.decode(ids0[:k]) and stop not in tok.decode(ids0[: k - 1])
    assert cut.sample.mask[0].sum() == k and not cut.sample.mask[0, k:].any()
    np.testing.assert_array_equal(cut.sample.logprobs[0, :k], out.sample.logprobs[0, :k])
    assert (cut.sample.logprobs[0, k:] == 0).all() and (cut.sample.tokens[0, k:] == 0).all()


def test_first_stop_and_token_search():
    assert first_stop("abc </answer> xyz </answer>", ["</answer>"]) == (13, "</answer>")
    # the stop string that *completes* first wins, as it would when streaming
    assert first_stop("aXYbbZ", ["bbZ", "XY"]) == (3, "XY")
    assert first_stop("nothing here", ["</answer>"]) is None
    pieces = ["<ans", "wer>", " 4", "2 </", "answer>", " tail"]
    decode = lambda ids: "".join(pieces[i] for i in ids)
    ids = list(range(len(pieces)))
    assert tokens_through(decode, ids, "<answer>") == 2
    assert tokens_through(decode, ids, "</answer>") == 5
    assert tokens_through(decode, ids, "<") == 1


def test_text_sampler_errors(text_sampler):
    ts, params, _ = text_sampler
    with pytest.raises(TypeError, match="not one string"):
        ts.generate(params, "one prompt", 4, SamplingParams(), jax.random.key(0))
    with pytest.raises(ValueError, match="non-empty strings"):
        TextSampler(ts.sampler, ts.tokenizer, stop_strings=("",))
    with pytest.raises(TypeError, match="not one string"):
        TextSampler(ts.sampler, ts.tokenizer, stop_strings="</answer>")
    small = copy.copy(ts.sampler)
    small.cfg = ts.sampler.cfg.replace(vocab_size=100)
    with pytest.raises(ValueError, match="tokenizer has 160 tokens but the model's vocabulary is 100"):
        TextSampler(small, ts.tokenizer)

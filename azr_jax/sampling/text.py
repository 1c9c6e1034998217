"""Text in, text out: tokenizer loading, AZR prompt rendering, decoding and stop strings.

The trainer learns from token ids, never from re-tokenised text, so every result here carries
the exact ids the model produced (cut consistently with the text when a stop string ends a
completion early) and their logprobs.

Prompt templates (`azr_jax.azr.prompts`):
- "base": the R1 plain-text template, ending in "Assistant: <think>"; no special tokens (the
  official runs add no BOS).
- "chat": the tokenizer's chat template (R1 instruction as the system message, the task as the
  user message, generation prompt on), then the "<think>" reply prefix.
- "raw": the text exactly as given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Literal

import jax

from azr_jax.azr.prompts import PromptConfig, render_base, render_chat
from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.sampler import FINISH_STOP, SampleOutput, Sampler
from sharding.rules import ShardingRules

Template = Literal["base", "chat", "raw"]
TEMPLATES = ("base", "chat", "raw")


class Tokenizer:
    """A transformers `AutoTokenizer` read from a local directory (tokenizer.json or a
    sentencepiece tokenizer.model), plus AZR prompt rendering.

    `template` defaults to "chat" when the tokenizer ships a chat template, else "base".
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        template: Template | None = None,
        prompt_config: PromptConfig = PromptConfig(),
    ):
        import transformers

        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"tokenizer directory not found: {path}")
        self.hf = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        if template is None:
            template = "chat" if getattr(self.hf, "chat_template", None) else "base"
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        if template == "chat" and not getattr(self.hf, "chat_template", None):
            raise ValueError(f"template='chat' but the tokenizer in {path} has no chat template")
        self.template: Template = template
        self.prompt_config = prompt_config

    def __len__(self) -> int:
        return len(self.hf)

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        eos = self.hf.eos_token_id
        return () if eos is None else (int(eos),)

    def render(self, prompt: str) -> str:
        """The exact text the model sees for a task prompt."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if self.template == "base":
            return render_base(prompt, self.prompt_config)
        if self.template == "chat":
            chat = render_chat(prompt, self.prompt_config)
            text = self.hf.apply_chat_template(chat.messages(), add_generation_prompt=True, tokenize=False)
            return text + chat.assistant_prefix
        return prompt

    def encode(self, text: str) -> list[int]:
        """Ids of an already rendered text; templates carry their own special tokens."""
        return list(self.hf.encode(text, add_special_tokens=False))

    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.encode(self.render(prompt))
        if not ids:
            raise ValueError("prompt renders to zero tokens")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)


@dataclasses.dataclass
class TextOutput:
    """Texts plus the token-level view the trainer uses, row-aligned with the prompts.

    `sample` is the sampler's output with rows cut at their stop string (ids, logprobs, mask,
    lengths and finish reasons all agree with `texts`).
    """

    prompt_ids: list[list[int]]
    texts: list[str]
    stop_strings: list[str | None]  # the stop string that ended each row, if any
    sample: SampleOutput

    def completion_ids(self, i: int) -> list[int]:
        return self.sample.completion(i)


def first_stop(text: str, stop_strings: Sequence[str]) -> tuple[int, str] | None:
    """(end index, stop string) of the stop string that completes first in `text`."""
    best: tuple[int, str] | None = None
    for s in stop_strings:
        i = text.find(s)
        if i >= 0 and (best is None or i + len(s) < best[0]):
            best = (i + len(s), s)
    return best


def tokens_through(decode, ids: Sequence[int], stop: str) -> int:
    """Fewest leading ids whose decoded text contains `stop` (binary search; containment only
    grows as ids are added)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if stop in decode(ids[:mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


class TextSampler:
    """Tokenise + render prompts, generate with a `Sampler`, decode and apply stop strings.

    Stop strings cut a completion after the first one that appears (it stays in the text, as
    the R1 parser needs e.g. "</answer>"); the ids are cut after the token that completes it.
    Stop *tokens* (EOS) are the sampler's: they end generation on device, are kept in the ids
    and dropped from the text.
    """

    def __init__(self, sampler: Sampler, tokenizer: Tokenizer, *, stop_strings: Sequence[str] = ()):
        if isinstance(stop_strings, str):
            raise TypeError("stop_strings must be a sequence of strings, not one string")
        if any(not isinstance(s, str) or not s for s in stop_strings):
            raise ValueError(f"stop strings must be non-empty strings, got {list(stop_strings)}")
        if len(tokenizer) > sampler.cfg.vocab_size:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                f"is {sampler.cfg.vocab_size}"
            )
        self.sampler = sampler
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike,
        cfg: ModelConfig,
        *,
        rules: ShardingRules | None = None,
        config: SamplerConfig = SamplerConfig(),
        template: Template | None = None,
        prompt_config: PromptConfig = PromptConfig(),
        stop_strings: Sequence[str] = (),
    ) -> TextSampler:
        """Tokenizer from `path` and a Sampler that stops on the model's and the tokenizer's
        EOS ids (instruct tokenizers often end turns with a token the base config lacks)."""
        tok = Tokenizer(path, template=template, prompt_config=prompt_config)
        stops = tuple(dict.fromkeys(tuple(cfg.eos_token_id) + tok.eos_token_ids))
        pad = tok.hf.pad_token_id
        sampler = Sampler(
            cfg, rules=rules, config=config, stop_token_ids=stops, pad_token_id=0 if pad is None else int(pad)
        )
        return cls(sampler, tok, stop_strings=stop_strings)

    def generate(
        self,
        params: api.Params,
        prompts: Sequence[str],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams,
        key: jax.Array,
    ) -> TextOutput:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not one string")
        prompt_ids = [self.tokenizer.encode_prompt(p) for p in prompts]
        out = self.sampler.generate(params, prompt_ids, max_new_tokens, sampling, key)
        return self.finish(prompt_ids, out)

    def finish(self, prompt_ids: list[list[int]], out: SampleOutput) -> TextOutput:
        """Decode each row and cut it at its first stop string (arrays are edited in place)."""
        texts, stops = [], []
        stop_ids = set(self.sampler.stop_token_ids)
        for i in range(len(prompt_ids)):
            ids = out.completion(i)
            body = ids[:-1] if ids and ids[-1] in stop_ids else ids
            text = self.tokenizer.decode(body)
            hit = first_stop(text, self.stop_strings) if self.stop_strings else None
            if hit is None:
                texts.append(text)
                stops.append(None)
                continue
            end, stop = hit
            keep = tokens_through(self.tokenizer.decode, body, stop)
            out.tokens[i, keep:] = self.sampler.pad_token_id
            out.logprobs[i, keep:] = 0.0
            out.mask[i, keep:] = False
            out.lengths[i] = keep
            out.finish_reasons[i] = FINISH_STOP
            texts.append(text[:end])
            stops.append(stop)
        return TextOutput(prompt_ids=prompt_ids, texts=texts, stop_strings=stops, sample=out)

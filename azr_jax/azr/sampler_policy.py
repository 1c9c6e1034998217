"""The real policy: prompt templates + tokenizer + the jitted sampler, on the live params.

Prompts are rendered the paper's way for base models (plain-text R1 template, no BOS, the
model continues after "Assistant: <think>") or with the tokenizer's chat template for instruct
models (R1 instruction as the system message, the reply prefilled with "<think>"). Completions
come back as token ids (what the update trains on) and decoded text (what the parsers read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from azr_jax.azr.policy import Rollout
from azr_jax.azr.prompts import PromptConfig, prompt_set

TEMPLATES = ("base", "chat")


class SamplerPolicy:
    def __init__(
        self,
        tokenizer: Any,
        sampler: Any,
        sampling: Any,
        *,
        template: str = "base",
        prompt_cfg: PromptConfig = PromptConfig(),
    ):
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        if template == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("template='chat' needs a tokenizer with a chat template; use 'base'")
        self.tokenizer, self.sampler, self.sampling = tokenizer, sampler, sampling
        self.template, self.prompt_cfg = template, prompt_cfg
        self.prompts = prompt_set(prompt_cfg)
        self.pad_id = sampler.pad_token_id
        self._calls: list[Any] = []  # outputs since the last `take_stats`

    def take_stats(self) -> dict[str, float]:
        """The sampler's measurements over the calls since the last take, as step metrics:
        slot utilisation (decode tokens / decode slots x steps) and KV bytes read per
        generated token."""
        calls, self._calls = self._calls, []
        slot_steps = sum(o.slot_steps for o in calls)
        tokens = sum(int(o.lengths.sum()) for o in calls)
        nan = float("nan")
        return {
            "sampler/slot_utilisation": sum(o.decode_tokens for o in calls) / slot_steps
            if slot_steps
            else nan,
            "sampler/kv_bytes_per_token": sum(o.kv_bytes_read for o in calls) / tokens if tokens else nan,
        }

    def prompt_ids(self, user_prompt: str) -> list[int]:
        tok = self.tokenizer
        if self.template == "chat":
            cp = self.prompts.render_chat(user_prompt)
            ids = tok.apply_chat_template(
                cp.messages(), add_generation_prompt=True, tokenize=True, return_dict=False
            )
            ids = list(ids["input_ids"] if isinstance(ids, dict) else ids)
            return ids + tok.encode(cp.assistant_prefix, add_special_tokens=False)
        return tok.encode(self.prompts.render_base(user_prompt), add_special_tokens=False)

    def generate(
        self, params: Any, prompts: Sequence[list[int]], max_new_tokens: int, key: jax.Array
    ) -> list[Rollout]:
        if not prompts:
            return []
        out = self.sampler.generate(params, prompts, max_new_tokens, self.sampling, key)
        self._calls.append(out)
        rollouts = []
        for i, prompt in enumerate(prompts):
            n = int(out.lengths[i])
            ids = [int(t) for t in out.tokens[i, :n]]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            rollouts.append(
                Rollout(
                    list(prompt),
                    ids,
                    np.asarray(out.logprobs[i, :n], np.float32),
                    text,
                    out.finish_reasons[i],
                )
            )
        return rollouts


def build_policy(
    model_cfg: Any,
    tokenizer: Any,
    rules: Any,
    *,
    sampler: Any,
    sampling: Any,
    template: str,
    prompt_cfg: PromptConfig,
    prompt_buckets: Sequence[int] | None = None,
    gen_buckets: Sequence[int] | None = None,
) -> SamplerPolicy:
    """A SamplerPolicy whose sampler stops at the model's and the tokenizer's EOS ids;
    `sampler` is the config's `sampler` section (buckets and decode plan), `prompt_buckets` /
    `gen_buckets` override its buckets."""
    import dataclasses

    from azr_jax.sampling.config import sampler_config
    from azr_jax.sampling.sampler import Sampler

    config = sampler_config(sampler)
    config = dataclasses.replace(
        config,
        prompt_buckets=tuple(prompt_buckets or config.prompt_buckets),
        gen_buckets=tuple(gen_buckets or config.gen_buckets),
    )
    eos = list(model_cfg.eos_token_id)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id
    pad = pad if pad is not None else (eos[0] if eos else 0)
    sampler = Sampler(model_cfg, rules=rules, stop_token_ids=eos, pad_token_id=pad, config=config)
    return SamplerPolicy(tokenizer, sampler, sampling, template=template, prompt_cfg=prompt_cfg)

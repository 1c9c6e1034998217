"""What the self-play step needs from "the model": render a task prompt, generate completions.

The step talks to this small interface, not to the sampler directly, so a test can drive a full
step with prepared texts (a scripted policy) through the real parsers, farm, rewards and update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

import jax
import numpy as np


@dataclasses.dataclass
class Rollout:
    """One generated completion, in tokens (what is trained on) and text (what is parsed)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: np.ndarray  # sampler logprob of each completion token, [len(completion_ids)]
    text: str
    finish_reason: str  # "stop" | "length"


class Policy(Protocol):
    def prompt_ids(self, user_prompt: str) -> list[int]:
        """Token ids of the fully rendered prompt (template + task), ready for generation."""

    def generate(
        self, params: Any, prompts: Sequence[list[int]], max_new_tokens: int, key: jax.Array
    ) -> list[Rollout]:
        """Sample one completion per prompt (rows are independent)."""

"""Batched generation on the trainer's own (sharded) params: bucketed prefill, a jitted decode
loop over a preallocated KV cache, greedy / temperature / top-k / top-p sampling with per-token
logprobs, and a text layer (tokenizer, AZR templates, stop strings) on top."""

from azr_jax.sampling.config import SamplerConfig, SamplingParams
from azr_jax.sampling.sampler import FINISH_LENGTH, FINISH_STOP, SampleOutput, Sampler
from azr_jax.sampling.text import TextOutput, TextSampler, Tokenizer

__all__ = [
    "SamplerConfig",
    "SamplingParams",
    "SampleOutput",
    "Sampler",
    "FINISH_STOP",
    "FINISH_LENGTH",
    "TextOutput",
    "TextSampler",
    "Tokenizer",
]

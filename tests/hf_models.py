"""Tiny random Hugging Face checkpoints built locally (no hub), shared by the model tests."""

from __future__ import annotations

import os

import numpy as np

TINY = dict(
    vocab_size=160,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
)

VARIANTS = {
    "qwen2_tied": ("Qwen2ForCausalLM", dict(TINY, tie_word_embeddings=True, rope_theta=10000.0)),
    "qwen2_untied": ("Qwen2ForCausalLM", dict(TINY, tie_word_embeddings=False, rope_theta=1_000_000.0)),
    "llama3_scaled": (
        "LlamaForCausalLM",
        dict(
            TINY,
            tie_word_embeddings=False,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
    ),
}


def build(variant: str, out_dir: str, seed: int = 0, dtype: str = "float32"):
    """Create, randomise (biases included) and save a tiny HF model; returns the torch model."""
    import torch
    import transformers

    arch, kw = VARIANTS[variant]
    cls = getattr(transformers, arch)
    cfg_cls = getattr(transformers, arch.replace("ForCausalLM", "Config"))
    torch.manual_seed(seed)
    model = cls(cfg_cls(**kw)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))  # non-trivial norms catch swapped keys
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model = model.to(getattr(torch, dtype))
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    return model


def left_pad(rows: list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad token rows to a common length; returns (tokens, mask) int32 arrays."""
    T = max(len(r) for r in rows)
    tokens = np.full((len(rows), T), pad_id, np.int32)
    mask = np.zeros((len(rows), T), np.int32)
    for i, r in enumerate(rows):
        tokens[i, T - len(r) :] = r
        mask[i, T - len(r) :] = 1
    return tokens, mask


def torch_logits(model, row: list[int]) -> np.ndarray:
    """Reference logits of one unpadded row from the HF torch model (fp32 numpy)."""
    import torch

    with torch.no_grad():
        out = model(torch.tensor([row])).logits[0]
    return out.float().numpy()


def smollm2_and_reference():
    """The embedded SmolLM2-135M-Instruct: (HF dir, our config, our params, HF torch model with
    eager attention, the reference formulation: sdpa reorders the same fp32 math). Skips the
    calling test when the asset is not installed."""
    import pytest
    import torch
    import transformers

    from azr_jax.hf import assets
    from azr_jax.hf.load import load_hf

    try:
        d = assets.smollm2_hf_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    cfg, params = load_hf(d)
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    return d, cfg, params, ref

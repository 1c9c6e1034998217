"""Rotary position embeddings (rotate-half layout, as HF Qwen2/Llama checkpoints expect).

Frequencies are computed once in numpy float64 then cast to fp32, and the angles in fp32 even
when the model computes in bf16: a bf16 position like 257 rounds to 256, which silently
corrupts long prompts.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from azr_jax.model.config import ModelConfig


def inverse_frequencies(cfg: ModelConfig) -> np.ndarray:
    """Per-pair inverse frequencies [head_dim // 2], including `linear`/`llama3` scaling."""
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim))
    inv = inv.astype(np.float32)
    scaling = cfg.rope_scaling_dict
    kind = scaling.get("rope_type", "default")
    if kind == "linear":
        inv = inv / np.float32(scaling["factor"])
    elif kind == "llama3":
        # Llama 3.1: leave high frequencies alone, divide low frequencies by `factor`, and
        # interpolate smoothly in between (by wavelength relative to the original context).
        factor = float(scaling["factor"])
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_ctx = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv


def rope_tables(positions: jnp.ndarray, inv_freq: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """cos/sin tables [B, T, head_dim] for integer positions [B, T] (fp32)."""
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)[None, None, :]
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def table(cfg: ModelConfig, length: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """cos/sin [length, head_dim] for positions 0..length-1: the same values `rope_tables`
    gives (same fp32 ops), to be gathered by position."""
    cos, sin = rope_tables(jnp.arange(length)[None, :], inverse_frequencies(cfg))
    return cos[0], sin[0]


def apply_rope(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
    """Rotate [B, T, heads, head_dim] by the tables; math in x's dtype like the HF reference."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos = cos[:, :, None, :].astype(x.dtype)
    sin = sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin

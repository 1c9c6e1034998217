"""Real dimensions of the models AZR was trained on (paper §4), plus our embedded default.

These let configs, memory planning and benchmarks use the true shapes without a checkpoint on
disk; loading a checkpoint always re-reads its own `config.json` and wins over a preset.
Values are the published `config.json` fields of each release.
"""

from __future__ import annotations

from azr_jax.model.config import ModelConfig

_QWEN_EOS = (151643,)


def _qwen(vocab, hidden, inter, layers, heads, kv, tied, max_pos, eos=_QWEN_EOS) -> ModelConfig:
    return ModelConfig(
        architecture="qwen2",
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=hidden // heads,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
        qkv_bias=True,
        max_position_embeddings=max_pos,
        bos_token_id=151643,
        eos_token_id=eos,
    )


PRESETS: dict[str, ModelConfig] = {
    "qwen2.5-coder-3b": _qwen(151936, 2048, 11008, 36, 16, 2, True, 32768),
    "qwen2.5-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, 131072),
    "qwen2.5-coder-7b": _qwen(152064, 3584, 18944, 28, 28, 4, False, 32768),
    "qwen2.5-coder-14b": _qwen(152064, 5120, 13824, 48, 40, 8, False, 32768),
    "llama-3.1-8b": ModelConfig(
        architecture="llama",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        rope_theta=500000.0,
        rope_scaling=(
            ("factor", 8.0),
            ("high_freq_factor", 4.0),
            ("low_freq_factor", 1.0),
            ("original_max_position_embeddings", 8192),
            ("rope_type", "llama3"),
        ),
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
        bos_token_id=128000,
        eos_token_id=(128001,),
    ),
    # The embedded default policy (offline_assets.md): SmolLM2-135M-Instruct.
    "smollm2-135m": ModelConfig(
        architecture="llama",
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
        head_dim=64,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=(2,),
    ),
}


def get_preset(name: str) -> ModelConfig:
    key = name.lower().replace("_", "-")
    if key not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[key]

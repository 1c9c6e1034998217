"""HF tensor names <-> our parameter paths, with the reshape/transpose each needs.

Qwen2 and Llama share every tensor name; HF stores linear weights as [out, in] with heads
flattened, we store [in, heads, head_dim] (and [heads, head_dim, out] for the output
projection). Both HF families already use the rotate-half RoPE layout, so no q/k permutation.
Each rule is a pair of pure numpy functions, used by the loader and (inverted) by the exporter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from azr_jax.model.config import ModelConfig

Transform = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One of our parameters. `hf` is the HF name (with `{i}` for the layer index of stacked
    parameters); `to_ours`/`to_hf` convert one (per-layer) tensor."""

    path: tuple[str, ...]
    hf: str
    to_ours: Transform
    to_hf: Transform

    @property
    def stacked(self) -> bool:
        return "{i}" in self.hf


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def rules_for(cfg: ModelConfig) -> list[Rule]:
    """All rules for `cfg`, in the order HF checkpoints list tensors."""
    D, N, K, H = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim

    def in_heads(n: int) -> tuple[Transform, Transform]:  # [n*H, D] <-> [D, n, H]
        return (lambda w: w.T.reshape(D, n, H), lambda w: w.reshape(D, n * H).T)

    def bias_heads(n: int) -> tuple[Transform, Transform]:  # [n*H] <-> [n, H]
        return (lambda b: b.reshape(n, H), lambda b: b.reshape(n * H))

    transpose = (lambda w: w.T, lambda w: w.T)
    ident = (_identity, _identity)
    o_proj = (lambda w: w.T.reshape(N, H, D), lambda w: w.reshape(N * H, D).T)

    layer = "model.layers.{i}."
    spec: list[tuple[str, str, tuple[Transform, Transform]]] = [
        ("attn_norm", layer + "input_layernorm.weight", ident),
        ("q_proj", layer + "self_attn.q_proj.weight", in_heads(N)),
        ("k_proj", layer + "self_attn.k_proj.weight", in_heads(K)),
        ("v_proj", layer + "self_attn.v_proj.weight", in_heads(K)),
    ]
    if cfg.qkv_bias:
        spec += [
            ("q_bias", layer + "self_attn.q_proj.bias", bias_heads(N)),
            ("k_bias", layer + "self_attn.k_proj.bias", bias_heads(K)),
            ("v_bias", layer + "self_attn.v_proj.bias", bias_heads(K)),
        ]
    spec.append(("o_proj", layer + "self_attn.o_proj.weight", o_proj))
    if cfg.o_bias:
        spec.append(("o_bias", layer + "self_attn.o_proj.bias", ident))
    spec += [
        ("mlp_norm", layer + "post_attention_layernorm.weight", ident),
        ("gate_proj", layer + "mlp.gate_proj.weight", transpose),
        ("up_proj", layer + "mlp.up_proj.weight", transpose),
        ("down_proj", layer + "mlp.down_proj.weight", transpose),
    ]
    if cfg.mlp_bias:
        spec += [
            ("gate_bias", layer + "mlp.gate_proj.bias", ident),
            ("up_bias", layer + "mlp.up_proj.bias", ident),
            ("down_bias", layer + "mlp.down_proj.bias", ident),
        ]

    rules = [Rule(("embed",), "model.embed_tokens.weight", *ident)]
    rules += [Rule(("layers", name), hf, *fns) for name, hf, fns in spec]
    rules.append(Rule(("final_norm",), "model.norm.weight", *ident))
    if not cfg.tie_word_embeddings:
        rules.append(Rule(("lm_head",), "lm_head.weight", *transpose))
    return rules


def hf_names(rule: Rule, num_layers: int) -> list[str]:
    return [rule.hf.format(i=i) for i in range(num_layers)] if rule.stacked else [rule.hf]

"""Model FLOPs of the programs a step runs, for MFU and step-time lower bounds.

Counted analytically (matmuls only; norms, softmax and the optimizer are noise), the way MFU is
usually reported: a forward pass costs 2 FLOPs per weight per token plus attention, a training
step 3x the forward (rematerialisation's recomputed forward is not counted: MFU measures the
model's work, not the hardware's). XLA's own cost analysis is no substitute here: it counts the
body of a `scan`/`while` loop once, whatever its trip count (micro-batches, layers, decode steps).
Attention is causal: a token at position t attends to t + 1 keys.
"""

from __future__ import annotations

from azr_jax.model.config import ModelConfig


def layer_weights(cfg: ModelConfig) -> int:
    """Matmul weights of the decoder stack (biases, norms and embeddings excluded)."""
    d, f, h, k, hd = (cfg.hidden_size, cfg.intermediate_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim)
    return cfg.num_layers * (d * hd * (2 * h + 2 * k) + 3 * d * f)


def head_weights(cfg: ModelConfig) -> int:
    """The LM head's matmul weights (the tied embedding when tied: the lookup itself is free)."""
    return cfg.hidden_size * cfg.vocab_size


def attention_flops(cfg: ModelConfig, queries: int, context_start: int = 0) -> float:
    """Forward attention FLOPs of `queries` consecutive positions after `context_start` earlier
    ones, one sequence: QK^T and AV, 2 FLOPs per multiply-add each, causal."""
    keys = queries * context_start + queries * (queries + 1) / 2  # sum over queries of t + 1
    return 4.0 * cfg.num_layers * cfg.num_heads * cfg.head_dim * keys


def forward_flops(cfg: ModelConfig, rows: int, seq: int, logit_positions: int | None = None) -> float:
    """One forward pass over `rows` sequences of `seq` tokens, the LM head applied at
    `logit_positions` of them per row (default: all)."""
    logits = seq if logit_positions is None else logit_positions
    return rows * (
        2.0 * layer_weights(cfg) * seq + 2.0 * head_weights(cfg) * logits + attention_flops(cfg, seq)
    )


def train_flops(cfg: ModelConfig, rows: int, seq: int, logit_positions: int | None = None) -> float:
    """Forward + backward (3x the forward): the 6·N·tokens of MFU plus attention."""
    return 3.0 * forward_flops(cfg, rows, seq, logit_positions)


def decode_flops(cfg: ModelConfig, rows: int, prompt: int, steps: int) -> float:
    """`steps` single-token decode steps of `rows` rows after a `prompt`-token prefix."""
    per_token = 2.0 * (layer_weights(cfg) + head_weights(cfg))
    return rows * (steps * per_token + attention_flops(cfg, steps, prompt))

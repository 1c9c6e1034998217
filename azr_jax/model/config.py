"""Model hyper-parameters, read from (and written back to) a Hugging Face `config.json`.

One dataclass covers the two decoder families AZR was trained on: Qwen2/Qwen2.5
(`Qwen2ForCausalLM`: q/k/v bias, GQA, large RoPE theta, tied embeddings on small sizes) and
Llama 3.x (`LlamaForCausalLM`: no bias, `llama3` RoPE frequency scaling). They share every
tensor name and layout, so the model code branches only on bias flags and RoPE scaling.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama"}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder-only transformer.

    `dtype` is the compute dtype (activations, matmul inputs); `param_dtype` is how parameters
    are stored (fp32 master weights by default, so optimizer updates at lr 1e-6 are not lost
    to bf16 rounding).
    """

    architecture: str  # "qwen2" | "llama"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rope_scaling: tuple[tuple[str, Any], ...] | None = None  # frozen dict form of HF rope_scaling
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()
    pad_token_id: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    # Rematerialise each decoder layer in the backward pass: "none" | "full" | "dots"
    # ("dots" keeps matmul outputs, recomputes the cheap element-wise ops).
    remat: str = "full"
    # Extra HF config fields we do not model but must write back on export (e.g. Qwen2's
    # sliding-window fields), so a round trip does not silently change the checkpoint.
    hf_extra: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.architecture not in SUPPORTED_ARCHITECTURES.values():
            raise ValueError(f"unknown architecture {self.architecture!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.remat not in ("none", "full", "dots"):
            raise ValueError(f"remat must be none|full|dots, got {self.remat!r}")
        rope_type = self.rope_scaling_dict.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"rope_scaling type {rope_type!r} is not supported (supported: {SUPPORTED_ROPE_TYPES})"
            )

    @property
    def rope_scaling_dict(self) -> dict[str, Any]:
        return dict(self.rope_scaling or ())

    @property
    def q_per_kv(self) -> int:
        return self.num_heads // self.num_kv_heads

    def replace(self, **kw: Any) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def num_params(self) -> int:
        """Parameter count (embeddings counted once when tied)."""
        d, f, h, k, hd = (
            self.hidden_size,
            self.intermediate_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
        )
        attn = d * h * hd * 2 + d * k * hd * 2
        if self.qkv_bias:
            attn += (h + 2 * k) * hd
        if self.o_bias:
            attn += d
        mlp = 3 * d * f + (2 * f + d if self.mlp_bias else 0)
        per_layer = attn + mlp + 2 * d
        emb = self.vocab_size * d * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + emb + d

    # ------------------------------------------------------------------ HF interchange
    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], source: str = "config.json", **overrides: Any) -> ModelConfig:
        """Build from the dict of an HF `config.json`; `source` names the file in errors."""
        archs = hf.get("architectures") or []
        arch = next((SUPPORTED_ARCHITECTURES[a] for a in archs if a in SUPPORTED_ARCHITECTURES), None)
        if arch is None:
            mt = hf.get("model_type")
            arch = {"qwen2": "qwen2", "llama": "llama"}.get(mt or "")
        if arch is None:
            raise ValueError(
                f"{source}: unsupported architecture {archs or hf.get('model_type')!r}; "
                f"supported: {sorted(SUPPORTED_ARCHITECTURES)}"
            )
        try:
            hidden = int(hf["hidden_size"])
            heads = int(hf["num_attention_heads"])
            fields = dict(
                architecture=arch,
                vocab_size=int(hf["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(hf["intermediate_size"]),
                num_layers=int(hf["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=int(hf.get("head_dim") or hidden // heads),
            )
        except KeyError as e:
            raise ValueError(f"{source}: missing required field {e.args[0]!r}") from None
        rope_scaling = hf.get("rope_scaling")
        rope_theta = hf.get("rope_theta")
        # transformers>=5 may nest theta and scaling under `rope_parameters`.
        params = hf.get("rope_parameters")
        if isinstance(params, dict):
            rope_theta = params.get("rope_theta", rope_theta)
            if params.get("rope_type", "default") != "default":
                rope_scaling = params
        if rope_scaling is not None:
            rope_scaling = dict(rope_scaling)
            rope_scaling.setdefault("rope_type", rope_scaling.pop("type", "default"))
            rope_scaling.pop("type", None)
            rope_scaling.pop("rope_theta", None)
            if rope_scaling.get("rope_type") == "default":
                rope_scaling = None
        eos = hf.get("eos_token_id")
        eos_t = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
        if arch == "qwen2" and hf.get("use_sliding_window"):
            log.warning(
                "%s: use_sliding_window=True is ignored: azr-jax uses full attention "
                "(Qwen2.5 releases ship it disabled)",
                source,
            )
        known = {
            "architectures",
            "model_type",
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "rope_theta",
            "rope_scaling",
            "rope_parameters",
            "rms_norm_eps",
            "tie_word_embeddings",
            "attention_bias",
            "mlp_bias",
            "max_position_embeddings",
            "bos_token_id",
            "eos_token_id",
            "pad_token_id",
            "torch_dtype",
            "dtype",
            "transformers_version",
            "hidden_act",
        }
        act = hf.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"{source}: hidden_act={act!r} is not supported (only 'silu')")
        extra = tuple(sorted((k, _freeze(v)) for k, v in hf.items() if k not in known))
        fields.update(
            rope_theta=float(rope_theta if rope_theta is not None else 10000.0),
            rope_scaling=_freeze(rope_scaling) if rope_scaling else None,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=True if arch == "qwen2" else bool(hf.get("attention_bias", False)),
            o_bias=False if arch == "qwen2" else bool(hf.get("attention_bias", False)),
            mlp_bias=bool(hf.get("mlp_bias", False)),
            max_position_embeddings=int(hf.get("max_position_embeddings", 32768)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=eos_t,
            pad_token_id=hf.get("pad_token_id"),
            hf_extra=extra,
        )
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_hf_dir(cls, path: str | os.PathLike, **overrides: Any) -> ModelConfig:
        cfg_path = os.path.join(os.fspath(path), "config.json")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"model directory not found: {path}")
        if not os.path.isfile(cfg_path):
            raise FileNotFoundError(f"no config.json in model directory {path}")
        try:
            with open(cfg_path, encoding="utf-8") as f:
                hf = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not valid JSON ({e})") from None
        return cls.from_hf_dict(hf, source=cfg_path, **overrides)

    def to_hf_dict(self, torch_dtype: str = "float32") -> dict[str, Any]:
        """The HF `config.json` dict transformers needs to rebuild this model."""
        arch_name = {v: k for k, v in SUPPORTED_ARCHITECTURES.items()}[self.architecture]
        eos: Any = list(self.eos_token_id)
        if len(eos) == 1:
            eos = eos[0]
        elif not eos:
            eos = None
        hf: dict[str, Any] = {k: _thaw(v) for k, v in self.hf_extra}
        hf.update(
            {
                "architectures": [arch_name],
                "model_type": self.architecture,
                "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size,
                "intermediate_size": self.intermediate_size,
                "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads,
                "num_key_value_heads": self.num_kv_heads,
                "head_dim": self.head_dim,
                "hidden_act": "silu",
                "rope_theta": self.rope_theta,
                "rope_scaling": _thaw(self.rope_scaling) if self.rope_scaling else None,
                "rms_norm_eps": self.rms_norm_eps,
                "tie_word_embeddings": self.tie_word_embeddings,
                "max_position_embeddings": self.max_position_embeddings,
                "bos_token_id": self.bos_token_id,
                "eos_token_id": eos,
                "torch_dtype": torch_dtype,
            }
        )
        if self.pad_token_id is not None:
            hf["pad_token_id"] = self.pad_token_id
        if self.architecture == "llama":
            hf["attention_bias"] = self.qkv_bias
            hf["mlp_bias"] = self.mlp_bias
        return hf


def _freeze(v: Any) -> Any:
    """Make nested dict/list config values hashable so the dataclass can stay frozen."""
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("__list__",) + tuple(_freeze(x) for x in v)
    return v


def _thaw(v: Any) -> Any:
    if isinstance(v, tuple) and v and v[0] == "__list__":
        return [_thaw(x) for x in v[1:]]
    if isinstance(v, tuple) and all(
        isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v
    ):
        return {k: _thaw(x) for k, x in v}
    return v

"""Load an HF model directory (safetensors, single file or sharded) into our params.

Tensor by tensor, never materialising a torch model: each HF tensor is memory-mapped,
reshaped into our layout, stacked across layers and either handed to the default device or
placed directly with its target sharding (each host then only copies its own shards).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import jax
import numpy as np

from azr_jax.hf.keymap import Rule, hf_names, rules_for
from azr_jax.hf.safetensors_io import SafetensorsFile
from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from sharding.params import array_from_host
from sharding.rules import ShardingRules

log = logging.getLogger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class Checkpoint:
    """Name -> file lookup over the safetensors files of one HF model directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"model directory not found: {self.path}")
        index = os.path.join(self.path, INDEX_FILE)
        single = os.path.join(self.path, SINGLE_FILE)
        if os.path.isfile(index):
            try:
                with open(index, encoding="utf-8") as f:
                    weight_map: dict[str, str] = json.load(f)["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{index}: not a valid safetensors index ({e!r})") from None
            for fname in sorted(set(weight_map.values())):
                if not os.path.isfile(os.path.join(self.path, fname)):
                    raise FileNotFoundError(
                        f"{index} lists shard {fname!r}, which is missing from {self.path}"
                    )
            self._where = dict(weight_map)
        elif os.path.isfile(single):
            self._where = {}
            with SafetensorsFile(single) as f:
                self._where = {k: SINGLE_FILE for k in f.keys()}
        else:
            others = sorted(n for n in os.listdir(self.path) if n.endswith((".bin", ".pt", ".pth")))
            hint = (
                (
                    f" (found {others}: re-save it with transformers `save_pretrained("
                    "safe_serialization=True)` first)"
                )
                if others
                else ""
            )
            raise FileNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in model directory {self.path}{hint}")
        self._open: dict[str, SafetensorsFile] = {}

    def names(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def file_of(self, name: str) -> str:
        return os.path.join(self.path, self._where[name])

    def _file(self, name: str) -> SafetensorsFile:
        fname = self._where[name]
        if fname not in self._open:
            self._open[fname] = SafetensorsFile(os.path.join(self.path, fname))
        return self._open[fname]

    def get(self, name: str) -> np.ndarray:
        f = self._file(name)
        if name not in f:
            raise KeyError(f"tensor {name!r} is listed in the index but missing from {f.path}")
        return f.get(name)

    def dtype(self, name: str) -> np.dtype:
        return self._file(name).dtype(name)

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()


def _expected_hf_shape(rule: Rule, our_shape: tuple[int, ...]) -> tuple[int, ...]:
    per_layer = our_shape[1:] if rule.stacked else our_shape
    return jax.eval_shape(rule.to_hf, jax.ShapeDtypeStruct(per_layer, np.float32)).shape


def load_hf(
    path: str | os.PathLike,
    *,
    rules: ShardingRules | None = None,
    param_dtype: str | None = None,
    progress: bool = False,
    **cfg_overrides: Any,
) -> tuple[ModelConfig, api.Params]:
    """Read config and weights from an HF directory.

    `param_dtype` (default: the config's, fp32) is the storage dtype of our params;
    `cfg_overrides` replace config fields (e.g. `dtype="bfloat16"` compute, `remat`).
    With `rules` (a mesh), every array is created directly with its target sharding.
    """
    cfg = ModelConfig.from_hf_dir(path, **cfg_overrides)
    if param_dtype is not None:
        cfg = cfg.replace(param_dtype=param_dtype)
    ckpt = Checkpoint(path)
    shapes = api.abstract_params(cfg)
    axes = api.logical_axes(cfg)
    rule_list = rules_for(cfg)

    used: set[str] = set()
    params: dict[str, Any] = {}
    bar = _progress(rule_list, progress, "loading " + os.path.basename(os.fspath(path).rstrip("/")))
    try:
        for rule in bar:
            leaf = shapes
            for k in rule.path:
                leaf = leaf[k]
            host = _read_stacked(ckpt, rule, tuple(leaf.shape), leaf.dtype, cfg.num_layers)
            used.update(hf_names(rule, cfg.num_layers))
            ax = axes
            for k in rule.path:
                ax = ax[k]
            if rules is not None and rules.mesh is not None:
                sharding = rules.sharding(ax, host.shape)
                arr = array_from_host(host.shape, host.dtype, sharding, lambda idx, h=host: h[idx])
            else:
                arr = jax.device_put(host)
            node = params
            for k in rule.path[:-1]:
                node = node.setdefault(k, {})
            node[rule.path[-1]] = arr
    finally:
        ckpt.close()
    extra = sorted(set(ckpt.names()) - used)
    if cfg.tie_word_embeddings and "lm_head.weight" in extra:
        extra.remove("lm_head.weight")  # tied: the embedding is the head; HF may still save it
    if extra:
        log.warning("%s: ignoring %d tensors azr-jax does not use: %s", path, len(extra), extra[:8])
    return cfg, params


def _read_stacked(
    ckpt: Checkpoint, rule: Rule, shape: tuple[int, ...], dtype: Any, num_layers: int
) -> np.ndarray:
    names = hf_names(rule, num_layers)
    want = _expected_hf_shape(rule, shape)
    missing = [n for n in names if n not in ckpt]
    if missing:
        raise KeyError(
            f"missing tensor {missing[0]!r} in {ckpt.path}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    out = np.empty(shape, dtype=dtype)
    for i, name in enumerate(names):
        t = ckpt.get(name)
        if tuple(t.shape) != tuple(want):
            raise ValueError(
                f"shape mismatch for tensor {name!r} in {ckpt.file_of(name)}: "
                f"checkpoint has {tuple(t.shape)}, config.json implies {tuple(want)}"
            )
        value = rule.to_ours(t)
        if rule.stacked:
            out[i] = value
        else:
            out[...] = value
    return out


def _progress(items: list, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="tensor")

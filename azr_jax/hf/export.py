"""Write params as an HF model directory that `AutoModelForCausalLM.from_pretrained` loads.

config.json, generation_config.json, safetensors (sharded with an index past a size threshold)
and, when given a source tokenizer directory, its tokenizer files. Parameters may live sharded
across devices or hosts: each leaf is gathered to host once, converted, written, and dropped,
so peak host memory is about one stacked parameter plus one output shard.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from azr_jax.hf.keymap import Rule, hf_names, rules_for
from azr_jax.hf.load import INDEX_FILE, SINGLE_FILE
from azr_jax.hf.safetensors_io import write_file
from azr_jax.model.config import ModelConfig

# Same default as transformers' save_pretrained: 5 GB per safetensors file.
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
_TORCH_DTYPE = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _to_host(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def _leaf(params: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = params
    for k in path:
        try:
            node = node[k]
        except KeyError:
            raise KeyError(f"params have no entry {'/'.join(path)!r}") from None
    return node


def _tensors(
    cfg: ModelConfig, params: dict[str, Any], dtype: np.dtype | None
) -> Iterator[tuple[str, tuple[int, ...], np.dtype, Rule, int]]:
    """(hf_name, hf_shape, dtype, rule, layer) for every output tensor, in HF order."""
    for rule in rules_for(cfg):
        leaf = _leaf(params, rule.path)
        per_layer = tuple(leaf.shape[1:]) if rule.stacked else tuple(leaf.shape)
        hf_shape = jax.eval_shape(rule.to_hf, jax.ShapeDtypeStruct(per_layer, np.float32)).shape
        out_dtype = np.dtype(dtype) if dtype is not None else np.dtype(leaf.dtype)
        for i, name in enumerate(hf_names(rule, cfg.num_layers)):
            yield name, tuple(hf_shape), out_dtype, rule, i


def save_hf(
    cfg: ModelConfig,
    params: dict[str, Any],
    out_dir: str | os.PathLike,
    *,
    dtype: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    tokenizer_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[str]:
    """Export; returns the safetensors file names written. Every process must call it (to
    take part in gathers); only process 0 writes."""
    if dtype is not None and dtype not in _TORCH_DTYPE:
        raise ValueError(f"export dtype must be one of {sorted(_TORCH_DTYPE)}, got {dtype!r}")
    np_dtype = np.dtype(jax.numpy.dtype(dtype)) if dtype else None
    if tokenizer_dir is not None and not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(f"tokenizer directory not found: {tokenizer_dir}")
    out_dir = os.fspath(out_dir)
    writer = jax.process_index() == 0
    if writer:
        os.makedirs(out_dir, exist_ok=True)

    plan = list(_tensors(cfg, params, np_dtype))
    groups: list[list[tuple]] = [[]]
    size = 0
    for item in plan:
        nbytes = int(np.prod(item[1], dtype=np.int64)) * item[2].itemsize
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += nbytes
    n = len(groups)
    names = [SINGLE_FILE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]

    cache: dict[tuple[str, ...], np.ndarray] = {}
    weight_map: dict[str, str] = {}
    total = 0
    bar = None
    if progress and writer:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=f"exporting to {out_dir}", unit="tensor")
    for fname, group in zip(names, groups):
        tensors = []
        for name, _, out_dtype, rule, layer in group:
            if rule.path not in cache:
                cache.clear()  # plan order visits each leaf's layers consecutively
                cache[rule.path] = _to_host(_leaf(params, rule.path))
            host = cache[rule.path]
            value = rule.to_hf(host[layer] if rule.stacked else host)
            tensors.append((name, np.ascontiguousarray(value.astype(out_dtype, copy=False))))
            weight_map[name] = fname
            if bar is not None:
                bar.update(1)
        if writer:
            total += write_file(os.path.join(out_dir, fname), tensors, {"format": "pt"})
    if bar is not None:
        bar.close()
    if not writer:
        return names

    for stale in os.listdir(out_dir):  # an older export with another shard count
        if stale.endswith(".safetensors") and stale not in names:
            os.remove(os.path.join(out_dir, stale))
    index_path = os.path.join(out_dir, INDEX_FILE)
    if n > 1:
        _write_json(index_path, {"metadata": {"total_size": total}, "weight_map": weight_map})
    elif os.path.exists(index_path):
        os.remove(index_path)

    torch_dtype = dtype or {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}.get(
        str(plan[0][2]), "float32"
    )
    _write_json(os.path.join(out_dir, "config.json"), cfg.to_hf_dict(torch_dtype=torch_dtype))
    gen_src = os.path.join(tokenizer_dir, "generation_config.json") if tokenizer_dir else None
    if gen_src and os.path.isfile(gen_src):
        shutil.copyfile(gen_src, os.path.join(out_dir, "generation_config.json"))
    else:
        eos = list(cfg.eos_token_id)
        gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": eos[0] if len(eos) == 1 else (eos or None)}
        if cfg.pad_token_id is not None:
            gen["pad_token_id"] = cfg.pad_token_id
        _write_json(os.path.join(out_dir, "generation_config.json"), gen)
    if tokenizer_dir is not None:
        for fname in TOKENIZER_FILES:
            src = os.path.join(tokenizer_dir, fname)
            if os.path.isfile(src):
                shutil.copyfile(src, os.path.join(out_dir, fname))
    return names


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)

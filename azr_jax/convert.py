"""Checkpoint conversion both ways: HF directory / GGUF file -> orbax, orbax -> HF directory.

The source kind is detected from the path (a `.gguf` file, a directory with `config.json`, a
directory written by our `Checkpointer`, or `embedded:smollm2-135m`, the shipped default
model). Tokenizer files travel with the weights: an orbax checkpoint made from an HF directory
keeps a copy under `<dst>/tokenizer/`, and exporting it back to HF copies them into the HF
directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from etils import epath

from azr_jax.checkpoint import Checkpointer, is_checkpoint_dir
from azr_jax.hf.export import TOKENIZER_FILES, save_hf
from azr_jax.hf.load import load_hf
from azr_jax.model import api
from azr_jax.model.config import ModelConfig

log = logging.getLogger(__name__)
TOKENIZER_SUBDIR = "tokenizer"


def source_kind(path: str) -> str:
    if path.startswith("embedded:"):
        return "embedded"
    if os.path.isfile(path) and path.lower().endswith(".gguf"):
        return "gguf"
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        return "hf"
    if is_checkpoint_dir(path):
        return "orbax"
    if not os.path.exists(path):
        raise FileNotFoundError(f"conversion source not found: {path}")
    raise ValueError(
        f"{path} is neither a .gguf file, an HF model directory (config.json) nor "
        "an azr-jax orbax checkpoint directory"
    )


def copy_tokenizer(src_dir: str, dst_dir: str) -> list[str]:
    names = [
        n for n in TOKENIZER_FILES + ("generation_config.json",) if os.path.isfile(os.path.join(src_dir, n))
    ]
    if names:
        dst = epath.Path(dst_dir)  # may be remote: a TPU run's gs:// checkpoint dir
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            (dst / name).write_bytes(epath.Path(src_dir, name).read_bytes())
    return names


def load_orbax_params(
    path: str, step: int | None = None, **cfg_overrides: Any
) -> tuple[ModelConfig, api.Params, int]:
    """Model config and params of an orbax checkpoint (latest step by default), on host."""
    ckpt = Checkpointer(path, async_save=False)
    try:
        cfg = ckpt.restore_model_config(step, **cfg_overrides)
        out = ckpt.restore(step, params_target=api.abstract_params(cfg), with_state=False)
        return cfg, out["params"], out["step"]
    finally:
        ckpt.close()


def convert(
    src: str,
    dst: str,
    *,
    to: str,
    dtype: str | None = None,
    tokenizer_dir: str | None = None,
    step: int | None = None,
    max_shard_bytes: int | None = None,
    progress: bool = True,
) -> str:
    """Convert `src` into `dst` in format `to` ('hf' or 'orbax'); returns `dst`."""
    if to not in ("hf", "orbax"):
        raise ValueError(f"--to must be 'hf' or 'orbax', got {to!r}")
    kind = source_kind(src)
    if kind == "embedded":  # the name train accepts for the shipped model: its HF directory
        from azr_jax.hf.assets import resolve_model_path

        resolved = resolve_model_path(src)
        if resolved == src:
            raise FileNotFoundError(f"unknown embedded model {src!r}; use embedded:smollm2-135m")
        src, kind = resolved, "hf"
    tmp = None
    try:
        if kind == "gguf":
            from azr_jax.hf.gguf import gguf_to_hf

            if to == "hf":
                return gguf_to_hf(src, dst)
            tmp = tempfile.mkdtemp(prefix="azr-gguf-")
            src, kind = gguf_to_hf(src, os.path.join(tmp, "hf")), "hf"
        if kind == "hf":
            cfg, params = load_hf(
                src, progress=progress, **({"param_dtype": dtype} if dtype and to == "orbax" else {})
            )
            tokenizer_dir = tokenizer_dir or src
        else:
            cfg, params, step = load_orbax_params(src, step)
            log.info("restored step %d of %s", step, src)
            own = os.path.join(src, TOKENIZER_SUBDIR)
            tokenizer_dir = tokenizer_dir or (own if os.path.isdir(own) else None)

        if to == "hf":
            kw = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
            save_hf(cfg, params, dst, dtype=dtype, tokenizer_dir=tokenizer_dir, progress=progress, **kw)
        else:
            with Checkpointer(dst, async_save=False) as ckpt:
                if ckpt.latest_step() is not None:
                    raise FileExistsError(f"{dst} already holds a checkpoint; choose a new directory")
                ckpt.save(step or 0, params=params, model_config=cfg, force=True)
            if tokenizer_dir:
                copy_tokenizer(tokenizer_dir, os.path.join(dst, TOKENIZER_SUBDIR))
        return dst
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

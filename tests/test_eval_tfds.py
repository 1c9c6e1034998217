"""Reading benchmarks through tensorflow-datasets (no downloads: data is prepared here, offline)."""

import subprocess
import sys

import numpy as np
import pytest

from azr_jax.eval import benchmarks
from azr_jax.eval.jsonl import BenchmarkFileError, Row
from azr_jax.eval.problems import KIND_CODE_TESTS, KIND_MATH, AssertionTests, CheckFunctionTests
from azr_jax.eval.test_programs import build_test_program, program_passed
from azr_jax.eval.tfds_source import decode_value, parse_tfds_source

HUMANEVAL_EXAMPLE = {  # what tfds.as_numpy / data_source yield for huggingface:openai_humaneval
    "task_id": b"HumanEval/2",
    "entry_point": b"truncate_number",
    "prompt": b'def truncate_number(number: float) -> float:\n    """ Return the decimal part. """\n',
    "canonical_solution": b"    return number % 1.0\n",
    "test": b"\n\ndef check(candidate):\n    assert candidate(3.5) == 0.5\n    assert abs(candidate(1.25) - 0.25) < 1e-6\n",
}
MBPP_EXAMPLE = {  # huggingface:mbpp/sanitized: sequences arrive as numpy arrays of bytes
    "source_file": b"Benchmark Questions Verification V2.ipynb",
    "task_id": np.int32(17),
    "prompt": b"Write a function that returns the perimeter of a square given its side length.",
    "code": b"def square_perimeter(a):\n  perimeter=4*a\n  return perimeter",
    "test_imports": np.array([], dtype=object),
    "test_list": np.array(
        [b"assert square_perimeter(10)==40", b"assert square_perimeter(5)==20"], dtype=object
    ),
}
COMPETITION_MATH_EXAMPLE = {
    "problem": b"What is $\\frac{1}{2}+\\frac{1}{2}$?",
    "level": b"Level 1",
    "type": b"Prealgebra",
    "solution": b"The sum is $\\boxed{1}$.",
}


def passes(problem, answer):
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-"],
        input=build_test_program(problem, answer),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return program_passed(proc.returncode, proc.stdout)


def test_source_syntax():
    assert parse_tfds_source("tfds:huggingface:openai_humaneval") == ("huggingface:openai_humaneval", "test")
    assert parse_tfds_source("tfds:huggingface:mbpp/sanitized#validation") == (
        "huggingface:mbpp/sanitized",
        "validation",
    )
    with pytest.raises(ValueError, match="missing dataset name"):
        parse_tfds_source("tfds:")
    with pytest.raises(ValueError, match="not a TFDS source"):
        parse_tfds_source("/data/HumanEval.jsonl")


def test_decode_value_turns_numpy_into_python():
    decoded = decode_value(MBPP_EXAMPLE)
    assert decoded["task_id"] == 17 and type(decoded["task_id"]) is int
    assert decoded["test_list"] == ["assert square_perimeter(10)==40", "assert square_perimeter(5)==20"]
    assert decoded["test_imports"] == []
    assert decode_value(np.array([[1, 2]], dtype=np.int64)) == [[1, 2]]
    assert decode_value(np.bytes_(b"x")) == "x"


def test_example_mapping_for_each_carried_family():
    humaneval = benchmarks.BENCHMARKS["humaneval"].tfds_mapper(
        Row(data=decode_value(HUMANEVAL_EXAMPLE), path="tfds:x", line=1), "humaneval"
    )
    assert humaneval.id == "HumanEval/2" and isinstance(humaneval.tests, CheckFunctionTests)
    assert passes(humaneval, humaneval.canonical_solution)
    assert not passes(humaneval, "def truncate_number(number):\n    return number")

    mbpp = benchmarks.BENCHMARKS["mbpp"].tfds_mapper(
        Row(data=decode_value(MBPP_EXAMPLE), path="tfds:x", line=1), "mbpp"
    )
    assert mbpp.id == "Mbpp/17" and mbpp.kind == KIND_CODE_TESTS
    assert isinstance(mbpp.tests, AssertionTests) and mbpp.entry_point == "square_perimeter"
    assert passes(mbpp, mbpp.canonical_solution)
    assert not passes(mbpp, "def square_perimeter(a):\n    return a * a")

    math_problem = benchmarks.BENCHMARKS["math"].tfds_mapper(
        Row(data=decode_value(COMPETITION_MATH_EXAMPLE), path="tfds:x", line=4), "math"
    )
    assert math_problem.kind == KIND_MATH and math_problem.answer == "1" and math_problem.id == "math/3"


def test_missing_data_gives_clear_errors(tmp_path):
    with pytest.raises(BenchmarkFileError, match="data_dir .* does not exist"):
        benchmarks.load_benchmark(
            "humaneval", "tfds:huggingface:openai_humaneval", tfds_data_dir=str(tmp_path / "absent")
        )
    with pytest.raises(BenchmarkFileError, match="'azr_no_such_dataset' .* is not readable from"):
        benchmarks.load_benchmark("humaneval", "tfds:azr_no_such_dataset", tfds_data_dir=str(tmp_path))
    with pytest.raises(BenchmarkFileError, match="humaneval_plus is not carried by TFDS"):
        benchmarks.load_benchmark("humaneval_plus", "tfds:huggingface:openai_humaneval")


def test_prepared_tfds_dataset_end_to_end(tmp_path):
    """A dataset prepared offline in a data_dir (array_record, no TensorFlow) reads back."""
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")

    class AzrEvalTestHumaneval(tfds.core.GeneratorBasedBuilder):
        """Stand-in for huggingface:openai_humaneval with the same features."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            text = tfds.features.Text()
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({key: text for key in HUMANEVAL_EXAMPLE})
            )

        def _split_generators(self, dl_manager):
            return {"test": self._generate_examples()}

        def _generate_examples(self):
            yield 0, {key: value.decode() for key, value in HUMANEVAL_EXAMPLE.items()}

    AzrEvalTestHumaneval(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    (problem,) = benchmarks.load_benchmark(
        "humaneval", "tfds:azr_eval_test_humaneval#test", tfds_data_dir=str(tmp_path)
    )
    assert problem.id == "HumanEval/2" and problem.entry_point == "truncate_number"
    assert passes(problem, problem.canonical_solution)

"""Benchmarks read through tensorflow-datasets, for users who keep data in a TFDS `data_dir`.

TFDS builds none of the paper's benchmarks natively (tfds 4.9's catalog has gsm8k but no HumanEval,
MBPP, MATH, CRUXEval or LiveCodeBench builder). It carries three of the families through its
Hugging Face community catalog, which is what a `tfds:` source reads:

| our benchmark | TFDS name                          | fields                                          |
|---------------|------------------------------------|-------------------------------------------------|
| humaneval     | `huggingface:openai_humaneval`     | task_id, prompt, canonical_solution, test, entry_point |
| mbpp          | `huggingface:mbpp/sanitized` (or `/full`) | task_id, prompt (or text), code, test_list, test_imports (or test_setup_code) |
| math          | `huggingface:competition_math`     | problem, level, type, solution                 |

A source is written `tfds:<name>` or `tfds:<name>#<split>` (split defaults to `test`). The data must
already be prepared in `data_dir` (`tfds.builder(name, data_dir=...).download_and_prepare()` on a
machine with network access; Hugging Face-backed builders also need the `datasets` package); this
module never downloads. Examples are read with `tfds.data_source` (no TensorFlow needed, array_record
files), falling back to `tfds.load` + `tfds.as_numpy` for tfrecord data when TensorFlow is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from azr_jax.eval.jsonl import BenchmarkFileError, Row

TFDS_PREFIX = "tfds:"
SPLIT_SEPARATOR = "#"
DEFAULT_SPLIT = "test"
DEFAULT_DATA_DIR = os.path.join("~", "tensorflow_datasets")


def is_tfds_source(source: str) -> bool:
    return str(source).startswith(TFDS_PREFIX)


def parse_tfds_source(source: str) -> tuple[str, str]:
    """`tfds:huggingface:openai_humaneval#test` -> ('huggingface:openai_humaneval', 'test')."""
    if not is_tfds_source(source):
        raise ValueError(f"{source!r} is not a TFDS source (expected '{TFDS_PREFIX}<name>[#<split>]')")
    body = source[len(TFDS_PREFIX) :]
    name, _, split = body.partition(SPLIT_SEPARATOR)
    if not name:
        raise ValueError(f"{source!r}: missing dataset name after '{TFDS_PREFIX}'")
    return name, split or DEFAULT_SPLIT


def decode_value(value: Any) -> Any:
    """TFDS numpy values -> plain Python: bytes -> str, arrays -> lists, numpy scalars -> numbers."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {key: decode_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [decode_value(item) for item in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and numpy scalars
    if callable(tolist):
        return decode_value(tolist())
    return value


def resolve_data_dir(data_dir: str | None) -> str:
    """The TFDS data directory: the argument, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    chosen = data_dir or os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR
    return os.path.expanduser(chosen)


def read_tfds_examples(name: str, split: str, data_dir: str | None = None) -> list[dict[str, Any]]:
    """All examples of a prepared TFDS split as plain dicts; clear errors when it is not there."""
    directory = resolve_data_dir(data_dir)
    if not os.path.isdir(directory):
        raise BenchmarkFileError(
            f"TFDS data_dir {directory!r} does not exist; prepare {name!r} there first "
            f"(tfds.builder({name!r}, data_dir=...).download_and_prepare() with network access)"
        )
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise BenchmarkFileError("reading a 'tfds:' source needs the tensorflow-datasets package") from err
    try:
        source = tfds.data_source(name, split=split, data_dir=directory, download=False)
        return [decode_value(example) for example in source]
    except Exception as first_error:  # noqa: BLE001 - retried through the TensorFlow reader below
        try:
            dataset = tfds.load(name, split=split, data_dir=directory, download=False)
            return [decode_value(example) for example in tfds.as_numpy(dataset)]
        except Exception as second_error:  # noqa: BLE001 - both readers failed: report both
            raise BenchmarkFileError(
                f"TFDS dataset {name!r} (split {split!r}) is not readable from {directory!r}: "
                f"{_first_line(first_error)}; with TensorFlow: {_first_line(second_error)}"
            ) from second_error


def _first_line(error: BaseException) -> str:
    """TFDS errors can list every registered dataset; the first line says what went wrong."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def problems_from_tfds(
    source: str, mapper: Callable[[Row, str], Any], benchmark: str, data_dir: str | None = None
) -> list[Any]:
    """Read a `tfds:` source and turn each example into a problem with `mapper(row, benchmark)`."""
    name, split = parse_tfds_source(source)
    examples = read_tfds_examples(name, split, data_dir)
    if not examples:
        raise BenchmarkFileError(f"{source}: the split holds no examples")
    # Rows are numbered from 1 like file lines, so errors read `tfds:<name>#<split>:<example>`.
    return [
        mapper(Row(data=example, path=source, line=index + 1), benchmark)
        for index, example in enumerate(examples)
    ]

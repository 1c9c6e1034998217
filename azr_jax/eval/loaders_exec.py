"""Loaders for the code-reasoning benchmarks AZR monitors in distribution.

- CRUXEval (Meta): `data/cruxeval.jsonl` in the `facebookresearch/cruxeval` repository (also the
  `cruxeval-org/cruxeval` dataset). Fields: `id` (`sample_<n>`), `code` (defines `f`), `input`
  (the argument text, e.g. `[1, 2], 3`), `output` (the `repr` of the result). The same 800 rows
  give CRUXEval-I (predict an input: abduction) and CRUXEval-O (predict the output: deduction).
- LiveCodeBench execution: the `livecodebench/execution-v2` dataset's JSONL. Fields:
  `question_id`, `contest_id`, `contest_date`, `difficulty`, `function_name`, `code`, `input` (a
  full call, e.g. `countSeniors(details = ['...'])`), `output` (`repr` of the result), `id`,
  `problem_id`, `numsteps`. AZR uses it for deduction (output prediction).
"""

from __future__ import annotations

import ast
import os

from azr_jax.eval import task_text
from azr_jax.eval.jsonl import Row, build_each, read_rows
from azr_jax.eval.problems import KIND_EXEC_INPUT, KIND_EXEC_OUTPUT, CodeExecProblem

CRUXEVAL_FUNCTION = "f"


def _check_parses(row: Row, field: str, text: str, mode: str) -> None:
    try:
        ast.parse(text, mode=mode)
    except SyntaxError as err:
        raise row.fail(f"field {field!r} is not valid Python ({err.msg})") from err


def _cruxeval_problem(row: Row, kind: str, benchmark: str) -> CodeExecProblem:
    row.require("id", "code", "input", "output")
    code, arguments, output = row.text("code"), row.text("input"), row.text("output")
    call = f"{CRUXEVAL_FUNCTION}({arguments})"
    _check_parses(row, "code", code, "exec")
    _check_parses(row, "input", call, "eval")
    _check_parses(row, "output", output, "eval")
    if kind == KIND_EXEC_INPUT:
        prompt = task_text.PREDICT_INPUT.format(entry_point=CRUXEVAL_FUNCTION, code=code, output=output)
    else:
        prompt = task_text.PREDICT_OUTPUT.format(code=code, call=call)
    return CodeExecProblem(
        id=row.text("id"),
        benchmark=benchmark,
        kind=kind,
        prompt=prompt,
        code=code,
        entry_point=CRUXEVAL_FUNCTION,
        arguments=arguments,
        call=call,
        output=output,
    )


def load_cruxeval(
    path: str | os.PathLike[str], kind: str, benchmark: str | None = None
) -> list[CodeExecProblem]:
    """CRUXEval as input prediction (`kind='code_exec_input'`, CRUXEval-I) or output prediction
    (`kind='code_exec_output'`, CRUXEval-O)."""
    if kind not in (KIND_EXEC_INPUT, KIND_EXEC_OUTPUT):
        raise ValueError(f"CRUXEval kind must be {KIND_EXEC_INPUT!r} or {KIND_EXEC_OUTPUT!r}, got {kind!r}")
    name = benchmark or ("cruxeval_i" if kind == KIND_EXEC_INPUT else "cruxeval_o")
    return build_each(read_rows(path), lambda row: _cruxeval_problem(row, kind, name))


def _split_call(row: Row, call: str, function_name: str) -> str:
    """`name(x = 1, y = [2])` -> `x = 1, y = [2]` (checked to be a call of `function_name`)."""
    try:
        node = ast.parse(call.strip(), mode="eval").body
    except SyntaxError as err:
        raise row.fail(f"field 'input' is not a Python call ({err.msg})") from err
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function_name):
        raise row.fail(f"field 'input' should be a call of {function_name!r}, got {call!r}")
    text = call.strip()
    return text[text.index("(") + 1 : text.rindex(")")].strip()


def load_lcb_execution(
    path: str | os.PathLike[str], benchmark: str = "lcb_execution"
) -> list[CodeExecProblem]:
    """LiveCodeBench execution (output prediction)."""

    def build(row: Row) -> CodeExecProblem:
        row.require("id", "code", "input", "output", "function_name")
        code, call, output = row.text("code"), row.text("input").strip(), row.text("output")
        function_name = row.text("function_name")
        arguments = _split_call(row, call, function_name)
        _check_parses(row, "code", code, "exec")
        _check_parses(row, "output", output, "eval")
        return CodeExecProblem(
            id=row.text("id"),
            benchmark=benchmark,
            kind=KIND_EXEC_OUTPUT,
            prompt=task_text.PREDICT_OUTPUT.format(code=code, call=call),
            code=code,
            entry_point=function_name,
            arguments=arguments,
            call=call,
            output=output,
            meta={
                key: row.data[key]
                for key in ("question_id", "contest_date", "difficulty", "numsteps")
                if key in row.data
            },
        )

    return build_each(read_rows(path), build)

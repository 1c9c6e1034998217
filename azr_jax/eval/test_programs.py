"""Assembling the self-contained test script for one (problem, model answer) pair.

`build_test_program(problem, answer)` returns Python source that the sandbox farm runs as is: the
standard-library runtime of `harness_runtime` followed by one call with this problem's data. The
script exits 0 and prints `PASS_MARKER` iff the answer passes; `program_passed(returncode, stdout)`
is the verdict the runner should use (it also requires the marker, so a candidate that kills its
own process with status 0 does not pass). Runners that `exec` the script inside a process of their
own, like the sandbox farm's 'script' probe (run it with static checks off: the script imports
`signal`, `os`, `json`), build it with `in_process=True`: a pass then returns normally after printing
the marker, and a failure raises AssertionError carrying the reason.

For 'code_tests' problems `answer` is the extracted program (`extract.extract_code_answer`); for
'code_exec_input' the predicted argument text (or a full `f(...)` call); for 'code_exec_output'
the predicted output expression. Math problems are not executed (see `math_normalize`).

Scripts can be large (EvalPlus+ inputs and LiveCodeBench private tests reach megabytes): feed them
to the interpreter through stdin or a file, not `python -c` (Linux caps one argument at 128 KiB).
"""
from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from azr_jax.eval import harness_runtime
from azr_jax.eval.problems import (KIND_CODE_TESTS, KIND_EXEC_INPUT, KIND_EXEC_OUTPUT, AnyProblem,
                                   AssertionTests, CheckFunctionTests, CodeExecProblem,
                                   CodeTestsProblem, DifferentialTests, IOTests)

PASS_MARKER = harness_runtime.PASS_MARKER

# Names LiveCodeBench makes available to every solution before it runs (solutions routinely use
# `List`, `defaultdict`, `heappush`, `gcd`, `lru_cache`, ... without importing them).
LCB_PREAMBLE = "\n".join([
    "import bisect, collections, copy, datetime, functools, heapq, io, itertools, json, math",
    "import operator, random, re, statistics, string, sys",
    "from bisect import *",
    "from collections import *",
    "from functools import *",
    "from heapq import *",
    "from itertools import *",
    "from math import *",
    "from operator import *",
    "from typing import *",
    "sys.setrecursionlimit(50000)",
])


@dataclass(frozen=True)
class TimeBudget:
    """Time limits written into the scripts.

    Defaults follow AZR's evaluation (§8 of the method notes): EvalPlus with a minimum per-test
    limit of 10 s and 8x the reference's own time, EvalPlus's 60 s cap per task; LiveCodeBench
    with 60 s per test; CRUXEval's 3 s per check.
    """

    per_test_min_s: float = 10.0
    reference_factor: float = 8.0
    task_cap_s: float = 60.0
    io_test_s: float = 60.0
    io_task_cap_s: float = 300.0
    exec_s: float = 3.0


DEFAULT_BUDGET = TimeBudget()


@lru_cache(maxsize=1)
def _runtime_source() -> str:
    return inspect.getsource(harness_runtime)


def to_literal(value: Any) -> str:
    """Python source that evaluates (with `harness_runtime.literal`) back to `value`; non-finite
    floats are spelled with the names `inf` / `nan` the runtime provides."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "nan"
        return "inf" if value > 0 else "-inf"
    if isinstance(value, tuple):
        inner = ", ".join(to_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(to_literal(v) for v in value) + "]"
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()" if isinstance(value, set) else "frozenset()"
        inner = "{" + ", ".join(to_literal(v) for v in value) + "}"
        return inner if isinstance(value, set) else f"frozenset({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_literal(k)}: {to_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, complex):
        return f"complex({to_literal(value.real)}, {to_literal(value.imag)})"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    raise TypeError(f"cannot write a {type(value).__name__} into a test script")


def defines_function(code: str, name: str) -> bool:
    """Whether `code` parses and defines `name` at module level (function or class)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
               for node in tree.body)


def assemble_candidate(problem: CodeTestsProblem, completion: str) -> str:
    """The program to test: a whole program gets the problem's context (imports, helper functions)
    in front of it; a completion that does not define the entry point is read as the body that
    continues the context (HumanEval's original completion style)."""
    if not problem.context_code:
        return completion
    if problem.entry_point and defines_function(completion, problem.entry_point):
        return problem.context_code.rstrip("\n") + "\n\n\n" + completion
    return problem.context_code + completion


def _call_source(job: str, params: dict[str, Any]) -> str:
    args = ",\n    ".join(f"{key}={value}" for key, value in params.items())
    return f"\n\nrun_main(\n    {job},\n    exit_process=EXIT_PROCESS,\n    {args},\n)\n"


def _code_tests_call(problem: CodeTestsProblem, program: str, budget: TimeBudget) -> str:
    tests = problem.tests
    if isinstance(tests, DifferentialTests):
        return _call_source("run_differential", {
            "reference": repr(tests.reference_code), "candidate": repr(program),
            "entry_point": repr(problem.entry_point),
            "inputs_literal": repr(to_literal(list(tests.inputs))), "atol": repr(float(tests.atol)),
            "oracle": repr(tests.oracle), "min_seconds": repr(budget.per_test_min_s),
            "reference_factor": repr(budget.reference_factor),
            "task_cap_seconds": repr(budget.task_cap_s)})
    if isinstance(tests, CheckFunctionTests):
        return _call_source("run_check_function", {
            "candidate": repr(program), "test_code": repr(tests.test_code),
            "entry_point": repr(problem.entry_point), "seconds": repr(budget.per_test_min_s)})
    if isinstance(tests, AssertionTests):
        return _call_source("run_assertions", {
            "candidate": repr(program), "setup_code": repr(tests.setup_code),
            "assertions": repr(list(tests.assertions)), "seconds": repr(budget.per_test_min_s)})
    if isinstance(tests, IOTests):
        cases = repr([(case.input, case.output) for case in tests.cases])
        common = {"candidate": repr(program), "preamble": repr(LCB_PREAMBLE), "cases": cases,
                  "seconds": repr(budget.io_test_s), "task_cap_seconds": repr(budget.io_task_cap_s)}
        if tests.mode == "functional":
            return _call_source("run_io_functional", {**common, "fn_name": repr(tests.fn_name)})
        return _call_source("run_io_stdin", common)
    raise TypeError(f"{problem.id}: unknown test spec {type(tests).__name__}")


def predicted_call(problem: CodeExecProblem, predicted_input: str) -> str:
    """The expression to evaluate for an abduction answer: the answer itself when it is already a
    call of the entry function (`f(1, 2)`), else the entry function applied to it (`1, 2`)."""
    text = predicted_input.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == problem.entry_point:
        return text
    return f"{problem.entry_point}({text})"


def build_test_program(problem: AnyProblem, answer: str, budget: TimeBudget = DEFAULT_BUDGET, *,
                       in_process: bool = False) -> str:
    """Self-contained Python source that exits 0 (printing `PASS_MARKER`) iff `answer` passes.

    `in_process=True` is for runners that `exec` the script inside their own process (the sandbox
    farm's 'script' probe): the script then returns normally (marker printed) on a pass and raises
    AssertionError on a failure instead of ending the process, so the runner can report."""
    if problem.kind == KIND_CODE_TESTS and isinstance(problem, CodeTestsProblem):
        call = _code_tests_call(problem, assemble_candidate(problem, answer), budget)
    elif problem.kind == KIND_EXEC_INPUT and isinstance(problem, CodeExecProblem):
        call = _call_source("run_exec_input", {
            "code": repr(problem.code), "call": repr(predicted_call(problem, answer)),
            "output_text": repr(problem.output), "seconds": repr(budget.exec_s)})
    elif problem.kind == KIND_EXEC_OUTPUT and isinstance(problem, CodeExecProblem):
        call = _call_source("run_exec_output", {
            "prediction": repr(answer.strip()), "output_text": repr(problem.output),
            "seconds": repr(budget.exec_s)})
    else:
        raise ValueError(f"{problem.id}: problems of kind {problem.kind!r} are not scored by a test program")
    header = f"# azr-jax test program for {problem.benchmark} / {problem.id}\n"
    return header + _runtime_source() + f"\n\nEXIT_PROCESS = {not in_process!r}" + call


def script_timeout_s(problem: AnyProblem, budget: TimeBudget = DEFAULT_BUDGET) -> float:
    """A wall-clock limit for the sandbox that covers the script's own budgets (candidate phase,
    reference run, interpreter start-up); past it the job can be killed and scored as failed."""
    startup = 5.0
    if isinstance(problem, CodeTestsProblem):
        tests = problem.tests
        if isinstance(tests, DifferentialTests):
            return startup + 2 * budget.task_cap_s + budget.per_test_min_s
        if isinstance(tests, IOTests):
            return startup + budget.io_task_cap_s + budget.io_test_s
        # candidate load + (tests or setup) load + one limit per check() call / assert line
        calls = len(tests.assertions) if isinstance(tests, AssertionTests) else 1
        return startup + budget.per_test_min_s * (2 + calls)
    return startup + 2 * budget.exec_s


def program_passed(returncode: int | None, stdout: str) -> bool:
    """The verdict for a finished script: exit status 0 and the pass marker as the last line."""
    lines = stdout.strip().splitlines()
    return returncode == 0 and bool(lines) and lines[-1].strip() == PASS_MARKER

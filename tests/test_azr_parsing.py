"""The strict parsers (azr-jax's fence scanner) on well-formed, malformed and adversarial
generations; the official rules are checked against the official code in
test_azr_official_parsing.py."""

import pytest

from azr_jax.azr import code_edit
from azr_jax.azr.parsing import (
    ParseConfig,
    extract_answer,
    fenced_blocks,
    find_block,
    format_ok,
    parse_code_answer,
    parse_proposal,
    parse_proposed_induction,
    parse_proposed_io,
    parse_solution,
    parse_value_answer,
    with_prefix,
)

F = "```"
STRICT = ParseConfig(semantics="strict")


def gen(answer: str, think: str = "reasoning") -> str:
    """A generation as the model writes it after a prompt that ends with <think>."""
    return f" {think}</think>\n<answer>{answer}</answer>"


# ---------------------------------------------------------------- format flag and <answer>


@pytest.mark.parametrize(
    "generation, expected",
    [
        (" a</think><answer>x</answer>", True),
        ("a</think>  \n <answer>x</answer> trailing text is fine", True),
        ("\n\nmulti\nline</think>\n<answer>\nl1\nl2\n</answer>", True),
        ("a</think> b <answer>x</answer>", False),  # text between </think> and <answer>
        ("a</think><answer>x", False),  # unterminated answer
        ("a<answer>x</answer>", False),  # no </think>
        ("a</think>", False),
        ("", False),
        ("outer <think> inner </think> more </think><answer>x</answer>", True),  # nested think
        ("a</think><ANSWER>x</ANSWER>", False),  # tags are case-sensitive
    ],
)
def test_format_flag(generation, expected):
    assert format_ok(generation) is expected


def test_format_flag_prefix_handling():
    # A chat path that did not prefill <think> passes prefix="" and the model writes it itself.
    assert format_ok("<think>a</think><answer>x</answer>", prefix="")
    assert not format_ok("a</think><answer>x</answer>", prefix="")
    # With the default prefix a duplicated <think> still passes, as in the official check.
    assert format_ok("<think>a</think><answer>x</answer>")
    assert with_prefix("  abc \n") == "<think>  abc"
    with pytest.raises(TypeError):
        with_prefix(None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer> 42 </answer>", "42"),
        ("<answer>first</answer> then <answer>second</answer>", "second"),
        ("<answer>unterminated tail", "unterminated tail"),
        ("<answer>a</answer><answer>b", "b"),
        ("no tags at all", None),
        ("<answer></answer>", ""),
        ("</answer><answer>x</answer>", "x"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# ---------------------------------------------------------------- fenced blocks


def test_fenced_blocks_tags_case_and_whitespace():
    text = (
        f"pre {F}Python\ndef f(x):\n    return x\n{F} mid {F}INPUT   \n  'a', 1  \n{F}"
        f"{F}output 3{F}{F}\nraw\n{F}{F}input_2\n7\n{F}"
    )
    blocks = fenced_blocks(text)
    assert [(b.tag, b.body) for b in blocks] == [
        ("python", "def f(x):\n    return x"),
        ("input", "'a', 1"),
        ("output", "3"),
        ("", "raw"),
        ("input_2", "7"),
    ]


def test_fenced_blocks_unterminated_and_inline_untagged():
    assert fenced_blocks(f"{F}python\ndef f(x): return x") == []
    blocks = fenced_blocks(f"{F}input\n1\n{F} then {F}python\nnever closed")
    assert [(b.tag, b.body) for b in blocks] == [("input", "1")]
    # an inline untagged block keeps its first word as code, not as a tag
    (b,) = fenced_blocks(f"{F}def f(x): return x{F}")
    assert (b.tag, b.body) == ("", "def f(x): return x")


def test_find_block_first_last_and_bad_which():
    text = f"{F}input\n1\n{F}\n{F}input\n2\n{F}\n{F}output\n3\n{F}"
    assert find_block(text, ["input"], "first").body == "1"
    assert find_block(text, ["INPUT"], "last").body == "2"
    assert find_block(text, ["message"]) is None
    with pytest.raises(ValueError):
        find_block(text, ["input"], "middle")


# ---------------------------------------------------------------- solver answers


@pytest.mark.parametrize(
    "answer, expected, source",
    [
        (f"{F}input\n'a', 1\n{F}", "'a', 1", "block"),
        (f"{F}input\n1\n{F} no wait {F}Input\n2\n{F}", "2", "block"),  # last block wins
        ("# Input: [1, 2]", "[1, 2]", "comment"),
        ("call it as input('hello')", "'hello'", "call"),
        ("<input> 5, 6 </input>", "5, 6", "tag"),
        ("<input> 5, 6", "5, 6", "tag"),
        ("So the input is 'xyz'.", "'xyz'", "phrase"),
        ("  [3, 4]  ", "[3, 4]", "whole"),
    ],
)
def test_abduction_answer_and_fallbacks(answer, expected, source):
    got = parse_value_answer(answer, "input")
    assert (got.ok, got.text, got.source) == (True, expected, source)


def test_deduction_answer_and_fallbacks():
    assert parse_value_answer(f"{F}output\n{{'a': 1}}\n{F}", "output").text == "{'a': 1}"
    assert parse_value_answer("The output is 12.", "output").text == "12"
    assert parse_value_answer("# Output: 'x'\n", "output").text == "'x'"
    # an input block is not an output block: whole-answer fallback
    got = parse_value_answer(f"{F}input\n1\n{F}", "output")
    assert got.source == "whole"
    assert not parse_value_answer(None, "output").ok
    with pytest.raises(ValueError):
        parse_value_answer("x", "program")


def test_induction_solver_takes_last_code_block():
    answer = (
        f"{F}python\ndef f(a): return 1\n{F}\nbetter:\n{F}\ndef f(a):\n    return a\n{F}\n{F}input\n3\n{F}"
    )
    got = parse_code_answer(answer)
    assert got.ok and got.text == "def f(a):\n    return a"
    assert parse_code_answer("def f(a): return a").reason == "no_code_block"
    assert parse_code_answer(f"{F}python\ndef f(a): return a").reason == "no_code_block"  # unterminated
    assert parse_code_answer(None).reason == "no_answer_tag"


def test_parse_solution_end_to_end():
    p = parse_solution(gen(f"{F}output\n[1, 2]\n{F}"), "deduction", STRICT)
    assert p.format_ok and p.ok and p.result.text == "[1, 2]"
    p = parse_solution(gen(f"{F}input\n'q'\n{F}"), "code_i", STRICT)
    assert p.format_ok and p.result.text == "'q'"
    p = parse_solution(" I think it is 3 but I never answer", "deduction", STRICT)
    assert not p.format_ok and not p.ok and p.result.reason == "no_answer_tag"
    # missing </answer>: still parsed, but the format flag is 0
    p = parse_solution(" t</think><answer>```output\n5\n```", "deduction", STRICT)
    assert not p.format_ok and p.ok and p.result.text == "5"
    p = parse_solution(gen("no code here"), "induction", STRICT)
    assert p.format_ok and not p.ok and p.result.reason == "no_code_block"


def test_answer_tag_inside_code_is_treated_as_last_answer():
    # The last <answer> is inside the program's string literal: what follows is not a valid
    # proposal (documented behaviour of the last-<answer> rule; must not crash).
    g = gen(f"{F}python\ndef f(x):\n    return '<answer>' + x\n{F}\n{F}input\n'a'\n{F}")
    p = parse_proposal(g, "deduction", STRICT)
    assert p.format_ok  # the outer structure is well formed
    assert p.answer.startswith("' + x")
    assert not p.ok and p.result.reason == "no_input_block"


# ---------------------------------------------------------------- proposer: deduction/abduction


def test_proposer_io_well_formed_with_rename_and_imports():
    code = (
        "import math\nfrom collections import Counter\n\n"
        "def solve(n):\n    if n <= 1:\n        return 1\n    return n * solve(n - 1) + len(Counter('ab'))"
    )
    p = parse_proposed_io(f"plan\n{F}python\n{code}\n{F}\n{F}input\n5\n{F}")
    assert p.ok, p.reason
    assert p.input == "5"
    assert "def f(n):" in p.program and "return n * f(n - 1)" in p.program
    assert "solve" not in p.program
    assert p.imports == ("import math", "from collections import Counter")
    assert p.raw_program == code


@pytest.mark.parametrize(
    "answer, reason",
    [
        (f"{F}input\n1\n{F}", "no_code_block"),
        (f"{F}python\ndef f(x): return x\n{F}", "no_input_block"),
        (f"{F}python\nx = 1\n{F}\n{F}input\n1\n{F}", "no_function"),
        (
            f"{F}python\ndef g(x):\n    def h(y):\n        return y\n    return h(x)\n{F}\n{F}input\n1\n{F}",
            "multiple_functions",
        ),
        (
            f"{F}python\nclass A:\n    def m(self):\n        return 1\ndef f(x):\n    return A().m()\n{F}\n{F}input\n1\n{F}",
            "multiple_functions",
        ),
        (f"{F}python\ndef f(x): return x", "no_code_block"),  # unterminated code block
        (None, "no_answer_tag"),
    ],
)
def test_proposer_io_failures(answer, reason):
    p = parse_proposed_io(answer)
    assert not p.ok and p.reason == reason


def test_proposer_io_input_comment_fallback_and_first_blocks():
    p = parse_proposed_io(f"{F}python\ndef f(x):\n    return x * 2\n{F}\n# Input: [1, 2]")
    assert p.ok and p.input == "[1, 2]"
    # first code block and first input block are used
    two = f"{F}python\ndef a(x): return 1\n{F}{F}input\n1\n{F}{F}python\ndef b(x): return 2\n{F}{F}input\n2\n{F}"
    p = parse_proposed_io(two)
    assert p.ok and p.program == "def f(x): return 1" and p.input == "1"
    p = parse_proposed_io(two, ParseConfig(proposer_code_location="last"))
    assert p.program == "def f(x): return 2" and p.input == "1"


def test_proposer_io_multiple_functions_allowed_with_entry_policy():
    code = "def helper(x):\n    return x + 1\ndef main(x):\n    return helper(x) * 2"
    answer = f"{F}python\n{code}\n{F}{F}input\n3\n{F}"
    p = parse_proposed_io(answer, ParseConfig(reject_multiple_functions=False, entry_function="any_last"))
    assert p.ok and "def f(x):\n    return helper(x) * 2" in p.program and "def helper(x)" in p.program
    p = parse_proposed_io(answer, ParseConfig(reject_multiple_functions=False))  # first -> helper
    assert "def f(x):\n    return x + 1" in p.program and "return f(x) * 2" in p.program


def test_proposer_io_seeding_cleanups():
    code = (
        'import re\nLIMIT = 3\ndef f(s):\n    """Doc."""\n    # count words\n    return len(re.findall("w", s))'
        "\nprint(f('www'))\nassert f('w') == 1"
    )
    answer = f"{F}python\n{code}\n{F}{F}input\n'ww'\n{F}"
    plain = parse_proposed_io(answer)
    assert plain.program == code
    cleaned = parse_proposed_io(answer, ParseConfig(remove_comments=True, remove_after_return=True))
    assert cleaned.ok
    assert cleaned.program == "import re\ndef f(s):\n    return len(re.findall('w', s))"
    assert cleaned.imports == ("import re",)


def test_proposal_end_to_end_and_format_flag():
    answer = f"{F}python\ndef f(x):\n    return x[::-1]\n{F}\n{F}input\n'abc'\n{F}"
    p = parse_proposal(gen(answer), "abduction", STRICT)
    assert p.format_ok and p.ok and p.result.input == "'abc'"
    # valid proposal with a broken format (missing </think>): parsed but flag 0
    p = parse_proposal(f" thinking... <answer>{answer}</answer>", "deduction", STRICT)
    assert not p.format_ok and p.ok


# ---------------------------------------------------------------- proposer: induction


def _ind_answer(n_inputs: int, message: str = f"{F}message\nReverse things.\n{F}") -> str:
    blocks = "\n".join(f"{F}input\n{i}\n{F}" for i in range(n_inputs))
    return f"{blocks}\n{message}"


def test_induction_proposer_last_n_inputs_and_message():
    p = parse_proposed_induction(_ind_answer(12), ParseConfig(num_inputs=10))
    assert p.ok and p.inputs == tuple(str(i) for i in range(2, 12)) and p.message == "Reverse things."
    p = parse_proposed_induction(_ind_answer(9), ParseConfig(num_inputs=10))
    assert not p.ok and p.reason == "too_few_inputs" and len(p.inputs) == 9


@pytest.mark.parametrize(
    "message, expected",
    [
        (f"{F}Message\nfirst\n{F}\n{F}message\nsecond\n{F}", "first"),
        ("<message> tagged hint </message>", "tagged hint"),
        ("# Message: line hint", "line hint"),
    ],
)
def test_induction_proposer_message_fallbacks(message, expected):
    p = parse_proposed_induction(_ind_answer(3, message), ParseConfig(num_inputs=3))
    assert p.ok and p.message == expected


def test_induction_proposer_missing_message_and_end_to_end():
    p = parse_proposed_induction(_ind_answer(3, "no message"), ParseConfig(num_inputs=3))
    assert not p.ok and p.reason == "no_message"
    g = parse_proposal(gen(_ind_answer(10)), "code_f", STRICT)
    assert g.format_ok and g.ok and len(g.result.inputs) == 10


# ---------------------------------------------------------------- code edits


def test_rename_function_only_touches_calls_and_def():
    code = "def go(n):\n    return 0 if n == 0 else go(n - 1) + obj.go(1) + ago(2)"
    out = code_edit.rename_function(code, "go")
    assert out == "def f(n):\n    return 0 if n == 0 else f(n - 1) + obj.go(1) + ago(2)"
    with pytest.raises(ValueError):
        code_edit.rename_function(code, "a b")


def test_choose_entry_policies():
    names = ["g", "f", "h"]
    assert code_edit.choose_entry(names, "first") == "g"
    assert code_edit.choose_entry(names, "not_last") == "h"
    assert code_edit.choose_entry(names, "f_or_last") == "f"
    assert code_edit.choose_entry(["g", "h"], "any_first") == "g"
    with pytest.raises(ValueError):
        code_edit.choose_entry([], "first")
    with pytest.raises(ValueError):
        ParseConfig(entry_function="middle")


def test_extract_imports_ast_and_regex_fallback():
    code = "import os.path as p\nfrom a.b import (c,\n    d)\ndef f(x):\n    import json\n    return x"
    assert code_edit.extract_imports(code) == ("import os.path as p", "from a.b import c, d", "import json")
    broken = "import numpy as np\nfrom x import y\ndef f(:\n"
    assert code_edit.extract_imports(broken) == ("import numpy as np", "from x import y")


def test_cleanups_leave_unparseable_code_alone_and_fill_empty_bodies():
    assert code_edit.strip_comments_and_docstrings("def f(:") == "def f(:"
    assert code_edit.keep_definitions_only("def f(:") == "def f(:"
    out = code_edit.strip_comments_and_docstrings('def f(x):\n    "only a docstring"')
    assert out == "def f(x):\n    pass"


def test_hostile_programs_do_not_crash_the_parser():
    deep = "import re\ndef f(x):\n    return " + "-" * 200000 + "1"
    answer = f"{F}python\n{deep}\n{F}\n{F}input\n1\n{F}"
    p = parse_proposed_io(answer, ParseConfig(remove_comments=True, remove_after_return=True))
    assert p.ok and p.program == deep and p.imports == ("import re",)
    nested = "def f(x):\n    return " + "not " * 5000 + "x"
    assert code_edit.strip_comments_and_docstrings(nested) == nested
    # many fences and tags: linear scan, still well defined
    noisy = (F + "input\n1\n" + F) * 2000 + "<answer>" * 1000
    assert len(fenced_blocks(noisy)) == 2000 and extract_answer(noisy) == ""


# ------------------------------------------------------------------ answer_fallback (small models)
def test_answer_fallback_parses_untagged_blocks_and_redefines_the_format_flag():
    from azr_jax.azr.parsing import ParseConfig, parse_proposal, parse_solution

    gen = "\n```python\ndef g(x):\n    return x + 1\n```\n```input\n4\n```"
    for semantics in ("official", "strict"):
        cfg = ParseConfig(semantics=semantics)
        tagged_only = parse_proposal(gen, "deduction", cfg)
        assert not tagged_only.ok and not tagged_only.format_ok
        lenient = parse_proposal(gen, "deduction", ParseConfig(answer_fallback=True, semantics=semantics))
        assert lenient.ok and lenient.format_ok
        assert lenient.result.program == "def f(x):\n    return x + 1"
    lenient = parse_proposal(gen, "deduction", ParseConfig(answer_fallback=True, semantics="strict"))
    assert lenient.ok and lenient.format_ok
    assert lenient.result.program == "def f(x):\n    return x + 1" and lenient.result.input == "4"
    # text after the last </think> is the answer; a tagged answer still wins
    sol = parse_solution(" hmm </think> ```output\n5\n```", "deduction", ParseConfig(answer_fallback=True))
    assert sol.ok and sol.format_ok and sol.result.text == "5"
    sol = parse_solution(
        " hmm </think> ```output\n5\n```", "deduction", ParseConfig(answer_fallback=True, semantics="strict")
    )
    assert sol.ok and sol.format_ok and sol.result.text == "5"
    tagged = parse_solution(
        " a </think> <answer>```output\n7\n```</answer> ```output\n9\n```",
        "deduction",
        ParseConfig(answer_fallback=True),
    )
    assert tagged.result.text == "7"
    # nothing parseable: not formatted either
    bad = parse_proposal("just words", "abduction", ParseConfig(answer_fallback=True))
    assert not bad.ok and not bad.format_ok

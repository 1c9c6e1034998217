"""Official parsing semantics against the official functions, on a battery of >= 150 responses.

Every response goes through every role (solver deduction/abduction/induction, proposer
deduction/abduction with Qwen and Llama settings, induction proposer, learnability rollouts,
seeding); the official format flag and extracted text must be reproduced exactly. The strict
parser is run through the same battery to show that the battery tells the rule sets apart.
"""

import official_azr
import parse_battery
import pytest

from azr_jax.azr import parsing
from azr_jax.azr.parsing import ParseConfig, learnability_answer, parse_proposal, parse_solution


@pytest.fixture(scope="module")
def off():
    official_azr.require()
    return parse_battery._official_ns()


def test_battery_size():
    cases = parse_battery.responses()
    assert len(cases) >= 150
    assert len({name for name, _, _ in cases}) == len(cases)


def test_official_semantics_reproduce_every_flag_and_text(off):
    n, bad = parse_battery.compare(off, parsing, "official")
    assert n >= 150 * len(parse_battery.ROLES)
    assert bad == [], f"{len(bad)} of {n} differ, e.g. {bad[:3]}"


def test_strict_semantics_differ_where_documented(off):
    _, bad = parse_battery.compare(off, parsing, "strict")
    cases = {(name, role) for name, role, _, _ in bad}
    # the documented strict-mode departures (azr/README.md) show up in the battery
    for case in [
        ("io/input_first|ok", "gen_code_io"),
        ("io/py_fence|ok", "gen_code_io"),
        ("wrap/io|assistant_inside", "gen_code_io"),
        ("sol/python_then_input|ok", "pred_code_f"),
        ("wrap/sol|no_answer", "pred_code_o"),
    ]:
        assert case in cases, case


# hand values of the official rules (independent of the official files)
F = "```"


def test_official_quirks_by_hand():
    cfg = ParseConfig()
    assert cfg.semantics == "official"
    # an input block before the code block is read as the program: no def, invalid
    p = parse_proposal(
        f" t</think><answer>{F}input\n1\n{F}\n{F}python\ndef f(x):\n    return x\n{F}</answer>",
        "deduction",
        cfg,
    )
    assert p.format_ok and not p.ok and p.result.reason == "no_function"
    # "Assistant:" in the response cuts what the format check sees
    p = parse_solution(f" t</think>Assistant: <answer>{F}output\n1\n{F}</answer>", "deduction", cfg)
    assert not p.format_ok and p.result.text == ""
    # no <answer> tag: an empty answer with format 0 (not a parse failure)
    p = parse_solution(" no tags", "abduction", cfg)
    assert p.ok and p.result.text == "" and not p.format_ok
    # answers are not stripped; a trailing quote of the response is removed
    p = parse_solution(f" t</think><answer>{F}output\n  5 \n{F}</answer>", "deduction", cfg)
    assert p.result.text == "5 "  # the fence pattern eats leading blanks, not trailing ones
    p = parse_solution(" t</think><answer>'abc'", "deduction", cfg)
    assert p.result.text == "'abc" and not p.format_ok
    # induction solver: the last fence of any kind, so a trailing input block wins
    p = parse_solution(
        f" t</think><answer>{F}python\ndef f(a):\n    return a\n{F}\n{F}input\n3\n{F}</answer>",
        "induction",
        cfg,
    )
    assert p.result.text == "input\n3"
    # renaming also renames attribute calls of the entry's name
    p = parse_proposal(
        f" t</think><answer>{F}python\ndef go(x):\n    return o.go(x)\n{F}\n{F}input\n1\n{F}</answer>",
        "deduction",
        cfg,
    )
    assert p.result.program == "def f(x):\n    return o.f(x)"


def test_learnability_reads_the_plain_response_and_ignores_the_format():
    cfg = ParseConfig()
    # no </think>: badly formatted, still an answer (the solve rate counts correctness only)
    r = learnability_answer(f"<answer>{F}output\n7\n{F}</answer>", "deduction", cfg)
    assert r.ok and r.text == "7"
    # "Assistant:" does not cut a learnability rollout
    r = learnability_answer(f"Assistant: <answer>{F}input\n'x'\n{F}</answer>", "abduction", cfg)
    assert r.text == "'x'"
    assert not learnability_answer("<answer>no code</answer>", "induction", cfg).ok
    strict = ParseConfig(semantics="strict")
    assert learnability_answer(f"x</think><answer>{F}output\n7\n{F}", "deduction", strict).text == "7"
    assert not learnability_answer("no tags at all", "deduction", strict).ok


def test_seeding_reads_the_raw_response():
    raw = f"Here it is:\n{F}python\ndef f(s):\n    # c\n    return s\nprint(1)\n{F}\n{F}input\n'a'\n{F}"
    cfg = ParseConfig(raw_response=True, remove_comments=True, remove_after_return=True)
    p = parse_proposal(raw, "abduction", cfg)
    assert p.ok and p.result.program == "def f(s):\n    return s" and not p.format_ok
    assert not parse_proposal(raw, "abduction", ParseConfig()).ok  # no <answer>: nothing parsed


def test_bad_semantics():
    with pytest.raises(ValueError, match="semantics"):
        ParseConfig(semantics="paper")


def test_deviation_2_assistant_in_the_prompt_does_not_decide_the_parse(off):
    """azr/README.md deviation 2: the official reward manager splits prompt+response at the
    first "Assistant:", so a task whose text holds one is judged on a piece of the prompt."""
    prompt = "```python\ndef f(s):\n    return 'Assistant: ' + s\n```"
    response = f" t</think><answer>{F}output\n'a'\n{F}</answer>"
    full = off.instruction_following.format(prompt) + response
    official_view = full.split("Assistant:")[1].strip().strip("\"'")
    assert off.get_format_reward(official_view, "answer") == 0.0  # officially: reward -1
    p = parse_solution(response, "deduction", ParseConfig())
    assert p.format_ok and p.result.text == "'a'"

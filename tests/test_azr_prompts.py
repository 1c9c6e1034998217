"""Prompt structure (§6): template, references, banned words, N inputs, solver views."""

import pytest

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.parsing import fenced_blocks, format_ok
from azr_jax.azr.prompts import (
    DEFAULT_BANNED_WORDS,
    R1_INSTRUCTION,
    PromptConfig,
    io_proposer_prompt,
    proposer_prompt,
    render_base,
    render_chat,
    solver_prompt,
)

REFS = [Triplet(f"def f(x):\n    return x + {i}", f"{i}", f"{i + i}") for i in range(6)]
TASK = InductionTask(
    "def f(x):\n    return x * 3",
    tuple(f"{k}" for k in range(10)),
    tuple(f"{3 * k}" for k in range(10)),
    "Multiply by a constant.",
)


def test_base_template_ends_with_think_and_chat_prefills_it():
    text = render_base("PROMPT")
    assert text.startswith(R1_INSTRUCTION)
    assert text.endswith("\nUser: PROMPT\nAssistant: <think>")
    chat = render_chat("PROMPT")
    assert chat.system == R1_INSTRUCTION and chat.user == "PROMPT" and chat.assistant_prefix == "<think>"
    assert chat.messages() == [
        {"role": "system", "content": R1_INSTRUCTION},
        {"role": "user", "content": "PROMPT"},
    ]
    # a generation continuing either prompt is checked with the same re-attached prefix
    assert format_ok(" r </think><answer>a</answer>", prefix=chat.assistant_prefix)


@pytest.mark.parametrize("flavour", ["full", "compact"])
@pytest.mark.parametrize("task", ["deduction", "abduction"])
def test_io_proposer_prompt_references_and_banned_words(task, flavour):
    cfg = PromptConfig(flavour=flavour)
    text = io_proposer_prompt(task, REFS, cfg)
    for i, ref in enumerate(REFS, 1):
        section = text.split(f"<snippet_{i}>")[1].split(f"</snippet_{i}>")[0]
        assert [(b.tag, b.body) for b in fenced_blocks(section)] == [
            ("python", ref.program),
            ("input", ref.input),
            ("output", ref.output),
        ]
    assert "<snippet_7>" not in text
    assert ", ".join(dict.fromkeys(DEFAULT_BANNED_WORDS)) + "." in text  # each word once
    assert "```python" in text and "```input" in text
    assert "10 seconds" in text


def test_deduction_and_abduction_proposers_differ_in_what_is_shown():
    ded = io_proposer_prompt("deduction", REFS[:1])
    abd = io_proposer_prompt("abduction", REFS[:1])
    assert "work out the output" in ded and "find an input" in abd
    assert ded != abd


def test_no_references_omits_the_section_and_custom_banned_words():
    text = io_proposer_prompt("deduction", [], PromptConfig(banned_words=("eval", "exec")))
    assert "<snippet_" not in text and "reference snippets" not in text.lower()
    assert "not even in comments: eval, exec." in text and "calendar" not in text
    assert "not even in comments" not in io_proposer_prompt("deduction", [], PromptConfig(banned_words=()))


def test_compact_is_shorter_than_full():
    for task in ("deduction", "abduction"):
        full = io_proposer_prompt(task, REFS[:2], PromptConfig(flavour="full"))
        compact = io_proposer_prompt(task, REFS[:2], PromptConfig(flavour="compact"))
        assert len(compact) < 0.75 * len(full)
    full = proposer_prompt("induction", program=REFS[0].program)
    compact = proposer_prompt("induction", program=REFS[0].program, cfg=PromptConfig(flavour="compact"))
    assert len(compact) < 0.75 * len(full)


@pytest.mark.parametrize("flavour", ["full", "compact"])
def test_induction_proposer_prompt(flavour):
    cfg = PromptConfig(flavour=flavour, num_inputs=7, input_marker="f(<<HERE>>)")
    text = proposer_prompt("code_f", program=REFS[2].program, cfg=cfg)
    program_blocks = [b for b in fenced_blocks(text) if b.tag == "python"]
    assert program_blocks[-1].body == REFS[2].program + "\n\nf(<<HERE>>)"
    assert "7 inputs" in text and "```message" in text
    assert "calendar" not in text  # no banned-word list for induction proposals
    with pytest.raises(ValueError):
        proposer_prompt("induction")


def test_deduction_solver_shows_input_not_output():
    ref = Triplet("def f(s):\n    return s[::-1]", "'abc'", "'cba'")
    text = solver_prompt("deduction", ref)
    blocks = [(b.tag, b.body) for b in fenced_blocks(text)]
    assert ("python", ref.program) in blocks and ("input", "'abc'") in blocks
    assert "'cba'" not in text and "```output" in text


def test_abduction_solver_shows_output_not_input():
    ref = Triplet("def f(s):\n    return s[::-1]", "'xyz'", "'zyx'")
    text = solver_prompt("abduction", ref)
    blocks = [(b.tag, b.body) for b in fenced_blocks(text)]
    assert ("python", ref.program) in blocks and ("output", "'zyx'") in blocks
    assert "'xyz'" not in text


@pytest.mark.parametrize("flavour", ["full", "compact"])
def test_induction_solver_shows_numbered_given_pairs_and_message_only(flavour):
    text = solver_prompt("induction", TASK, PromptConfig(flavour=flavour))
    blocks = {b.tag: b.body for b in fenced_blocks(text)}
    for k in range(5):
        assert blocks[f"input_{k + 1}"] == str(k) and blocks[f"output_{k + 1}"] == str(3 * k)
    assert "input_6" not in blocks and "27" not in text  # hidden pairs stay hidden
    assert blocks["message"] == TASK.message
    assert TASK.program not in text
    assert "named `f`" in text


def test_solver_prompt_type_errors_and_config_validation():
    with pytest.raises(TypeError):
        solver_prompt("induction", REFS[0])
    with pytest.raises(TypeError):
        solver_prompt("deduction", TASK)
    with pytest.raises(ValueError):
        PromptConfig(flavour="tiny")
    with pytest.raises(ValueError):
        PromptConfig(num_inputs=1)
    with pytest.raises(ValueError):
        io_proposer_prompt("induction", REFS)


@pytest.mark.parametrize("flavour", ["full", "compact"])
def test_single_def_rule_follows_config(flavour):
    strict = io_proposer_prompt("deduction", [], PromptConfig(flavour=flavour))
    loose = io_proposer_prompt("deduction", [], PromptConfig(flavour=flavour, single_def=False))
    assert "no other `def`" in strict and "no other `def`" not in loose
    if flavour == "full":
        assert "may be nested" in loose and "may be nested" not in strict

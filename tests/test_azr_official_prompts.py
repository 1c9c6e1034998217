"""Official prompts read at run time from a checkout equal the official constructor byte for byte.

The shared reference directory has the official file layout, so it serves as "the user's
checkout". For >= 20 buffer states (references and K, N, messages, banned lists, hostile
snippet texts) all six task-role prompts plus the R1 wrapper are rendered by azr-jax and by the
official `get_code_problem_generator_prompt` / `get_code_problem_predictor_prompt` +
`instruction_following` (what the official constructor calls), and must be identical.
"""

import os
import shutil

import numpy as np
import official_azr
import pytest

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.official_prompts import OfficialRepoError, load_templates
from azr_jax.azr.prompts import DEFAULT_BANNED_WORDS, OwnPrompts, PromptConfig, prompt_set

SNIPPETS = [
    "def f(x):\n    return x * 2",
    "def f(d: dict) -> str:\n    return '{' + ','.join(f'{k}={v}' for k, v in d.items()) + '}'",
    "import math\ndef f(n):\n    return math.factorial(n) % 97",
    "def f(s):\n    # <|BANNED_KEYWORDS|> {num_inputs} {}\n    return s[::-1] + 'é→'",
    "class Node:\n    def __init__(self, v):\n        self.v = v\ndef f(v):\n    return Node(v).v",
    "def f(a, b):\n    return {'sum': a + b, 'braces': '{{}}'}",
]
INPUTS = ["3", "{'a': 1}", "5", "'abc'", "[1, 2]", "1, 2"]
OUTPUTS = ["6", "'{a=1}'", "23", "'cbaé→'", "[1, 2]", "{'sum': 3, 'braces': '{{}}'}"]
BANNED = [list(DEFAULT_BANNED_WORDS), [], ["eval", "exec"], ["{x}", "<|BANNED_KEYWORDS|>"]]


def buffer_states(n=24):
    rng = np.random.default_rng(0)
    for k in range(n):
        trip = [Triplet(SNIPPETS[i], INPUTS[i], OUTPUTS[i]) for i in rng.permutation(6)]
        K = int(rng.integers(0, 7))
        N = int(rng.choice([2, 4, 6, 10]))
        xs = tuple(INPUTS[int(i)] for i in rng.integers(0, 6, N))
        ys = tuple(OUTPUTS[int(i)] for i in rng.integers(0, 6, N))
        message = ["Double it.", "", "Find {the} rule → 'x'", "multi\nline message"][k % 4]
        task = InductionTask(trip[0].program, xs, ys, message)
        yield trip[:K], N, task, BANNED[k % len(BANNED)]


@pytest.fixture(scope="module")
def off():
    return official_azr.prompts()


def test_six_prompts_and_wrapper_byte_for_byte(off):
    states = list(buffer_states())
    assert len(states) >= 20
    wrap = off.instruction_following.format
    for refs, N, task, banned in states:
        ours = prompt_set(
            PromptConfig(official_repo=str(official_azr.require()), num_inputs=N, banned_words=tuple(banned))
        )
        refs_d = [{"snippet": r.program, "input": r.input, "output": r.output} for r in refs]
        gen = lambda pt, rs: wrap(
            off.get_code_problem_generator_prompt(  # noqa: E731
                problem_type=pt,
                reference_snippets=rs,
                banned_keywords=banned,
                banned_assertion_keywords=[],
                composite_functions=[],
                remove_after_return=False,
                num_inputs=N,
                remove_input_from_snippet=False,
            )
        )
        assert ours.render_base(ours.proposer("abduction", refs)) == gen("code_i", refs_d)
        assert ours.render_base(ours.proposer("deduction", refs)) == gen("code_o", refs_d)
        assert ours.render_base(ours.proposer("induction", program=task.program)) == gen(
            "code_f", [{"snippet": task.program}]
        )
        t = Triplet(task.program, task.inputs[0], task.outputs[0])
        pred = lambda pt, **kw: wrap(off.get_code_problem_predictor_prompt(pt, snippet=t.program, **kw))  # noqa: E731
        assert ours.render_base(ours.solver("abduction", t)) == pred("code_i", output=t.output)
        assert ours.render_base(ours.solver("deduction", t)) == pred("code_o", input_args=t.input)
        k = len(task.inputs) // 2
        want = wrap(
            off.get_code_problem_predictor_prompt(
                "code_f",
                snippet=task.program,
                message=task.message,
                input_output_pairs=zip(task.inputs[:k], task.outputs[:k]),
            )
        )
        assert ours.render_base(ours.solver("induction", task)) == want


def test_wrapper_and_chat_rendering(off):
    ours = prompt_set(PromptConfig(official_repo=str(official_azr.require())))
    assert ours.render_base("X") == off.instruction_following.format("X")
    assert ours.render_base("X").endswith("Assistant: <think>")
    chat = ours.render_chat("X")
    assert chat.messages() == [{"role": "user", "content": off.instruction_following.format("X")}]
    assert chat.assistant_prefix == ""
    assert "official templates from" in ours.description
    assert isinstance(prompt_set(PromptConfig()), OwnPrompts)


def test_bad_checkouts_give_one_clear_error(tmp_path):
    with pytest.raises(OfficialRepoError, match="is not a directory"):
        load_templates(str(tmp_path / "missing"))
    with pytest.raises(OfficialRepoError, match="has no .*prompts.py; is this a checkout"):
        load_templates(str(tmp_path))
    ref = official_azr.require()
    fake = tmp_path / "fake"
    shutil.copytree(
        ref / "absolute_zero_reasoner" / "data_construction",
        fake / "absolute_zero_reasoner" / "data_construction",
    )
    target = fake / "absolute_zero_reasoner" / "data_construction" / "prompts.py"
    target.write_text(target.read_text().replace("code_input_prompt =", "renamed_prompt ="))
    with pytest.raises(OfficialRepoError, match="no template.*code_input_prompt"):
        load_templates(str(fake))
    target.write_text("def broken(:\n")
    with pytest.raises(OfficialRepoError, match="does not parse"):
        load_templates(str(fake))
    if os.geteuid() != 0:
        target.write_text("x = 1\n")
        target.chmod(0)
        with pytest.raises(OfficialRepoError, match="cannot read"):
            load_templates(str(fake))

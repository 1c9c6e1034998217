"""Answer extraction from model responses (R1 template: <think> ... </think> <answer> ... </answer>)."""

from azr_jax.eval.extract import (
    extract_answer_block,
    extract_code,
    extract_code_answer,
    extract_math_answer,
    last_boxed,
)


def test_last_answer_block_wins():
    text = "<think>try <answer>1</answer></think> <answer> 2 </answer> trailing"
    assert extract_answer_block(text) == "2"
    assert extract_answer_block("no tags here") is None
    assert extract_answer_block("<answer>cut off mid") == "cut off mid"


def test_code_is_last_python_block():
    answer = "first\n```python\nx = 1\n```\nthen\n```python\ndef f():\n    return 2\n```\n"
    assert extract_code(answer) == "def f():\n    return 2"
    assert extract_code("```py\nprint(1)\n```") == "print(1)"
    assert extract_code("```\nplain = True\n```") == "plain = True"
    assert extract_code("  def g(): return 3  ") == "def g(): return 3"
    assert extract_code("```python\ndef h():\n    return 4") == "def h():\n    return 4"  # cut off


def test_code_answer_prefers_answer_block():
    response = "<think>```python\nwrong = 1\n```</think>\n<answer>\n```python\nright = 2\n```\n</answer>"
    assert extract_code_answer(response) == "right = 2"
    assert extract_code_answer("```python\nonly = 3\n```") == "only = 3"


def test_boxed_with_nested_braces():
    assert last_boxed("so \\boxed{\\frac{1}{2}} and \\boxed{\\sqrt{x^{2}}}") == "\\sqrt{x^{2}}"
    assert last_boxed("\\boxed 5$") == "5"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("\\boxed{unclosed") is None
    assert last_boxed("nothing") is None


def test_math_answer_rules():
    assert extract_math_answer("<think>..</think><answer>The answer is \\boxed{42}.</answer>") == "42"
    assert extract_math_answer("<answer> 3/4 </answer>") == "3/4"
    assert extract_math_answer("no tag, but \\boxed{7} and later \\boxed{8}") == "8"
    assert extract_math_answer("display \\[ x = 1 \\] then \\[ 9 \\]") == "9"
    assert extract_math_answer("nothing usable") == ""
    assert extract_math_answer("<answer>\\boxed{broken</answer>") == ""

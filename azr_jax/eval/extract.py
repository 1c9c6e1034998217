"""Pulling the answer out of a model response, as AZR's evaluation does.

The model writes `<think> ... </think> <answer> ... </answer>` (R1 template). Evaluation reads the
content of the *last* `<answer>` tag; a response cut off before `</answer>` still yields what follows
the last `<answer>`. Code answers are the last ```python fenced block inside it; math answers are the
`\\boxed{}` content inside it when there is one.

(The training parser in `azr_jax/azr/parsing.py` follows the same `<answer>` rule; this module keeps
evaluation free of a dependency on it until the two are merged.)
"""

from __future__ import annotations

import re

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

# ```python / ```py / ```python3 (any case), then the block up to the next fence line.
_PY_FENCE = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.IGNORECASE | re.DOTALL)
_ANY_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_DISPLAY_MATH = re.compile(r"\\\[(.*?)\\\]", re.DOTALL)


def extract_answer_block(response: str) -> str | None:
    """Content of the last `<answer>` (up to `</answer>` or the end); None when there is none."""
    start = response.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    content = response[start + len(ANSWER_OPEN) :]
    end = content.find(ANSWER_CLOSE)
    if end >= 0:
        content = content[:end]
    return content.strip()


def extract_code(answer: str) -> str:
    """The program inside an answer: the last ```python block, else the last fenced block of any
    language, else the whole answer. An unterminated last fence (a response cut off mid-block)
    yields the code after it."""
    for pattern in (_PY_FENCE, _ANY_FENCE):
        blocks = pattern.findall(answer)
        if blocks:
            return blocks[-1].strip("\n")
    return answer.strip()


def extract_code_answer(response: str) -> str:
    """Code from a full response: from the `<answer>` block if present, else from the whole text."""
    block = extract_answer_block(response)
    return extract_code(block if block is not None else response)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (braces balanced), or of `\\boxed x`
    written without braces; None when there is no box."""
    index = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if index < 0:
        return None
    rest = text[index:]
    rest = rest[len("\\boxed") :] if rest.startswith("\\boxed") else rest[len("\\fbox") :]
    stripped = rest.lstrip()
    if not stripped.startswith("{"):
        if rest[:1] not in (" ", "\t"):
            return None
        # `\boxed 5$`: the token runs to the next `$` or whitespace-delimited end.
        return re.split(r"[$\n]", stripped, maxsplit=1)[0].strip() or None
    depth = 0
    for pos, char in enumerate(stripped):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return stripped[1:pos].strip()
    return None  # unbalanced: the box was never closed


def extract_math_answer(response: str) -> str:
    """The final answer of a math response, as AZR's math evaluation reads it.

    1. Inside the last `<answer>`: the last `\\boxed{}` if there is one, else the whole content.
    2. No `<answer>`: the last `\\boxed{}` in the text.
    3. Neither: the last display-math block `\\[ ... \\]`.
    Returns "" when nothing matches. (The official harness takes the first `\\[ \\]` in step 3; the
    last one is used here because a response usually ends with its result.)
    """
    block = extract_answer_block(response)
    if block is not None:
        if "boxed" in block or "\\fbox" in block:
            return last_boxed(block) or ""
        return block
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    displays = _DISPLAY_MATH.findall(response)
    return displays[-1].strip() if displays else ""

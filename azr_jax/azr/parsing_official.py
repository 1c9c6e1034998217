"""The official paper-branch parsing rules, reproduced for ``azr.semantics="official"``.

Everything here is a behaviour of the official code re-implemented in our own words (regexes
included, since the regexes *are* the behaviour); the deviation table (azr/README.md) lists the
places we keep on purpose. ``parsing.py`` wraps these results in its dataclasses. Rules:

* The reward manager checks the decoded prompt+response split at ``"Assistant:"`` (piece 1),
  stripped and with outer quote characters removed: so a response that writes ``Assistant:``
  is cut there, and a trailing ``'`` or ``"`` disappears (:func:`reward_view`). Learnability
  rollouts and seeding read the plain decoded response instead.
* The answer is the text after the last ``<answer>`` up to the next ``</answer>``; no tag at
  all gives ``''`` (not a failure: a solver's ``''`` is an answer, judged by the checker).
* Program blocks: the *first* fence whatever its tag, as long as a ``python`` tag (if any) is
  followed by a newline; an ``input`` block written before the code is taken as the program
  (and then has no ``def``). Solver inputs/outputs: the last ```` ```input ```` (```` ```output ````)
  block, then ``# Input:``, ``input(...)``, ``<input>``, "the input is", then the whole answer;
  the text is kept unstripped.
"""

from __future__ import annotations

import ast
import re
from typing import Literal, NamedTuple

from azr_jax.azr import code_edit

SPLITTER = "Assistant:"
_QUOTES = "\"'"
_FLAGS = re.DOTALL | re.IGNORECASE
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_CODE_BLOCK = re.compile(r"```(?:python\s*)?\n?(.*?)\n?```", _FLAGS)
_MESSAGE_BLOCKS = (
    re.compile(r"```message\s*\n?(.*?)\n?```", _FLAGS),
    re.compile(r"<message>\s*(.*?)\s*</message>", _FLAGS),
    re.compile(r"# Message:\s*(.*?)(?=\n```|$)", _FLAGS),
)
_IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+.*$", re.MULTILINE)


def _block(tag: str) -> re.Pattern[str]:
    return re.compile(rf"```{tag}\s*\n?(.*?)\n?```", _FLAGS)


def _value_patterns(kind: str) -> tuple[re.Pattern[str], ...]:
    """The official answer patterns for ``kind`` (input/output), in the order they are tried."""
    return (
        _block(kind),
        re.compile(rf"# {kind.capitalize()}:\s*(.*?)(?=\n```|$)", _FLAGS),
        re.compile(rf"{kind}\s*\((.*?)\)", _FLAGS),
        re.compile(rf"<{kind}>\s*(.*?)(?:</{kind}>|\s*$)", _FLAGS),
        re.compile(rf"the {kind} is\s*(.*?)\.?$", _FLAGS),
    )


_VALUE = {kind: _value_patterns(kind) for kind in ("input", "output")}
_INPUT_BLOCK = _VALUE["input"][0]
_INPUT_LINE = _VALUE["input"][1]


# ------------------------------------------------------------------ the text that is judged
def reward_view(response: str, prefix: str = "<think>") -> str:
    """What the official reward manager checks: the prompt's tail (``prefix``) plus the response,
    cut at the first ``Assistant:``, stripped, outer quote characters removed."""
    return (prefix + response).split(SPLITTER, 1)[0].strip().strip(_QUOTES)


def format_flag(view: str) -> bool:
    return _FORMAT.match(view) is not None


def answer_content(text: str) -> str | None:
    """Text after the last ``<answer>`` up to the next ``</answer>``, stripped; None if no tag
    (the official code then uses ``''``)."""
    if "<answer>" not in text:
        return None
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


# ------------------------------------------------------------------ proposer answers
class CodeInput(NamedTuple):
    ok: bool
    reason: str = ""
    program: str = ""
    input: str = ""
    imports: tuple[str, ...] = ()
    raw_program: str = ""


def imports_of(code: str) -> tuple[str, ...]:
    """Import statements in ``ast.walk`` order (duplicates kept); a regex over lines when the
    code does not parse."""
    try:
        nodes = [n for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    except Exception:  # the official fallback covers every parse failure
        return tuple(m.strip() for m in _IMPORT_LINE.findall(code))
    return tuple(ast.unparse(n) for n in nodes)


def rename_entry(code: str, name: str) -> str:
    """Rename ``name`` to ``f``: its ``def`` and every ``name(`` after a word boundary
    (attribute calls ``obj.name(`` included)."""
    if name == "f":
        return code
    code = re.sub(rf"def\s+{re.escape(name)}\s*\(", "def f(", code)
    return re.sub(rf"\b{re.escape(name)}\s*\(", "f(", code)


def code_and_input(
    content: str,
    *,
    reject_multiple_functions: bool,
    entry_function: str,
    remove_comments: bool = False,
    remove_after_return: bool = False,
) -> CodeInput:
    """A deduction/abduction proposal: the first code block and the first input (block or
    ``# Input:`` line), entry function renamed to ``f``."""
    code_m = _CODE_BLOCK.search(content)
    input_m = _INPUT_BLOCK.search(content) or _INPUT_LINE.search(content)
    if code_m is None:
        return CodeInput(False, "no_code_block")
    if input_m is None:
        return CodeInput(False, "no_input_block")
    raw = code_m.group(1).strip()
    names = code_edit.function_names(raw)
    if not names:
        return CodeInput(False, "no_function", raw_program=raw)
    if reject_multiple_functions and len(names) > 1:
        return CodeInput(False, "multiple_functions", raw_program=raw)
    program = rename_entry(raw, code_edit.choose_entry(names, entry_function))
    imports = imports_of(program)
    if remove_comments:
        program = code_edit.strip_comments_and_docstrings(program, fill_empty_bodies=False)
    if remove_after_return:
        program = code_edit.keep_definitions_only(program)
    return CodeInput(True, "", program, input_m.group(1).strip(), imports, raw)


class InputsMessage(NamedTuple):
    ok: bool
    reason: str = ""
    inputs: tuple[str, ...] = ()
    message: str = ""


def inputs_and_message(content: str, num_inputs: int) -> InputsMessage:
    """An induction proposal: the last ``num_inputs`` input blocks and the first message
    (block, ``<message>`` tag or ``# Message:`` line)."""
    inputs = tuple(m.group(1).strip() for m in _INPUT_BLOCK.finditer(content))
    if len(inputs) < num_inputs:
        return InputsMessage(False, "too_few_inputs", inputs)
    inputs = inputs[len(inputs) - num_inputs :]
    for pattern in _MESSAGE_BLOCKS:
        m = pattern.search(content)
        if m is not None:
            return InputsMessage(True, "", inputs, m.group(1).strip())
    return InputsMessage(False, "no_message", inputs)


# ------------------------------------------------------------------ solver answers
def value_answer(content: str, kind: Literal["input", "output"]) -> tuple[str, str]:
    """(answer text, which rule found it) of an abduction (input) / deduction (output) answer;
    the text is not stripped."""
    for source, pattern in zip(("block", "comment", "call", "tag", "phrase"), _VALUE[kind]):
        matches = list(pattern.finditer(content))
        if matches:
            return matches[-1].group(1), source
    return content, "whole"


def code_answer(content: str) -> str | None:
    """An induction answer: the last code block (same pattern as a proposal's), stripped."""
    matches = list(_CODE_BLOCK.finditer(content))
    return matches[-1].group(1).strip() if matches else None

"""Parsing of model generations: R1 format flag, ``<answer>`` content, fenced blocks, task fields.

Two rule sets, chosen by ``ParseConfig.semantics`` (``azr.semantics``):

* ``"official"`` (default): the official paper-branch rules, reproduced in
  ``parsing_official`` (first fence of any tag as the program, ``"Assistant:"`` cuts the
  response, no ``<answer>`` tag = an empty answer, seeding reads the raw response, ...).
* ``"strict"``: azr-jax's own fence scanner below, which reads what the model plainly meant
  (an input block before the code, ```` ```py ```` fences, ...). Everything task-specific is
  parsed from the ``<answer>`` content only: the text after the *last* ``<answer>`` up to the
  next ``</answer>`` (or to the end of the text if unterminated; the format flag is then 0 but
  the content is still parsed). Fenced blocks are found by one left-to-right scan that pairs
  fences in order; the tag is matched case-insensitively and may be followed by whitespace or a
  newline; an unterminated trailing block is ignored.

Both: a *generation* is the decoded text the model produced after the prompt. Every prompt ends
with ``<think>`` (the base template writes it, the chat path prefills it), so the generation
itself starts *inside* the think section. Like the official code, which checks the text after
``"Assistant:"`` and therefore sees the prompt's ``<think>``, we re-attach that prefix
(:func:`with_prefix`) before checking the format. Pass ``prefix=""`` if a caller's prompt did
not end with ``<think>``. Nothing here executes or evaluates model text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from azr_jax.azr import code_edit
from azr_jax.azr import parsing_official as official
from azr_jax.azr.tasks import TaskType

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

_FENCE = "```"
_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_TAG_RE = re.compile(r"[ \t]*([A-Za-z][\w+.#-]*)")
_FLAGS = re.DOTALL | re.IGNORECASE
SEMANTICS: tuple[str, ...] = ("official", "strict")


@dataclass(frozen=True)
class ParseConfig:
    """Switches of the proposer/solver parsers (defaults = official self-play settings)."""

    # "official": the paper branch's regexes (parsing_official); "strict": our fence scanner.
    semantics: Literal["official", "strict"] = "official"
    # Strict only: block tags accepted as a program ("" = untagged fence) and which code block
    # a proposer's program is taken from (the master branch adds "last").
    code_tags: tuple[str, ...] = ("python", "")
    proposer_code_location: Literal["first", "last"] = "first"
    # Reject programs with more than one `def` line (nested defs and methods count), as all
    # official Qwen runs do.
    reject_multiple_functions: bool = True
    # Which function is renamed to `f`: first|last|f_or_first|f_or_last (official names
    # not_first|not_last|any_first|any_last are accepted too). Qwen runs: first.
    entry_function: str = "first"
    # Seeding-only cleanups (official seeding scripts turn both on, self-play turns them off).
    remove_comments: bool = False
    remove_after_return: bool = False
    # Induction proposer: number of input blocks required (the last N are used).
    num_inputs: int = 10
    # Parse a proposer's whole response instead of its <answer> content (official seeding,
    # which never looks for the tags).
    raw_response: bool = False
    # Small-model concession (off in the method): without an <answer> tag, parse the text after
    # the last </think> (or all of it), and let the format flag mean "the answer parsed". Very
    # small instruct models write correct fenced blocks but ignore the think/answer tags, which
    # would make every reward -1 and leave nothing to learn from.
    answer_fallback: bool = False

    def __post_init__(self) -> None:
        if self.semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {self.semantics!r}")
        code_edit.normalize_entry_policy(self.entry_function)
        if self.proposer_code_location not in ("first", "last"):
            raise ValueError(
                f"proposer_code_location must be first|last, got {self.proposer_code_location!r}"
            )
        if self.num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {self.num_inputs}")
        object.__setattr__(self, "code_tags", tuple(t.lower() for t in self.code_tags))


# ---------------------------------------------------------------------------------------------
# Format flag and <answer> extraction
# ---------------------------------------------------------------------------------------------


def with_prefix(generation: str, prefix: str = THINK_OPEN) -> str:
    """The generation as the format check sees it: prompt suffix re-attached, outer spaces cut."""
    if not isinstance(generation, str):
        raise TypeError(f"generation must be a str, got {type(generation).__name__}")
    return (prefix + generation).strip()


def format_ok(generation: str, prefix: str = THINK_OPEN) -> bool:
    """R1 format flag: text starts with ``<think>…</think>``, optional space, ``<answer>…</answer>``.

    Trailing text after ``</answer>`` is allowed, as in the official check.
    """
    return _FORMAT_RE.match(with_prefix(generation, prefix)) is not None


def extract_answer(text: str) -> str | None:
    """Content after the last ``<answer>`` up to the next ``</answer>`` (or the end); None if absent."""
    start = text.rfind(ANSWER_OPEN)
    if start < 0:
        return None
    rest = text[start + len(ANSWER_OPEN) :]
    end = rest.find(ANSWER_CLOSE)
    return (rest if end < 0 else rest[:end]).strip()


# ---------------------------------------------------------------------------------------------
# Fenced blocks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FencedBlock:
    """One ```` ```tag … ``` ```` block; ``tag`` is lower-cased ("" when untagged)."""

    tag: str
    body: str
    start: int
    end: int


_KNOWN_TAGS = frozenset({"python", "py", "python3", "input", "output", "message"})


def _read_tag(text: str, pos: int) -> tuple[str, int]:
    """Tag after an opening fence at ``pos`` and where the body starts.

    A word counts as a tag when it is one the parsers use, or when nothing but spaces follows it
    on its line (a markdown info string). Otherwise the block is untagged and the word is body
    text (e.g. an inline ```` ```def f(x): ...``` ````).
    """
    m = _TAG_RE.match(text, pos)
    if not m:
        return "", pos
    word, after = m.group(1), m.end()
    line_rest = text[after:].split("\n", 1)[0]
    if word.lower() in _KNOWN_TAGS or not line_rest.strip():
        return word.lower(), after
    return "", pos


def fenced_blocks(text: str) -> list[FencedBlock]:
    """All complete fenced blocks of ``text`` in order; bodies are whitespace-stripped."""
    blocks: list[FencedBlock] = []
    pos = 0
    while True:
        start = text.find(_FENCE, pos)
        if start < 0:
            break
        tag, body_start = _read_tag(text, start + len(_FENCE))
        end = text.find(_FENCE, body_start)
        if end < 0:  # unterminated block: nothing more to pair
            break
        blocks.append(FencedBlock(tag, text[body_start:end].strip(), start, end + len(_FENCE)))
        pos = end + len(_FENCE)
    return blocks


def find_block(
    text: str, tags: Sequence[str], which: Literal["first", "last"] = "first"
) -> FencedBlock | None:
    """First or last complete block whose tag is in ``tags`` (case-insensitive)."""
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', got {which!r}")
    wanted = {t.lower() for t in tags}
    hits = [b for b in fenced_blocks(text) if b.tag in wanted]
    if not hits:
        return None
    return hits[0] if which == "first" else hits[-1]


# ---------------------------------------------------------------------------------------------
# Solver answers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolverAnswer:
    """A solver's extracted answer. ``source`` says which rule found it (for metrics)."""

    ok: bool
    text: str = ""
    source: str = ""
    reason: str = ""


def _fallback_patterns(kind: str) -> list[tuple[str, re.Pattern[str]]]:
    return [
        ("comment", re.compile(rf"#\s*{kind}:\s*(.*?)(?=\n```|\Z)", _FLAGS)),
        ("call", re.compile(rf"(?<![\w.]){kind}\s*\((.*?)\)", _FLAGS)),
        ("tag", re.compile(rf"<{kind}>\s*(.*?)(?:</{kind}>|\s*\Z)", _FLAGS)),
        ("phrase", re.compile(rf"the {kind} is\s*(.*?)\.?\s*\Z", _FLAGS)),
    ]


def parse_value_answer(answer: str | None, kind: Literal["input", "output"]) -> SolverAnswer:
    """Abduction (``kind='input'``) / deduction (``kind='output'``) solver answer.

    Order: last ```` ```kind ```` block; then a ``# Input:`` style line; the text inside a
    ``input(...)`` call; an ``<input>`` tag; a "the input is …" phrase; finally the whole answer.
    """
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    if answer is None:
        return SolverAnswer(False, reason="no_answer_tag")
    block = find_block(answer, [kind], "last")
    if block is not None:
        return SolverAnswer(True, block.body, "block")
    for source, pattern in _fallback_patterns(kind):
        matches = list(pattern.finditer(answer))
        if matches:
            return SolverAnswer(True, matches[-1].group(1).strip(), source)
    return SolverAnswer(True, answer.strip(), "whole")


def parse_code_answer(answer: str | None, cfg: ParseConfig = ParseConfig()) -> SolverAnswer:
    """Induction solver answer: the last code block (``python`` or untagged)."""
    if answer is None:
        return SolverAnswer(False, reason="no_answer_tag")
    block = find_block(answer, cfg.code_tags, "last")
    if block is None:
        return SolverAnswer(False, reason="no_code_block")
    return SolverAnswer(True, block.body, "block")


# ---------------------------------------------------------------------------------------------
# Proposer answers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposedIO:
    """A deduction/abduction proposal: program (entry renamed to ``f``) and one input."""

    ok: bool
    reason: str = ""
    program: str = ""
    input: str = ""
    imports: tuple[str, ...] = ()
    raw_program: str = ""


@dataclass(frozen=True)
class ProposedInduction:
    """An induction proposal: N inputs for a given program plus a message to the solver."""

    ok: bool
    reason: str = ""
    inputs: tuple[str, ...] = ()
    message: str = ""


_INPUT_LINE = re.compile(r"#\s*input:\s*(.*?)(?=\n```|\Z)", _FLAGS)
_MESSAGE_TAG = re.compile(r"<message>\s*(.*?)\s*</message>", _FLAGS)
_MESSAGE_LINE = re.compile(r"#\s*message:\s*(.*?)(?=\n```|\Z)", _FLAGS)


def parse_proposed_io(answer: str | None, cfg: ParseConfig = ParseConfig()) -> ProposedIO:
    """Program + input of a deduction/abduction proposal, with the official validity checks.

    Fails (with a reason) if there is no answer, no code block, no input (block or
    ``# Input:`` line), no ``def``, or several ``def`` lines under ``reject_multiple_functions``.
    """
    if answer is None:
        return ProposedIO(False, "no_answer_tag")
    code_block = find_block(answer, cfg.code_tags, cfg.proposer_code_location)
    if code_block is None:
        return ProposedIO(False, "no_code_block")
    input_block = find_block(answer, ["input"], "first")
    if input_block is not None:
        input_text = input_block.body
    else:
        m = _INPUT_LINE.search(answer)
        if m is None:
            return ProposedIO(False, "no_input_block")
        input_text = m.group(1).strip()
    raw = code_block.body
    names = code_edit.function_names(raw)
    if not names:
        return ProposedIO(False, "no_function", raw_program=raw)
    if cfg.reject_multiple_functions and len(names) > 1:
        return ProposedIO(False, "multiple_functions", raw_program=raw)
    entry = code_edit.choose_entry(names, cfg.entry_function)
    program = code_edit.rename_function(raw, entry, "f")
    imports = code_edit.extract_imports(program)
    if cfg.remove_comments:
        program = code_edit.strip_comments_and_docstrings(program)
    if cfg.remove_after_return:
        program = code_edit.keep_definitions_only(program)
    return ProposedIO(True, "", program, input_text, imports, raw)


def parse_proposed_induction(answer: str | None, cfg: ParseConfig = ParseConfig()) -> ProposedInduction:
    """The last ``num_inputs`` input blocks and the first message (block, tag or ``# Message:``)."""
    if answer is None:
        return ProposedInduction(False, "no_answer_tag")
    blocks = fenced_blocks(answer)
    inputs = [b.body for b in blocks if b.tag == "input"]
    if len(inputs) < cfg.num_inputs:
        return ProposedInduction(False, "too_few_inputs", tuple(inputs))
    inputs = inputs[-cfg.num_inputs :]
    message_blocks = [b.body for b in blocks if b.tag == "message"]
    if message_blocks:
        message = message_blocks[0]
    else:
        m = _MESSAGE_TAG.search(answer) or _MESSAGE_LINE.search(answer)
        if m is None:
            return ProposedInduction(False, "no_message", tuple(inputs))
        message = m.group(1).strip()
    return ProposedInduction(True, "", tuple(inputs), message)


# ---------------------------------------------------------------------------------------------
# Whole-generation entry points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedGeneration:
    """Format flag plus the task-specific parse of one generation."""

    format_ok: bool
    answer: str | None
    result: ProposedIO | ProposedInduction | SolverAnswer

    @property
    def ok(self) -> bool:
        return self.result.ok


def _fallback_answer(text: str) -> str:
    """``answer_fallback``: the text after the last ``</think>`` (or all of it)."""
    rest = text.rsplit(THINK_CLOSE, 1)[-1]
    return (rest[len(THINK_OPEN) :] if rest.startswith(THINK_OPEN) else rest).strip()


def _answer_of(generation: str, cfg: ParseConfig, prefix: str) -> tuple[str | None, str]:
    """(answer content or None, the text the format flag is checked on)."""
    if cfg.semantics == "official":
        text = official.reward_view(generation, prefix)
        answer = official.answer_content(text)
    else:
        text = with_prefix(generation, prefix)
        answer = extract_answer(text)
    if answer is None and cfg.answer_fallback:
        return _fallback_answer(text), text
    return answer, text


def _format(text: str, cfg: ParseConfig, result: ProposedIO | ProposedInduction | SolverAnswer) -> bool:
    if cfg.answer_fallback:
        return result.ok
    return official.format_flag(text) if cfg.semantics == "official" else _FORMAT_RE.match(text) is not None


def _official_proposal(content: str, task: TaskType, cfg: ParseConfig) -> ProposedIO | ProposedInduction:
    if task is TaskType.INDUCTION:
        r = official.inputs_and_message(content, cfg.num_inputs)
        return ProposedInduction(r.ok, r.reason, r.inputs, r.message)
    r = official.code_and_input(
        content,
        reject_multiple_functions=cfg.reject_multiple_functions,
        entry_function=cfg.entry_function,
        remove_comments=cfg.remove_comments,
        remove_after_return=cfg.remove_after_return,
    )
    return ProposedIO(r.ok, r.reason, r.program, r.input, r.imports, r.raw_program)


def _official_solution(content: str, task: TaskType) -> SolverAnswer:
    if task is TaskType.INDUCTION:
        code = official.code_answer(content)
        return (
            SolverAnswer(False, reason="no_code_block") if code is None else SolverAnswer(True, code, "block")
        )
    text, source = official.value_answer(content, "output" if task is TaskType.DEDUCTION else "input")
    return SolverAnswer(True, text, source)


def _strict_solution(answer: str | None, task: TaskType, cfg: ParseConfig) -> SolverAnswer:
    if task is TaskType.DEDUCTION:
        return parse_value_answer(answer, "output")
    if task is TaskType.ABDUCTION:
        return parse_value_answer(answer, "input")
    return parse_code_answer(answer, cfg)


def parse_proposal(
    generation: str, task: TaskType | str, cfg: ParseConfig = ParseConfig(), prefix: str = THINK_OPEN
) -> ParsedGeneration:
    """Parse a proposer generation of the given task type (``cfg.raw_response``: the whole
    response is the answer, as official seeding reads it; the format flag is still computed)."""
    task = TaskType.parse(task)
    answer, text = _answer_of(generation, cfg, prefix)
    if cfg.raw_response:
        answer = generation
    if cfg.semantics == "official":
        result: ProposedIO | ProposedInduction = _official_proposal(answer or "", task, cfg)
    elif task is TaskType.INDUCTION:
        result = parse_proposed_induction(answer, cfg)
    else:
        result = parse_proposed_io(answer, cfg)
    return ParsedGeneration(_format(text, cfg, result), answer, result)


def parse_solution(
    generation: str, task: TaskType | str, cfg: ParseConfig = ParseConfig(), prefix: str = THINK_OPEN
) -> ParsedGeneration:
    """Parse a solver generation: output (deduction), input (abduction) or program (induction).

    Official: a generation without ``<answer>`` still yields an answer (``''``, or a pattern
    match in it), but its format flag is 0, which alone sets the solver reward to -1.
    """
    task = TaskType.parse(task)
    answer, text = _answer_of(generation, cfg, prefix)
    if cfg.semantics == "official":
        result = _official_solution(answer or "", task)
    else:
        result = _strict_solution(answer, task, cfg)
    return ParsedGeneration(_format(text, cfg, result), answer, result)


def learnability_answer(
    generation: str, task: TaskType | str, cfg: ParseConfig = ParseConfig()
) -> SolverAnswer:
    """The answer of one learnability rollout; a rollout counts as solved iff this answer is
    ``ok`` and the checker accepts it. The format flag plays no part (official: the solve rate
    counts correctness only). Official: the plain decoded response is read (no ``Assistant:``
    cut, no quote stripping) and a missing ``<answer>`` gives the answer ``''``."""
    task = TaskType.parse(task)
    if cfg.semantics == "official":
        answer = official.answer_content(generation)
        if answer is None and cfg.answer_fallback:
            answer = _fallback_answer(generation)
        return _official_solution(answer or "", task)
    answer, _ = _answer_of(generation, cfg, THINK_OPEN)
    return _strict_solution(answer, task, cfg)

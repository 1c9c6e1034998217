"""Prompt builders for the six self-play roles, written in our own words (structure of §6).

A run uses one *prompt set* (:func:`prompt_set`): these prompts, or, with
``PromptConfig.official_repo`` (``--config.azr.official_repo``), the official templates read at
run time from a checkout of the official repository (``official_prompts``).

Every prompt is a *user* text; :func:`render_base` wraps it in the R1 plain-text template for base
models (``{instruction}\\nUser: {prompt}\\nAssistant: <think>``) and :func:`render_chat` returns
the (system, user) contents for instruct models, the R1 instruction being the system message. In
both cases the assistant turn starts with ``<think>``: the base template writes it, and the chat
path must prefill ``ChatPrompt.assistant_prefix`` after the chat template's generation prompt,
so that generations are always parsed with the same re-attached prefix (see ``parsing``).

Two flavours: ``full`` follows every section of the paper's prompts; ``compact`` keeps the same
sections in fewer words for small models and short contexts. The composite-function section of
the official prompts is not implemented (it is disabled in every official run).

Deliberate difference: the official deduction/abduction proposer prompts describe the
difficulty criterion with the other task's wording (swapped); ours describe each task's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.official_prompts import OfficialPrompts, load_templates
from azr_jax.azr.parsing import THINK_OPEN
from azr_jax.azr.tasks import TaskType
from azr_jax.sandbox.config import OFFICIAL_BANNED_MODULES

Flavour = Literal["full", "compact"]

# The restricted words of the official config (paper Fig. 8/10), in its order and with its
# repeated "datetime" (the official prompts list it twice; ours show each word once).
DEFAULT_BANNED_WORDS: tuple[str, ...] = (*OFFICIAL_BANNED_MODULES, "datetime")

R1_INSTRUCTION = (
    "This is a conversation between a User and an Assistant. The User sets a task and the "
    "Assistant completes it. The Assistant first reasons about the task step by step and only "
    "then states its final answer. The reasoning is wrapped in <think> </think> tags and the "
    "final answer in <answer> </answer> tags, like this: <think> reasoning </think> "
    "<answer> final answer </answer>."
)


@dataclass(frozen=True)
class PromptConfig:
    """Prompt content knobs (defaults follow the official settings)."""

    flavour: Flavour = "full"  # "compact" for small models / short contexts
    num_inputs: int = 10  # N inputs an induction proposer must write
    banned_words: tuple[str, ...] = DEFAULT_BANNED_WORDS
    timeout_seconds: int = 10  # execution limit quoted to the proposer
    # Line shown under the induction proposer's program where its inputs will be plugged in.
    input_marker: str = "f(<|YOUR INPUT GOES HERE|>)"
    instruction: str = R1_INSTRUCTION
    # Tell proposers that `f` must be the only `def` (no nested functions or methods). Keep equal
    # to ParseConfig.reject_multiple_functions: the official prompt allows helpers while its
    # parser rejects every program with a second `def`; we make the text match the parser.
    single_def: bool = True
    # A checkout of the official repository: use its templates instead of these prompts
    # (flavour, timeout_seconds, input_marker, instruction and single_def then do not apply).
    official_repo: str = ""

    def __post_init__(self) -> None:
        if self.flavour not in ("full", "compact"):
            raise ValueError(f"flavour must be 'full' or 'compact', got {self.flavour!r}")
        if self.num_inputs < 2:
            raise ValueError("num_inputs must be >= 2 (half are given, half hidden)")
        if self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be >= 1")
        object.__setattr__(self, "banned_words", tuple(self.banned_words))


@dataclass(frozen=True)
class ChatPrompt:
    """Message contents for a chat template; prefill ``assistant_prefix`` as the reply's start."""

    system: str
    user: str
    assistant_prefix: str = THINK_OPEN

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": "user", "content": self.user}]


def render_base(prompt: str, cfg: PromptConfig = PromptConfig()) -> str:
    """R1 plain-text template for base models; the model continues right after ``<think>``."""
    return f"{cfg.instruction}\nUser: {prompt}\nAssistant: {THINK_OPEN}"


def render_chat(prompt: str, cfg: PromptConfig = PromptConfig()) -> ChatPrompt:
    """System = R1 instruction, user = task prompt, reply prefilled with ``<think>``."""
    return ChatPrompt(system=cfg.instruction, user=prompt)


def _block(tag: str, body: str) -> str:
    return f"```{tag}\n{body}\n```"


# ---------------------------------------------------------------------------------------------
# Shared sections
# ---------------------------------------------------------------------------------------------


def _code_rules(cfg: PromptConfig) -> list[str]:
    if cfg.single_def:
        structure = (
            "- Write a single function named `f` and no other `def` anywhere (no nested "
            "functions, no methods): programs with a second `def` are rejected."
        )
    else:
        structure = (
            "- The entry point is a function named `f`. Helper functions may be nested "
            "inside it and helper classes may be defined above it."
        )
    if cfg.flavour == "compact":
        return [
            "- Entry point: one function named `f`"
            + (" (no other `def`)" if cfg.single_def else "")
            + " with at least one argument that returns a value.",
            "- Deterministic: no randomness, clocks, I/O, printing or outside state.",
            f"- Must finish within {cfg.timeout_seconds} seconds.",
        ]
    return [
        structure,
        "- `f` takes at least one argument and returns a value.",
        "- The same input must always give the same result: no randomness, no dates or clocks, "
        "no file, network or console I/O, no printing or logging, no dependence on outside state.",
        "- The logic should need several steps of state tracking (loops, branches, updates of "
        "data structures) to follow.",
        f"- It must finish within {cfg.timeout_seconds} seconds.",
        "- Put imports"
        + ("" if cfg.single_def else " and class definitions")
        + " at the top. The snippet ends where `f` ends: anything written after it is thrown away.",
    ]


def _solver_code_rules(cfg: PromptConfig) -> list[str]:
    """Rules an induction solver's program must meet (what the checker will run)."""
    return [
        "- Define a function named `f` (helpers may be nested inside it or defined above it) "
        "that takes the same arguments as the examples and returns the value.",
        "- Keep it deterministic: no randomness, clocks, I/O, printing or outside state.",
        f"- It must finish within {cfg.timeout_seconds} seconds; put any imports at the top.",
    ]


def _argument_rule() -> str:
    return (
        "Write the input as the argument list of a call to `f`: several arguments are separated "
        "by commas and strings are quoted."
    )


def _banned_line(cfg: PromptConfig) -> str:
    words = ", ".join(dict.fromkeys(cfg.banned_words))
    return f"Never use any of these words, not even in comments: {words}." if words else ""


def _triplet_reference(i: int, ref: Triplet) -> str:
    return "\n".join(
        [
            f"<snippet_{i}>",
            _block("python", ref.program),
            _block("input", ref.input),
            _block("output", ref.output),
            f"</snippet_{i}>",
        ]
    )


def _join(lines: Sequence[str]) -> str:
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Proposer prompts
# ---------------------------------------------------------------------------------------------


def io_proposer_prompt(
    task: TaskType | str, references: Sequence[Triplet], cfg: PromptConfig = PromptConfig()
) -> str:
    """Deduction/abduction proposer: write a new program and one input, unlike the references."""
    task = TaskType.parse(task)
    if task is TaskType.INDUCTION:
        raise ValueError("use induction_proposer_prompt for induction")
    if task is TaskType.DEDUCTION:
        shown, hidden_goal = "the program and your input", "work out the output"
        difficulty = "A careful solver should need many reasoning steps to predict the output."
    else:
        shown, hidden_goal = (
            "the program and the output it returns for your input",
            "find an input that produces it",
        )
        difficulty = "A careful solver should need many reasoning steps to find a matching input."
    banned = _banned_line(cfg)
    example = _join([_block("python", "def f(items, k):\n    ..."), _block("input", "[3, 1, 2], 2")])
    if cfg.flavour == "compact":
        # Small models copy the shape of the example: a complete, runnable one teaches the
        # format (and `f` with arguments that match the input) better than an elided body.
        example = _join([_block("python", COMPACT_EXAMPLE_PROGRAM), _block("input", "[3, 1, 2], 2")])
        lines = [
            "## Task: write a new Python program and one input for it",
            f"A test subject will see {shown} and must {hidden_goal}. Make it hard but solvable"
            + (", and different from the reference snippets." if references else "."),
            *_code_rules(cfg),
            "- " + _argument_rule(),
            *(["- " + banned] if banned else []),
            "Answer with the program in a ```python block and the input in an ```input block, "
            "like this example:",
            example,
            "Now write your own, different program and its input in the same two blocks.",
        ]
    else:
        lines = [
            "## Task: write a new Python program and one matching input",
            f"Design a new, self-contained Python snippet whose behaviour takes real reasoning "
            f"to follow, plus one input for it. It will be used as a puzzle: a test subject will "
            f"be shown {shown} and asked to {hidden_goal}.",
            "",
            "### Program requirements",
            *_code_rules(cfg),
            "",
            "### Input requirements",
            "- Give exactly one input. " + _argument_rule(),
            "",
            "### Answer format",
            "Put the program in a ```python block and the input in an ```input block, for example:",
            example,
            "",
            "### What makes a good answer",
            "- It runs without errors on the input.",
            "- " + difficulty,
            *(
                [
                    "- It computes something different from the reference snippets below, not just "
                    "the same thing with other names."
                ]
                if references
                else []
            ),
            *(["- " + banned] if banned else []),
            "",
            "Plan first: think about what would make a good, hard program, then write the code "
            "and the input.",
        ]
    if references:
        lines += ["", "### Reference snippets"]
        lines += [_triplet_reference(i + 1, r) for i, r in enumerate(references)]
    return _join(lines)


COMPACT_EXAMPLE_PROGRAM = """def f(items, k):
    total = 0
    for x in sorted(items)[:k]:
        total = total * 10 + x
    return total"""


def induction_proposer_prompt(program: str, cfg: PromptConfig = PromptConfig()) -> str:
    """Induction proposer: N inputs for a given program plus a message, no code."""
    n = cfg.num_inputs
    example = _join(
        [
            _block("input", "'abc', 2"),
            _block("input", "'', 0"),
            "...",
            _block("message", "Each call combines a word with a count; find the rule."),
        ]
    )
    program_block = _block("python", f"{program}\n\n{cfg.input_marker}")
    if cfg.flavour == "compact":
        lines = [
            f"## Task: write {n} inputs for the program below and a message about it",
            f"A test subject will see your inputs, the outputs they produce and your message, and "
            f"must write the program. Choose {n} varied inputs, each in its own ```input block, "
            "then one ```message block with a hint that does not reveal the code. Do not write code.",
            _argument_rule(),
            example,
            "### Program",
            program_block,
        ]
    else:
        lines = [
            f"## Task: write {n} inputs for a given program and a message about it",
            f"Below is a Python program. Propose {n} inputs that together show what it does, and "
            "a message for a test subject. The subject will see your inputs, the outputs the "
            "program returns for them and your message, and must write the program. You do not "
            "write any code yourself.",
            "",
            "### Input requirements",
            f"- Give {n} inputs, each in its own ```input block.",
            "- " + _argument_rule(),
            "- Choose inputs that cover different cases and lead to varied outputs.",
            "",
            "### Message requirements",
            "- Write one ```message block addressed to the test subject: a hint, a description of "
            "the task, or a coding question the program answers.",
            "- Do not copy or reveal the code.",
            "",
            "### Answer format",
            example,
            "",
            "### What makes a good answer",
            "- Every input runs without errors.",
            "- The inputs cover the program's behaviour well.",
            "- The task is challenging but can be solved from the examples and the message.",
            "",
            "Plan first, then write the inputs and the message.",
            "",
            "### Program (your inputs replace the marker in the last line)",
            program_block,
        ]
    return _join(lines)


def proposer_prompt(
    task: TaskType | str,
    references: Sequence[Triplet] = (),
    program: str | None = None,
    cfg: PromptConfig = PromptConfig(),
) -> str:
    """Dispatch: references for deduction/abduction, one program for induction."""
    task = TaskType.parse(task)
    if task is TaskType.INDUCTION:
        if program is None:
            raise ValueError("an induction proposer prompt needs a program")
        return induction_proposer_prompt(program, cfg)
    return io_proposer_prompt(task, references, cfg)


# ---------------------------------------------------------------------------------------------
# Solver prompts
# ---------------------------------------------------------------------------------------------


def deduction_solver_prompt(program: str, input_text: str) -> str:
    """Predict the output of ``program`` on ``input_text``."""
    lines = [
        "## Task: find the output",
        "Work out what the function `f` below returns for the given input.",
        _block("python", program),
        _block("input", input_text),
        "Give the returned value as a Python literal in an ```output block. Quote strings and "
        "write several returned values as a tuple, for example:",
        _block("output", "[1, 'a']"),
    ]
    return _join(lines)


def abduction_solver_prompt(program: str, output_text: str) -> str:
    """Find an input for which ``program`` returns ``output_text``."""
    lines = [
        "## Task: find an input",
        "Give one input for which the function `f` below returns the given output. Any input "
        "that produces it counts.",
        _block("python", program),
        _block("output", output_text),
        "Put the input in an ```input block. " + _argument_rule() + " For example:",
        _block("input", "'abc', [1, 2]"),
    ]
    return _join(lines)


def induction_solver_prompt(task: InductionTask, cfg: PromptConfig = PromptConfig()) -> str:
    """Write the program from the given pairs and the message (hidden pairs are not shown)."""
    pairs = []
    for i, (inp, out) in enumerate(task.given_pairs, 1):
        pairs += [_block(f"input_{i}", inp), _block(f"output_{i}", out)]
    intro = (
        "A hidden Python function `f` returned the outputs below for the numbered inputs. Write a "
        "function that reproduces them; it will also be checked on inputs you do not see."
    )
    lines = [
        "## Task: recover the function",
        intro,
        "",
        "Message from the author:",
        _block("message", task.message),
        "",
        "Examples:",
        *pairs,
        "",
    ]
    if cfg.flavour == "full":
        lines += ["### Requirements", *_solver_code_rules(cfg), ""]
    lines += [
        "Answer with the code in one ```python block, for example:",
        _block("python", "def f(a):\n    return a"),
        "The function must be named `f`.",
    ]
    return _join(lines)


def solver_prompt(
    task_type: TaskType | str, entry: Triplet | InductionTask, cfg: PromptConfig = PromptConfig()
) -> str:
    """Dispatch on task type: deduction shows the input, abduction the output, induction pairs."""
    task_type = TaskType.parse(task_type)
    if task_type is TaskType.INDUCTION:
        if not isinstance(entry, InductionTask):
            raise TypeError("an induction solver prompt needs an InductionTask")
        return induction_solver_prompt(entry, cfg)
    if not isinstance(entry, Triplet):
        raise TypeError(f"a {task_type.value} solver prompt needs a Triplet")
    if task_type is TaskType.DEDUCTION:
        return deduction_solver_prompt(entry.program, entry.input)
    return abduction_solver_prompt(entry.program, entry.output)


# ---------------------------------------------------------------------------------------------
# Prompt sets
# ---------------------------------------------------------------------------------------------


class PromptSet(Protocol):
    """What self-play and the policy need: task prompts and the wrapper around them."""

    description: str

    def proposer(
        self, task: TaskType | str, references: Sequence[Triplet] = (), program: str | None = None
    ) -> str: ...

    def solver(self, task: TaskType | str, entry: Triplet | InductionTask) -> str: ...

    def render_base(self, prompt: str) -> str: ...

    def render_chat(self, prompt: str) -> ChatPrompt: ...


class OwnPrompts:
    """azr-jax's prompts (this module)."""

    def __init__(self, cfg: PromptConfig = PromptConfig()):
        self.cfg = cfg
        self.description = f"azr-jax prompts ({cfg.flavour})"

    def proposer(
        self, task: TaskType | str, references: Sequence[Triplet] = (), program: str | None = None
    ) -> str:
        return proposer_prompt(task, references, program, self.cfg)

    def solver(self, task: TaskType | str, entry: Triplet | InductionTask) -> str:
        return solver_prompt(task, entry, self.cfg)

    def render_base(self, prompt: str) -> str:
        return render_base(prompt, self.cfg)

    def render_chat(self, prompt: str) -> ChatPrompt:
        return render_chat(prompt, self.cfg)


def prompt_set(cfg: PromptConfig = PromptConfig()) -> PromptSet:
    """The official templates of ``cfg.official_repo`` if given (an unreadable path or a
    checkout without the templates raises ``OfficialRepoError``), else azr-jax's prompts."""
    if cfg.official_repo:
        return OfficialPrompts(
            load_templates(cfg.official_repo), num_inputs=cfg.num_inputs, banned_words=cfg.banned_words
        )
    return OwnPrompts(cfg)

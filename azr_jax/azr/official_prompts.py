"""The official AZR prompts, read at run time from a user's checkout of the official repository.

azr-jax does not ship the official prompt texts. With ``--config.azr.official_repo=PATH`` (a
checkout of LeapLabTHU/Absolute-Zero-Reasoner), the template strings are read from the
checkout's ``prompts.py`` and ``process_data.py`` by parsing those files: only module-level
assignments of string literals (or sums of them) are taken, nothing of the checkout is imported
or executed. Prompts are then filled the way the official constructor fills them, so for the
same buffer state (references, K, N, message, banned words) they are byte-identical to the
official ones: references numbered from ``<snippet_0>``, induction pairs from ``input_0``, the
composite-function section off (as in every official run), the R1 wrapper around each prompt.
"""

from __future__ import annotations

import ast
import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.tasks import TaskType

PROMPTS_FILE = "absolute_zero_reasoner/data_construction/prompts.py"
WRAPPER_FILE = "absolute_zero_reasoner/data_construction/process_data.py"

# our names -> the official variable names, per file
_PROMPT_VARS = {
    "propose_abduction": "code_input_prompt",
    "propose_deduction": "code_output_prompt",
    "propose_induction": "code_function_prompt",
    "solve_abduction": "code_input_predictor_prompt",
    "solve_deduction": "code_output_predictor_prompt",
    "solve_induction": "code_function_predictor_prompt",
    "input_marker": "code_suffix",
    "no_input_in_snippet": "remove_input_from_snippet_prompt",
    "definitions_only": "remove_singleton_variables_prompt",
}
_WRAPPER_VARS = {"wrapper": "instruction_following"}
# the format fields each template may use (the official constructor's keyword arguments)
_FIELDS = {
    "propose_abduction": {"remove_input_from_snippet_prompt", "remove_after_return_prompt"},
    "propose_deduction": {"remove_input_from_snippet_prompt", "remove_after_return_prompt"},
    "propose_induction": {"num_inputs", "snippet"},
    "solve_abduction": {"snippet", "output"},
    "solve_deduction": {"snippet", "input_args"},
    "solve_induction": {"input_output_pairs", "message"},
    "wrapper": {""},
}
BANNED_MARK = "<|BANNED_KEYWORDS|>"


class OfficialRepoError(ValueError):
    """The given path is not a readable checkout holding the official templates."""


def _string_value(node: ast.expr) -> str | None:
    """The value of a string literal or a ``+`` of string literals; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string_value(node.left), _string_value(node.right)
        return None if left is None or right is None else left + right
    return None


def _read_strings(root: Path, relpath: str, wanted: Mapping[str, str]) -> dict[str, str]:
    path = root / relpath
    if not path.exists():
        raise OfficialRepoError(
            f"azr.official_repo: {root} has no {relpath}; is this a checkout of "
            "the official Absolute-Zero-Reasoner repository?"
        )
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise OfficialRepoError(f"azr.official_repo: cannot read {path}: {e.strerror or e}") from e
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise OfficialRepoError(f"azr.official_repo: {path} does not parse ({e.msg}, line {e.lineno})") from e
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _string_value(node.value)
            if value is not None:
                found[node.targets[0].id] = value
    missing = [var for var in wanted.values() if var not in found]
    if missing:
        raise OfficialRepoError(
            f"azr.official_repo: {path} has no template(s) {', '.join(missing)}; "
            "is this a checkout of the official Absolute-Zero-Reasoner repository?"
        )
    return {ours: found[var] for ours, var in wanted.items()}


@dataclass(frozen=True)
class OfficialTemplates:
    """The template strings of one checkout (keys: our role names, see ``_PROMPT_VARS``)."""

    root: str
    texts: Mapping[str, str]

    @classmethod
    def load(cls, root: str | Path) -> OfficialTemplates:
        """Read the templates; one clear error if the path or the templates are missing."""
        root_path = Path(root).expanduser()
        if not str(root):
            raise OfficialRepoError("azr.official_repo is empty")
        if not root_path.is_dir():
            raise OfficialRepoError(f"azr.official_repo: {root_path} is not a directory")
        texts = {
            **_read_strings(root_path, PROMPTS_FILE, _PROMPT_VARS),
            **_read_strings(root_path, WRAPPER_FILE, _WRAPPER_VARS),
        }
        for name, allowed in _FIELDS.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(texts[name]) if f is not None}
            if not fields <= allowed:
                raise OfficialRepoError(
                    f"azr.official_repo: template {_PROMPT_VARS.get(name, name)} "
                    f"uses unknown fields {sorted(fields - allowed)}"
                )
        return cls(str(root_path.resolve()), texts)


@functools.lru_cache(maxsize=8)
def load_templates(root: str) -> OfficialTemplates:
    return OfficialTemplates.load(root)


class OfficialPrompts:
    """Fills the official templates (the prompt set of ``azr.official_repo``)."""

    def __init__(
        self,
        templates: OfficialTemplates,
        *,
        num_inputs: int = 10,
        banned_words: Sequence[str] = (),
        remove_after_return: bool = False,
        no_input_in_snippet: bool = False,
    ):
        self.t = templates.texts
        self.num_inputs = num_inputs
        self.banned_words = tuple(banned_words)
        self.remove_after_return = remove_after_return
        self.no_input_in_snippet = no_input_in_snippet
        self.description = f"official templates from {templates.root}"

    # ------------------------------------------------------------------ proposers
    def _references(self, references: Sequence[Triplet]) -> str:
        out = []
        for i, ref in enumerate(references):
            out.append(
                f"<snippet_{i}>\n```python\n{ref.program}\n```\n```input\n{ref.input}\n```\n"
                f"```output\n{ref.output}\n```\n</snippet_{i}>\n"
            )
        return "".join(out)

    def proposer(
        self, task: TaskType | str, references: Sequence[Triplet] = (), program: str | None = None
    ) -> str:
        task = TaskType.parse(task)
        if task is TaskType.INDUCTION:
            if program is None:
                raise ValueError("an induction proposer prompt needs a program")
            return self.t["propose_induction"].format(
                num_inputs=self.num_inputs, snippet=program + self.t["input_marker"]
            )
        body = self.t[f"propose_{task.value}"].format(
            remove_after_return_prompt=self.t["definitions_only"] if self.remove_after_return else "\n",
            remove_input_from_snippet_prompt=self.t["no_input_in_snippet"]
            if self.no_input_in_snippet
            else "",
        )
        body = body.replace(BANNED_MARK, ", ".join(self.banned_words))
        # composite functions are off in every official run: their section is a blank line
        return body + self._references(references) + "\n"

    # ------------------------------------------------------------------ solvers
    def solver(self, task: TaskType | str, entry: Triplet | InductionTask) -> str:
        task = TaskType.parse(task)
        if task is TaskType.INDUCTION:
            if not isinstance(entry, InductionTask):
                raise TypeError("an induction solver prompt needs an InductionTask")
            pairs = "".join(
                f"```input_{i}\n{x}\n```\n```output_{i}\n{y}\n```\n"
                for i, (x, y) in enumerate(entry.given_pairs)
            )
            return self.t["solve_induction"].format(input_output_pairs=pairs, message=entry.message)
        if not isinstance(entry, Triplet):
            raise TypeError(f"a {task.value} solver prompt needs a Triplet")
        if task is TaskType.DEDUCTION:
            return self.t["solve_deduction"].format(snippet=entry.program, input_args=entry.input)
        return self.t["solve_abduction"].format(snippet=entry.program, output=entry.output)

    # ------------------------------------------------------------------ wrapper
    def render_base(self, prompt: str) -> str:
        """The R1 wrapper of the checkout (it ends with ``Assistant: <think>``)."""
        return self.t["wrapper"].format(prompt)

    def render_chat(self, prompt: str):
        """For chat templates: the wrapped prompt as the one user message, nothing prefilled
        (the wrapper already ends with ``<think>``; the official runs use base models with a
        content-only chat template, which is ``render_base``)."""
        from azr_jax.azr.prompts import ChatPrompt

        return ChatPrompt(system="", user=self.render_base(prompt), assistant_prefix="")

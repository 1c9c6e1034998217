"""The official AZR paper-branch functions, for side-by-side tests.

They are read from ``../shared/reference/official_azr_paper`` (relative to the repository): each
file is parsed with ``ast`` and only the named top-level definitions (functions, string
constants, or ``Class.method``) are executed, in a namespace holding the modules they use, so
nothing else of the official package (ray, veRL, vLLM, ...) is imported. Tests skip when the
directory is absent.
"""

from __future__ import annotations

import ast
import re
import types
import typing
import warnings
from pathlib import Path

import pytest

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "official_azr_paper"


def require() -> Path:
    """The reference directory, or skip the calling test."""
    if not (REF / "absolute_zero_reasoner").is_dir():
        pytest.skip(f"official AZR reference not found at {REF}")
    return REF


def _nodes(tree: ast.Module, names: set[str]) -> list[ast.stmt]:
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            out.append(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in names for t in node.targets
        ):
            out.append(node)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:  # "Class.method" -> the method as a plain function
                if isinstance(sub, ast.FunctionDef) and f"{node.name}.{sub.name}" in names:
                    sub = ast.FunctionDef(**{**sub.__dict__, "decorator_list": []})
                    out.append(sub)
    return out


def load(relpath: str, *names: str, namespace: dict | None = None) -> types.SimpleNamespace:
    """Execute only ``names`` from the official file ``relpath``; returns them as attributes
    (``Class.method`` is returned as ``method``)."""
    path = require() / relpath
    with warnings.catch_warnings():  # the files have a few invalid escapes ("\%")
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted = set(names)
    body = _nodes(tree, wanted)
    found = {n.name if not isinstance(n, ast.Assign) else n.targets[0].id for n in body}
    missing = {n.split(".")[-1] for n in wanted} - found
    if missing:
        raise LookupError(f"{relpath} lacks {sorted(missing)}")
    module = ast.Module(body=body, type_ignores=[])
    ns: dict = {
        "re": re,
        "ast": ast,
        "__name__": "official_" + path.stem,
        **{k: getattr(typing, k) for k in typing.__all__},
        **(namespace or {}),
    }
    exec(compile(module, str(path), "exec"), ns)  # the official definitions only
    return types.SimpleNamespace(**{n.split(".")[-1]: ns[n.split(".")[-1]] for n in names})


PARSERS = "absolute_zero_reasoner/utils/code_utils/parsers.py"
CODE_REWARD = "absolute_zero_reasoner/rewards/code_reward.py"
CUSTOM_EVALUATE = "absolute_zero_reasoner/rewards/custom_evaluate.py"
REWARD_MANAGERS = "absolute_zero_reasoner/rewards/reward_managers.py"
PROMPTS = "absolute_zero_reasoner/data_construction/prompts.py"
PROCESS_DATA = "absolute_zero_reasoner/data_construction/process_data.py"


def parsing() -> types.SimpleNamespace:
    """The parsing functions of the official reward path, as one namespace."""
    p = load(PARSERS, "parse_imports", "remove_comments_and_docstrings", "remove_any_not_definition_imports")
    cr = load(
        CODE_REWARD,
        "has_test_input",
        "parse_code_input_output",
        "parse_inputs_message",
        "parse_code_function",
        namespace=vars(p),
    )
    ce = load(CUSTOM_EVALUATE, "extract_answer", "get_format_reward", "last_boxed_only_string")
    rm = load(REWARD_MANAGERS, "CodeIORewardManager.extract_input_output")
    return types.SimpleNamespace(**vars(p), **vars(cr), **vars(ce), **vars(rm))


def prompts() -> types.SimpleNamespace:
    """The official prompt constructor functions and the R1 wrapper template."""
    tree = ast.parse((require() / PROMPTS).read_text(encoding="utf-8"))
    names = [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)]
    names += ["get_code_problem_generator_prompt", "get_code_problem_predictor_prompt"]
    pr = load(PROMPTS, *names)
    pd = load(PROCESS_DATA, "instruction_following")
    return types.SimpleNamespace(**vars(pr), **vars(pd))


EXECUTOR = "absolute_zero_reasoner/utils/code_utils/python_executor.py"
TEMPLATES = "absolute_zero_reasoner/utils/code_utils/templates.py"
CHECKS = "absolute_zero_reasoner/utils/code_utils/checks.py"


def executor(**kwargs):
    """An official ``PythonExecutor`` (``pebble`` and ``timeout_decorator`` needed: the test
    extra). Its file's definitions run in a module of their own, registered in sys.modules so
    the process pool can pickle them; the package imports are replaced by the definitions
    they name, loaded from their own files."""
    import sys

    pytest.importorskip("pebble")
    pytest.importorskip("timeout_decorator")
    name = "official_python_executor"
    if name not in sys.modules:
        path = require() / EXECUTOR
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = [
            n
            for n in tree.body
            if not (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("absolute_zero_reasoner"))
            and not isinstance(n, ast.If)
            and not (isinstance(n, ast.FunctionDef) and n.name == "_test")
        ]
        mod = types.ModuleType(name)
        tmpl = ast.parse((require() / TEMPLATES).read_text(encoding="utf-8"))
        tnames = [
            n.targets[0].id if isinstance(n, ast.Assign) else n.name
            for n in tmpl.body
            if isinstance(n, (ast.Assign, ast.FunctionDef))
        ]
        mod.__dict__.update(vars(load(TEMPLATES, *tnames)))
        mod.__dict__.update(vars(load(CHECKS, "contains_banned_imports")))
        mod.__dict__.update(vars(load(PARSERS, "parse_error")))
        sys.modules[name] = mod
        exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), mod.__dict__)
    return sys.modules[name].PythonExecutor(**kwargs)

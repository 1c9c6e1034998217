"""Static, text/AST-level edits of proposed programs (never executes anything).

These are the transformations the method applies to a proposer's program before it is stored:
picking the entry function and renaming it to ``f`` (recursive calls included), pulling out the
import lines (they are stored separately and re-prepended at every execution), and, only during
seeding, stripping comments/docstrings and module-level statements that are not definitions.
"""

from __future__ import annotations

import ast
import re

# The official detector: a line that starts (after indentation) with ``def name(``. It deliberately
# counts nested functions and methods too, which is what makes ``reject_multiple_functions`` keep
# only single-``def`` programs in practice. (Indentation is matched as "whitespace but newline"
# rather than the official \s*: the same names in the same order, since a match that \s* starts
# on an earlier blank line ends at the same ``def``; but linear time on long blank runs.)
_DEF_LINE = re.compile(r"^[^\S\n]*def\s+(\w+)\s*\(", re.MULTILINE)
_IMPORT_LINE = re.compile(r"^[ \t]*(from[ \t]+[\w.]+[ \t]+import[ \t]+.+|import[ \t]+.+)$", re.MULTILINE)

# What ast.parse/unparse can raise on hostile input (deep nesting exhausts the parser).
_AST_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)

# Official ``f_replace_location`` values mapped onto our names.
_OFFICIAL_ENTRY_NAMES = {
    "not_first": "first",
    "not_last": "last",
    "any_first": "f_or_first",
    "any_last": "f_or_last",
}
ENTRY_POLICIES: tuple[str, ...] = ("first", "last", "f_or_first", "f_or_last")


def function_names(code: str) -> list[str]:
    """Names of every ``def`` line, in source order (nested defs and methods included)."""
    return _DEF_LINE.findall(code)


def normalize_entry_policy(policy: str) -> str:
    """Accept our policy names and the official ``f_replace_location`` values."""
    policy = _OFFICIAL_ENTRY_NAMES.get(policy, policy)
    if policy not in ENTRY_POLICIES:
        raise ValueError(
            f"unknown entry-function policy {policy!r}; expected one of {ENTRY_POLICIES} "
            f"or {tuple(_OFFICIAL_ENTRY_NAMES)}"
        )
    return policy


def choose_entry(names: list[str], policy: str = "first") -> str:
    """Which defined function becomes ``f``.

    ``first``/``last`` take the first/last ``def`` even if another one is already called ``f``
    (official ``not_first``/``not_last``); ``f_or_*`` keep an existing ``f`` and otherwise take
    the first/last one (official ``any_first``/``any_last``, used for Llama runs).
    """
    if not names:
        raise ValueError("no function definitions to choose an entry point from")
    policy = normalize_entry_policy(policy)
    if policy == "first":
        return names[0]
    if policy == "last":
        return names[-1]
    if "f" in names:
        return "f"
    return names[0] if policy == "f_or_first" else names[-1]


def rename_function(code: str, old: str, new: str = "f") -> str:
    """Rename the definition of ``old`` and every call ``old(`` to ``new``.

    Calls are renamed too so recursive functions keep working. Attribute calls (``obj.old(``)
    are left alone, since they refer to some other object's method.
    """
    if not re.fullmatch(r"\w+", old) or not re.fullmatch(r"\w+", new):
        raise ValueError(f"function names must be identifiers, got {old!r} -> {new!r}")
    if old == new:
        return code
    code = re.sub(rf"\bdef\s+{re.escape(old)}\s*\(", f"def {new}(", code)
    return re.sub(rf"(?<![\w.]){re.escape(old)}\s*\(", f"{new}(", code)


def extract_imports(code: str) -> tuple[str, ...]:
    """Import statements of ``code`` as normalised one-line strings, first occurrence order.

    Uses the AST (so multi-line and nested imports are found); if the code does not parse,
    falls back to a line regex so a broken program still reports what it tried to import.
    """
    try:
        tree = ast.parse(code)
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        nodes.sort(key=lambda n: (n.lineno, n.col_offset))
        found = [ast.unparse(n) for n in nodes]
    except _AST_ERRORS:
        found = [m.group(1).strip() for m in _IMPORT_LINE.finditer(code)]
    return tuple(dict.fromkeys(found))


def _drop_blank_lines(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.split("\n") if line.strip())


def strip_comments_and_docstrings(code: str, fill_empty_bodies: bool = True) -> str:
    """Remove comments and leading docstrings of the module, classes and functions.

    Round-trips through the AST (which drops comments); a body left empty gets ``pass``
    (``fill_empty_bodies=False``, the official behaviour, leaves it empty: the program then
    fails to compile). Code that does not parse is returned unchanged.
    """
    try:
        tree = ast.parse(code)
        scoped = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        for node in ast.walk(tree):
            if not isinstance(node, scoped):
                continue
            body = node.body
            while (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body.pop(0)
            if fill_empty_bodies and not body and not isinstance(node, ast.Module):
                body.append(ast.Pass())
        return _drop_blank_lines(ast.unparse(tree))
    except _AST_ERRORS:
        return code


def keep_definitions_only(code: str) -> str:
    """Drop every module-level statement that is not an import, class or function definition.

    This is the seeding-time "remove after return" edit: test calls, prints and globals that a
    proposer appends after ``f`` are removed. Unparseable code is returned unchanged.
    """
    try:
        tree = ast.parse(code)
        keep = (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        tree.body = [n for n in tree.body if isinstance(n, keep)]
        return _drop_blank_lines(ast.unparse(tree))
    except _AST_ERRORS:
        return code

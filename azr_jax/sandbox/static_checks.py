"""AST checks that decide, without executing anything, whether code may be run as an AZR task.

Rules (azr_method.md §3): the code parses; it imports no banned module; it contains no `input(`;
it defines the entry function `f` (with `single_function`, exactly one `def` anywhere, as the
official multiple-function regex counts nested functions and methods). Beyond the official check we
also catch literal `__import__("x")` / `importlib.import_module("x")` of a banned module and
dotted banned names such as `os.path`, which the official component-wise match can never hit.
Every function returns a rejection reason, or None when the code passes.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Sequence

from .config import OFFICIAL_BANNED_MODULES
from .jobs import PROBE_CALL_EQUAL, PROBE_EQUAL, PROBE_OUTPUT, PROBE_PAIRS, PROBE_SCRIPT, Job

ENTRY_FUNCTION = "f"
# Largest program or expression we are willing to parse (guards the parser against megabyte inputs).
MAX_SOURCE_CHARS = 200_000
# Distinct programs whose verdict (and, in harness.py, compiled code) is remembered per process.
PROGRAM_CACHE_SIZE = 256


def _parse(source: str, mode: str, what: str) -> tuple[ast.AST | None, str | None]:
    if len(source) > MAX_SOURCE_CHARS:
        return None, f"{what} is longer than {MAX_SOURCE_CHARS} characters"
    try:
        return ast.parse(source, mode=mode), None
    except SyntaxError as exc:
        return None, f"{what} does not parse: SyntaxError: {exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return None, f"{what} does not parse: {type(exc).__name__}: {exc}"


def _banned_hit(module: str, banned: Sequence[str]) -> str | None:
    """The banned entry matched by an imported dotted name, if any."""
    parts = module.split(".")
    for word in banned:
        if word in parts:  # the official rule: any dotted component equals a banned word
            return word
        if "." in word and (module == word or module.startswith(word + ".")):
            return word
    return None


def _imported_names(tree: ast.AST) -> Iterable[str]:
    """Every module name an import statement or a literal dynamic import would load."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if base:
                yield base
            for alias in node.names:
                yield f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0]
            if (
                name in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield first.value


def banned_import(tree: ast.AST, banned: Sequence[str] = OFFICIAL_BANNED_MODULES) -> str | None:
    """Reason if the parsed code imports a banned module."""
    for module in _imported_names(tree):
        word = _banned_hit(module, banned)
        if word is not None:
            return f"banned module {word!r} (imported as {module!r})"
    return None


def entry_function_problem(tree: ast.Module, single_function: bool = True) -> str | None:
    """Reason if the program does not define `f` the way AZR requires (with `single_function`, no
    other function definition anywhere, nested ones and methods included)."""
    top = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == ENTRY_FUNCTION]
    if not top:
        return f"no top-level function named {ENTRY_FUNCTION!r}"
    if single_function:
        count = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(tree))
        if count != 1:
            return f"exactly one function definition is allowed, found {count}"
    return None


def validate_program(
    program: str,
    imports: Sequence[str] = (),
    *,
    banned_modules: Sequence[str] = OFFICIAL_BANNED_MODULES,
    single_function: bool = True,
    require_entry: bool = True,
) -> str | None:
    """Check a proposed program (with its import lines) before it is ever executed."""
    if not isinstance(program, str) or isinstance(imports, str) or any(not isinstance(i, str) for i in imports):
        return "program and imports must be strings"
    source = "\n".join(list(imports) + [program])
    return _validate_source(source, tuple(banned_modules), single_function, require_entry)


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def _validate_source(source: str, banned: tuple[str, ...], single_function: bool, require_entry: bool) -> str | None:
    """validate_program on the joined source; cached because a task's program is checked once per
    input and per solver answer. The text pre-checks skip AST walks that cannot find anything."""
    if "input(" in source:
        return "code contains 'input('"
    tree, reason = _parse(source, "exec", "program")
    if reason:
        return reason
    if "import" in source:  # every import statement and dynamic import spells it
        reason = banned_import(tree, banned)
        if reason:
            return reason
    if require_entry:
        return entry_function_problem(tree, single_function and source.count("def") > 1)
    return None


def call_source(arguments: str, callee: str = ENTRY_FUNCTION) -> str:
    """The exact source the harness evaluates for `f(<arguments>)` (newlines let a trailing comment in)."""
    return f"{callee}(\n{arguments}\n)"


def validate_call_arguments(arguments: str, what: str = "input") -> str | None:
    """Reason if `arguments` is not a plain argument list of one call of f."""
    if not isinstance(arguments, str):
        return f"{what} must be a string"
    if "input(" in arguments:
        return f"{what} contains 'input('"
    tree, reason = _parse(call_source(arguments), "eval", what)
    if reason:
        return reason
    body = tree.body
    if not (isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == ENTRY_FUNCTION):
        return f"{what} is not an argument list of a single call to {ENTRY_FUNCTION}"
    return None


def validate_expression(text: str, what: str = "expression") -> str | None:
    """Reason if `text` is not one Python expression."""
    if not isinstance(text, str):
        return f"{what} must be a string"
    if "input(" in text:
        return f"{what} contains 'input('"
    _, reason = _parse(text.strip(), "eval", what)
    return reason


def check_job(job: Job) -> str | None:
    """All static checks that apply to a job (called in the sandbox child before running it)."""
    opts = job.options
    if not opts.static_checks:
        return None
    needs_f = job.probe in (PROBE_OUTPUT, PROBE_CALL_EQUAL, PROBE_PAIRS)
    if job.program or job.imports or needs_f:
        reason = validate_program(
            job.program,
            job.imports,
            banned_modules=opts.banned_modules,
            single_function=opts.single_function,
            require_entry=needs_f,
        )
        if reason:
            return reason
    if job.probe == PROBE_OUTPUT:
        return validate_call_arguments(job.args[0])
    if job.probe == PROBE_EQUAL:
        return validate_expression(job.args[0], "gold output") or validate_expression(job.args[1], "predicted output")
    if job.probe == PROBE_CALL_EQUAL:
        return validate_expression(job.args[0], "gold output") or validate_call_arguments(
            job.args[1], "predicted input"
        )
    if job.probe == PROBE_PAIRS:
        for k in range(0, len(job.args), 2):
            reason = validate_call_arguments(job.args[k], f"input {k // 2}")
            if reason:
                return reason
        return None
    assert job.probe == PROBE_SCRIPT
    return None

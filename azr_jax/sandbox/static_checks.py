"""AST checks that decide, without executing anything, whether code may be run as an AZR task.

Rules (azr_method.md §3): the code parses; it contains no `input(`; it defines the entry function
`f`; a proposal imports no banned module; with `single_function`, only one function is defined.
Semantics (`JobOptions.semantics`):
- `official`: the official executor's rules. A banned word matches a dotted component of an
  imported name (so dotted entries like `os.path` never match); the single-function rule counts
  lines that start with `def name(`, as the official parser's regex does (async defs are not
  counted, a `def` line inside a string is); the input is pasted into `f(` ... `)` on one piece of
  text, so a trailing comment swallows the closing parenthesis.
- `strict`: additionally a banned word matches a full dotted name (`from os import path`) and a
  literal `__import__("x")` / `importlib.import_module("x")`; every `def` (nested, methods, async)
  counts; the input is pasted between newlines, so a trailing comment is allowed.
In both, an input must be exactly one argument list of `f` (text such as `1) if False else (2`
that rewrites the code around the paste is refused). Every function returns a rejection reason,
or None when the code passes.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Sequence

from .config import OFFICIAL_BANNED_MODULES
from .jobs import PROBE_CALL_EQUAL, PROBE_EQUAL, PROBE_OUTPUT, PROBE_PAIRS, PROBE_SCRIPT, Job

ENTRY_FUNCTION = "f"
# Largest program or expression we are willing to parse (guards the parser against megabyte inputs).
MAX_SOURCE_CHARS = 200_000
# Distinct programs whose verdict is remembered per process.
PROGRAM_CACHE_SIZE = 256
_DEF_LINE = re.compile(r"^\s*def\s+\w+\s*\(", re.MULTILINE)


def _parse(source: str, mode: str, what: str) -> tuple[ast.AST | None, str | None]:
    tree, reason = parsed(source, mode)
    return tree, None if reason is None else f"{what} {reason}"


@functools.lru_cache(maxsize=1024)
def parsed(source: str, mode: str) -> tuple[ast.AST | None, str | None]:
    """(AST, None) or (None, why it does not parse); cached: the checks and the compiler share it.
    The tree must not be modified."""
    if len(source) > MAX_SOURCE_CHARS:
        return None, f"is longer than {MAX_SOURCE_CHARS} characters"
    try:
        return ast.parse(source, mode=mode), None
    except SyntaxError as exc:
        return None, f"does not parse: SyntaxError: {exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return None, f"does not parse: {type(exc).__name__}: {exc}"


def program_source(program: str, imports: Sequence[str] = (), semantics: str = "official") -> str:
    """The text that runs: import lines prepended; officially the joined snippet is stripped first."""
    source = "\n".join(list(imports) + [program]) if imports else program
    return source.lstrip() if semantics == "official" else source


def call_source(arguments: str, callee: str = ENTRY_FUNCTION, semantics: str = "official") -> str:
    """The source `callee(<arguments>)`: pasted as is (official), or between newlines (strict)."""
    if semantics == "official":
        return f"{callee}({arguments})"
    return f"{callee}(\n{arguments}\n)"


def _banned_hit(module: str, banned: Sequence[str], strict: bool) -> str | None:
    """The banned entry matched by an imported dotted name, if any."""
    parts = module.split(".")
    for word in banned:
        if word in parts:  # the official rule: any dotted component equals a banned word
            return word
        if strict and "." in word and (module == word or module.startswith(word + ".")):
            return word
    return None


def _imported_names(tree: ast.AST, strict: bool) -> Iterable[str]:
    """Every module name an import statement (or, strict, a literal dynamic import) would load."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if base:
                yield base
            for alias in node.names:
                yield (f"{base}.{alias.name}" if base else alias.name) if strict else alias.name
        elif strict and isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if (
                name in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield first.value


def banned_import(
    tree: ast.AST, banned: Sequence[str] = OFFICIAL_BANNED_MODULES, semantics: str = "official"
) -> str | None:
    """Reason if the parsed code imports a banned module."""
    strict = semantics == "strict"
    for module in _imported_names(tree, strict):
        word = _banned_hit(module, banned, strict)
        if word is not None:
            return f"banned module {word!r} (imported as {module!r})"
    return None


def entry_function_problem(
    tree: ast.Module, single_function: bool = True, source: str = "", semantics: str = "official"
) -> str | None:
    """Reason if the program does not define `f` the way AZR requires."""
    top = [
        n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == ENTRY_FUNCTION
    ]
    if not top:
        return f"no top-level function named {ENTRY_FUNCTION!r}"
    if single_function:
        if semantics == "official":
            count = len(_DEF_LINE.findall(source))
        else:
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
    semantics: str = "official",
) -> str | None:
    """Check a proposed program (with its import lines) before it is ever executed."""
    if (
        not isinstance(program, str)
        or isinstance(imports, str)
        or any(not isinstance(i, str) for i in imports)
    ):
        return "program and imports must be strings"
    source = program_source(program, imports, semantics)
    return _validate_source(source, tuple(banned_modules), single_function, require_entry, semantics)


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def _validate_source(
    source: str, banned: tuple[str, ...], single_function: bool, require_entry: bool, semantics: str
) -> str | None:
    """validate_program on the joined source; cached because a task's program is checked once per
    input and per solver answer. The text pre-checks skip AST walks that cannot find anything."""
    if "input(" in source:
        return "code contains 'input('"
    tree, reason = _parse(source, "exec", "program")
    if reason:
        return reason
    if banned and "import" in source:  # every import statement and dynamic import spells it
        reason = banned_import(tree, banned, semantics)
        if reason:
            return reason
    if require_entry:
        return entry_function_problem(tree, single_function and source.count("def") > 1, source, semantics)
    return None


def validate_call_arguments(arguments: str, what: str = "input", semantics: str = "official") -> str | None:
    """Reason if `arguments` pasted into `f(...)` is not exactly one argument list of f."""
    if not isinstance(arguments, str):
        return f"{what} must be a string"
    if "input(" in arguments:
        return f"{what} contains 'input('"
    tree, reason = _parse(call_source(arguments, semantics=semantics), "eval", what)
    if reason:
        return reason
    body = tree.body
    if not (
        isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == ENTRY_FUNCTION
    ):
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
    """The static checks that apply to a job before any of it runs (None: it may run).

    Proposals (output probe) get every rule; answer checks only need text that can be evaluated
    (the program was validated when it was proposed; the solver's code is not subject to the
    proposal's banned-module list, as in the official check)."""
    opts = job.options
    if not opts.static_checks:
        return None
    sem = opts.semantics
    if job.probe == PROBE_OUTPUT:
        reason = validate_program(
            job.program,
            job.imports,
            banned_modules=opts.banned_modules,
            single_function=opts.single_function,
            semantics=sem,
        )
        return reason or validate_call_arguments(job.args[0], semantics=sem)
    if job.probe == PROBE_EQUAL:
        return validate_expression(job.args[1], "predicted output")
    if job.probe == PROBE_CALL_EQUAL:
        reason = validate_program(
            job.program, job.imports, banned_modules=(), single_function=False, semantics=sem
        )
        return reason or validate_call_arguments(job.args[1], "predicted input", sem)
    if job.probe == PROBE_PAIRS:
        return validate_program(
            job.program, job.imports, banned_modules=(), single_function=False, semantics=sem
        )
    assert job.probe == PROBE_SCRIPT
    return validate_program(job.program, job.imports, banned_modules=opts.banned_modules, require_entry=False)

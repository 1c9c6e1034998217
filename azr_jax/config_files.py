"""Config files on the command line: find them, load them with overrides, explain their fields.

`--config=configs/X.py[:topology]` is resolved against the current directory first, then the
source checkout the package runs from, then the copy of `configs/` installed with the package
(setup.py installs it as `azr_jax.configs`), so the README's commands work from any directory.
Loading goes through ml_collections' own flag parser (the same one the commands use), so a
value that parses here parses there; what differs is the errors: each is one `UsageError`
line naming the fix (an unknown field gets "did you mean", searched over the whole config).

Field meanings are the comments next to each field in `azr_jax/defaults.py` (the trailing
comment, or the comment lines right above it); `--print_config` shows them with the values.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import io
import os
import re
import tokenize
from collections.abc import Iterator, Sequence
from typing import Any

import ml_collections

from azr_jax.errors import UsageError

CONFIG_FLAG = "config"
_OVERRIDE = re.compile(r"^--?(no)?config\.([A-Za-z0-9_.]+)(=.*)?$")


# ---------------------------------------------------------------------------- finding files
def checkout_root() -> str | None:
    """The source checkout the package is imported from (it holds configs/), if any."""
    import azr_jax

    root = os.path.dirname(os.path.dirname(os.path.abspath(azr_jax.__file__)))
    return root if os.path.isdir(os.path.join(root, "configs")) else None


def config_dirs() -> list[str]:
    """Directories holding the shipped config files: the checkout's, then the installed copy."""
    dirs = []
    root = checkout_root()
    if root:
        dirs.append(os.path.join(root, "configs"))
    try:
        spec = importlib.util.find_spec("azr_jax.configs")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isdir(loc) and os.path.abspath(loc) not in dirs:
            dirs.append(os.path.abspath(loc))
    return dirs


def available_configs() -> list[str]:
    names = set()
    for d in config_dirs():
        names.update(f[:-3] for f in os.listdir(d) if f.endswith(".py") and not f.startswith("_"))
    return sorted(names)


def resolve_config_path(path: str) -> str:
    """Absolute path of a config file named as given, relative to the current directory,
    the checkout, or the installed configs (`configs/tiny_cpu.py`, `tiny_cpu.py`, `tiny_cpu`)."""
    if os.path.isfile(path):
        return os.path.abspath(path)
    candidates = []
    if not os.path.isabs(path):
        root = checkout_root()
        if root:
            candidates.append(os.path.join(root, path))
        name = path[len("configs/") :] if path.startswith("configs/") else path
        if "/" not in name:
            for d in config_dirs():
                candidates += [os.path.join(d, name), os.path.join(d, name + ".py")]
    for cand in candidates:
        if os.path.isfile(cand):
            return os.path.abspath(cand)
    raise UsageError(
        f"config file {path!r} not found (looked in {os.getcwd()}"
        + "".join(f", {d}" for d in config_dirs())
        + "); shipped configs: "
        + ", ".join(f"configs/{n}.py" for n in available_configs())
    )


def split_spec(spec: str) -> tuple[str, str | None]:
    """`path[:arg]` as ml_collections splits it (the argument is the topology)."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)


# ---------------------------------------------------------------------------- loading
def _run_get_config(path: str, arg: str | None, spec: str) -> ml_collections.ConfigDict:
    """Execute the config file and call get_config, turning its errors into one line."""
    name = "_azr_config_" + re.sub(r"\W", "_", os.path.basename(path)[:-3])
    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise UsageError(f"--config={spec}: not a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:  # a broken config file: say where, in one line
        raise UsageError(f"--config={spec}: cannot load {path}: {type(e).__name__}: {e}") from e
    if not callable(getattr(module, "get_config", None)):
        raise UsageError(f"--config={spec}: {path} defines no get_config()")
    try:
        return module.get_config(*([] if arg is None else [arg]))
    except (ValueError, KeyError, TypeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise UsageError(f"--config={spec}: {msg}") from e


def leaf_paths(c: ml_collections.ConfigDict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every field that is not itself a ConfigDict, in order."""
    for key, value in c.items():
        path = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            yield from leaf_paths(value, path + ".")
        else:
            yield path, value


def _all_paths(c: ml_collections.ConfigDict, prefix: str = "") -> Iterator[str]:
    for key, value in c.items():
        yield prefix + key
        if isinstance(value, ml_collections.ConfigDict):
            yield from _all_paths(value, prefix + key + ".")


def suggest(path: str, c: ml_collections.ConfigDict) -> list[str]:
    """Fields the user probably meant: same last name elsewhere, then close spellings."""
    paths = list(_all_paths(c))
    last = path.rsplit(".", 1)[-1]
    same_name = [p for p in paths if p.rsplit(".", 1)[-1] == last and p != path]
    close = difflib.get_close_matches(path, paths, n=3, cutoff=0.75)
    leaf_close = [
        p
        for p in paths
        if difflib.SequenceMatcher(None, p.rsplit(".", 1)[-1], last).ratio() >= 0.8
        and p.rsplit(".", 1)[0] == path.rsplit(".", 1)[0]
    ]
    out: list[str] = []
    for p in same_name + leaf_close + close:
        if p not in out:
            out.append(p)
    return out[:3]


def _check_field(path: str, c: ml_collections.ConfigDict) -> None:
    node: Any = c
    for part in path.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            hint = suggest(path, c)
            did_you_mean = (
                f"; did you mean {' or '.join('--config.' + h for h in hint)}?"
                if hint
                else "; `--print_config` lists the fields"
            )
            raise UsageError(f"--config.{path}: no such config field{did_you_mean}")
        node = node[part]


def override_paths(args: Sequence[str]) -> list[str]:
    """Dotted field paths of the `--config.a.b=value` arguments, in order."""
    out = []
    for arg in args:
        if arg == "--":
            break
        m = _OVERRIDE.match(arg)
        if m:
            out.append(m.group(2))
    return out


def load_config(
    spec: str, args: Sequence[str] = (), *, shown_as: str | None = None
) -> ml_collections.ConfigDict:
    """The config `--config=spec` gives with the `--config.*` overrides among `args` (the
    command's arguments) applied; every problem is a `UsageError`. `spec`'s path must already
    be resolved; `shown_as` is how errors name it (what the user typed)."""
    from absl import flags
    from ml_collections import config_flags

    path, arg = split_spec(spec)
    base = _run_get_config(path, arg, shown_as or spec)
    for field in override_paths(args):
        _check_field(field, base)
    # The config flag where the user put it (an override before it is an error), the
    # overrides, and every non-flag word: the value of a `--config.key value` pair.
    config_arg = f"--{CONFIG_FLAG}={spec}"
    kept = [a for a in args if _OVERRIDE.match(a) or not a.startswith("-") or a == config_arg]
    argv = ["azr-jax"] + (kept if config_arg in kept else [config_arg] + kept)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        CONFIG_FLAG, None, "config", flag_values=fv, lock_config=True, sys_argv=argv
    )
    try:
        fv(argv)
        return fv[CONFIG_FLAG].value
    except flags.Error as e:
        raise UsageError(_flag_error(str(e))) from e
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise UsageError(f"--config overrides: {_one_line(str(e))}") from e


def _flag_error(msg: str) -> str:
    m = re.match(r"flag (--config\.[\w.]+=[^:]*): (.*)", msg, re.S)
    if m:
        return f"{m.group(1)}: {_one_line(m.group(2))}"
    return _one_line(msg)


def _one_line(msg: str) -> str:
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else msg


def prepare_args(args: Sequence[str]) -> tuple[list[str], ml_collections.ConfigDict | None]:
    """Resolve the `--config=` path in `args` (rewritten to an absolute path) and load the
    config with its overrides; (new args, config) or (args, None) without a --config."""
    args = list(args)
    for i, a in enumerate(args):
        if a == "--":
            break
        if a.startswith(f"--{CONFIG_FLAG}=") or a.startswith(f"-{CONFIG_FLAG}="):
            spec = a.split("=", 1)[1]
        elif a in (f"--{CONFIG_FLAG}", f"-{CONFIG_FLAG}") and i + 1 < len(args):
            spec = args.pop(i + 1)
        else:
            continue
        path, arg = split_spec(spec)
        if not path:
            raise UsageError("--config needs a file, e.g. --config=configs/tiny_cpu.py")
        resolved = resolve_config_path(path) + ("" if arg is None else f":{arg}")
        args[i] = f"--{CONFIG_FLAG}={resolved}"
        return args, load_config(resolved, args, shown_as=spec)
    return args, None


# ---------------------------------------------------------------------------- field docs
@functools.lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """Dotted field path -> its meaning, from the comments of `defaults.base_config`.

    A field's doc is the comment block right above its assignment plus its trailing comment;
    fields of a `ConfigDict(dict(...))` literal share the comment of that assignment.
    """
    from azr_jax import defaults

    with open(defaults.__file__, encoding="utf-8") as f:
        source = f.read()
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, whole-line comment)
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            comments[tok.start[0]] = (text, tok.line.strip().startswith("#"))
        elif tok.type not in (
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            code_lines.add(tok.start[0])
    fn = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "base_config")
    docs: dict[str, str] = {}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        path = _attr_path(node.targets[0])
        if path is None:
            continue
        above = []
        line = node.lineno - 1
        while line in comments and comments[line][1] and line not in code_lines:
            above.insert(0, comments[line][0])
            line -= 1
        trailing = [
            comments[n][0]
            for n in range(node.lineno, node.end_lineno + 1)
            if n in comments and not comments[n][1]
        ]
        doc = " ".join(above + trailing).strip()
        docs[path] = doc
        for key in _dict_literal_keys(node.value):
            docs.setdefault(f"{path}.{key}", doc)
    return docs


def _attr_path(node: ast.AST) -> str | None:
    """`c.model.hf_path` -> "model.hf_path" (None for anything else)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return ".".join(parts) if isinstance(node, ast.Name) and node.id == "c" and parts else None


def _dict_literal_keys(value: ast.AST) -> list[str]:
    """Keys of `ConfigDict(dict(a=1, ...))` or `ConfigDict({"a": 1})`."""
    if not (isinstance(value, ast.Call) and value.args):
        return []
    arg = value.args[0]
    if isinstance(arg, ast.Call) and getattr(arg.func, "id", "") == "dict":
        return [kw.arg for kw in arg.keywords if kw.arg]
    if isinstance(arg, ast.Dict):
        return [k.value for k in arg.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []


def format_config(c: ml_collections.ConfigDict, *, source: str = "", overridden: Sequence[str] = ()) -> str:
    """Every field with its value and meaning, in the order of `defaults.py`; values that
    differ from the defaults say so."""
    from azr_jax.defaults import base_config

    docs = field_docs()
    order = {path: i for i, path in enumerate(docs)}
    defaults = dict(leaf_paths(base_config()))
    overridden = set(overridden)
    lines = []
    if source:
        lines.append(f"# config {source}")
    lines.append(
        "# override any field with --config.<field>=<value>; "
        "tuples as repeated flags (--config.x=1 --config.x=2) or '(1, 2)'"
    )
    fields = sorted(
        leaf_paths(c),
        key=lambda kv: (
            "." in kv[0],
            order.get(kv[0].split(".")[0], len(order)),
            order.get(kv[0], len(order)),
            kv[0],
        ),
    )
    section = None
    for path, value in fields:
        head = path.split(".")[0] if "." in path else None
        if head != section and head is not None:
            doc = docs.get(head, "")
            lines += ["", f"[{head}]" + (f"  {doc}" if doc else "")]
        section = head
        note = []
        if path in overridden:
            note.append("set on the command line")
        if path in defaults and defaults[path] != value:
            note.append(f"default {defaults[path]!r}")
        lines.append(f"{path} = {value!r}" + (f"  ({'; '.join(note)})" if note else ""))
        doc = docs.get(path)
        if doc:
            lines.append(f"    {doc}")
    return "\n".join(lines)

"""`azr-jax <command> [flags]`: dispatch to one subcommand module (each owns its absl flags).

What happens here before a command runs, so every command gets it:
- `-h`/`--help` prints the command's usage (its module docstring) and its own flags;
- `--config=FILE[:topology]` is found from any directory and loaded with its `--config.*`
  overrides (`azr_jax.config_files`); `--print_config` prints the result with each field's
  meaning and exits;
- bad input (a flag, a config field or value, a path the command checks before starting) is
  one line on stderr naming the fix, exit status 2; other known errors one line, status 1
  (`AZR_JAX_TRACEBACK=1` shows the traceback).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
import sys
import textwrap
from typing import Any, NoReturn

from azr_jax.errors import UsageError

COMMANDS = {
    "train": "Run Absolute Zero self-play (resumes from --workdir's latest checkpoint).",
    "eval": "Greedy pass@1 on code/math benchmarks (sandboxed execution of code answers).",
    "convert": "Convert checkpoints: HF dir / GGUF -> orbax, orbax -> HF dir.",
    "plot": "Draw training curves (PNG) from a run dir's metrics.jsonl (and eval.jsonl).",
    "compile": "Compile a config's step for a TPU slice here (no TPU): per-chip memory, FLOPs.",
}

HELP_ARGS = ("-h", "--help", "-help", "--helpshort")
PRINT_CONFIG = "--print_config"


def _usage() -> str:
    lines = ["usage: azr-jax <command> [--flags]", "", "commands:"]
    lines += [f"  {name:<9} {doc}" for name, doc in COMMANDS.items()]
    lines.append("\n`azr-jax <command> --help` lists a command's flags.")
    return "\n".join(lines)


def _enable_compilation_cache() -> None:
    """Persist compiled XLA programs across runs (resumes, repeated evals) unless the user chose
    a location (JAX_COMPILATION_CACHE_DIR) or turned it off (AZR_JAX_XLA_CACHE=0)."""
    if os.environ.get("AZR_JAX_XLA_CACHE", "1") == "0":
        return
    import jax

    from azr_jax.hf.assets import cache_root

    path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(cache_root(), "xla")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# ---------------------------------------------------------------------------- help
def _flag_line(flag: Any) -> tuple[str, str]:
    """('--name=VALUE', 'help (default / required)') for one absl flag."""
    if flag.boolean:
        name = f"--[no]{flag.name}"
    elif type(flag).__name__ == "_ConfigFlag":
        name = f"--{flag.name}=FILE[:TOPOLOGY]"
    else:
        name = f"--{flag.name}={flag.name.upper()}"
    required = any(
        "must have a value other than None" in str(getattr(v, "message", ""))
        for v in getattr(flag, "validators", [])
    )
    text = flag.help or ""
    if required:
        text += " (required)"
    elif flag.boolean:
        text += f" (default: {'true' if flag.default else 'false'})"
    elif flag.default not in (None, "", [], ()) and type(flag).__name__ != "_ConfigFlag":
        text += f" (default: {flag.default_as_str or flag.default})"
    return name, text


def command_help(name: str, module: Any) -> str:
    """Usage (the module docstring) and the flags the command module defines."""
    from absl import flags

    doc = (module.__doc__ or "").strip()
    usage, _, body = doc.partition("\n")
    lines = [f"usage: {usage.strip()}"]
    if body.strip():
        lines += ["", textwrap.dedent(body).strip()]
    own = sorted(flags.FLAGS.get_flags_for_module(module.__name__), key=lambda f: f.name)
    rows = [_flag_line(f) for f in own]
    has_config = any(type(f).__name__ == "_ConfigFlag" for f in own)
    if has_config:
        rows.append(
            (
                "--config.FIELD=VALUE",
                "Override one config field (repeatable); `--print_config` lists the fields.",
            )
        )
        rows.append(
            (
                PRINT_CONFIG,
                "Print the resolved config (file, topology, overrides) with each field's meaning, then exit.",
            )
        )
    rows.append(("-h, --help", "This help."))
    width = min(max(len(r[0]) for r in rows) + 2, 34)
    lines += ["", "flags:"]
    for flag, text in rows:
        wrapped = textwrap.wrap(text, width=100 - width - 2) or [""]
        if len(flag) + 2 > width:
            lines.append(f"  {flag}")
            lines += [" " * (width + 2) + w for w in wrapped]
        else:
            lines.append(f"  {flag:<{width}}{wrapped[0]}")
            lines += [" " * (width + 2) + w for w in wrapped[1:]]
    if has_config:
        lines += ["", f"e.g. azr-jax {name} --config=configs/tiny_cpu.py {PRINT_CONFIG}"]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- errors
def _fail(name: str, msg: Any, code: int) -> NoReturn:
    print(f"azr-jax {name}: error: {' '.join(str(msg).split())}", file=sys.stderr)
    raise SystemExit(code)


def _flag_error(name: str, e: Exception) -> str:
    msg = str(e).strip()
    m = re.search(r"Flag --(\w+) must have a value other than None", msg)
    if m:
        return f"missing --{m.group(1)} (see `azr-jax {name} --help`)"
    m = re.match(r"Unknown command line flag '([^']+)'(.*)", msg, re.S)
    if m:
        hint = " ".join(m.group(2).split()).strip(". ")
        return (
            f"unknown flag --{m.group(1)}"
            + (f" ({hint})" if hint else "")
            + f"; `azr-jax {name} --help` lists the flags"
        )
    return " ".join(msg.split())


def _wants_help(args: list[str]) -> bool:
    for a in args:
        if a == "--":
            return False
        if a in HELP_ARGS:
            return True
    return False


def _prepare(name: str, module: Any, args: list[str]) -> list[str]:
    """Help, the config file and its overrides, --print_config: everything decided before
    absl parses the command's flags. Returns the arguments for absl."""
    from azr_jax import config_files

    if _wants_help(args) or PRINT_CONFIG in args:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... --help | head` ends quietly
    if _wants_help(args):
        print(command_help(name, module))
        raise SystemExit(0)
    print_config = PRINT_CONFIG in args
    args = [a for a in args if a != PRINT_CONFIG]
    try:
        args, config = config_files.prepare_args(args)
    except UsageError as e:
        _fail(name, e, 2)
    if print_config:
        if config is None:
            _fail(name, f"{PRINT_CONFIG} needs --config=FILE", 2)
        source = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
        print(config_files.format_config(config, source=source, overridden=config_files.override_paths(args)))
        raise SystemExit(0)
    return args


def _run(name: str, module: Any, rest: list[str]) -> None:
    """The command's main, with its errors as one line each."""
    _enable_compilation_cache()
    # Our own loggers at INFO; orbax/absl chatter only from WARNING up.
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jax").setLevel(logging.WARNING)
    traceback = bool(os.environ.get("AZR_JAX_TRACEBACK"))
    try:
        module.main(rest)
    except KeyboardInterrupt:
        _fail(name, "interrupted", 130)
    except UsageError as e:
        if traceback:
            raise
        _fail(name, e, 2)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        if traceback:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"azr-jax {name}: error: {msg}\n(set AZR_JAX_TRACEBACK=1 for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        raise SystemExit(0 if len(argv) >= 2 else 2)
    name = argv[1]
    if name not in COMMANDS:
        print(f"azr-jax: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"azr_jax.commands.{name}")
    from absl import app, flags

    args = _prepare(name, module, argv[2:])
    prog = f"azr-jax {name}"
    sys.argv = [prog] + args  # ml_collections reads the --config.* overrides from sys.argv

    def parse(flag_argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(flag_argv)
        except flags.Error as e:
            _fail(name, _flag_error(name, e), 2)

    app.run(lambda rest: _run(name, module, rest), argv=[prog] + args, flags_parser=parse)


if __name__ == "__main__":
    main()

"""`azr-jax <command> [flags]`: dispatch to one subcommand module (each owns its absl flags)."""
from __future__ import annotations

import importlib
import logging
import os
import sys

COMMANDS = {
    "train": "Run Absolute Zero self-play (resumes from --workdir's latest checkpoint).",
    "eval": "Greedy pass@1 on code/math benchmarks (sandboxed execution of code answers).",
    "convert": "Convert checkpoints: HF dir / GGUF -> orbax, orbax -> HF dir.",
    "plot": "Draw training curves (PNG) from a run dir's metrics.jsonl (and eval.jsonl).",
    "compile": "Compile a config's step for a TPU slice here (no TPU): per-chip memory, FLOPs.",
}


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
    from absl import app

    def run(args: list[str]) -> None:
        _enable_compilation_cache()
        # Our own loggers at INFO; orbax/absl chatter only from WARNING up.
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("absl").setLevel(logging.WARNING)
        logging.getLogger("jax").setLevel(logging.WARNING)
        try:
            module.main(args)
        except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
            if os.environ.get("AZR_JAX_TRACEBACK"):
                raise
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            print(f"azr-jax {name}: error: {msg}\n(set AZR_JAX_TRACEBACK=1 for the traceback)",
                  file=sys.stderr)
            raise SystemExit(1)

    app.run(run, argv=[f"azr-jax {name}"] + argv[2:])


if __name__ == "__main__":
    main()

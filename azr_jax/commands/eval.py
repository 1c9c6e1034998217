"""azr-jax eval --config=configs/X.py [--checkpoint=PATH] [--benchmarks=a,b] [--data_dir=DIR] [--out=DIR]

Greedy pass@1 on the benchmarks of `config.eval` (R1 template, `<answer>` extraction, code run
in the sandbox farm). PATH: a training run directory (latest checkpoint), an orbax checkpoint,
or an HF model directory; without it, the config's own model (e.g. the base model).
"""
from __future__ import annotations

import json
import logging
import os

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:topology]).",
                                lock_config=True)
flags.DEFINE_string("checkpoint", None, "Run dir, orbax checkpoint dir or HF dir to evaluate.")
flags.DEFINE_string("out", None, "Where per-problem JSONL and the summary go "
                                 "(default: <run dir>/eval, or ./eval).")
flags.DEFINE_list("benchmarks", None, "Comma-separated benchmark names (overrides "
                  "config.eval.benchmarks), e.g. humaneval_plus,mbpp_plus,livecodebench,aime24.")
flags.DEFINE_string("data_dir", None, "Directory of the benchmark files (overrides "
                    "config.eval.data_dir; see azr_jax/eval/README.md).")
flags.mark_flags_as_required(["config"])

log = logging.getLogger("azr_jax.eval")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    from sharding import distributed
    distributed.initialize()

    import jax
    from transformers import AutoTokenizer

    from azr_jax.azr.execution import TaskExecutor
    from azr_jax.azr.run import load_model, selfplay_config
    from azr_jax.azr.sampler_policy import build_policy
    from azr_jax.convert import TOKENIZER_SUBDIR, load_orbax_params
    from azr_jax.eval.runner import evaluate, scores, write_results
    from azr_jax.eval.sources import load_problems, resolve_checkpoint
    from azr_jax.hf.assets import resolve_model_path
    from azr_jax.hf.load import load_hf
    from azr_jax.metrics import SamplesWriter
    from azr_jax.model import api
    from azr_jax.sampling.config import SamplingParams
    from azr_jax.sandbox import SandboxFarm
    from sharding.mesh import mesh_from_config
    from sharding.params import shard_params
    from sharding.rules import ShardingRules

    c = FLAGS.config
    if FLAGS.benchmarks:
        c.eval.benchmarks = tuple(FLAGS.benchmarks)
    if FLAGS.data_dir:
        c.eval.data_dir = FLAGS.data_dir
    problems = load_problems(c.eval)
    rules = ShardingRules(mesh_from_config(c.mesh))
    step, run_dir = None, None
    if FLAGS.checkpoint:
        kind, path = resolve_checkpoint(FLAGS.checkpoint)
        if kind == "orbax":
            model_cfg, params, step = load_orbax_params(path, dtype=c.model.dtype)
            params = shard_params(params, api.logical_axes(model_cfg), rules)
            tok_dir = os.path.join(path, TOKENIZER_SUBDIR)
            run_dir = os.path.dirname(path) if os.path.basename(path) == "checkpoints" else None
        else:
            model_cfg, params = load_hf(path, rules=rules, dtype=c.model.dtype)
            tok_dir = path
    else:
        tok_dir = resolve_model_path(c.model.tokenizer_path or c.model.hf_path)
        model_cfg, params, _ = load_model(c, rules)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    policy = build_policy(model_cfg, tokenizer, rules, prompt_buckets=c.sampler.prompt_buckets,
                          gen_buckets=c.sampler.gen_buckets, max_batch=c.sampler.max_batch,
                          sampling=SamplingParams(temperature=0.0), template=c.model.template,
                          prompt_cfg=selfplay_config(c).prompt)
    with SandboxFarm() as farm:
        executor = TaskExecutor(farm, process_index=jax.process_index(),
                                process_count=jax.process_count(),
                                allgather=distributed.allgather_json)
        results = evaluate(problems, policy, params, executor,
                           max_new_tokens=c.eval.max_new_tokens, batch_size=c.eval.batch_size)
    summary = scores(results)
    if distributed.is_primary():
        out = FLAGS.out or (os.path.join(run_dir, "eval") if run_dir else "eval")
        path = write_results(out, results, summary, step)
        if run_dir is not None and step is not None:
            with SamplesWriter(run_dir, filename="eval.jsonl", resume_step=step - 1) as w:
                w.write(step, [summary])
        print(json.dumps(summary, indent=2, sort_keys=True))
        print(f"per-problem results: {path}")

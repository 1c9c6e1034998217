"""azr-jax eval --config=configs/X.py [--checkpoint=PATH] [--benchmarks=a,b|paper] [--data_dir=DIR]
    [--limit=N] [--samples=N --temperature=T] [--scoring=strict|official] [--out=DIR]

pass@1 (greedy) or pass@k (`--samples=n` at a temperature) on the benchmarks of `config.eval` (R1
template, `<answer>` extraction, code answers scored in stages on the sandbox farm). PATH: a
training run directory (latest checkpoint), an orbax checkpoint, or an HF model directory; without
it, the config's own model (e.g. the base model). `--benchmarks=paper` runs the paper's code and
math sets found in the data directory and prints CAvg / MAvg / AVG, marking the missing sets.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:topology]).", lock_config=True)
flags.DEFINE_string("checkpoint", None, "Run dir, orbax checkpoint dir or HF dir to evaluate.")
flags.DEFINE_string(
    "out", None, "Where per-answer JSONL and the summary go (default: <run dir>/eval, or ./eval)."
)
flags.DEFINE_list(
    "benchmarks",
    None,
    "Comma-separated benchmark names (overrides "
    "config.eval.benchmarks), e.g. mbpp_plus,cruxeval_o,math500; `paper` = the "
    "paper's 3 code + 6 math sets (missing files are marked, not an error).",
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Directory of the benchmark files (overrides config.eval.data_dir; see azr_jax/eval/README.md).",
)
flags.DEFINE_integer(
    "limit",
    None,
    "Only the first N >= 1 problems of each benchmark (overrides "
    "config.eval.limit; leave it out for all problems).",
)
flags.DEFINE_integer(
    "samples",
    1,
    "Answers per problem: 1 = greedy pass@1; n > 1 samples at "
    "--temperature and reports pass@1..n (unbiased estimator).",
    lower_bound=1,
)
flags.DEFINE_float(
    "temperature",
    None,
    "Sampling temperature (default 0 for --samples=1, else 0.6 as in the paper's pass@k).",
    lower_bound=0.0,
)
flags.DEFINE_float("top_p", None, "Nucleus sampling (default 1 for --samples=1, else 0.95).")
flags.DEFINE_enum(
    "scoring",
    "strict",
    ["strict", "official"],
    "strict: the official verdicts "
    "except where a hack would pass; official: each benchmark's own rules "
    "(azr_jax/eval/README.md lists the differences).",
)
flags.DEFINE_integer(
    "max_new_tokens",
    None,
    "Tokens per answer (default: config.eval."
    "max_new_tokens, capped at the config's largest generation bucket).",
    lower_bound=1,
)
flags.DEFINE_bool("progress", True, "Progress bars (generation, scoring) on stderr.")
flags.mark_flags_as_required(["config"])

log = logging.getLogger("azr_jax.eval")


def _fail(message: str) -> None:
    """One line on stderr, exit status 2 (bad input: nothing was started)."""
    print(f"azr-jax eval: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _generation_budget(c, requested: int | None) -> tuple[int, tuple[int, ...]]:
    """(max_new_tokens, generation buckets): the config's value capped at its largest bucket
    unless --max_new_tokens asks for more (then that length becomes a bucket of its own)."""
    buckets = tuple(c.sampler.gen_buckets)
    if requested is not None:
        return requested, buckets if requested <= buckets[-1] else buckets + (requested,)
    wanted = int(c.eval.max_new_tokens)
    if wanted > buckets[-1]:
        log.info(
            "eval: answers capped at %d tokens (the config's largest generation bucket; "
            "config.eval.max_new_tokens=%d); pass --max_new_tokens to change",
            buckets[-1],
            wanted,
        )
        return buckets[-1], buckets
    return wanted, buckets


def _prompt_buckets(c, longest: int) -> tuple[int, ...]:
    """The config's prompt buckets, plus one that holds the longest benchmark prompt."""
    buckets = tuple(c.sampler.prompt_buckets)
    if longest <= buckets[-1]:
        return buckets
    extra = -(-longest // 128) * 128
    log.info("eval: longest prompt is %d tokens; adding a %d-token prompt bucket", longest, extra)
    return buckets + (extra,)


def _print_summary(summary: dict, args: dict, missing: dict, paper: bool, timing: dict) -> None:
    from azr_jax.eval.benchmarks import paper_table

    limit = f"first {args['limit']} problems of each set" if args["limit"] else "all problems"
    print(
        f"\nscoring {args['scoring']}, {limit}, {args['samples']} answer(s) per problem"
        + ("" if args["samples"] == 1 else f" at temperature {args['temperature']}")
    )
    ks = [f"pass@{k}" for k in range(1, args["samples"] + 1)]
    print(f"  {'benchmark':<16}{'problems':>9}{'correct':>9}  " + "  ".join(f"{k + ' (%)':>11}" for k in ks))
    for name, s in summary.items():
        print(f"  {name:<16}{s['problems']:>9}{s['correct']:>9}  " + "  ".join(f"{s[k]:>11.1f}" for k in ks))
    for name, why in missing.items():
        print(f"  {name:<16}{'-':>9}{'-':>9}  missing: {why}")
    if paper:
        print("\nthe paper's table (pass@1, %):")
        print(paper_table({n: s["pass@1"] for n, s in summary.items()}, missing))
    n = max(1, timing["answers"])
    print(
        f"\ntime: {timing['total_s']:.1f} s for {timing['answers']} answers ({timing['total_s'] / n:.2f} s "
        f"per answer; generation {timing.get('generate_s', 0):.1f} s, then {timing.get('score_s', 0):.1f} s "
        "waiting for the last scores)"
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments: {argv[1:]}")
    c = FLAGS.config
    if FLAGS.benchmarks is not None and not any(b.strip() for b in FLAGS.benchmarks):
        _fail("--benchmarks is empty (give names, e.g. --benchmarks=cruxeval_o,math500, or `paper`)")
    if FLAGS.limit is not None and FLAGS.limit < 1:
        _fail(f"--limit={FLAGS.limit} evaluates nothing: pass N >= 1, or leave --limit out for all problems")
    if FLAGS.benchmarks:
        c.eval.benchmarks = tuple(FLAGS.benchmarks)
    if FLAGS.data_dir is not None:
        c.eval.data_dir = FLAGS.data_dir
    if FLAGS.limit is not None:
        c.eval.limit = FLAGS.limit
    from azr_jax.eval.jsonl import BenchmarkFileError
    from azr_jax.eval.sources import benchmark_names, load_problems, resolve_checkpoint

    names, paper = benchmark_names(c.eval.benchmarks)
    missing: dict[str, str] = {}
    try:
        problems = load_problems(c.eval, missing if paper else None)
        checkpoint = resolve_checkpoint(FLAGS.checkpoint) if FLAGS.checkpoint else None
    except (BenchmarkFileError, FileNotFoundError, ValueError, KeyError) as err:
        _fail(err.args[0] if isinstance(err, KeyError) and err.args else str(err))
    if not problems:
        _fail("no problems to evaluate (every benchmark is missing: check --data_dir)")
    samples = FLAGS.samples
    temperature = FLAGS.temperature if FLAGS.temperature is not None else (0.0 if samples == 1 else 0.6)
    top_p = FLAGS.top_p if FLAGS.top_p is not None else (1.0 if samples == 1 else 0.95)
    if samples > 1 and temperature == 0:
        _fail("--samples > 1 needs --temperature > 0 (greedy answers would all be the same)")
    max_new_tokens, gen_buckets = _generation_budget(c, FLAGS.max_new_tokens)

    from sharding import distributed

    distributed.initialize()

    import jax
    from transformers import AutoTokenizer

    from azr_jax.azr.execution import TaskExecutor
    from azr_jax.azr.run import load_model, selfplay_config
    from azr_jax.azr.sampler_policy import build_policy
    from azr_jax.convert import TOKENIZER_SUBDIR, load_orbax_params
    from azr_jax.eval.runner import evaluate, summarize, write_results
    from azr_jax.hf.assets import resolve_model_path
    from azr_jax.hf.load import load_hf
    from azr_jax.metrics import SamplesWriter
    from azr_jax.model import api
    from azr_jax.sampling.config import SamplingParams
    from azr_jax.sandbox import SandboxFarm
    from sharding.mesh import mesh_from_config
    from sharding.params import shard_params
    from sharding.rules import ShardingRules

    rules = ShardingRules(mesh_from_config(c.mesh))
    step, run_dir = None, None
    if checkpoint is not None:
        kind, path = checkpoint
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
    sampling = SamplingParams(temperature=temperature, top_p=top_p)

    def policy_with(prompt_buckets):
        return build_policy(
            model_cfg,
            tokenizer,
            rules,
            sampler=c.sampler,
            prompt_buckets=prompt_buckets,
            gen_buckets=gen_buckets,
            sampling=sampling,
            template=c.model.template,
            prompt_cfg=selfplay_config(c).prompt,
        )

    policy = policy_with(tuple(c.sampler.prompt_buckets))
    longest = max(len(policy.prompt_ids(p.prompt)) for p in problems)
    buckets = _prompt_buckets(c, longest)
    if buckets != tuple(c.sampler.prompt_buckets):
        policy = policy_with(buckets)
    log.info(
        "eval: %d problems x %d answer(s), up to %d new tokens, scoring %s",
        len(problems),
        samples,
        max_new_tokens,
        FLAGS.scoring,
    )
    start = time.perf_counter()
    timing = {"answers": len(problems) * samples}
    with SandboxFarm() as farm:
        executor = TaskExecutor(
            farm,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            allgather=distributed.allgather_json,
        )
        results = evaluate(
            problems,
            policy,
            params,
            executor,
            max_new_tokens=max_new_tokens,
            batch_size=c.eval.batch_size,
            samples=samples,
            scoring=FLAGS.scoring,
            progress=FLAGS.progress and distributed.is_primary(),
            key=jax.random.PRNGKey(c.seed),
            timing=timing,
        )
    timing["total_s"] = time.perf_counter() - start
    summary = summarize(results)
    if distributed.is_primary():
        from azr_jax.eval.benchmarks import paper_averages

        out = FLAGS.out or (os.path.join(run_dir, "eval") if run_dir else "eval")
        args = {
            "scoring": FLAGS.scoring,
            "limit": int(c.eval.limit),
            "samples": samples,
            "temperature": temperature,
            "top_p": top_p,
            "max_new_tokens": max_new_tokens,
        }
        pass1 = {name: s["pass@1"] for name, s in summary.items()}
        record = {
            "benchmarks": summary,
            "averages": paper_averages(pass1),
            "missing": missing,
            "args": args,
            "seconds": round(timing["total_s"], 2),
            "units": "percent",
        }
        path = write_results(out, results, record, step)
        if run_dir is not None and step is not None:
            with SamplesWriter(run_dir, filename="eval.jsonl", resume_step=step - 1) as w:
                w.write(step, [{**pass1, **paper_averages(pass1)}])
        _print_summary(summary, args, missing, paper, timing)
        print(f"per-answer results: {path}")

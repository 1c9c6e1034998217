"""Compile a config's step for a Cloud TPU slice on any machine, before paying for the slice.

XLA's TPU compiler (libtpu) runs without TPUs: a topology descriptor stands in for the slice's
chips (hosts included), the step's real programs are lowered for abstract inputs placed on a
mesh over those chips, and each compiled program reports its per-chip memory. What is compiled
is what a training step runs at its largest shapes:

- `update/grads`: the gradient of one update batch (the config's micro-batch scanned over the
  step's trained rows at the widest update shape: the prompt limit's bucket + the response
  limit's bucket), `update/apply` (AdamW on the fp32 master weights), `old_logprobs` (when
  `rl.recompute_old_logprobs`);
- `sampler/prefill` and `sampler/decode` (the static engine) at the largest prompt and
  generation buckets and `sampler.max_batch` rows; `sampler/continuous` (the engine a call with
  more rows than slots runs) on a queue of 2 x `sampler.max_batch` rows.

FLOPs are counted analytically (`azr_jax.flops`); the step-time lower bound divides them by the
slice's peak bf16 rate (the decode program is also bounded by reading its per-chip arguments,
weights and KV cache, from HBM at every step).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from azr_jax import flops as flops_lib
from azr_jax.hardware import GiB, TpuSlice, parse_slice
from azr_jax.model import api
from azr_jax.model.config import ModelConfig
from sharding.mesh import describe, make_mesh
from sharding.rules import ShardingRules


class LibtpuMissing(RuntimeError):
    pass


# ---------------------------------------------------------------------------- the slice
def slice_devices(tpu: TpuSlice) -> list[jax.Device]:
    """Compile-only devices of every chip of the slice (libtpu's topology descriptor)."""
    if importlib.util.find_spec("libtpu") is None:
        raise LibtpuMissing(
            "compiling for a TPU slice needs libtpu, which is not installed: "
            f'pip install "jax[tpu]=={jax.__version__}" (or the azr-jax [tpu] extra)'
        )
    from sharding.platforms import tpu_attached

    if not tpu_attached():
        # libtpu's runtime start-up asks the machine for its TPU hosts and prints errors when
        # it finds none; tell it this machine is one host without chips. The slice's hosts
        # come from the descriptor below, not from these.
        os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
        os.environ.setdefault("TPU_HOST_BOUNDS", "1,1,1")
        # libtpu locks /tmp/libtpu_lockfile for the process that owns the chips; compiling
        # owns none, so other compiles (a sweep, a test and its CLI subprocess) may run beside.
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    per_host = tuple(tpu.chips_per_host) + (1,) * (3 - len(tpu.chips_per_host))
    topo = topologies.get_topology_desc(
        platform="tpu",
        topology_name=tpu.topology_name,
        chip_config_name=tpu.chip_config,
        chips_per_host_bounds=per_host,
        num_slices=1,
    )
    return list(topo.devices)


def config_slice(c: ml_collections.ConfigDict, override: str | None = None) -> TpuSlice:
    """The TPU slice a config's topology names (or `override`)."""
    name = override or c.topology
    try:
        return parse_slice(name)
    except ValueError:
        if override:
            raise
        raise ValueError(
            f"topology {name!r} is not a TPU slice: compile for one with "
            "configs/<model>.py:<tpu topology> (e.g. v5p-128) or --slice=v5p-16"
        ) from None


# ---------------------------------------------------------------------------- the model
def model_config(c: ml_collections.ConfigDict) -> ModelConfig:
    """The config's model dims without loading weights: its preset, else the HF directory's
    config.json, else `model.random_dims` (vocabulary from the tokenizer when 0)."""
    over = dict(dtype=c.model.dtype, param_dtype=c.model.param_dtype, remat=c.model.remat)
    if c.model.get("preset", ""):
        from azr_jax.model.presets import get_preset

        return get_preset(c.model.preset).replace(**over)
    from azr_jax.hf.assets import resolve_model_path

    if c.model.init == "hf":
        if not c.model.hf_path:
            raise ValueError(
                "the config has neither model.preset nor model.hf_path: nothing says the model's dimensions"
            )
        return ModelConfig.from_hf_dir(resolve_model_path(c.model.hf_path), **over)
    dims = dict(c.model.random_dims)
    if not dims.get("vocab_size"):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(resolve_model_path(c.model.tokenizer_path or c.model.hf_path))
        dims["vocab_size"] = len(tok)
    return ModelConfig(eos_token_id=(), **dims, **over)


def batch_shards(rules: ShardingRules) -> int:
    spec = rules.spec(("batch",))
    axes = spec[0] if len(spec) else ()
    axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
    return math.prod(rules.mesh.shape[a] for a in axes)


# ---------------------------------------------------------------------------- the programs
@dataclasses.dataclass
class Program:
    """One program to compile: `build` returns it compiled (raises if it does not fit)."""

    name: str
    shape: str  # what it was compiled for, in words
    flops: float | None  # model FLOPs of one call, all chips; None: XLA's count (no loops)
    build: Callable[[], Any]
    steps: int = 1  # sequential steps inside one call (decode: tokens), for the HBM bound


def update_programs(c: ml_collections.ConfigDict, cfg: ModelConfig, rules: ShardingRules) -> list[Program]:
    """The update's programs at the widest update shape: every trained row of a step (proposer
    and solver rows of each task type) at the prompt limit's + the response limit's bucket."""
    from azr_jax.azr.batch import bucket_length
    from azr_jax.azr.run import update_configs
    from azr_jax.rl.train_step import TrainBatch, Trainer

    optim, loss, step_cfg, _ = update_configs(c)
    trainer = Trainer(cfg, rules=rules, optim=optim, loss=loss, step_cfg=step_cfg)
    mb = step_cfg.micro_batch_size
    multiple = mb * batch_shards(rules) // math.gcd(mb, batch_shards(rules))
    rows = len(c.azr.task_types) * c.azr.batch_size * (2 if c.azr.train_proposer else 1)
    rows = -(-rows // multiple) * multiple
    prompt = bucket_length(c.azr.max_prompt_tokens, 32)
    width = prompt + bucket_length(c.azr.max_response_tokens, 32)
    host = rules.replicated()  # what the trainer is given: host arrays, every chip a copy
    sds = lambda dtype: jax.ShapeDtypeStruct((rows, width), dtype, sharding=host)
    batch = TrainBatch(sds(jnp.int32), sds(jnp.int32), sds(jnp.int32), sds(jnp.float32), sds(jnp.float32))
    lowered = trainer.lower(api.abstract_params(cfg), batch, start=prompt)
    shape = f"{rows} x {width} (mb {mb})"
    out = [
        Program(
            "update/grads",
            shape,
            flops_lib.train_flops(cfg, rows, width, width - prompt),
            lowered["update/grads"].compile,
        ),
        Program("update/apply", "params", None, lowered["update/apply"].compile),
    ]
    if c.rl.recompute_old_logprobs:
        out.append(
            Program(
                "old_logprobs",
                shape,
                flops_lib.forward_flops(cfg, rows, width, width - prompt),
                lowered["old_logprobs"].compile,
            )
        )
    return out


def sampler_programs(c: ml_collections.ConfigDict, cfg: ModelConfig, rules: ShardingRules) -> list[Program]:
    """The sampler's programs as a run on a TPU plans them (`sampling.plan.make_plan`), lowered
    by the sampler's own `sampling.programs.lower_programs`: the static engine's prefill and
    decode at `max_batch` rows, every row its own prompt (the largest dense cache), and the
    continuous engine a call with more rows than slots runs (a queue of 2 x `max_batch` rows,
    `azr.learnability_samples` rows per prompt, as the learnability rollouts)."""
    from azr_jax.sampling.config import SamplingParams, sampler_config
    from azr_jax.sampling.ops import SamplingMode
    from azr_jax.sampling.plan import make_plan
    from azr_jax.sampling.programs import lower_programs
    from azr_jax.sampling.sampler import _batch_multiple

    s = c.sampler
    config = sampler_config(s)
    multiple = _batch_multiple(rules)
    mode = SamplingMode.of(SamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k))
    P, N = s.prompt_buckets[-1], s.gen_buckets[-1]
    params = _placed_params(cfg, rules)
    static = make_plan("tpu", s.max_batch, config, multiple, engine="static")
    queue = 2 * s.max_batch
    cont = make_plan("tpu", queue, config, multiple, engine="continuous")
    group = max(1, min(c.azr.get("learnability_samples", 1), queue))
    B = static.slots

    @functools.cache
    def lowered(engine: str) -> dict[str, Any]:
        """Every program of one engine, lowered once (the static decode takes the prefill's output)."""
        plan, rows, g = (cont, queue, group) if engine == "continuous" else (static, B, 1)
        return lower_programs(
            cfg, plan, rows=rows, prompt_len=P, gen_len=N, rules=rules, params=params, mode=mode, group=g
        )

    def build(engine: str, name: str) -> Callable[[], Any]:
        return lambda: lowered(engine)[name].compile()

    shape = f"{B} x ({P} + {N})"
    return [
        Program("sampler/prefill", shape, flops_lib.forward_flops(cfg, B, P, 1), build("static", "prefill")),
        Program(
            "sampler/decode",
            shape,
            flops_lib.decode_flops(cfg, B, P, N - 1),
            build("static", "decode"),
            steps=N - 1,
        ),
        # every row decodes up to N - 1 tokens on `slots` slots: queue / slots rounds of steps
        Program(
            "sampler/continuous",
            f"{queue} rows ({group} per prompt) on {cont.slots} slots, ({P} + {N})",
            flops_lib.forward_flops(cfg, -(-queue // group), P, 1)
            + flops_lib.decode_flops(cfg, queue, P, N - 1),
            build("continuous", "continuous"),
            steps=-(-queue // cont.slots) * (N - 1),
        ),
    ]


def _placed_params(cfg: ModelConfig, rules: ShardingRules) -> Any:
    from sharding.params import tree_shardings

    shapes = api.abstract_params(cfg)
    return jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        shapes,
        tree_shardings(shapes, api.logical_axes(cfg), rules),
    )


# ---------------------------------------------------------------------------- compiling
@dataclasses.dataclass
class Result:
    """Per-chip memory of one compiled program (bytes), or why it did not compile."""

    name: str
    shape: str
    flops: float
    seconds: float  # lowering + compilation
    steps: int = 1
    arguments: int = 0
    temporaries: int = 0
    outputs: int = 0
    aliased: int = 0  # outputs written over donated arguments (counted once)
    code: int = 0
    error: str = ""
    needed: int = 0  # bytes the compiler reported needing when it ran out of HBM
    compiled: Any = dataclasses.field(default=None, repr=False)  # jax.stages.Compiled

    @property
    def total(self) -> int:
        if self.error:
            return self.needed
        return self.arguments + self.temporaries + self.outputs - self.aliased + self.code


# How libtpu words running out of HBM: "Used 20.00G of 15.75G hbm" (a program's buffers) or "the
# total memory required for HLO temporaries (20.00G) exceeds available HBM (15.75G)".
_OOM = re.compile(
    r"Used ([\d.]+)([KMGT]) of [\d.]+[KMGT] hbm"
    r"|required for [^(]*\(([\d.]+)([KMGT])\) exceeds available HBM"
)


def _compile(p: Program, chips: int) -> Result:
    t = time.perf_counter()
    try:
        compiled = p.build()
    except Exception as e:  # XLA reports running out of HBM as a compile error
        msg = str(e)
        m = _OOM.search(msg)
        scale = dict(K=1024, M=1024**2, G=GiB, T=1024 * GiB)
        size, unit = (m.group(1, 2) if m.group(1) else m.group(3, 4)) if m else ("0", "K")
        needed = int(float(size) * scale[unit])
        first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
        return Result(
            p.name,
            p.shape,
            p.flops or 0.0,
            time.perf_counter() - t,
            p.steps,
            error=first[:300],
            needed=needed,
        )
    mem = compiled.memory_analysis()
    flops = p.flops
    if flops is None:  # XLA's count is per chip
        flops = float((compiled.cost_analysis() or {}).get("flops", 0.0)) * chips
    return Result(
        p.name,
        p.shape,
        flops,
        time.perf_counter() - t,
        p.steps,
        arguments=mem.argument_size_in_bytes,
        temporaries=mem.temp_size_in_bytes,
        outputs=mem.output_size_in_bytes,
        aliased=mem.alias_size_in_bytes,
        code=mem.generated_code_size_in_bytes,
        compiled=compiled,
    )


@dataclasses.dataclass
class Report:
    slice: TpuSlice
    mesh: str
    model: ModelConfig
    results: list[Result]
    notes: list[str]
    micro_batch: int = 0
    max_batch: int = 0

    def fits(self) -> bool:
        hbm = self.slice.chip.hbm_bytes
        return all(not r.error and r.total <= hbm for r in self.results)

    def misfits(self) -> str:
        """One line naming the programs that do not fit (or did not compile), with numbers."""
        hbm = self.slice.chip.hbm_bytes
        bad = [
            f"{r.name} ({r.total / GiB:.1f} GiB)" if r.total else f"{r.name} ({r.error})"
            for r in self.results
            if r.error or r.total > hbm
        ]
        return (
            f"{len(bad)} of {len(self.results)} programs do not fit in the "
            f"{hbm / GiB:.0f} GiB of HBM of a {self.slice.chip.name} chip: " + ", ".join(bad)
        )

    def lower_bound(self, r: Result) -> float:
        """Seconds per call at the slice's peak bf16 rate (decode: or reading its arguments from
        HBM at every step, whichever is longer)."""
        chip = self.slice.chip
        compute = r.flops / (self.slice.chips * chip.bf16_flops)
        memory = r.steps * r.arguments / chip.hbm_bandwidth if r.steps > 1 else 0.0
        return max(compute, memory)


def compile_config(
    c: ml_collections.ConfigDict,
    tpu: TpuSlice,
    programs: tuple[str, ...] = (),
    progress: Callable[[str], None] = print,
) -> Report:
    """Compile `programs` (default: all) of config `c`'s step for every chip of `tpu`."""
    cfg = model_config(c)
    devices = slice_devices(tpu)
    mesh = make_mesh(int(c.mesh.data), int(c.mesh.fsdp), int(c.mesh.tensor), devices=devices)
    rules = ShardingRules(mesh)
    notes = []
    shards, mb = batch_shards(rules), int(c.train.micro_batch_size)
    if mb % shards:
        notes.append(
            f"warning: micro_batch_size {mb} is not a multiple of the {shards} batch "
            "shards (data x fsdp): each micro-batch is split fewer ways and the rest of "
            "the chips repeat its work"
        )
    todo = update_programs(c, cfg, rules) + sampler_programs(c, cfg, rules)
    unknown = set(programs) - {p.name for p in todo}
    if unknown:
        raise ValueError(f"unknown program(s) {sorted(unknown)}; known: {[p.name for p in todo]}")
    results = []
    for p in todo:
        if programs and p.name not in programs:
            continue
        progress(f"compiling {p.name} [{p.shape}] for {tpu.name} ...")
        results.append(_compile(p, tpu.chips))
    return Report(tpu, describe(mesh), cfg, results, notes, mb, int(c.sampler.max_batch))


# ---------------------------------------------------------------------------- the table
def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _gib(n: float) -> str:
    return f"{n / GiB:.2f}"


def format_report(report: Report, config_name: str = "") -> str:
    tpu, chip = report.slice, report.slice.chip
    head = (
        f"{config_name or 'config'} on {tpu.name} ({tpu.topology_name}): {tpu.chips} chips, "
        f"{tpu.hosts} host{'s' if tpu.hosts > 1 else ''}, {chip.name} "
        f"{chip.hbm_bytes / GiB:.0f} GiB HBM and {chip.bf16_flops / 1e12:.0f} TFLOP/s bf16 "
        f"per chip; mesh {report.mesh}; model {_count(report.model.num_params())} params, "
        f"{report.model.dtype} compute, {report.model.param_dtype} weights, remat "
        f"{report.model.remat}"
    )
    cols = (
        "program",
        "shape",
        "args",
        "temp",
        "out",
        "code",
        "total GiB",
        "HBM %",
        "TFLOP",
        "time >= s",
        "compile s",
    )
    rows = []
    for r in report.results:
        if r.error:
            need = f"{_gib(r.total)}+" if r.needed else "?"
            rows.append(
                (
                    r.name,
                    r.shape,
                    "-",
                    "-",
                    "-",
                    "-",
                    need,
                    f"{100 * r.total / chip.hbm_bytes:.0f}" if r.needed else "?",
                    f"{r.flops / 1e12:.1f}",
                    "-",
                    f"{r.seconds:.0f}",
                )
            )
            continue
        rows.append(
            (
                r.name,
                r.shape,
                _gib(r.arguments),
                _gib(r.temporaries),
                _gib(r.outputs - r.aliased),
                _gib(r.code),
                _gib(r.total),
                f"{100 * r.total / chip.hbm_bytes:.0f}",
                f"{r.flops / 1e12:.1f}",
                f"{report.lower_bound(r):.3g}",
                f"{r.seconds:.0f}",
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    line = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
    out = [head, "", line(cols)] + [line(r) for r in rows]
    out += [""] + report.notes if report.notes else []
    for r in report.results:
        if r.error:
            out.append(f"{r.name}: {r.error}")
    out.append(
        "per chip; out = outputs not aliased to donated inputs; TFLOP = model FLOPs of "
        "one call on the whole slice"
    )
    return "\n".join(out)


def report_json(report: Report) -> dict[str, Any]:
    return {
        "slice": report.slice.name,
        "topology": report.slice.topology_name,
        "chips": report.slice.chips,
        "hosts": report.slice.hosts,
        "mesh": report.mesh,
        "micro_batch_size": report.micro_batch,
        "max_batch": report.max_batch,
        "hbm_bytes": report.slice.chip.hbm_bytes,
        "fits": report.fits(),
        "programs": [
            dict(
                {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "compiled"},
                total=r.total,
                lower_bound_s=report.lower_bound(r) if not r.error else None,
            )
            for r in report.results
        ],
    }

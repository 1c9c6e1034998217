"""`azr-jax compile`: the step's programs compiled by libtpu for TPU slices on this CPU.

The references are libtpu itself (its topology descriptors count a slice's chips and hosts; its
compiler refuses a program larger than a chip's HBM) and hand-derived shard shapes from the
table in sharding/rules.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The `test` extra installs libtpu (jax[tpu]) on Linux x86_64, so CI compiles for real; elsewhere
# (or an environment set up before the extra had it) this module skips.
pytest.importorskip("libtpu", reason="libtpu is not installed: pip install -e '.[test]' (jax[tpu])")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from azr_jax import aot  # noqa: E402
from azr_jax.hardware import GiB, parse_slice  # noqa: E402
from sharding.mesh import make_mesh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name,shape,hosts,kind",
    [
        ("v4-8", (2, 2, 1), 1, "TPU v4"),
        ("v4-32", (2, 2, 4), 4, "TPU v4"),
        ("v5e-8", (2, 4), 1, "TPU v5 lite"),
        ("v5e-64", (8, 8), 16, "TPU v5 lite"),
        ("v5p-128", (4, 4, 4), 16, "TPU v5"),
        ("v6e-8", (2, 4), 1, "TPU v6 lite"),
        ("v6e-256", (16, 16), 64, "TPU v6 lite"),
    ],
)
def test_slices_match_libtpu_topologies(name, shape, hosts, kind):
    tpu = parse_slice(name)
    assert (tpu.shape, tpu.hosts) == (shape, hosts)
    devices = aot.slice_devices(tpu)
    assert len(devices) == tpu.chips  # one device per chip (megacore on v4/v5p)
    assert len({d.process_index for d in devices}) == hosts
    assert {d.device_kind for d in devices} == {kind}
    assert tpu.chip.hbm_bytes > 0


@pytest.mark.parametrize("name", ["v7-8", "v5p-6", "v5e-3", "tpu", "v5p-128x"])
def test_unknown_slices_are_one_line_errors(name):
    with pytest.raises(ValueError, match="unknown TPU slice"):
        parse_slice(name)


def test_missing_libtpu_says_how_to_install(monkeypatch):
    monkeypatch.setattr(aot.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(aot.LibtpuMissing, match=r'pip install "jax\[tpu\]=='):
        aot.slice_devices(parse_slice("v5e-4"))


def _debug_config():
    sys.path.insert(0, str(REPO))
    from configs import debug_random

    c = debug_random.get_config("cpu")
    c.model.dtype = "bfloat16"
    c.model.random_dims.vocab_size = 512
    c.mesh.update(dict(data=1, fsdp=4, tensor=2))
    c.train.micro_batch_size = 4
    c.azr.max_prompt_tokens = 96
    c.azr.max_response_tokens = 24
    c.sampler.prompt_buckets = (64, 128)
    c.sampler.gen_buckets = (16, 32)
    c.sampler.max_batch = 8
    return c


@pytest.fixture(scope="module")
def debug_report():
    """The debug model's step on a two-host v5p slice (8 chips: fsdp 4 x tensor 2)."""
    return aot.compile_config(_debug_config(), parse_slice("v5p-16"), progress=lambda m: None)


@pytest.mark.slow  # its fixture compiles the six programs (~45 s)
def test_debug_step_compiles_with_memory_stats(debug_report):
    names = [r.name for r in debug_report.results]
    assert names == [
        "update/grads",
        "update/apply",
        "old_logprobs",
        "sampler/prefill",
        "sampler/decode",
        "sampler/continuous",
    ]
    for r in debug_report.results:
        assert not r.error, (r.name, r.error)
        assert r.arguments > 0 and r.code > 0 and r.outputs > 0, r
        assert 0 < r.total < 95 * GiB
        assert r.flops > 0 and debug_report.lower_bound(r) > 0
    # widest update: 2 types x 2 roles x batch 2 = 12 rows -> multiple of lcm(mb 4, 4 shards);
    # width = bucket(96) + bucket(24) = 96 + 32
    assert debug_report.results[0].shape == "12 x 128 (mb 4)"
    assert debug_report.fits()
    table = aot.format_report(debug_report, "debug")
    assert "v5p-16 (v5p:2x2x2): 8 chips, 2 hosts" in table
    assert "fsdp=4 x tensor=2" in table


@pytest.mark.slow  # shares the compile above
def test_params_sharded_as_the_rules_say(debug_report):
    """Shard shapes of the compiled update's parameter inputs, derived by hand from
    sharding/rules.py: embed -> fsdp (4), vocab/heads/kv_heads/mlp -> tensor (2)."""
    grads = debug_report.results[0].compiled
    params = grads.input_shardings[0][0]
    d = 64  # hidden; 4 heads / 2 kv heads of 16; mlp 128; vocab 512; 2 layers
    want = {
        ("embed",): ((512, d), (256, 16)),
        ("layers", "q_proj"): ((2, d, 4, 16), (2, 16, 2, 16)),
        ("layers", "k_proj"): ((2, d, 2, 16), (2, 16, 1, 16)),
        ("layers", "gate_proj"): ((2, d, 128), (2, 16, 64)),
        ("layers", "down_proj"): ((2, 128, d), (2, 64, 16)),
        ("layers", "attn_norm"): ((2, d), (2, d)),
    }
    for path, (shape, shard) in want.items():
        node = params
        for k in path:
            node = node[k]
        assert node.shard_shape(shape) == shard, (path, node)
    # the same layout goes to the sampler's programs
    prefill = debug_report.results[3].compiled
    assert prefill.input_shardings[0][0]["embed"].shard_shape((512, d)) == (256, 16)


def test_a_program_larger_than_hbm_reports_what_it_needs():
    """libtpu refuses a program that outgrows a chip: the result carries its numbers and the
    report does not fit."""
    tpu = parse_slice("v5e-4")  # 16 GiB per chip
    mesh = make_mesh(1, 4, 1, devices=aot.slice_devices(tpu))
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    n = 20 * GiB // 4  # 20 GiB of fp32 on every chip
    build = jax.jit(lambda: jnp.ones((n,), jnp.float32), out_shardings=rep).lower().compile
    r = aot._compile(aot.Program("too_big", "20 GiB", 1.0, build), tpu.chips)
    assert r.error and r.needed >= 19 * GiB, r
    report = aot.Report(tpu, "fsdp=4", aot.model_config(_debug_config()), [r], [])
    assert not report.fits()
    assert "too_big" in aot.format_report(report)
    assert "1 of 1 programs do not fit in the 16 GiB of HBM of a TPU v5e chip: too_big (" in report.misfits()


@pytest.mark.slow  # ~11 s: a TPU compile through the CLI
def test_cli_compiles_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), AZR_JAX_XLA_CACHE="0")
    cmd = [
        sys.executable,
        "-m",
        "azr_jax.cli",
        "compile",
        "--config=configs/debug_random.py",
        "--slice=v6e-8",
        "--programs=update/apply,sampler/prefill",
        f"--json={out}",
        "--config.model.random_dims.vocab_size=512",
        "--config.model.dtype=bfloat16",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "v6e-8 (v6e:2x4): 8 chips, 1 host" in proc.stdout
    data = json.loads(out.read_text())
    assert data["fits"] and [p["name"] for p in data["programs"]] == ["update/apply", "sampler/prefill"]
    assert all(p["total"] > 0 for p in data["programs"])
    bad = subprocess.run(
        cmd[:5] + ["--slice=v9-8"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert bad.returncode != 0 and "unknown TPU slice 'v9-8'" in bad.stderr


def test_libtpu_without_tpu_keeps_jax_quietly_on_cpu():
    """With libtpu installed and no accelerator, importing azr_jax keeps JAX from starting a TPU
    runtime (which fails after printing errors and loading libtpu.so); an explicit
    JAX_PLATFORMS is left alone."""
    from sharding.platforms import _GPU_DEVICE_NODES, tpu_attached

    if tpu_attached() or any(os.path.exists(p) for p in _GPU_DEVICE_NODES):
        pytest.skip("an accelerator is attached")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
    env["PYTHONPATH"] = str(REPO)
    code = (
        "import os, azr_jax, jax, sys; d = jax.devices(); "
        "print(d[0].platform, os.environ['JAX_PLATFORMS'], 'libtpu' in str(sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["cpu", "cpu", "False"]
    assert "TPU" not in proc.stderr, proc.stderr
    env["JAX_PLATFORMS"] = "cpu,tpu"  # the user's choice wins (and fails loudly here)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "tpu" in proc.stderr.lower()


def test_every_tpu_topology_is_a_slice_its_mesh_fills():
    """Each TPU topology of the configs names a slice whose chips its mesh uses exactly (on
    v4/v5p along the torus' axes, no physical axis split), with one micro-batch row per chip of
    the batch split."""
    from azr_jax.defaults import TOPOLOGIES
    from azr_jax.hardware import is_tpu_slice

    tpus = [name for name in TOPOLOGIES if is_tpu_slice(name)]
    assert {"v4-32", "v5e-64", "v5p-128", "v6e-8", "v6e-64"} <= set(tpus)
    for name in tpus:
        t = TOPOLOGIES[name]
        devices = aot.slice_devices(parse_slice(name))
        m = t["mesh"]
        shape = (m["data"], m["fsdp"], m["tensor"])
        mesh = make_mesh(*shape, devices=devices)
        assert mesh.devices.size == len(devices) and set(mesh.devices.flat) == set(devices)
        if name.startswith(("v4", "v5p")):
            jax.make_mesh(shape, ("data", "fsdp", "tensor"), devices=devices)  # raises if split
        assert t["micro_batch_size"] % (m["data"] * m["fsdp"]) == 0, name

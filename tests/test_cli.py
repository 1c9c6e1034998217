"""`azr-jax` as a user meets it: per-command help, --print_config, one-line errors for bad
input (exit 2, nothing left behind), configs from any directory, the embedded model by name.

Commands run as subprocesses from a scratch directory (never the checkout), the way a user
runs them after `pip install`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from azr_jax.cli import COMMANDS
from azr_jax.config_files import field_docs, leaf_paths, load_config
from azr_jax.defaults import base_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py"))


def azr(*args: str, cwd: Path, env: dict | None = None, code: str | None = None, timeout=300):
    """Run `azr-jax ARGS` (or `code`, a -c program) with this checkout on the path."""
    base = {k: v for k, v in os.environ.items() if k != "AZR_JAX_TRACEBACK"}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO), base.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "azr_jax.cli", *args]
    return subprocess.run(
        cmd, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def defined_flags(command: str) -> set[str]:
    """The flags a command module defines, read from its source (not from absl)."""
    tree = ast.parse((REPO / "azr_jax" / "commands" / f"{command}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", "").startswith("DEFINE")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value)
    return names


def one_error_line(proc, command="train") -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"azr-jax {command}: error: ")
    return lines[0]


# ----------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("help_flag", ["--help", "-h"])
def test_help_lists_the_commands_own_flags(command, help_flag, tmp_path):
    proc = azr(command, help_flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"usage: azr-jax {command}")
    flag_lines = out.split("\nflags:\n", 1)[1]
    for name in defined_flags(command):
        assert re.search(rf"--(\[no\])?{name}\b", flag_lines), (name, out)
    for absl_flag in ("logtostderr", "helpfull", "verbosity", "flagfile"):  # nothing buried
        assert absl_flag not in out
    assert ("--print_config" in out) == ("config" in defined_flags(command))


def test_config_fields_all_documented():
    docs = field_docs()
    for path, _ in leaf_paths(base_config()):
        assert docs.get(path), f"config field {path} has no comment in azr_jax/defaults.py"


def test_print_config_from_another_directory(tmp_path):
    proc = azr(
        "train",
        "--config=configs/tiny_cpu.py:v5e-64",
        "--config.total_steps=3",
        "--print_config",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"# config {REPO / 'configs' / 'tiny_cpu.py'}:v5e-64" in out
    assert "\ntotal_steps = 3  (set on the command line; default 500)\n" in out
    assert "\nmodel.hf_path = 'embedded:smollm2-135m'  (default '')\n" in out
    assert "\ntopology = 'v5e-64'" in out
    tensor = load_config(f"{REPO / 'configs' / 'tiny_cpu.py'}:v5e-64").mesh.tensor
    assert tensor != 1 and f"\nmesh.tensor = {tensor}  (default 1)\n" in out  # the topology's mesh
    lines = out.splitlines()
    docs = field_docs()
    for path, _ in leaf_paths(base_config()):
        (i,) = [k for k, ln in enumerate(lines) if ln.startswith(f"{path} = ")]
        assert lines[i + 1] == f"    {docs[path]}"  # each field's meaning under its value


def test_every_shipped_config_loads_by_path_or_name(tmp_path):
    for name in CONFIGS:
        for spec in (f"configs/{name}.py", name):
            proc = azr("train", f"--config={spec}", "--print_config", cwd=tmp_path)
            assert proc.returncode == 0 and "# config " in proc.stdout, (spec, proc.stderr)


# ----------------------------------------------------------------------------- bad input
BAD_INPUTS = {
    "config file": (["--config=configs/nope.py"], "config file 'configs/nope.py' not found"),
    "override typo": (
        ["--config=configs/tiny_cpu.py", "--config.sampler.temprature=1"],
        "did you mean --config.sampler.temperature?",
    ),
    "field elsewhere": (
        ["--config=configs/tiny_cpu.py", "--config.rl.learning_rate=1e-6"],
        "did you mean --config.optim.learning_rate?",
    ),
    "topology": (["--config=configs/qwen2_5_coder_7b.py:9xH100"], "unknown topology '9xH100'"),
    "value": (
        ["--config=configs/tiny_cpu.py", "--config.total_steps=abc"],
        "--config.total_steps=abc: invalid literal for int()",
    ),
    "hf_path empty": (
        ["--config=configs/qwen2_5_coder_7b.py:cpu"],
        "config.model.hf_path is empty: pass --config.model.hf_path=DIR",
    ),
    "hf_path missing": (
        ["--config=configs/qwen2_5_coder_7b.py:cpu", "--config.model.hf_path=/no/such/model"],
        "no such directory",
    ),
    "unknown flag": (["--config=configs/tiny_cpu.py", "--bogus=1"], "unknown flag --bogus"),
    "resume without checkpoint": (
        ["--config=configs/debug_random.py", "--resume"],
        "--resume: no checkpoint in",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path):
    args, message = BAD_INPUTS[case]
    workdir = tmp_path / "run"
    proc = azr("train", *args, f"--workdir={workdir}", cwd=tmp_path)
    assert message in one_error_line(proc), proc.stderr
    assert not workdir.exists()


def test_missing_workdir_and_not_an_hf_dir(tmp_path):
    line = one_error_line(azr("train", "--config=configs/tiny_cpu.py", cwd=tmp_path))
    assert "missing --workdir" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = azr(
        "train",
        "--config=configs/qwen2_5_coder_7b.py:cpu",
        f"--config.model.hf_path={empty}",
        f"--workdir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert "no config.json there" in one_error_line(proc)


def test_gs_workdir_without_gcsfs_names_the_extra(tmp_path):
    """With the GCS filesystem package unavailable (hidden here whether or not it is
    installed), a gs:// run directory fails at once with the pip command."""
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('gcsfs', 'tensorflow'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from azr_jax.cli import main\n"
        "main(['azr-jax'] + sys.argv[1:])\n"
    )
    proc = azr(
        "train", "--config=configs/debug_random.py", "--workdir=gs://bucket/run", cwd=tmp_path, code=code
    )
    line = one_error_line(proc)
    assert "--workdir=gs://bucket/run: gs:// needs the GCS filesystem package" in line
    assert "pip install 'azr-jax[tpu]'" in line


def test_checkpoint_of_another_model_is_refused(tmp_path):
    """A run directory whose checkpoint has other dims than the config's model."""
    import jax.numpy as jnp

    from azr_jax.checkpoint import Checkpointer
    from azr_jax.model.config import ModelConfig

    workdir = tmp_path / "run"
    cfg = ModelConfig(
        architecture="llama",
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
    )
    with Checkpointer(workdir / "checkpoints", async_save=False) as ck:
        ck.save(3, params={"w": jnp.zeros(2)}, model_config=cfg, state={"step": 3}, force=True)
    before = sorted(p.name for p in workdir.rglob("*"))
    line = one_error_line(
        azr("train", "--config=configs/debug_random.py", f"--workdir={workdir}", cwd=tmp_path)
    )
    assert "holds a checkpoint of another model" in line
    assert "hidden_size=32 (config: 64)" in line and "num_hidden_layers=1 (config: 2)" in line
    assert sorted(p.name for p in workdir.rglob("*")) == before  # nothing added


# ----------------------------------------------------------------------------- packaging
def test_installed_wheel_resolves_configs_from_anywhere(tmp_path):
    """Build the wheel, unpack it as site-packages, and load a config by its README path
    from an unrelated directory: configs/ ships as azr_jax.configs."""
    wheel_dir = tmp_path / "wheel"
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info next to setup.py
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "runs", ".pytest_cache"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = wheel_dir.glob("azr_jax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"azr_jax/configs/{n}.py" for n in CONFIGS} <= set(names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "train", "--config=configs/tiny_cpu.py", "--print_config"],
        cwd=elsewhere,
        env={**env, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"# config {site / 'azr_jax' / 'configs' / 'tiny_cpu.py'}")


# ----------------------------------------------------------------------------- convert
def test_convert_accepts_the_embedded_model_name(tmp_path):
    pytest.importorskip("gguf")
    assets = pytest.importorskip("azr_jax.hf.assets")
    try:
        src = assets.smollm2_hf_dir()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    proc = azr(
        "convert",
        "--src=embedded:smollm2-135m",
        f"--dst={tmp_path / 'hf'}",
        "--to=hf",
        "--dtype=bfloat16",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    want = json.loads((Path(src) / "config.json").read_text())
    assert cfg["hidden_size"] == want["hidden_size"] == 576 and cfg["num_hidden_layers"] == 30
    assert (tmp_path / "hf" / "tokenizer.json").is_file()

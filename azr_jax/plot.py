"""Training-curve PNGs from a run directory's metrics.jsonl (and eval.jsonl when present).

Each figure is a list of panels and each panel a list of *selectors*: a selector ending in "/"
matches every metric key with that prefix (so a new task-role group shows up without code
changes), any other selector matches one key exactly. Panels with no data are left out, and a
figure with no panel left is skipped with a log line. `null` values (a group that was empty that
step) are drawn as gaps; series with few points get markers so isolated points stay visible.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas directly, never
through pyplot, so plotting neither needs a display nor changes the process-wide backend.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from azr_jax.metrics import METRICS_FILE, read_jsonl, read_metrics

logger = logging.getLogger(__name__)

EVAL_FILE = "eval.jsonl"
PLOTS_DIR = "plots"
TASK_COLORS = {"deduction": "tab:blue", "abduction": "tab:orange", "induction": "tab:green"}
MARKER_MAX_POINTS = 60  # series with at most this many points also get point markers
PANEL_SIZE_IN = (9.0, 3.4)  # width, height of one panel in inches
DPI = 110
_ROW_KEYS = ("step", "time")


@dataclasses.dataclass(frozen=True)
class Panel:
    """One axes: the metric selectors it draws and its labels."""

    title: str
    ylabel: str
    selectors: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One PNG file: `<name>.png` with its panels stacked vertically over a shared step axis."""

    name: str
    title: str
    panels: tuple[Panel, ...]


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "rewards",
        "Mean reward per task-role",
        (Panel("reward (dashed: propose, solid: solve, black: role means)", "reward", ("reward/",)),),
    ),
    FigureSpec(
        "accuracy",
        "Solver accuracy and proposer learnability",
        (
            Panel("solver accuracy", "accuracy", ("accuracy/",)),
            Panel("learnability: mean solve rate of valid proposals", "solve rate", ("solve_rate/",)),
        ),
    ),
    FigureSpec(
        "valid_proposals",
        "Proposal validity and format errors",
        (
            Panel("valid-proposal rate", "fraction valid", ("valid/",)),
            Panel("format-error rate", "fraction", ("format_error/",)),
        ),
    ),
    FigureSpec("lengths", "Response lengths", (Panel("mean response tokens", "tokens", ("length/",)),)),
    FigureSpec(
        "training",
        "Policy update",
        (
            Panel("loss (total and policy-gradient part)", "loss", ("train/loss", "train/pg_loss")),
            Panel(
                "gradient norm (before clipping) and update norm",
                "norm",
                ("train/grad_norm", "train/update_norm"),
            ),
            Panel("entropy of the policy on trained tokens", "nats / token", ("train/entropy",)),
            Panel(
                "KL: to the sampling policy (approx.), to the reference",
                "nats / token",
                ("train/approx_kl_old", "train/kl_ref"),
            ),
            Panel("clip fraction (tokens whose ratio was clipped)", "fraction", ("train/clipfrac",)),
        ),
    ),
    FigureSpec(
        "timings",
        "Step timings and throughput",
        (
            Panel("time per phase (total: the whole step)", "seconds", ("time/",)),
            Panel("generation throughput", "tokens / s", ("tokens_per_s",)),
        ),
    ),
    FigureSpec("buffers", "Task buffer sizes", (Panel("buffer size", "tasks", ("buffer/",)),)),
)


def matches(key: str, selector: str) -> bool:
    """Prefix match for selectors ending in '/', exact match otherwise."""
    return key.startswith(selector) if selector.endswith("/") else key == selector


def _as_float(value: Any) -> float:
    """A plottable float; None, non-numbers and bools (not curves) become NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `key` over the rows that carry it; null values become NaN (gaps)."""
    steps, values = [], []
    for row in rows:
        if key in row and isinstance(row.get("step"), int):
            steps.append(row["step"])
            values.append(_as_float(row[key]))
    return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)


def numeric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Keys (first-seen order) that have at least one finite numeric value; never step/time."""
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in _ROW_KEYS and key not in seen and math.isfinite(_as_float(value)):
                seen[key] = None
    return list(seen)


def _label(key: str, selector: str) -> str:
    return key[len(selector) :] if selector.endswith("/") else key


def _style(label: str) -> dict[str, Any]:
    """Task decides the colour and role the line style, so groups read the same on every figure;
    aggregates (role means `*_mean`, the whole-step `total` time) are black."""
    if label == "total":
        return {"color": "black"}
    if label.endswith("_mean"):
        return {"color": "black", "linestyle": "--" if label.startswith("propose") else "-"}
    style: dict[str, Any] = {}
    for task, color in TASK_COLORS.items():
        if task in label:
            style["color"] = color
    if label.startswith("propose"):
        style["linestyle"] = "--"
    return style


def _draw_panel(ax: Any, panel: Panel, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> int:
    """Draw every key of `keys` that a selector of `panel` matches; returns how many were drawn."""
    drawn = 0
    for selector in panel.selectors:
        for key in sorted(k for k in keys if matches(k, selector)):
            steps, values = series(rows, key)
            if not np.isfinite(values).any():
                continue
            label = _label(key, selector)
            marker = "o" if len(steps) <= MARKER_MAX_POINTS else None
            ax.plot(steps, values, label=label, marker=marker, markersize=3, linewidth=1.4, **_style(label))
            drawn += 1
    if drawn:
        ax.set_title(panel.title, fontsize=10)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best", ncol=2 if drawn > 4 else 1)
    return drawn


def _panels_with_data(spec: FigureSpec, keys: Sequence[str]) -> list[Panel]:
    return [p for p in spec.panels if any(matches(k, s) for k in keys for s in p.selectors)]


def build_figure(spec: FigureSpec, rows: Sequence[dict[str, Any]]) -> Any:
    """The matplotlib Figure of `spec` over `rows`, or None when no panel has data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = numeric_keys(rows)
    panels = _panels_with_data(spec, keys)
    if not panels:
        return None
    fig = Figure(figsize=(PANEL_SIZE_IN[0], PANEL_SIZE_IN[1] * len(panels)), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel, rows, keys)
    axes[-1].set_xlabel("step")
    fig.suptitle(spec.title)
    fig.tight_layout()
    return fig


def render_figure(spec: FigureSpec, rows: Sequence[dict[str, Any]], path: str) -> bool:
    """Write `spec` as a PNG at `path`; False (nothing written) when no panel has data."""
    fig = build_figure(spec, rows)
    if fig is None:
        return False
    _save_atomic(fig, path)
    return True


def _save_atomic(fig: Any, path: str) -> None:
    """Save next to `path` then rename, so a viewer never opens a half-written PNG."""
    tmp = f"{path}.tmp.png"
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def eval_figure(rows: Sequence[dict[str, Any]]) -> FigureSpec:
    """Every numeric benchmark column of eval.jsonl on one panel."""
    return FigureSpec(
        "eval", "Evaluation scores", (Panel("benchmark scores", "score", tuple(numeric_keys(rows))),)
    )


def plot_run(run_dir: str, out_dir: str | None = None) -> list[str]:
    """Write the training-curve PNGs of `run_dir` into `out_dir` (default <run_dir>/plots).

    Returns the written paths in FIGURES order (then eval.png). Raises FileNotFoundError when
    the run has no metrics.jsonl and ValueError when it holds no rows.
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not os.path.isfile(os.path.join(run_dir, METRICS_FILE)):
        raise FileNotFoundError(
            f"{run_dir} has no {METRICS_FILE} (is it an azr-jax run "
            "directory, and has the trainer finished a step?)"
        )
    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{os.path.join(run_dir, METRICS_FILE)} has no complete rows yet")
    out_dir = out_dir or os.path.join(run_dir, PLOTS_DIR)
    os.makedirs(out_dir, exist_ok=True)

    jobs: list[tuple[FigureSpec, list[dict[str, Any]]]] = [(spec, rows) for spec in FIGURES]
    eval_path = os.path.join(run_dir, EVAL_FILE)
    if os.path.isfile(eval_path):
        eval_rows = sorted(
            (r for r in read_jsonl(eval_path) if isinstance(r.get("step"), int)), key=lambda r: r["step"]
        )
        jobs.append((eval_figure(eval_rows), eval_rows))
    else:
        logger.info("skipping eval.png: no %s in %s", EVAL_FILE, run_dir)

    written = []
    for spec, spec_rows in jobs:
        path = os.path.join(out_dir, f"{spec.name}.png")
        if render_figure(spec, spec_rows, path):
            written.append(path)
        else:
            logger.info(
                "skipping %s.png: no data for %s",
                spec.name,
                ", ".join(s for p in spec.panels for s in p.selectors) or "any metric",
            )
    return written

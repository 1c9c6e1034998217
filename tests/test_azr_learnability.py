"""Learnability solve rates and proposer rewards on crafted rollouts, against the official code.

For each crafted proposal, G = 8 learnability rollouts are judged twice: the official way (its
answer extraction from the plain response, its PythonExecutor, the per-task accuracy and the
"one_minus" proposer reward of reward_managers.py, transcribed below) and the azr-jax way
(`parsing.learnability_answer`, the sandbox farm's answer checks, `rewards.solve_rate` and
`rewards.proposer_reward`). The rollouts exercise what the official rate ignores or keeps:
the format flag, a missing <answer> (an empty answer), "Assistant:" inside, fallbacks.
"""

import numpy as np
import official_azr
import pytest

from azr_jax.azr.buffers import InductionTask, Triplet
from azr_jax.azr.execution import TaskExecutor
from azr_jax.azr.parsing import ParseConfig, learnability_answer
from azr_jax.azr.rewards import proposer_reward, solve_rate
from azr_jax.azr.tasks import TaskType
from azr_jax.sandbox import FarmConfig, SandboxFarm

F = "```"
OUT = lambda x: f"{F}output\n{x}\n{F}"  # noqa: E731
INP = lambda x: f"{F}input\n{x}\n{F}"  # noqa: E731
PY = lambda x: f"{F}python\n{x}\n{F}"  # noqa: E731

DED = Triplet("def f(x):\n    return x * 2 + 1", "3", "7")
ABD = Triplet("def f(s):\n    return s[::-1]", "'abc'", "'cba'")
IND = InductionTask(
    "def f(a):\n    return a + 1", ("1", "2", "10", "-3"), ("2", "3", "11", "-2"), "Add something."
)

CASES = {
    "ded_mixed": (
        TaskType.DEDUCTION,
        DED,
        [
            f" t</think><answer>{OUT(7)}</answer>",  # right, formatted
            f"<answer>{OUT(7)}</answer>",  # right, no </think>: still counts
            " I believe it is 7",  # no <answer>: the empty answer
            f" t</think><answer>{OUT(8)}</answer>",  # wrong
            f"Assistant: <answer>{OUT(7)}</answer>",  # not cut at Assistant:
            " t</think><answer>The output is 7.</answer>",  # phrase fallback
            f" t</think><answer>{F}output\n 7 \n{F}</answer>",
            " t</think><answer>7</answer>",
        ],
    ),  # the whole answer
    "ded_all_right": (TaskType.DEDUCTION, DED, [f"<answer>{OUT(7)}</answer>"] * 8),
    "abd_half": (
        TaskType.ABDUCTION,
        ABD,
        [
            f" t</think><answer>{INP(repr('abc'))}</answer>",
            f" t</think><answer>{INP(chr(34) + 'abc' + chr(34))}</answer>",
            f" t</think><answer>{INP(repr('cba'))}</answer>",  # wrong
            " no tags",  # f() -> error
            " t</think><answer>call it as input('abc')</answer>",
            f"<answer>{INP(repr('xyz'))}</answer>",  # wrong
            f" t</think><answer>{INP(repr('abc'))}",  # unterminated: still read
            f" t</think><answer>{OUT(repr('abc'))}</answer>",
        ],
    ),  # an output block: whole answer, wrong
    "abd_none": (TaskType.ABDUCTION, ABD, [" nothing"] * 4 + [f"<answer>{INP('1')}</answer>"] * 4),
    "ind_mixed": (
        TaskType.INDUCTION,
        IND,
        [
            f" t</think><answer>{PY('def f(a):' + chr(10) + '    return a + 1')}</answer>",
            f"<answer>{PY('def f(a):' + chr(10) + '    return 1 + a')}</answer>",
            f" t</think><answer>{PY('def f(a):' + chr(10) + '    return a')}</answer>",  # wrong
            " t</think><answer>no code at all</answer>",
            # a trailing input block is taken as the program (official quirk): wrong
            f" t</think><answer>{PY('def f(a):' + chr(10) + '    return a + 1')}{INP('1')}</answer>",
            f" t</think><answer>{F}\ndef f(a):\n    return a + 1\n{F}</answer>",  # untagged fence
            f" t</think><answer>{PY('def f(a):' + chr(10) + '    return a + 1 if a < 5 else a')}</answer>",
            " nothing",
        ],
    ),
}


def official_rate(ex, off, task, entry, rollouts):
    """reward_managers.py's per-proposal accuracy (batched_estimate=False, binary code_f)."""
    accs, cache = [], {}
    for text in rollouts:
        content = off.extract_answer(text, "answer")
        if task is TaskType.INDUCTION:
            parsed, code = off.parse_code_function(content)
            if not parsed:
                accs.append(0.0)
                continue
            per_pair = [
                ex.eval_input_prediction(code=code, gold_output=y, agent_input=x, imports=[])
                for x, y in entry.hidden_pairs
            ]
            acc = np.mean([a for a in per_pair if a is not None]) if per_pair else 0.0
            accs.append(1.0 if acc == 1.0 else 0.0)
            continue
        answer = off.extract_input_output(
            content, return_input=task is TaskType.ABDUCTION, return_output=task is TaskType.DEDUCTION
        )
        if answer in cache:
            accs.append(cache[answer])
            continue
        if task is TaskType.ABDUCTION:
            acc = ex.eval_input_prediction(
                code=entry.program, gold_output=entry.output, agent_input=answer, imports=[]
            )
        else:
            acc = ex.eval_output_prediction(
                code=entry.program, gold_output=entry.output, agent_output=answer, imports=[]
            )
        if acc is not None:
            accs.append(acc)
        cache[answer] = acc
    return sum(accs) / len(accs) if accs else 0.0


def official_reward(rate, formatted=True):
    acc = (1 - rate) if rate > 0 else 0.0  # generation_accuracy_convertion: one_minus
    if not formatted:
        return -1.0
    return acc if acc > 0 else -0.5


@pytest.fixture(scope="module")
def judges():
    off = official_azr.parsing()
    ex = official_azr.executor(timeout_length=10, ast_check=True, max_workers=1)
    with SandboxFarm(FarmConfig(num_workers=2)) as farm:
        yield off, ex, TaskExecutor(farm)
    ex.cleanup()


@pytest.mark.parametrize("case", sorted(CASES))
def test_solve_rate_and_proposer_reward_match_the_official_code(judges, case):
    off, ex, executor = judges
    task, entry, rollouts = CASES[case]
    want = official_rate(ex, off, task, entry, rollouts)
    cfg = ParseConfig()
    outcomes, jobs = [], []
    for text in rollouts:
        a = learnability_answer(text, task, cfg)
        if a.ok:
            jobs.append(executor.answer_job(task, entry, a.text))
        else:
            outcomes.append(False)
    outcomes += [r.verdict for r in executor.submit(jobs).results()]
    rate = solve_rate(outcomes)
    assert rate == pytest.approx(want)
    assert proposer_reward(True, True, rate) == pytest.approx(official_reward(want))
    assert proposer_reward(True, False, rate) == official_reward(want, formatted=False) == -1.0
    assert proposer_reward(False, False, None) == -1.0


def test_the_crafted_rates_span_the_reward_table(judges):
    off, ex, _ = judges
    rates = {c: official_rate(ex, off, *CASES[c]) for c in CASES}
    assert rates["ded_all_right"] == 1.0 and rates["abd_none"] == 0.0
    assert 0 < rates["ded_mixed"] < 1 and 0 < rates["abd_half"] < 1 and 0 < rates["ind_mixed"] < 1
    assert official_reward(1.0) == official_reward(0.0) == -0.5

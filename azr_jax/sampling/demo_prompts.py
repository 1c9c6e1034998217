"""AZR-style task prompts for sampler benchmarks, smoke tests and demos.

Real prompt builders (`azr_jax.azr.prompts`) fed with a few small hand-written programs, so the
benchmark measures the sampler on the prompt shapes and lengths self-play produces (solver
prompts of a few hundred tokens, proposer prompts with reference snippets of a thousand+).
"""

from __future__ import annotations

from azr_jax.azr.buffers import Triplet
from azr_jax.azr.prompts import (
    PromptConfig,
    abduction_solver_prompt,
    deduction_solver_prompt,
    io_proposer_prompt,
)

PROGRAMS: tuple[tuple[str, str, str], ...] = (
    (
        "def f(xs):\n    total = 0\n    for i, x in enumerate(xs):\n        if i % 2:\n"
        "            total -= x\n        else:\n            total += x * 2\n    return total",
        "[3, 1, 4, 1, 5]",
        "22",
    ),
    (
        "def f(s):\n    seen = {}\n    for ch in s:\n        seen[ch] = seen.get(ch, 0) + 1\n"
        "    return sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:2]",
        "'mississippi'",
        "[('i', 4), ('s', 4)]",
    ),
    (
        "def f(n):\n    a, b = 0, 1\n    out = []\n    while len(out) < n:\n        a, b = b, a + b\n"
        "        if a % 2 == 0:\n            out.append(a)\n    return out",
        "4",
        "[2, 8, 34, 144]",
    ),
    (
        "def f(grid, k):\n    rows = [sum(r) for r in grid]\n    cols = [sum(c) for c in zip(*grid)]\n"
        "    best = max(rows + cols)\n    return best * k - min(rows)",
        "[[1, 2], [3, 4]], 3",
        "18",
    ),
)


def azr_task_prompts(n: int, *, proposers: bool = True, cfg: PromptConfig = PromptConfig()) -> list[str]:
    """n task prompts cycling deduction solver, abduction solver and (with `proposers`)
    deduction proposer with 1-3 reference snippets, so lengths differ row to row. Solver
    prompts are what most AZR rollouts are (the 8 learnability samples per proposal)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    triplets = [Triplet(p, i, o) for p, i, o in PROGRAMS]
    out = []
    for k in range(n):
        program, inp, outp = PROGRAMS[k % len(PROGRAMS)]
        kind = k % 3 if proposers else k % 2
        if kind == 0:
            out.append(deduction_solver_prompt(program, inp))
        elif kind == 1:
            out.append(abduction_solver_prompt(program, outp))
        else:
            refs = triplets[: 1 + (k // 3) % 3]
            out.append(io_proposer_prompt("deduction", refs, cfg))
    return out

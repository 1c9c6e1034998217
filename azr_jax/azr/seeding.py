"""Seed buffers written by the frozen base model (paper §3.3.1; azr_method.md §1.3).

Starting from the identity triplet, the base model proposes deduction and abduction tasks in
rounds, with references drawn from the growing seed set; valid, unique (exact JSON equality)
triplets are kept until the target size. Then induction proposals are made for programs of
that set until the same target (after the identity induction task, which the official seed
keeps as its first entry). No parameter is updated. Seed programs are cleaned the way the
official seeding scripts do (comments, docstrings and module-level statements removed), and
with official semantics the proposer's whole response is parsed, as the official seeding does
(it never looks for the <answer> tags).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import numpy as np

from azr_jax.azr.buffers import ZERO_INDUCTION, ZERO_TRIPLET, InductionTask, TaskBuffers, Triplet, entry_key
from azr_jax.azr.selfplay import SelfPlay
from azr_jax.azr.tasks import TaskType

log = logging.getLogger(__name__)


def generate_seed(
    selfplay: SelfPlay,
    params: Any,
    key: jax.Array,
    *,
    target_size: int,
    max_rounds: int = 50,
    seed: int = 0,
    triplets: list[Triplet] | None = None,
) -> TaskBuffers:
    """Build D_ded = D_abd = seed triplets and D_ind = induction seed with the base model
    (given `triplets`, e.g. from a seed file, only the induction seed is generated)."""
    official = selfplay.cfg.semantics == "official"
    parse_cfg = dataclasses.replace(
        selfplay.cfg.parse, remove_comments=True, remove_after_return=True, raw_response=official
    )
    rng = np.random.default_rng([seed, 2**31 - 1])
    given = triplets is not None
    triplets = list(triplets) if given else [ZERO_TRIPLET]
    seen = {entry_key(t) for t in triplets}
    original = selfplay.buffers
    try:
        for rnd in range(0 if given else max_rounds):
            if len(triplets) >= target_size:
                break
            selfplay.buffers = TaskBuffers.from_seed(triplets, [ZERO_INDUCTION], original.cfg)
            for task in (TaskType.ABDUCTION, TaskType.DEDUCTION):
                for p in selfplay.propose(
                    rng,
                    task,
                    params,
                    jax.random.fold_in(key, 2 * rnd + task.index),
                    step=0,
                    parse_cfg=parse_cfg,
                ):
                    if p.entry is not None and entry_key(p.entry) not in seen:
                        seen.add(entry_key(p.entry))
                        triplets.append(p.entry)
            log.info("seeding round %d: %d/%d triplets", rnd + 1, len(triplets), target_size)
        triplets = triplets[:target_size]

        # official: the identity task stays first and induction entries are not de-duplicated
        induction: list[InductionTask] = [ZERO_INDUCTION] if official else []
        seen_ind: set[str] = set()
        selfplay.buffers = TaskBuffers.from_seed(triplets, [ZERO_INDUCTION], original.cfg)
        for rnd in range(max_rounds):
            if len(induction) >= target_size:
                break
            for p in selfplay.propose(
                rng,
                TaskType.INDUCTION,
                params,
                jax.random.fold_in(key, 10_000 + rnd),
                step=0,
                parse_cfg=parse_cfg,
            ):
                if p.entry is not None and (official or entry_key(p.entry) not in seen_ind):
                    seen_ind.add(entry_key(p.entry))
                    induction.append(p.entry)
            log.info("induction seeding round %d: %d/%d", rnd + 1, len(induction), target_size)
    finally:
        selfplay.buffers = original
    if len(triplets) < target_size or len(induction) < target_size:
        log.warning(
            "seeding stopped after %d rounds with %d triplets and %d induction tasks "
            "(target %d); training starts from these",
            max_rounds,
            len(triplets),
            len(induction),
            target_size,
        )
    return TaskBuffers.from_seed(triplets, induction[:target_size], original.cfg)

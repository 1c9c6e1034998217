"""Buffers: entries, seeding, sampling (w/o replacement, recency), caps, state, determinism."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from azr_jax.azr.buffers import (
    ZERO_INDUCTION,
    ZERO_TRIPLET,
    Buffer,
    BufferConfig,
    InductionTask,
    TaskBuffers,
    Triplet,
    dedup_exact,
    load_seed_induction,
    load_seed_triplets,
)

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "azr_seed"


def trip(i: int, step: int = 0) -> Triplet:
    return Triplet(f"def f(x):\n    return x + {i}", str(i), str(2 * i), (), step)


def ind(i: int, n: int = 10, step: int = 0) -> InductionTask:
    return InductionTask(
        f"def f(x):\n    return x * {i}",
        tuple(map(str, range(n))),
        tuple(str(k * i) for k in range(n)),
        f"times {i}",
        (),
        step,
    )


# ---------------------------------------------------------------- entries


def test_induction_given_hidden_split():
    t = ind(3, n=10)
    assert t.num_given == 5
    assert t.given_pairs == [(str(k), str(3 * k)) for k in range(5)]
    assert t.hidden_pairs == [(str(k), str(3 * k)) for k in range(5, 10)]
    odd = ind(2, n=7)
    assert len(odd.given_pairs) == 3 and len(odd.hidden_pairs) == 4


def test_zero_entries_match_the_method_description():
    assert ZERO_TRIPLET.program.startswith("def f(a)") and ZERO_TRIPLET.input == ZERO_TRIPLET.output
    assert ZERO_TRIPLET.imports == ()
    assert len(ZERO_INDUCTION.inputs) == 6 and ZERO_INDUCTION.outputs == ZERO_INDUCTION.inputs
    assert ZERO_INDUCTION.num_given == 3


def test_entry_validation_errors():
    with pytest.raises(ValueError, match="inputs but"):
        InductionTask("def f(x): return x", ("1", "2"), ("1",), "m")
    with pytest.raises(ValueError, match="at least 2"):
        InductionTask("def f(x): return x", ("1",), ("1",), "m")
    with pytest.raises(ValueError):
        Triplet("def f(x): return x", 1, "1")
    with pytest.raises(ValueError):
        Triplet("p", "i", "o", imports="import os")
    with pytest.raises(ValueError):
        Triplet("p", "i", "o", step=1.5)
    with pytest.raises(ValueError):
        InductionTask("p", "12", "12", "m")  # a string is not a list of inputs


def test_json_round_trip_and_dedup():
    a, b = trip(1, step=4), ind(2, step=7)
    assert Triplet.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert InductionTask.from_json(json.loads(json.dumps(b.to_json()))) == b
    items = [trip(1), trip(2), trip(1, step=9), trip(3), trip(2)]
    assert dedup_exact(items) == [trip(1), trip(2), trip(3)]  # step ignored, first kept
    assert dedup_exact([{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 2}]) == [{"a": 1, "b": 2}, {"a": 2}]


# ---------------------------------------------------------------- sampling


def test_sampling_without_replacement():
    buf = Buffer("triplet", entries=[trip(i) for i in range(10)])
    rng = np.random.default_rng(0)
    for _ in range(50):
        got = buf.sample_without_replacement(rng, 6)
        assert len(got) == 6 and len({t.input for t in got}) == 6
    small = Buffer("triplet", entries=[trip(i) for i in range(3)])
    got = small.sample_without_replacement(rng, 6)
    assert sorted(t.input for t in got) == ["0", "1", "2"]
    assert small.sample_without_replacement(rng, 0) == []
    with pytest.raises(ValueError, match="empty"):
        Buffer("triplet").sample_without_replacement(rng, 1)


def test_reference_sampling_is_roughly_uniform():
    buf = Buffer("triplet", entries=[trip(i) for i in range(5)])
    rng = np.random.default_rng(1)
    counts = Counter(t.input for _ in range(2000) for t in buf.sample_without_replacement(rng, 2))
    # each entry expected 2000 * 2 / 5 = 800 times
    assert all(700 < c < 900 for c in counts.values()) and len(counts) == 5


def test_recent_first_window_and_fill():
    entries = (
        [trip(i, step=0) for i in range(20)]
        + [trip(100 + i, step=5) for i in range(3)]
        + [trip(200 + i, step=6) for i in range(2)]
    )
    buf = Buffer("triplet", entries=entries)
    rng = np.random.default_rng(2)
    # window 1 at step 6: steps 5 and 6 are recent (5 entries) -> all of them, then 3 fill draws
    got = buf.sample_recent_first(rng, 8, current_step=6, window=1)
    recent = {"100", "101", "102", "200", "201"}
    assert recent <= {t.input for t in got[:5]} and {t.input for t in got[:5]} == recent
    assert len(got) == 8
    # window 0: only step-6 entries are recent
    assert list(buf.recent_indices(6, 0)) == [23, 24]
    # more recent entries than B: B distinct recent ones, no fill
    got = buf.sample_recent_first(rng, 3, current_step=6, window=1)
    assert len({t.input for t in got}) == 3 and {t.input for t in got} <= recent
    # no recent entry: everything is uniform fill from the whole buffer, without replacement
    # (official random.sample) while the buffer is large enough
    got = buf.sample_recent_first(rng, 4, current_step=100, window=1)
    assert len(got) == 4
    for _ in range(20):
        got = buf.sample_recent_first(rng, 25, current_step=100, window=1)
        assert len({t.input for t in got}) == 25
    with pytest.raises(ValueError):
        buf.sample_recent_first(rng, 4, current_step=6, window=-1)


def test_fill_covers_the_whole_buffer_uniformly():
    buf = Buffer("triplet", entries=[trip(i, step=0) for i in range(4)])
    rng = np.random.default_rng(3)
    counts = Counter(t.input for t in buf.sample_recent_first(rng, 4000, current_step=10, window=1))
    assert set(counts) == {"0", "1", "2", "3"} and all(900 < c < 1100 for c in counts.values())


def test_same_seed_same_samples_and_different_seed_differs():
    def draw(seed):
        bufs = TaskBuffers.from_seed([trip(i) for i in range(30)], [ind(i) for i in range(1, 9)])
        rng = np.random.default_rng(seed)
        refs = bufs.sample_references(rng, "deduction", 4)
        progs = bufs.sample_induction_programs(rng, 5)
        solve = bufs.sample_solver_tasks(rng, "induction", 6, current_step=3)
        return [[t.input for t in r] for r in refs], [p.input for p in progs], [s.message for s in solve]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_induction_programs_come_from_both_io_buffers():
    bufs = TaskBuffers.from_seed([trip(0)], [ind(1)])
    bufs.deduction.add(trip(1, step=1))
    bufs.abduction.add(trip(2, step=1))
    rng = np.random.default_rng(4)
    counts = Counter(p.input for p in bufs.sample_induction_programs(rng, 4000))
    # pool = abd [0, 2] + ded [0, 1]: the seed program is twice as likely
    assert abs(counts["0"] / 4000 - 0.5) < 0.04
    assert abs(counts["1"] / 4000 - 0.25) < 0.04 and abs(counts["2"] / 4000 - 0.25) < 0.04
    with pytest.raises(ValueError, match="induction"):
        bufs.sample_references(rng, "induction", 1)


# ---------------------------------------------------------------- caps and state


def test_cap_keep_first_drops_newest():
    buf = Buffer("triplet", max_size=3, cap_policy="keep_first")
    stored = [buf.add(trip(i, step=i)) for i in range(5)]
    assert stored == [True, True, True, False, False]
    assert [t.input for t in buf] == ["0", "1", "2"] and buf.num_dropped == 2


def test_cap_ring_drops_oldest():
    buf = Buffer("triplet", max_size=3, cap_policy="ring")
    assert buf.extend(trip(i, step=i) for i in range(5)) == 5
    assert [t.input for t in buf] == ["2", "3", "4"] and buf.num_dropped == 2


def test_buffer_type_and_config_errors():
    with pytest.raises(TypeError):
        Buffer("triplet").add(ind(1))
    with pytest.raises(ValueError):
        Buffer("triplet", cap_policy="fifo")
    with pytest.raises(ValueError):
        Buffer("graph")
    with pytest.raises(ValueError):
        BufferConfig(cap_policy="lru")


def test_state_round_trip_through_json_continues_identically():
    cfg = BufferConfig(max_programs=5, cap_policy="ring", num_references=2)
    bufs = TaskBuffers.from_seed([trip(i) for i in range(4)], [ind(i) for i in range(1, 4)], cfg)
    bufs.deduction.extend(trip(10 + i, step=1) for i in range(3))
    state = json.loads(json.dumps(bufs.state_dict()))
    other = TaskBuffers.from_seed([], [], cfg)
    other.load_state_dict(state)
    assert other.sizes() == bufs.sizes() == {"deduction": 5, "abduction": 4, "induction": 3}
    assert other.deduction.entries == bufs.deduction.entries
    assert other.deduction.num_dropped == 2
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert bufs.sample_solver_tasks(r1, "deduction", 4, 2) == other.sample_solver_tasks(r2, "deduction", 4, 2)
    assert Buffer.from_state_dict(state["induction"]).entries == bufs.induction.entries
    with pytest.raises(ValueError, match="'induction' buffer"):
        other.deduction.load_state_dict(state["induction"])
    with pytest.raises(ValueError, match="lacks"):
        other.load_state_dict({"deduction": state["deduction"]})


def test_empty_seed_falls_back_to_zero_entries():
    bufs = TaskBuffers.from_seed([], [])
    assert bufs.deduction.entries == (ZERO_TRIPLET,) and bufs.abduction.entries == (ZERO_TRIPLET,)
    assert bufs.induction.entries == (ZERO_INDUCTION,)


# ---------------------------------------------------------------- seed files


def test_load_seed_file_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"snippet": "def f(a): return a", "input": "1"}\n')
    with pytest.raises(ValueError, match="record 1"):
        load_seed_triplets(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_seed_triplets(bad)
    ok = tmp_path / "ok.jsonl"
    rec = {
        "snippet": "def f(a):\n    return a",
        "inputs": ["1", "2"],
        "outputs": ["1", "2"],
        "message": "m",
        "imports": ["import re"],
        "_input_types": ["int", "int"],
    }
    ok.write_text(json.dumps(rec) + "\n\n")
    (t,) = load_seed_induction(ok)
    assert t.imports == ("import re",) and t.inputs == ("1", "2") and t.step == 0


@pytest.mark.skipif(not SEED_DIR.is_dir(), reason="seed corpora not available")
def test_real_seed_files_load_with_expected_counts():
    paths = {
        name: SEED_DIR / name
        for name in ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl", "7b_coder_code_f_seed_io.jsonl")
    }
    for p in paths.values():
        if not p.exists():
            pytest.skip(f"{p} missing")
    for name in ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl"):
        raw = [json.loads(line) for line in paths[name].read_text().splitlines() if line.strip()]
        triplets = load_seed_triplets(paths[name])
        assert len(triplets) == len(raw) == 256
        assert all(
            t.program == r["snippet"] and t.output == r["output"] and list(t.imports) == r["imports"]
            for t, r in zip(triplets, raw)
        )
        assert len(dedup_exact(triplets)) == 256
    induction = load_seed_induction(paths["7b_coder_code_f_seed_io.jsonl"])
    assert len(induction) == 256
    sizes = Counter(len(t.inputs) for t in induction)
    assert sizes == Counter({10: 255, 6: 1})
    bufs = TaskBuffers.from_seed_files(
        paths["7b_coder_seed_io.jsonl"], paths["7b_coder_code_f_seed_io.jsonl"]
    )
    assert bufs.sizes() == {"deduction": 256, "abduction": 256, "induction": 256}
    assert bufs.deduction.entries == bufs.abduction.entries
    # every seed entry is "recent" at step 1 (added at step 0, window 1)
    assert len(bufs.deduction.recent_indices(1, 1)) == 256 and len(bufs.deduction.recent_indices(2, 1)) == 0

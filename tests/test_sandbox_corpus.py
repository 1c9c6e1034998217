"""The released AZR seed corpora, replayed through the farm with the official semantics.

Every (snippet, input) of the three seed files is run as a proposal (`output_job`) and its stored
output compared with the recorded one: equal text, or equal values read as data (never executed).
The induction file is also replayed as induction checks (the original program as the agent, its
recorded outputs as hidden pairs). The entries that cannot reproduce are listed below with the
reason, and each reason is verified, not assumed:

- "hash_seed": the output depends on set/dict iteration order of strings, i.e. on the interpreter's
  hash seed, which the official run drew at random; our cross-seed check flags these programs.
- "file_write": the program writes a file, which the sandbox forbids by design.
- "missing_module": the program imports a module that is not installed here (cv2).
- "random": the program draws random numbers (secrets); officially its two calls differ and the
  proposal is valid with output '' (what was recorded), but once in a while they coincide.
"""

import json
from pathlib import Path

import pytest

from azr_jax.sandbox import FarmConfig, SandboxFarm, induction_job, output_job, submit_outputs
from azr_jax.sandbox.static_checks import program_source
from azr_jax.sandbox.values import NotData, names_of_program, parse_literal, same_value

SEED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azr_seed"
IO_FILES = ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl")
INDUCTION_FILE = "7b_coder_code_f_seed_io.jsonl"

pytestmark = pytest.mark.skipif(
    not all((SEED_DIR / name).exists() for name in IO_FILES + (INDUCTION_FILE,)),
    reason=f"seed corpora not found in {SEED_DIR} (expected ../shared/data/azr_seed next to the repo)",
)

# (file, line) -> why the recorded output cannot be reproduced.
EXCEPTIONS = {
    ("7b_seed_io.jsonl", 141): "missing_module",  # imports cv2
    ("7b_seed_io.jsonl", 242): "file_write",  # writes transformed_output.txt
    ("7b_coder_seed_io.jsonl", 151): "hash_seed",
    ("7b_coder_seed_io.jsonl", 223): "hash_seed",
    ("7b_coder_seed_io.jsonl", 228): "hash_seed",
    (INDUCTION_FILE, 47): "random",
    (INDUCTION_FILE, 60): "hash_seed",
    (INDUCTION_FILE, 175): "random",
    (INDUCTION_FILE, 201): "random",
    (INDUCTION_FILE, 219): "hash_seed",
    (INDUCTION_FILE, 245): "hash_seed",
}
KEEP = 200


def is_truncated(text: str) -> bool:
    return len(text) == 2 * KEEP + 3 and text[KEEP : KEEP + 3] == "..."


def load_items() -> list[tuple]:
    """(file, line, pair, program, imports, input, recorded output) for every execution."""
    items = []
    for name in IO_FILES + (INDUCTION_FILE,):
        for line, raw in enumerate((SEED_DIR / name).read_text().splitlines()):
            row = json.loads(raw)
            inputs = row["inputs"] if "inputs" in row else [row["input"]]
            outputs = row["outputs"] if "outputs" in row else [row["output"]]
            for pair, (inp, out) in enumerate(zip(inputs, outputs, strict=True)):
                items.append((name, line, pair, row["snippet"], tuple(row["imports"]), inp, out))
    return items


def reproduces(item: tuple, value: str | None) -> bool:
    recorded = item[6]
    if value == recorded:
        return True
    if value is None:
        return False
    names = names_of_program(program_source(item[3], item[4]))
    try:
        return same_value(parse_literal(recorded, names), parse_literal(value, names))
    except NotData:
        return False


@pytest.fixture(scope="module")
def replay():
    items = load_items()
    with SandboxFarm(FarmConfig()) as farm:
        results = farm.run([output_job(it[3], it[5], it[4]) for it in items], timeout=900)
        failing = [
            (it, r) for it, r in zip(items, results, strict=True) if not (r.ok and reproduces(it, r.value))
        ]
        seeds = [it for it, _ in failing if EXCEPTIONS.get((it[0], it[1])) == "hash_seed"]
        crossed = submit_outputs(farm, [output_job(it[3], it[5], it[4]) for it in seeds], cross_seed=True)
        cross = {it[:3]: f.result(timeout=300) for it, f in zip(seeds, crossed, strict=True)}
        rows = [json.loads(r) for r in (SEED_DIR / INDUCTION_FILE).read_text().splitlines()]
        kept = []
        for row in rows:  # hidden pairs whose recorded output is data (truncated or '' ones are not)
            names = names_of_program(program_source(row["snippet"], row["imports"]))
            kept.append([k for k, o in enumerate(row["outputs"]) if _is_data(o, names)])
        jobs = [
            induction_job(row["snippet"], [(row["inputs"][k], row["outputs"][k]) for k in ks], row["imports"])
            for row, ks in zip(rows, kept, strict=True)
            if ks
        ]
        induction = farm.run(jobs, timeout=900)
    yield items, failing, cross, rows, kept, induction


def _is_data(text: str, names) -> bool:
    try:
        parse_literal(text, names)
        return not is_truncated(text)
    except NotData:
        return False


def test_corpus_sizes(replay):
    items, *_ = replay
    assert sum(it[0] == IO_FILES[0] for it in items) == 256
    assert sum(it[0] == IO_FILES[1] for it in items) == 256
    assert (
        sum(it[0] == INDUCTION_FILE for it in items) == 2556
    )  # 255 programs x 10 inputs + the 6-input identity seed


def test_every_failure_is_a_documented_exception(replay):
    items, failing, *_ = replay
    undocumented = sorted({(it[0], it[1], r.status) for it, r in failing if (it[0], it[1]) not in EXCEPTIONS})
    assert undocumented == []
    always = {k for k, v in EXCEPTIONS.items() if v != "random"}
    assert {(it[0], it[1]) for it, _ in failing} >= always  # and every documented one does fail


def test_exception_reasons_hold(replay):
    _, failing, cross, *_ = replay
    flagged = set()
    for it, result in failing:
        reason = EXCEPTIONS[(it[0], it[1])]
        if reason == "file_write":
            assert result.status.startswith("error: PermissionError: [Errno 1] Operation not permitted"), (
                result
            )
        elif reason == "missing_module":
            assert result.status.startswith("error: ModuleNotFoundError"), result
        elif reason == "random":
            assert result.ok and "secrets" in it[3]
        else:
            assert reason == "hash_seed"
            status = cross[it[:3]].status
            assert status in ("ok", "error: NondeterminismError: output differs under another hash seed")
            if status != "ok":
                flagged.add((it[0], it[1]))
    assert flagged == {k for k, v in EXCEPTIONS.items() if v == "hash_seed"}


def test_reproduction_rate(replay):
    items, failing, *_ = replay
    rate = 1 - len(failing) / len(items)
    print(
        f"\nseed corpus: {len(items) - len(failing)}/{len(items)} = {rate:.2%} of the recorded outputs reproduced"
    )
    for it, r in failing:
        print(f"  {it[0]}:{it[1]}[{it[2]}] {EXCEPTIONS[(it[0], it[1])]}: {r.status[:80]}")
    assert rate >= 0.985  # the rest are the documented programs (26 of the 31 are hash-seed dependent)
    clean = [it for it in items if (it[0], it[1]) not in EXCEPTIONS]
    assert len(clean) > 0.97 * len(items) and not [
        it for it, _ in failing if (it[0], it[1]) not in EXCEPTIONS
    ]


def test_induction_programs_pass_their_own_hidden_pairs(replay):
    items, failing, _, rows, kept, induction = replay
    failed_pairs = {(it[1], it[2]) for it, _ in failing if it[0] == INDUCTION_FILE}
    results = iter(induction)
    checked = 0
    for line, ks in enumerate(kept):
        if not ks:
            continue
        result = next(results)
        assert list(result.pair_verdicts) == [(line, k) not in failed_pairs for k in ks], (line, result)
        checked += 1
    assert checked > 240

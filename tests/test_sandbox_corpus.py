"""The released AZR seed corpora, replayed through the farm.

Every (snippet, input) of the three seed files is run and compared with its recorded output by value
equality inside the sandbox (`recorded == f(input)`); outputs the official pipeline stored truncated
(200 + "..." + 200 characters) are compared with our truncated repr instead. The entries that cannot
reproduce are listed below with the reason, and each reason is verified, not assumed:

- "empty": the recorded output is the empty string: the official run of that program failed (an
  exception, a missing module, or a random program), so there is nothing to reproduce.
- "hash_seed": the output depends on set/dict iteration order of strings, i.e. on the interpreter's
  hash seed, which the official run drew at random; our cross-seed check flags these programs.
- "file_write": the program writes a file, which the sandbox forbids by design.
"""

import dataclasses
import json
from pathlib import Path

import pytest

from azr_jax.sandbox import (
    FarmConfig,
    JobOptions,
    SandboxFarm,
    abduction_job,
    induction_job,
    output_job,
    submit_outputs,
)

SEED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "azr_seed"
IO_FILES = ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl")
INDUCTION_FILE = "7b_coder_code_f_seed_io.jsonl"

pytestmark = pytest.mark.skipif(
    not all((SEED_DIR / name).exists() for name in IO_FILES + (INDUCTION_FILE,)),
    reason=f"seed corpora not found in {SEED_DIR} (expected ../shared/data/azr_seed next to the repo)",
)

# (file, line) -> why the recorded output cannot be reproduced.
EXCEPTIONS = {
    ("7b_seed_io.jsonl", 124): "empty",  # raises StopIteration on its recorded input
    ("7b_seed_io.jsonl", 141): "empty",  # imports cv2
    ("7b_seed_io.jsonl", 242): "file_write",  # writes transformed_output.txt
    ("7b_coder_seed_io.jsonl", 151): "hash_seed",
    ("7b_coder_seed_io.jsonl", 175): "empty",
    ("7b_coder_seed_io.jsonl", 223): "hash_seed",
    ("7b_coder_seed_io.jsonl", 228): "hash_seed",
    (INDUCTION_FILE, 34): "empty",  # one of its ten recorded outputs is empty
    (INDUCTION_FILE, 47): "empty",  # random (secrets) program
    (INDUCTION_FILE, 60): "hash_seed",
    (INDUCTION_FILE, 175): "empty",  # random (secrets) program
    (INDUCTION_FILE, 201): "empty",  # random (secrets) program
    (INDUCTION_FILE, 219): "hash_seed",
    (INDUCTION_FILE, 245): "hash_seed",
}
KEEP = JobOptions().truncate_keep_chars
CHECK = JobOptions(repr_fallback=True)  # recorded `[inf, 5]` / `dict_keys([...])` are compared as text
TRUNCATED = JobOptions(truncate_repr=True, determinism=False)


@dataclasses.dataclass(frozen=True)
class Item:
    file: str
    line: int
    pair: int
    program: str
    imports: tuple
    input: str
    recorded: str


def is_truncated(text: str) -> bool:
    return len(text) == 2 * KEEP + 3 and text[KEEP : KEEP + 3] == "..."


def load_items() -> list[Item]:
    items = []
    for name in IO_FILES:
        for line, raw in enumerate((SEED_DIR / name).read_text().splitlines()):
            row = json.loads(raw)
            items.append(Item(name, line, 0, row["snippet"], tuple(row["imports"]), row["input"], row["output"]))
    for line, raw in enumerate((SEED_DIR / INDUCTION_FILE).read_text().splitlines()):
        row = json.loads(raw)
        for pair, (inp, out) in enumerate(zip(row["inputs"], row["outputs"], strict=True)):
            items.append(Item(INDUCTION_FILE, line, pair, row["snippet"], tuple(row["imports"]), inp, out))
    return items


def reproduce_job(item: Item):
    if is_truncated(item.recorded):
        return output_job(item.program, item.input, item.imports, TRUNCATED)
    return abduction_job(item.program, item.recorded, item.input, item.imports, CHECK)


def reproduced(item: Item, result) -> bool:
    return result.value == item.recorded if is_truncated(item.recorded) else result.verdict is True


@pytest.fixture(scope="module")
def replay():
    items = load_items()
    with SandboxFarm(FarmConfig()) as farm:
        results = farm.run([reproduce_job(it) for it in items], timeout=600)
        failing = [(it, r) for it, r in zip(items, results, strict=True) if not reproduced(it, r)]
        seeds = [it for it, _ in failing if EXCEPTIONS.get((it.file, it.line)) == "hash_seed"]
        crossed = submit_outputs(farm, [output_job(it.program, it.input, it.imports) for it in seeds], cross_seed=True)
        cross = {(it.file, it.line, it.pair): f.result(timeout=120) for it, f in zip(seeds, crossed, strict=True)}
        ind_rows = [json.loads(r) for r in (SEED_DIR / INDUCTION_FILE).read_text().splitlines()]
        ind_jobs = [
            induction_job(
                row["snippet"],
                [(i, o) for i, o in zip(row["inputs"], row["outputs"], strict=True) if not is_truncated(o)],
                row["imports"],
            )
            for row in ind_rows
        ]
        induction = farm.run(ind_jobs, timeout=600)
    yield items, failing, cross, ind_rows, induction


def test_corpus_sizes(replay):
    items, *_ = replay
    assert sum(it.file == IO_FILES[0] for it in items) == 256
    assert sum(it.file == IO_FILES[1] for it in items) == 256
    assert (
        sum(it.file == INDUCTION_FILE for it in items) == 2556
    )  # 255 programs x 10 inputs + the 6-input identity seed


def test_every_failure_is_a_documented_exception(replay):
    items, failing, *_ = replay
    undocumented = sorted({(it.file, it.line, r.status) for it, r in failing if (it.file, it.line) not in EXCEPTIONS})
    assert undocumented == []
    # And every documented exception does fail (the list is not padding).
    assert {(it.file, it.line) for it, _ in failing} == set(EXCEPTIONS)


def test_exception_reasons_hold(replay):
    _, failing, cross, *_ = replay
    flagged_programs = set()
    for it, result in failing:
        reason = EXCEPTIONS[(it.file, it.line)]
        if reason == "empty":
            assert it.recorded == "", (it, result)
        elif reason == "file_write":
            assert result.status.startswith("error: PermissionError: [Errno 1] Operation not permitted"), result
        else:
            assert reason == "hash_seed"
            status = cross[(it.file, it.line, it.pair)].status
            assert status in ("ok", "error: NondeterminismError: output differs under another hash seed")
            if status != "ok":
                flagged_programs.add((it.file, it.line))
    hash_seed = {k for k, v in EXCEPTIONS.items() if v == "hash_seed"}
    assert flagged_programs == hash_seed  # each such program changes output under another hash seed


def test_reproduction_rate(replay):
    items, failing, *_ = replay
    with_output = [it for it in items if it.recorded != ""]
    failed_with_output = [it for it, _ in failing if it.recorded != ""]
    rate = 1 - len(failed_with_output) / len(with_output)
    print(
        f"\nseed corpus: {len(items) - len(failing)}/{len(items)} (snippet, input) pairs reproduced; "
        f"{len(with_output) - len(failed_with_output)}/{len(with_output)} = {rate:.2%} of those with a recorded output"
    )
    for it, r in failing:
        print(f"  {it.file}:{it.line}[{it.pair}] {EXCEPTIONS[(it.file, it.line)]}: {r.status[:80]}")
    assert rate >= 0.99
    # Reproducible in principle (recorded, hash-seed independent, no file writes): all of them.
    clean = [it for it in items if EXCEPTIONS.get((it.file, it.line)) is None]
    assert not [it for it, _ in failing if EXCEPTIONS.get((it.file, it.line)) is None]
    assert len(clean) > 0.97 * len(items)


def test_induction_programs_reproduce_all_their_outputs(replay):
    items, failing, _, rows, induction = replay
    per_pair = {(it.line, it.pair): True for it in items if it.file == INDUCTION_FILE}
    for it, _ in failing:
        if it.file == INDUCTION_FILE:
            per_pair[(it.line, it.pair)] = False
    for line, (row, result) in enumerate(zip(rows, induction, strict=True)):
        kept = [k for k, o in enumerate(row["outputs"]) if not is_truncated(o)]
        # The induction probe agrees with the pair-by-pair replay...
        assert list(result.pair_verdicts) == [per_pair[(line, k)] for k in kept], line
        # ...and every program outside the documented exceptions passes all its hidden pairs.
        if (INDUCTION_FILE, line) not in EXCEPTIONS:
            assert result.verdict is True, (line, result)

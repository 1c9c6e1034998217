"""Paper configs load the released seed files, and every entry of every file is accepted.

For each paper config (configs/*.py built on `paper_model_config`) and each released seed file
in ../shared/data/azr_seed: the file loads through the config (`azr.seed_source=auto` picks the
files when given, cut to `seed_target_size` entries as the official trainer does), each triplet
parses as a proposal under the config's `reject_multiple_functions` / `entry_function` to the
same program and input, and each program passes the sandbox's static checks with the config's
proposal options (so induction proposals on it can be valid).
"""

import importlib.util
from pathlib import Path

import pytest

from azr_jax.azr.parsing import parse_proposal
from azr_jax.azr.run import job_options, seed_buffers, seed_source, selfplay_config
from azr_jax.sandbox.static_checks import validate_program

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "data" / "azr_seed"
PAPER_CONFIGS = sorted(
    p.stem for p in (ROOT / "configs").glob("*.py") if "paper_model_config" in p.read_text()
)
F = "```"


def _config(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config("cpu")


def _seed_files():
    if not SEEDS.is_dir():
        pytest.skip(f"released seed files not found at {SEEDS}")
    io = sorted(p for p in SEEDS.glob("*_seed_io.jsonl") if "code_f" not in p.name)
    ind = sorted(SEEDS.glob("*_code_f_seed_io.jsonl"))
    assert io and ind
    return io, ind


def test_paper_configs_exist_and_default_to_generated_seeds():
    assert {"qwen2_5_coder_7b", "llama3_1_8b"} <= set(PAPER_CONFIGS)
    for name in PAPER_CONFIGS:
        c = _config(name)
        assert c.azr.seed_source == "auto" and seed_source(c) == "generate"
        assert c.azr.semantics == "official" and c.rl.aggregation == "micro-token-mean"


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_every_released_seed_entry_is_accepted(name):
    io_files, ind_files = _seed_files()
    c = _config(name)
    parse = selfplay_config(c).parse
    opts = job_options(c).proposal
    for io_file in io_files:
        for ind_file in ind_files:
            c.azr.seed_io_file, c.azr.seed_induction_file = str(io_file), str(ind_file)
            assert seed_source(c) == "files"
            buffers = seed_buffers(c)
            n = c.azr.seed_target_size
            assert len(buffers.deduction) == len(buffers.abduction) == min(n, 256)
            assert len(buffers.induction) == min(n, 256)
        for t in buffers.deduction:
            text = f" plan</think><answer>{F}python\n{t.program}\n{F}\n{F}input\n{t.input}\n{F}</answer>"
            p = parse_proposal(text, "deduction", parse)
            assert p.ok and p.format_ok, (io_file.name, t.program)
            assert (p.result.program, p.result.input) == (t.program, t.input)
            assert (
                validate_program(
                    t.program,
                    t.imports,
                    banned_modules=opts.banned_modules,
                    single_function=opts.single_function,
                )
                is None
            )
    for entry in buffers.induction:
        assert (
            validate_program(
                entry.program,
                entry.imports,
                banned_modules=opts.banned_modules,
                single_function=opts.single_function,
            )
            is None
        )


def test_seed_file_errors_and_partial_files(tmp_path):
    io_files, _ = _seed_files()
    c = _config("qwen2_5_coder_7b")
    c.azr.seed_io_file = str(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="seed_io_file"):
        seed_buffers(c)
    c.azr.seed_io_file = str(io_files[0])
    c.azr.seed_induction_file = str(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="seed_induction_file"):
        seed_buffers(c)
    # only the triplet file: loaded, the induction seed is left to generation
    c.azr.seed_induction_file = ""
    c.azr.seed_target_size = 8
    b = seed_buffers(c)
    assert len(b.deduction) == 8 and b.deduction[0].program == "def f(a):\n    return a"
    c.azr.seed_source = "bogus"
    with pytest.raises(ValueError, match="seed_source"):
        seed_buffers(c)

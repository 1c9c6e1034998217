"""`azr-jax convert` both ways, through the real console script and the library call."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import hf_models
from azr_jax.convert import convert, load_orbax_params
from azr_jax.hf.load import load_hf
from azr_jax.hf.safetensors_io import SafetensorsFile

CLI = [sys.executable, "-m", "azr_jax.cli"]


def _same_tensors(a_dir, b_dir):
    a = SafetensorsFile(os.path.join(a_dir, "model.safetensors"))
    b = SafetensorsFile(os.path.join(b_dir, "model.safetensors"))
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        assert a.get(k).tobytes() == b.get(k).tobytes(), k


def test_cli_hf_to_orbax_to_hf_round_trip(tmp_path):
    src = tmp_path / "hf"
    hf_models.build("llama3_scaled", str(src))
    (src / "tokenizer_config.json").write_text('{"x": 1}')
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run(
        CLI + ["convert", f"--src={src}", f"--dst={tmp_path / 'ob'}", "--to=orbax"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "wrote orbax checkpoint" in r.stdout
    assert "loading hf" in r.stderr  # the progress bar
    assert (tmp_path / "ob" / "tokenizer" / "tokenizer_config.json").exists()
    r = subprocess.run(
        CLI + ["convert", f"--src={tmp_path / 'ob'}", f"--dst={tmp_path / 'back'}", "--to=hf"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    _same_tensors(src, tmp_path / "back")
    assert (tmp_path / "back" / "tokenizer_config.json").read_text() == '{"x": 1}'


def test_orbax_params_equal_hf_params_and_dtype_option(tmp_path):
    src = tmp_path / "hf"
    hf_models.build("qwen2_untied", str(src))
    convert(str(src), str(tmp_path / "ob"), to="orbax", progress=False)
    cfg_a, a = load_hf(src)
    cfg_b, b, step = load_orbax_params(str(tmp_path / "ob"))
    assert cfg_a == cfg_b and step == 0
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
    convert(str(tmp_path / "ob"), str(tmp_path / "bf16"), to="hf", dtype="bfloat16", progress=False)
    f = SafetensorsFile(tmp_path / "bf16" / "model.safetensors")
    assert str(f.dtype("model.embed_tokens.weight")) == "bfloat16"
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        convert(str(src), str(tmp_path / "ob"), to="orbax", progress=False)


def test_cli_errors_are_clear(tmp_path):
    r = subprocess.run(
        CLI + ["convert", f"--src={tmp_path / 'missing'}", f"--dst={tmp_path / 'o'}", "--to=hf"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert f"azr-jax convert: error: conversion source not found: {tmp_path / 'missing'}" in r.stderr
    (tmp_path / "junk").mkdir()
    r = subprocess.run(
        CLI + ["convert", f"--src={tmp_path / 'junk'}", f"--dst={tmp_path / 'o'}", "--to=orbax"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "is neither a .gguf file, an HF model directory" in r.stderr
    r = subprocess.run(CLI + ["bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command 'bogus'" in r.stderr


@pytest.mark.slow
def test_cli_gguf_source_gives_the_smollm2_params(tmp_path):
    assets = pytest.importorskip("azr_jax.hf.assets")
    pytest.importorskip("gguf")
    try:
        gguf = assets.smollm2_gguf_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    r = subprocess.run(
        CLI + ["convert", f"--src={gguf}", f"--dst={tmp_path / 'ob'}", "--to=orbax"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    cfg, params, _ = load_orbax_params(str(tmp_path / "ob"))
    assert (cfg.num_layers, cfg.hidden_size, cfg.tie_word_embeddings) == (30, 576, True)
    assert (tmp_path / "ob" / "tokenizer" / "tokenizer.json").exists()
    _, ref = load_hf(assets.smollm2_hf_dir())
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), params, ref)

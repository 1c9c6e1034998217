"""Run-directory logging: metrics.jsonl / samples.jsonl round trips, resume truncation after a
torn write, TensorBoard events (decoded with our own TFRecord reader), the progress bar."""

import glob
import json
import logging
import os
import struct
import time

import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from azr_jax import metrics as M


def _strict_rows(path):
    """Parse every line as strict JSON (NaN/Infinity rejected), independent of read_jsonl."""

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name} in {path}")

    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return [json.loads(line, parse_constant=no_constants) for line in data.splitlines()]


# --------------------------------------------------------------------------- minimal TFRecord


def _crc32c(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_events(path):
    """Decode a TFRecord file: u64 length, u32 masked crc(length), payload, u32 masked crc."""
    events = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        assert len_crc == _masked_crc(header)
        payload = data[pos + 12 : pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert data_crc == _masked_crc(payload)
        ev = event_pb2.Event()
        ev.ParseFromString(payload)
        events.append(ev)
        pos += 16 + length
    return events


def _tb_events(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")))
    assert files, "no TensorBoard event file"
    return files, [_read_events(p) for p in files]


def _scalars(events):
    return {(v.tag, e.step): v.simple_value for e in events for v in e.summary.value}


def test_crc32c_known_vector():
    assert _crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


# --------------------------------------------------------------------------- metrics.jsonl


def test_metrics_round_trip_and_null_for_non_finite(tmp_path):
    t0 = time.time()
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        w.write(
            1,
            {
                "reward/solve_deduction": 0.25,
                "count/solve_deduction": 3,
                "reward/propose_induction": float("nan"),
                "tokens_per_s": float("inf"),
                "length/solve_abduction": np.float32(12.5),
                "loss": np.array(-0.5),
                "note": "warmup",
                "flag": True,
            },
        )
        w.write(2, {"reward/solve_deduction": -1.0})
        assert w.last_step == 2
    rows = _strict_rows(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    assert t0 - 1 <= rows[0]["time"] <= time.time() + 1
    r = rows[0]
    assert r["reward/solve_deduction"] == 0.25
    assert r["count/solve_deduction"] == 3 and isinstance(r["count/solve_deduction"], int)
    assert r["reward/propose_induction"] is None and r["tokens_per_s"] is None
    assert r["length/solve_abduction"] == 12.5 and r["loss"] == -0.5
    assert r["note"] == "warmup" and r["flag"] is True
    assert M.read_metrics(str(tmp_path)) == rows
    assert M.read_metrics(str(tmp_path / "metrics.jsonl")) == rows


@pytest.mark.parametrize(
    "step, metrics, match",
    [
        (1, {"step": 3.0}, "reserved"),
        (1, {"time": 3.0}, "reserved"),
        (1, {"x": [1.0, 2.0]}, "'x'.*scalar"),
        (1, {"x": np.zeros(2)}, "'x'.*scalar"),
        (1, {3: 1.0}, "strings"),
        (1.5, {}, "integer"),
        (-1, {}, ">= 0"),
        (True, {}, "integer"),
    ],
)
def test_metrics_bad_input(tmp_path, step, metrics, match):
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        with pytest.raises(ValueError, match=match):
            w.write(step, metrics)


def test_metrics_refuses_steps_that_do_not_advance(tmp_path):
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        w.write(3, {"a": 1.0})
        with pytest.raises(ValueError, match="resume_step"):
            w.write(3, {"a": 2.0})
    # Reopening without resume_step appends, so an old step is refused there too.
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        assert w.last_step == 3
        with pytest.raises(ValueError, match="not after the last step 3"):
            w.write(2, {"a": 1.0})
        w.write(4, {"a": 4.0})
    assert [r["step"] for r in M.read_metrics(str(tmp_path))] == [3, 4]


def test_resume_drops_later_steps_and_a_torn_last_line(tmp_path, caplog):
    run = str(tmp_path)
    with M.MetricsWriter(run, tensorboard=False) as w:
        for step in range(1, 5):
            w.write(step, {"loss": float(step)})
    path = tmp_path / "metrics.jsonl"
    with open(path, "ab") as f:  # the process was killed mid-write of step 5
        f.write(b'{"step": 5, "time": 1.0, "loss": 0.12')
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        w = M.MetricsWriter(run, tensorboard=False, resume_step=2)
    assert any(
        "partial last line" in r.getMessage() and "metrics.jsonl:5" in r.getMessage() for r in caplog.records
    )
    assert [r["step"] for r in _strict_rows(path)] == [1, 2]
    assert w.last_step == 2
    w.write(3, {"loss": 30.0})
    w.write(4, {"loss": 40.0})
    w.close()
    rows = _strict_rows(path)
    assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert os.listdir(run) == ["metrics.jsonl"]  # no temp file left behind


def test_truncate_after_on_an_open_writer(tmp_path):
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        for step in (1, 2, 3):
            w.write(step, {"a": float(step)})
        w.truncate_after(1)
        assert w.last_step == 1
        w.write(2, {"a": 20.0})
    assert [(r["step"], r["a"]) for r in M.read_metrics(str(tmp_path))] == [(1, 1.0), (2, 20.0)]


def test_resume_step_zero_discards_an_old_run(tmp_path):
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        w.write(1, {"a": 1.0})
    with M.MetricsWriter(str(tmp_path), tensorboard=False, resume_step=0) as w:
        assert w.last_step is None
        w.write(1, {"a": 2.0})
    assert [r["a"] for r in M.read_metrics(str(tmp_path))] == [2.0]


def test_reopen_repairs_tail_without_resume(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    # A complete last row missing only its newline is kept; it gets its newline back.
    path.write_bytes(b'{"step": 1, "a": 1}\n{"step": 2, "a": 2}')
    with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
        w.write(3, {"a": 3})
    assert [r["step"] for r in _strict_rows(path)] == [1, 2, 3]
    # A torn row is dropped with a warning even when no resume step is given.
    with open(path, "ab") as f:
        f.write(b'{"step": 4, "a"')
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        with M.MetricsWriter(str(tmp_path), tensorboard=False) as w:
            w.write(4, {"a": 4})
    assert "partial last line" in caplog.text
    assert [r["step"] for r in _strict_rows(path)] == [1, 2, 3, 4]


def test_reader_skips_torn_tail_and_names_corrupt_middle_line(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1, "a": null}\n\n{"step": 2, "a": 2.5}\n{"step": 3, "a": 0.\xe2')
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        rows = M.read_metrics(str(tmp_path))
    assert rows == [{"step": 1, "a": None}, {"step": 2, "a": 2.5}]
    assert "metrics.jsonl:4" in caplog.text
    path.write_bytes(b'{"step": 1}\n{"step": 2,,}\n{"step": 3}\n')
    with pytest.raises(M.JsonlError, match=r"metrics\.jsonl:2: invalid JSON"):
        M.read_metrics(str(tmp_path))
    path.write_bytes(b'{"step": 1}\n[1, 2]\n')
    with pytest.raises(M.JsonlError, match=r"metrics\.jsonl:2: expected a JSON object"):
        M.read_metrics(str(path))
    # A rewrite refuses rows without a step rather than guessing where they belong.
    path.write_bytes(b'{"step": 1}\n{"a": 2}\n')
    with pytest.raises(M.JsonlError, match=r"metrics\.jsonl:2: bad 'step'"):
        M.MetricsWriter(str(tmp_path), tensorboard=False, resume_step=1)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        M.read_metrics(str(tmp_path / "elsewhere"))


def test_non_primary_host_writes_nothing(tmp_path):
    run = tmp_path / "run"
    w = M.MetricsWriter(str(run), primary=False, resume_step=3)
    w.write(1, {"a": 1.0})
    w.truncate_after(0)
    with pytest.raises(ValueError, match="reserved"):  # inputs are still checked on every host
        w.write(2, {"step": 1.0})
    w.close()
    s = M.SamplesWriter(str(run), primary=False)
    s.write(1, [{"completion": "x"}])
    s.close()
    assert not run.exists()


# --------------------------------------------------------------------------- TensorBoard


def test_tensorboard_mirrors_finite_numeric_scalars(tmp_path):
    with M.MetricsWriter(str(tmp_path)) as w:
        w.write(
            1,
            {
                "reward/propose_deduction": 0.5,
                "count/x": 7,
                "empty": float("nan"),
                "note": "text",
                "flag": True,
            },
        )
        w.write(2, {"reward/propose_deduction": -0.25})
    files, per_file = _tb_events(str(tmp_path))
    assert len(files) == 1
    events = per_file[0]
    assert events[0].file_version == "brain.Event:2"
    scalars = _scalars(events)
    assert scalars == {
        ("reward/propose_deduction", 1): 0.5,
        ("count/x", 1): 7.0,
        ("reward/propose_deduction", 2): -0.25,
    }
    # TB walltime is the same clock as the JSONL row.
    rows = M.read_metrics(str(tmp_path))
    walls = {e.step: e.wall_time for e in events if e.summary.value}
    assert walls[1] == pytest.approx(rows[0]["time"])


def test_tensorboard_purges_stale_steps_on_resume(tmp_path):
    with M.MetricsWriter(str(tmp_path)) as w:
        for step in (1, 2, 3):
            w.write(step, {"loss": float(step)})
    time.sleep(1.1)  # tensorboardX names event files by the second; keep them distinct
    with M.MetricsWriter(str(tmp_path), resume_step=1) as w:
        w.write(2, {"loss": 20.0})
    files, per_file = _tb_events(str(tmp_path))
    assert len(files) == 2
    new = per_file[1]
    starts = [e for e in new if e.HasField("session_log")]
    assert [(e.step, e.session_log.status) for e in starts] == [(2, event_pb2.SessionLog.START)]
    assert _scalars(new) == {("loss", 2): 20.0}


# --------------------------------------------------------------------------- samples.jsonl


def test_samples_writer_rows_and_resume(tmp_path, caplog):
    run = str(tmp_path)
    with M.SamplesWriter(run) as s:
        s.write(
            1,
            [
                {
                    "group": "solve_deduction",
                    "completion": "<answer>3</answer> \u00e9",
                    "reward": float("nan"),
                    "meta": {"tokens": [1, 2], "score": np.float64(1.5)},
                },
                {"group": "propose_abduction", "completion": "def f(x): ..."},
            ],
        )
        s.write(2, [{"completion": "b"}])
        s.write(2, [{"completion": "c"}])  # several calls per step are fine
        s.write(3, [])
        with pytest.raises(ValueError, match="reserved"):
            s.write(3, [{"step": 9}])
        with pytest.raises(ValueError, match="sequence of dicts"):
            s.write(3, {"completion": "d"})
        with pytest.raises(ValueError, match=r"sample row 0\.meta: expected a scalar"):
            s.write(3, [{"meta": object()}])
        with pytest.raises(ValueError, match="not after"):
            s.write(1, [{"completion": "old"}])
    path = tmp_path / "samples.jsonl"
    rows = _strict_rows(path)
    assert path.read_bytes().isascii()
    assert rows[0] == {
        "step": 1,
        "group": "solve_deduction",
        "completion": "<answer>3</answer> \u00e9",
        "reward": None,
        "meta": {"tokens": [1, 2], "score": 1.5},
    }
    assert [(r["step"], r["completion"]) for r in rows[1:]] == [(1, "def f(x): ..."), (2, "b"), (2, "c")]
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "completion": "trunc')
    with caplog.at_level(logging.WARNING, logger="azr_jax.metrics"):
        with M.SamplesWriter(run, resume_step=1) as s:
            s.write(2, [{"completion": "again"}])
    assert "samples.jsonl:5" in caplog.text
    assert [(r["step"], r["completion"]) for r in _strict_rows(path)] == [
        (1, "<answer>3</answer> \u00e9"),
        (1, "def f(x): ..."),
        (2, "again"),
    ]


# --------------------------------------------------------------------------- progress bar


def test_progress_postfix_shows_present_finite_keys_only():
    post = M.progress_postfix(
        {
            "reward/solve_mean": 0.25,
            "reward/propose_mean": float("nan"),
            "valid/propose_deduction": np.float32(0.5),
            "valid/propose_abduction": None,
            "time/total": 12.34,
            "tokens_per_s": 1234.6,
            "loss": 1.0,
        }
    )
    assert post == {"R_solve": "+0.250", "valid_ded": "0.50", "s/step": "12.3", "tok/s": "1235"}
    assert M.progress_postfix({}) == {}


def test_step_progress_advances_to_step_and_shows_postfix(capsys):
    bar = M.StepProgress(total_steps=10, initial_step=2, enabled=True)
    bar.update(3, {"reward/solve_mean": -0.5, "tokens_per_s": 99.0})
    bar.update(5, {"reward/solve_mean": 0.75})
    assert bar.n == 5
    bar.close()
    err = capsys.readouterr().err
    assert "5/10" in err and "R_solve=+0.750" in err
    with pytest.raises(ValueError, match="initial_step"):
        M.StepProgress(total_steps=3, initial_step=4)
    quiet = M.StepProgress(total_steps=3, enabled=False)
    quiet.update(2, {"reward/solve_mean": 1.0})
    quiet.close()
    assert quiet.n == 2 and capsys.readouterr().err == ""

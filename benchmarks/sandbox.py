"""Sandbox farm throughput on the AZR seed corpora, against two peers.

Workload: every (snippet, input) of ../shared/data/azr_seed/{7b_seed_io, 7b_coder_seed_io,
7b_coder_code_f_seed_io}.jsonl (3,068 executions), each with the official semantics: imports +
program exec'd in a fresh namespace, f called twice and compared (determinism), repr of the value.

Modes:
  farm        SandboxFarm with every isolation layer this machine supports (the thing we ship)
  subprocess  one `subprocess.run([python, "-c", ...])` per job, as many in flight as farm workers,
              no isolation at all (the naive safe-ish approach; a sample of the jobs, it is slow)
  exec        plain in-process exec in this single process (unsafe; the ceiling per core)

Usage: python benchmarks/sandbox.py [--workers N] [--subprocess-jobs 300] [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from azr_jax.sandbox import FarmConfig, SandboxFarm, output_job  # noqa: E402

SEED_DIR = REPO.parent / "shared" / "data" / "azr_seed"
FILES = ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl", "7b_coder_code_f_seed_io.jsonl")
# Wall-clock limit per job for the subprocess peer (the farm's default is the same 10 s).
SUBPROCESS_TIMEOUT_S = 10.0
# Jobs run through the farm before timing (fills page caches, starts nothing new).
WARMUP_JOBS = 50

# What one subprocess job runs: the same semantics as the farm's output probe, unsandboxed.
SUBPROCESS_SCRIPT = r"""
import json, sys
job = json.loads(sys.stdin.read())
ns = {"__name__": "__main__"}
exec("\n".join(job["imports"] + [job["program"]]), ns)
first = eval("f(\n" + job["input"] + "\n)", ns)
if first != eval("f(\n" + job["input"] + "\n)", ns):
    raise Exception("nondeterministic")
sys.stdout.write(repr(first))
"""


def load_corpus() -> list[tuple[str, tuple[str, ...], str]]:
    """(program, imports, input) for every execution in the three seed files."""
    missing = [name for name in FILES if not (SEED_DIR / name).exists()]
    if missing:
        sys.exit(f"seed corpora missing in {SEED_DIR}: {missing}")
    corpus = []
    for name in FILES:
        for line in (SEED_DIR / name).read_text().splitlines():
            row = json.loads(line)
            inputs = row["inputs"] if "inputs" in row else [row["input"]]
            corpus.extend((row["snippet"], tuple(row["imports"]), inp) for inp in inputs)
    return corpus


def bench_farm(corpus, workers: int) -> dict:
    t0 = time.perf_counter()
    with SandboxFarm(FarmConfig(num_workers=workers)) as farm:
        startup = time.perf_counter() - t0
        farm.run([output_job(p, i, imp) for p, imp, i in corpus[:WARMUP_JOBS]])
        jobs = [output_job(p, i, imp) for p, imp, i in corpus]
        t1 = time.perf_counter()
        results = farm.run(jobs)
        elapsed = time.perf_counter() - t1
        report = farm.isolation_report
    ok = sum(r.ok for r in results)
    return {"mode": "farm", "jobs": len(jobs), "ok": ok, "seconds": elapsed, "startup_s": startup, "isolation": report}


def bench_subprocess(corpus, workers: int, n_jobs: int) -> dict:
    step = max(1, len(corpus) // n_jobs)
    sample = corpus[::step][:n_jobs]

    def one(item) -> bool:
        program, imports, inp = item
        payload = json.dumps({"program": program, "imports": list(imports), "input": inp})
        try:
            proc = subprocess.run(
                [sys.executable, "-c", SUBPROCESS_SCRIPT],
                input=payload,
                capture_output=True,
                text=True,
                timeout=SUBPROCESS_TIMEOUT_S,
                cwd=scratch,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    with tempfile.TemporaryDirectory() as scratch:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            ok = sum(pool.map(one, sample))
        elapsed = time.perf_counter() - t0
    return {"mode": "subprocess", "jobs": len(sample), "ok": ok, "seconds": elapsed}


def bench_exec(corpus) -> dict:
    ok = 0
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # one seed program writes a file
        try:
            sink = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sink):
                for program, imports, inp in corpus:
                    try:
                        ns = {"__name__": "__main__"}
                        exec("\n".join(list(imports) + [program]), ns)  # noqa: S102 - the unsafe ceiling
                        call = compile("f(\n" + inp + "\n)", "<input>", "eval")
                        first = eval(call, ns)  # noqa: S307
                        if first != eval(call, ns):  # noqa: S307
                            raise ValueError("nondeterministic")
                        repr(first)
                        ok += 1
                    except Exception:  # noqa: BLE001 - count failures, keep going
                        pass
                    sink.seek(0)
                    sink.truncate()
            elapsed = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
    return {"mode": "exec", "jobs": len(corpus), "ok": ok, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="farm workers = subprocess concurrency"
    )
    parser.add_argument("--subprocess-jobs", type=int, default=300, help="jobs sampled for the subprocess peer")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    corpus = load_corpus()
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; {len(corpus)} jobs from {', '.join(FILES)}"
    )
    rows = [
        bench_farm(corpus, args.workers),
        bench_subprocess(corpus, args.workers, args.subprocess_jobs),
        bench_exec(corpus),
    ]
    print(rows[0].pop("isolation"))
    print(f"farm start-up: {rows[0]['startup_s']:.2f} s for {args.workers} workers")
    farm_rate = rows[0]["jobs"] / rows[0]["seconds"]
    print("\n| mode | processes | jobs | ok | seconds | jobs/s | farm / mode |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        rate = row["jobs"] / row["seconds"]
        row["jobs_per_s"] = rate
        procs = 1 if row["mode"] == "exec" else args.workers
        cells = [
            row["mode"],
            procs,
            row["jobs"],
            row["ok"],
            f"{row['seconds']:.2f}",
            f"{rate:.1f}",
            f"{farm_rate / rate:.2f}x",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

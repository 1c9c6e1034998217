"""Sandbox farm throughput on the AZR seed corpora, against the official AZR executor and two peers.

Workload: every (snippet, input) of ../shared/data/azr_seed/{7b_seed_io, 7b_coder_seed_io,
7b_coder_code_f_seed_io}.jsonl (3,068 executions), each a proposal validity check with the official
semantics: imports + program run, f called twice and compared (determinism), repr stored.

Modes (same corpus; `--workers` worker processes for every mode that has workers):
  farm        SandboxFarm, every isolation layer this machine supports, one fresh process per job
  official    the official AZR `PythonExecutor` (its python_executor.py, read from
              ../shared/reference/official_azr_paper; needs pebble and timeout-decorator, the
              `test` extra), all snippets in one `batch_apply` over a pebble pool: its fastest
              use (the official trainer calls it one proposal at a time). No isolation, workers reused.
  subprocess  one `subprocess.run([python, "-c", ...])` per job, as many in flight as workers,
              no isolation (a sample of the jobs: it is slow)
  exec        plain in-process exec in this single process (unsafe; the ceiling per core)

CPU per job: the mode's worker processes (farm: workers, zygotes and every child; official: the
pool's processes, counted once they are joined) plus this process.

Usage: python benchmarks/sandbox.py [--workers N] [--subprocess-jobs 300] [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
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
OFFICIAL_DIR = REPO.parent / "shared" / "reference" / "official_azr_paper"
FILES = ("7b_seed_io.jsonl", "7b_coder_seed_io.jsonl", "7b_coder_code_f_seed_io.jsonl")
# Wall-clock limit per job for every mode (the official execute_max_timeout).
TIMEOUT_S = 10
# Jobs run through each pooled mode before timing (fills page caches, starts the pools).
WARMUP_JOBS = 50

# What one subprocess job runs: the same semantics as the farm's proposal check, unsandboxed.
SUBPROCESS_SCRIPT = r"""
import json, sys
job = json.loads(sys.stdin.read())
ns = {}
exec("\n".join(job["imports"] + [job["program"]]), ns)
first = eval("f(" + job["input"] + ")", ns)
if first != eval("f(" + job["input"] + ")", ns):
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


@contextlib.contextmanager
def _scratch_cwd():
    """Run a mode without isolation in a throw-away directory: one seed program writes a file."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            yield scratch
        finally:
            os.chdir(cwd)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_farm(corpus, workers: int) -> dict:
    t0 = time.perf_counter()
    with SandboxFarm(FarmConfig(num_workers=workers)) as farm:
        startup = time.perf_counter() - t0
        farm.run([output_job(p, i, imp) for p, imp, i in corpus[:WARMUP_JOBS]])
        jobs = [output_job(p, i, imp) for p, imp, i in corpus]
        cpu0, own0 = farm.cpu_seconds(), time.process_time()
        t1 = time.perf_counter()
        results = farm.run(jobs)
        elapsed = time.perf_counter() - t1
        cpu = farm.cpu_seconds() - cpu0 + time.process_time() - own0
        report = farm.isolation_report
    ok = sum(r.ok for r in results)
    return {
        "mode": "farm",
        "jobs": len(jobs),
        "ok": ok,
        "seconds": elapsed,
        "cpu_s": cpu,
        "startup_s": startup,
        "isolation": report,
    }


def _official_executor(workers: int):
    """The official PythonExecutor, imported from the reference checkout (never copied here)."""
    if not OFFICIAL_DIR.is_dir():
        return None, f"not found: {OFFICIAL_DIR}"
    sys.path.insert(0, str(OFFICIAL_DIR))
    try:
        from absolute_zero_reasoner.utils.code_utils.python_executor import PythonExecutor
        from absolute_zero_reasoner.utils.code_utils.templates import CHECK_DETERMINISM_TEMPLATE
    except ImportError as exc:
        return None, f"cannot import it ({exc}); pip install pebble timeout-decorator"
    finally:
        sys.path.remove(str(OFFICIAL_DIR))
    return (
        PythonExecutor(timeout_length=TIMEOUT_S, ast_check=True, max_workers=workers),
        CHECK_DETERMINISM_TEMPLATE,
    ), ""


def bench_official(corpus, workers: int) -> dict | None:
    loaded, why = _official_executor(workers)
    if loaded is None:
        print(f"official executor skipped: {why}")
        return None
    executor, template = loaded
    # What its check_all runs for a proposal, formatted the same way (imports prepended).
    snippets = [
        template.format(code="\n".join(list(imp) + [p]) if imp else p, inputs=i) for p, imp, i in corpus
    ]
    sink = io.StringIO()
    # the official pool prints progress bars and programs' prints; its processes start in our cwd
    with _scratch_cwd(), contextlib.redirect_stdout(sink):
        executor.batch_apply(snippets[:WARMUP_JOBS])
        own0, kids0 = time.process_time(), _children_cpu()
        t0 = time.perf_counter()
        results = executor.batch_apply(snippets)
        elapsed = time.perf_counter() - t0
        executor.cleanup()  # joins the pool, so its processes' CPU is counted
    cpu = time.process_time() - own0 + _children_cpu() - kids0
    ok = sum("error" not in status.lower() for _, status in results)
    return {"mode": "official", "jobs": len(snippets), "ok": ok, "seconds": elapsed, "cpu_s": cpu}


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
                timeout=TIMEOUT_S,
                cwd=scratch,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    with tempfile.TemporaryDirectory() as scratch:
        own0, kids0 = time.process_time(), _children_cpu()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            ok = sum(pool.map(one, sample))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - own0 + _children_cpu() - kids0
    return {"mode": "subprocess", "jobs": len(sample), "ok": ok, "seconds": elapsed, "cpu_s": cpu}


def bench_exec(corpus) -> dict:
    ok = 0
    sink = io.StringIO()
    with _scratch_cwd(), contextlib.redirect_stdout(sink):
        own0 = time.process_time()
        t0 = time.perf_counter()
        for program, imports, inp in corpus:
            try:
                ns: dict = {}
                exec("\n".join(list(imports) + [program]), ns)  # noqa: S102 - the unsafe ceiling
                call = compile("f(" + inp + ")", "<input>", "eval")
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
        cpu = time.process_time() - own0
    return {"mode": "exec", "jobs": len(corpus), "ok": ok, "seconds": elapsed, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes of every pooled mode"
    )
    parser.add_argument(
        "--subprocess-jobs", type=int, default=300, help="jobs sampled for the subprocess peer"
    )
    parser.add_argument("--repeats", type=int, default=1, help="farm and official alternate this many times")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.workers < 1 or args.subprocess_jobs < 1 or args.repeats < 1:
        parser.error("--workers, --subprocess-jobs and --repeats must be >= 1")

    corpus = load_corpus()
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; {len(corpus)} jobs from {', '.join(FILES)}"
    )
    rows = []
    for _ in range(args.repeats):  # alternate, so load changes hit both
        rows.append(bench_farm(corpus, args.workers))
        official = bench_official(corpus, args.workers)
        if official:
            rows.append(official)
    rows += [bench_subprocess(corpus, args.workers, args.subprocess_jobs), bench_exec(corpus)]
    farm_rows = [r for r in rows if r["mode"] == "farm"]
    print(farm_rows[0].pop("isolation"))
    for r in farm_rows[1:]:
        r.pop("isolation")
    print(f"farm start-up: {farm_rows[0]['startup_s']:.2f} s for {args.workers} workers")
    farm_rate = max(r["jobs"] / r["seconds"] for r in farm_rows)
    print("\n| mode | processes | jobs | ok | seconds | jobs/s | CPU ms/job | best farm / mode |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        rate = row["jobs"] / row["seconds"]
        row["jobs_per_s"] = rate
        row["cpu_ms_per_job"] = 1000 * row["cpu_s"] / row["jobs"]
        procs = 1 if row["mode"] == "exec" else args.workers
        cells = [
            row["mode"],
            procs,
            row["jobs"],
            row["ok"],
            f"{row['seconds']:.2f}",
            f"{rate:.1f}",
            f"{row['cpu_ms_per_job']:.2f}",
            f"{farm_rate / rate:.2f}x",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Repository hygiene: ruff lint and format (config in pyproject.toml), no machine paths in tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff")
    assert ruff, "ruff not found: install the test extra (pip install -e '.[test]')"
    return subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_lint_clean():
    proc = _ruff("check", "--output-format=concise", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr


def test_ruff_format_clean():
    proc = _ruff("format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr


def test_tests_use_no_machine_paths():
    """Shared data is found relative to the checkout (../shared), never at a fixed path."""
    pattern = re.compile(r"""["'](/work/(shared|main|wt)|/home/|/root/|/Users/)""")
    offenders = [
        f"{p.name}:{i}"
        for p in (REPO / "tests").glob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders

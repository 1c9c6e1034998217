"""Shared test setup: 8 fake CPU devices and full-precision matmuls.

The XLA flag must be set before jax is imported anywhere, so it lives at the top of conftest.
Tests that want "one device" build a mesh over `jax.devices()[:1]`.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch's OpenMP pool collapses when the 2 cores are shared (10x slower reference runs);
    one thread is fast and deterministic. Restored afterwards for other test modules.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SLOW_SECONDS = 15.0  # an unmarked test over this is named: the fast tier (`-m "not slow"`) stays < 3 min


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Name the unmarked tests that took longer than SLOW_SECONDS, so the fast tier stays fast."""
    long = []
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
            long.append(f"{report.duration:.0f}s {report.nodeid}")
    if long:
        terminalreporter.write_sep("-", f"tests over {SLOW_SECONDS:.0f} s not marked slow")
        for line in long:
            terminalreporter.write_line(line)

"""The benchmarks keep working (numbers are not judged here: they are benchmarks, not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_api_benchmark_quick_mode_runs() -> None:
    out = subprocess.run([sys.executable, str(BENCH / "api.py"), "--quick"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "creates/s" in out.stdout and "GET latency p99" in out.stdout

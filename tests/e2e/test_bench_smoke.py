"""The benchmarks keep working (numbers are not judged here: they are benchmarks, not tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("api.py", ["creates/s", "GET latency p99"]),
        ("punctuality.py", ["lateness p99", "joined early", "ad-hoc create"]),
        ("scale.py", ["stored bots", "ratio largest/smallest"]),
        ("webhooks.py", ["deliveries/s", "change → received p99"]),
        ("calendars.py", ["unchanged", "occurrences with a bot"]),
        ("recorder.py", ["mixed MP3", "per-participant MP3s", "video"]),
    ],
)
def test_benchmark_quick_mode_runs(script: str, expected: list[str]) -> None:
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for text in expected:
        assert text in out.stdout, out.stdout

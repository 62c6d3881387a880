"""bench/janus_bots.py keeps working (its numbers are not judged here: it is a benchmark). It
needs what the real-media tests need: root for the network namespace, Janus and espeak-ng."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.media.janus_server import janus_unavailable
from tests.media.netns import netns_unavailable
from tests.media.participants import espeak_unavailable

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_janus_bots_benchmark_quick_mode_runs() -> None:
    for reason in (netns_unavailable(), janus_unavailable(), espeak_unavailable()):
        if reason:
            pytest.skip(reason)
    out = subprocess.run([sys.executable, str(BENCH / "janus_bots.py"), "--quick"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for text in ("RSS per bot (MB)", "CPU per bot", "joining_call → first audio"):
        assert text in out.stdout, out.stdout

"""Real processes: ``summon serve`` started as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

KEY_LINE = re.compile(r"^\s+(sk_[A-Za-z0-9_-]{20,})\s*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A running ``summon serve``; ``lines`` collects what it prints."""

    process: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if m := pattern.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no line matching {pattern.pattern!r} in:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until the HTTP API answers (the condition, not a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("summon serve exited:\n" + "\n".join(self.lines))
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            with self._changed:
                self._changed.wait(0.05)
        raise AssertionError("summon serve did not become ready:\n" + "\n".join(self.lines))

    def kill9(self) -> None:
        """``kill -9``: no shutdown code runs (the process and its pipes are reaped)."""
        self.process.kill()
        self.process.wait()
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.pump is not None:
            self.pump.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_service(data_dir: Path, extra_env: dict[str, str] | None = None, port: int | None = None) -> Service:
    port = port or free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUMMON_")},
        "SUMMON_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        # Services started side by side must not compete for the SMTP port; the mail tests
        # give theirs one.
        "SUMMON_SMTP_PORT": "0",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "summon", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = Service(process, f"http://127.0.0.1:{port}", env)
    service.pump = threading.Thread(target=service._pump, daemon=True)
    service.pump.start()
    return service


def summon_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "summon", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(autouse=True)
def _close_api_clients() -> Iterator[None]:
    from tests.e2e.fleet_helpers import Api

    yield
    Api.close_all()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path / "data")
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop()

"""Helpers for tests that drive real bots through a real ``summon serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

FAST = {
    # Short times so sandbox meetings run in seconds.
    "SUMMON_SCHEDULED_THRESHOLD_S": "2",
    "SUMMON_STAGE_LEAD_S": "1",
    "SUMMON_POOL_SIZE": "2",
    "SUMMON_LATE_JOIN_GRACE_S": "20",
    "SUMMON_RATE_LIMITS": "off",
}


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Api:
    """A client for one service; every instance is closed at the end of the test."""

    open: list[Api] = []

    def __init__(self, url: str, key: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=30)
        Api.open.append(self)

    @classmethod
    def close_all(cls) -> None:
        while cls.open:
            cls.open.pop().client.close()

    def create(self, **body: Any) -> dict[str, Any]:
        r = self.client.post("/api/v1/bot/", json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def create_when_pool_allows(self, timeout: float = 15, **body: Any) -> dict[str, Any]:
        """Create an ad-hoc bot, retrying on 507 as clients are told to (the pool refills)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.client.post("/api/v1/bot/", json=body)
            if r.status_code == 201:
                return r.json()  # type: ignore[no-any-return]
            assert r.status_code == 507 and time.monotonic() < deadline, r.text
            time.sleep(0.1)

    def get(self, bot_id: str) -> dict[str, Any]:
        r = self.client.get(f"/api/v1/bot/{bot_id}/")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def wait_state(self, bot_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        """Wait until the bot reaches one of ``states`` (checking, not sleeping blindly)."""
        deadline = time.monotonic() + timeout
        while True:
            bot = self.get(bot_id)
            if bot["state"] in states:
                return bot
            if time.monotonic() > deadline:
                raise AssertionError(f"bot {bot_id} stuck in {bot['state']}: {bot['status_changes']}")
            time.sleep(0.05)

    def all_bots(self) -> list[dict[str, Any]]:
        out, page = [], 1
        while True:
            r = self.client.get("/api/v1/bot/", params={"page": page, "page_size": 1000})
            data = r.json()
            out += data["results"]
            if not data["next"]:
                return out
            page += 1


def codes(bot: dict[str, Any]) -> list[str]:
    return [c["code"] for c in bot["status_changes"]]


def lateness_ms(bot: dict[str, Any]) -> float:
    joining = next(c for c in bot["status_changes"] if c["code"] == "joining_call")
    return (parse_ts(joining["created_at"]) - parse_ts(bot["join_at"])).total_seconds() * 1000


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def runtime_pids(service_pid: int) -> list[int]:
    result = []
    for child in children(service_pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"summon.runtime" in f.read():
                    result.append(child)
        except FileNotFoundError:
            continue
    return result


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

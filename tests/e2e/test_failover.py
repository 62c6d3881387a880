"""kill -9 under load: nothing lost, nothing joined twice — one node restarted (SQLite), and two
nodes sharing PostgreSQL with one of them killed."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, _pg_admin, run_blocking
from tests.e2e.conftest import KEY_LINE, start_service, summon_cli
from tests.e2e.fleet_helpers import FAST, Api, codes, iso_in

pytestmark = pytest.mark.slow
TERMINAL = {"done", "fatal"}


def wait_all_terminal(api: Api, ids: list[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        bots = [b for b in api.all_bots() if b["id"] in set(ids)]
        if len(bots) == len(ids) and all(b["state"] in TERMINAL for b in bots):
            return bots
        if time.monotonic() > deadline:
            stuck = {b["id"]: b["state"] for b in bots if b["state"] not in TERMINAL}
            raise AssertionError(f"{len(stuck)} bots not finished: {list(stuck.items())[:5]}")
        time.sleep(0.2)


def wait_joined(api: Api, ids: list[str], at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum("joining_call" in codes(b) for b in api.all_bots() if b["id"] in set(ids)) < at_least:
        assert time.monotonic() < deadline, "bots did not start joining"
        time.sleep(0.1)


def assert_joined_once(bots: list[dict]) -> None:  # type: ignore[type-arg]
    for bot in bots:
        assert codes(bot).count("joining_call") <= 1, bot["status_changes"]
        assert codes(bot).count("staged") <= 1, bot["status_changes"]


def test_kill_9_and_restart_loses_nothing(tmp_path: Path) -> None:
    env = {**FAST, "SUMMON_LATE_JOIN_GRACE_S": "60"}
    svc = start_service(tmp_path / "data", env)
    key = svc.wait_for_line(KEY_LINE).group(1)
    svc.wait_ready()
    api = Api(svc.url, key)
    ids = [api.create(meeting_url=f"sandbox://m{i}?participants=alice@0&end_after=1", join_at=iso_in(3 + i * 0.1))["id"]
           for i in range(40)]
    adhoc = [api.create(meeting_url="sandbox://adhoc?participants=alice@0")["id"] for _ in range(2)]
    wait_joined(api, ids, at_least=8)
    svc.kill9()

    again = start_service(tmp_path / "data", env)
    try:
        again.wait_ready()
        api = Api(again.url, key)
        bots = wait_all_terminal(api, ids + adhoc, timeout=90)
        assert len(bots) == len(ids) + len(adhoc)  # none lost
        assert_joined_once(bots)
        by_id = {b["id"]: b for b in bots}
        for bot_id in ids:
            bot = by_id[bot_id]
            if bot["state"] == "fatal":
                # In a call when the service died: its meeting connection died with it.
                assert bot["status_changes"][-1]["sub_code"] == "heartbeat_timeout", bot["status_changes"]
                assert "joining_call" in codes(bot)
            else:
                assert codes(bot)[-1] == "done" and "joining_call" in codes(bot)
        late = [c for b in bots for c in b["status_changes"] if c["code"] == "joining_call" and c["message"]]
        assert all("after join_at" in c["message"] for c in late)
        for bot_id in adhoc:  # in a call at the kill: lost with the runtime, and said so
            assert by_id[bot_id]["state"] == "fatal"
    finally:
        again.stop()
    # Every status change has exactly one bot.* outbox message (written in the same
    # transaction); recording events (recording.*, *.done) come on top of those.
    with sqlite3.connect(tmp_path / "data" / "summon.db") as db:
        changes = dict(db.execute("SELECT lower(hex(bot_id)), count(*) FROM bot_status_changes GROUP BY bot_id"))
        messages = dict(db.execute(
            "SELECT lower(hex(bot_id)), count(*) FROM outbox WHERE event_type LIKE 'bot.%' GROUP BY bot_id"))
    assert changes == messages and len(changes) == len(ids) + len(adhoc)


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    name = f"summon_nodes_{uuid.uuid4().hex[:10]}"
    try:
        run_blocking(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    run_blocking(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_two_nodes_on_postgresql_each_bot_joins_once_even_when_one_dies(tmp_path: Path, fresh_postgres: str) -> None:
    env = {**FAST, "SUMMON_DATABASE_URL": fresh_postgres, "SUMMON_LATE_JOIN_GRACE_S": "120"}
    made = summon_cli({**env, "SUMMON_DATA_DIR": str(tmp_path / "cli"), "PATH": "/usr/bin:/bin"},
                      "keys", "create", "--workspace", "nodes")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    node_a = start_service(tmp_path / "a", env)
    node_b = start_service(tmp_path / "b", env)
    try:
        node_a.wait_ready()
        node_b.wait_ready()
        api = Api(node_a.url, key)
        ids = [api.create(meeting_url=f"sandbox://n{i}?participants=alice@0&end_after=0.5",
                          join_at=iso_in(4 + i * 0.04))["id"] for i in range(300)]
        wait_joined(api, ids, at_least=60)
        node_a.kill9()
        api = Api(node_b.url, key)
        bots = wait_all_terminal(api, ids, timeout=120)
        assert len(bots) == len(ids)
        assert_joined_once(bots)
        # Every bot joined, once: the ones node A had staged were taken over by node B.
        assert all(codes(b).count("joining_call") == 1 for b in bots), [codes(b) for b in bots if "joining_call" not in codes(b)][:3]
        states = [b["state"] for b in bots]
        assert states.count("done") >= len(ids) - 60  # only bots in a call on A may be lost
    finally:
        node_a.stop()
        node_b.stop()



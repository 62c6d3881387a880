"""The front door, as a newcomer uses it: ``summon serve`` on an empty data dir, the printed key,
curl-style calls over real HTTP, and the CLI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import KEY_LINE, start_service, summon_cli

pytestmark = pytest.mark.slow

SEED = """{
  "meeting_url": "https://zoom.us/j/123456789",
  "bot_name": "My scheduled bot",
  "join_at": "%s",
}"""


def test_first_start_prints_a_key_once_and_the_seed_flow_works(tmp_path: Path) -> None:
    svc = start_service(tmp_path / "data")
    try:
        key = svc.wait_for_line(KEY_LINE).group(1)
        svc.wait_ready()
        auth = {"Authorization": f"Token {key}"}
        join_at = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(time.time() + 3600))
        r = httpx.post(svc.url + "/api/v1/bot/", content=SEED % join_at, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        bot = r.json()
        assert bot["state"] == "scheduled"
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7200))
        r = httpx.patch(f"{svc.url}/api/v1/bots/{bot['id']}", json={"join_at": later}, headers=auth)
        assert r.status_code == 200 and r.json()["join_at"].startswith(later[:19])
        r = httpx.delete(f"{svc.url}/api/v1/bots/{bot['id']}", headers=auth)
        assert r.status_code == 200 and r.json() == {"id": bot["id"], "deleted": True}
        assert httpx.get(f"{svc.url}/api/v1/bot/{bot['id']}/", headers=auth).status_code == 404
        assert httpx.get(svc.url + "/api/v1/bot/", headers={"Authorization": "Token wrong"}).status_code == 401
    finally:
        svc.stop()
    # A second start on the same data prints no new key, and the old one still works.
    again = start_service(tmp_path / "data")
    try:
        again.wait_ready()
        assert not any(KEY_LINE.search(line) for line in again.lines)
        assert httpx.get(again.url + "/api/v1/bot/", headers={"Authorization": key}).status_code == 200
    finally:
        again.stop()


def test_keys_and_bots_cli_against_a_running_service(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    created = summon_cli(service.env, "keys", "create", "--workspace", "team-a")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"sk_[A-Za-z0-9_-]{20,}", lines[0])  # only the key
    key = lines[0]
    env = {**service.env, "SUMMON_URL": service.url, "SUMMON_API_KEY": key}

    made = summon_cli(env, "bots", "create", "sandbox://demo?end_after=5", "--bot-name", "CLI bot", "-m", "team=a")
    assert made.returncode == 0, made.stderr
    bot = json.loads(made.stdout)
    assert bot["bot_name"] == "CLI bot" and bot["metadata"] == {"team": "a"}
    listed = summon_cli(env, "bots", "list")
    assert listed.returncode == 0 and bot["id"] in listed.stdout
    got = summon_cli(env, "bots", "get", bot["id"])
    assert got.returncode == 0 and json.loads(got.stdout)["id"] == bot["id"]
    missing = summon_cli(env, "bots", "get", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode != 0 and "404" in missing.stderr

    keys_list = summon_cli(service.env, "keys", "list", "--workspace", "team-a")
    assert keys_list.returncode == 0 and key[:9] in keys_list.stdout
    revoked = summon_cli(service.env, "keys", "revoke", key[:9])
    assert revoked.returncode == 0, revoked.stderr
    # The service caches a verified key for SUMMON_AUTH_CACHE_S (2 s): wait for the condition.
    deadline = time.monotonic() + 10
    while httpx.get(service.url + "/api/v1/bot/", headers={"Authorization": key}).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.1)

    bad = summon_cli(service.env, "keys", "create", "--workspace", "no spaces allowed")
    assert bad.returncode != 0


def test_serve_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    created = summon_cli({"SUMMON_DATA_DIR": str(tmp_path / "d"), "SUMMON_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
                         "keys", "create", "--workspace", f"pg-{tmp_path.name[-8:]}")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    svc = start_service(tmp_path / "data", {"SUMMON_DATABASE_URL": url})
    try:
        svc.wait_ready()
        r = httpx.post(svc.url + "/api/v1/bot/", json={"meeting_url": "https://meet.google.com/abc-defg-hij"},
                       headers={"Authorization": key})
        assert r.status_code == 201 and r.json()["state"] == "ready"
    finally:
        svc.stop()


def test_webhooks_cli(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = summon_cli(service.env, "keys", "create", "--workspace", "hooks").stdout.strip()
    env = {**service.env, "SUMMON_URL": service.url, "SUMMON_API_KEY": key}
    added = summon_cli(env, "webhooks", "add", "https://hooks.example.com/in", "--event", "bot.done")
    assert added.returncode == 0, added.stderr
    endpoint = json.loads(added.stdout)
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_types"] == ["bot.done"]
    listed = summon_cli(env, "webhooks", "list")
    assert endpoint["id"] in listed.stdout and "bot.done" in listed.stdout
    assert summon_cli(env, "webhooks", "remove", endpoint["id"]).returncode == 0
    assert endpoint["id"] not in summon_cli(env, "webhooks", "list").stdout

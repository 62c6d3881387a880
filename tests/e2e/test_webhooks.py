"""Webhooks end to end: a real summon serve, a real HTTP receiver verifying every delivery with
the standardwebhooks and svix packages only, a sandbox bot's whole life, and kill -9."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from tests.e2e.conftest import KEY_LINE, start_service
from tests.e2e.fleet_helpers import FAST, Api, codes, iso_in

pytestmark = pytest.mark.slow


class Receiver:
    """An HTTP server on loopback that verifies each delivery and keeps what it got."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    assert receiver.secret is not None
                    payload = StandardWebhook(receiver.secret).verify(body, headers)
                    svix_headers = {k: v for k, v in headers.items() if k.startswith("svix-")}
                    SvixWebhook(receiver.secret).verify(body, svix_headers)
                except Exception:
                    with receiver.lock:
                        receiver.rejected += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append({"id": headers["webhook-id"], "payload": payload, "raw": orjson.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def for_bot(self, bot_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["payload"]["data"]["bot"]["id"] == bot_id]

    def wait(self, condition: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"webhooks did not arrive: {len(self.received)} received"
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_a_sandbox_bots_whole_life_arrives_signed_and_in_order(tmp_path: Path, receiver: Receiver) -> None:
    svc = start_service(tmp_path / "data", FAST)
    try:
        key = svc.wait_for_line(KEY_LINE).group(1)
        svc.wait_ready()
        api = Api(svc.url, key)
        r = api.client.post("/api/v1/webhook_endpoints/", json={"url": receiver.url})
        assert r.status_code == 201
        receiver.secret = r.json()["secret"]
        bot = api.create(meeting_url="sandbox://hooked?participants=alice@0&end_after=1", join_at=iso_in(2.5))
        done = api.wait_state(bot["id"], {"done", "fatal"}, timeout=30)
        expected = [f"bot.{c}" for c in codes(done)]
        # Status changes only: recording events (recording.*, *.done) arrive alongside them.
        def status_changes() -> list[dict[str, Any]]:
            return [g for g in receiver.for_bot(bot["id"]) if g["payload"]["event"].startswith("bot.")]

        receiver.wait(lambda: len(status_changes()) >= len(expected))
        got = status_changes()
        assert [g["payload"]["event"] for g in got] == expected  # every change, in order
        times = [g["payload"]["data"]["data"]["updated_at"] for g in got]
        assert times == sorted(times)
        # With the recording's webhooks among them, everything still arrives in updated_at order.
        receiver.wait(lambda: any(g["payload"]["event"] == "recording.done" for g in receiver.for_bot(bot["id"])))
        everything = [g["payload"]["data"]["data"]["updated_at"] for g in receiver.for_bot(bot["id"])]
        assert everything == sorted(everything), [g["payload"]["event"] for g in receiver.for_bot(bot["id"])]
        assert receiver.rejected == 0
        assert len({g["id"] for g in got}) == len(got)  # one webhook-id per message
        ledger = api.client.get("/api/v1/webhook_deliveries/", params={"bot_id": bot["id"]}).json()["results"]
        ledger = [d for d in ledger if d["event_type"].startswith("bot.")]
        assert len(ledger) == len(expected) and {d["status"] for d in ledger} == {"delivered"}
    finally:
        svc.stop()


def test_kill_9_loses_no_webhook(tmp_path: Path, receiver: Receiver) -> None:
    svc = start_service(tmp_path / "data", FAST)
    key = svc.wait_for_line(KEY_LINE).group(1)
    svc.wait_ready()
    api = Api(svc.url, key)
    r = api.client.post("/api/v1/webhook_endpoints/", json={"url": receiver.url})
    receiver.secret = r.json()["secret"]
    ids = [api.create(meeting_url=f"sandbox://k{i}?participants=alice@0&end_after=0.5", join_at=iso_in(3))["id"]
           for i in range(60)]
    receiver.wait(lambda: len(receiver.received) >= 100, timeout=60)  # mid-stream
    svc.kill9()
    again = start_service(tmp_path / "data", FAST)
    try:
        again.wait_ready()
        api = Api(again.url, key)
        bots = [api.wait_state(i, {"done", "fatal"}, timeout=90) for i in ids]
        # Every status change of every bot reaches the receiver at least once.
        for bot in bots:
            receiver.wait(lambda bot=bot: {f"bot.{c}" for c in codes(bot)} <= {g["payload"]["event"] for g in receiver.for_bot(bot["id"])})
        with receiver.lock:
            by_id: dict[str, set[str]] = {}
            for g in receiver.received:
                by_id.setdefault(g["id"], set()).add(g["raw"]["event"])
        assert all(len(events) == 1 for events in by_id.values())  # a duplicate is the same message
        assert receiver.rejected == 0
    finally:
        again.stop()

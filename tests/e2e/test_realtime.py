"""Real-time endpoints end to end: a real summon serve runs a sandbox meeting with scripted
participants, speech and chat; a real HTTP receiver (verifying every POST with the
standardwebhooks package and the workspace's real-time secret) and a real websocket server get
the events as they happen, while a dead endpoint beside them changes nothing for the bot."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.e2e.conftest import KEY_LINE, free_port, start_service
from tests.e2e.fleet_helpers import FAST, Api, iso_in
from tests.e2e.test_webhooks import Receiver

pytestmark = pytest.mark.slow

EVENTS = ["participant_events.join", "participant_events.leave", "participant_events.speech_on",
          "participant_events.speech_off", "participant_events.chat_message", "transcript.data",
          "transcript.partial_data"]


class WebsocketServer:
    """A real websocket server on loopback, on a loop of its own thread."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/stream"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                with self.lock:
                    self.messages.append(orjson.loads(message.data))
        return ws

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver, WebsocketServer]]:
    realtime, workspace, ws = Receiver(), Receiver(), WebsocketServer()
    realtime.thread.start()
    workspace.thread.start()
    ws.start()
    yield realtime, workspace, ws
    ws.stop()
    for r in (realtime, workspace):
        r.server.shutdown()
        r.server.server_close()


def test_a_meeting_streams_to_realtime_endpoints_while_a_dead_one_changes_nothing(
    tmp_path: Path, receivers: tuple[Receiver, Receiver, WebsocketServer]
) -> None:
    realtime, workspace, ws = receivers
    svc = start_service(tmp_path / "data", FAST)
    try:
        key = svc.wait_for_line(KEY_LINE).group(1)
        svc.wait_ready()
        api = Api(svc.url, key)
        r = api.client.post("/api/v1/webhook_endpoints/", json={"url": workspace.url, "event_types": [
            "realtime_endpoint.running", "realtime_endpoint.done", "realtime_endpoint.failed"]})
        workspace.secret = r.json()["secret"]
        realtime.secret = api.client.get("/api/v1/realtime_signing_secret/").json()["secret"]
        dead = f"http://127.0.0.1:{free_port()}/nobody"
        bot = api.create(
            meeting_url="sandbox://standup?participants=alice@0-3,bob@0.5&say=alice@1:hello%20team"
                        "&chat=bob@1.5:morning&end_after=4",
            join_at=iso_in(2.5),
            recording_config={"realtime_endpoints": [
                {"type": "webhook", "url": realtime.url, "events": EVENTS, "metadata": {"app": "notes"}},
                {"type": "websocket", "url": ws.url, "events": ["participant_events.join", "transcript.data"]},
                {"type": "webhook", "url": dead, "events": EVENTS},
            ]},
        )
        done = api.wait_state(bot["id"], {"done", "fatal"}, timeout=40)
        assert done["status_changes"][-1]["code"] == "done"  # the dead endpoint did not disturb the bot
        realtime.wait(lambda: any(g["payload"]["event"] == "participant_events.leave" for g in realtime.received))
        got = [g["payload"] for g in realtime.received]
        assert realtime.rejected == 0  # every POST verified with the workspace's real-time secret
        joins = [p["data"]["data"]["participant"]["name"] for p in got if p["event"] == "participant_events.join"]
        assert sorted(joins) == ["alice", "bob"]
        words = [w["text"] for p in got if p["event"] == "transcript.data" for w in p["data"]["data"]["words"]]
        assert " ".join(words).lower().startswith("hello team")
        chat = [p["data"]["data"]["data"] for p in got if p["event"] == "participant_events.chat_message"]
        assert chat and chat[0]["text"] == "morning"
        assert all(p["data"]["bot"]["id"] == bot["id"] for p in got)
        assert all(p["data"]["realtime_endpoint"]["metadata"] == {"app": "notes"} for p in got)

        def ws_events() -> list[str]:
            with ws.lock:
                return [m["event"] for m in ws.messages]

        realtime.wait(lambda: ws_events().count("participant_events.join") == 2 and "transcript.data" in ws_events())
        assert set(ws_events()) == {"participant_events.join", "transcript.data"}
        # The two working endpoints ran and finished; the dead one is still being retried.
        workspace.wait(lambda: [g["payload"]["event"] for g in workspace.received].count("realtime_endpoint.done") == 2)
        status = [g["payload"]["event"] for g in workspace.received]
        assert status.count("realtime_endpoint.running") == 2 and "realtime_endpoint.failed" not in status
    finally:
        svc.stop()

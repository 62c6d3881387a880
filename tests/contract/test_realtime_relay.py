"""Real-time endpoints against the real store (the status webhooks go through the outbox), on a
fake clock: what is sent where, signatures, order, the 1 s × 60 retries, failure and isolation,
and a real websocket server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from summon.clock import FakeClock
from summon.domain.bots import Bot
from summon.domain.realtime import object_id
from summon.services import webhooks as endpoints
from summon.services.context import Context
from summon.webhooks.realtime import RealtimeRelay
from summon.webhooks.transport import DeliveryError, FunctionTransport
from tests import builders

JOIN = "participant_events.join"
WORDS = "transcript.data"


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def event(name: str = "alice") -> dict[str, Any]:
    return {"participant": {"id": 100, "name": name, "is_host": True, "platform": "sandbox", "extra_data": {}},
            "timestamp": {"absolute": "2030-01-01T09:00:00Z", "relative": 1.0}, "data": None}


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, Mapping[str, str], bytes]] = []
        self.refuse: set[str] = set()

    async def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        self.got.append((url, headers, body))
        if url in self.refuse:
            raise DeliveryError("connection refused")
        return 200, b""

    def events(self, url: str) -> list[dict[str, Any]]:
        return [orjson.loads(b) for u, _, b in self.got if u == url]


async def hosted_bot(ctx: Context, endpoints_config: list[dict[str, Any]]) -> Bot:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = builders.bot(ws.id, ctx.clock.now())
    bot.config = {**bot.config, "recording_config": {"realtime_endpoints": endpoints_config}}
    await ctx.store.insert_bot(bot, [])
    return bot


async def outbox_events(ctx: Context) -> list[str]:
    return [m.event_type for m in await ctx.store.pending_messages(100)]


async def test_events_go_where_asked_in_order_signed_with_the_workspace_secret(ctx: Context, clock: FakeClock) -> None:
    clock.set(datetime.now(UTC))  # the receiver checks the signature's timestamp against its own clock
    receiver = Receiver()
    bot = await hosted_bot(ctx, [
        {"type": "webhook", "url": "https://a.example/rt", "events": [JOIN, WORDS], "metadata": {"k": "v"}},
        {"type": "webhook", "url": "https://b.example/rt", "events": [WORDS]},
        {"type": "rtmp", "url": "rtmp://c.example/live", "events": ["video_mixed_flv.data"]},
    ])
    relay = RealtimeRelay(ctx, FunctionTransport(receiver), bots={str(bot.id): bot}.get)
    relay.on_event(str(bot.id), JOIN, event("alice"), 0)
    relay.on_event(str(bot.id), JOIN, event("bob"), 0)
    relay.on_event(str(bot.id), WORDS, {"words": [{"text": "hello"}], "participant": event()["participant"]}, 0)
    relay.on_event(str(bot.id), "participant_events.chat_message", event(), 0)  # nobody asked for it
    await until(lambda: len(receiver.got) == 4)
    a = receiver.events("https://a.example/rt")
    assert [(e["event"], e["data"]["data"].get("participant", {}).get("name")) for e in a] == [
        (JOIN, "alice"), (JOIN, "bob"), (WORDS, "alice")]
    first = a[0]["data"]
    assert first["bot"] == {"id": str(bot.id), "metadata": bot.metadata}
    assert first["realtime_endpoint"] == {"id": str(object_id(bot.id, "realtime_endpoint:0")), "metadata": {"k": "v"}}
    assert first["participant_events"]["id"] == str(object_id(bot.id, "participant_events"))
    assert a[2]["data"]["transcript"]["id"] == str(object_id(bot.id, "transcript"))
    assert [e["event"] for e in receiver.events("https://b.example/rt")] == [WORDS]
    secret = endpoints.realtime_secret(ctx, bot.workspace_id)
    assert secret.startswith("whsec_") and secret == endpoints.realtime_secret(ctx, bot.workspace_id)
    for _, headers, body in receiver.got:
        Webhook(secret).verify(body, dict(headers))
        assert headers["svix-signature"] == headers["webhook-signature"]
    relay.bot_released(str(bot.id))
    await until(lambda: relay.streams == 0)
    assert sorted(await outbox_events(ctx)) == ["realtime_endpoint.done"] * 2 + ["realtime_endpoint.running"] * 2
    await relay.stop()


async def test_a_dead_endpoint_is_retried_every_second_60_times_then_failed_without_holding_others(
    ctx: Context, clock: FakeClock
) -> None:
    receiver = Receiver()
    receiver.refuse.add("https://dead.example/rt")
    bot = await hosted_bot(ctx, [
        {"type": "webhook", "url": "https://dead.example/rt", "events": [JOIN]},
        {"type": "webhook", "url": "https://fine.example/rt", "events": [JOIN]},
    ])
    relay = RealtimeRelay(ctx, FunctionTransport(receiver), bots={str(bot.id): bot}.get)
    for name in ("alice", "bob", "carol"):
        relay.on_event(str(bot.id), JOIN, event(name), 0)
    # The healthy endpoint gets everything at once, while the dead one is on its first retry.
    await until(lambda: len(receiver.events("https://fine.example/rt")) == 3)

    def dead() -> int:
        return len(receiver.events("https://dead.example/rt"))

    for attempt in range(1, 60):
        await until(lambda attempt=attempt: dead() == attempt and clock.sleepers == 1)
        clock.advance(0.999)
        await asyncio.sleep(0.005)
        assert dead() == attempt  # nothing before the second is up
        clock.advance(0.001)
    await until(lambda: dead() == 60)
    assert all(e["data"]["data"]["participant"]["name"] == "alice" for e in receiver.events("https://dead.example/rt"))
    failed = await eventually(ctx, "realtime_endpoint.failed")
    assert failed.payload["data"]["data"]["error"]["message"].startswith("60 attempts failed")
    assert failed.payload["data"]["realtime_endpoint"]["id"] == str(object_id(bot.id, "realtime_endpoint:0"))
    # Given up: later events are not even tried; the healthy endpoint still gets them.
    relay.on_event(str(bot.id), JOIN, event("dave"), 0)
    await until(lambda: len(receiver.events("https://fine.example/rt")) == 4)
    clock.advance(5)
    await asyncio.sleep(0.05)
    assert dead() == 60
    await relay.stop()


async def eventually(ctx: Context, event_type: str, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            for message in await ctx.store.pending_messages(100):
                if message.event_type == event_type:
                    return message
            await asyncio.sleep(0.005)


class WebsocketServer:
    """A real websocket server on loopback that keeps the text messages it gets."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(orjson.loads(message.data))
        return ws

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_websocket_endpoint_streams_over_one_connection(ctx: Context) -> None:
    server = WebsocketServer()
    await server.start()
    try:
        bot = await hosted_bot(ctx, [{"type": "websocket", "url": server.url, "events": [JOIN, WORDS]}])
        relay = RealtimeRelay(ctx, FunctionTransport(Receiver()), bots={str(bot.id): bot}.get)
        for name in ("alice", "bob"):
            relay.on_event(str(bot.id), JOIN, event(name), 0)
        relay.on_event(str(bot.id), "participant_events.leave", event("alice"), 0)  # not asked for
        relay.on_event(str(bot.id), WORDS, {"words": [{"text": "hi"}], "participant": event()["participant"]}, 0)
        await until(lambda: len(server.messages) == 3)
        assert [m["event"] for m in server.messages] == [JOIN, JOIN, WORDS]
        assert server.messages[1]["data"]["data"]["participant"]["name"] == "bob"
        relay.bot_released(str(bot.id))
        await until(lambda: relay.streams == 0)
        assert sorted(await outbox_events(ctx)) == ["realtime_endpoint.done", "realtime_endpoint.running"]
        await relay.stop()
    finally:
        await server.stop()


async def test_websocket_that_never_connects_fails_after_60_tries(ctx: Context, clock: FakeClock) -> None:
    from tests.e2e.conftest import free_port

    url = f"ws://127.0.0.1:{free_port()}/ws"  # nobody listens
    tries: list[str] = []
    real = RealtimeRelay(ctx, FunctionTransport(Receiver()), bots=lambda _: None)._connect_websocket  # noqa: SLF001

    async def connect(target: str) -> Any:
        tries.append(target)
        return await real(target)

    bot = await hosted_bot(ctx, [{"type": "websocket", "url": url, "events": [JOIN]}])
    relay = RealtimeRelay(ctx, FunctionTransport(Receiver()), bots={str(bot.id): bot}.get, connect_websocket=connect)
    relay.on_event(str(bot.id), JOIN, event(), 0)
    for attempt in range(1, 60):
        await until(lambda attempt=attempt: len(tries) == attempt and clock.sleepers == 1)
        clock.advance(1)
    await until(lambda: len(tries) == 60)
    failed = await eventually(ctx, "realtime_endpoint.failed")
    assert "60 attempts failed" in failed.payload["data"]["data"]["error"]["message"]
    await relay.stop()

"""Real-time endpoints (SPEC §10.4): a bot's meeting activity, streamed while it happens.

The fleet agent hears every event its runtimes report (participants, speech, chat, transcript
words) and hands each to :meth:`RealtimeRelay.on_event`, which only appends it to the queue of
each of the bot's real-time endpoints that asked for that kind — it never waits, never raises,
and its queues are bounded (the oldest events go first when an endpoint falls far behind). So a
slow, dead or hostile endpoint cannot slow the bot, the agent, or another endpoint.

One worker per (bot, endpoint) sends in order:

- **webhook**: a POST signed like every Summon webhook (Standard Webhooks and ``svix-*``
  headers), with the workspace's real-time secret (``services.webhooks.realtime_secret``);
  an event that is not accepted is tried again every second, 60 times in all; then the endpoint
  is **failed** for the rest of the bot's life;
- **websocket**: one connection, each event a JSON text message; a broken connection is
  re-opened every second, 60 times in all, then the endpoint is failed.

Each endpoint's course is reported as workspace webhooks (durable, through the outbox):
``realtime_endpoint.running`` when it first takes an event, ``done`` when the bot is finished
and everything was sent, ``failed`` when it gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import uuid4

import aiohttp
import orjson

from summon.domain.bots import Bot
from summon.domain.realtime import RealtimeTarget, endpoint_status_event, realtime_payload, targets_of
from summon.domain.webhooks import (
    REALTIME_MAX_ATTEMPTS,
    REALTIME_TIMEOUT,
    next_realtime_attempt_at,
    signature_headers,
)
from summon.services import webhooks as endpoints
from summon.services.context import Context
from summon.webhooks.transport import DeliveryError, WebhookTransport, refuse_private

log = logging.getLogger(__name__)

#: Events kept for one endpoint that is behind; beyond that the oldest are dropped.
QUEUE_LIMIT = 5000


class WebsocketConnection(Protocol):
    async def send(self, text: str) -> None: ...

    async def close(self) -> None: ...


WebsocketConnector = Callable[[str], Awaitable[WebsocketConnection]]


class _Stream:
    """One real-time endpoint of one bot: its queue and its worker's state."""

    def __init__(self, bot: Bot, target: RealtimeTarget) -> None:
        self.bot = bot
        self.target = target
        self.queue: deque[dict[str, Any]] = deque()
        self.more = asyncio.Event()
        self.ended = False  # the bot is finished: send what is queued, then stop
        self.running = False
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    def put(self, payload: dict[str, Any]) -> None:
        if len(self.queue) >= QUEUE_LIMIT:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("bot %s: real-time endpoint %s is behind; %d events dropped",
                            self.bot.id, self.target.url, self.dropped)
        self.queue.append(payload)
        self.more.set()

    async def next(self) -> dict[str, Any] | None:
        """The next event to send; None once the bot is finished and nothing is left."""
        while not self.queue:
            if self.ended:
                return None
            self.more.clear()
            await self.more.wait()
        return self.queue[0]


class RealtimeRelay:
    def __init__(
        self,
        ctx: Context,
        transport: WebhookTransport,
        *,
        bots: Callable[[str], Bot | None],
        connect_websocket: WebsocketConnector | None = None,
        block_private: bool = False,
        max_attempts: int = REALTIME_MAX_ATTEMPTS,
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self._bots = bots
        self._connect_websocket = connect_websocket or AiohttpWebsockets(block_private).connect
        self.block_private = block_private
        self.max_attempts = max_attempts
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._failed: set[tuple[str, int]] = set()
        self._targets: dict[str, list[RealtimeTarget]] = {}

    # -- what the agent calls ------------------------------------------------------------------
    def on_event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
        """An event of a hosted bot: queue it for every endpoint that wants it. Never blocks."""
        try:
            targets = self._targets.get(bot_id)
            if targets is None:
                bot = self._bots(bot_id)
                if bot is None:
                    return
                targets = self._targets[bot_id] = targets_of(bot)
            for target in targets:
                if not target.wants(kind) or (bot_id, target.index) in self._failed:
                    continue
                stream = self._streams.get((bot_id, target.index))
                if stream is None:
                    bot = self._bots(bot_id)
                    if bot is None:
                        return
                    stream = self._streams[(bot_id, target.index)] = _Stream(bot, target)
                    stream.task = asyncio.get_running_loop().create_task(
                        self._work(stream), name=f"realtime:{bot_id}:{target.index}")
                stream.put(realtime_payload(stream.bot, target, kind, data))
        except Exception:  # a relay problem must never reach the agent
            log.exception("bot %s: relaying %s to real-time endpoints failed", bot_id, kind)

    def bot_released(self, bot_id: str) -> None:
        """The bot is finished on this host: its endpoints send what they have, then end."""
        self._targets.pop(bot_id, None)
        for (owner, index), stream in list(self._streams.items()):
            if owner == bot_id:
                stream.ended = True
                stream.more.set()
        self._failed = {key for key in self._failed if key[0] != bot_id}

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let the endpoints send what they have for up to ``grace_s``, then stop them."""
        for stream in self._streams.values():
            stream.ended = True
            stream.more.set()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.transport.close()

    @property
    def streams(self) -> int:
        return len(self._streams)

    # -- workers ---------------------------------------------------------------------------------
    async def _work(self, stream: _Stream) -> None:
        key = (str(stream.bot.id), stream.target.index)
        try:
            if stream.target.type == "websocket":
                ok = await self._stream_websocket(stream)
            else:
                ok = await self._stream_webhook(stream)
            if ok and stream.running:
                await self._report(stream, "done")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bot %s: real-time endpoint %s stopped", stream.bot.id, stream.target.url)
        finally:
            if self._streams.get(key) is stream:
                del self._streams[key]

    async def _stream_webhook(self, stream: _Stream) -> bool:
        secret = endpoints.realtime_secret(self.ctx, stream.bot.workspace_id)
        clock = self.ctx.clock
        while (payload := await stream.next()) is not None:
            body = orjson.dumps(payload)
            message_id = f"msg_{uuid4().hex}"
            attempts, error = 0, ""
            while True:
                now = clock.now()
                try:
                    if self.block_private:
                        await refuse_private(stream.target.url)
                    headers = signature_headers(message_id, int(now.timestamp()), body, [secret])
                    status, _ = await self.transport.post(
                        stream.target.url, headers, body, REALTIME_TIMEOUT.total_seconds())
                    if 200 <= status < 300:
                        break
                    error = f"HTTP {status}"
                except DeliveryError as exc:
                    error = exc.reason
                attempts += 1
                retry_at = next_realtime_attempt_at(attempts, now)
                if retry_at is None or attempts >= self.max_attempts:
                    await self._give_up(stream, f"{attempts} attempts failed; the last: {error}")
                    return False
                await clock.sleep(max((retry_at - clock.now()).total_seconds(), 0.0))
            stream.queue.popleft()
            if not stream.running:
                stream.running = True
                await self._report(stream, "running")
        return True

    async def _stream_websocket(self, stream: _Stream) -> bool:
        clock = self.ctx.clock
        connection: WebsocketConnection | None = None
        failures, error = 0, ""
        try:
            while (payload := await stream.next()) is not None:
                try:
                    if connection is None:
                        connection = await asyncio.wait_for(
                            self._connect_websocket(stream.target.url), REALTIME_TIMEOUT.total_seconds())
                        if not stream.running:
                            stream.running = True
                            await self._report(stream, "running")
                    await asyncio.wait_for(connection.send(orjson.dumps(payload).decode()),
                                           REALTIME_TIMEOUT.total_seconds())
                except (DeliveryError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                    error = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                    failures += 1
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            await connection.close()
                        connection = None
                    if failures >= self.max_attempts:
                        await self._give_up(stream, f"{failures} attempts failed; the last: {error}")
                        return False
                    await clock.sleep(1.0)
                    continue
                failures = 0
                stream.queue.popleft()
            return True
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def _give_up(self, stream: _Stream, error: str) -> None:
        key = (str(stream.bot.id), stream.target.index)
        if str(stream.bot.id) in self._targets:  # still hosted: no more events for it
            self._failed.add(key)
        stream.queue.clear()
        log.warning("bot %s: real-time endpoint %s failed: %s", stream.bot.id, stream.target.url, error)
        await self._report(stream, "failed", error)

    async def _report(self, stream: _Stream, code: str, error: str | None = None) -> None:
        message = endpoint_status_event(stream.bot, stream.target, code, self.ctx.clock.now(), error)
        try:
            await self.ctx.store.append_outbox([message])
        except Exception:
            log.exception("bot %s: recording real-time endpoint %s %s failed", stream.bot.id,
                          stream.target.id, code)
            return
        self.ctx.signals.notify("outbox")


class AiohttpWebsockets:
    """Websocket connections for real-time endpoints, with aiohttp (heartbeats keep idle
    connections open through proxies)."""

    def __init__(self, block_private: bool = False) -> None:
        self.block_private = block_private

    async def connect(self, url: str) -> WebsocketConnection:
        if self.block_private:
            await refuse_private(url)
        session = aiohttp.ClientSession(headers={"user-agent": "Summon-Realtime/1"})
        try:
            ws = await session.ws_connect(url, heartbeat=20.0, autoping=True)
        except BaseException:
            await session.close()
            raise
        return _AiohttpWebsocket(session, ws)


class _AiohttpWebsocket:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session, self._ws = session, ws

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise DeliveryError("the websocket was closed by the other side")
        await self._ws.send_str(text)

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._session.close()

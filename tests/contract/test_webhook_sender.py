"""The webhook sender against the real store (SQLite and PostgreSQL), with a function for a
receiver and a fake clock: fan-out, signatures, retries on the schedule, failure, disabling,
per-bot order, and isolation of a slow endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from summon.clock import FakeClock
from summon.domain.deliveries import DeliveryFilter
from summon.domain.events import bot_status_event
from summon.domain.lifecycle import Status, StatusChange
from summon.services import webhooks as endpoints
from summon.services.context import Context
from summon.webhooks.sender import WebhookSender
from summon.webhooks.transport import DeliveryError, FunctionTransport
from tests import builders


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, Mapping[str, str], bytes]] = []
        self.status: dict[str, int] = {}
        self.hang: set[str] = set()
        self.release = asyncio.Event()

    async def __call__(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        if url in self.hang:
            await self.release.wait()
        self.got.append((url, headers, body))
        status = self.status.get(url, 200)
        if status == 0:
            raise DeliveryError("connection refused")
        return status, b"ok"


async def setup(ctx: Context, *urls: str, event_types: list[str] | None = None) -> tuple[UUID, list[tuple[object, str]]]:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    made = [await endpoints.create_endpoint(ctx, ws.id, url, event_types, None) for url in urls]
    return ws.id, made


async def emit(ctx: Context, workspace_id: UUID, codes: list[Status]) -> UUID:
    bot = builders.bot(workspace_id, ctx.clock.now(), state=codes[0])
    messages = [bot_status_event(bot, StatusChange(code, None, None, ctx.clock.now())) for code in codes]
    await ctx.store.insert_bot(bot, messages)
    return bot.id


async def run_until_idle(sender: WebhookSender, rounds: int = 100) -> None:
    """Drive the sender until nothing is in flight and nothing is due (on the fake clock)."""
    for _ in range(rounds):
        await sender.tick()
        if sender.in_flight:
            await sender.settle()
            continue
        await sender.settle()
        due = await sender.ctx.store.next_delivery_at()
        if due is None or due > sender.ctx.clock.now():
            return
    raise AssertionError("the sender never went idle")


async def test_deliveries_are_signed_and_verifiable(ctx: Context, clock: FakeClock) -> None:
    clock.set(datetime.now(UTC))  # receivers check the timestamp against their own clock
    receiver = Receiver()
    ws, made = await setup(ctx, "https://a.example/hook")
    await emit(ctx, ws, [Status.SCHEDULED, Status.STAGED])
    sender = WebhookSender(ctx, FunctionTransport(receiver))
    await run_until_idle(sender)
    assert len(receiver.got) == 2
    secret = made[0][1]
    for _, headers, body in receiver.got:
        payload = Webhook(secret).verify(body, dict(headers))
        assert payload["event"].startswith("bot.")
        assert headers["svix-id"] == headers["webhook-id"]
    events = [orjson.loads(b)["event"] for _, _, b in receiver.got]
    assert events == ["bot.scheduled", "bot.staged"]
    ledger = await ctx.store.list_deliveries(ws, DeliveryFilter(), None, 10)
    assert {d.status for d in ledger} == {"delivered"} and all(len(d.history) == 1 for d in ledger)


async def test_event_type_filter_and_disabled_endpoints(ctx: Context) -> None:
    receiver = Receiver()
    ws, made = await setup(ctx, "https://only-done.example/", event_types=["bot.done"])
    off, _ = await endpoints.create_endpoint(ctx, ws, "https://off.example/", None, None)
    await endpoints.update_endpoint(ctx, ws, off.id, disabled=True, sent={"disabled"})
    await emit(ctx, ws, [Status.SCHEDULED, Status.DONE])
    await run_until_idle(WebhookSender(ctx, FunctionTransport(receiver)))
    assert [(u, orjson.loads(b)["event"]) for u, _, b in receiver.got] == [("https://only-done.example/", "bot.done")]


async def test_retry_schedule_then_failed_then_resend(ctx: Context, clock: FakeClock) -> None:
    receiver = Receiver()
    receiver.status["https://down.example/"] = 503
    ws, _ = await setup(ctx, "https://down.example/")
    await emit(ctx, ws, [Status.SCHEDULED])
    sender = WebhookSender(ctx, FunctionTransport(receiver))
    await run_until_idle(sender)
    assert len(receiver.got) == 1  # immediately
    delays = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
              timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
    for n, delay in enumerate(delays, start=2):
        clock.advance((delay - timedelta(seconds=1)).total_seconds())
        await run_until_idle(sender)
        assert len(receiver.got) == n - 1, f"attempt {n} came early"
        clock.advance(1)
        await run_until_idle(sender)
        assert len(receiver.got) == n
    clock.advance(hours=24)
    await run_until_idle(sender)
    assert len(receiver.got) == 8
    [delivery] = await ctx.store.list_deliveries(ws, DeliveryFilter(), None, 10)
    assert delivery.status == "failed" and delivery.attempts == 8 and delivery.last_status_code == 503
    assert [a.status_code for a in delivery.history] == [503] * 8
    # The endpoint recovers; a resend delivers it.
    receiver.status.clear()
    await endpoints.resend_delivery(ctx, ws, delivery.id)
    await run_until_idle(sender)
    [again] = await ctx.store.list_deliveries(ws, DeliveryFilter(status="delivered"), None, 10)
    assert again.id == delivery.id and len(again.history) == 9


async def test_endpoint_failing_for_five_days_is_disabled(ctx: Context, clock: FakeClock) -> None:
    receiver = Receiver()
    receiver.status["https://gone.example/"] = 0  # connection refused
    ws, made = await setup(ctx, "https://gone.example/")
    sender = WebhookSender(ctx, FunctionTransport(receiver))
    for _ in range(6):  # a message a day, each failing
        await emit(ctx, ws, [Status.SCHEDULED])
        await run_until_idle(sender)
        clock.advance(hours=24)
    await emit(ctx, ws, [Status.SCHEDULED])
    await run_until_idle(sender)
    endpoint = await ctx.store.get_endpoint(ws, made[0][0].id)  # type: ignore[attr-defined]
    assert endpoint is not None and endpoint.disabled and endpoint.disabled_reason


async def test_one_bot_in_order_and_a_slow_endpoint_does_not_hold_others(ctx: Context) -> None:
    receiver = Receiver()
    receiver.hang.add("https://slow.example/")
    ws, _ = await setup(ctx, "https://slow.example/", "https://fast.example/")
    for _ in range(5):
        await emit(ctx, ws, [Status.SCHEDULED, Status.STAGED, Status.JOINING_CALL])
    sender = WebhookSender(ctx, FunctionTransport(receiver), per_endpoint=2)

    def fast_got() -> list[dict]:  # type: ignore[type-arg]
        return [orjson.loads(b) for u, _, b in receiver.got if u == "https://fast.example/"]

    # No clock moves: everything below happens without waiting for a retry. The deadline is
    # wall time only so that a loaded machine (PostgreSQL commits) cannot fail the test.
    deadline = asyncio.get_running_loop().time() + 30
    while len(fast_got()) < 15 and asyncio.get_running_loop().time() < deadline:
        await sender.tick()
        await asyncio.sleep(0.001)
    fast = fast_got()
    assert len(fast) == 15  # every message reached the healthy endpoint while the slow one hangs
    by_bot: dict[str, list[str]] = {}
    for p in fast:
        by_bot.setdefault(p["data"]["bot"]["id"], []).append(p["event"])
    assert all(events == ["bot.scheduled", "bot.staged", "bot.joining_call"] for events in by_bot.values())
    assert sender.in_flight == 2  # the slow endpoint holds only its own two slots
    receiver.release.set()
    await run_until_idle(sender)
    assert len([1 for u, _, _ in receiver.got if u == "https://slow.example/"]) == 15
    await sender.stop()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]"])
async def test_private_destinations_can_be_refused(ctx: Context, address: str) -> None:
    receiver = Receiver()
    ws, _ = await setup(ctx, f"http://{address}:8080/hook")
    await emit(ctx, ws, [Status.SCHEDULED])
    await run_until_idle(WebhookSender(ctx, FunctionTransport(receiver), block_private=True))
    assert receiver.got == []
    [delivery] = await ctx.store.list_deliveries(ws, DeliveryFilter(), None, 10)
    assert delivery.status == "pending" and "blocked" in (delivery.history[0].error or "")


async def test_public_only_transport_never_connects_inside() -> None:
    """The production transport with SUMMON_WEBHOOK_BLOCK_PRIVATE resolves names itself and
    refuses loopback answers — the connection is never attempted."""
    from summon.webhooks.httptools_transport import HttptoolsTransport

    transport = HttptoolsTransport(public_only=True)
    try:
        with pytest.raises(DeliveryError, match="blocked"):
            await transport.post("http://localhost:9/hook", {}, b"{}", 5)
    finally:
        await transport.close()

"""Admission: ad-hoc bots need a warm slot at creation (507 otherwise); scheduled bots are
refused at booking time when SUMMON_MAX_BOTS would be exceeded in their window."""

from __future__ import annotations

from datetime import timedelta

import httpx

from summon.api.app import create_app
from summon.clock import FakeClock
from summon.services.context import Context
from tests.conftest import START, register_agent


async def make_client(ctx: Context, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t",
                             headers={"Authorization": api_key})


async def test_adhoc_without_any_fleet_is_507(ctx: Context, api_key: str) -> None:
    async with await make_client(ctx, api_key) as c:
        r = await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})
        assert r.status_code == 507
        assert r.json() == {"code": "adhoc_pool_exhausted", "detail": "Out of adhoc bots -- Please retry in 30 seconds"}
        assert r.headers["Retry-After"] == "30"
        assert (await c.get("/api/v1/bot/")).json()["count"] == 0  # nothing was stored
        # Scheduled bots do not need a warm slot now.
        r = await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789", "join_at": "2030-01-02T10:00:00Z"})
        assert r.status_code == 201


async def test_adhoc_pool_is_reserved_per_bot(ctx: Context, api_key: str, clock: FakeClock) -> None:
    await register_agent(ctx, slots_free=2)
    async with await make_client(ctx, api_key) as c:
        codes = [(await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})).status_code
                 for _ in range(3)]
        assert codes == [201, 201, 507]
        # A silent agent's slots do not count.
        clock.advance(60)
        r = await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})
        assert r.status_code == 507


async def test_scheduled_capacity_is_checked_at_booking(ctx: Context, api_key: str) -> None:
    ctx.settings.max_bots = 6
    ctx.settings.pool_size = 4  # two slots for scheduled windows
    join = START + timedelta(days=1)
    body = {"meeting_url": "https://zoom.us/j/123456789", "automatic_leave": {"in_call_recording_timeout": 1800}}
    async with await make_client(ctx, api_key) as c:
        for i in range(2):
            r = await c.post("/api/v1/bot/", json={**body, "join_at": join.isoformat()})
            assert r.status_code == 201, r.text
        r = await c.post("/api/v1/bot/", json={**body, "join_at": (join + timedelta(minutes=10)).isoformat()})
        assert r.status_code == 507 and r.json()["code"] == "scheduled_capacity_exhausted" and r.json()["detail"]
        assert int(r.headers["Retry-After"]) > 0
        # After the first windows end (30 min + lead) there is room again.
        later = await c.post("/api/v1/bot/", json={**body, "join_at": (join + timedelta(hours=1)).isoformat()})
        assert later.status_code == 201
        # Moving a bot into a full window is refused too; moving it within its own window is fine.
        r = await c.patch(f"/api/v1/bot/{later.json()['id']}/", json={"join_at": (join + timedelta(minutes=5)).isoformat()})
        assert r.status_code == 507
        r = await c.patch(f"/api/v1/bot/{later.json()['id']}/", json={"join_at": (join + timedelta(hours=1, minutes=5)).isoformat()})
        assert r.status_code == 200
        # A cancelled bot frees its window.
        first = (await c.get("/api/v1/bot/", params={"join_at_before": join.isoformat()})).json()["results"][0]
        assert (await c.delete(f"/api/v1/bot/{first['id']}/")).status_code == 200
        r = await c.post("/api/v1/bot/", json={**body, "join_at": (join + timedelta(minutes=10)).isoformat()})
        assert r.status_code == 201


async def test_cancelled_adhoc_bot_frees_its_reserved_slot(ctx: Context, api_key: str) -> None:
    await register_agent(ctx, slots_free=1)
    async with await make_client(ctx, api_key) as c:
        first = await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})
        assert first.status_code == 201
        assert (await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})).status_code == 507
        # Cancelled before any agent took it: its slot is free again.
        assert (await c.post(f"/api/v1/bot/{first.json()['id']}/leave_call/")).status_code == 200
        assert (await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})).status_code == 201

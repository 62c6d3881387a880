"""Webhook endpoints over HTTP: CRUD, secrets shown once and encrypted at rest, rotation."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from summon.clock import FakeClock
from summon.services import webhooks
from summon.services.context import Context
from summon.store.tables import webhook_endpoints


async def test_crud_and_secret_shown_once(client: httpx.AsyncClient, ctx: Context) -> None:
    r = await client.post("/api/v1/webhook_endpoints/", json={
        "url": "https://hooks.example.com/summon", "event_types": ["bot.done", "bot.fatal"], "description": "prod"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["bot.done", "bot.fatal"]
    got = (await client.get(f"/api/v1/webhook_endpoints/{created['id']}/")).json()
    assert "secret" not in got and got["url"] == "https://hooks.example.com/summon"
    listed = (await client.get("/api/v1/webhook_endpoints")).json()
    assert [e["id"] for e in listed["results"]] == [created["id"]]

    r = await client.patch(f"/api/v1/webhook_endpoints/{created['id']}", json={"disabled": True, "event_types": []})
    assert r.status_code == 200 and r.json()["disabled"] is True and r.json()["event_types"] == []
    r = await client.patch(f"/api/v1/webhook_endpoints/{created['id']}/", json={"disabled": False})
    assert r.json()["disabled"] is False and r.json()["disabled_reason"] is None

    # Sealed at rest: the plaintext secret is nowhere in the row.
    rows = await ctx.store.run_read(lambda conn: conn.execute(sa.select(webhook_endpoints)).all())  # type: ignore[attr-defined]
    assert created["secret"] not in str(rows)

    r = await client.delete(f"/api/v1/webhook_endpoints/{created['id']}/")
    assert r.status_code == 200 and r.json() == {"id": created["id"], "deleted": True}
    assert (await client.get(f"/api/v1/webhook_endpoints/{created['id']}/")).status_code == 404


async def test_rotation_keeps_the_old_secret_for_a_day(client: httpx.AsyncClient, ctx: Context, clock: FakeClock) -> None:
    created = (await client.post("/api/v1/webhook_endpoints/", json={"url": "https://hooks.example.com/x"})).json()
    rotated = (await client.post(f"/api/v1/webhook_endpoints/{created['id']}/rotate_secret/")).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    endpoint = await ctx.store.get_endpoint(next(iter(await _workspaces(ctx))), __import__("uuid").UUID(created["id"]))
    assert endpoint is not None
    assert webhooks.signing_secrets(ctx, endpoint, clock.now()) == [rotated["secret"], created["secret"]]
    clock.advance(hours=24, seconds=1)
    assert webhooks.signing_secrets(ctx, endpoint, clock.now()) == [rotated["secret"]]


async def _workspaces(ctx: Context) -> list:  # type: ignore[type-arg]
    keys = await ctx.store.list_api_keys()
    return [k.workspace_id for k in keys]


async def test_validation(client: httpx.AsyncClient) -> None:
    for body, field in [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/x", "event_types": ["bot.teleported"]}, "event_types.0"),
        ({"url": "https://example.com/x", "secret": "mine"}, "secret"),
        ({}, "url"),
    ]:
        r = await client.post("/api/v1/webhook_endpoints/", json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)


async def test_ledger_lists_filters_pages_and_resends(client: httpx.AsyncClient, ctx: Context) -> None:
    from summon.webhooks.sender import WebhookSender
    from summon.webhooks.transport import FunctionTransport

    endpoint = (await client.post("/api/v1/webhook_endpoints/", json={"url": "https://hooks.example.com/l"})).json()
    bots = [(await client.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789",
                                                    "join_at": "2030-01-02T10:00:00Z"})).json() for _ in range(3)]

    async def refuse(url: str, headers: object, body: bytes) -> tuple[int, bytes]:
        return 500, b"nope"

    sender = WebhookSender(ctx, FunctionTransport(refuse))
    await sender.tick()
    await sender.settle()
    page = (await client.get("/api/v1/webhook_deliveries/", params={"page_size": 2})).json()
    assert len(page["results"]) == 2 and page["next"] and page["previous"] is None
    rest = (await client.get(page["next"])).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    first = page["results"][0]
    assert first["status"] == "pending" and first["attempts"][0]["status_code"] == 500
    assert first["attempts"][0]["response"] == "nope" and first["endpoint_id"] == endpoint["id"]
    only = (await client.get("/api/v1/webhook_deliveries/", params={"bot_id": bots[1]["id"]})).json()["results"]
    assert [d["bot_id"] for d in only] == [bots[1]["id"]]
    assert (await client.get("/api/v1/webhook_deliveries/", params={"status": "delivered"})).json()["results"] == []
    r = await client.post(f"/api/v1/webhook_deliveries/{first['id']}/resend/")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    for bad in ({"cursor": "garbage"}, {"status": "lost"}, {"stauts": "x"}, {"page_size": 0}):
        assert (await client.get("/api/v1/webhook_deliveries/", params=bad)).status_code == 400, bad
    await sender.stop()

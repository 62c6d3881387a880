"""Calendar V2 over HTTP, with the syncer and a real iCalendar feed served on 127.0.0.1: connect,
sync, list and filter events, auto-record, a client's own bots per event, moves and deletions,
disconnection, webhooks, validation, pagination and isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web

from summon.api.schemas import calendar_meeting_json
from summon.calendars.sync import CalendarSyncer
from summon.clock import FakeClock
from summon.services import calendars as service
from summon.services.context import Context
from summon.store.tables import calendars as calendars_table
from tests.conftest import START

ZOOM = "https://zoom.us/j/123456789"
MEET = "https://meet.google.com/abc-defg-hij"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vevent(
    uid: str,
    start: datetime,
    *,
    url: str | None = ZOOM,
    minutes: int = 30,
    status: str | None = None,
    rrule: str | None = None,
    attendees: tuple[str, ...] = (),
    organizer: str = "me@acme.test",
) -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20291201T000000Z",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + timedelta(minutes=minutes))}",
        f"SUMMARY:{uid}",
        f"ORGANIZER:mailto:{organizer}",
    ]
    lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}" for a in attendees]
    if url:
        lines.append(f"DESCRIPTION:Join: {url}")
    if status:
        lines.append(f"STATUS:{status}")
    if rrule:
        lines.append(f"RRULE:{rrule}")
    return "\r\n".join([*lines, "END:VEVENT"])


@dataclass
class Feeds:
    """ICS feeds on a real HTTP server; tests change what a path answers."""

    bodies: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    base: str = ""

    def set(self, name: str, *events: str) -> str:
        self.bodies[name] = "\r\n".join(
            ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *events, "END:VCALENDAR", ""]
        )
        return f"{self.base}/{name}.ics"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        status = self.statuses.get(name, 200)
        if status != 200 or name not in self.bodies:
            return web.Response(status=status if status != 200 else 404, text="no")
        return web.Response(text=self.bodies[name], content_type="text/calendar")


@pytest.fixture
async def feeds() -> AsyncIterator[Feeds]:
    f = Feeds()
    app = web.Application()
    app.router.add_get("/{name}.ics", f.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    f.base = f"http://127.0.0.1:{port}"
    yield f
    await runner.cleanup()


@pytest.fixture
async def syncer(ctx: Context) -> AsyncIterator[CalendarSyncer]:
    s = CalendarSyncer(ctx)
    yield s
    await s.stop()


async def sync_all(syncer: CalendarSyncer) -> int:
    """Sync everything due, as the syncer's loop would (at most ``concurrency`` at a time)."""
    total = 0
    while started := await syncer.tick():
        total += started
        await syncer.idle()
    return total


async def connect(client: httpx.AsyncClient, url: str, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v2/calendars/", json={"platform": "ics_feed", "url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def events_of(
    client: httpx.AsyncClient, calendar_id: str, **params: Any
) -> list[dict[str, Any]]:
    r = await client.get("/api/v2/calendar-events/", params={"calendar_id": calendar_id, **params})
    assert r.status_code == 200, r.text
    return r.json()["results"]  # type: ignore[no-any-return]


async def outbox(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    return [(m.event_type, m.payload) for m in await ctx.store.pending_messages(1000)]


H = timedelta(hours=1)


async def test_connect_sync_and_auto_record(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer
) -> None:
    url = feeds.set(
        "team",
        vevent("standup", START + 24 * H, rrule="FREQ=DAILY;COUNT=3"),
        vevent("review", START + 50 * H, url=MEET, attendees=("client@other.test",)),
        vevent("lunch", START + 26 * H, url=None),
        vevent("old", START - 30 * H),  # before the window
        vevent("far", START + 40 * 24 * H),  # after it
    )
    created = await connect(
        client,
        url,
        email="me@acme.test",
        auto_record={"bot_config": {"bot_name": "Notes", "metadata": {"team": "a"}}},
    )
    assert (
        created["status"] == "connecting"
        and created["auto_record"]["bot_config"]["bot_name"] == "Notes"
    )
    assert "url" not in created and created["auto_record"]["rules"] == {}
    rows = await ctx.store.run_read(lambda conn: conn.execute(sa.select(calendars_table)).all())  # type: ignore[attr-defined]
    assert url not in str(rows)  # sealed at rest

    assert await sync_all(syncer) == 1
    cal = (await client.get(f"/api/v2/calendars/{created['id']}/")).json()
    assert cal["status"] == "connected" and cal["last_synced_at"] == "2030-01-01T09:00:00.000000Z"
    assert [s["status"] for s in cal["status_changes"]] == ["connecting", "connected"]

    events = await events_of(client, created["id"])
    assert [e["ical_uid"] for e in events] == ["standup", "lunch", "standup", "review", "standup"]
    with_bots = {e["id"]: e["bots"] for e in events}
    assert sum(len(b) for b in with_bots.values()) == 4  # three standups and the review
    review = next(e for e in events if e["ical_uid"] == "review")
    assert review["meeting_platform"] == "google_meet" and review["meeting_url"] == MEET
    assert review["platform"] == "ics_feed" and review["is_deleted"] is False and review["raw"]
    bot = (await client.get(f"/api/v1/bot/{review['bots'][0]['bot_id']}/")).json()
    assert (
        bot["join_at"] == review["start_time"]
        and bot["bot_name"] == "Notes"
        and bot["metadata"] == {"team": "a"}
    )
    assert (
        review["bots"][0]["deduplication_key"]
        == "2030-01-03T11:00:00.000000Z-google_meet:abc-defg-hij"
    )

    messages = await outbox(ctx)
    assert (
        "calendar.update",
        {"event": "calendar.update", "data": {"calendar_id": created["id"]}},
    ) in messages
    assert (
        "calendar.sync_events",
        {
            "event": "calendar.sync_events",
            "data": {
                "calendar_id": created["id"],
                "last_updated_ts": "2030-01-01T09:00:00.000000Z",
            },
        },
    ) in messages

    # Nothing changed: the next sync writes nothing and sends nothing.
    before = len(await outbox(ctx))
    assert (await client.post(f"/api/v2/calendars/{created['id']}/sync/")).status_code == 202
    assert await sync_all(syncer) == 1
    assert len(await outbox(ctx)) == before
    assert await events_of(client, created["id"]) == events

    # The bot says which calendar meeting it serves.
    meetings = await service.calendar_meetings(ctx, await _ws(ctx), UUID(bot["id"]))
    assert [calendar_meeting_json(e, c) for e, c in meetings] == [
        {
            "id": review["id"],
            "start_time": review["start_time"],
            "end_time": review["end_time"],
            "calendar_user": {"id": created["id"], "external_id": "me@acme.test"},
        }
    ]
    retrieved = (await client.get(f"/api/v1/bot/{bot['id']}/")).json()
    assert retrieved["calendar_meetings"] == [calendar_meeting_json(e, c) for e, c in meetings]


async def _ws(ctx: Context) -> UUID:
    return (await ctx.store.list_api_keys())[0].workspace_id


async def test_moves_cancellations_and_deletions_follow(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer, clock: FakeClock
) -> None:
    url = feeds.set(
        "f", vevent("a", START + 24 * H), vevent("b", START + 25 * H), vevent("c", START + 26 * H)
    )
    cal = await connect(client, url, auto_record={})
    await sync_all(syncer)
    bots = {e["ical_uid"]: e["bots"][0]["bot_id"] for e in await events_of(client, cal["id"])}

    clock.advance(minutes=10)
    feeds.set("f", vevent("a", START + 30 * H), vevent("b", START + 25 * H, status="CANCELLED"))
    assert (await client.post(f"/api/v2/calendars/{cal['id']}/sync/")).status_code == 202
    await sync_all(syncer)
    events = {e["ical_uid"]: e for e in await events_of(client, cal["id"])}
    assert events["a"]["bots"][0]["bot_id"] == bots["a"]  # the same bot, re-timed
    moved = (await client.get(f"/api/v1/bot/{bots['a']}/")).json()
    assert moved["join_at"] == "2030-01-02T15:00:00.000000Z" and moved["state"] == "scheduled"
    assert events["b"]["is_deleted"] and events["c"]["is_deleted"]
    assert events["b"]["bots"] == [] and events["c"]["bots"] == []
    for gone in (bots["b"], bots["c"]):
        assert (await client.get(f"/api/v1/bot/{gone}/")).status_code == 404
    deleted = [p["data"]["bot"]["id"] for t, p in await outbox(ctx) if t == "bot.deleted"]
    assert sorted(deleted) == sorted([bots["b"], bots["c"]])
    changed = await events_of(client, cal["id"], updated_at__gte="2030-01-01T09:10:00Z")
    assert sorted(e["ical_uid"] for e in changed) == ["a", "b", "c"]
    assert [e["ical_uid"] for e in await events_of(client, cal["id"], is_deleted="false")] == ["a"]

    # A deleted event that comes back gets a bot again.
    feeds.set("f", vevent("a", START + 30 * H), vevent("c", START + 26 * H))
    await client.post(f"/api/v2/calendars/{cal['id']}/sync/")
    await sync_all(syncer)
    events = {e["ical_uid"]: e for e in await events_of(client, cal["id"])}
    assert not events["c"]["is_deleted"] and len(events["c"]["bots"]) == 1


async def test_rules_owner_and_turning_auto_record_off(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer
) -> None:
    url = feeds.set(
        "r",
        vevent("internal", START + 24 * H, attendees=("bo@acme.test",)),
        vevent("external", START + 25 * H, attendees=("x@client.test",)),
        vevent("invited", START + 26 * H, organizer="boss@acme.test", attendees=("me@acme.test",)),
    )
    cal = await connect(
        client,
        url,
        email="me@acme.test",
        auto_record={"rules": {"external": True, "only_if_organizer": True}},
    )
    await sync_all(syncer)
    with_bot = sorted(e["ical_uid"] for e in await events_of(client, cal["id"]) if e["bots"])
    assert with_bot == ["external"]

    r = await client.patch(
        f"/api/v2/calendars/{cal['id']}/", json={"auto_record": {"rules": {"internal": True}}}
    )
    assert r.status_code == 200 and r.json()["auto_record"]["rules"] == {"internal": True}
    await sync_all(syncer)  # the change made it due at once
    with_bot = sorted(e["ical_uid"] for e in await events_of(client, cal["id"]) if e["bots"])
    assert with_bot == ["internal", "invited"]

    r = await client.patch(f"/api/v2/calendars/{cal['id']}/", json={"auto_record": None})
    assert r.status_code == 200 and r.json()["auto_record"] is None
    await sync_all(syncer)
    assert [e for e in await events_of(client, cal["id"]) if e["bots"]] == []
    assert (await client.get("/api/v1/bot/")).json()["count"] == 0


async def test_a_clients_own_bot_per_event(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer
) -> None:
    one = await connect(client, feeds.set("one", vevent("m", START + 24 * H)))
    two = await connect(client, feeds.set("two", vevent("m-copy", START + 24 * H)))
    await sync_all(syncer)
    (e1,), (e2,) = await events_of(client, one["id"]), await events_of(client, two["id"])
    assert e1["bots"] == [] and e2["bots"] == []  # no auto-record

    body = {
        "deduplication_key": "standup-jan-2",
        "bot_config": {"bot_name": "Mine", "join_at": "ignored"},
    }
    r = await client.post(f"/api/v2/calendar-events/{e1['id']}/bot/", json=body)
    assert r.status_code == 200, r.text
    (bot,) = r.json()["bots"]
    assert bot["deduplication_key"] == "standup-jan-2" and bot["start_time"] == e1["start_time"]
    r = await client.post(f"/api/v2/calendar-events/{e2['id']}/bot", json=body)
    assert r.json()["bots"][0]["bot_id"] == bot["bot_id"]  # the same meeting: one bot

    # The event moves at its source: the client's bot follows.
    feeds.set("one", vevent("m", START + 27 * H))
    feeds.set("two", vevent("m-copy", START + 27 * H))
    for cal in (one, two):
        await client.post(f"/api/v2/calendars/{cal['id']}/sync/")
    await sync_all(syncer)
    retimed = (await client.get(f"/api/v1/bot/{bot['bot_id']}/")).json()
    assert retimed["join_at"] == "2030-01-02T12:00:00.000000Z" and retimed["bot_name"] == "Mine"

    r = await client.delete(f"/api/v2/calendar-events/{e1['id']}/bot/")
    assert r.status_code == 200 and r.json()["bots"] == []
    assert (
        await client.get(f"/api/v1/bot/{bot['bot_id']}/")
    ).status_code == 200  # the other event holds it
    await client.delete(f"/api/v2/calendar-events/{e2['id']}/bot/")
    assert (await client.get(f"/api/v1/bot/{bot['bot_id']}/")).status_code == 404

    # An opted-out event stays without a bot even when auto-record comes on.
    await client.patch(f"/api/v2/calendars/{one['id']}/", json={"auto_record": {}})
    await sync_all(syncer)
    assert (await events_of(client, one["id"]))[0]["bots"] == []

    # A link in bot_config overrides the event's; a bad one is a field error.
    r = await client.post(
        f"/api/v2/calendar-events/{e1['id']}/bot/",
        json={"deduplication_key": "x", "bot_config": {"meeting_url": "https://example.com/nope"}},
    )
    assert r.status_code == 400 and "bot_config.meeting_url" in r.json()
    r = await client.post(
        f"/api/v2/calendar-events/{e1['id']}/bot/",
        json={"deduplication_key": "x", "bot_config": {"meeting_url": MEET}},
    )
    assert r.status_code == 200 and r.json()["bots"][0]["meeting_url"] == MEET
    for body, name in [
        ({"bot_config": {}}, "deduplication_key"),
        ({"deduplication_key": "x"}, "bot_config"),
        (
            {"deduplication_key": "x", "bot_config": {"automatic_leave": {"nope": 1}}},
            "bot_config.automatic_leave.nope",
        ),
    ]:
        r = await client.post(f"/api/v2/calendar-events/{e1['id']}/bot/", json=body)
        assert r.status_code == 400 and name in r.json(), (body, r.text)


async def test_disconnection_outage_and_reconnect(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer, clock: FakeClock
) -> None:
    url = feeds.set("gone", vevent("a", START + 24 * H))
    cal = await connect(client, url, auto_record={})
    await sync_all(syncer)
    feeds.statuses["gone"] = 503
    await client.post(f"/api/v2/calendars/{cal['id']}/sync/")
    await sync_all(syncer)
    got = (await client.get(f"/api/v2/calendars/{cal['id']}/")).json()
    assert got["status"] == "connected" and got["last_sync_error"]  # an outage: retried next period
    assert len((await events_of(client, cal["id"]))[0]["bots"]) == 1
    clock.advance(seconds=ctx.settings.calendar_sync_interval_s)
    feeds.statuses["gone"] = 404
    assert await sync_all(syncer) == 1  # due again after the interval
    got = (await client.get(f"/api/v2/calendars/{cal['id']}/")).json()
    assert got["status"] == "disconnected" and got["status_reason"]
    assert (
        "calendar.update",
        {"event": "calendar.update", "data": {"calendar_id": cal["id"]}},
    ) in ((await outbox(ctx))[-1:])
    clock.advance(hours=2)
    assert await sync_all(syncer) == 0  # a disconnected calendar waits for its user

    fixed = feeds.set("fixed", vevent("a", START + 24 * H), vevent("b", START + 26 * H))
    r = await client.patch(f"/api/v2/calendars/{cal['id']}/", json={"url": fixed})
    assert r.status_code == 200 and r.json()["status"] == "connecting"
    await sync_all(syncer)
    got = (await client.get(f"/api/v2/calendars/{cal['id']}/")).json()
    assert got["status"] == "connected" and got["last_sync_error"] is None
    assert [s["status"] for s in got["status_changes"]] == [
        "connecting",
        "connected",
        "disconnected",
        "connecting",
        "connected",
    ]


async def test_a_sync_overtaken_by_an_update_is_dropped(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds
) -> None:
    cal = await connect(client, feeds.set("s", vevent("a", START + 24 * H)), auto_record={})
    claimed = await ctx.store.claim_due_calendars(START, START + H, 10)
    assert [str(c.id) for c in claimed] == [cal["id"]]
    await client.patch(f"/api/v2/calendars/{cal['id']}/", json={"email": "new@acme.test"})
    outcome = await service.sync_calendar(ctx, claimed[0].id, claimed=claimed[0])
    assert outcome.error == "the calendar changed during the sync"
    assert await events_of(client, cal["id"]) == []
    assert (await client.get("/api/v1/bot/")).json()["count"] == 0
    fresh = await service.sync_calendar(ctx, claimed[0].id)
    assert fresh.error is None and fresh.events_changed == 1 and fresh.bots_attached == 1


async def test_syncer_wakes_on_demand_and_stops_cleanly(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds
) -> None:
    syncer = CalendarSyncer(ctx)
    await syncer.start()
    try:
        cal = await connect(client, feeds.set("w", vevent("a", START + 24 * H)))
        for _ in range(500):  # woken by the creation, not by a poll
            if (await client.get(f"/api/v2/calendars/{cal['id']}/")).json()[
                "status"
            ] == "connected":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the syncer did not sync the new calendar")
    finally:
        await syncer.stop()


async def test_validation_and_write_only_credentials(
    client: httpx.AsyncClient, feeds: Feeds
) -> None:
    url = feeds.set("v", vevent("a", START + 24 * H))
    for body, field_name in [
        ({"platform": "ics_feed"}, "url"),
        ({"platform": "outlook", "url": url}, "platform"),
        ({"platform": "ics_feed", "url": "ftp://example.com/x.ics"}, "url"),
        (
            {"platform": "google_calendar", "oauth_client_id": "a", "oauth_client_secret": "b"},
            "oauth_refresh_token",
        ),
        ({"platform": "ics_feed", "url": url, "password": "x"}, "password"),
        ({"platform": "ics_feed", "url": url, "secret": "x"}, "secret"),
        (
            {"platform": "ics_feed", "url": url, "auto_record": {"rules": {"external": "yes"}}},
            "auto_record.rules.external",
        ),
        (
            {"platform": "ics_feed", "url": url, "auto_record": {"bot_config": {"bot_nme": "x"}}},
            "auto_record.bot_config.bot_nme",
        ),
        (
            {"platform": "ics_feed", "url": url, "auto_record": {"bot_config": {"bot_name": ""}}},
            "auto_record.bot_config.bot_name",
        ),
    ]:
        r = await client.post("/api/v2/calendars/", json=body)
        assert r.status_code == 400 and field_name in r.json(), (body, r.text)

    caldav = (
        await client.post(
            "/api/v2/calendars/",
            json={
                "platform": "caldav",
                "url": "https://dav.example.com/cal/",
                "username": "me@acme.test",
                "password": "hunter2",
            },
        )
    ).json()
    assert caldav["platform_email"] == "me@acme.test"
    assert "hunter2" not in str(caldav) and "dav.example.com" not in str(caldav)
    r = await client.patch(f"/api/v2/calendars/{caldav['id']}/", json={"platform": "ics_feed"})
    assert r.status_code == 400 and "platform" in r.json()
    r = await client.patch(f"/api/v2/calendars/{caldav['id']}/", json={"oauth_refresh_token": "x"})
    assert r.status_code == 400 and "oauth_refresh_token" in r.json()
    for query in ("platform=nope", "bogus=1", "cursor=%%%", "created_at__gte=2030-01-01T00:00:00"):
        r = await client.get(f"/api/v2/calendars/?{query}")
        assert r.status_code == 400, (query, r.text)
    for query in (
        "is_deleted=maybe",
        "calendar_id=nope",
        "start_time__gte=yesterday",
        "page_size=0",
    ):
        r = await client.get(f"/api/v2/calendar-events/?{query}")
        assert r.status_code == 400, (query, r.text)
    for path in (
        "/api/v2/calendars/nope/",
        "/api/v2/calendar-events/00000000-0000-0000-0000-000000000000/",
    ):
        assert (await client.get(path)).status_code == 404
    r = await client.post(
        "/api/v2/calendar-events/00000000-0000-0000-0000-000000000000/bot/",
        json={"deduplication_key": "k", "bot_config": {}},
    )
    assert r.status_code == 404
    r = await client.post(
        "/api/v2/calendar-events/00000000-0000-0000-0000-000000000000/bot/", json={"bot_config": {}}
    )
    assert r.status_code == 404  # a missing event is not found, whatever the body
    assert (await client.delete(f"/api/v2/calendars/{caldav['id']}/")).status_code == 204
    assert (await client.delete(f"/api/v2/calendars/{caldav['id']}/")).status_code == 404


async def test_cursor_pages_and_isolation(
    client: httpx.AsyncClient, ctx: Context, feeds: Feeds, syncer: CalendarSyncer, clock: FakeClock
) -> None:
    ids = []
    for i in range(5):
        ids.append(
            (await connect(client, feeds.set(f"p{i}", vevent(f"e{i}", START + (24 + i) * H))))["id"]
        )
        clock.advance(seconds=1)
    await sync_all(syncer)

    async def walk(path: str, **params: Any) -> list[str]:
        seen: list[str] = []
        r = await client.get(path, params={**params, "page_size": 2})
        while True:
            data = r.json()
            seen += [x["id"] for x in data["results"]]
            if not data["next"]:
                return seen
            assert data["next"].startswith("http://testserver" + path)
            r = await client.get(data["next"])

    assert await walk("/api/v2/calendars/") == ids
    event_ids = await walk("/api/v2/calendar-events/")
    assert len(event_ids) == 5 and len(set(event_ids)) == 5
    assert len(await walk("/api/v2/calendar-events/", start_time__lte="2030-01-02T11:00:00Z")) == 3

    from summon.services import keys

    _, other_key = await keys.create_api_key(ctx, "other")
    other = {"Authorization": f"Token {other_key}"}
    assert (await client.get("/api/v2/calendars/", headers=other)).json()["results"] == []
    assert (await client.get("/api/v2/calendar-events/", headers=other)).json()["results"] == []
    assert (await client.get(f"/api/v2/calendars/{ids[0]}/", headers=other)).status_code == 404
    assert (
        await client.patch(f"/api/v2/calendars/{ids[0]}/", headers=other, json={})
    ).status_code == 404
    assert (
        await client.post(f"/api/v2/calendars/{ids[0]}/sync/", headers=other)
    ).status_code == 404
    assert (await client.delete(f"/api/v2/calendars/{ids[0]}/", headers=other)).status_code == 404
    assert (
        await client.get(f"/api/v2/calendar-events/{event_ids[0]}/", headers=other)
    ).status_code == 404
    assert (
        await client.delete(f"/api/v2/calendar-events/{event_ids[0]}/bot/", headers=other)
    ).status_code == 404
    assert (await client.get(f"/api/v2/calendar-events/{event_ids[0]}/")).status_code == 200

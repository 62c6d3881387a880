"""Calendars end to end: a real ``summon serve``, a real CalDAV server (Radicale) and a real
webhook receiver. A connected calendar with auto-record gets a bot for every meeting with a
link in the next 28 days; moving a meeting re-times its bot; cancelling or deleting one deletes
its bot — with ``calendar.sync_events`` and ``bot.deleted`` webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.conftest import KEY_LINE, start_service
from tests.e2e.fleet_helpers import Api, parse_ts
from tests.e2e.radicale import Radicale, ics_event, radicale  # noqa: F401 - the fixture
from tests.e2e.test_webhooks import Receiver, receiver  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """Wait for ``probe`` to return something (checking, not sleeping blindly)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events_by_uid(api: Api, calendar_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    params: dict[str, Any] | None = {"calendar_id": calendar_id, "page_size": 500}
    url = "/api/v2/calendar-events/"
    while url:
        data = api.client.get(url, params=params).json()
        for e in data["results"]:
            out.setdefault(e["ical_uid"], []).append(e)
        url, params = data["next"], None
    return out


def bot_ids(events: dict[str, list[dict[str, Any]]], uid: str) -> list[str]:
    return [b["bot_id"] for e in events.get(uid, []) if not e["is_deleted"] for b in e["bots"]]


def test_caldav_calendar_keeps_bots_in_sync(
    tmp_path: Path,
    radicale: Radicale,  # noqa: F811 - the fixture imported above
    receiver: Receiver,  # noqa: F811 - the fixture imported above
) -> None:
    cal_url = radicale.make_calendar("work")
    base = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    zoom, meet = "https://zoom.us/j/111222333", "https://meet.google.com/abc-defg-hij"
    meetings = {
        "standup": ics_event(
            "standup", base, url=zoom, rrule="FREQ=WEEKLY;COUNT=10"
        ),  # 4 in the window
        "review": ics_event("review", base + timedelta(days=2), url=meet),
        "planning": ics_event(
            "planning", base + timedelta(days=9), url="https://zoom.us/j/444555666"
        ),
        "to-cancel": ics_event(
            "to-cancel", base + timedelta(days=3), url="https://zoom.us/j/777888999"
        ),
        "to-delete": ics_event(
            "to-delete", base + timedelta(days=4), url="https://zoom.us/j/123123123"
        ),
        "lunch": ics_event("lunch", base + timedelta(days=1)),  # no link: no bot
        "offsite": ics_event(
            "offsite", base + timedelta(days=5), url=zoom, all_day=True
        ),  # all-day: no bot
        "far": ics_event("far", base + timedelta(days=40), url=zoom),  # outside the window
    }
    for uid, ics in meetings.items():
        radicale.put(cal_url, uid, ics)

    svc = start_service(
        tmp_path / "data", {"SUMMON_RATE_LIMITS": "off", "SUMMON_CALENDAR_SYNC_INTERVAL_S": "3600"}
    )
    try:
        key = svc.wait_for_line(KEY_LINE).group(1)
        svc.wait_ready()
        api = Api(svc.url, key)
        r = api.client.post(
            "/api/v1/webhook_endpoints/",
            json={
                "url": receiver.url,
                "event_types": ["calendar.sync_events", "calendar.update", "bot.deleted"],
            },
        )
        assert r.status_code == 201, r.text
        receiver.secret = r.json()["secret"]

        r = api.client.post(
            "/api/v2/calendars/",
            json={
                "platform": "caldav",
                "url": cal_url,
                "username": radicale.user,
                "password": radicale.password,
                "auto_record": {"bot_config": {"bot_name": "Team Notes"}},
            },
        )
        assert r.status_code == 201, r.text
        calendar = r.json()
        assert (
            calendar["status"] == "connecting"
            and "password" not in calendar
            and "url" not in calendar
        )
        cal_id = calendar["id"]

        connected = eventually(
            lambda: (
                (c := api.client.get(f"/api/v2/calendars/{cal_id}/").json())["status"]
                == "connected"
                and c
            ),
            "the calendar to connect",
        )
        assert connected["platform_email"] is None and connected["last_synced_at"]
        expected = {"standup": 4, "review": 1, "planning": 1, "to-cancel": 1, "to-delete": 1}
        events = eventually(
            lambda: (
                (e := events_by_uid(api, cal_id))
                and all(len(bot_ids(e, u)) == n for u, n in expected.items())
                and e
            ),
            "a bot for every meeting with a link",
        )
        for uid in ("lunch", "offsite"):
            assert uid in events and bot_ids(events, uid) == []
        assert "far" not in events
        bots = {b["id"]: b for b in api.all_bots()}
        assert len(bots) == 8 and {b["bot_name"] for b in bots.values()} == {"Team Notes"}
        for uid in expected:
            for event in events[uid]:
                bot = bots[event["bots"][0]["bot_id"]]
                assert (
                    parse_ts(bot["join_at"]) == parse_ts(event["start_time"])
                    and bot["state"] == "scheduled"
                )
        receiver.wait(
            lambda: any(g["raw"]["event"] == "calendar.sync_events" for g in receiver.received)
        )

        # The review moves by two hours: its bot is re-timed (the same bot).
        review_bot = bot_ids(events, "review")[0]
        moved_start = base + timedelta(days=2, hours=2)
        radicale.put(cal_url, "review", ics_event("review", moved_start, url=meet, sequence=1))
        r = api.client.post(f"/api/v2/calendars/{cal_id}/sync/")
        assert r.status_code == 202, r.text
        eventually(
            lambda: parse_ts(api.get(review_bot)["join_at"]) == moved_start,
            "the review's bot re-timed",
        )
        events = events_by_uid(api, cal_id)
        assert bot_ids(events, "review") == [review_bot]
        assert parse_ts(events["review"][0]["start_time"]) == moved_start

        # One meeting is cancelled, another deleted: their bots are deleted.
        cancel_bot, delete_bot = bot_ids(events, "to-cancel")[0], bot_ids(events, "to-delete")[0]
        radicale.put(
            cal_url,
            "to-cancel",
            ics_event(
                "to-cancel",
                base + timedelta(days=3),
                url="https://zoom.us/j/777888999",
                sequence=1,
                status="CANCELLED",
            ),
        )
        radicale.delete(cal_url, "to-delete")
        assert api.client.post(f"/api/v2/calendars/{cal_id}/sync/").status_code == 202
        eventually(
            lambda: all(
                api.client.get(f"/api/v1/bot/{b}/").status_code == 404
                for b in (cancel_bot, delete_bot)
            ),
            "the bots of the cancelled and the deleted meeting deleted",
        )
        events = events_by_uid(api, cal_id)
        assert [e["is_deleted"] for e in events["to-cancel"] + events["to-delete"]] == [True, True]
        assert len(api.all_bots()) == 6

        def deleted_bots() -> set[str]:
            with receiver.lock:
                return {
                    g["raw"]["data"]["bot"]["id"]
                    for g in receiver.received
                    if g["raw"]["event"] == "bot.deleted"
                }

        receiver.wait(lambda: {cancel_bot, delete_bot} <= deleted_bots())
        with receiver.lock:
            syncs = [
                g["raw"] for g in receiver.received if g["raw"]["event"] == "calendar.sync_events"
            ]
        assert len(syncs) >= 3 and {s["data"]["calendar_id"] for s in syncs} == {cal_id}
        assert receiver.rejected == 0
        # ``last_updated_ts`` works as ``updated_at__gte``: the latest sync's changes only.
        latest = max(s["data"]["last_updated_ts"] for s in syncs)
        changed = api.client.get(
            "/api/v2/calendar-events/", params={"updated_at__gte": latest}
        ).json()["results"]
        assert sorted(e["ical_uid"] for e in changed) == ["to-cancel", "to-delete"]

        # Deleting the calendar releases its bots.
        assert api.client.delete(f"/api/v2/calendars/{cal_id}/").status_code == 204
        eventually(lambda: api.all_bots() == [] or None, "the calendar's bots released")
    finally:
        svc.stop()

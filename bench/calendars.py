"""Calendar sync cost against a real ``summon serve``: an ICS feed of 677 events (single
meetings and weekly series with exceptions, links in LOCATION or DESCRIPTION) served by a
local HTTP server. Prints the service's CPU seconds (user + system, read from /proc) for the
first sync, for a sync where nothing changed (the feed answers 304), and for a sync after one
meeting moved — first without auto-record (events only), then with auto-record on (bots
scheduled for every meeting with a link in the window). Target (the calendars issue): a
677-event calendar syncs in well under a second of CPU.

    python bench/calendars.py [--events 677] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp import web

sys.path.insert(0, os.path.dirname(__file__))
import _http  # noqa: E402
import _service  # noqa: E402


def feed(events: int, start: datetime, moved: int | None = None) -> str:
    """``events`` VEVENTs: nine in ten single meetings, one in ten weekly series."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Summon bench//EN"]
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    for i in range(events):
        day = start + timedelta(days=i % 27, hours=8 + i % 9, minutes=30 * (i % 2))
        if i == moved:
            day += timedelta(hours=1)
        dt = day.strftime("%Y%m%dT%H%M%S")
        lines += ["BEGIN:VEVENT", f"UID:bench-{i}@summon.test", f"DTSTAMP:{stamp}", f"SUMMARY:Meeting {i}",
                  f"DTSTART;TZID=Europe/Berlin:{dt}", "DURATION:PT30M",
                  "ORGANIZER:mailto:owner@acme.test",
                  f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest{i}@{'acme.test' if i % 3 else 'partner.test'}"]
        if i % 10 == 0:
            skip = (day + timedelta(weeks=2)).strftime("%Y%m%dT%H%M%S")
            lines += ["RRULE:FREQ=WEEKLY;COUNT=8", f"EXDATE;TZID=Europe/Berlin:{skip}",
                      f"DESCRIPTION:Join: https://meet.google.com/abc-defg-{i % 1000:03d}"]
        else:
            lines.append(f"LOCATION:https://zoom.us/j/{9_000_000_000 + i}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


class Feed:
    def __init__(self, body: str) -> None:
        self.body = body
        self.etag = f'"{hash(body)}"'
        self.runner: web.AppRunner | None = None

    def set(self, body: str) -> None:
        self.body, self.etag = body, f'"{hash(body)}"'

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/cal.ics", self._serve)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = _service.free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/cal.ics"

    async def _serve(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        return web.Response(text=self.body, content_type="text/calendar", headers={"ETag": self.etag})

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def synced(conn: _http.Connection, calendar_id: str, after: str | None, timeout: float = 120) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, raw = await conn.request("GET", f"/api/v2/calendars/{calendar_id}/")
        calendar = orjson.loads(raw)
        if calendar.get("last_synced_at") and calendar["last_synced_at"] != after:
            return calendar  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise SystemExit("the calendar did not sync")


async def quiet(pid: int) -> None:
    """Wait until the service has finished the work the sync started (bots are scheduled after
    the sync's write): its CPU time stops growing."""
    last = cpu_seconds(pid)
    calm = 0
    while calm < 3:
        await asyncio.sleep(0.25)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last < 0.02 else 0
        last = now


async def count(conn: _http.Connection, base: str, path: str | None) -> tuple[int, int]:
    """How many events a list has, and how many of them have a bot (following ``next``)."""
    total = with_bot = 0
    while path:
        status, raw = await conn.request("GET", path)
        assert status == 200, raw
        page = orjson.loads(raw)
        total += len(page["results"])
        with_bot += sum(1 for e in page["results"] if e["bots"])
        path = page["next"][len(base):] if page["next"] else None
    return total, with_bot


async def measure(events: int, auto_record: bool) -> dict[str, float]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    source = Feed(feed(events, start))
    url = await source.start()
    svc = _service.start({"SUMMON_CALENDAR_SYNC_INTERVAL_S": "3600", "SUMMON_SMTP_PORT": "0"})
    out: dict[str, float] = {}
    try:
        async with _http.Connection(svc.url, {"Authorization": f"Token {svc.key}"}) as conn:
            body: dict = {"platform": "ics_feed", "url": url, "email": "owner@acme.test"}  # type: ignore[type-arg]
            if auto_record:
                body["auto_record"] = {"bot_config": {"bot_name": "Bench"}}
            before = cpu_seconds(svc.process.pid)
            status, raw = await conn.request("POST", "/api/v2/calendars/", body)
            assert status == 201, raw
            calendar_id = orjson.loads(raw)["id"]
            calendar = await synced(conn, calendar_id, None)
            await quiet(svc.process.pid)
            out["first"] = cpu_seconds(svc.process.pid) - before
            for name, change in (("unchanged", None), ("one moved", events // 2 + 1)):
                if change is not None:
                    source.set(feed(events, start, moved=change))
                before = cpu_seconds(svc.process.pid)
                status, _ = await conn.request("POST", f"/api/v2/calendars/{calendar_id}/sync/", {})
                assert status == 202
                calendar = await synced(conn, calendar_id, calendar["last_synced_at"])
                await quiet(svc.process.pid)
                out[name] = cpu_seconds(svc.process.pid) - before
            out["events"], out["bots"] = await count(
                conn, svc.url, f"/api/v2/calendar-events/?calendar_id={calendar_id}&is_deleted=false&page_size=500")
    finally:
        await asyncio.to_thread(svc.stop)
        await source.stop()
    return out


async def run(events: int) -> None:
    plain = await measure(events, auto_record=False)
    recording = await measure(events, auto_record=True)
    print(f"\nSummon calendar sync — an ICS feed of {events} events (1 in 10 weekly series), "
          f"{os.cpu_count()} CPUs; service CPU seconds per sync")
    print(f"{'sync':34} {'events only':>12} {'auto-record':>12}")
    for name in ("first", "unchanged", "one moved"):
        print(f"{name:34} {plain[name]:12.3f} {recording[name]:12.3f}")
    print(f"{'occurrences in the window':34} {plain['events']:12.0f} {recording['events']:12.0f}")
    print(f"{'occurrences with a bot':34} {plain['bots']:12.0f} {recording['bots']:12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=677)
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    asyncio.run(run(60 if args.quick else args.events))


if __name__ == "__main__":
    main()

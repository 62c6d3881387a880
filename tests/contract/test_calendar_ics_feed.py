"""The ICS feed provider against a real HTTP server on 127.0.0.1 (aiohttp): conditional GETs
(ETag and Last-Modified → 304, the stored body re-expanded for a moved window), the size cap,
the time limit, bounded redirects to http(s) only, and what each failure means."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web

from summon.abc import CalendarDisconnected, CalendarUnavailable, FetchResult
from summon.calendars import provider_for
from summon.calendars.ics_feed import IcsFeedProvider, normalize_feed_url

WINDOW = (datetime(2030, 1, 6, tzinfo=UTC), datetime(2030, 2, 3, tzinfo=UTC))
LATER = (datetime(2030, 1, 13, tzinfo=UTC), datetime(2030, 2, 10, tzinfo=UTC))
LAST_MODIFIED = "Tue, 01 Jan 2030 08:00:00 GMT"


def feed(*, summary: str = "Team sync", extra: str = "") -> str:
    """A feed: a weekly series on Mondays 09:00 UTC from 2030-01-07 with one cancelled
    instance (EXDATE) and one moved, a single event, and a malformed event."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Example Corp//Calendar 1.0//EN",
        "BEGIN:VEVENT",
        "UID:weekly-1@example.com",
        "DTSTAMP:20291220T080000Z",
        "DTSTART:20300107T090000Z",
        "DTEND:20300107T093000Z",
        "RRULE:FREQ=WEEKLY;COUNT=6",
        "EXDATE:20300121T090000Z",
        f"SUMMARY:{summary}",
        "LOCATION:https://us02web.zoom.us/j/85551234567?pwd=aBcDeFgHiJkLmNoPqRsTuV",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:weekly-1@example.com",
        "RECURRENCE-ID:20300114T090000Z",
        "DTSTAMP:20291221T080000Z",
        "DTSTART:20300115T100000Z",
        "DTEND:20300115T103000Z",
        "SEQUENCE:1",
        f"SUMMARY:{summary} (moved)",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:single-1@example.com",
        "DTSTAMP:20291220T080000Z",
        "DTSTART:20300109T140000Z",
        "DTEND:20300109T150000Z",
        "SUMMARY:Customer call",
        "DESCRIPTION:Join: https://meet.google.com/abc-mnop-xyz",
        "END:VEVENT",
        "BEGIN:VEVENT",
        "UID:broken-1@example.com",
        "DTSTAMP:20291220T080000Z",
        "DTSTART:not-a-date",
        "SUMMARY:Broken",
        "END:VEVENT",
        extra,
        "END:VCALENDAR",
    ]
    return "\r\n".join(line for line in lines if line) + "\r\n"


@dataclass
class FeedServer:
    """A feed host whose answers the tests change; it records what it was asked."""

    body: str = field(default_factory=feed)
    base: str = ""
    full_bodies: int = 0
    conditional_hits: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body.encode()).hexdigest()[:16] + '"'

    async def with_etag(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == self.etag():
            self.conditional_hits += 1
            return web.Response(status=304, headers={"ETag": self.etag()})
        self.full_bodies += 1
        return web.Response(
            text=self.body, content_type="text/calendar", headers={"ETag": self.etag()}
        )

    async def with_last_modified(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        if request.headers.get("If-Modified-Since") == LAST_MODIFIED:
            self.conditional_hits += 1
            return web.Response(status=304)
        self.full_bodies += 1
        return web.Response(
            text=self.body, content_type="text/calendar", headers={"Last-Modified": LAST_MODIFIED}
        )

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        left = int(request.match_info["n"])
        target = "/etag.ics" if left == 0 else f"/redirect/{left - 1}"
        raise web.HTTPFound(target)

    async def loop(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/loop")

    async def to_ftp(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("ftp://127.0.0.1/feed.ics")

    async def big(self, request: web.Request) -> web.StreamResponse:
        # Streamed without Content-Length: the client must stop reading at its cap.
        response = web.StreamResponse(headers={"Content-Type": "text/calendar"})
        await response.prepare(request)
        chunk = b"X-FILLER:" + b"x" * 8000 + b"\r\n"
        for _ in range(64):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def slow(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(text=self.body, content_type="text/calendar")

    async def html(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            text="<html><body>Please sign in</body></html>", content_type="text/html"
        )

    def status(self, code: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=code, text="no")
        return handler


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    state = FeedServer()
    app = web.Application()
    app.router.add_get("/etag.ics", state.with_etag)
    app.router.add_get("/lm.ics", state.with_last_modified)
    app.router.add_get("/redirect/{n}", state.redirect)
    app.router.add_get("/loop", state.loop)
    app.router.add_get("/to-ftp", state.to_ftp)
    app.router.add_get("/big.ics", state.big)
    app.router.add_get("/slow.ics", state.slow)
    app.router.add_get("/login", state.html)
    for code in (401, 404, 410, 500, 503):
        app.router.add_get(f"/status/{code}", state.status(code))
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    yield state
    state.release.set()
    await runner.cleanup()


def at(day: int, hour: int) -> datetime:
    return datetime(2030, 1, day, hour, tzinfo=UTC)


def starts(result: FetchResult) -> list[tuple[str, datetime, bool]]:
    return sorted((o.uid, o.start, o.cancelled) for o in result.occurrences)


async def test_first_fetch_expands_the_feed(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    result = await provider.fetch({"url": f"{server.base}/etag.ics"}, None, *WINDOW)
    assert result.changed and result.credentials is None
    weekly = sorted(o.start for o in result.occurrences if o.uid == "weekly-1@example.com"
                    and not o.cancelled)
    # COUNT=6 from Jan 7: 7, 14 (moved to the 15th 10:00), 21 (EXDATE), 28, Feb 4, Feb 11.
    assert weekly == [at(7, 9), at(15, 10), at(28, 9)]
    moved = next(o for o in result.occurrences if o.start == at(15, 10))
    assert moved.title == "Team sync (moved)" and moved.recurring
    single = next(o for o in result.occurrences if o.uid == "single-1@example.com")
    assert single.start == at(9, 14) and single.end == at(9, 15) and not single.recurring
    assert single.meeting_url is not None and "abc-mnop-xyz" in str(single.meeting_url)
    assert [p.uid for p in result.problems] == ["broken-1@example.com"]
    assert result.state["etag"] == server.etag() and result.state["body"] == server.body


async def test_etag_304_reuses_the_body_and_reports_no_change(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    url = {"url": f"{server.base}/etag.ics"}
    first = await provider.fetch(url, None, *WINDOW)
    second = await provider.fetch(url, first.state, *WINDOW)
    assert server.seen[-1]["If-None-Match"] == server.etag()
    assert (server.full_bodies, server.conditional_hits) == (1, 1)
    assert not second.changed
    assert starts(second) == starts(first)
    assert second.state["body"] == first.state["body"]


async def test_moved_window_is_expanded_from_the_stored_body(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    url = {"url": f"{server.base}/etag.ics"}
    first = await provider.fetch(url, None, *WINDOW)
    later = await provider.fetch(url, first.state, *LATER)
    assert (server.full_bodies, server.conditional_hits) == (1, 1)
    # The source did not change, but the window revealed Feb 4 and lost Jan 7 and Jan 9.
    assert later.changed
    weekly = sorted(o.start for o in later.occurrences if o.uid == "weekly-1@example.com")
    assert weekly == [datetime(2030, 1, 15, 10, tzinfo=UTC), datetime(2030, 1, 28, 9, tzinfo=UTC),
                      datetime(2030, 2, 4, 9, tzinfo=UTC)]
    assert not any(o.uid == "single-1@example.com" for o in later.occurrences)
    again = await provider.fetch(url, later.state, *LATER)
    assert not again.changed


async def test_a_changed_feed_is_downloaded_again(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    url = {"url": f"{server.base}/etag.ics"}
    first = await provider.fetch(url, None, *WINDOW)
    server.body = feed(summary="Weekly sync")
    second = await provider.fetch(url, first.state, *WINDOW)
    assert server.full_bodies == 2 and second.changed
    assert {o.title for o in second.occurrences if o.uid == "weekly-1@example.com"} == {
        "Weekly sync", "Weekly sync (moved)"}


async def test_last_modified_304(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    url = {"url": f"{server.base}/lm.ics"}
    first = await provider.fetch(url, None, *WINDOW)
    assert first.state["last_modified"] == LAST_MODIFIED
    second = await provider.fetch(url, first.state, *WINDOW)
    assert server.seen[-1]["If-Modified-Since"] == LAST_MODIFIED
    assert "If-None-Match" not in server.seen[-1]
    assert (server.full_bodies, server.conditional_hits) == (1, 1)
    assert not second.changed and starts(second) == starts(first)


async def test_state_of_another_url_is_ignored(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    first = await provider.fetch({"url": f"{server.base}/etag.ics"}, None, *WINDOW)
    other = await provider.fetch({"url": f"{server.base}/lm.ics"}, first.state, *WINDOW)
    assert "If-None-Match" not in server.seen[-1] and other.changed


async def test_body_too_large_for_the_state_is_not_kept(server: FeedServer) -> None:
    provider = IcsFeedProvider(max_state_bytes=1024)
    url = {"url": f"{server.base}/etag.ics"}
    first = await provider.fetch(url, None, *WINDOW)
    assert "body" not in first.state and "etag" not in first.state
    second = await provider.fetch(url, first.state, *WINDOW)
    assert "If-None-Match" not in server.seen[-1]  # nothing to fall back on: a full download
    assert server.full_bodies == 2
    assert not second.changed and starts(second) == starts(first)


async def test_redirects_are_followed_up_to_five(server: FeedServer) -> None:
    provider = IcsFeedProvider()
    result = await provider.fetch({"url": f"{server.base}/redirect/4"}, None, *WINDOW)
    assert result.occurrences and server.full_bodies == 1
    with pytest.raises(CalendarDisconnected, match="more than 5 redirects"):
        await provider.fetch({"url": f"{server.base}/redirect/5"}, None, *WINDOW)
    with pytest.raises(CalendarDisconnected, match="more than 5 redirects"):
        await provider.fetch({"url": f"{server.base}/loop"}, None, *WINDOW)


async def test_redirect_to_another_scheme_is_refused(server: FeedServer) -> None:
    with pytest.raises(CalendarDisconnected, match="non-http"):
        await IcsFeedProvider().fetch({"url": f"{server.base}/to-ftp"}, None, *WINDOW)


async def test_size_limit(server: FeedServer) -> None:
    provider = IcsFeedProvider(max_bytes=100_000)
    with pytest.raises(CalendarDisconnected, match="larger than 100000 bytes"):
        await provider.fetch({"url": f"{server.base}/big.ics"}, None, *WINDOW)
    small = IcsFeedProvider(max_bytes=200)
    with pytest.raises(CalendarDisconnected, match="larger than 200 bytes"):
        await small.fetch({"url": f"{server.base}/etag.ics"}, None, *WINDOW)


async def test_time_limit(server: FeedServer) -> None:
    provider = IcsFeedProvider(timeout=0.3)
    with pytest.raises(CalendarUnavailable):
        await provider.fetch({"url": f"{server.base}/slow.ics"}, None, *WINDOW)


@pytest.mark.parametrize(("path", "error", "text"), [
    ("/status/404", CalendarDisconnected, "HTTP 404"),
    ("/status/410", CalendarDisconnected, "HTTP 410"),
    ("/status/401", CalendarDisconnected, "HTTP 401"),
    ("/status/500", CalendarUnavailable, "HTTP 500"),
    ("/status/503", CalendarUnavailable, "HTTP 503"),
    ("/login", CalendarDisconnected, "not serve an iCalendar feed"),
])
async def test_failures(server: FeedServer, path: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        await IcsFeedProvider().fetch({"url": server.base + path}, None, *WINDOW)


async def test_connection_refused_is_transient() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CalendarUnavailable, match="cannot connect"):
        await IcsFeedProvider().fetch({"url": f"http://127.0.0.1:{port}/x.ics"}, None, *WINDOW)


async def test_public_only_refuses_loopback(server: FeedServer) -> None:
    provider = provider_for("ics_feed", public_only=True)
    port = server.base.rsplit(":", 1)[1]
    for host in ("localhost", "127.0.0.1", "[::ffff:127.0.0.1]"):
        with pytest.raises(CalendarDisconnected, match="not allowed"):
            await provider.fetch({"url": f"http://{host}:{port}/etag.ics"}, None, *WINDOW)
    assert server.full_bodies == 0
    allowed = await provider_for("ics_feed").fetch(
        {"url": f"{server.base}/etag.ics"}, None, *WINDOW)
    assert allowed.occurrences and server.full_bodies == 1


def test_feed_urls() -> None:
    assert normalize_feed_url(" webcal://example.com/a.ics ") == "https://example.com/a.ics"
    assert normalize_feed_url("WEBCALS://example.com/a.ics") == "https://example.com/a.ics"
    assert normalize_feed_url("http://example.com/a.ics") == "http://example.com/a.ics"
    for bad in ("", "example.com/a.ics", "ftp://example.com/a.ics", "file:///etc/passwd",
                "https://", "https://exa mple.com/", "https://example.com:99999/"):
        with pytest.raises(ValueError):
            normalize_feed_url(bad)
    provider = provider_for("ics_feed")
    with pytest.raises(ValueError, match="url"):
        provider.validate({})
    provider.validate({"url": "webcal://example.com/a.ics"})


async def test_invalid_credentials_disconnect() -> None:
    with pytest.raises(CalendarDisconnected, match="invalid credentials"):
        await IcsFeedProvider().fetch({"url": "gopher://example.com"}, None, *WINDOW)
    with pytest.raises(ValueError):
        await IcsFeedProvider().fetch({"url": "https://example.com"}, None, WINDOW[1], WINDOW[0])

"""The CalDAV provider against a real Radicale server (a subprocess on 127.0.0.1 with its own
storage and a plain htpasswd file). Events are written with plain httpx requests
(``MKCALENDAR``, ``PUT`` of ``text/calendar`` objects, ``DELETE``), as a user's calendar app
would; the provider must follow creations, modifications, moved and cancelled instances and
deletions incrementally (sync-token, multiget of the changed objects only) and fall back to a
full ETag listing when the token is refused."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from summon.abc import CalendarDisconnected
from summon.calendars.caldav import CalDavProvider
from summon.calendars.http import AiohttpTransport, HttpRequest, HttpResponse
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow

WINDOW = (datetime(2030, 1, 6, tzinfo=UTC), datetime(2030, 2, 3, tzinfo=UTC))
USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@dataclass
class Calendar:
    """A calendar collection of one user, written to with plain HTTP (no CalDAV library)."""

    url: str
    user: str

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=(self.user, USERS[self.user]), timeout=10)

    async def add_event(self, ics: str) -> str:
        """PUT a new calendar object named after its UID; its href (absolute URL)."""
        uid = next(line[4:] for line in ics.splitlines() if line.startswith("UID:"))
        href = self.url + quote(uid.replace("/", "%2F")) + ".ics"
        await self.put(href, ics, new=True)
        return href

    async def put(self, href: str, ics: str, *, new: bool = False) -> None:
        """Write a calendar object: create it (``new``) or replace the existing one."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers["If-None-Match" if new else "If-Match"] = "*"
        async with self._client() as client:
            response = await client.put(href, content=ics.encode(), headers=headers)
        assert response.status_code == (201 if new else 204), response.text

    async def delete(self, href: str) -> None:
        async with self._client() as client:
            response = await client.delete(href)
        assert response.status_code in (200, 204), response.text


@dataclass
class Radicale:
    url: str
    process: subprocess.Popen[bytes]

    async def new_calendar(self, user: str = "alice", components: list[str] | None = None,
                           name: str | None = None) -> Calendar:
        """MKCALENDAR in the user's calendar home (Radicale's is ``/<user>/``); with
        ``components``, the collection holds only those component types."""
        cal_id = name or f"cal-{uuid.uuid4().hex[:8]}"
        comps = "".join(f'<C:comp name="{c}"/>' for c in components or [])
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:set><D:prop><D:displayname>{cal_id}</D:displayname>"
            + (f"<C:supported-calendar-component-set>{comps}"
               "</C:supported-calendar-component-set>" if components else "")
            + "</D:prop></D:set></C:mkcalendar>"
        )
        url = f"{self.url}{user}/{cal_id}/"
        async with httpx.AsyncClient(auth=(user, USERS[user]), timeout=10) as client:
            response = await client.request(
                "MKCALENDAR", url, content=body.encode(),
                headers={"Content-Type": "application/xml; charset=utf-8"})
        assert response.status_code == 201, response.text
        return Calendar(url, user)


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    root = tmp_path_factory.mktemp("radicale")
    (root / "users").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    port = free_port()
    (root / "config").write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {root / 'users'}\n"
        "htpasswd_encryption = plain\ndelay = 0\n"
        f"[storage]\nfilesystem_folder = {root / 'storage'}\n"
        "[rights]\ntype = owner_only\n[web]\ntype = none\n[logging]\nlevel = warning\n"
    )
    with (root / "log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(root / "config")],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:  # wait for the condition: the server answers
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                output = (root / "log").read_text()
                raise AssertionError(f"Radicale did not start:\n{output}") from None
            time.sleep(0.05)
    yield Radicale(url, process)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Recorder:
    """The real transport, recording each request's method and body."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport()
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest, *, timeout: float, max_bytes: int) -> HttpResponse:
        self.requests.append(request)
        return await self.inner.send(request, timeout=timeout, max_bytes=max_bytes)

    def take(self) -> list[tuple[str, str]]:
        """(method, first XML element) of the requests since the last call."""
        taken = [(r.method, _root(r.body)) for r in self.requests]
        self.requests.clear()
        return taken


def _root(body: bytes | None) -> str:
    text = (body or b"").decode()
    start = text.find("<", text.find("?>") + 1 if "?>" in text else 0)
    return text[start + 1:].split(" ", 1)[0].split(">", 1)[0]


@pytest.fixture
async def recorder() -> Any:
    rec = Recorder()
    yield rec
    await rec.inner.close()


def vcalendar(*events: str) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Summon tests//EN\r\n"
    return head + "".join(events) + "END:VCALENDAR\r\n"


def vevent(uid: str, start: str, end: str, summary: str, *extra: str) -> str:
    lines = [f"UID:{uid}", "DTSTAMP:20291220T080000Z", f"DTSTART:{start}", f"DTEND:{end}",
             f"SUMMARY:{summary}", *extra]
    return "BEGIN:VEVENT\r\n" + "".join(f"{line}\r\n" for line in lines) + "END:VEVENT\r\n"


WEEKLY = vevent("weekly@example.com", "20300107T090000Z", "20300107T093000Z", "Team sync",
                "RRULE:FREQ=WEEKLY;COUNT=4", "LOCATION:https://us02web.zoom.us/j/85551234567")
SINGLE = vevent("single@example.com", "20300109T140000Z", "20300109T150000Z", "Customer call",
                "DESCRIPTION:Join https://meet.google.com/abc-mnop-xyz")
DOOMED = vevent("doomed@example.com", "20300110T100000Z", "20300110T110000Z", "To be deleted")
OFFSITE = (
    "BEGIN:VEVENT\r\nUID:offsite@example.com\r\nDTSTAMP:20291220T080000Z\r\n"
    "DTSTART;VALUE=DATE:20300116\r\nDTEND;VALUE=DATE:20300117\r\nSUMMARY:Offsite\r\n"
    "END:VEVENT\r\n"
)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def summary(result: Any) -> list[tuple[str, datetime, bool, str | None]]:
    return sorted((o.uid, o.start, o.cancelled, o.title) for o in result.occurrences)


async def test_incremental_sync_follows_every_change(
    radicale: Radicale, recorder: Recorder
) -> None:
    calendar = await radicale.new_calendar()
    weekly = await calendar.add_event(vcalendar(WEEKLY))
    single = await calendar.add_event(vcalendar(SINGLE))
    doomed = await calendar.add_event(vcalendar(DOOMED))
    await calendar.add_event(vcalendar(OFFSITE))
    provider = CalDavProvider(transport=recorder)
    credentials = {"url": calendar.url, "username": "alice", "password": USERS["alice"]}

    first = await provider.fetch(credentials, None, *WINDOW)
    assert summary(first) == [
        ("doomed@example.com", at(10, 10), False, "To be deleted"),
        ("offsite@example.com", at(16, 0), False, "Offsite"),
        ("single@example.com", at(9, 14), False, "Customer call"),
        ("weekly@example.com", at(7, 9), False, "Team sync"),
        ("weekly@example.com", at(14, 9), False, "Team sync"),
        ("weekly@example.com", at(21, 9), False, "Team sync"),
        ("weekly@example.com", at(28, 9), False, "Team sync"),
    ]
    assert next(o for o in first.occurrences if o.uid == "offsite@example.com").all_day
    single_first = next(o for o in first.occurrences if o.uid == "single@example.com")
    assert single_first.meeting_url == "https://meet.google.com/abc-mnop-xyz"
    assert first.changed and first.problems == []
    assert first.state["sync_token"] and len(first.state["items"]) == 4
    assert [m for m, _ in recorder.take()] == ["PROPFIND", "PROPFIND", "PROPFIND", "REPORT"]

    # Nothing changed: one sync-collection REPORT, no download.
    same = await provider.fetch(credentials, first.state, *WINDOW)
    assert recorder.take() == [("REPORT", "D:sync-collection")]
    assert not same.changed and summary(same) == summary(first)

    # Modify (move the single event), move one instance and cancel another, delete, create.
    await calendar.put(single, vcalendar(
        vevent("single@example.com", "20300109T160000Z", "20300109T170000Z",
               "Customer call (later)", "SEQUENCE:1")))
    await calendar.put(weekly, vcalendar(
        WEEKLY,
        vevent("weekly@example.com", "20300115T100000Z", "20300115T103000Z", "Team sync (moved)",
               "RECURRENCE-ID:20300114T090000Z", "SEQUENCE:1"),
        vevent("weekly@example.com", "20300121T090000Z", "20300121T093000Z", "Team sync",
               "RECURRENCE-ID:20300121T090000Z", "STATUS:CANCELLED", "SEQUENCE:1"),
    ))
    await calendar.delete(doomed)
    await calendar.add_event(vcalendar(
        vevent("new@example.com", "20300120T120000Z", "20300120T123000Z", "New meeting")))

    second = await provider.fetch(credentials, same.state, *WINDOW)
    requests = recorder.requests[:]
    assert recorder.take() == [("REPORT", "D:sync-collection"), ("REPORT", "C:calendar-multiget")]
    multiget = (requests[1].body or b"").decode()
    assert multiget.count("<D:href>") == 3  # the single, the weekly and the new object only
    assert "offsite" not in multiget
    assert second.changed
    assert summary(second) == [
        ("new@example.com", at(20, 12), False, "New meeting"),
        ("offsite@example.com", at(16, 0), False, "Offsite"),
        ("single@example.com", at(9, 16), False, "Customer call (later)"),
        ("weekly@example.com", at(7, 9), False, "Team sync"),
        ("weekly@example.com", at(15, 10), False, "Team sync (moved)"),
        ("weekly@example.com", at(21, 9), True, "Team sync"),
        ("weekly@example.com", at(28, 9), False, "Team sync"),
    ]
    assert len(second.state["items"]) == 4

    # The window moves: re-expanded from the stored objects, still one REPORT.
    later = (WINDOW[0] + timedelta(days=10), WINDOW[1] + timedelta(days=10))
    moved = await provider.fetch(credentials, second.state, *later)
    assert recorder.take() == [("REPORT", "D:sync-collection")]
    assert moved.changed and min(o.start for o in moved.occurrences) == at(16, 0)


async def test_refused_sync_token_falls_back_to_the_etag_listing(
    radicale: Radicale, recorder: Recorder
) -> None:
    calendar = await radicale.new_calendar()
    await calendar.add_event(vcalendar(SINGLE))
    kept = await calendar.add_event(vcalendar(WEEKLY))
    provider = CalDavProvider(transport=recorder)
    credentials = {"url": calendar.url, "username": "alice", "password": USERS["alice"]}
    first = await provider.fetch(credentials, None, *WINDOW)
    recorder.take()

    await calendar.put(kept, vcalendar(WEEKLY.replace("SUMMARY:Team sync", "SUMMARY:Weekly")))
    stale = {**first.state, "sync_token": "http://radicale.org/ns/sync/" + "0" * 64}
    result = await provider.fetch(credentials, stale, *WINDOW)
    assert recorder.take() == [
        ("REPORT", "D:sync-collection"),  # refused: 403 valid-sync-token
        ("PROPFIND", "D:propfind"),  # the current sync-token
        ("PROPFIND", "D:propfind"),  # every href with its ETag
        ("REPORT", "C:calendar-multiget"),  # only the changed object
    ]
    assert result.changed and result.state["sync_token"] != stale["sync_token"]
    assert {o.title for o in result.occurrences if o.uid == "weekly@example.com"} == {"Weekly"}
    assert any(o.uid == "single@example.com" for o in result.occurrences)

    # The new token works again.
    again = await provider.fetch(credentials, result.state, *WINDOW)
    assert recorder.take() == [("REPORT", "D:sync-collection")] and not again.changed


async def test_principal_or_root_url_picks_the_first_event_calendar(
    radicale: Radicale, recorder: Recorder
) -> None:
    await radicale.new_calendar("bob", ["VTODO"], name="a-tasks")
    events = await radicale.new_calendar("bob", name="b-events")
    await radicale.new_calendar("bob", name="c-more")
    await events.add_event(vcalendar(SINGLE))
    provider = CalDavProvider(transport=recorder)
    for url in (radicale.url, radicale.url + "bob/"):
        result = await provider.fetch({"url": url, "username": "bob", "password": USERS["bob"]},
                                      None, *WINDOW)
        assert result.state["collection"] == radicale.url + "bob/b-events/"
        assert [o.uid for o in result.occurrences] == ["single@example.com"]
    # The choice is kept: the next fetch goes straight to the calendar.
    recorder.take()
    bob = {"url": url, "username": "bob", "password": USERS["bob"]}
    await provider.fetch(bob, result.state, *WINDOW)
    assert recorder.take() == [("REPORT", "D:sync-collection")]


async def test_tasks_only_calendar_is_refused(radicale: Radicale) -> None:
    tasks = await radicale.new_calendar("alice", ["VTODO"])
    with pytest.raises(CalendarDisconnected, match="cannot hold events"):
        await CalDavProvider().fetch(
            {"url": tasks.url, "username": "alice", "password": USERS["alice"]}, None, *WINDOW)


async def test_state_over_the_cap_asks_the_server_for_the_window(
    radicale: Radicale, recorder: Recorder
) -> None:
    calendar = await radicale.new_calendar()
    for event in (WEEKLY, SINGLE, DOOMED, OFFSITE):
        await calendar.add_event(vcalendar(event))
    credentials = {"url": calendar.url, "username": "alice", "password": USERS["alice"]}
    full = await CalDavProvider().fetch(credentials, None, *WINDOW)
    provider = CalDavProvider(transport=recorder, max_state_bytes=1_000)
    first = await provider.fetch(credentials, None, *WINDOW)
    assert first.state["windowed"] and "items" not in first.state
    recorder.take()
    second = await provider.fetch(credentials, first.state, *WINDOW)
    assert recorder.take() == [("REPORT", "C:calendar-query")]
    assert summary(second) == summary(full) and not second.changed
    narrow = await provider.fetch(credentials, second.state, at(9, 0), at(11, 0))
    assert {o.uid for o in narrow.occurrences} == {"single@example.com", "doomed@example.com"}


async def test_wrong_password_disconnects(radicale: Radicale) -> None:
    calendar = await radicale.new_calendar()
    with pytest.raises(CalendarDisconnected, match="HTTP 401"):
        await CalDavProvider().fetch(
            {"url": calendar.url, "username": "alice", "password": "wrong"}, None, *WINDOW)


async def test_missing_calendar_disconnects(radicale: Radicale) -> None:
    with pytest.raises(CalendarDisconnected, match="HTTP 404"):
        await CalDavProvider().fetch(
            {"url": radicale.url + "alice/no-such-calendar/", "username": "alice",
             "password": USERS["alice"]}, None, *WINDOW)


def test_validate() -> None:
    provider = CalDavProvider()
    provider.validate({"url": "https://dav.example.com/cal/", "username": "a", "password": "b"})
    provider.validate({"url": "https://dav.example.com/cal/"})
    for bad, field in [({}, "url"), ({"url": "webcal://x/"}, "url"),
                       ({"url": "https://u:p@x/"}, "username"),
                       ({"url": "https://x/", "password": "p"}, "password"),
                       ({"url": "https://x/", "username": 5}, "username")]:
        with pytest.raises(ValueError, match=field):
            provider.validate(bad)



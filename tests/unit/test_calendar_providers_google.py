"""The Google Calendar provider against Google's documented responses, replayed through an
injected transport (Google cannot be reached from here): OAuth refresh and its failures, full
listing in pages, incremental sync with the sync token, 410 → full resync, the moving window,
the state cap, and how events map to occurrences."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from summon.abc import CalendarDisconnected, CalendarUnavailable
from summon.calendars import provider_for
from summon.calendars.google_calendar import GoogleCalendarProvider, to_occurrence
from summon.calendars.http import FunctionTransport, HttpRequest, HttpResponse, TransportError
from summon.clock import FakeClock

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "google"
API = "https://calendar.test/calendar/v3"
TOKEN_URL = "https://oauth.test/token"
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
WINDOW = (datetime(2030, 1, 6, tzinfo=UTC), datetime(2030, 2, 3, tzinfo=UTC))
CREDENTIALS = {
    "oauth_client_id": "1234567890-abc.apps.googleusercontent.com",
    "oauth_client_secret": "GOCSPX-secret",
    "oauth_refresh_token": "1//0gRefreshToken",
}
SERIES = "6s1tq9d2k8b4j0m7v3c5h1r9ne@google.com"
TEAMS_UID = ("040000008200E00074C5B7101A82E00800000000B0F5E1D2C3A4DA01000000000000000010000000"
             "A1B2C3D4E5F60718293A4B5C6D7E8F90")


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def answer(status: int, name: str | None = None, body: bytes | None = None) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json; charset=UTF-8"},
                        fixture(name) if name else (body or b""))


class Google:
    """Answers like Google: the token endpoint, and events.list by its query. Tests change
    ``token``, ``events`` (a function of the query) to script what happens."""

    def __init__(self) -> None:
        self.token: Callable[[HttpRequest], HttpResponse] = lambda r: answer(200, "token")
        self.events: Callable[[dict[str, str]], HttpResponse] = self.listing
        self.incremental = "events_incremental"
        self.override: Callable[[HttpRequest], HttpResponse | None] = lambda r: None
        self.transport = FunctionTransport(self.handle)

    def handle(self, request: HttpRequest) -> HttpResponse:
        if (scripted := self.override(request)) is not None:
            return scripted
        if request.url == TOKEN_URL:
            return self.token(request)
        parts = urlsplit(request.url)
        assert parts.path == "/calendar/v3/calendars/primary/events", request.url
        assert request.headers["authorization"].startswith("Bearer ya29.")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return self.events(query)

    def listing(self, query: dict[str, str]) -> HttpResponse:
        assert query["singleEvents"] == "true" and query["showDeleted"] == "true"
        if "syncToken" in query:
            assert "timeMin" not in query and "timeMax" not in query
            return answer(200, self.incremental)
        if query.get("pageToken"):
            return answer(200, "events_page2")
        return answer(200, "events_page1")

    def gets(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs(urlsplit(r.url).query).items()}
                for r in self.transport.requests if r.method == "GET"]

    def token_requests(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs((r.body or b"").decode()).items()}
                for r in self.transport.requests if r.url == TOKEN_URL]


@pytest.fixture
def google() -> Google:
    return Google()


def provider(
    google: Google, clock: FakeClock | None = None, **options: Any
) -> GoogleCalendarProvider:
    return GoogleCalendarProvider(
        transport=google.transport, clock=clock or FakeClock(NOW), api_base=API,
        token_url=TOKEN_URL, **options,
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def by_key(result: Any) -> dict[str, Any]:
    return {o.key: o for o in result.occurrences}


async def test_full_listing_in_pages(google: Google) -> None:
    result = await provider(google).fetch(CREDENTIALS, None, *WINDOW)

    (form,) = google.token_requests()
    assert form == {"grant_type": "refresh_token", "client_id": CREDENTIALS["oauth_client_id"],
                    "client_secret": "GOCSPX-secret", "refresh_token": "1//0gRefreshToken"}
    first, second = google.gets()
    assert first["timeMin"] == "2030-01-06T00:00:00Z"
    assert first["timeMax"] == "2030-02-10T00:00:00Z"  # the window and a week of margin
    assert second["pageToken"] == json.loads(fixture("events_page1"))["nextPageToken"]
    assert result.changed
    assert result.state["sync_token"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="
    assert result.credentials is not None
    assert result.credentials["access_token"] == json.loads(fixture("token"))["access_token"]
    assert result.credentials["access_token_expires_at"] == "2030-01-01T09:59:59Z"
    assert result.credentials["oauth_refresh_token"] == "1//0gRefreshToken"

    occurrences = by_key(result)
    assert sorted(occurrences) == sorted([
        "2b9kq1v7m3pl5hd0e6rj8c4tua@google.com",
        f"{SERIES}|20300108T150000Z",
        f"{SERIES}|20300115T150000Z",
        f"{SERIES}|20300122T150000Z",
        f"{SERIES}|20300129T150000Z",
        "1hq4v8d0b3m6k2r9t5j7c1s0pe@google.com",
        TEAMS_UID,
        "3mf8p2v6c0k4q9s1h7d5j3b1tr@google.com",
    ])
    assert [p.uid for p in result.problems] == ["0br0ken0event0without0start@google.com"]


async def test_event_mapping(google: Google) -> None:
    result = await provider(google).fetch(CREDENTIALS, None, *WINDOW)
    occurrences = by_key(result)

    planning = occurrences["2b9kq1v7m3pl5hd0e6rj8c4tua@google.com"]
    assert (planning.start, planning.end) == (at(7, 9), at(7, 10))
    assert planning.title == "Quarterly planning" and not planning.all_day
    assert not planning.recurring and planning.recurrence_id == planning.start
    assert planning.meeting_url == "https://meet.google.com/abc-mnop-xyz"
    assert planning.organizer == "alice@example.com"
    assert [(a.email, a.partstat, a.role) for a in planning.attendees] == [
        ("alice@example.com", "ACCEPTED", "CHAIR"),
        ("bob@example.org", "DECLINED", "REQ-PARTICIPANT"),
        ("carol@example.org", "NEEDS-ACTION", "OPT-PARTICIPANT"),
        ("c_1888ej0d1bq4iiqbk9e5rhr8a@resource.calendar.google.com", "ACCEPTED", "NON-PARTICIPANT"),
    ]
    assert planning.attendees[0].name == "Alice Adams"
    assert planning.dtstamp == datetime(2029, 12, 20, 8, 12, 44, 312000, tzinfo=UTC)
    assert planning.raw["id"] == "2b9kq1v7m3pl5hd0e6rj8c4tua"

    weekly = occurrences[f"{SERIES}|20300108T150000Z"]
    assert weekly.recurring and weekly.uid == SERIES and weekly.sequence == 2
    assert weekly.recurrence_id == at(8, 15)
    assert weekly.meeting_url == (  # from the location
        "https://us02web.zoom.us/j/85551234567?pwd=aBcDeFgHiJkLmNoPqRsTuV")
    assert [a.partstat for a in weekly.attendees] == ["ACCEPTED", "TENTATIVE"]

    # A cancelled instance arrives bare: its times come from originalStartTime and a sibling.
    cancelled = occurrences[f"{SERIES}|20300115T150000Z"]
    assert cancelled.cancelled and cancelled.uid == SERIES
    assert (cancelled.start, cancelled.end) == (at(15, 15), at(15, 15, 30))

    moved = occurrences[f"{SERIES}|20300129T150000Z"]
    assert (moved.start, moved.end) == (at(31, 16), at(31, 16, 30)) and not moved.cancelled

    offsite = occurrences["1hq4v8d0b3m6k2r9t5j7c1s0pe@google.com"]
    assert offsite.all_day and (offsite.start, offsite.end) == (at(10, 0), at(11, 0))
    assert offsite.meeting_url is None

    customer = next(o for o in result.occurrences if o.title == "Customer call")
    assert "teams.microsoft.com" in str(customer.meeting_url)  # from the HTML description
    assert customer.organizer == "erin@customer.example"

    demo = occurrences["3mf8p2v6c0k4q9s1h7d5j3b1tr@google.com"]
    # The add-on's video entry point, not its phone one.
    assert demo.meeting_url == "https://us06web.zoom.us/j/81234567890?pwd=Zm9vYmFyYmF6cXV4MTIz"
    assert demo.start == at(16, 17)  # 09:00 in Los Angeles


async def test_incremental_sync_applies_changes(google: Google) -> None:
    clock = FakeClock(NOW)
    google_provider = provider(google, clock)
    first = await google_provider.fetch(CREDENTIALS, None, *WINDOW)
    credentials = {**CREDENTIALS, **(first.credentials or {})}
    clock.advance(minutes=5)
    second = await google_provider.fetch(credentials, first.state, *WINDOW)

    assert len(google.token_requests()) == 1  # the cached access token was used
    last = google.gets()[-1]
    assert last["syncToken"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="
    assert second.changed and second.credentials is None
    assert second.state["sync_token"] == "CKjM4f2Dx70CEKjM4f2Dx70CGAU="
    occurrences = by_key(second)
    planning = occurrences["2b9kq1v7m3pl5hd0e6rj8c4tua@google.com"]
    assert (planning.start, planning.sequence) == (at(7, 10), 1)
    cancelled = occurrences[f"{SERIES}|20300122T150000Z"]  # kept its stored times
    assert cancelled.cancelled and (cancelled.start, cancelled.end) == (at(22, 15), at(22, 15, 30))
    assert cancelled.title == "Team sync"
    deleted = next(o for o in second.occurrences if o.raw["id"].startswith("_6tlnaq"))
    assert deleted.cancelled and deleted.start == at(9, 14)
    new = occurrences["5ng2k7v1d9q3m8c0s6h4j2b0la@google.com"]
    assert "qrs-tuvw-xyz" in str(new.meeting_url) and new.attendees[1].partstat == "NEEDS-ACTION"

    google.incremental = "events_incremental_empty"
    third = await google_provider.fetch(credentials, second.state, *WINDOW)
    assert not third.changed
    assert sorted(by_key(third)) == sorted(occurrences)


async def test_moving_window_inside_the_listed_range_stays_incremental(google: Google) -> None:
    google_provider = provider(google)
    first = await google_provider.fetch(CREDENTIALS, None, *WINDOW)
    google.incremental = "events_incremental_empty"
    shifted = (WINDOW[0] + timedelta(days=3), WINDOW[1] + timedelta(days=3))
    moved = await google_provider.fetch(CREDENTIALS, first.state, *shifted)
    assert "syncToken" in google.gets()[-1]
    # Jan 7 and Jan 8 left the window: something changed although Google reported nothing.
    assert moved.changed
    assert all(o.end > shifted[0] for o in moved.occurrences)
    assert len(moved.occurrences) == len(first.occurrences) - 2

    beyond = (WINDOW[0] + timedelta(days=8), WINDOW[1] + timedelta(days=8))
    await google_provider.fetch(CREDENTIALS, moved.state, *beyond)
    assert google.gets()[-2]["timeMin"] == "2030-01-14T00:00:00Z"  # a new full listing


async def test_gone_sync_token_means_full_resync(google: Google) -> None:
    google_provider = provider(google)
    first = await google_provider.fetch(CREDENTIALS, None, *WINDOW)

    def expired(query: dict[str, str]) -> HttpResponse:
        return answer(410, "error_410") if "syncToken" in query else google.listing(query)

    google.events = expired
    again = await google_provider.fetch(CREDENTIALS, first.state, *WINDOW)
    assert [("syncToken" in q, "timeMin" in q) for q in google.gets()[-3:]] == [
        (True, False), (False, True), (False, True)]
    assert not again.changed  # the same truth, listed again
    assert again.state["sync_token"] == "CPDAlvWDx70CEPDAlvWDx70CGAU="


async def test_state_over_the_cap_lists_in_full_every_time(google: Google) -> None:
    google_provider = provider(google, max_state_bytes=2_000)
    first = await google_provider.fetch(CREDENTIALS, None, *WINDOW)
    assert "events" not in first.state and len(json.dumps(first.state)) < 2_000
    second = await google_provider.fetch(CREDENTIALS, first.state, *WINDOW)
    assert "syncToken" not in google.gets()[-1] and "timeMin" in google.gets()[-2]
    assert not second.changed and sorted(by_key(second)) == sorted(by_key(first))


async def test_state_of_another_calendar_is_ignored(google: Google) -> None:
    google_provider = provider(google)
    first = await google_provider.fetch(CREDENTIALS, None, *WINDOW)
    other = {**CREDENTIALS, "calendar_id": "team@group.calendar.google.com"}
    paths = []

    def any_calendar(request: HttpRequest) -> HttpResponse | None:
        if request.url == TOKEN_URL:
            return None
        paths.append(urlsplit(request.url).path)
        return answer(200, "events_page2")

    google.override = any_calendar
    await google_provider.fetch(other, first.state, *WINDOW)
    assert paths == ["/calendar/v3/calendars/team%40group.calendar.google.com/events"]
    assert "syncToken" not in google.gets()[-1]


async def test_expired_cached_token_is_refreshed(google: Google) -> None:
    cached = {**CREDENTIALS, "access_token": "ya29.old",
              "access_token_expires_at": "2030-01-01T09:00:30Z"}
    result = await provider(google).fetch(cached, None, *WINDOW)
    assert len(google.token_requests()) == 1 and result.credentials is not None
    assert result.credentials["access_token"] != "ya29.old"


async def test_401_refreshes_once_and_retries(google: Google) -> None:
    cached = {**CREDENTIALS, "access_token": "ya29.revoked",
              "access_token_expires_at": "2030-01-01T10:00:00Z"}

    def refuse_old(request: HttpRequest) -> HttpResponse | None:
        if request.url != TOKEN_URL and request.headers["authorization"] == "Bearer ya29.revoked":
            return answer(401, "error_401")
        return None

    google.override = refuse_old
    result = await provider(google).fetch(cached, None, *WINDOW)
    assert len(google.token_requests()) == 1 and result.occurrences
    assert [r.headers["authorization"] for r in google.transport.requests[:1]] == [
        "Bearer ya29.revoked"]
    assert result.credentials is not None and result.credentials["access_token"] != "ya29.revoked"


async def test_401_after_refresh_disconnects(google: Google) -> None:
    google.events = lambda query: answer(401, "error_401")
    with pytest.raises(CalendarDisconnected, match="HTTP 401: Invalid Credentials"):
        await provider(google).fetch(CREDENTIALS, None, *WINDOW)
    assert len(google.token_requests()) == 2


@pytest.mark.parametrize(("name", "error", "text"), [
    ("token_invalid_grant", CalendarDisconnected, "invalid_grant: Token has been expired"),
    ("token_invalid_client", CalendarDisconnected, "invalid_client"),
])
async def test_token_refused(google: Google, name: str, error: type[Exception], text: str) -> None:
    google.token = lambda request: answer(400 if "grant" in name else 401, name)
    with pytest.raises(error, match=text):
        await provider(google).fetch(CREDENTIALS, None, *WINDOW)
    assert google.gets() == []


async def test_token_endpoint_down_is_transient(google: Google) -> None:
    google.token = lambda request: answer(503, body=b"<html>Service Unavailable</html>")
    with pytest.raises(CalendarUnavailable, match="HTTP 503"):
        await provider(google).fetch(CREDENTIALS, None, *WINDOW)


@pytest.mark.parametrize(("status", "name", "error"), [
    (403, "error_403_rate_limit", CalendarUnavailable),
    (403, "error_403_forbidden", CalendarDisconnected),
    (404, "error_404", CalendarDisconnected),
    (410, "error_410", CalendarDisconnected),  # 410 without a sync token: nothing to resync from
    (429, "error_403_rate_limit", CalendarUnavailable),
    (503, None, CalendarUnavailable),
])
async def test_api_failures(
    google: Google, status: int, name: str | None, error: type[Exception]
) -> None:
    google.events = lambda query: answer(status, name, b"backend error")
    with pytest.raises(error, match=f"HTTP {status}"):
        await provider(google).fetch(CREDENTIALS, None, *WINDOW)


async def test_network_failure_is_transient(google: Google) -> None:
    def down(query: dict[str, str]) -> HttpResponse:
        raise TransportError("cannot connect to www.googleapis.com:443: refused")

    google.events = down
    with pytest.raises(CalendarUnavailable, match="cannot connect"):
        await provider(google).fetch(CREDENTIALS, None, *WINDOW)


def test_validate() -> None:
    google_provider = provider_for("google_calendar")
    google_provider.validate(CREDENTIALS)
    for missing in CREDENTIALS:
        with pytest.raises(ValueError, match=missing):
            google_provider.validate({k: v for k, v in CREDENTIALS.items() if k != missing})
    with pytest.raises(ValueError, match="oauth_client_secret"):
        google_provider.validate({**CREDENTIALS, "oauth_client_secret": "  "})


def test_event_without_times_is_a_problem_not_a_crash() -> None:
    with pytest.raises(ValueError):
        to_occurrence({"id": "x", "status": "confirmed",  # no offset: ambiguous
                       "start": {"dateTime": "2030-01-07T10:00:00"},
                       "end": {"dateTime": "2030-01-07T11:00:00"}})
    assert to_occurrence({"id": "gone", "status": "cancelled"}) is None

"""The Microsoft Outlook provider against Microsoft Graph's documented responses, replayed
through an injected transport (Graph cannot be reached from here): OAuth refresh with a
rotating refresh token, ``calendarView/delta`` rounds and delta links, ``@removed``, 410 →
new round, the moving window, plain ``calendarView`` when the state cap is hit, and how
events map to occurrences (UTC via ``Prefer``, Windows time zone names, Teams links)."""

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
from summon.calendars.http import FunctionTransport, HttpRequest, HttpResponse
from summon.calendars.microsoft_outlook import MicrosoftOutlookProvider, to_occurrence
from summon.clock import FakeClock

FIXTURES = Path(__file__).parent.parent / "fixtures" / "providers" / "microsoft"
TOKEN_URL = "https://login.test/common/oauth2/v2.0/token"
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
WINDOW = (datetime(2030, 1, 6, tzinfo=UTC), datetime(2030, 2, 3, tzinfo=UTC))
CREDENTIALS = {
    "oauth_client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
    "oauth_client_secret": "JqQX2PNo9bpM0uEihUPzyrh",
    "oauth_refresh_token": "0.AXoAv4j5cvGGr0GRqy180BHbR_original",
}
ROTATED = "0.AXoAv4j5cvGGr0GRqy180BHbR_rotated_M2f7Kq9VbL1cR8xTzN0pYwD3eH6uJ4sA5gF"
M1 = ("040000008200E00074C5B7101A82E008000000007A3B5F1E2D3CDA01000000000000000010000000"
      "C2E1B0A9F8E7D6C5B4A39281706F5E4D")


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def answer(status: int, name: str | None = None, body: bytes = b"") -> HttpResponse:
    content = fixture(name) if name else body
    return HttpResponse(status, {"content-type": "application/json"}, content)


class Graph:
    """Answers like Microsoft: the token endpoint, calendarView/delta rounds and delta links,
    and plain calendarView. ``changes`` names the fixture a delta link answers with;
    ``override`` scripts anything else."""

    def __init__(self) -> None:
        self.changes = "delta_changes"
        self.override: Callable[[HttpRequest], HttpResponse | None] = lambda r: None
        self.transport = FunctionTransport(self.handle)

    def handle(self, request: HttpRequest) -> HttpResponse:
        if (scripted := self.override(request)) is not None:
            return scripted
        if request.url == TOKEN_URL:
            return answer(200, "token")
        assert request.headers["authorization"].startswith("Bearer eyJ0eXAi")
        assert 'outlook.timezone="UTC"' in request.headers["prefer"]
        parts = urlsplit(request.url)
        query = parse_qs(parts.query)
        if parts.path == "/v1.0/me/calendarView/delta":
            if "$deltatoken" in query:
                return answer(200, self.changes)
            return answer(200, "delta_page2" if "$skiptoken" in query else "delta_page1")
        if parts.path == "/v1.0/me/calendarView":
            return answer(200, "calendarview_page2" if "$skip" in query else "calendarview_page1")
        raise AssertionError(f"unexpected request {request.url}")

    def gets(self) -> list[str]:
        return [r.url for r in self.transport.requests if r.method == "GET"]

    def token_forms(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in parse_qs((r.body or b"").decode()).items()}
                for r in self.transport.requests if r.url == TOKEN_URL]


@pytest.fixture
def graph() -> Graph:
    return Graph()


def provider(graph: Graph, **options: Any) -> MicrosoftOutlookProvider:
    return MicrosoftOutlookProvider(
        transport=graph.transport, clock=FakeClock(NOW), token_url=TOKEN_URL, **options
    )


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC)


def by_key(result: Any) -> dict[str, Any]:
    return {o.key: o for o in result.occurrences}


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_delta_round_and_rotated_refresh_token(graph: Graph) -> None:
    result = await provider(graph).fetch(CREDENTIALS, None, *WINDOW)

    (form,) = graph.token_forms()
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == CREDENTIALS["oauth_refresh_token"]
    assert form["scope"] == "offline_access https://graph.microsoft.com/Calendars.Read"
    first, second = graph.gets()
    assert urlsplit(first).path == "/v1.0/me/calendarView/delta"
    assert query(first) == {"startDateTime": "2030-01-06T00:00:00Z",
                            "endDateTime": "2030-02-10T00:00:00Z"}  # a week of margin
    assert second == json.loads(fixture("delta_page1"))["@odata.nextLink"]
    assert result.changed
    assert result.state["delta_link"] == json.loads(fixture("delta_page2"))["@odata.deltaLink"]
    assert result.credentials is not None
    assert result.credentials["oauth_refresh_token"] == ROTATED
    assert result.credentials["access_token_expires_at"] == "2030-01-01T10:19:26Z"  # + 4766 s
    assert len(result.occurrences) == 6
    assert len(result.problems) == 1 and "not a time" in result.problems[0].reason


async def test_event_mapping(graph: Graph) -> None:
    result = await provider(graph).fetch(CREDENTIALS, None, *WINDOW)
    occurrences = by_key(result)

    review = occurrences[M1]
    assert (review.start, review.end) == (at(7, 13), at(7, 14))
    assert not review.recurring and review.recurrence_id == review.start and not review.all_day
    assert "teams.microsoft.com" in str(review.meeting_url)
    assert review.organizer == "grace@contoso.example"
    assert [(a.email, a.partstat, a.role) for a in review.attendees] == [
        ("grace@contoso.example", "ACCEPTED", "CHAIR"),
        ("henry@contoso.example", "ACCEPTED", "REQ-PARTICIPANT"),
        ("ivy@fabrikam.example", "TENTATIVE", "OPT-PARTICIPANT"),
        ("jack@contoso.example", "NEEDS-ACTION", "REQ-PARTICIPANT"),
        ("kim@contoso.example", "DECLINED", "REQ-PARTICIPANT"),
        ("rainier@contoso.example", "NEEDS-ACTION", "NON-PARTICIPANT"),
    ]
    assert review.dtstamp == datetime(2029, 12, 20, 8, 31, 45, 120332, tzinfo=UTC)
    assert review.raw["originalStartTimeZone"] == "W. Europe Standard Time"

    standups = sorted((o for o in result.occurrences if o.title == "Standup"),
                      key=lambda o: o.start)
    assert [o.start for o in standups] == [at(8, 8, 30), at(15, 9), at(22, 8, 30)]
    assert all(o.recurring for o in standups)
    exception = standups[1]
    assert exception.recurrence_id == at(15, 8, 30)  # the original start, not the moved one
    assert exception.key.endswith("|20300115T083000Z")
    assert "contoso.webex.com" in str(exception.meeting_url)  # from the location

    cancelled = next(o for o in result.occurrences if o.title == "Canceled: Budget")
    assert cancelled.cancelled and "98765432109" in str(cancelled.meeting_url)

    holiday = next(o for o in result.occurrences if o.title == "Company holiday")
    assert holiday.all_day and (holiday.start, holiday.end) == (at(12, 0), at(13, 0))


async def test_delta_link_applies_changes(graph: Graph) -> None:
    msft = provider(graph)
    first = await msft.fetch(CREDENTIALS, None, *WINDOW)
    credentials = {**CREDENTIALS, **(first.credentials or {})}
    second = await msft.fetch(credentials, first.state, *WINDOW)

    assert len(graph.token_forms()) == 1  # the cached access token was used
    assert graph.gets()[-1] == first.state["delta_link"]
    assert second.changed and second.credentials is None
    occurrences = by_key(second)
    assert (occurrences[M1].start, occurrences[M1].end) == (at(7, 14), at(7, 15))
    assert not any(o.start == at(22, 8, 30) for o in second.occurrences)  # @removed
    partner = next(o for o in second.occurrences if o.title == "Partner sync")
    assert partner.start == at(20, 16) and "84561237890" in str(partner.meeting_url)
    assert second.state["delta_link"].endswith("_9")

    graph.changes = "delta_empty"
    third = await msft.fetch(credentials, second.state, *WINDOW)
    assert not third.changed and sorted(by_key(third)) == sorted(occurrences)


async def test_window_past_the_round_starts_a_new_round(graph: Graph) -> None:
    msft = provider(graph)
    first = await msft.fetch(CREDENTIALS, None, *WINDOW)
    graph.changes = "delta_empty"
    inside = (WINDOW[0] + timedelta(days=2), WINDOW[1] + timedelta(days=2))
    moved = await msft.fetch(CREDENTIALS, first.state, *inside)
    assert "$deltatoken" in graph.gets()[-1]
    assert moved.changed and not any(o.start < inside[0] for o in moved.occurrences)

    beyond = (WINDOW[0] + timedelta(days=10), WINDOW[1] + timedelta(days=10))
    await msft.fetch(CREDENTIALS, moved.state, *beyond)
    assert query(graph.gets()[-2])["startDateTime"] == "2030-01-16T00:00:00Z"


async def test_expired_delta_link_starts_a_new_round(graph: Graph) -> None:
    msft = provider(graph)
    first = await msft.fetch(CREDENTIALS, None, *WINDOW)
    graph.override = lambda r: answer(410, "error_410") if "$deltatoken" in r.url else None
    again = await msft.fetch(CREDENTIALS, first.state, *WINDOW)
    assert "$deltatoken" in graph.gets()[-3] and "startDateTime" in graph.gets()[-2]
    assert not again.changed and again.state["delta_link"] == first.state["delta_link"]


async def test_state_over_the_cap_lists_the_calendar_view(graph: Graph) -> None:
    msft = provider(graph, max_state_bytes=4_000)
    first = await msft.fetch(CREDENTIALS, None, *WINDOW)
    assert "events" not in first.state and first.state["windowed"]
    second = await msft.fetch(CREDENTIALS, first.state, *WINDOW)
    view1, view2 = graph.gets()[-2:]
    assert urlsplit(view1).path == "/v1.0/me/calendarView"
    assert query(view1)["endDateTime"] == "2030-02-03T00:00:00Z"  # just the window
    assert view2 == json.loads(fixture("calendarview_page1"))["@odata.nextLink"]
    assert not second.changed and sorted(by_key(second)) == sorted(by_key(first))


async def test_a_chosen_calendar(graph: Graph) -> None:
    seen: list[str] = []

    def record(request: HttpRequest) -> HttpResponse | None:
        if request.url != TOKEN_URL:
            seen.append(urlsplit(request.url).path)
            return answer(200, "delta_empty")
        return None

    graph.override = record
    await provider(graph).fetch({**CREDENTIALS, "calendar_id": "AAMkAD/calendar=="}, None, *WINDOW)
    assert seen == ["/v1.0/me/calendars/AAMkAD%2Fcalendar%3D%3D/calendarView/delta"]


async def test_links_to_another_host_are_not_followed(graph: Graph) -> None:
    msft = provider(graph, api_base="https://graph.test/v1.0")
    graph.override = lambda r: (answer(200, "delta_page1")
                                if r.url.startswith("https://graph.test/") else None)
    with pytest.raises(CalendarUnavailable, match="another host"):
        await msft.fetch(CREDENTIALS, None, *WINDOW)
    assert not any(u.startswith("https://graph.microsoft.com") for u in graph.gets())


@pytest.mark.parametrize(("status", "name", "error", "text"), [
    (400, "token_invalid_grant", CalendarDisconnected, "invalid_grant: AADSTS700082"),
    (400, "token_temporarily_unavailable", CalendarUnavailable, "temporarily_unavailable"),
    (500, None, CalendarUnavailable, "HTTP 500"),
])
async def test_token_failures(graph: Graph, status: int, name: str | None,
                              error: type[Exception], text: str) -> None:
    graph.override = lambda r: answer(status, name) if r.url == TOKEN_URL else None
    with pytest.raises(error, match=text):
        await provider(graph).fetch(CREDENTIALS, None, *WINDOW)
    assert graph.gets() == []


async def test_401_refreshes_once_then_disconnects(graph: Graph) -> None:
    cached = {**CREDENTIALS, "access_token": "eyJ0eXAiOld",
              "access_token_expires_at": "2030-01-01T10:00:00Z"}
    graph.override = lambda r: (answer(401, "error_401")
                                if r.headers.get("authorization") == "Bearer eyJ0eXAiOld" else None)
    result = await provider(graph).fetch(cached, None, *WINDOW)
    assert len(graph.token_forms()) == 1 and result.occurrences

    graph.override = lambda r: answer(401, "error_401") if r.url != TOKEN_URL else None
    with pytest.raises(CalendarDisconnected, match="InvalidAuthenticationToken"):
        await provider(graph).fetch(CREDENTIALS, None, *WINDOW)


@pytest.mark.parametrize(("status", "name", "error"), [
    (403, "error_403", CalendarDisconnected),
    (404, "error_404", CalendarDisconnected),
    (429, "error_429", CalendarUnavailable),
    (503, None, CalendarUnavailable),
])
async def test_api_failures(
    graph: Graph, status: int, name: str | None, error: type[Exception]
) -> None:
    graph.override = lambda r: answer(status, name) if r.url != TOKEN_URL else None
    with pytest.raises(error, match=f"HTTP {status}"):
        await provider(graph).fetch(CREDENTIALS, None, *WINDOW)


def test_windows_time_zones() -> None:
    event = json.loads(fixture("delta_changes"))["value"][2]
    pacific = "Pacific Standard Time"
    event = {**event, "start": {"dateTime": "2030-01-20T08:00:00.0000000", "timeZone": pacific},
             "end": {"dateTime": "2030-01-20T08:30:00.0000000", "timeZone": pacific}}
    occurrence = to_occurrence(event)
    assert (occurrence.start, occurrence.end) == (at(20, 16), at(20, 16, 30))
    berlin = {**event,
              "start": {"dateTime": "2030-07-01T10:00:00.0000000",
                        "timeZone": "W. Europe Standard Time"},
              "end": {"dateTime": "2030-07-01T11:00:00.0000000", "timeZone": "Europe/Berlin"}}
    summer = to_occurrence(berlin)
    assert (summer.start, summer.end) == (datetime(2030, 7, 1, 8, tzinfo=UTC),
                                          datetime(2030, 7, 1, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="unknown time zone"):
        to_occurrence({**event, "start": {"dateTime": "2030-01-20T08:00:00",
                                          "timeZone": "Mars Standard Time"}})


def test_validate() -> None:
    msft = provider_for("microsoft_outlook")
    msft.validate(CREDENTIALS)
    with pytest.raises(ValueError, match="oauth_refresh_token"):
        msft.validate({k: v for k, v in CREDENTIALS.items() if k != "oauth_refresh_token"})
    with pytest.raises(ValueError, match="calendar_id"):
        msft.validate({**CREDENTIALS, "calendar_id": 7})

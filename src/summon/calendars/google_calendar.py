"""Google Calendar (``google_calendar``) through the Calendar API v3 ``events.list``.

Credentials: see :class:`summon.calendars.OAuthCalendarProvider` (``calendar_id`` defaults to
``primary``). Tokens come from ``https://oauth2.googleapis.com/token``.

How a sync works. ``events.list`` with ``singleEvents=true`` returns every occurrence of
recurring series as its own instance (Google expands them, including its own time zones and
exceptions), and ``showDeleted=true`` includes cancelled instances. A *full* listing asks for
``[window_start, window_end + coverage_margin)`` and ends with a ``nextSyncToken``; the events
are kept in ``state`` by id. Later fetches send only ``syncToken`` (Google forbids
``timeMin``/``timeMax`` with it) and apply the changes to the stored events — as long as the
requested window lies inside the listed range. When the window has moved past it (about once
per ``coverage_margin``, a week by default) or Google answers ``410 Gone`` (the token expired),
a new full listing starts; so does every fetch whose events did not fit the state cap.

Mapping (the conventions of :mod:`summon.domain.icalendar`): ``key`` is
``occurrence_key(iCalUID, originalStartTime)`` — ``"<uid>|YYYYMMDDTHHMMSSZ"`` — for an
instance of a series, and the ``iCalUID`` alone for a single event, so a moved event keeps its
key; cancelled instances keep the times Google or our stored copy give them and come back with
``cancelled=True``; all-day events (``start.date``) run from 00:00 UTC of their first day to
00:00 UTC of the exclusive end date; the meeting link is chosen by
:func:`~summon.domain.icalendar.find_occurrence_link` (which uses
:func:`~summon.domain.meeting_urls.find_meeting_url`) from the ``conferenceData`` entry points
(video first), ``hangoutLink``, ``location`` and ``description``; e-mail addresses are
lower-cased; response statuses map to PARTSTATs (``needsAction`` → ``NEEDS-ACTION``).

This module cannot reach Google from the test machine: its tests replay Google's documented
responses (``tests/fixtures/providers/google``) through an injected transport.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from summon.abc import CalendarDisconnected, CalendarUnavailable
from summon.calendars import Fetched, OAuthCalendarProvider, OAuthSession, overlaps
from summon.calendars.http import HttpResponse, HttpTransport
from summon.domain.icalendar import (
    Attendee,
    Occurrence,
    Problem,
    Property,
    find_occurrence_link,
    occurrence_key,
)

__all__ = ["GOOGLE_API_BASE", "GOOGLE_TOKEN_URL", "PROVIDER", "GoogleCalendarProvider"]

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_API_BASE = "https://www.googleapis.com/calendar/v3"
PAGE_SIZE = 2500  # the largest maxResults events.list accepts
ONE_SECOND = timedelta(seconds=1)
PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "needsAction": "NEEDS-ACTION",
}
#: 403 reasons that mean "slow down", not "no access".
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})


class _FullSyncRequired(Exception):
    """The sync token is no longer valid (410 Gone)."""


class GoogleCalendarProvider(OAuthCalendarProvider):
    """Google Calendar (see the module docstring). ``api_base`` and ``token_url`` point
    elsewhere in tests; ``coverage_margin`` is how far beyond the window a full listing
    reaches, so incremental syncs keep working while the window moves."""

    platform: ClassVar[str] = "google_calendar"
    token_url = GOOGLE_TOKEN_URL

    def __init__(
        self,
        *,
        api_base: str = GOOGLE_API_BASE,
        coverage_margin: timedelta = timedelta(days=7),
        max_pages: int = 200,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.api_base = api_base.rstrip("/")
        self.coverage_margin = coverage_margin
        self.max_pages = max_pages

    def source(self, credentials: dict[str, Any]) -> str:
        return f"{credentials['oauth_client_id']} {credentials.get('calendar_id', 'primary')}"

    async def collect(
        self,
        transport: HttpTransport,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
        deadline: float,
    ) -> Fetched:
        session = self.session(transport, credentials, deadline)
        calendar = quote(credentials.get("calendar_id", "primary"), safe="")
        url = f"{self.api_base}/calendars/{calendar}/events"
        events: dict[str, dict[str, Any]] | None = None
        token: str | None = None
        covered: list[str] = []
        if (state and _covers(state, window_start, window_end)
                and isinstance(state.get("events"), dict)):
            try:
                events, token = await self._incremental(session, url, state)
                covered = list(state["covered"])
            except _FullSyncRequired:
                events = None
        if events is None:
            covered_end = window_end + self.coverage_margin
            events, token = await self._full(session, url, window_start, covered_end)
            covered = [_iso(window_start), _iso(covered_end)]
        start, end = (datetime.fromisoformat(c) for c in covered)
        occurrences, problems, kept = _occurrences(events, window_start, window_end, start, end)
        return Fetched(
            occurrences, problems,
            {"sync_token": token, "covered": covered, "events": kept},
            session.credentials,
        )

    def shrink_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def _full(
        self, session: OAuthSession, url: str, time_min: datetime, time_max: datetime
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        params = {"singleEvents": "true", "showDeleted": "true", "maxResults": str(PAGE_SIZE),
                  "timeMin": _iso(time_min), "timeMax": _iso(time_max)}
        events: dict[str, dict[str, Any]] = {}
        token = await self._pages(session, url, params, events, full=True)
        return events, token

    async def _incremental(
        self, session: OAuthSession, url: str, state: dict[str, Any]
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        token = state.get("sync_token")
        if not isinstance(token, str) or not token:
            raise _FullSyncRequired
        events = {i: e for i, e in state["events"].items() if isinstance(e, dict)}
        params = {"singleEvents": "true", "showDeleted": "true", "maxResults": str(PAGE_SIZE),
                  "syncToken": token}
        new_token = await self._pages(session, url, params, events, full=False)
        return events, new_token

    async def _pages(
        self, session: OAuthSession, url: str, params: dict[str, str],
        events: dict[str, dict[str, Any]], *, full: bool,
    ) -> str | None:
        """Read every page into ``events`` (by id); the ``nextSyncToken`` of the last page."""
        page_token: str | None = None
        for _ in range(self.max_pages):
            query = {**params, **({"pageToken": page_token} if page_token else {})}
            response = await session.get(f"{url}?{urlencode(query)}")
            if response.status == 410 and not full:
                raise _FullSyncRequired
            if response.status != 200:
                raise _failure(response)
            try:
                page = response.json()
            except ValueError:
                raise CalendarUnavailable("Google answered with a body that is not JSON") from None
            if not isinstance(page, dict):
                raise CalendarUnavailable("Google answered with an unexpected body")
            for item in page.get("items") or ():
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    _apply(events, item)
            page_token = page.get("nextPageToken")
            if not page_token:
                token = page.get("nextSyncToken")
                return token if isinstance(token, str) else None
        raise CalendarUnavailable(f"more than {self.max_pages} pages of events")


def _apply(events: dict[str, dict[str, Any]], item: dict[str, Any]) -> None:
    """Store ``item``. A cancelled item that comes without times (Google sends only ``id`` and
    ``status`` for a deleted event) cancels the stored copy, keeping its times; with nothing
    stored and nothing to place it in time, it is dropped."""
    if item.get("status") == "cancelled" and "start" not in item:
        stored = events.get(item["id"])
        if stored is not None:
            events[item["id"]] = {**stored, **item, "status": "cancelled"}
            return
        if "originalStartTime" not in item:
            events.pop(item["id"], None)
            return
    events[item["id"]] = item


def _covers(state: dict[str, Any], window_start: datetime, window_end: datetime) -> bool:
    covered = state.get("covered")
    if not (isinstance(covered, list) and len(covered) == 2):
        return False
    try:
        start, end = (datetime.fromisoformat(c) for c in covered)
    except (TypeError, ValueError):
        return False
    return start <= window_start and window_end <= end


def _failure(response: HttpResponse) -> Exception:
    status = response.status
    message, reasons = _error(response)
    if status == 401:
        return CalendarDisconnected(f"Google refused a fresh access token (HTTP 401{message})")
    if status == 403 and reasons & RATE_LIMIT_REASONS:
        return CalendarUnavailable(f"Google rate limit (HTTP 403{message})")
    if status == 403:
        return CalendarDisconnected(f"Google refuses access to the calendar (HTTP 403{message})")
    if status in (404, 410):
        return CalendarDisconnected(f"no such Google calendar (HTTP {status}{message})")
    if status in (408, 429) or status >= 500:
        return CalendarUnavailable(f"Google answered HTTP {status}{message}")
    return CalendarDisconnected(f"Google answered HTTP {status}{message}")


def _error(response: HttpResponse) -> tuple[str, set[str]]:
    """``(": message", {reasons})`` of a Google error body, when it has one."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "", set()
    if not isinstance(error, dict):
        return "", set()
    reasons = {e.get("reason") for e in error.get("errors") or () if isinstance(e, dict)}
    message = error.get("message")
    return (f": {message[:200]}" if isinstance(message, str) else "",
            {r for r in reasons if isinstance(r, str)})


# -- events → occurrences -------------------------------------------------------------------------


def _occurrences(
    events: dict[str, dict[str, Any]], window_start: datetime, window_end: datetime,
    keep_from: datetime, keep_until: datetime,
) -> tuple[list[Occurrence], list[Problem], dict[str, dict[str, Any]]]:
    """The occurrences in the window, the problems, and the events worth keeping: those
    inside the listed range ``[keep_from, keep_until)`` (an incremental sync may report
    changes far outside it; they are listed again when the range gets there)."""
    occurrences: list[Occurrence] = []
    problems: list[Problem] = []
    kept: dict[str, dict[str, Any]] = {}
    for event_id, event in sorted(events.items()):
        try:
            occurrence = to_occurrence(event, events)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            uid = event.get("iCalUID") or event_id
            problems.append(Problem(uid=str(uid), reason=f"unreadable Google event: {exc}"))
            continue
        if occurrence is None:
            continue
        if overlaps(occurrence.start, occurrence.end, keep_from, keep_until):
            kept[event_id] = event
        if overlaps(occurrence.start, occurrence.end, window_start, window_end):
            occurrences.append(occurrence)
    return occurrences, problems, kept


def to_occurrence(
    event: dict[str, Any], siblings: dict[str, dict[str, Any]] | None = None
) -> Occurrence | None:
    """One Google event as an :class:`Occurrence`; None for a cancelled event that cannot be
    placed in time. ``siblings`` (the other stored events) supply what a bare cancelled
    instance lacks: the series' iCalUID and duration. Raises ``ValueError`` (or ``KeyError``/
    ``TypeError``) for an event without readable times."""
    siblings = siblings or {}
    cancelled = event.get("status") == "cancelled"
    series_id = event.get("recurringEventId")
    # Only a bare cancellation needs a sibling (a scan): the others carry their own data.
    bare = series_id and ("start" not in event or not event.get("iCalUID"))
    sibling = _sibling(event, siblings) if bare else None
    original = event.get("originalStartTime")
    recurrence_id = _when(original)[0] if isinstance(original, dict) else None
    if "start" in event:
        start, all_day = _when(event["start"])
        end = _when(event["end"])[0] if isinstance(event.get("end"), dict) else start
        if event.get("endTimeUnspecified"):
            end = start
    elif cancelled and recurrence_id is not None:
        start, all_day = recurrence_id, isinstance(original, dict) and "date" in original
        end = start + (_duration(sibling) if sibling else timedelta(0))
    elif cancelled:
        return None
    else:
        raise ValueError("the event has no start")
    if end < start:
        raise ValueError("the event ends before it starts")
    end = max(end, start + ONE_SECOND)  # the model's promise: end > start
    uid = event.get("iCalUID") or (sibling or {}).get("iCalUID") or series_id or event["id"]
    uid = str(uid)
    instance = recurrence_id if series_id else None
    description = _text(event.get("description"))
    location = _text(event.get("location"))
    organizer = event.get("organizer")
    email = organizer.get("email") if isinstance(organizer, dict) else None
    return Occurrence(
        uid=uid,
        recurrence_id=instance or start,
        # An instance is named by its original start; a single event by its UID alone, so
        # that moving it keeps its key (its bot is re-timed, not replaced).
        key=occurrence_key(uid, instance) if instance else uid,
        start=start,
        end=end,
        all_day=all_day,
        title=_text(event.get("summary")),
        description=description,
        location=location,
        meeting_url=_meeting_url(event, location, description),
        organizer=email.lower() if isinstance(email, str) and email else None,
        attendees=tuple(_attendees(event.get("attendees"))),
        cancelled=cancelled,
        sequence=int(event.get("sequence") or 0),
        dtstamp=_timestamp(event.get("updated")),
        recurring=bool(series_id),
        raw=event,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _sibling(event: dict[str, Any], siblings: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Another stored instance of the same series that has times (for a bare cancellation)."""
    series_id = event.get("recurringEventId")
    for other in siblings.values():
        if other is not event and other.get("recurringEventId") == series_id and "start" in other:
            return other
    return None


def _duration(event: dict[str, Any]) -> timedelta:
    try:
        start, end = _when(event["start"])[0], _when(event["end"])[0]
    except (KeyError, TypeError, ValueError):
        return timedelta(0)
    return max(end - start, timedelta(0))


def _when(value: dict[str, Any]) -> tuple[datetime, bool]:
    """``{"dateTime": RFC 3339}`` → (aware datetime, False); ``{"date": "YYYY-MM-DD"}`` →
    (that midnight UTC, True)."""
    if isinstance(value.get("dateTime"), str):
        moment = datetime.fromisoformat(value["dateTime"])
        if moment.tzinfo is None:
            raise ValueError(f"dateTime without an offset: {value['dateTime']!r}")
        return moment.astimezone(UTC), False
    if isinstance(value.get("date"), str):
        return datetime.combine(date.fromisoformat(value["date"]), time(), UTC), True
    raise ValueError(f"no date or dateTime in {value!r}")


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def _meeting_url(
    event: dict[str, Any], location: str | None, description: str | None
) -> str | None:
    """The join link, chosen as for iCalendar data: the conference's video entry points
    first, then ``hangoutLink``, the location and the description."""
    found: list[Property] = []
    conference = event.get("conferenceData")
    if isinstance(conference, dict):
        for entry in conference.get("entryPoints") or ():
            if isinstance(entry, dict) and isinstance(entry.get("uri"), str):
                feature = "VIDEO" if entry.get("entryPointType") == "video" else "PHONE"
                found.append(Property("CONFERENCE", {"FEATURE": feature}, entry["uri"]))
    if isinstance(event.get("hangoutLink"), str):
        found.append(Property("URL", {}, event["hangoutLink"]))
    found += [Property(name, {}, text) for name, text in
              (("LOCATION", location), ("DESCRIPTION", description)) if text]
    return find_occurrence_link(found)


def _attendees(value: object) -> list[Attendee]:
    attendees = []
    for person in value if isinstance(value, list) else ():
        if not isinstance(person, dict) or not isinstance(person.get("email"), str):
            continue
        if person.get("resource"):
            role = "NON-PARTICIPANT"
        elif person.get("organizer"):
            role = "CHAIR"
        elif person.get("optional"):
            role = "OPT-PARTICIPANT"
        else:
            role = "REQ-PARTICIPANT"
        attendees.append(Attendee(
            email=person["email"].lower(),
            name=person.get("displayName") if isinstance(person.get("displayName"), str) else None,
            partstat=PARTSTAT.get(str(person.get("responseStatus")), "NEEDS-ACTION"),
            role=role,
        ))
    return attendees


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


PROVIDER = GoogleCalendarProvider

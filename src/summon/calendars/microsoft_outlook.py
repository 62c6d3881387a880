"""Microsoft Outlook / Exchange Online (``microsoft_outlook``) through Microsoft Graph v1.0.

Credentials: see :class:`summon.calendars.OAuthCalendarProvider` (without ``calendar_id`` the
user's default calendar, ``/me/calendarView``; with it ``/me/calendars/{id}/calendarView``).
Tokens come from ``https://login.microsoftonline.com/common/oauth2/v2.0/token``, which
rotates the refresh token: the new one is returned in ``FetchResult.credentials``.

How a sync works. ``calendarView`` returns the occurrences of recurring series expanded by
Exchange (exceptions included; deleted occurrences simply absent). Its ``delta`` function
pages through the window (``@odata.nextLink``) and ends with an ``@odata.deltaLink``, which
later returns only what changed, deletions as ``@removed``. The window is fixed in the delta
link, so a full round asks for ``[window_start, window_end + coverage_margin)`` and later
fetches use the delta link while the requested window lies inside it; events are kept in
``state`` by id. A window past the range, ``410 Gone`` (``SyncStateNotFound``,
``resyncRequired``) or a missing state start a new round. When the events do not fit the
state cap, each fetch lists the window with plain ``calendarView`` instead.

Every request carries ``Prefer: outlook.timezone="UTC"``, so ``start``/``end`` come in UTC;
should another zone come back anyway, Windows zone names ("W. Europe Standard Time") are
mapped to IANA ones (:func:`summon.domain.windows_zones.windows_to_iana`). Mapping follows
the conventions of :mod:`summon.domain.icalendar`: ``key`` is
``occurrence_key(iCalUId, originalStart)`` for occurrences and exceptions of a series and the
``iCalUId`` alone for a single event (so a moved event keeps its key); all-day events run from
00:00 UTC of their first day to 00:00 UTC of the exclusive end date; the meeting link
(:func:`~summon.domain.icalendar.find_occurrence_link`, built on
:func:`~summon.domain.meeting_urls.find_meeting_url`) is ``onlineMeeting.joinUrl``, else the
first link in ``onlineMeetingUrl``, the location(s) or the body; addresses are lower-cased;
attendee responses map to PARTSTATs (``organizer`` → ACCEPTED, ``tentativelyAccepted`` →
TENTATIVE, ``none``/``notResponded`` → NEEDS-ACTION).

This module cannot reach Microsoft from the test machine: its tests replay Graph's documented
responses (``tests/fixtures/providers/microsoft``) through an injected transport.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from summon.abc import CalendarDisconnected, CalendarUnavailable
from summon.calendars import Fetched, OAuthCalendarProvider, OAuthSession, overlaps
from summon.calendars.http import HttpResponse, HttpTransport, origin
from summon.domain.icalendar import (
    Attendee,
    Occurrence,
    Problem,
    Property,
    find_occurrence_link,
    occurrence_key,
)
from summon.domain.windows_zones import windows_to_iana

__all__ = ["GRAPH_API_BASE", "MICROSOFT_TOKEN_URL", "PROVIDER", "MicrosoftOutlookProvider"]

MICROSOFT_TOKEN_URL = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
GRAPH_API_BASE = "https://graph.microsoft.com/v1.0"
DEFAULT_SCOPE = "offline_access https://graph.microsoft.com/Calendars.Read"
PAGE_SIZE = 200
ONE_SECOND = timedelta(seconds=1)
PARTSTAT = {
    "accepted": "ACCEPTED",
    "organizer": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyAccepted": "TENTATIVE",
    "notResponded": "NEEDS-ACTION",
    "none": "NEEDS-ACTION",
}
ROLE = {"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT", "resource": "NON-PARTICIPANT"}
RESYNC_CODES = frozenset({"SyncStateNotFound", "SyncStateInvalid", "resyncRequired"})


class _ResyncRequired(Exception):
    """The delta link is no longer valid."""


class MicrosoftOutlookProvider(OAuthCalendarProvider):
    """Microsoft Graph calendars (see the module docstring)."""

    platform: ClassVar[str] = "microsoft_outlook"
    token_url = MICROSOFT_TOKEN_URL

    def __init__(
        self,
        *,
        api_base: str = GRAPH_API_BASE,
        scope: str = DEFAULT_SCOPE,
        coverage_margin: timedelta = timedelta(days=7),
        max_pages: int = 500,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.api_base = api_base.rstrip("/")
        self.scope = scope
        self.coverage_margin = coverage_margin
        self.max_pages = max_pages

    def source(self, credentials: dict[str, Any]) -> str:
        return f"{credentials['oauth_client_id']} {credentials.get('calendar_id', '')}"

    def shrink_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"windowed": True}

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
        calendar_id = credentials.get("calendar_id")
        view = (f"{self.api_base}/me/calendars/{quote(calendar_id, safe='')}/calendarView"
                if calendar_id else f"{self.api_base}/me/calendarView")
        if state and state.get("windowed"):
            query = {"startDateTime": _iso(window_start), "endDateTime": _iso(window_end),
                     "$top": str(PAGE_SIZE)}
            events: dict[str, dict[str, Any]] = {}
            await self._pages(session, f"{view}?{urlencode(query)}", events)
            occurrences, problems = _occurrences(events, window_start, window_end)
            return Fetched(occurrences, problems, {"windowed": True}, session.credentials)

        events_or_none: dict[str, dict[str, Any]] | None = None
        delta_link: str | None = None
        covered = state.get("covered") if state else None
        if (state and _covers(covered, window_start, window_end)
                and isinstance(state.get("events"), dict)
                and isinstance(state.get("delta_link"), str)):
            events_or_none = {i: e for i, e in state["events"].items() if isinstance(e, dict)}
            try:
                delta_link = await self._pages(session, state["delta_link"], events_or_none)
            except _ResyncRequired:
                events_or_none = None
        if events_or_none is None:
            covered_end = window_end + self.coverage_margin
            query = {"startDateTime": _iso(window_start), "endDateTime": _iso(covered_end)}
            events_or_none = {}
            delta_link = await self._pages(
                session, f"{view}/delta?{urlencode(query)}", events_or_none
            )
            covered = [_iso(window_start), _iso(covered_end)]
        occurrences, problems = _occurrences(events_or_none, window_start, window_end)
        return Fetched(
            occurrences, problems,
            {"delta_link": delta_link, "covered": covered, "events": events_or_none},
            session.credentials,
        )

    async def _pages(
        self, session: OAuthSession, url: str, events: dict[str, dict[str, Any]]
    ) -> str | None:
        """Follow ``@odata.nextLink`` from ``url``, applying each event to ``events``; the
        final ``@odata.deltaLink`` (None for a plain calendarView)."""
        headers = {"prefer": f'outlook.timezone="UTC", odata.maxpagesize={PAGE_SIZE}'}
        for _ in range(self.max_pages):
            if origin(url) != origin(self.api_base):
                raise CalendarUnavailable("Graph sent a link to another host; not followed")
            response = await session.get(url, headers)
            if response.status == 410 or (
                response.status in (400, 404) and _error(response)[0] in RESYNC_CODES
            ):
                raise _ResyncRequired
            if response.status != 200:
                raise _failure(response)
            try:
                page = response.json()
            except ValueError:
                raise CalendarUnavailable("Graph answered with a body that is not JSON") from None
            if not isinstance(page, dict):
                raise CalendarUnavailable("Graph answered with an unexpected body")
            for item in page.get("value") or ():
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                if "@removed" in item:
                    events.pop(item["id"], None)
                elif item.get("type") != "seriesMaster":
                    events[item["id"]] = item
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str):
                delta = page.get("@odata.deltaLink")
                return delta if isinstance(delta, str) else None
            url = next_link
        raise CalendarUnavailable(f"more than {self.max_pages} pages of events")


def _covers(covered: object, window_start: datetime, window_end: datetime) -> bool:
    if not (isinstance(covered, list) and len(covered) == 2):
        return False
    try:
        start, end = (datetime.fromisoformat(c) for c in covered)
    except (TypeError, ValueError):
        return False
    return start <= window_start and window_end <= end


def _error(response: HttpResponse) -> tuple[str, str]:
    """``(code, ": message")`` of a Graph error body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    code, message = error.get("code"), error.get("message")
    return (code if isinstance(code, str) else "",
            f": {code}: {message[:200]}" if isinstance(message, str) else "")


def _failure(response: HttpResponse) -> Exception:
    status = response.status
    _, message = _error(response)
    if status == 401:
        return CalendarDisconnected(f"Microsoft refused a fresh access token (HTTP 401{message})")
    if status == 403:
        return CalendarDisconnected(f"Microsoft refuses access to the calendar (HTTP 403{message})")
    if status == 404:
        return CalendarDisconnected(f"no such Microsoft calendar (HTTP 404{message})")
    if status in (408, 429) or status >= 500:
        return CalendarUnavailable(f"Microsoft Graph answered HTTP {status}{message}")
    return CalendarDisconnected(f"Microsoft Graph answered HTTP {status}{message}")


# -- events → occurrences -------------------------------------------------------------------------


def _occurrences(
    events: dict[str, dict[str, Any]], window_start: datetime, window_end: datetime
) -> tuple[list[Occurrence], list[Problem]]:
    occurrences: list[Occurrence] = []
    problems: list[Problem] = []
    for event_id, event in sorted(events.items()):
        try:
            occurrence = to_occurrence(event)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            uid = event.get("iCalUId") or event_id
            problems.append(Problem(uid=str(uid), reason=f"unreadable Graph event: {exc}"))
            continue
        if overlaps(occurrence.start, occurrence.end, window_start, window_end):
            occurrences.append(occurrence)
    return occurrences, problems


def to_occurrence(event: dict[str, Any]) -> Occurrence:
    """One Graph event (an instance of ``calendarView``) as an :class:`Occurrence`. Raises
    ``ValueError`` (or ``KeyError``/``TypeError``) for an event without readable times."""
    all_day = bool(event.get("isAllDay"))
    start = _when(event["start"], all_day)
    end = _when(event["end"], all_day)
    if end < start:
        raise ValueError("the event ends before it starts")
    end = max(end, start + ONE_SECOND)  # the model's promise: end > start
    recurring = (event.get("type") in ("occurrence", "exception")
                 or bool(event.get("seriesMasterId")))
    original = event.get("originalStart")
    instance = _instant(original) if recurring and isinstance(original, str) else None
    recurrence_id = instance or start
    uid = str(event.get("iCalUId") or event["id"])
    body = event.get("body")
    content = body.get("content") if isinstance(body, dict) else None
    description = content if isinstance(content, str) else None
    place = event.get("location")
    location = place.get("displayName") if isinstance(place, dict) else None
    sender = (event.get("organizer") or {}).get("emailAddress") or {}
    organizer = sender.get("address") if isinstance(sender, dict) else None
    return Occurrence(
        uid=uid,
        recurrence_id=recurrence_id,
        # An instance is named by its original start; a single event by its iCalUId alone,
        # so that moving it keeps its key (its bot is re-timed, not replaced).
        key=occurrence_key(uid, instance) if instance else uid,
        start=start,
        end=end,
        all_day=all_day,
        title=event.get("subject") if isinstance(event.get("subject"), str) else None,
        description=description or None,
        location=location if isinstance(location, str) and location else None,
        meeting_url=_meeting_url(event, description),
        organizer=organizer.lower() if isinstance(organizer, str) and organizer else None,
        attendees=tuple(_attendees(event.get("attendees"))),
        cancelled=bool(event.get("isCancelled")),
        sequence=0,  # Graph exposes no SEQUENCE
        dtstamp=_timestamp(event.get("lastModifiedDateTime")),
        recurring=recurring,
        raw=event,
    )


def _when(value: dict[str, Any], all_day: bool) -> datetime:
    """Graph's ``dateTimeTimeZone`` (``"2030-01-07T13:00:00.0000000"`` + a zone name) as an
    aware UTC datetime; an all-day event's day as that midnight UTC."""
    local = datetime.fromisoformat(str(value["dateTime"]))
    if all_day:
        return datetime.combine(local.date(), time(), UTC)
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return local.replace(tzinfo=_zone(value.get("timeZone"))).astimezone(UTC)


def _zone(name: object) -> Any:
    """A Graph time zone name (Windows, IANA, or ``UTC``) as a tzinfo; unknown → ValueError."""
    if not isinstance(name, str) or name.strip() in ("", "UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
        return UTC
    name = name.strip()
    iana = windows_to_iana(name) or name
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _instant(value)
    except ValueError:
        return None


def _meeting_url(event: dict[str, Any], description: str | None) -> str | None:
    """The join link, chosen as for iCalendar data: ``onlineMeeting.joinUrl`` (Graph's
    conference link), ``onlineMeetingUrl``, then the location(s), then the body."""
    found: list[Property] = []
    online = event.get("onlineMeeting")
    if isinstance(online, dict) and isinstance(online.get("joinUrl"), str):
        found.append(Property("X-MICROSOFT-SKYPETEAMSMEETINGURL", {}, online["joinUrl"]))
    if isinstance(event.get("onlineMeetingUrl"), str):
        found.append(Property("URL", {}, event["onlineMeetingUrl"]))
    for place in (event.get("location"), *(event.get("locations") or ())):
        if isinstance(place, dict):
            found += [Property("LOCATION", {}, place[k]) for k in ("displayName", "locationUri")
                      if isinstance(place.get(k), str) and place[k]]
    if description:
        found.append(Property("X-ALT-DESC", {}, description))
    return find_occurrence_link(found)


def _attendees(value: object) -> list[Attendee]:
    attendees = []
    for person in value if isinstance(value, list) else ():
        if not isinstance(person, dict):
            continue
        address = person.get("emailAddress") or {}
        email = address.get("address") if isinstance(address, dict) else None
        if not isinstance(email, str) or not email:
            continue
        status = (person.get("status") or {}).get("response")
        name = address.get("name")
        attendees.append(Attendee(
            email=email.lower(),
            name=name if isinstance(name, str) else None,
            partstat=PARTSTAT.get(str(status), "NEEDS-ACTION"),
            role="CHAIR" if status == "organizer"
            else ROLE.get(str(person.get("type")), "REQ-PARTICIPANT"),
        ))
    return attendees


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


PROVIDER = MicrosoftOutlookProvider

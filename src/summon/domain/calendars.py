"""Calendars (SPEC §11): the calendar and calendar-event records, the auto-record rules, the
deduplication keys that let several calendars share one bot, and the ``calendar.*`` webhooks.

Pure code. The sync engine (``summon.services.calendars``) fetches occurrences through a
provider, diffs them by ``key`` against the stored events and asks these rules which events
want a bot.

**Auto-record rules.** A calendar may carry ``auto_record = {bot_config, rules}``. An event is
*eligible* when it is timed (not all-day), not cancelled or deleted, has a joinable meeting link
(one :func:`~summon.domain.meeting_urls.parse_meeting_url` accepts) and has not started yet. The
``rules`` (all optional booleans) narrow that down:

- ``internal`` / ``external`` — the kind of meeting. A meeting is *internal* when every
  attendee and the organizer have an e-mail address in the calendar owner's domain (or a
  subdomain of it), else *external*. If any of the two is ``true``, only the kinds set to
  ``true`` are recorded; otherwise a kind set to ``false`` is not recorded. With no known owner
  e-mail the kind is unknown, and a rule that restricts the kind never matches.
- ``recurring`` / ``non_recurring`` — the same logic over "part of a series or not".
- ``only_if_organizer`` — the owner organises the meeting.
- ``only_accepted`` — the owner accepted it (``PARTSTAT=ACCEPTED``; an organizer counts as
  accepted unless listed otherwise).

The **owner e-mail** is the calendar's configured ``email``, else the ``platform_email`` the
provider reported (the OAuth account, or the CalDAV user name when it is an address).

**Deduplication.** One bot per deduplication key per workspace. Auto-record uses
:func:`default_dedup_key`: the start instant and the meeting's canonical key (what
``MeetingUrl.key`` says identifies the meeting: passwords and spelling left out), so the same
meeting on two users' calendars gets one bot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

from summon.clock import isoformat_z
from summon.domain.errors import RuleViolation
from summon.domain.events import OutboxMessage
from summon.domain.icalendar import Occurrence
from summon.domain.meeting_urls import InvalidMeetingUrl, MeetingUrl, parse_meeting_url

#: Calendar sources: Recall's two OAuth platforms and Summon's self-hosted additions.
PLATFORMS: tuple[str, ...] = ("google_calendar", "microsoft_outlook", "ics_feed", "caldav")
#: The credential fields each platform takes (write-only in the API); the first is required
#: for OAuth platforms as a set, ``url`` alone for the others.
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "google_calendar": ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token"),
    "microsoft_outlook": ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token"),
    "ics_feed": ("url",),
    "caldav": ("url", "username", "password"),
}
REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "google_calendar": CREDENTIAL_FIELDS["google_calendar"],
    "microsoft_outlook": CREDENTIAL_FIELDS["microsoft_outlook"],
    "ics_feed": ("url",),
    "caldav": ("url",),
}

CONNECTING, CONNECTED, DISCONNECTED = "connecting", "connected", "disconnected"
STATUSES: tuple[str, ...] = (CONNECTING, CONNECTED, DISCONNECTED)

RULE_NAMES: tuple[str, ...] = (
    "external",
    "internal",
    "only_if_organizer",
    "only_accepted",
    "recurring",
    "non_recurring",
)

#: The ``ref`` under which a calendar event holds its bot (see ``summon.services.event_bots``).
EVENT_REF_PREFIX = "calendar_event:"


class CalendarEventDeleted(RuleViolation):
    code, http_status = "calendar_event_deleted", 400


class MeetingAlreadyEnded(RuleViolation):
    code, http_status = "meeting_already_ended", 400


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusChange:
    """One change of a calendar's ``status``: why, and when."""

    status: str
    reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AutoRecordRules:
    """See the module docstring. ``None`` = no constraint."""

    external: bool | None = None
    internal: bool | None = None
    only_if_organizer: bool | None = None
    only_accepted: bool | None = None
    recurring: bool | None = None
    non_recurring: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AutoRecordRules:
        data = data or {}
        return cls(**{name: data.get(name) for name in RULE_NAMES})

    def to_dict(self) -> dict[str, bool]:
        return {name: value for name in RULE_NAMES if (value := getattr(self, name)) is not None}


@dataclass(frozen=True, slots=True)
class AutoRecord:
    """Schedule bots for this calendar's meetings without client code. ``bot_config`` is a
    normalised Create Bot body (see ``summon.services.event_bots.attach_bot``)."""

    bot_config: dict[str, Any]
    rules: AutoRecordRules = field(default_factory=AutoRecordRules)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AutoRecord | None:
        if data is None:
            return None
        return cls(dict(data.get("bot_config") or {}), AutoRecordRules.from_dict(data.get("rules")))

    def to_dict(self) -> dict[str, Any]:
        return {"bot_config": self.bot_config, "rules": self.rules.to_dict()}


@dataclass(slots=True)
class Calendar:
    """A connected calendar. ``sealed_credentials`` is the credentials dict as JSON, encrypted
    (never shown again); ``state`` is the provider's incremental-sync state (sync tokens,
    ETags), opaque here. ``version`` fences writes: a sync that read version N may only write
    while it is still N (an update in between makes the sync start over)."""

    id: UUID
    workspace_id: UUID
    platform: str
    status: str
    status_reason: str | None
    sealed_credentials: str
    state: dict[str, Any]
    auto_record: AutoRecord | None
    email: str | None
    platform_email: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    status_changes: list[StatusChange] = field(default_factory=list)
    last_synced_at: datetime | None = None
    #: When a syncer should sync it next; None: never (disconnected).
    next_sync_at: datetime | None = None
    #: A syncer's claim lasts until then.
    lease_until: datetime | None = None
    #: Why the last sync failed (a source that could not be reached), None after a success.
    sync_error: str | None = None

    @property
    def owner_email(self) -> str | None:
        return self.email or self.platform_email

    def with_status(self, status: str, reason: str | None, now: datetime) -> bool:
        """Move to ``status`` (recording the change); False if nothing changed."""
        if status == self.status and reason == self.status_reason:
            return False
        self.status, self.status_reason = status, reason
        self.status_changes = [*self.status_changes, StatusChange(status, reason, now)]
        return True


@dataclass(frozen=True, slots=True)
class CalendarFilter:
    platform: str | None = None
    status: str | None = None
    email: str | None = None
    created_at_gte: datetime | None = None


@dataclass(slots=True)
class CalendarEvent:
    """One occurrence of a calendar, as last seen (``key`` is the occurrence's identity: its
    UID and recurrence instant). Deleted and cancelled events are kept with ``is_deleted``.

    ``manual_bot`` is a client's explicit request (``POST …/bot/``: ``deduplication_key`` and
    ``bot_config``); ``bot_opt_out`` records a ``DELETE …/bot/`` so that auto-record leaves the
    event alone."""

    id: UUID
    workspace_id: UUID
    calendar_id: UUID
    platform: str
    key: str
    ical_uid: str
    recurrence_id: str | None
    start_time: datetime
    end_time: datetime
    all_day: bool
    title: str | None
    meeting_url: str | None
    meeting_platform: str | None
    recurring: bool
    cancelled: bool
    is_deleted: bool
    organizer: dict[str, Any] | None
    attendees: list[dict[str, Any]]
    details: dict[str, Any]
    raw: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    manual_bot: dict[str, Any] | None = None
    bot_opt_out: bool = False

    @property
    def ref(self) -> str:
        return event_ref(self.id)

    # The occurrence view (``MeetingTime``) that ``summon.services.event_bots`` reads.
    @property
    def start(self) -> datetime:
        return self.start_time

    @property
    def end(self) -> datetime:
        return self.end_time

    def content(self) -> dict[str, Any]:
        """What a sync compares to tell whether the event changed."""
        return {
            "start": self.start_time,
            "end": self.end_time,
            "all_day": self.all_day,
            "title": self.title,
            "meeting_url": self.meeting_url,
            "recurring": self.recurring,
            "cancelled": self.cancelled,
            "organizer": self.organizer,
            "attendees": self.attendees,
            "details": self.details,
            "raw": _stable_raw(self.raw),
            "ical_uid": self.ical_uid,
            "recurrence_id": self.recurrence_id,
        }


@dataclass(frozen=True, slots=True)
class CalendarEventFilter:
    calendar_id: UUID | None = None
    start_time: datetime | None = None
    start_time_gte: datetime | None = None
    start_time_lte: datetime | None = None
    updated_at_gte: datetime | None = None
    is_deleted: bool | None = None
    ical_uid: str | None = None


@dataclass(frozen=True, slots=True)
class EventBot:
    """The bot of one deduplication key. ``bot_id`` is None while an attach is creating it
    (``claim`` is that attach's token, taken at ``claimed_at``)."""

    workspace_id: UUID
    dedup_key: str
    bot_id: UUID | None
    claim: UUID | None
    claimed_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventBotLink:
    """Where a ref's bot stands: its key and bot, and the bot's state, ``join_at`` and meeting
    key (None when the bot is gone)."""

    ref: str
    dedup_key: str
    bot_id: UUID | None
    bot_state: str | None = None
    bot_join_at: datetime | None = None
    bot_meeting_key: str | None = None


# -- occurrences ----------------------------------------------------------------------------------
class MeetingTime(Protocol):
    """What a bot needs of an occurrence: when, and where (a link, as text or parsed)."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...

    @property
    def meeting_url(self) -> Any: ...


def event_ref(event_id: UUID) -> str:
    return f"{EVENT_REF_PREFIX}{event_id}"


def event_id_of_ref(ref: str) -> UUID | None:
    if not ref.startswith(EVENT_REF_PREFIX):
        return None
    try:
        return UUID(ref[len(EVENT_REF_PREFIX) :])
    except ValueError:
        return None


def meeting_link(value: Any) -> str | None:
    """An occurrence's meeting link as text (providers give a string or a parsed link)."""
    if value is None or value == "":
        return None
    if isinstance(value, MeetingUrl):
        return value.format()
    return str(value)


def parse_link(text: str | None) -> MeetingUrl | None:
    if not text:
        return None
    try:
        return parse_meeting_url(text)
    except InvalidMeetingUrl:
        return None


def _person(value: Any) -> dict[str, Any] | None:
    """An organizer or attendee as a JSON-safe dict (``email`` lower-cased, ``mailto:`` gone)."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"email": _address(value), "name": None}
    if isinstance(value, Mapping):
        data = dict(value)
    else:
        data = {
            name: getattr(value, name)
            for name in ("email", "name", "partstat", "role")
            if hasattr(value, name)
        }
    data["email"] = _address(data.get("email"))
    return {
        k: (v if v is None or isinstance(v, str | bool | int) else str(v)) for k, v in data.items()
    }


def _address(value: Any) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.lower() or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return isoformat_z(value) if value.tzinfo else value.isoformat()
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


#: Properties of a raw event that change without the event changing (generation stamps).
_VOLATILE_RAW = frozenset({"dtstamp", "DTSTAMP", "etag", "ETag", "updated", "lastModifiedDateTime"})


def _stable_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in _VOLATILE_RAW}


def event_from_occurrence(
    occurrence: Occurrence,
    *,
    event_id: UUID,
    calendar: Calendar,
    now: datetime,
) -> CalendarEvent:
    """A fresh event record for ``occurrence`` (the caller keeps ids and bot fields of a stored
    one)."""
    link = meeting_link(occurrence.meeting_url)
    parsed = parse_link(link)
    recurrence_id = occurrence.recurrence_id
    return CalendarEvent(
        id=event_id,
        workspace_id=calendar.workspace_id,
        calendar_id=calendar.id,
        platform=calendar.platform,
        key=occurrence.key,
        ical_uid=occurrence.uid,
        recurrence_id=None if recurrence_id is None else _jsonable(recurrence_id),
        start_time=occurrence.start,
        end_time=occurrence.end,
        all_day=bool(occurrence.all_day),
        title=occurrence.title,
        meeting_url=link,
        meeting_platform=parsed.platform if parsed else None,
        recurring=bool(occurrence.recurring),
        cancelled=bool(occurrence.cancelled),
        is_deleted=bool(occurrence.cancelled),
        organizer=_person(occurrence.organizer),
        attendees=[p for a in occurrence.attendees or () if (p := _person(a)) is not None],
        details=_jsonable(
            {
                "description": occurrence.description,
                "location": occurrence.location,
                "sequence": occurrence.sequence,
            }
        ),
        raw=_jsonable(dict(occurrence.raw or {})),
        created_at=now,
        updated_at=now,
    )


def merge_event(stored: CalendarEvent | None, fresh: CalendarEvent) -> CalendarEvent | None:
    """The record to write for ``fresh`` given what is ``stored`` under its key: None when
    nothing changed; else ``fresh`` with the stored id, creation time and bot fields."""
    if stored is None:
        return fresh
    if stored.content() == fresh.content() and (stored.key, stored.is_deleted) == (
        fresh.key,
        fresh.is_deleted,
    ):
        return None
    fresh.id, fresh.created_at = stored.id, stored.created_at
    fresh.manual_bot, fresh.bot_opt_out = stored.manual_bot, stored.bot_opt_out
    return fresh


def diff_events(
    calendar: Calendar,
    stored: Sequence[CalendarEvent],
    occurrences: Iterable[Occurrence],
    window: tuple[datetime, datetime],
    now: datetime,
) -> list[CalendarEvent]:
    """The events a sync writes: new and changed occurrences, and stored events gone from the
    window (``is_deleted``). Unchanged events are not written (their ``updated_at`` stays).

    An occurrence is found by its key first. A key can change while the meeting stays the same
    — a single event's key is its start, so moving it makes a new key, and so does moving a
    whole series — so occurrences that appeared are paired, in start order, with stored ones of
    the same UID that vanished: the event keeps its id (and with it its bot, which is then
    re-timed instead of replaced)."""
    window_start, window_end = window
    by_key = {e.key: e for e in stored}
    seen: set[str] = set()
    out: list[CalendarEvent] = []
    appeared: dict[str, list[CalendarEvent]] = {}
    for occurrence in occurrences:
        if occurrence.key in seen:
            continue
        seen.add(occurrence.key)
        fresh = event_from_occurrence(occurrence, event_id=uuid4(), calendar=calendar, now=now)
        if occurrence.key in by_key:
            merged = merge_event(by_key[occurrence.key], fresh)
            if merged is not None:
                out.append(merged)
        else:
            appeared.setdefault(fresh.ical_uid, []).append(fresh)
    vanished: dict[str, list[CalendarEvent]] = {}
    for event in stored:
        if (
            event.key not in seen
            and not event.is_deleted
            and window_start <= event.start_time < window_end
        ):
            vanished.setdefault(event.ical_uid, []).append(event)
    for uid in set(appeared) | set(vanished):
        new = sorted(appeared.get(uid, []), key=lambda e: e.start_time)
        old = sorted(vanished.get(uid, []), key=lambda e: e.start_time)
        for before, after in zip(old, new, strict=False):
            out.append(merge_event(before, after) or after)
        out.extend(new[len(old) :])
        out.extend(replace(e, is_deleted=True, updated_at=now) for e in old[len(new) :])
    return out


# -- auto-record rules ----------------------------------------------------------------------------
def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().lower() or None


def _in_domain(address: str | None, domain: str) -> bool:
    d = _domain(address)
    return d is not None and (d == domain or d.endswith("." + domain))


def _kind_allowed(selected: Mapping[str, bool | None], kind: str | None) -> bool:
    """``selected`` maps each kind to its rule; see the module docstring."""
    if all(v is None for v in selected.values()):
        return True
    if kind is None:
        return False
    if any(v is True for v in selected.values()):
        return selected.get(kind) is True
    return selected.get(kind) is not False


def meeting_kind(event: CalendarEvent, owner_email: str | None) -> str | None:
    """``"internal"``, ``"external"``, or None when the owner's domain is unknown."""
    domain = _domain(owner_email)
    if domain is None:
        return None
    people = [*event.attendees, *([event.organizer] if event.organizer else [])]
    addresses = [p.get("email") for p in people if p.get("role") != "NON-PARTICIPANT"]
    return "internal" if all(_in_domain(a, domain) for a in addresses if a) else "external"


def owner_is_organizer(event: CalendarEvent, owner_email: str | None) -> bool:
    owner = _address(owner_email)
    return bool(owner and event.organizer and event.organizer.get("email") == owner)


def owner_accepted(event: CalendarEvent, owner_email: str | None) -> bool:
    owner = _address(owner_email)
    if not owner:
        return False
    for attendee in event.attendees:
        if attendee.get("email") == owner:
            return str(attendee.get("partstat") or "").upper() == "ACCEPTED"
    return owner_is_organizer(event, owner_email)


def wants_bot(
    event: CalendarEvent, rules: AutoRecordRules, owner_email: str | None, now: datetime
) -> bool:
    """Whether auto-record schedules a bot for ``event`` (see the module docstring)."""
    if event.all_day or event.cancelled or event.is_deleted or event.start_time <= now:
        return False
    if parse_link(event.meeting_url) is None:
        return False
    kinds = {"internal": rules.internal, "external": rules.external}
    if not _kind_allowed(kinds, meeting_kind(event, owner_email)):
        return False
    series = {"recurring": rules.recurring, "non_recurring": rules.non_recurring}
    if not _kind_allowed(series, "recurring" if event.recurring else "non_recurring"):
        return False
    if rules.only_if_organizer and not owner_is_organizer(event, owner_email):
        return False
    if rules.only_accepted and not owner_accepted(event, owner_email):
        return False
    return True


def desired_bot(
    calendar: Calendar, event: CalendarEvent, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The deduplication key and bot config ``event`` wants a bot under, or None: a client's
    explicit request (``manual_bot``) first, else auto-record's rules (unless the client
    removed the event's bot). Deleted and cancelled events want none."""
    if event.is_deleted or event.cancelled:
        return None
    if event.manual_bot:
        return str(event.manual_bot["deduplication_key"]), dict(
            event.manual_bot.get("bot_config") or {}
        )
    if event.bot_opt_out or calendar.auto_record is None or event.meeting_url is None:
        return None
    if not wants_bot(event, calendar.auto_record.rules, calendar.owner_email, now):
        return None
    return default_dedup_key(event.start_time, event.meeting_url), dict(
        calendar.auto_record.bot_config
    )


def default_dedup_key(start: datetime, meeting_url: str) -> str:
    """``"{start}-{meeting}"``: the same meeting at the same time is one bot, whoever's
    calendar it is on. The meeting part is the link's canonical key when it parses."""
    parsed = parse_link(meeting_url)
    return f"{isoformat_z(start)}-{parsed.key if parsed else meeting_url}"


# -- webhooks -------------------------------------------------------------------------------------
def calendar_update_event(calendar: Calendar, when: datetime) -> OutboxMessage:
    """``calendar.update``: the calendar's data changed (e.g. it became disconnected)."""
    return OutboxMessage(
        workspace_id=calendar.workspace_id,
        event_type="calendar.update",
        payload={"event": "calendar.update", "data": {"calendar_id": str(calendar.id)}},
        created_at=when,
    )


def calendar_sync_events_event(calendar: Calendar, last_updated: datetime) -> OutboxMessage:
    """``calendar.sync_events``: events changed; ``last_updated_ts`` suits
    ``updated_at__gte`` for an incremental re-fetch."""
    return OutboxMessage(
        workspace_id=calendar.workspace_id,
        event_type="calendar.sync_events",
        payload={
            "event": "calendar.sync_events",
            "data": {"calendar_id": str(calendar.id), "last_updated_ts": isoformat_z(last_updated)},
        },
        created_at=last_updated,
    )


def credentials_missing(platform: str, given: Iterable[str]) -> list[str]:
    """Required credential fields of ``platform`` not in ``given``."""
    have = set(given)
    return [name for name in REQUIRED_CREDENTIALS[platform] if name not in have]

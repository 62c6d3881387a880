"""iCalendar data → meeting occurrences: the one model calendar sync and e-mail invites share.

Calendar feeds, CalDAV objects and iMIP e-mails all carry RFC 5545 data, and both the calendar
sync (SPEC §11) and the bot mailboxes (SPEC §12) need the same answer from it: *which meetings
happen in this window, with which join link, and which of them were cancelled*. This module
gives that answer and nothing else — no I/O, no clock (the caller names the window).

Contract
--------
- :func:`parse_calendar` never raises: bytes or text in any state give a
  :class:`ParsedCalendar`. A bad event (no ``DTSTART``, a ``RRULE`` that cannot be read, an
  unreadable date) is left out and reported as a :class:`Problem`; the rest is kept.
- :func:`expand` turns series into :class:`Occurrence` s overlapping ``[start, end)``, sorted
  by start. It never raises either: a series it cannot expand is skipped and reported.
- Every occurrence is identified by ``uid`` + ``recurrence_id`` (its *original* start, in
  UTC), spelled ``key`` = ``"<uid>|YYYYMMDDTHHMMSSZ"``. It does not change when the instance is
  moved, renamed or cancelled, so callers can update and soft-delete by it.
- :func:`supersedes` is RFC 5546's version order (``SEQUENCE``, then ``DTSTAMP``).

Decisions (and why)
-------------------
- **Parsing** is our own, tolerant content-line reader: unfolding (also of folds that split a
  UTF-8 character, done on bytes), CRLF/LF/CR, a BOM, UTF-16, and Windows-1252 files, quoted
  parameters and RFC 6868 ``^`` escapes, missing ``END`` lines. It costs one pass and only the
  properties that decide *when* an event happens are read eagerly; titles, attendees, links and
  ``raw`` are read for events that produce occurrences in the window. A general-purpose
  library would build a full object tree of every historic event of a feed on every sync.
- **Recurrence** (``RRULE``/``EXRULE``) is expanded by our own RFC 5545 engine (checked
  against ``python-dateutil`` in the tests), because it has to be *bounded*: it starts at the
  period of the window instead of at ``DTSTART`` (a daily series from 2009 costs what a new one
  costs), skips whole days/hours that a sub-daily rule cannot match, and counts every period it
  looks at, so a rule that matches nothing (``BYMONTH=2;BYMONTHDAY=30``), a ``FREQ=SECONDLY``
  rule or a ``COUNT`` of a million stop at :data:`MAX_RULE_WORK` / :data:`MAX_OCCURRENCES`
  with a Problem instead of hanging. Expansion happens in the wall time of ``DTSTART``'s zone,
  so a weekly 9:00 Europe/Berlin meeting stays at 9:00 across DST; a wall time that does not
  exist (spring forward) moves forward by the gap, an ambiguous one takes the first instant
  (RFC 5545 §3.3.5). ``DTSTART`` is always an instance and counts towards ``COUNT``.
- **Overrides** (``RECURRENCE-ID``) replace the instance they name wherever either of them
  lies: an instance moved into the window appears, one moved out disappears, one with
  ``STATUS:CANCELLED`` appears with ``cancelled=True``. ``EXDATE`` instances are simply absent.
  ``RANGE=THISANDFUTURE`` is supported: the override's time shift, length and properties apply
  to every later instance that has no override of its own. An override without
  ``DTEND``/``DURATION`` keeps the series' length; nothing else is inherited from the master.
- **Time zones**: a ``TZID`` is looked up as an IANA name, then as a Windows name
  (:mod:`summon.domain.windows_zones`), then through the ``VTIMEZONE`` the calendar embeds
  (Outlook's "Customized Time Zone", "(UTC+01:00) Amsterdam, …"), then by the IANA name at
  the end of a prefixed id (``/mozilla.org/20050126_1/Europe/Berlin``), then by a fixed
  "(UTC+hh:mm)" offset. An unknown zone is read as UTC and reported (the event is kept).
- **Floating times** (no ``TZID``, no ``Z``) are read in the calendar's ``X-WR-TIMEZONE`` when
  it names a zone, otherwise as **UTC**. A recurring series whose ``DTSTART`` is in UTC is
  expanded in ``X-WR-TIMEZONE`` when present (as Google Calendar does), so it follows that
  zone's DST.
- **All-day** events (``VALUE=DATE``, or Outlook's ``X-MICROSOFT-CDO-ALLDAYEVENT:TRUE`` with
  midnight times) have ``start``/``end`` at 00:00 UTC of their dates; ``end`` is exclusive.
- **Length**: ``DTEND``, else ``DTSTART + DURATION`` (days nominal, hours exact), else one day
  for all-day events and zero for timed ones. ``end > start`` always holds: a zero or negative
  length (no end, or an end before the start) is stretched to one second.
- **Cancelled**: ``STATUS:CANCELLED`` on the instance or on the series, and every component of
  a ``METHOD:CANCEL`` message (which names what the organizer withdrew, with or without a
  ``STATUS``).
- In scheduling messages that do not describe a meeting fully (``METHOD`` ``CANCEL``,
  ``REPLY``, ``REFRESH``, ``COUNTER``, ``DECLINECOUNTER``) a component without ``DTSTART`` is not
  a problem: its series is kept (so a cancellation by ``UID`` works) and has no occurrences.
- Duplicated components (same ``UID`` and ``RECURRENCE-ID``) keep the newest version by
  :func:`supersedes`; on a tie, the later one in the file. A component without ``UID`` gets a
  stable one derived from its start and title.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import html
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, available_timezones

from summon.domain.meeting_urls import (
    InvalidMeetingUrl,
    MeetingUrl,
    find_meeting_url,
    parse_meeting_url,
)
from summon.domain.windows_zones import windows_to_iana

__all__ = [
    "MAX_COMPONENTS",
    "MAX_OCCURRENCES",
    "MAX_RULE_WORK",
    "Attendee",
    "Occurrence",
    "ParsedCalendar",
    "Problem",
    "Property",
    "Series",
    "expand",
    "find_occurrence_link",
    "occurrence_key",
    "parse_calendar",
    "supersedes",
]

#: Occurrences one series may produce in one call of :func:`expand`; more is reported and cut.
#: A real series in a sync window of weeks has a few dozen.
MAX_OCCURRENCES = 10_000

#: Work one recurrence rule may cost in one expansion: one unit per candidate day (or
#: sub-daily period) examined. Real rules need a few hundred; ~0.1 s of CPU at the cap.
MAX_RULE_WORK = 200_000

#: Work all series of one :func:`expand` call may cost together (in the same units).
MAX_CALENDAR_WORK = 5_000_000

#: Components (VEVENT, VTIMEZONE) read from one calendar; the rest is reported and ignored.
MAX_COMPONENTS = 100_000

# Values of one list-valued property (RDATE, EXDATE) or of one rule part that are read.
_MAX_VALUES = 5_000
# Component nesting deeper than this is not iCalendar.
_MAX_DEPTH = 16
# Characters of a problem's reason (a reason quotes the input).
_MAX_REASON = 300

_EPOCH = datetime(1970, 1, 1)
_ONE_SECOND = timedelta(seconds=1)
_ONE_DAY = timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attendee:
    """One ``ATTENDEE`` of an event."""

    email: str  # lower-cased, without "mailto:"
    name: str | None
    partstat: str | None  # upper-case: NEEDS-ACTION, ACCEPTED, DECLINED, TENTATIVE, DELEGATED
    role: str | None  # upper-case: REQ-PARTICIPANT, OPT-PARTICIPANT, CHAIR, NON-PARTICIPANT


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One instance of an event inside the window asked for.

    ``recurrence_id`` is the instance's *original* start (``DTSTART`` of a single event), so
    ``key`` stays the same when the instance is moved. ``raw`` is shared between the
    occurrences of one component: treat it as read-only.
    """

    uid: str
    recurrence_id: datetime  # UTC-aware
    key: str  # occurrence_key(uid, recurrence_id)
    start: datetime  # UTC-aware; all-day: 00:00 UTC of the date
    end: datetime  # UTC-aware, > start; all-day: 00:00 UTC of the (exclusive) end date
    all_day: bool
    title: str | None
    description: str | None
    location: str | None
    meeting_url: str | None  # the joinable link, as written in the source
    organizer: str | None  # e-mail, lower-cased, no mailto:
    attendees: tuple[Attendee, ...]
    cancelled: bool
    sequence: int
    dtstamp: datetime | None
    recurring: bool
    raw: dict[str, Any]  # property name -> value (str), or list of values when repeated


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the data that was skipped (or read with a fallback), for the logs."""

    uid: str | None
    reason: str


class Property(NamedTuple):
    """One content line: upper-cased name, parameters (upper-cased names, unquoted values;
    a multi-valued parameter is joined with ","), and the value as written (unfolded)."""

    name: str
    params: Mapping[str, str]
    value: str


@dataclass(frozen=True, slots=True)
class Series:
    """All components of one ``UID`` in one calendar object: the master (the event, with its
    ``RRULE``/``RDATE`` if recurring) and its overrides (``RECURRENCE-ID`` components).

    Either may be missing: an invite for a single changed instance has only an override; a
    ``METHOD:CANCEL`` may have a master without ``DTSTART``.
    """

    uid: str
    sequence: int  # the highest SEQUENCE among its components
    dtstamp: datetime | None  # the latest DTSTAMP among its components
    recurring: bool
    #: The series as a whole is cancelled (master STATUS:CANCELLED, or METHOD:CANCEL).
    cancelled: bool = False
    #: Original starts (UTC) of the instances that have components of their own (also those
    #: a CANCEL names by RECURRENCE-ID alone), sorted.
    recurrence_ids: tuple[datetime, ...] = ()
    _master: _Event | None = field(default=None, repr=False, compare=False)
    _overrides: tuple[_Event, ...] = field(default=(), repr=False, compare=False)
    _timezones: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _method: str | None = field(default=None, repr=False, compare=False)
    _calendar_zone: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_master(self) -> bool:
        """The series' master component is here: the data describes the whole series, not
        only some of its instances."""
        return self._master is not None

    @property
    def organizer(self) -> str | None:
        """The ORGANIZER's e-mail (lower-cased, no mailto:) of the master, else of the first
        override that names one."""
        for event in (self._master, *self._overrides):
            prop = event.node.first("ORGANIZER") if event is not None else None
            email = _address(prop) if prop is not None else None
            if email:
                return email
        return None

    @property
    def title(self) -> str | None:
        """The SUMMARY of the master, else of the first override that has one."""
        for event in (self._master, *self._overrides):
            prop = event.node.first("SUMMARY") if event is not None else None
            if prop is not None and prop.value.strip():
                return _unescape(prop.value)
        return None

    def to_ical(self) -> str:
        """This series alone as an iCalendar object: the calendar's ``METHOD`` and
        ``X-WR-TIMEZONE``, the ``VTIMEZONE`` s it uses and its components as they were written
        (folded, CRLF). ``parse_calendar(series.to_ical())`` gives this series again."""
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Summon//iCalendar//EN"]
        if self._method:
            lines.append(f"METHOD:{self._method}")
        if self._calendar_zone:
            lines.append(f"X-WR-TIMEZONE:{self._calendar_zone}")
        lines.extend(self._timezones)
        for event in (self._master, *self._overrides):
            if event is not None:
                lines.extend(event.lines)
        lines.append("END:VCALENDAR")
        return "".join(_fold(line) for line in lines)


@dataclass(frozen=True, slots=True)
class ParsedCalendar:
    """What :func:`parse_calendar` read: the scheduling method, the series, and the problems."""

    method: str | None  # upper-cased METHOD (REQUEST, CANCEL, REPLY, PUBLISH, ...) or None
    series: tuple[Series, ...]
    problems: tuple[Problem, ...]


def occurrence_key(uid: str, recurrence_id: datetime) -> str:
    """The stable identity of an occurrence: ``"<uid>|YYYYMMDDTHHMMSSZ"`` (UTC)."""
    rid = recurrence_id.astimezone(UTC) if recurrence_id.tzinfo else recurrence_id
    return f"{uid}|{rid:%Y%m%dT%H%M%S}Z"


def supersedes(
    new_sequence: int,
    new_dtstamp: datetime | None,
    old_sequence: int,
    old_dtstamp: datetime | None,
) -> bool:
    """RFC 5546 §2.1.5: does the new version of an event replace the old one?

    A higher ``SEQUENCE`` wins; on equal ``SEQUENCE`` the later ``DTSTAMP`` wins (a version
    with a ``DTSTAMP`` beats one without). An equal or older version does not supersede.
    """
    if new_sequence != old_sequence:
        return new_sequence > old_sequence
    if new_dtstamp is None:
        return False
    if old_dtstamp is None:
        return True
    return _as_utc(new_dtstamp) > _as_utc(old_dtstamp)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Content lines
# ---------------------------------------------------------------------------------------------

_BYTE_FOLD = re.compile(rb"(?:\r\n|\n|\r)[ \t]")
_TEXT_FOLD = re.compile(r"(?:\r\n|\n|\r)[ \t]")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PARAM_TEXT = re.compile(r'[^";:,]*')
_CARET = re.compile(r"\^[n'^]")
_CARET_MAP = {"^n": "\n", "^'": '"', "^^": "^"}


def _decode(data: str | bytes | bytearray | memoryview) -> str:
    """Text of the input, unfolded. Folds are removed before decoding bytes, so a producer
    that folded in the middle of a multi-byte UTF-8 character is read correctly."""
    if isinstance(data, str):
        return _TEXT_FOLD.sub("", data.removeprefix("\ufeff"))
    raw = bytes(data)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _TEXT_FOLD.sub("", raw.decode("utf-16", errors="replace").removeprefix("\ufeff"))
    raw = _BYTE_FOLD.sub(b"", raw.removeprefix(b"\xef\xbb\xbf"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: Outlook exports of some versions are Windows-1252.
        return raw.decode("cp1252", errors="replace")


def _parse_line(line: str) -> Property | None:
    """One unfolded content line, or None when it is not one (blank, no ':', bad quoting)."""
    match = _NAME.match(line)
    if match is None:
        return None
    name = match.group(0).upper()
    i, n = match.end(), len(line)
    params: dict[str, str] = {}
    while i < n and line[i] == ";":
        pmatch = _NAME.match(line, i + 1)
        if pmatch is None:
            return None
        pname, i = pmatch.group(0).upper(), pmatch.end()
        if i >= n or line[i] != "=":
            continue  # a parameter without value: ignored
        i += 1
        values = []
        while True:
            if i < n and line[i] == '"':
                close = line.find('"', i + 1)
                if close < 0:
                    return None
                values.append(line[i + 1 : close])
                i = close + 1
            else:
                vmatch = _PARAM_TEXT.match(line, i)
                assert vmatch is not None  # the pattern matches the empty string
                values.append(vmatch.group(0))
                i = vmatch.end()
            if i < n and line[i] == ",":
                i += 1
                continue
            break
        value = ",".join(values)
        if "^" in value:
            value = _CARET.sub(lambda m: _CARET_MAP[m.group(0)], value)
        params.setdefault(pname, value.strip())
    if i >= n or line[i] != ":":
        return None
    return Property(name, params, line[i + 1 :])


class _Node:
    """A component as read: its own properties, its sub-components, and its lines."""

    __slots__ = ("children", "lines", "name", "props")

    def __init__(self, name: str) -> None:
        self.name = name
        self.props: list[Property] = []
        self.children: list[_Node] = []
        self.lines: list[str] = []

    def first(self, name: str) -> Property | None:
        for prop in self.props:
            if prop.name == name:
                return prop
        return None

    def all(self, name: str) -> list[Property]:
        return [prop for prop in self.props if prop.name == name]


def _read_tree(text: str, problems: list[Problem]) -> list[_Node]:
    """The top-level components (VCALENDARs, or bare VEVENTs) of the text.

    Tolerant: an ``END`` naming an open ancestor closes everything up to it, a stray ``END``
    is ignored, components left open at the end of the text are closed there. Lines are
    recorded for every open component so that :meth:`Series.to_ical` can repeat them.
    """
    roots: list[_Node] = []
    stack: list[_Node] = []
    components = 0
    for line in _LINE_BREAK.split(text):
        if not line or line.isspace():
            continue
        if line[:6].upper() == "BEGIN:" or line[:4].upper() == "END:":
            upper = line.strip().upper()
            if upper.startswith("BEGIN:"):
                name = upper[6:].strip()
                if len(stack) >= _MAX_DEPTH or components >= MAX_COMPONENTS:
                    if components == MAX_COMPONENTS:
                        problems.append(Problem(None, "too many components; the rest is ignored"))
                        components += 1
                    continue
                node = _Node(name)
                components += 1
                if stack:
                    stack[-1].children.append(node)
                else:
                    roots.append(node)
                stack.append(node)
                for open_node in stack:
                    open_node.lines.append(line)
                continue
            if upper.startswith("END:"):
                name = upper[4:].strip()
                for depth in range(len(stack) - 1, -1, -1):
                    if stack[depth].name == name:
                        for open_node in stack:
                            open_node.lines.append(line)
                        del stack[depth:]
                        break
                continue
        if not stack:
            continue  # content outside any component
        prop = _parse_line(line)
        if prop is None:
            continue
        stack[-1].props.append(prop)
        for open_node in stack:
            open_node.lines.append(line)
    return roots


def _fold(line: str) -> str:
    """A content line folded at 75 octets (never inside a UTF-8 character), with CRLF."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line + "\r\n"
    parts, start, limit = [], 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # do not split a character
        parts.append(data[start:end].decode("utf-8"))
        start, limit = end, 74
    return "\r\n ".join(parts) + "\r\n"


_TEXT_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(value: str) -> str:
    """An RFC 5545 TEXT value: ``\\n``, ``\\,``, ``\\;``, ``\\\\`` (and stray escapes) undone."""
    if "\\" not in value:
        return value
    return _TEXT_ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{2}):?(\d{2})(?::?(\d{2}))?(?:[.,]\d{1,9})?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"([+-])?P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?",
    re.IGNORECASE,
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})(?::?(\d{2}))?")


class _BadValue(ValueError):
    """A value that cannot be read; the message says what and is shown in a Problem."""


class _Time(NamedTuple):
    """A DATE or DATE-TIME as written: the wall value, whether it is a date, and its zone
    (None = floating; UTC for "Z"; a fixed offset for "+01:00" suffixes)."""

    wall: datetime  # naive; midnight for dates
    is_date: bool
    zone: tzinfo | None


def _parse_time(value: str, *, want_date: bool = False) -> tuple[datetime, bool, tzinfo | None]:
    text = value.strip()
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise _BadValue(f"not a date or date-time: {text[:40]!r}")
    year, month, day, hour, minute, second, suffix = match.groups()
    try:
        if hour is None or want_date:
            return datetime(int(year), int(month), int(day)), True, None
        sec = min(int(second or 0), 59)  # a leap second is read as :59
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute), sec)
    except ValueError as exc:
        raise _BadValue(f"not a valid date: {text[:40]!r}") from exc
    if suffix is None:
        return wall, False, None
    if suffix in "Zz":
        return wall, False, UTC
    return wall, False, _fixed_offset(suffix)


def _fixed_offset(text: str) -> tzinfo:
    match = _OFFSET.fullmatch(text.strip())
    if match is None:
        raise _BadValue(f"not a UTC offset: {text[:20]!r}")
    sign, hours, minutes, seconds = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
    if delta >= _ONE_DAY:
        raise _BadValue(f"not a UTC offset: {text[:20]!r}")
    return timezone(-delta if sign == "-" else delta)


class _Duration(NamedTuple):
    days: int  # nominal: added to the wall time
    seconds: int  # exact


def _parse_duration(value: str) -> _Duration:
    text = value.strip()
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()[1:]) or text.upper().endswith("T"):
        raise _BadValue(f"not a duration: {text[:40]!r}")
    sign, weeks, days, hours, minutes, seconds = match.groups()
    total_days = int(weeks or 0) * 7 + int(days or 0)
    total_seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    if total_days > 3_000_000 or total_seconds > 3_000_000_000:
        raise _BadValue(f"duration out of range: {text[:40]!r}")
    if sign == "-":
        return _Duration(-total_days, -total_seconds)
    return _Duration(total_days, total_seconds)


def _split_values(value: str) -> list[str]:
    return [part for part in (p.strip() for p in value.split(",")[:_MAX_VALUES]) if part]


# ---------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------

_IANA_SUFFIX = re.compile(r"([A-Za-z]+(?:/[A-Za-z0-9_+-]+){1,2})$")
_UTC_OFFSET_NAME = re.compile(r"^\s*\(?\s*(?:UTC|GMT)\s*([+-]\s*\d{1,2})(?:[:.]?(\d{2}))?", re.IGNORECASE)
_zone_names_lower: dict[str, str] | None = None


def _iana(name: str) -> tzinfo | None:
    """The IANA zone of that name (exact, then ignoring case), or None."""
    global _zone_names_lower
    if not name or len(name) > 100 or name.startswith(("/", ".")) or ".." in name:
        return None
    with contextlib.suppress(Exception):  # ZoneInfo raises several kinds for bad keys
        return ZoneInfo(name)
    if _zone_names_lower is None:
        _zone_names_lower = {key.lower(): key for key in available_timezones()}
    key = _zone_names_lower.get(name.lower())
    if key is None:
        return None
    try:
        return ZoneInfo(key)
    except Exception:  # noqa: BLE001
        return None


class _DefinedZone(tzinfo):
    """A zone built from a VTIMEZONE: the UTC instants where its offset changes.

    Follows PEP 495 for wall times: in a gap (spring forward) ``fold=0`` uses the offset
    before the change, so the time moves forward by the gap; in an overlap (fall back)
    ``fold=0`` is the first of the two instants.
    """

    def __init__(
        self,
        name: str,
        initial: tuple[timedelta, timedelta, str | None],
        changes: list[tuple[datetime, timedelta, timedelta, str | None]],
    ) -> None:
        # changes: (UTC instant, offset after, dst after, name after), sorted by instant
        self._name = name
        self._initial = initial
        self._changes = changes
        self._instants = [change[0] for change in changes]
        befores = [initial[0], *(change[1] for change in changes[:-1])]
        self._fold0 = [c[0] + max(b, c[1]) for b, c in zip(befores, changes, strict=True)]
        self._fold1 = [c[0] + min(b, c[1]) for b, c in zip(befores, changes, strict=True)]

    def _state(self, dt: datetime | None) -> tuple[timedelta, timedelta, str | None]:
        if dt is None or not self._changes:
            return self._initial
        wall = dt.replace(tzinfo=None)
        bounds = self._fold1 if dt.fold else self._fold0
        index = bisect.bisect_right(bounds, wall) - 1
        if index < 0:
            return self._initial
        _, offset, dst, name = self._changes[index]
        return offset, dst, name

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self._state(dt)[0]

    def dst(self, dt: datetime | None) -> timedelta:
        return self._state(dt)[1]

    def tzname(self, dt: datetime | None) -> str | None:
        return self._state(dt)[2] or self._name

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        index = bisect.bisect_right(self._instants, utc) - 1
        if index < 0:
            return (utc + self._initial[0]).replace(tzinfo=self)
        instant, offset, _, _ = self._changes[index]
        before = self._initial[0] if index == 0 else self._changes[index - 1][1]
        wall = utc + offset
        # The second pass over an overlap: the same wall time as before the change.
        fold = 1 if offset < before and wall < instant + before else 0
        return wall.replace(tzinfo=self, fold=fold)

    def __repr__(self) -> str:
        return f"<VTIMEZONE {self._name!r}>"


# Transitions of a VTIMEZONE are computed for this span (wall years); outside it the nearest
# rule stays in force. Meetings are scheduled within it.
_ZONE_FIRST_YEAR, _ZONE_LAST_YEAR = 1970, 2100


def _zone_from_vtimezone(node: _Node) -> tzinfo | None:
    """The zone a VTIMEZONE defines, or None when it defines none that can be used.

    Every onset of every STANDARD/DAYLIGHT observance (its DTSTART, RDATEs and RRULE
    instances in :data:`_ZONE_FIRST_YEAR` … :data:`_ZONE_LAST_YEAR`) is one change of offset
    at the UTC instant ``onset - TZOFFSETFROM``.
    """
    tzid_prop = node.first("TZID")
    name = tzid_prop.value.strip() if tzid_prop else "custom"
    # (UTC instant, offset before, offset after, dst after, name after)
    changes: list[tuple[datetime, timedelta, timedelta, timedelta, str | None]] = []
    for child in node.children[:50]:
        if child.name not in ("STANDARD", "DAYLIGHT"):
            continue
        start_prop, from_prop, to_prop = (
            child.first("DTSTART"), child.first("TZOFFSETFROM"), child.first("TZOFFSETTO"))
        if to_prop is None:
            continue
        try:
            offset_to = _offset(to_prop.value)
            offset_from = _offset(from_prop.value) if from_prop else offset_to
            start = _parse_time(start_prop.value)[0] if start_prop else datetime(1970, 1, 1)
        except _BadValue:
            continue
        dst = timedelta(0)
        if child.name == "DAYLIGHT":
            dst = offset_to - offset_from if offset_to > offset_from else timedelta(hours=1)
        name_prop = child.first("TZNAME")
        label = _unescape(name_prop.value).strip() or None if name_prop else None
        walls: set[datetime] = {start}
        for prop in child.all("RDATE"):
            for part in _split_values(prop.value):
                try:
                    walls.add(_parse_time(part.split("/")[0])[0])
                except _BadValue:
                    continue
        for prop in child.all("RRULE")[:1]:
            try:
                rule = _parse_rule(prop.value)
            except _BadValue:
                continue
            until = None
            if rule.until is not None:
                until_wall, until_is_date, until_zone = rule.until
                # UNTIL of a zone's rule is in UTC; its onsets are in the old offset's time.
                until = until_wall + offset_from if until_zone is not None else until_wall
                if until_is_date:
                    until = until_wall + timedelta(hours=23, minutes=59, seconds=59)
            walls.update(_rule_instances(
                rule, start, until,
                max(start, datetime(_ZONE_FIRST_YEAR, 1, 1)), datetime(_ZONE_LAST_YEAR, 1, 1),
                _Budget(MAX_RULE_WORK),
            ))
        for wall in walls:
            changes.append((wall - offset_from, offset_from, offset_to, dst, label))
    if not changes:
        return None
    changes.sort(key=lambda change: change[0])
    unique: list[tuple[datetime, timedelta, timedelta, str | None]] = []
    for instant, _, offset_to, dst, label in changes:
        if unique and unique[-1][0] == instant:
            unique[-1] = (instant, offset_to, dst, label)
        else:
            unique.append((instant, offset_to, dst, label))
    return _DefinedZone(name, (changes[0][1], timedelta(0), None), unique)


def _offset(text: str) -> timedelta:
    offset = _fixed_offset(text).utcoffset(None)
    assert offset is not None
    return offset


class _Zones:
    """The time-zone resolver of one calendar: TZIDs → tzinfo, cached, with its problems."""

    def __init__(self, vtimezones: dict[str, _Node], problems: list[Problem]) -> None:
        self._vtimezones = vtimezones
        self._problems = problems
        self._cache: dict[str, tzinfo | None] = {}
        self._reported: set[str] = set()
        self.floating: tzinfo = UTC
        self.calendar_zone: tzinfo | None = None

    def set_calendar_zone(self, name: str | None) -> None:
        """X-WR-TIMEZONE: floating times are read in it, and recurring UTC series follow it."""
        if not name:
            return
        zone = _iana(name.strip()) or _windows(name.strip())
        if zone is not None:
            self.calendar_zone = zone
            self.floating = zone

    def resolve(self, tzid: str, uid: str | None) -> tzinfo:
        key = tzid.strip().strip('"')
        if key in self._cache:
            zone = self._cache[key]
        else:
            zone = self._lookup(key)
            self._cache[key] = zone
        if zone is None:
            if key not in self._reported:
                self._reported.add(key)
                self._problems.append(Problem(
                    uid, _reason(f"unknown time zone {key!r}; its times are read as UTC")))
            return UTC
        return zone

    def _lookup(self, key: str) -> tzinfo | None:
        zone = _iana(key) or _windows(key)
        if zone is not None:
            return zone
        node = self._vtimezones.get(key)
        if node is not None:
            try:
                zone = _zone_from_vtimezone(node)
            except Exception:  # noqa: BLE001 - a broken definition falls through to guesses
                zone = None
            if zone is not None:
                return zone
        suffix = _IANA_SUFFIX.search(key)
        if suffix is not None:
            parts = suffix.group(1).split("/")
            for start in range(len(parts) - 1):
                zone = _iana("/".join(parts[start:]))
                if zone is not None:
                    return zone
        last = key.rstrip("/").rsplit("/", 1)[-1]
        if last != key:
            zone = _windows(last)
            if zone is not None:
                return zone
        offset = _UTC_OFFSET_NAME.match(key)
        if offset is not None:
            hours = int(offset.group(1).replace(" ", ""))
            minutes = int(offset.group(2) or 0)
            if abs(hours) < 24:
                delta = timedelta(hours=abs(hours), minutes=minutes)
                return timezone(-delta if hours < 0 else delta)
        if key.upper() in ("Z", "UTC", "GMT", "ETC/UTC", "ETC/GMT"):
            return UTC
        return None


def _windows(name: str) -> tzinfo | None:
    iana = windows_to_iana(name)
    return _iana(iana) if iana else None


# ---------------------------------------------------------------------------------------------
# Recurrence rules
# ---------------------------------------------------------------------------------------------

_YEARLY, _MONTHLY, _WEEKLY, _DAILY, _HOURLY, _MINUTELY, _SECONDLY = range(7)
_FREQUENCIES = {
    "YEARLY": _YEARLY, "MONTHLY": _MONTHLY, "WEEKLY": _WEEKLY, "DAILY": _DAILY,
    "HOURLY": _HOURLY, "MINUTELY": _MINUTELY, "SECONDLY": _SECONDLY,
}
_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_BYDAY = re.compile(r"([+-]?)(\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]{1,4}")
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class _Rule:
    """A parsed RRULE/EXRULE. ``until`` is (wall, is_date, zone) as written."""

    freq: int
    interval: int = 1
    count: int | None = None
    until: tuple[datetime, bool, tzinfo | None] | None = None
    bysecond: tuple[int, ...] | None = None
    byminute: tuple[int, ...] | None = None
    byhour: tuple[int, ...] | None = None
    byday: tuple[tuple[int, int | None], ...] | None = None
    bymonthday: tuple[int, ...] | None = None
    byyearday: tuple[int, ...] | None = None
    byweekno: tuple[int, ...] | None = None
    bymonth: tuple[int, ...] | None = None
    bysetpos: tuple[int, ...] | None = None
    wkst: int = 0


def _int_list(name: str, value: str, low: int, high: int, *, signed: bool) -> tuple[int, ...]:
    numbers = []
    for part in _split_values(value):
        if not _INTEGER.fullmatch(part):
            raise _BadValue(f"{name}={value[:40]}")
        number = int(part)
        if not (low <= abs(number) <= high) or (number < 0 and not signed):
            raise _BadValue(f"{name} value {number} out of range")
        numbers.append(number)
    if not numbers:
        raise _BadValue(f"{name} is empty")
    return tuple(sorted(set(numbers)))


def _parse_rule(value: str) -> _Rule:
    """An RRULE value. Unknown parts (X-…, RSCALE=GREGORIAN, SKIP) are ignored; anything
    else that is wrong raises _BadValue with the reason."""
    parts: dict[str, str] = {}
    for part in value.strip().split(";"):
        if not part.strip():
            continue
        key, sep, item = part.partition("=")
        if not sep:
            raise _BadValue(f"part without '=': {part[:40]!r}")
        parts[key.strip().upper()] = item.strip()
    freq_text = parts.get("FREQ", "").upper()
    if freq_text not in _FREQUENCIES:
        raise _BadValue("FREQ is missing" if not freq_text else f"unknown FREQ {freq_text[:20]!r}")
    rscale = parts.get("RSCALE", "GREGORIAN").upper()
    if rscale != "GREGORIAN":
        raise _BadValue(f"calendar scale {rscale[:20]!r} is not supported")
    fields: dict[str, Any] = {"freq": _FREQUENCIES[freq_text]}
    if "INTERVAL" in parts:
        interval = parts["INTERVAL"]
        if not _DIGITS.fullmatch(interval) or not 1 <= int(interval) <= 100_000:
            raise _BadValue(f"INTERVAL={interval[:20]}")
        fields["interval"] = int(interval)
    if "COUNT" in parts:
        count = parts["COUNT"]
        if not _DIGITS.fullmatch(count) or int(count) < 1:
            raise _BadValue(f"COUNT={count[:20]}")
        fields["count"] = int(count)
    if "UNTIL" in parts:
        fields["until"] = _parse_time(parts["UNTIL"])
    limits = {
        "BYSECOND": (0, 60, False), "BYMINUTE": (0, 59, False), "BYHOUR": (0, 23, False),
        "BYMONTHDAY": (1, 31, True), "BYYEARDAY": (1, 366, True), "BYWEEKNO": (1, 53, True),
        "BYMONTH": (1, 12, False), "BYSETPOS": (1, 366, True),
    }
    for name, (low, high, signed) in limits.items():
        if name in parts:
            fields[name.lower()] = _int_list(name, parts[name], low, high, signed=signed)
    if "BYSECOND" in fields:
        fields["bysecond"] = tuple(s for s in fields["bysecond"] if s < 60) or (59,)
    if "BYDAY" in parts:
        days = []
        for part in _split_values(parts["BYDAY"]):
            match = _BYDAY.fullmatch(part)
            if match is None:
                raise _BadValue(f"BYDAY={parts['BYDAY'][:40]}")
            sign, number, weekday = match.groups()
            nth = None
            if number is not None:
                nth = int(number) * (-1 if sign == "-" else 1)
                if not 1 <= abs(nth) <= 53:
                    raise _BadValue(f"BYDAY ordinal {nth} out of range")
            days.append((_WEEKDAYS[weekday.upper()], nth))
        if not days:
            raise _BadValue("BYDAY is empty")
        fields["byday"] = tuple(sorted(set(days), key=lambda d: (d[0], d[1] or 0)))
    if "WKST" in parts:
        if parts["WKST"].upper() not in _WEEKDAYS:
            raise _BadValue(f"WKST={parts['WKST'][:20]}")
        fields["wkst"] = _WEEKDAYS[parts["WKST"].upper()]
    return _Rule(**fields)


class _Budget:
    """Work units left for expansions; ``exhausted`` once it ran out."""

    __slots__ = ("exhausted", "left")

    def __init__(self, units: int) -> None:
        self.left = units
        self.exhausted = False

    def spend(self, units: int) -> bool:
        self.left -= units
        if self.left < 0:
            self.exhausted = True
        return not self.exhausted


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _week_number(day: date, wkst: int) -> tuple[int, int]:
    """RFC 5545 week number of ``day`` (week 1 has at least four days of its year, weeks
    start on ``wkst``) and the number of weeks of that week-numbering year."""
    week_start = day - timedelta(days=(day.weekday() - wkst) % 7)
    year = (week_start + timedelta(days=3)).year
    jan4 = date(year, 1, 4)
    first = jan4 - timedelta(days=(jan4.weekday() - wkst) % 7)
    try:
        next_jan4 = date(year + 1, 1, 4)
        weeks = (next_jan4 - timedelta(days=(next_jan4.weekday() - wkst) % 7) - first).days // 7
    except ValueError:
        weeks = 52
    return (week_start - first).days // 7 + 1, weeks


class _Filter:
    """A rule's day-level parts with the defaults of RFC 5545 taken from DTSTART."""

    __slots__ = (
        "monthdays",
        "months",
        "nth",
        "nth_in_month",
        "simple_monthdays",
        "weekdays",
        "weeknos",
        "wkst",
        "yeardays",
    )

    def __init__(self, rule: _Rule, dtstart: datetime) -> None:
        bymonth, bymonthday, byday = rule.bymonth, rule.bymonthday, rule.byday
        if not (rule.byweekno or rule.byyearday or rule.bymonthday or rule.byday):
            if rule.freq == _YEARLY:
                bymonth = bymonth or (dtstart.month,)
                bymonthday = (dtstart.day,)
            elif rule.freq == _MONTHLY:
                bymonthday = (dtstart.day,)
            elif rule.freq == _WEEKLY:
                byday = ((dtstart.weekday(), None),)
        self.months = frozenset(bymonth) if bymonth else None
        self.monthdays = frozenset(bymonthday) if bymonthday else None
        self.yeardays = frozenset(rule.byyearday) if rule.byyearday else None
        self.weeknos = frozenset(rule.byweekno) if rule.byweekno else None
        self.wkst = rule.wkst
        ordinal = rule.freq == _MONTHLY or rule.freq == _YEARLY
        self.nth_in_month = rule.freq == _MONTHLY or bool(rule.bymonth)
        self.weekdays: frozenset[int] | None = None
        self.nth: tuple[tuple[int, int], ...] = ()
        if byday:
            self.weekdays = frozenset(d for d, n in byday if n is None or not ordinal)
            self.nth = tuple((d, n) for d, n in byday if n is not None and ordinal)
        # Only months and month days: candidates can be built instead of searched for.
        self.simple_monthdays = (
            self.monthdays is not None and self.yeardays is None and self.weeknos is None
            and not byday)

    def matches(self, day: date) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        if self.monthdays is not None and day.day not in self.monthdays and (
                day.day - _days_in_month(day.year, day.month) - 1) not in self.monthdays:
            return False
        if self.yeardays is not None:
            yearday = day.timetuple().tm_yday
            days = 366 if _days_in_month(day.year, 2) == 29 else 365
            if yearday not in self.yeardays and (yearday - days - 1) not in self.yeardays:
                return False
        if self.weeknos is not None:
            number, weeks = _week_number(day, self.wkst)
            if number not in self.weeknos and (number - weeks - 1) not in self.weeknos:
                return False
        if self.weekdays is not None:
            weekday = day.weekday()
            if weekday not in self.weekdays:
                for wanted, nth in self.nth:
                    if wanted != weekday:
                        continue
                    if self.nth_in_month:
                        position, length = day.day, _days_in_month(day.year, day.month)
                    else:
                        position = day.timetuple().tm_yday
                        length = 366 if _days_in_month(day.year, 2) == 29 else 365
                    if nth == (position - 1) // 7 + 1 or nth == -((length - position) // 7 + 1):
                        break
                else:
                    return False
        return True


def _month_days(flt: _Filter, year: int, months: Iterable[int]) -> list[date]:
    """Candidate days of a rule with only BYMONTH/BYMONTHDAY, built directly."""
    out: list[date] = []
    assert flt.monthdays is not None
    for month in months:
        if flt.months is not None and month not in flt.months:
            continue
        length = _days_in_month(year, month)
        days = {d if d > 0 else length + d + 1 for d in flt.monthdays}
        out.extend(date(year, month, d) for d in sorted(days) if 1 <= d <= length)
    return out


def _rule_instances(
    rule: _Rule,
    dtstart: datetime,
    until: datetime | None,
    low: datetime,
    high: datetime,
    budget: _Budget,
    *,
    include_start: bool = False,
) -> list[datetime]:
    """Wall times of the rule's instances in ``[low, high)``, none before ``dtstart``.

    ``dtstart`` and the bounds are naive wall times of one zone; ``until`` is inclusive and
    already in that wall time. ``DTSTART`` counts as the first instance for ``COUNT`` (RFC
    5545 §3.3.10); it is returned only with ``include_start`` and when the rule matches it
    (the caller adds it to a recurrence set anyway). Stops when ``budget`` runs out.
    """
    flt = _Filter(rule, dtstart)
    freq, interval = rule.freq, rule.interval
    byhour = rule.byhour or ((dtstart.hour,) if freq < _HOURLY else None)
    byminute = rule.byminute or ((dtstart.minute,) if freq < _MINUTELY else None)
    bysecond = rule.bysecond or ((dtstart.second,) if freq < _SECONDLY else None)
    hours, minutes = frozenset(byhour or ()), frozenset(byminute or ())
    if freq <= _DAILY:
        assert byhour and byminute and bysecond
        times = sorted((h, m, s) for h in byhour for m in byminute for s in bysecond)
    counted = 1 if rule.count is not None else 0  # DTSTART is the first instance
    limit = rule.count
    end = high if until is None else min(high, until + _ONE_SECOND)
    out: list[datetime] = []

    # The first period to look at: the one of dtstart when counting, else the one of `low`.
    skip_to = dtstart if limit is not None else max(dtstart, low)
    if freq == _YEARLY:
        base = dtstart.year
        index = max(0, (skip_to.year - base) // interval)
    elif freq == _MONTHLY:
        base = dtstart.year * 12 + dtstart.month - 1
        index = max(0, (skip_to.year * 12 + skip_to.month - 1 - base) // interval)
    elif freq == _WEEKLY:
        base_day = dtstart.date() - timedelta(days=(dtstart.weekday() - rule.wkst) % 7)
        index = max(0, (skip_to.date() - base_day).days // (7 * interval))
    elif freq == _DAILY:
        base_day = dtstart.date()
        index = max(0, (skip_to.date() - base_day).days // interval)
    else:
        unit = {_HOURLY: 3600, _MINUTELY: 60, _SECONDLY: 1}[freq]
        base_time = dtstart.replace(
            minute=dtstart.minute if freq >= _MINUTELY else 0,
            second=dtstart.second if freq == _SECONDLY else 0)
        step = unit * interval
        index = max(0, int((skip_to - base_time).total_seconds()) // step)

    while True:
        # -- the period's candidates -----------------------------------------------------
        if freq == _YEARLY:
            year = base + index * interval
            if year > 9999:
                break
            start = datetime(year, 1, 1)
            if start >= end:
                break
            if flt.simple_monthdays:
                days = _month_days(flt, year, range(1, 13))
                cost = len(days) + 1
            else:
                months = sorted(flt.months) if flt.months is not None and not (
                    flt.weeknos or flt.yeardays) else range(1, 13)
                days = []
                cost = 1
                for month in months:
                    for d in range(1, _days_in_month(year, month) + 1):
                        day = date(year, month, d)
                        if flt.matches(day):
                            days.append(day)
                    cost += _days_in_month(year, month)
            candidates = [datetime(d.year, d.month, d.day, *t) for d in days for t in times]
        elif freq == _MONTHLY:
            month_index = base + index * interval
            year, month = divmod(month_index, 12)
            month += 1
            if year > 9999:
                break
            start = datetime(year, month, 1)
            if start >= end:
                break
            if flt.months is not None and month not in flt.months:
                days, cost = [], 1
            elif flt.simple_monthdays:
                days = _month_days(flt, year, (month,))
                cost = len(days) + 1
            else:
                length = _days_in_month(year, month)
                days = [date(year, month, d) for d in range(1, length + 1)
                        if flt.matches(date(year, month, d))]
                cost = length
            candidates = [datetime(d.year, d.month, d.day, *t) for d in days for t in times]
        elif freq == _WEEKLY or freq == _DAILY:
            width = 7 if freq == _WEEKLY else 1
            try:
                first = base_day + timedelta(days=index * interval * width)
            except OverflowError:
                break
            start = datetime(first.year, first.month, first.day)
            if start >= end:
                break
            days = []
            for offset in range(width):
                try:
                    day = first + timedelta(days=offset)
                except OverflowError:
                    break
                if flt.matches(day):
                    days.append(day)
            cost = width
            candidates = [datetime(d.year, d.month, d.day, *t) for d in days for t in times]
        else:
            try:
                start = base_time + timedelta(seconds=index * step)
            except OverflowError:
                break
            if start >= end:
                break
            cost = 1
            # Whole days, hours, minutes the limits exclude are skipped at once.
            skip_until = None
            if not flt.matches(start.date()):
                skip_until = datetime(start.year, start.month, start.day) + _ONE_DAY
            elif byhour is not None and start.hour not in hours:
                skip_until = start.replace(minute=0, second=0) + timedelta(hours=1)
            elif byminute is not None and freq >= _MINUTELY and start.minute not in minutes:
                skip_until = start.replace(second=0) + timedelta(minutes=1)
            if skip_until is not None:
                if not budget.spend(cost):
                    break
                seconds = int((skip_until - base_time).total_seconds())
                index = max(index + 1, -(-seconds // step))
                continue
            if freq == _HOURLY:
                assert byminute and bysecond
                candidates = sorted(
                    start.replace(minute=m, second=s) for m in byminute for s in bysecond)
            elif freq == _MINUTELY:
                assert bysecond
                candidates = [start.replace(second=s) for s in bysecond]
            else:
                candidates = (
                    [start] if bysecond is None or start.second in frozenset(bysecond) else [])
        if not budget.spend(cost):
            break
        if rule.bysetpos and candidates:
            size = len(candidates)
            chosen = {p - 1 if p > 0 else size + p for p in rule.bysetpos}
            candidates = [candidates[i] for i in sorted(chosen) if 0 <= i < size]

        # -- the period's instances -------------------------------------------------------
        done = False
        for candidate in candidates:
            if candidate < dtstart:
                continue
            if candidate >= end:
                done = True
                break
            if limit is not None:
                if candidate != dtstart:
                    counted += 1
                if counted > limit:
                    done = True
                    break
            if candidate >= low and (include_start or candidate != dtstart):
                out.append(candidate)
                if len(out) > MAX_OCCURRENCES:
                    done = True
                    break
            if limit is not None and counted >= limit:
                done = True
                break
        if done:
            break
        index += 1
    return out


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

# Properties whose values are TEXT: unescaped in `raw` and in the occurrence's fields.
_TEXT_PROPERTIES = frozenset({
    "SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT", "CONTACT", "CATEGORIES", "RESOURCES",
    "X-ALT-DESC",
})
# Scheduling methods whose components need not describe the meeting (RFC 5546).
_PARTIAL_METHODS = frozenset({"CANCEL", "REPLY", "REFRESH", "COUNTER", "DECLINECOUNTER"})
# Where a joinable link is looked for, first to last (find_occurrence_link).
_CONFERENCE_PROPERTIES = (
    "X-GOOGLE-CONFERENCE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGCONFLINK",
    "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",
)


class _Moment(NamedTuple):
    """A resolved DTSTART/RECURRENCE-ID: wall time in ``zone`` and the UTC instant."""

    wall: datetime  # naive
    zone: tzinfo
    utc: datetime  # aware UTC
    all_day: bool


def _moment(wall: datetime, zone: tzinfo, all_day: bool) -> _Moment:
    if all_day:
        return _Moment(wall, UTC, wall.replace(tzinfo=UTC), True)
    return _Moment(wall, zone, wall.replace(tzinfo=zone).astimezone(UTC), False)


class _Event:
    """One VEVENT, read for expansion; what only occurrences need is read on first use."""

    __slots__ = (
        "_details",
        "dtstamp",
        "duration",
        "end",
        "exdates",
        "exrules",
        "index",
        "lines",
        "node",
        "rdates",
        "recurrence_id",
        "rules",
        "sequence",
        "start",
        "status_cancelled",
        "this_and_future",
        "uid",
    )

    def __init__(self, uid: str, node: _Node, index: int) -> None:
        self.uid = uid
        self.node = node
        self.lines: tuple[str, ...] = tuple(node.lines)
        self.index = index
        self.start: _Moment | None = None
        self.recurrence_id: _Moment | None = None
        self.this_and_future = False
        self.end: _Moment | None = None
        self.duration: _Duration | None = None
        self.rules: tuple[_Rule, ...] = ()
        self.exrules: tuple[_Rule, ...] = ()
        self.rdates: tuple[tuple[_Moment, _Moment | _Duration | None], ...] = ()
        self.exdates: tuple[_Moment, ...] = ()
        self.status_cancelled = False
        self.sequence = 0
        self.dtstamp: datetime | None = None
        self._details: _Details | None = None

    @property
    def recurring(self) -> bool:
        return bool(self.rules or self.rdates)

    @property
    def has_length(self) -> bool:
        return self.end is not None or self.duration is not None

    def details(self) -> _Details:
        if self._details is None:
            self._details = _Details(self.node)
        return self._details


class _Details:
    """Title, people, link and raw properties of a component (read lazily, once)."""

    __slots__ = (
        "attendees",
        "description",
        "location",
        "meeting_url",
        "organizer",
        "raw",
        "title",
    )

    def __init__(self, node: _Node) -> None:
        def text(name: str) -> str | None:
            prop = node.first(name)
            return _unescape(prop.value) if prop is not None else None

        self.title = text("SUMMARY")
        self.description = text("DESCRIPTION")
        self.location = text("LOCATION")
        self.meeting_url = find_occurrence_link(node.props)
        organizer = node.first("ORGANIZER")
        self.organizer = _address(organizer) if organizer is not None else None
        attendees: dict[str, Attendee] = {}
        for prop in node.all("ATTENDEE"):
            email = _address(prop)
            if email is None or email in attendees:
                continue
            attendees[email] = Attendee(
                email=email,
                name=prop.params.get("CN") or None,
                partstat=prop.params.get("PARTSTAT", "").upper() or None,
                role=prop.params.get("ROLE", "").upper() or None,
            )
        self.attendees = tuple(attendees.values())
        raw: dict[str, Any] = {}
        for prop in node.props:
            value = _unescape(prop.value) if (
                prop.name in _TEXT_PROPERTIES or prop.name.startswith("X-")) else prop.value
            if prop.name in raw:
                existing = raw[prop.name]
                if isinstance(existing, list):
                    existing.append(value)
                else:
                    raw[prop.name] = [existing, value]
            else:
                raw[prop.name] = value
        self.raw = raw


_MAILTO = re.compile(r"^\s*mailto:", re.IGNORECASE)


def _address(prop: Property) -> str | None:
    """The e-mail of an ORGANIZER/ATTENDEE: the mailto: value, else its EMAIL parameter."""
    value = prop.value.strip()
    if _MAILTO.match(value):
        email = _MAILTO.sub("", value, count=1).strip()
    elif "@" in prop.params.get("EMAIL", ""):
        email = prop.params["EMAIL"].strip()
    elif "@" in value and ":" not in value:
        email = value
    else:
        return None
    email = email.strip("<> ").lower()
    return email if "@" in email and len(email) <= 320 else None


def _reason(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class _Reader:
    """Reads the VEVENTs of one calendar into _Events, with the calendar's zones."""

    def __init__(self, zones: _Zones, method: str | None, problems: list[Problem]) -> None:
        self.zones = zones
        self.method = method
        self.problems = problems

    def time(self, prop: Property, uid: str | None) -> tuple[datetime, bool, tzinfo]:
        """A DATE/DATE-TIME property: wall value, is-date, zone (resolved)."""
        want_date = prop.params.get("VALUE", "").upper() == "DATE"
        wall, is_date, zone = _parse_time(prop.value, want_date=want_date)
        if is_date:
            return wall, True, UTC
        if zone is None:
            tzid = prop.params.get("TZID")
            zone = self.zones.resolve(tzid, uid) if tzid else self.zones.floating
        return wall, False, zone

    def moment(self, prop: Property, uid: str | None) -> _Moment:
        wall, is_date, zone = self.time(prop, uid)
        return _moment(wall, zone, is_date)

    def event(self, node: _Node, index: int) -> _Event | None:
        uid_prop = node.first("UID")
        uid = uid_prop.value.strip() if uid_prop is not None else ""
        if not uid:
            uid = _derived_uid(node)
        event = _Event(uid, node, index)
        try:
            self._fill(event, node)
        except _BadValue as exc:
            self.problems.append(Problem(uid, _reason(str(exc))))
            return None
        except (ValueError, OverflowError, ArithmeticError) as exc:
            self.problems.append(Problem(uid, _reason(f"unreadable event: {exc}")))
            return None
        return event

    def _fill(self, event: _Event, node: _Node) -> None:
        uid = event.uid
        status = node.first("STATUS")
        event.status_cancelled = self.method == "CANCEL" or (
            status is not None and status.value.strip().upper() == "CANCELLED")
        sequence = node.first("SEQUENCE")
        if sequence is not None and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", sequence.value):
            event.sequence = int(sequence.value)
        stamp = node.first("DTSTAMP") or node.first("LAST-MODIFIED")
        if stamp is not None:
            try:
                wall, is_date, zone = self.time(stamp, uid)
                event.dtstamp = _moment(wall, zone, is_date).utc
            except (_BadValue, ValueError, OverflowError):
                event.dtstamp = None
        rid_prop = node.first("RECURRENCE-ID")
        if rid_prop is not None:
            try:
                event.recurrence_id = self.moment(rid_prop, uid)
            except _BadValue as exc:
                raise _BadValue(f"invalid RECURRENCE-ID: {exc}") from exc
            event.this_and_future = rid_prop.params.get("RANGE", "").upper() == "THISANDFUTURE"

        start_prop = node.first("DTSTART")
        if start_prop is None:
            if self.method in _PARTIAL_METHODS:
                return  # kept as a stub: names the UID (and instance) it is about
            raise _BadValue("missing DTSTART")
        try:
            start = self.moment(start_prop, uid)
        except _BadValue as exc:
            raise _BadValue(f"invalid DTSTART: {exc}") from exc

        end_prop = node.first("DTEND")
        duration_prop = node.first("DURATION")
        if end_prop is not None:
            try:
                event.end = self.moment(end_prop, uid)
            except _BadValue:
                event.end = None  # an unreadable end: the default length
        elif duration_prop is not None:
            try:
                event.duration = _parse_duration(duration_prop.value)
            except _BadValue:
                event.duration = None

        all_day_flag = node.first("X-MICROSOFT-CDO-ALLDAYEVENT")
        if (
            all_day_flag is not None and all_day_flag.value.strip().upper() == "TRUE"
            and not start.all_day and start.wall.time() == datetime.min.time()
            and (event.end is None or event.end.wall.time() == datetime.min.time())
        ):
            start = _moment(start.wall, UTC, True)
            if event.end is not None:
                event.end = _moment(event.end.wall, UTC, True)

        if event.recurrence_id is None:
            rules = []
            for prop in node.all("RRULE")[:10]:
                try:
                    rules.append(_parse_rule(prop.value))
                except _BadValue as exc:
                    raise _BadValue(f"invalid RRULE: {exc}") from exc
            event.rules = tuple(rules)
            exrules = []
            for prop in node.all("EXRULE")[:10]:
                try:
                    exrules.append(_parse_rule(prop.value))
                except _BadValue as exc:
                    raise _BadValue(f"invalid EXRULE: {exc}") from exc
            event.exrules = tuple(exrules)
            event.rdates = tuple(self._rdates(node, uid))
            event.exdates = tuple(self._dates(node, "EXDATE", uid))
            # A recurring series written in UTC follows the calendar's zone (Google exports).
            if (
                (event.rules or event.rdates) and not start.all_day and start.zone is UTC
                and self.zones.calendar_zone is not None
            ):
                zone = self.zones.calendar_zone
                start = _Moment(start.utc.astimezone(zone).replace(tzinfo=None), zone,
                                start.utc, False)
        event.start = start

    def _dates(self, node: _Node, name: str, uid: str) -> Iterator[_Moment]:
        for prop in node.all(name)[:_MAX_VALUES]:
            for part in _split_values(prop.value):
                try:
                    yield self.moment(Property(name, prop.params, part), uid)
                except _BadValue:
                    continue  # one unreadable date costs only itself

    def _rdates(
        self, node: _Node, uid: str
    ) -> Iterator[tuple[_Moment, _Moment | _Duration | None]]:
        for prop in node.all("RDATE")[:_MAX_VALUES]:
            for part in _split_values(prop.value):
                first, _, second = part.partition("/")
                try:
                    start = self.moment(Property("RDATE", prop.params, first), uid)
                    length: _Moment | _Duration | None = None
                    if second:
                        if second.lstrip("+-").upper().startswith("P"):
                            length = _parse_duration(second)
                        else:
                            length = self.moment(Property("RDATE", prop.params, second), uid)
                    yield start, length
                except _BadValue:
                    continue


def _derived_uid(node: _Node) -> str:
    """A stable UID for a component that has none: from its start and title."""
    parts = [
        (prop.value if prop is not None else "")
        for prop in (node.first("DTSTART"), node.first("SUMMARY"), node.first("RECURRENCE-ID"))
    ]
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()
    return f"summon-derived-{digest[:32]}"


def _better(new: _Event, old: _Event) -> bool:
    """Of two components for the same instance, is ``new`` the one to keep?"""
    if supersedes(new.sequence, new.dtstamp, old.sequence, old.dtstamp):
        return True
    if supersedes(old.sequence, old.dtstamp, new.sequence, new.dtstamp):
        return False
    return new.index > old.index


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_calendar(data: str | bytes) -> ParsedCalendar:
    """Read iCalendar data (a feed, a CalDAV object, an iMIP part) into series.

    Never raises on bad input: unparseable data gives no series and one :class:`Problem`;
    a bad event is left out with a Problem of its own (``"missing DTSTART"``,
    ``"invalid RRULE: ..."``), the others are kept.
    """
    problems: list[Problem] = []
    try:
        return _parse_calendar(data, problems)
    except Exception as exc:  # noqa: BLE001 - the contract: bad input never raises
        return ParsedCalendar(None, (), (Problem(None, _reason(f"unreadable calendar: {exc!r}")),))


def _parse_calendar(data: str | bytes, problems: list[Problem]) -> ParsedCalendar:
    if not isinstance(data, str | bytes | bytearray | memoryview):
        return ParsedCalendar(None, (), (Problem(None, "not iCalendar data"),))
    text = _decode(data)
    roots = _read_tree(text, problems)
    calendars = [node for node in roots if node.name == "VCALENDAR"]
    bare_events = [node for node in roots if node.name == "VEVENT"]
    if not calendars and not bare_events:
        return ParsedCalendar(None, (), (Problem(None, "not iCalendar data: no VCALENDAR"),))

    method: str | None = None
    vtimezones: dict[str, _Node] = {}
    calendar_zone: str | None = None
    events: list[_Node] = list(bare_events)
    for calendar in calendars:
        method_prop = calendar.first("METHOD")
        if method_prop is not None and method is None:
            method = method_prop.value.strip().upper() or None
        zone_prop = calendar.first("X-WR-TIMEZONE")
        if zone_prop is not None and calendar_zone is None:
            calendar_zone = zone_prop.value
        for child in calendar.children:
            if child.name == "VEVENT":
                events.append(child)
            elif child.name == "VTIMEZONE":
                tzid = child.first("TZID")
                if tzid is not None:
                    vtimezones.setdefault(tzid.value.strip(), child)

    zones = _Zones(vtimezones, problems)
    zones.set_calendar_zone(calendar_zone)
    reader = _Reader(zones, method, problems)

    order: list[str] = []
    masters: dict[str, _Event] = {}
    overrides: dict[str, dict[datetime, _Event]] = {}
    stubs: dict[str, list[_Event]] = {}
    for index, node in enumerate(events):
        event = reader.event(node, index)
        if event is None:
            continue
        if event.uid not in overrides:
            order.append(event.uid)
            overrides[event.uid] = {}
        if event.start is None:
            stubs.setdefault(event.uid, []).append(event)
        elif event.recurrence_id is not None:
            key = event.recurrence_id.utc
            old = overrides[event.uid].get(key)
            if old is None or _better(event, old):
                overrides[event.uid][key] = event
        else:
            old_master = masters.get(event.uid)
            if old_master is None or _better(event, old_master):
                masters[event.uid] = event

    zone_lines = {tzid: tuple(node.lines) for tzid, node in vtimezones.items()}
    series = []
    for uid in order:
        master = masters.get(uid)
        own = list(overrides[uid].values())
        if master is not None:
            own = [_aligned(event, master) for event in own]
        own.sort(key=_rid_of)
        components = [e for e in (master, *own, *stubs.get(uid, ())) if e is not None]
        stamps = [e.dtstamp for e in components if e.dtstamp is not None]
        cancelled = (master is not None and master.status_cancelled) or (
            master is None and method == "CANCEL" and any(
                e.recurrence_id is None for e in stubs.get(uid, ())))
        if master is None and stubs.get(uid):
            master_stub = next((e for e in stubs[uid] if e.recurrence_id is None), None)
        else:
            master_stub = None
        tzids = _tzids(components)
        series.append(Series(
            uid=uid,
            sequence=max(e.sequence for e in components),
            dtstamp=max(stamps) if stamps else None,
            recurring=bool((master is not None and master.recurring) or own or any(
                e.recurrence_id is not None for e in stubs.get(uid, ()))),
            cancelled=cancelled,
            recurrence_ids=tuple(sorted({
                e.recurrence_id.utc for e in (*own, *stubs.get(uid, ()))
                if e.recurrence_id is not None})),
            _master=master or master_stub,
            _overrides=tuple(own) + tuple(
                e for e in stubs.get(uid, ()) if e.recurrence_id is not None),
            _timezones=tuple(line for t in tzids for line in zone_lines.get(t, ())),
            _method=method,
            _calendar_zone=calendar_zone.strip() if calendar_zone else None,
        ))
    return ParsedCalendar(method, tuple(series), tuple(problems))


def _rid_of(event: _Event) -> datetime:
    assert event.recurrence_id is not None
    return event.recurrence_id.utc


def _tzids(events: Iterable[_Event]) -> list[str]:
    found: dict[str, None] = {}
    for event in events:
        for prop in event.node.props:
            tzid = prop.params.get("TZID")
            if tzid:
                found.setdefault(tzid.strip(), None)
    return list(found)


def _aligned(override: _Event, master: _Event) -> _Event:
    """Make an override's RECURRENCE-ID comparable with the master's instances: a date-time
    RECURRENCE-ID of an all-day series names that date, a date one of a timed series names
    the instance at the series' time of day."""
    rid, start = override.recurrence_id, master.start
    if rid is None or start is None:
        return override
    if start.all_day and not rid.all_day:
        override.recurrence_id = _moment(
            datetime.combine(rid.wall.date(), datetime.min.time()), UTC, True)
    elif rid.all_day and not start.all_day:
        wall = datetime.combine(rid.wall.date(), start.wall.time())
        override.recurrence_id = _moment(wall, start.zone, False)
    return override


# ---------------------------------------------------------------------------------------------
# Expansion
# ---------------------------------------------------------------------------------------------


def expand(
    calendar: ParsedCalendar | Series,
    window_start: datetime,
    window_end: datetime,
) -> tuple[list[Occurrence], list[Problem]]:
    """Every occurrence overlapping ``[window_start, window_end)``, sorted by start.

    Cancelled instances are included with ``cancelled=True`` (callers soft-delete them);
    ``EXDATE`` instances are absent. A series that cannot be expanded — or whose expansion
    hits :data:`MAX_RULE_WORK` / :data:`MAX_OCCURRENCES` — is skipped or cut, and reported
    as a :class:`Problem`. Naive window bounds are read as UTC. Problems found while parsing
    are in :attr:`ParsedCalendar.problems`, not repeated here.
    """
    low, high = _as_utc(window_start), _as_utc(window_end)
    series = calendar.series if isinstance(calendar, ParsedCalendar) else (calendar,)
    occurrences: list[Occurrence] = []
    problems: list[Problem] = []
    budget = _Budget(MAX_CALENDAR_WORK)
    if high <= low:
        return occurrences, problems
    for one in series:
        if budget.exhausted:
            problems.append(Problem(one.uid, "not expanded: the calendar needs too much work"))
            continue
        try:
            found = _expand_series(one, low, high, budget, problems)
        except Exception as exc:  # noqa: BLE001 - one series never breaks the others
            problems.append(Problem(one.uid, _reason(f"cannot expand: {exc!r}")))
            continue
        occurrences.extend(found)
    occurrences.sort(key=lambda o: (o.start, o.uid, o.recurrence_id))
    return occurrences, problems


class _Instance(NamedTuple):
    rid: datetime  # UTC
    start: _Moment
    length: _Moment | _Duration | None  # an RDATE period's own end or length


def _expand_series(
    series: Series, low: datetime, high: datetime, calendar_budget: _Budget,
    problems: list[Problem],
) -> list[Occurrence]:
    master = series._master
    overrides = {e.recurrence_id.utc: e for e in series._overrides
                 if e.recurrence_id is not None and e.start is not None}
    out: list[Occurrence] = []
    if master is not None and master.start is not None:
        futures = sorted((e for e in overrides.values() if e.this_and_future), key=_rid_of)
        future_rids = [_rid_of(e) for e in futures]
        for instance in _master_instances(master, futures, low, high, calendar_budget, problems):
            if instance.rid in overrides:
                continue
            source, start, length = master, instance.start, instance.length
            position = bisect.bisect_right(future_rids, instance.rid) - 1
            if position >= 0:
                source = futures[position]
                assert source.start is not None and source.recurrence_id is not None
                shift = source.start.utc - source.recurrence_id.utc
                start = _moment_shifted(start, shift)
                length = None if source.has_length else (length or _length_of(master))
            occurrence = _occurrence(
                series, source, master, instance.rid, start, length, low, high)
            if occurrence is not None:
                out.append(occurrence)
    for rid, event in overrides.items():
        assert event.start is not None
        occurrence = _occurrence(series, event, master, rid, event.start, None, low, high)
        if occurrence is not None:
            out.append(occurrence)
    if len(out) > MAX_OCCURRENCES:
        problems.append(Problem(
            series.uid, f"more than {MAX_OCCURRENCES} occurrences in the window; cut"))
        out.sort(key=lambda o: o.start)
        del out[MAX_OCCURRENCES:]
    return out


def _moment_shifted(start: _Moment, shift: timedelta) -> _Moment:
    if not shift:
        return start
    if start.all_day:
        return _moment(start.wall + shift, UTC, True)
    utc = start.utc + shift
    return _Moment(utc.astimezone(start.zone).replace(tzinfo=None), start.zone, utc, False)


def _length_of(event: _Event) -> _Moment | _Duration | None:
    """The master's length as an RDATE-style length (for THISANDFUTURE overrides without one)."""
    if event.duration is not None:
        return event.duration
    if event.end is not None and event.start is not None:
        delta = event.end.utc - event.start.utc
        return _Duration(0, int(delta.total_seconds()))
    return None


def _master_instances(
    master: _Event,
    futures: Sequence[_Event],
    low: datetime,
    high: datetime,
    calendar_budget: _Budget,
    problems: list[Problem],
) -> list[_Instance]:
    """The master's instances (before overrides) that may overlap the window."""
    start = master.start
    assert start is not None
    if not master.recurring:
        return [_Instance(start.utc, start, None)]

    # How far before the window an instance may start and still overlap it (its length),
    # and how far THISANDFUTURE overrides move instances.
    reach = _longest(master, start)
    for event in futures:
        if event.start is not None and event.recurrence_id is not None:
            reach = max(reach, abs(event.start.utc - event.recurrence_id.utc) + _longest(
                event, event.start))
    zone = start.zone
    if start.all_day:
        wall_low = (low - reach - _ONE_DAY).replace(tzinfo=None)
        wall_high = (high + _ONE_DAY).replace(tzinfo=None)
    else:
        wall_low = _to_wall(low - reach, zone) - _ONE_DAY
        wall_high = _to_wall(high, zone) + _ONE_DAY
    for event in futures:
        if event.start is not None and event.recurrence_id is not None:
            shift = event.start.utc - event.recurrence_id.utc
            wall_low = min(wall_low, wall_low - shift)
            wall_high = max(wall_high, wall_high - shift)

    walls: set[datetime] = {start.wall}
    allowed = min(MAX_RULE_WORK, max(calendar_budget.left, 0))
    budget = _Budget(allowed)
    for rule in master.rules:
        until = _until_wall(rule, start)
        walls.update(_rule_instances(rule, start.wall, until, wall_low, wall_high, budget))
    lengths: dict[datetime, _Moment | _Duration | None] = {}
    for rdate, length in master.rdates:
        wall = _wall_in(rdate, start)
        walls.add(wall)
        if length is not None:
            lengths[wall] = length
    for rule in master.exrules:
        until = _until_wall(rule, start)
        walls.difference_update(_rule_instances(
            rule, start.wall, until, wall_low, wall_high, budget, include_start=True))
        if start.wall in _rule_instances(
                rule, start.wall, until, start.wall, start.wall + _ONE_SECOND, budget,
                include_start=True):
            walls.discard(start.wall)
    calendar_budget.spend(allowed - max(budget.left, 0))
    if budget.exhausted:
        problems.append(Problem(
            master.uid, "recurrence rule needs too much work to expand; occurrences may be "
            "missing"))

    excluded = _exclusions(master, start)
    instances = []
    for wall in sorted(walls):
        if not wall_low <= wall < wall_high and wall not in lengths:
            continue
        moment = _moment(wall, zone, start.all_day)
        if moment.utc in excluded[0] or (excluded[1] and wall.date() in excluded[1]):
            continue
        instances.append(_Instance(moment.utc, moment, lengths.get(wall)))
        if len(instances) > MAX_OCCURRENCES:
            problems.append(Problem(
                master.uid, f"more than {MAX_OCCURRENCES} occurrences in the window; cut"))
            break
    return instances


def _longest(event: _Event, start: _Moment) -> timedelta:
    end = _end_of(event, start, None, None)
    return max(end - start.utc, timedelta(0)) + _ONE_DAY


def _to_wall(instant: datetime, zone: tzinfo) -> datetime:
    try:
        return instant.astimezone(zone).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return instant.replace(tzinfo=None)


def _wall_in(moment: _Moment, start: _Moment) -> datetime:
    """An RDATE/EXDATE as a wall time of the series' zone."""
    if start.all_day:
        return datetime.combine(moment.wall.date(), datetime.min.time())
    if moment.all_day:
        return datetime.combine(moment.wall.date(), start.wall.time())
    return _to_wall(moment.utc, start.zone)


def _until_wall(rule: _Rule, start: _Moment) -> datetime | None:
    """A rule's UNTIL as an inclusive wall time of the series' zone."""
    if rule.until is None:
        return None
    wall, is_date, zone = rule.until
    if start.all_day:
        if zone is not None:
            wall = _to_wall(wall.replace(tzinfo=zone), UTC)
        return datetime.combine(wall.date(), datetime.min.time())
    if is_date:
        return wall + timedelta(hours=23, minutes=59, seconds=59)
    if zone is None:
        return wall  # floating UNTIL: the series' own wall time
    return _to_wall(wall.replace(tzinfo=zone), start.zone)


def _exclusions(master: _Event, start: _Moment) -> tuple[set[datetime], set[date]]:
    """EXDATE instants (UTC), and dates whose instances are all excluded (a DATE EXDATE on a
    timed series)."""
    instants: set[datetime] = set()
    days: set[date] = set()
    for exdate in master.exdates:
        if start.all_day:
            instants.add(datetime.combine(exdate.wall.date(), datetime.min.time(), UTC))
        elif exdate.all_day:
            days.add(exdate.wall.date())
        else:
            instants.add(exdate.utc)
    return instants, days


def _end_of(
    event: _Event,
    start: _Moment,
    length: _Moment | _Duration | None,
    master: _Event | None,
) -> datetime:
    """The end (UTC) of an instance of ``event`` starting at ``start``: the instance's own
    length (RDATE period), else the event's DTEND/DURATION (for an override without one, the
    master's), else the RFC 5545 default; always after the start."""
    if length is None:
        source = event
        if not event.has_length and master is not None and master is not event:
            source = master
        if source.duration is not None:
            length = source.duration
        elif source.end is not None and source.start is not None:
            if start.all_day:
                days = (source.end.wall.date() - source.start.wall.date()).days
                length = _Duration(days, 0)
            else:
                length = _Duration(0, int((source.end.utc - source.start.utc).total_seconds()))
    if isinstance(length, _Moment):
        end = length.utc
    elif isinstance(length, _Duration):
        if start.all_day:
            days = length.days + (-(-length.seconds // 86400) if length.seconds > 0 else 0)
            end = start.utc + timedelta(days=max(days, 1))
        elif length.days:
            wall = start.wall + timedelta(days=length.days)
            end = _moment(wall, start.zone, False).utc + timedelta(seconds=length.seconds)
        else:
            end = start.utc + timedelta(seconds=length.seconds)
    else:
        end = start.utc + (_ONE_DAY if start.all_day else timedelta(0))
    if end <= start.utc:
        end = start.utc + (_ONE_DAY if start.all_day else _ONE_SECOND)
    return end


def _occurrence(
    series: Series,
    event: _Event,
    master: _Event | None,
    rid: datetime,
    start: _Moment,
    length: _Moment | _Duration | None,
    low: datetime,
    high: datetime,
) -> Occurrence | None:
    end = _end_of(event, start, length, master)
    if not (start.utc < high and end > low):
        return None
    details = event.details()
    return Occurrence(
        uid=series.uid,
        recurrence_id=rid,
        key=occurrence_key(series.uid, rid),
        start=start.utc,
        end=end,
        all_day=start.all_day,
        title=details.title,
        description=details.description,
        location=details.location,
        meeting_url=details.meeting_url,
        organizer=details.organizer,
        attendees=details.attendees,
        cancelled=event.status_cancelled or series.cancelled,
        sequence=event.sequence,
        dtstamp=event.dtstamp,
        recurring=series.recurring,
        raw=details.raw,
    )


# ---------------------------------------------------------------------------------------------
# Meeting links
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s<>\"'`]+")
_TRAILING = ".,;:!?)]}*"
_MAX_TOKENS = 2000


def find_occurrence_link(properties: Iterable[Property]) -> str | None:
    """The joinable meeting link of an event, as written, or None.

    Looked for in this order, the first joinable link winning: the conference properties
    (``X-GOOGLE-CONFERENCE``, ``X-MICROSOFT-SKYPETEAMSMEETINGURL``,
    ``X-MICROSOFT-ONLINEMEETINGCONFLINK``, ``X-MICROSOFT-ONLINEMEETINGEXTERNALLINK``, then
    RFC 7986 ``CONFERENCE`` — ``FEATURE=VIDEO`` ones first — then ``URL``), then
    ``LOCATION``, then ``DESCRIPTION``, then ``X-ALT-DESC`` (HTML). Within one text the best
    link by :func:`summon.domain.meeting_urls.find_meeting_urls` wins. "Joinable" is what
    :mod:`summon.domain.meeting_urls` parses. Never raises.
    """
    try:
        by_name: dict[str, list[Property]] = {}
        for prop in properties:
            by_name.setdefault(prop.name, []).append(prop)
        for name in _CONFERENCE_PROPERTIES:
            for prop in by_name.get(name, ()):
                link = _link_in_value(_unescape(prop.value))
                if link:
                    return link
        conferences = sorted(
            by_name.get("CONFERENCE", ()),
            key=lambda p: "VIDEO" not in p.params.get("FEATURE", "").upper())
        for prop in (*conferences, *by_name.get("URL", ())):
            link = _link_in_value(_unescape(prop.value))
            if link:
                return link
        for name in ("LOCATION", "DESCRIPTION", "X-ALT-DESC"):
            for prop in by_name.get(name, ()):
                link = _link_in_text(_unescape(prop.value))
                if link:
                    return link
    except Exception:  # noqa: BLE001 - a link we cannot read is no link
        return None
    return None


def _parse_link(text: str) -> MeetingUrl | None:
    try:
        return parse_meeting_url(text)
    except InvalidMeetingUrl:
        return None


def _link_in_value(value: str) -> str | None:
    """A property whose value should be one link (it may still be a sentence)."""
    text = value.strip()
    if not text:
        return None
    if _parse_link(text) is not None:
        return text
    return _link_in_text(text)


def _link_in_text(text: str) -> str | None:
    """The best joinable link in a text, as written there (or canonical when the text only
    describes the meeting, as a Zoom invitation without link does)."""
    if not text:
        return None
    meeting = find_meeting_url(text)
    if meeting is None:
        return None
    for count, match in enumerate(_TOKEN.finditer(text)):
        if count >= _MAX_TOKENS:
            break
        token = match.group(0).lstrip("([{*")
        if "." not in token and ":" not in token:
            continue
        for candidate in ((html.unescape(token), token) if "&" in token else (token,)):
            found = _parse_link(candidate)
            if found is not None and found.key == meeting.key:
                while candidate and candidate[-1] in _TRAILING:
                    shorter = _parse_link(candidate[:-1])
                    if shorter is None or shorter.key != meeting.key:
                        break
                    candidate = candidate[:-1]
                return candidate
    return meeting.format()

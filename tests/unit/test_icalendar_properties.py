"""Properties of the iCalendar model over arbitrary, garbled and generated calendars:

- parse_calendar and expand never raise, whatever the bytes (random, iCalendar-shaped,
  real fixtures with lines dropped, duplicated, cut or scribbled on);
- every occurrence is well-formed: UTC-aware, end > start, overlapping the window, sorted,
  keyed by uid + original start, JSON-safe raw;
- expansion does not depend on the window it is asked for: two adjacent windows give exactly
  the occurrences of their union, and a window far from DTSTART gives what expanding from
  DTSTART gives there;
- the recurrence engine agrees with python-dateutil's rrule wherever both follow RFC 5545
  (dateutil intersects plain and numbered BYDAY values, cuts the first WEEKLY period at
  DTSTART before BYSETPOS, and miscounts the weeks of the previous year for BYWEEKNO; those
  cases are left out, and BYWEEKNO is checked against Python's ISO calendar instead).
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dateutil import rrule as dateutil_rrule  # type: ignore[import-untyped]
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from summon.domain.icalendar import (
    MAX_OCCURRENCES,
    Occurrence,
    ParsedCalendar,
    Problem,
    expand,
    occurrence_key,
    parse_calendar,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ics"
FIXTURE_TEXTS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.ics"))]

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WINDOW = (datetime(2029, 12, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))


def check(
    parsed: ParsedCalendar, window: tuple[datetime, datetime]
) -> tuple[list[Occurrence], list[Problem]]:
    """Expand and check every promise the model makes about its output."""
    assert isinstance(parsed, ParsedCalendar)
    assert all(isinstance(p, Problem) and isinstance(p.reason, str) for p in parsed.problems)
    assert parsed.method is None or parsed.method == parsed.method.upper()
    assert len({s.uid for s in parsed.series}) == len(parsed.series)
    occurrences, problems = expand(parsed, *window)
    assert all(isinstance(p, Problem) for p in problems)
    low, high = window
    keys = set()
    for occurrence in occurrences:
        for moment in (occurrence.start, occurrence.end, occurrence.recurrence_id):
            assert moment.utcoffset() == timedelta(0)
        assert occurrence.end > occurrence.start
        assert occurrence.start < high and occurrence.end > low
        assert occurrence.key == occurrence_key(occurrence.uid, occurrence.recurrence_id)
        assert occurrence.key not in keys
        keys.add(occurrence.key)
        if occurrence.all_day:
            assert occurrence.start.time() == datetime.min.time()
        assert json.loads(json.dumps(occurrence.raw)) == occurrence.raw
        for attendee in occurrence.attendees:
            assert attendee.email == attendee.email.lower() and "@" in attendee.email
            assert not attendee.email.startswith("mailto:")
        assert occurrence.meeting_url is None or isinstance(occurrence.meeting_url, str)
    assert [o.start for o in occurrences] == sorted(o.start for o in occurrences)
    per_series: dict[str, int] = {}
    for occurrence in occurrences:
        per_series[occurrence.uid] = per_series.get(occurrence.uid, 0) + 1
    assert all(count <= MAX_OCCURRENCES for count in per_series.values())
    return occurrences, problems


# --- arbitrary input ---------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    check(parse_calendar(data), WINDOW)


@FAST
@given(st.text(max_size=2000))
def test_any_text(text: str) -> None:
    check(parse_calendar(text), WINDOW)


NAMES = st.sampled_from([
    "BEGIN", "END", "UID", "DTSTART", "DTEND", "DURATION", "RRULE", "EXRULE", "RDATE", "EXDATE",
    "RECURRENCE-ID", "SEQUENCE", "DTSTAMP", "STATUS", "SUMMARY", "DESCRIPTION", "LOCATION",
    "ORGANIZER", "ATTENDEE", "X-GOOGLE-CONFERENCE", "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "CONFERENCE", "URL", "X-ALT-DESC", "METHOD", "X-WR-TIMEZONE", "TZID", "TZOFFSETFROM",
    "TZOFFSETTO", "X-MICROSOFT-CDO-ALLDAYEVENT", "X-FOO",
])
COMPONENTS = st.sampled_from(
    ["VCALENDAR", "VEVENT", "VTIMEZONE", "STANDARD", "DAYLIGHT", "VALARM", "VTODO"])
PARAMS = st.sampled_from([
    "", ";TZID=Europe/Berlin", ';TZID="W. Europe Standard Time"', ";TZID=Customized Time Zone",
    ";TZID=Nowhere/Else", ";VALUE=DATE", ";VALUE=PERIOD", ";RANGE=THISANDFUTURE",
    ";FEATURE=VIDEO", ';CN="A, B"', ";PARTSTAT=accepted", ";EMAIL=x@y.z", ';X="unterminated',
    ";=", ";TZID=",
])
RULE_PARTS = st.lists(st.sampled_from([
    "FREQ=DAILY", "FREQ=WEEKLY", "FREQ=MONTHLY", "FREQ=YEARLY", "FREQ=HOURLY", "FREQ=MINUTELY",
    "FREQ=SECONDLY", "FREQ=NEVER", "INTERVAL=2", "INTERVAL=0", "INTERVAL=-1", "COUNT=3",
    "COUNT=100000000", "UNTIL=20300401T000000Z", "UNTIL=20300401", "UNTIL=garbage",
    "BYDAY=MO,WE", "BYDAY=-1FR", "BYDAY=5SU", "BYDAY=XX", "BYMONTHDAY=31", "BYMONTHDAY=-1",
    "BYMONTHDAY=0", "BYMONTH=2", "BYMONTH=13", "BYSETPOS=-1", "BYSETPOS=400", "BYYEARDAY=366",
    "BYWEEKNO=53", "BYHOUR=25", "BYHOUR=9", "BYMINUTE=30", "BYSECOND=60", "WKST=SU", "X-A=1",
    "RSCALE=HEBREW", "", "=",
]), max_size=6).map(";".join)
VALUES = st.one_of(
    st.sampled_from([
        "20300401T090000Z", "20300401T090000", "20300401", "2030-04-01T09:00:00+02:00",
        "20300231T250000", "PT1H", "P1D", "-PT5M", "P", "20300401T090000Z/PT1H",
        "20300401,20300402", "CANCELLED", "REQUEST", "CANCEL", "mailto:A@B.C", "urn:uuid:1",
        "https://meet.google.com/abc-defg-hij", "https://zoom.us/j/1234567890", "+0100",
        "-0530", "TRUE", "Europe/Berlin", "\\n\\,\\;\\\\", "",
    ]),
    RULE_PARTS,
    st.text(max_size=40),
)
LINE = st.one_of(
    st.builds(lambda c: f"BEGIN:{c}", COMPONENTS),
    st.builds(lambda c: f"END:{c}", COMPONENTS),
    st.builds(lambda n, p, v: f"{n}{p}:{v}", NAMES, PARAMS, VALUES),
    st.builds(lambda p, v: f"RRULE{p}:{v}", PARAMS, RULE_PARTS),
    st.text(max_size=30),
)


def wrap(lines: list[str]) -> str:
    return "BEGIN:VCALENDAR\r\n" + "\r\n".join(lines) + "\r\nEND:VCALENDAR\r\n"


@THOROUGH
@given(st.lists(LINE, max_size=40), st.sampled_from(["\r\n", "\n", "\r"]))
def test_icalendar_shaped_input(lines: list[str], newline: str) -> None:
    text = newline.join(["BEGIN:VCALENDAR", *lines, "END:VCALENDAR"])
    check(parse_calendar(text), WINDOW)
    check(parse_calendar(text.encode("utf-8")), WINDOW)


EVENT_LINES = st.lists(
    st.one_of(
        st.builds(lambda n, p, v: f"{n}{p}:{v}", NAMES, PARAMS, VALUES),
        st.builds(lambda v: f"RRULE:{v}", RULE_PARTS),
    ),
    max_size=12,
)


@THOROUGH
@given(st.lists(EVENT_LINES, min_size=1, max_size=4))
def test_events_with_random_properties(events: list[list[str]]) -> None:
    lines = []
    for number, body in enumerate(events):
        lines += ["BEGIN:VEVENT", f"UID:e{number % 2}", "DTSTART:20300401T090000Z", *body,
                  "END:VEVENT"]
    check(parse_calendar(wrap(lines)), WINDOW)


# --- garbled real calendars --------------------------------------------------------------------

MUTATION = st.tuples(
    st.sampled_from(["drop", "duplicate", "swap", "insert", "scribble", "cut", "revalue"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.text(max_size=20),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int, str]]) -> bytes:
    lines = data.split(b"\r\n")
    for kind, a, b, text in mutations:
        if not lines:
            break
        i, j = a % len(lines), b % len(lines)
        if kind == "drop":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(j, lines[i])
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            lines.insert(i, text.encode("utf-8", "surrogatepass"))
        elif kind == "scribble":
            line = lines[i]
            k = b % (len(line) + 1)
            lines[i] = line[:k] + text.encode("utf-8", "surrogatepass") + line[k + 1:]
        elif kind == "cut":
            blob = b"\r\n".join(lines)
            lines = blob[: a % (len(blob) + 1)].split(b"\r\n")
        elif kind == "revalue":
            head, sep, _ = lines[i].partition(b":")
            if sep:
                lines[i] = head + b":" + text.encode("utf-8", "surrogatepass")
    return b"\r\n".join(lines)


@THOROUGH
@given(st.sampled_from(range(len(FIXTURE_TEXTS))), st.lists(MUTATION, min_size=1, max_size=6))
def test_garbled_fixtures(index: int, mutations: list[tuple[str, int, int, str]]) -> None:
    data = mutate(FIXTURE_TEXTS[index], mutations)
    check(parse_calendar(data), WINDOW)
    check(parse_calendar(data.decode("utf-8", errors="replace")), WINDOW)


# --- windows -------------------------------------------------------------------------------------

RULES = st.builds(
    lambda freq, interval, byday, bymonthday, bysetpos, count: ";".join(filter(None, [
        f"FREQ={freq}", f"INTERVAL={interval}" if interval > 1 else "",
        f"BYDAY={byday}" if byday else "", f"BYMONTHDAY={bymonthday}" if bymonthday else "",
        f"BYSETPOS={bysetpos}" if bysetpos and (byday or bymonthday) else "",
        f"COUNT={count}" if count else "",
    ])),
    st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
    st.integers(min_value=1, max_value=3),
    st.sampled_from(["", "MO", "TU,TH", "MO,TU,WE,TH,FR", "-1FR", "2WE", "1MO,-1SU"]),
    st.sampled_from(["", "1", "15", "-1", "1,15"]),
    st.sampled_from(["", "1", "-1"]),
    st.sampled_from([None, None, 5, 40]),
)
STARTS = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2031, 1, 1))
ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", None])


def series_text(rule: str, start: datetime, zone: str | None, exdate_days: int) -> str:
    wall = start.replace(second=0, microsecond=0)
    value = f"{wall:%Y%m%dT%H%M%S}"
    spec = f";TZID={zone}:{value}" if zone else f":{value}Z"
    end = (wall + timedelta(minutes=45)).strftime("%Y%m%dT%H%M%S")
    lines = [f"UID:prop-{rule}", f"DTSTART{spec}", f"DTEND{spec.split(':')[0]}:{end}"
             + ("" if zone else "Z"), f"RRULE:{rule}"]
    if exdate_days:
        exdate = f"{wall + timedelta(days=exdate_days):%Y%m%dT%H%M%S}"
        lines.append(f"EXDATE{spec.split(':')[0]}:{exdate}" + ("" if zone else "Z"))
    return wrap(["BEGIN:VEVENT", *lines, "END:VEVENT"])


@THOROUGH
@given(RULES, STARTS, ZONES, st.integers(0, 60), STARTS, st.integers(1, 90), st.integers(1, 90))
def test_adjacent_windows_add_up(
    rule: str, start: datetime, zone: str | None, exdate_days: int, window_start: datetime,
    first_days: int, second_days: int,
) -> None:
    parsed = parse_calendar(series_text(rule, start, zone, exdate_days))
    assert parsed.problems == ()
    low = window_start.replace(tzinfo=UTC)
    middle, high = low + timedelta(days=first_days), low + timedelta(days=first_days + second_days)
    whole, _ = check(parsed, (low, high))
    first, _ = check(parsed, (low, middle))
    second, _ = check(parsed, (middle, high))
    assert {o.key for o in whole} == {o.key for o in first} | {o.key for o in second}
    # Only an instance running across the split point is in both halves.
    assert {o.key for o in first} & {o.key for o in second} == {
        o.key for o in whole if o.start < middle < o.end}


@THOROUGH
@given(RULES, STARTS, ZONES, st.integers(1, 3000), st.integers(1, 60))
def test_a_window_far_from_dtstart_sees_what_expanding_from_dtstart_sees(
    rule: str, start: datetime, zone: str | None, offset_days: int, length_days: int,
) -> None:
    assume("COUNT" not in rule or offset_days < 1500)
    parsed = parse_calendar(series_text(rule, start, zone, 0))
    low = start.replace(tzinfo=UTC) + timedelta(days=offset_days)
    high = low + timedelta(days=length_days)
    far, problems = check(parsed, (low, high))
    assert problems == []
    wide, _ = expand(parsed, start.replace(tzinfo=UTC) - timedelta(days=2), high)
    assert [o.key for o in far] == [o.key for o in wide if o.end > low]


# --- the engine against dateutil ---------------------------------------------------------------

FREQS = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"]
SPANS = {"YEARLY": 2200, "MONTHLY": 800, "WEEKLY": 400, "DAILY": 120, "HOURLY": 6}
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def number_list(low: int, high: int, signed: bool) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    if signed:
        value = st.one_of(value, value.map(lambda n: -n))
    return st.lists(value, min_size=1, max_size=3).map(lambda v: ",".join(map(str, v)))


@st.composite
def oracle_rules(draw: st.DrawFn) -> tuple[str, datetime]:
    freq = draw(st.sampled_from(FREQS))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 4))}")
    # Only rules that match again and again: dateutil looks for the next instance up to the
    # year 9999 (seconds of work) when a rule stops matching, whatever the span asked for.
    optional = {
        "BYMONTH": number_list(1, 12, False),
        "BYMONTHDAY": number_list(1, 28, True),
        "BYHOUR": number_list(0, 23, False),
        "BYMINUTE": number_list(0, 59, False),
        "WKST": st.sampled_from(WEEKDAYS),
    }
    if freq == "YEARLY":  # RFC 5545 allows it with YEARLY only (BYWEEKNO: see below)
        optional["BYYEARDAY"] = number_list(1, 366, True)
    for name, values in optional.items():
        if draw(st.integers(0, 5)) == 0:
            parts.append(f"{name}={draw(values)}")
    if draw(st.integers(0, 2)) == 0:
        numbered = freq in ("MONTHLY", "YEARLY") and draw(st.booleans())
        days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True))
        if numbered:
            days = [f"{draw(st.sampled_from([1, 2, 3, -1, -2]))}{d}" for d in days]
        parts.append("BYDAY=" + ",".join(days))
    if freq not in ("WEEKLY", "HOURLY") and draw(st.integers(0, 4)) == 0:
        parts.append(f"BYSETPOS={draw(st.sampled_from(['1', '-1', '1,-1']))}")
    start = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
    return ";".join(parts), start.replace(second=0, microsecond=0)


@FAST
@given(oracle_rules())
def test_recurrence_engine_agrees_with_dateutil(case: tuple[str, datetime]) -> None:
    rule, start = case
    freq = rule.split(";")[0].removeprefix("FREQ=")
    end = start + timedelta(days=SPANS[freq])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = dateutil_rrule.rrulestr(f"RRULE:{rule}", dtstart=start)
            expected = [start]
            for instance in reference:
                if instance >= end or len(expected) > 3000:
                    break
                if instance != start:
                    expected.append(instance)
        except ValueError:  # dateutil refuses some rules that match nothing
            assume(False)
    assume(len(expected) <= 3000)
    text = wrap(["BEGIN:VEVENT", "UID:oracle", f"DTSTART:{start:%Y%m%dT%H%M%S}Z",
                 f"RRULE:{rule}", "END:VEVENT"])
    occurrences, problems = expand(
        parse_calendar(text), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    assert problems == []
    assert [o.start.replace(tzinfo=None) for o in occurrences] == expected


@FAST
@given(st.integers(1, 53), st.booleans(), st.integers(2020, 2035), st.booleans())
def test_byweekno_is_the_iso_week(week: int, from_end: bool, year: int, mondays: bool) -> None:
    """With WKST=MO, RFC 5545 week numbers are ISO 8601 week numbers."""
    start = datetime(year, 1, 1)
    end = datetime(year + 4, 1, 1)
    number = -week if from_end else week
    rule = f"FREQ=YEARLY;BYWEEKNO={number};WKST=MO" + (";BYDAY=MO" if mondays else "")
    text = wrap(["BEGIN:VEVENT", "UID:weekno", f"DTSTART:{start:%Y%m%dT%H%M%S}Z",
                 f"RRULE:{rule}", "END:VEVENT"])
    occurrences, problems = expand(
        parse_calendar(text), start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
    assert problems == []

    def weeks_in(iso_year: int) -> int:
        return datetime(iso_year, 12, 28).isocalendar().week

    expected = [start]  # DTSTART is always an instance
    day = start
    while day < end:
        iso = day.isocalendar()
        wanted = week if not from_end else weeks_in(iso.year) + 1 - week
        if iso.week == wanted and (not mondays or iso.weekday == 1) and day != start:
            expected.append(day)
        day += timedelta(days=1)
    assert [o.start.replace(tzinfo=None) for o in occurrences] == expected

"""Properties of the meeting-URL parser, over arbitrary and URL-shaped text:

- parse_meeting_url raises InvalidMeetingUrl and nothing else; find_meeting_url(s) never raise;
- every parsed meeting has a canonical link that parses back to the same meeting, stably, a
  JSON-safe Recall object and a key, and survives being pasted into a sentence;
- every spelling of one meeting (case, scheme, regional host, wrapper, decoration) has its key.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from summon.domain.meeting_urls import (
    PLATFORMS,
    InvalidMeetingUrl,
    MeetingUrl,
    find_meeting_url,
    find_meeting_urls,
    parse_meeting_url,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_none(text: str) -> MeetingUrl | None:
    """The property every caller relies on: a meeting, or InvalidMeetingUrl — nothing else."""
    try:
        return parse_meeting_url(text)
    except InvalidMeetingUrl:
        return None


def check_meeting(meeting: MeetingUrl) -> None:
    assert meeting.platform in PLATFORMS
    canonical = meeting.format()
    again = parse_meeting_url(canonical)
    assert again == meeting
    assert again.format() == canonical
    assert again.key == meeting.key
    data = meeting.to_dict()
    assert data["platform"] == meeting.platform
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert find_meeting_url(f"Please join: {canonical}. Thanks!") == meeting
    assert find_meeting_url(f'<a href="{canonical}">{canonical}</a>') == meeting


# --- arbitrary text --------------------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates and controls included


@FAST
@given(st.text())
def test_parse_of_any_text_is_a_meeting_or_invalid(text: str) -> None:
    meeting = parse_or_none(text)
    if meeting is not None:
        check_meeting(meeting)


@FAST
@given(st.text(alphabet=ANY_CHARACTER, max_size=200))
def test_parse_survives_any_code_point(text: str) -> None:
    parse_or_none(text)
    parse_or_none("https://zoom.us/j/1234567890?pwd=" + text)
    parse_or_none("sandbox://demo?say=" + text)


@FAST
@given(st.text(alphabet=ANY_CHARACTER, max_size=400))
def test_find_never_raises(text: str) -> None:
    for found in find_meeting_urls(text):
        check_meeting(found)
    find_meeting_url(text)


# --- URL-shaped text -------------------------------------------------------------------------

SCHEMES = st.sampled_from(
    ["https://", "http://", "", "//", "HTTPS://", "zoommtg://", "zoomus://", "sandbox://",
     "janus://", "januss://", "ftp://", "https:/", "javascript:", "https%3A%2F%2F"]
)
HOSTS = st.sampled_from(
    ["zoom.us", "us02web.zoom.us", "ACME.zoom.us", "zoom.com", "zoomgov.com", "x.zoomgov.com",
     "meet.google.com", "g.co", "teams.microsoft.com", "teams.live.com", "teams.cloud.microsoft",
     "gov.teams.microsoft.us", "acme.webex.com", "acme.my.webex.com", "www.webex.com",
     "global.gotomeeting.com", "app.gotomeeting.com", "meet.goto.com", "app.goto.com", "gotomeet.me",
     "nam12.safelinks.protection.outlook.com", "www.google.com", "urldefense.com",
     "zoom.us.evil.com", "evilzoom.us", "evil.com", "user@zoom.us", "zoom.us:443", "[::1]",
     "127.0.0.1:8088", "localhost", "demo", "", "zoom.us."]
)
SEGMENTS = st.sampled_from(
    ["j", "w", "s", "wc", "join", "start", "my", "l", "meetup-join", "meet", "lookup", "_meet", "v2",
     "_", "acme", "j.php", "wbxmjs", "joinservice", "sites", "meeting", "download", "u", "webinar",
     "register", "url", "v3", "1234567890", "123456789", "12345678901", "123-456-7890", "1234",
     "abc-defg-hij", "abcdefghij", "ABC-DEFG-HIJ", "john.smith", "jdoe", "19%3ameeting_abc%40thread.v2",
     "19:meeting_abc@thread.v2", "0", "1603212345678", "2345678901234", "%2F", "%", "..", ".", ""]
)
PARAM_NAMES = st.sampled_from(
    ["pwd", "PWD", "tk", "confno", "p", "context", "MTID", "mtid", "meetingId", "url", "q", "u",
     "pin", "admit_after", "say", "authuser", "tenantId", "uname", ""]
)
PARAM_VALUES = st.one_of(
    st.sampled_from(
        ["abc", "abc.1", "1234567890", "%7b%22Tid%22%3a%22t%22%2c%22Oid%22%3a%22o%22%7d",
         '{"Tid":"t","Oid":"o"}', "m5c2a1f9e8d7c6b5a4f3e2d1c0b9a8f7e", "https%3A%2F%2Fzoom.us%2Fj%2F1234567890",
         "https://meet.google.com/abc-defg-hij", "alice@3:Hello%20team;bob@5:Hi", "%FF", "%", "a+b", ""]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
)
QUERY = st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=4).map(
    lambda pairs: "?" + "&".join(f"{name}={value}" for name, value in pairs) if pairs else ""
)
FRAGMENTS = st.sampled_from(["", "#success", "#/l/meetup-join/19:meeting_abc@thread.v2/0", "#/meet/2345678901234?p=x"])
DECORATIONS = st.sampled_from([("", ""), ("<", ">"), ('"', '".'), ("(", "),"), (" ", "\n"), ("**", "**"), ("", "!")])


@st.composite
def url_like(draw: st.DrawFn) -> str:
    segments = draw(st.lists(SEGMENTS, max_size=5))
    path = "/" + "/".join(segments) if segments else draw(st.sampled_from(["", "/"]))
    before, after = draw(DECORATIONS)
    return before + draw(SCHEMES) + draw(HOSTS) + path + draw(QUERY) + draw(FRAGMENTS) + after


@THOROUGH
@given(url_like())
def test_url_like_text_parses_to_a_stable_meeting_or_is_invalid(text: str) -> None:
    meeting = parse_or_none(text)
    if meeting is not None:
        check_meeting(meeting)


@FAST
@given(url_like(), url_like(), st.text(max_size=30))
def test_find_in_url_like_text_never_raises(first: str, second: str, filler: str) -> None:
    for found in find_meeting_urls(f"{filler} {first} {filler}\n{second}"):
        check_meeting(found)


# --- valid meetings, generated from their parts ------------------------------------------------

ZOOM_IDS = st.integers(min_value=10**8, max_value=10**11 - 1).map(str)
TOKENS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
MEET_CODES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=10, max_size=10).map(
    lambda c: f"{c[:3]}-{c[3:7]}-{c[7:]}"
)
# Names end in a letter or digit: "…/meet/jdoe." at the end of a pasted link reads as a sentence.
ROOMS = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)
GUIDS = st.uuids().map(str)
THREADS = st.from_regex(r"19:meeting_[A-Za-z0-9]{8,40}@thread\.v2", fullmatch=True)
SUBDOMAINS = st.sampled_from(["acme", "acme.my", "meetingsamer34", "big-co"])


@st.composite
def zoom_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    meeting_id = draw(ZOOM_IDS)
    password = draw(st.none() | TOKENS)
    query = f"?pwd={quote(password, safe='')}" if password else ""
    dashed = f"{meeting_id[:3]}-{meeting_id[3:6]}-{meeting_id[6:]}"
    host = draw(st.sampled_from(["zoom.us", "us02web.zoom.us", "us06web.zoom.us", "acme.zoom.us", "zoom.com"]))
    spellings = [
        f"https://{host}/j/{meeting_id}{query}",
        f"{host.upper()}/j/{dashed}{query}",
        f"http://{host}/wc/join/{meeting_id}{query}",
        f"https://{host}/wc/{meeting_id}/join{query}",
        f"zoommtg://zoom.us/join?action=join&confno={meeting_id}{query.replace('?', '&')}",
        f"https://zoom.us/s/{meeting_id}",
    ]
    return f"zoom:{meeting_id}", spellings


@st.composite
def meet_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    code = draw(MEET_CODES)
    spellings = [
        f"https://meet.google.com/{code}",
        f"meet.google.com/{code.upper()}?authuser={draw(st.integers(0, 5))}",
        f"https://meet.google.com/{code.replace('-', '')}",
        f"https://g.co/meet/{code}",
        f"https://meet.google.com/_meet/{code}?hs=122",
    ]
    return f"google_meet:{code}", spellings


@st.composite
def teams_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    thread, tenant, organizer = draw(THREADS), draw(GUIDS), draw(GUIDS)
    context = json.dumps({"Tid": tenant, "Oid": organizer}, separators=(",", ":"))
    encoded = f"https://teams.microsoft.com/l/meetup-join/{quote(thread, safe='')}/0?context={quote(context, safe='')}"
    spellings = [
        encoded,
        encoded + "&anon=true",
        encoded.replace("teams.microsoft.com", "teams.cloud.microsoft"),
        f"https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/{thread}/0?context={quote(context, safe='')}&anon=true",
        "https://nam12.safelinks.protection.outlook.com/?url=" + quote(encoded, safe="") + "&data=05%7C01&reserved=0",
    ]
    return f"microsoft_teams:{thread}/0", spellings


@st.composite
def webex_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    sub = draw(SUBDOMAINS)
    if draw(st.booleans()):
        room = draw(ROOMS)
        return f"webex:{sub}/meet/{room.lower()}", [
            f"https://{sub}.webex.com/meet/{room}",
            f"https://{sub.upper()}.webex.com/join/{room}",
            f"{sub}.webex.com/meet/{room}/",
        ]
    mtid = "m" + draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
    return f"webex:{sub}:{mtid}", [
        f"https://{sub}.webex.com/{sub}/j.php?MTID={mtid}",
        f"https://{sub}.webex.com/meet/j.php?MTID={mtid}",
        f"https://{sub}.webex.com/wbxmjs/joinservice/sites/{sub}/meeting/download/abc123?siteurl={sub}&MTID={mtid}",
    ]


@st.composite
def goto_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    number = str(draw(st.integers(10**8, 10**9 - 1)))
    return f"goto_meeting:{number}", [
        f"https://global.gotomeeting.com/join/{number}",
        f"https://meet.goto.com/{number[:3]}-{number[3:6]}-{number[6:]}",
        f"https://app.goto.com/meeting/{number}",
        f"https://app.gotomeeting.com/?meetingId={number}",
        f"gotomeeting.com/join/{number}",
    ]


@st.composite
def sandbox_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    name = draw(st.from_regex(r"[A-Za-z0-9._-]{1,30}", fullmatch=True))
    params = draw(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text(max_size=20), max_size=4))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return f"sandbox:{name}", [f"sandbox://{name}" + (f"?{query}" if query else ""), f"SANDBOX://{name}/"]


@st.composite
def janus_spellings(draw: st.DrawFn) -> tuple[str, list[str]]:
    host = draw(st.sampled_from(["localhost", "janus.example.org", "10.1.2.3", "[::1]", "[2001:db8::7]"]))
    room = draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True))
    pin = draw(st.none() | TOKENS)
    query = f"?pin={quote(pin, safe='')}" if pin else ""
    port = 8088
    return f"janus:{host}:{port}/{room}", [
        f"janus://{host}/{room}{query}",
        f"janus://{host.upper()}:{port}/{room}/{query}",
    ]


SPELLINGS = st.one_of(
    zoom_spellings(), meet_spellings(), teams_spellings(), webex_spellings(), goto_spellings(),
    sandbox_spellings(), janus_spellings(),
)


PUNCTUATION = frozenset(".,;:!?*`'\")]}>")


def decorate(url: str, how: int) -> str:
    """Ways text and e-mail wrap a link without changing which meeting it is."""
    return [
        url,
        f"<{url}>",
        f"  {url}\n",
        f'"{url}"',
        url.replace("&", "&amp;"),
        f"https://www.google.com/url?q={quote(url, safe='')}&sa=D&source=calendar",
        f"https://eur03.safelinks.protection.outlook.com/?url={quote(url, safe='')}&data=1&reserved=0",
    ][how]


@THOROUGH
@given(SPELLINGS, st.integers(0, 6))
def test_every_spelling_of_a_meeting_has_its_key(spellings: tuple[str, list[str]], how: int) -> None:
    key, urls = spellings
    wrappable = not urls[0].startswith(("sandbox:", "janus:", "zoommtg:"))
    for url in urls:
        variant = decorate(url, how) if wrappable or how < 5 else url
        meeting = parse_meeting_url(variant)
        assert meeting.key == key, (variant, meeting)
        check_meeting(meeting)
        if url[-1] not in PUNCTUATION:  # "…/meet/jdoe." in prose is ambiguous; canonical links are not
            assert find_meeting_url(f"Agenda first.\nJoin here: {url}\nThanks") == meeting


@FAST
@given(SPELLINGS)
def test_spellings_of_one_meeting_format_alike_up_to_secrets(spellings: tuple[str, list[str]]) -> None:
    key, urls = spellings
    meetings = [parse_meeting_url(url) for url in urls]
    assert {m.key for m in meetings} == {key}
    assert len({type(m) for m in meetings}) == 1

"""Meeting links: turn one link into a structured meeting, or find the meeting link in free text.

Contract
--------
- :func:`parse_meeting_url` takes one link as a user would paste it and returns a
  :class:`MeetingUrl` for a known platform, or raises :class:`InvalidMeetingUrl` — for *any*
  ``str`` input, nothing else escapes.
- :func:`find_meeting_urls` / :func:`find_meeting_url` scan calendar descriptions, e-mail bodies
  and HTML for every link that parses, and order them best first. They never raise.
- ``MeetingUrl.to_dict()`` is Recall's ``meeting_url`` object for the platform;
  ``MeetingUrl.format()`` is a canonical join link with ``parse_meeting_url(m.format()) == m``;
  ``MeetingUrl.key`` is equal for two links to the same meeting (used to filter and deduplicate).

Approach
--------
Parsing is deliberately *not* "find something that looks like zoom.us/j/ in the string". A link
is taken apart once, strictly, and every part is checked:

1. Clean the edges: surrounding whitespace, ``<…>``/quotes/brackets and trailing sentence
   punctuation that e-mails and chat put around links; HTML entities (``&amp;``); a link that was
   percent-encoded as a whole.
2. Refuse what no real meeting link contains: control, format and inner whitespace characters,
   backslashes, user-info (``user@host`` is the classic look-alike trick), ports on public hosts,
   over-long input.
3. Split scheme, host, path, query and fragment by hand (no ``urlsplit`` quirks), compare the
   host *exactly* or as a dot-separated suffix against each platform's domains, and accept only
   the join paths of that platform. ``zoom.us.evil.com``, ``evilzoom.us`` and
   ``evil.com/zoom.us/j/1`` fail at the host, ``zoom.us/webinar/register/…`` fails at the path.
4. Redirect wrappers (Outlook SafeLinks, Google ``/url?q=``, Proofpoint URL Defense, the Teams
   launcher) are unwrapped and the inner link goes through the same checks, a few levels deep.

One small function per platform knows its hosts, paths and identifiers; one frozen dataclass
per platform carries the result. Identifiers are normalised (Zoom ids lose their dashes, Meet
codes are lower-cased, Teams thread ids are percent-decoded) so that ``format()`` and ``key`` are
stable across the many spellings of the same meeting.

Searching text runs one linear regular expression over the text to collect candidate links
(scheme links and scheme-less links on platform hosts), parses each, and ranks the survivors.
All regular expressions here are built to run in linear time; inputs are length-capped.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "MAX_TEXT_LENGTH",
    "MAX_URL_LENGTH",
    "PLATFORMS",
    "GoToUrl",
    "GoogleMeetUrl",
    "InvalidMeetingUrl",
    "JanusUrl",
    "MeetingUrl",
    "SandboxUrl",
    "TeamsUrl",
    "WebexUrl",
    "ZoomUrl",
    "find_meeting_url",
    "find_meeting_urls",
    "parse_meeting_url",
]

PLATFORMS: tuple[str, ...] = (
    "zoom",
    "google_meet",
    "microsoft_teams",
    "microsoft_teams_live",
    "webex",
    "goto_meeting",
    "sandbox",
    "janus",
)

#: Longest input :func:`parse_meeting_url` accepts. Real join links, even Teams links with a
#: SafeLinks wrapper around them, stay well below this.
MAX_URL_LENGTH = 4096

#: Only this many characters of a text are searched for links (large HTML e-mails put their
#: invitation near the top; the cap bounds the work an adversarial body can cause).
MAX_TEXT_LENGTH = 1_000_000

# How many wrapped links (SafeLinks inside a Google redirect inside …) are unwrapped.
_MAX_UNWRAP_DEPTH = 4

# Candidate links examined per text: bounds the work on adversarial text such as
# "http://http://http://…", where every position starts a candidate.
_MAX_CANDIDATES = 2000


class InvalidMeetingUrl(ValueError):
    """The input is not a link to a meeting on a supported platform.

    ``url`` holds the input (truncated to 200 characters, so that logging an attacker's
    megabyte stays cheap) and ``reason`` a short, human-readable cause.
    """

    _SHOWN = 200

    def __init__(self, url: object, reason: str = "malformed or unsupported meeting link") -> None:
        text = url if isinstance(url, str) else f"<{type(url).__name__}>"
        if len(text) > self._SHOWN:
            text = text[: self._SHOWN] + "…"
        self.url = text
        self.reason = reason
        super().__init__(f"invalid meeting URL {text!r}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep pickling (e.g. across process pools) faithful to the two fields.
        return (type(self), (self.url, self.reason))


class _Reject(Exception):
    """Internal: a parse step refuses the input; turned into InvalidMeetingUrl at the edge."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeetingUrl:
    """A parsed meeting link: the platform and what identifies the meeting there.

    Instances are built by :func:`parse_meeting_url`; each platform has its own subclass with
    its own fields (``ZoomUrl.meeting_id``, ``TeamsUrl.thread_id``, …). All are immutable and
    hashable, and compare equal when every field is equal — use :attr:`key` to ask whether two
    links lead to the same meeting.
    """

    platform: str

    def to_dict(self) -> dict[str, Any]:
        """Recall's ``meeting_url`` object for this platform: JSON-safe, always has "platform"."""
        raise NotImplementedError

    def format(self) -> str:
        """The canonical join link; ``parse_meeting_url(self.format()) == self``."""
        raise NotImplementedError

    @property
    def key(self) -> str:
        """A stable string shared by all links to the same meeting, e.g. ``"zoom:123456789"``.

        Passwords and tokens are left out: they do not change which meeting it is.
        """
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoomUrl(MeetingUrl):
    """A Zoom meeting or webinar.

    ``meeting_id`` is the 9–11 digit meeting number, or the personal link name of a
    ``/my/NAME`` link (which always starts with a letter, so the two never collide).
    ``zoomgov`` marks the separate ZoomGov cloud, where the same number is a different meeting;
    it is not part of Recall's object but is kept in ``format()`` and ``key``.
    """

    platform: str = field(default="zoom", init=False)
    meeting_id: str
    meeting_password: str | None = None
    tk: str | None = None
    zoomgov: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "meeting_id": self.meeting_id,
            "meeting_password": self.meeting_password,
            "platform": self.platform,
        }
        if self.tk is not None:
            out["tk"] = self.tk
        return out

    def format(self) -> str:
        host = "zoomgov.com" if self.zoomgov else "zoom.us"
        kind = "j" if self.meeting_id.isdigit() else "my"
        query = _format_query([("pwd", self.meeting_password), ("tk", self.tk)])
        return _prose_safe(f"https://{host}/{kind}/{self.meeting_id}{query}")

    @property
    def key(self) -> str:
        cloud = "zoomgov" if self.zoomgov else "zoom"
        return f"{cloud}:{self.meeting_id.lower()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GoogleMeetUrl(MeetingUrl):
    """A Google Meet meeting. ``meeting_id`` is the lower-case code ``abc-defg-hij``, or
    ``lookup/NAME`` for nickname links, so ``https://meet.google.com/{meeting_id}`` always works."""

    platform: str = field(default="google_meet", init=False)
    meeting_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"meeting_id": self.meeting_id, "platform": self.platform}

    def format(self) -> str:
        return _prose_safe(f"https://meet.google.com/{self.meeting_id}")

    @property
    def key(self) -> str:
        return f"google_meet:{self.meeting_id}"


_TEAMS_PLATFORMS = ("microsoft_teams", "microsoft_teams_live")


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamsUrl(MeetingUrl):
    """A Microsoft Teams meeting, in one of three link shapes:

    - ``/l/meetup-join/<thread>/<message>?context={"Tid":…,"Oid":…}`` → ``thread_id``
      (decoded, ``19:meeting_…@thread.v2``), ``message_id``, ``tenant_id``, ``organizer_id``;
    - ``teams.microsoft.com/meet/<digits>?p=…`` → ``business_meeting_id`` / ``…_password``;
    - ``teams.live.com/meet/<id>?p=…`` (platform ``microsoft_teams_live``) → ``meeting_id`` /
      ``meeting_password``.

    ``host`` is the Teams cloud the link belongs to (commercial, GCC High, DoD or consumer); it
    is not part of Recall's object but ``format()`` keeps it.
    """

    platform: str = "microsoft_teams"
    meeting_id: str | None = None
    meeting_password: str | None = None
    organizer_id: str | None = None
    tenant_id: str | None = None
    message_id: str | None = None
    thread_id: str | None = None
    business_meeting_id: str | None = None
    business_meeting_password: str | None = None
    host: str = "teams.microsoft.com"

    def __post_init__(self) -> None:
        if self.platform not in _TEAMS_PLATFORMS:
            raise ValueError(f"not a Teams platform: {self.platform!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "meeting_id": self.meeting_id,
            "meeting_password": self.meeting_password,
            "organizer_id": self.organizer_id,
            "tenant_id": self.tenant_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "business_meeting_id": self.business_meeting_id,
            "business_meeting_password": self.business_meeting_password,
            "platform": self.platform,
        }

    def format(self) -> str:
        if self.thread_id is not None:
            context = {
                name: value
                for name, value in (("Tid", self.tenant_id), ("Oid", self.organizer_id))
                if value is not None
            }
            query = ""
            if context:
                encoded = quote(json.dumps(context, separators=(",", ":")), safe="")
                query = f"?context={encoded}"
            thread = quote(self.thread_id, safe="")
            return f"https://{self.host}/l/meetup-join/{thread}/{self.message_id or '0'}{query}"
        if self.business_meeting_id is not None:
            query = _format_query([("p", self.business_meeting_password)])
            return _prose_safe(f"https://{self.host}/meet/{self.business_meeting_id}{query}")
        query = _format_query([("p", self.meeting_password)])
        return _prose_safe(f"https://{self.host}/meet/{self.meeting_id}{query}")

    @property
    def key(self) -> str:
        if self.thread_id is not None:
            return f"{self.platform}:{self.thread_id}/{self.message_id or '0'}"
        if self.business_meeting_id is not None:
            return f"{self.platform}:meet/{self.business_meeting_id}"
        return f"{self.platform}:meet/{self.meeting_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebexUrl(MeetingUrl):
    """A Webex meeting: either a scheduled meeting (``meeting_mtid`` and ``meeting_path``, the
    link's path such as ``acme/j.php``) or a personal room (``meeting_personal_room_id``).

    ``meeting_subdomain`` is everything before ``.webex.com`` (``acme``, ``acme.my``), so
    ``https://{meeting_subdomain}.webex.com/`` is the site.
    """

    platform: str = field(default="webex", init=False)
    meeting_subdomain: str
    meeting_mtid: str | None = None
    meeting_path: str | None = None
    meeting_personal_room_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.meeting_personal_room_id is not None:
            return {
                "meeting_subdomain": self.meeting_subdomain,
                "meeting_personal_room_id": self.meeting_personal_room_id,
                "platform": self.platform,
            }
        return {
            "meeting_subdomain": self.meeting_subdomain,
            "meeting_mtid": self.meeting_mtid,
            "meeting_path": self.meeting_path,
            "platform": self.platform,
        }

    def format(self) -> str:
        site = f"https://{self.meeting_subdomain}.webex.com"
        if self.meeting_personal_room_id is not None:
            return _prose_safe(f"{site}/meet/{self.meeting_personal_room_id}")
        return f"{site}/{self.meeting_path}?MTID={self.meeting_mtid}"

    @property
    def key(self) -> str:
        if self.meeting_personal_room_id is not None:
            return f"webex:{self.meeting_subdomain}/meet/{self.meeting_personal_room_id.lower()}"
        return f"webex:{self.meeting_subdomain}:{(self.meeting_mtid or '').lower()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GoToUrl(MeetingUrl):
    """A GoTo Meeting: ``meeting_id`` is the meeting number (digits only) or the name of a
    personal meeting room (``gotomeet.me/NAME``)."""

    platform: str = field(default="goto_meeting", init=False)
    meeting_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"meeting_id": self.meeting_id, "platform": self.platform}

    def format(self) -> str:
        return _prose_safe(f"https://meet.goto.com/{self.meeting_id}")

    @property
    def key(self) -> str:
        return f"goto_meeting:{self.meeting_id.lower()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxUrl(MeetingUrl):
    """Summon's simulated meeting, ``sandbox://<name>?<params>``.

    ``params`` are the decoded query parameters, sorted by name, as raw strings: what they mean
    is the sandbox driver's business, validated there.
    """

    platform: str = field(default="sandbox", init=False)
    meeting_id: str
    params: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "meeting_id": self.meeting_id,
            "params": dict(self.params),
            "platform": self.platform,
        }

    def format(self) -> str:
        if not self.params:
            return _prose_safe(f"sandbox://{self.meeting_id}")
        query = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='@:;,')}" for name, value in self.params
        )
        return _prose_safe(f"sandbox://{self.meeting_id}?{query}")

    @property
    def key(self) -> str:
        return f"sandbox:{self.meeting_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class JanusUrl(MeetingUrl):
    """A room on a real Janus WebRTC server: ``janus://HOST:PORT/ROOM?pin=…`` (``januss://`` for
    TLS). ``host`` is a lower-case DNS name, an IPv4 address or an IPv6 address (without
    brackets); ``room`` is the room id as a string (Janus allows numeric and string rooms)."""

    platform: str = field(default="janus", init=False)
    host: str
    port: int
    room: str
    pin: str | None = None
    secure: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "room": self.room,
            "pin": self.pin,
            "secure": self.secure,
            "platform": self.platform,
        }

    def format(self) -> str:
        scheme = "januss" if self.secure else "janus"
        query = _format_query([("pin", self.pin)])
        return _prose_safe(f"{scheme}://{self._netloc_host()}:{self.port}/{self.room}{query}")

    @property
    def key(self) -> str:
        return f"janus:{self._netloc_host()}:{self.port}/{self.room}"

    def _netloc_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def _format_query(pairs: list[tuple[str, str | None]]) -> str:
    present = [f"{name}={quote(value, safe='')}" for name, value in pairs if value is not None]
    return "?" + "&".join(present) if present else ""


def _prose_safe(link: str) -> str:
    """Percent-encode a last character that text would take for punctuation (``…?pwd=ab.``),
    so a canonical link survives being pasted into a sentence. Parsers decode it back."""
    if link and link[-1] in _TEXT_TRIMMED:
        return f"{link[:-1]}%{ord(link[-1]):02X}"
    return link


# --------------------------------------------------------------------------------------------
# Parsing one link
# --------------------------------------------------------------------------------------------


def parse_meeting_url(text: str) -> MeetingUrl:
    """Parse one meeting link as a user would paste it.

    Accepts the real-world spellings of Zoom, Google Meet, Teams, Webex and GoTo links (with or
    without scheme, regional and vanity hosts, wrapped in SafeLinks or a Google redirect, inside
    ``<…>`` or followed by punctuation, HTML-escaped) and Summon's ``sandbox://`` and
    ``janus://`` links.

    Raises :class:`InvalidMeetingUrl` — and nothing else, for any input — when the text is not
    a link to a meeting on one of :data:`PLATFORMS`.
    """
    if not isinstance(text, str):
        raise InvalidMeetingUrl(text, "not a string")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidMeetingUrl(text, f"longer than {MAX_URL_LENGTH} characters")
    try:
        return _parse(text, depth=0, in_text=False)
    except _Reject as exc:
        raise InvalidMeetingUrl(text, exc.reason) from None
    except (ValueError, RecursionError) as exc:
        # Safety net for the library calls (decoding, ipaddress, json): whatever slips through
        # is still the caller's bad input, never a server error.
        raise InvalidMeetingUrl(text, "malformed link") from exc


# Control characters (C0, DEL, C1), zero-width and bidirectional format characters (used to
# disguise hosts) and lone surrogates: never part of a link, nor of a decoded password.
_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff"
)
_CONTROL = re.compile(f"[{_INVISIBLE}]")
# ... and in a raw link also no whitespace inside, and no backslash (browsers read "\" as "/",
# which turns "https://evil.com\@zoom.us/" into a link to evil.com).
_FORBIDDEN = re.compile(f"[{_INVISIBLE}\\s\\\\]")
# Whitespace (and invisible characters) that copy-paste leaves around a link.
_EDGE_SPACE = (
    " \t\r\n\f\v\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u200c\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
_LEADING_JUNK = "<([{\"'*`"
_TRAILING_PUNCTUATION = ".,;:!?*`>"
_CLOSERS = {")": "(", "]": "[", "}": "{"}
# Every last character _trim_trailing may take off a link found in prose.
_TEXT_TRIMMED = frozenset(_TRAILING_PUNCTUATION + "\"'" + "".join(_CLOSERS))

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_ENCODED_LINK = re.compile(
    r"(?:https?|zoommtg|zoomus|sandbox|januss?)%3a%2f%2f", re.IGNORECASE | re.ASCII
)
_SCHEMELESS_HOST = re.compile(r"[A-Za-z0-9.-]+(?:[/?#]|$)")
_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos|nbsp));")
_NAMED_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": "\xa0"}


def _parse(text: str, *, depth: int, in_text: bool) -> MeetingUrl:
    """Parse after the public guards. ``in_text`` applies the full punctuation trim to every
    scheme (a link found in prose); otherwise sandbox and janus links keep their trailing
    characters, which may be part of a parameter value."""
    s = _unescape_entities(text.strip(_EDGE_SPACE)) if "&" in text else text.strip(_EDGE_SPACE)
    s = s.lstrip(_LEADING_JUNK + _EDGE_SPACE)
    if _ENCODED_LINK.match(s):
        # A whole link percent-encoded, as copied out of another link's query string.
        s = _decode(s)
        s = s.lstrip(_LEADING_JUNK + _EDGE_SPACE)
    scheme_match = _SCHEME.match(s)
    scheme = scheme_match.group(1).lower() if scheme_match else None
    ours = scheme in ("sandbox", "janus", "januss")
    s = _trim_trailing(s, prose=in_text or not ours)
    if not s:
        raise _Reject("empty")
    if _FORBIDDEN.search(s):
        raise _Reject("contains whitespace, control characters or backslashes")

    if scheme == "sandbox":
        return _parse_sandbox(s)
    if scheme in ("janus", "januss"):
        return _parse_janus(s, secure=scheme == "januss")
    if scheme in ("zoommtg", "zoomus"):
        return _parse_zoom_app(s[len(scheme) + 3 :])
    if scheme in ("http", "https"):
        return _parse_web(s[len(scheme) + 3 :], depth=depth)
    if scheme is not None:
        raise _Reject(f"unsupported scheme {scheme!r}")
    # Scheme-less: "zoom.us/j/123", "//meet.google.com/abc-defg-hij".
    rest = s[2:] if s.startswith("//") else s
    if not _SCHEMELESS_HOST.match(rest):
        raise _Reject("not a link")
    return _parse_web(rest, depth=depth)


def _unescape_entities(s: str) -> str:
    """Decode the few HTML entities that appear in links copied out of HTML (``&amp;``).

    Deliberately not ``html.unescape``: HTML5 also decodes legacy entities without a ``;``, which
    would turn a query like ``?x=1&notify=2`` into ``?x=1¬ify=2``.
    """

    def replace(match: re.Match[str]) -> str:
        decimal, hexadecimal, name = match.groups()
        if name:
            return _NAMED_ENTITIES[name]
        code = int(decimal) if decimal else int(hexadecimal, 16)
        return chr(code) if code <= 0x10FFFF else match.group(0)

    return _ENTITY.sub(replace, s)


def _trim_trailing(s: str, *, prose: bool) -> str:
    """Drop what text puts after a link: sentence punctuation, a closing quote or bracket that
    has no partner inside the link, ``>`` of ``<https://…>``. ``prose=False`` only removes
    brackets and quotes (sandbox parameters may legitimately end in ``!`` or ``?``)."""
    while s:
        last = s[-1]
        if last in _EDGE_SPACE:
            pass
        elif last == ">":
            pass
        elif last in _TRAILING_PUNCTUATION:
            if not prose:
                break
        elif last in "\"'":
            if s.count(last) % 2 == 0:
                break
        elif last in _CLOSERS:
            if s.count(last) <= s.count(_CLOSERS[last]):
                break
        else:
            break
        s = s[:-1]
    return s


def _decode(s: str) -> str:
    if "%" not in s:
        return s
    try:
        return unquote(s, errors="strict")
    except UnicodeDecodeError:
        raise _Reject("percent-encoding is not valid UTF-8") from None


def _decode_fully(s: str) -> str:
    """Percent-decode until stable (at most three times): Teams ids and contexts often arrive
    double-encoded after passing through SafeLinks or the Teams launcher."""
    for _ in range(3):
        if "%" not in s:
            break
        s = _decode(s)
    return s


def _query_params(query: str) -> list[tuple[str, str]]:
    """``a=1&b=%20x`` → ``[("a", "1"), ("b", "%20x")]``: names decoded, values still raw.

    Values are decoded by :func:`_param` when one is actually used, which keeps long links
    cheap and means one oddly encoded parameter we ignore cannot spoil the link.
    """
    params = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        params.append((unquote(name, errors="replace") if "%" in name else name, value))
    return params


def _param(params: list[tuple[str, str]], *names: str) -> str | None:
    """Decoded value of the first of ``names`` present (names compared case-insensitively).

    ``+`` stays ``+``: these are links, not form submissions, and passwords may contain it.
    """
    for wanted in names:
        for name, value in params:
            if name.lower() == wanted:
                return _decode(value)
    return None


def _secret(value: str | None, what: str) -> str | None:
    """A password or token from a query string: empty means absent; printable, bounded."""
    if value is None or value == "":
        return None
    if len(value) > 256 or _CONTROL.search(value):
        raise _Reject(f"malformed {what}")
    return value


def _segments(path: str) -> list[str]:
    """``/j/123/`` → ``["j", "123"]``. One trailing slash is fine; empty segments are not."""
    if path in ("", "/"):
        return []
    inner = path[1:]
    if inner.endswith("/"):
        inner = inner[:-1]
    parts = inner.split("/")
    if "" in parts:
        raise _Reject("empty path segment")
    return parts


# --------------------------------------------------------------------------------------------
# http(s) links: host dispatch
# --------------------------------------------------------------------------------------------

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class _Link:
    """An http(s) link taken apart: host lower-cased, the rest as written.

    A plain slotted class rather than a frozen dataclass: it lives for one parse and is on the
    hot path.
    """

    __slots__ = ("host", "path", "query", "fragment", "after_host", "_params")

    def __init__(self, host: str, path: str, query: str, fragment: str, after_host: str) -> None:
        self.host = host
        self.path = path
        self.query = query
        self.fragment = fragment
        self.after_host = after_host  # for wrappers that embed a raw link in the path
        self._params: list[tuple[str, str]] | None = None

    @property
    def params(self) -> list[tuple[str, str]]:
        if self._params is None:
            self._params = _query_params(self.query)
        return self._params


def _split_web(rest: str) -> _Link:
    """Split ``host/path?query#fragment`` (scheme already removed) and check the authority."""
    end = len(rest)
    for sep in "/?#":
        found = rest.find(sep)
        if found != -1 and found < end:
            end = found
    authority, after = rest[:end], rest[end:]
    if "@" in authority:
        raise _Reject("user-info in link (user@host)")
    if ":" in authority:
        raise _Reject("explicit port on a public meeting host")
    host = authority.lower()
    if host.endswith("."):
        host = host[:-1]  # "zoom.us." is the fully-qualified spelling of the same host
    if not host or len(host) > 253 or not _HOST.fullmatch(host):
        raise _Reject("malformed host")
    path, _, fragment = after.partition("#")
    path, _, query = path.partition("?")
    return _Link(host, path, query, fragment, after)


def _parse_web(rest: str, *, depth: int) -> MeetingUrl:
    link = _split_web(rest)
    host = link.host

    inner = _unwrap(link)
    if inner is not None:
        if depth >= _MAX_UNWRAP_DEPTH:
            raise _Reject("too many redirect wrappers")
        return _parse(inner, depth=depth + 1, in_text=False)

    zoomgov = _zoom_cloud(host)
    if zoomgov is not None:
        return _parse_zoom(link, zoomgov=zoomgov)
    if host == "meet.google.com" or host == "g.co":
        return _parse_google_meet(link)
    if host in _TEAMS_HOSTS:
        return _parse_teams(link)
    if host.endswith(".webex.com"):
        return _parse_webex(link)
    if host in _GOTO_HOSTS:
        return _parse_goto(link)
    raise _Reject(f"unsupported host {host!r}")


# --------------------------------------------------------------------------------------------
# Redirect wrappers
# --------------------------------------------------------------------------------------------

_PROOFPOINT_V2_ESCAPE = re.compile(r"-([0-9A-Fa-f]{2})")


def _unwrap(link: _Link) -> str | None:
    """The link inside a known redirect wrapper, or None when ``link`` is not a wrapper.

    Wrappers are recognised by exact host (and path), never by "has a url= parameter": an
    arbitrary site's ``?next=https://zoom.us/j/…`` is not a meeting link.
    """
    host = link.host
    if host.endswith(".safelinks.protection.outlook.com"):
        # Outlook ATP SafeLinks: https://nam12.safelinks.protection.outlook.com/?url=…&data=…
        return _required_param(link, "url")
    if host == "statics.teams.cdn.office.net" and "safelinks" in link.path.lower():
        # SafeLinks as rendered inside the Teams client.
        return _required_param(link, "url")
    if host in ("www.google.com", "google.com") and link.path == "/url":
        # Google redirect, as Gmail and Google Calendar descriptions rewrite links.
        target = _param(link.params, "q", "url")
        if not target:
            raise _Reject("google redirect without target")
        return target
    if host == "urldefense.com" and link.after_host.startswith("/v3/__"):
        # Proofpoint v3: https://urldefense.com/v3/__<link>__;<checksum>$
        body = link.after_host[len("/v3/__") :]
        cut = body.rfind("__;")
        if cut == -1:
            raise _Reject("malformed URL Defense link")
        return body[:cut]
    if host == "urldefense.proofpoint.com" and link.path == "/v2/url":
        # Proofpoint v2: u=https-3A__zoom.us_j_123 ("-XX" is a %XX escape, "_" a slash).
        encoded = _required_param(link, "u")
        return unquote(_PROOFPOINT_V2_ESCAPE.sub(r"%\1", encoded.replace("_", "/")))
    if host in _TEAMS_HOSTS and link.path.lower() == "/dl/launcher/launcher.html":
        # Teams launcher: url= holds the real path, e.g. "/_#/l/meetup-join/19:meeting_…/0?…".
        target = _required_param(link, "url")
        return f"https://{host}{target}" if target.startswith("/") else target
    return None


def _required_param(link: _Link, name: str) -> str:
    value = _param(link.params, name)
    if not value:
        raise _Reject(f"redirect wrapper without {name}=")
    return value


# --------------------------------------------------------------------------------------------
# Zoom
# --------------------------------------------------------------------------------------------

# Commercial Zoom and the separate ZoomGov cloud (value: is it ZoomGov).
_ZOOM_DOMAINS = (("zoom.us", False), ("zoom.com", False), ("zoomgov.com", True))
# Zoom's own non-meeting sites: a join path there is not a meeting, whatever it looks like.
_ZOOM_NON_MEETING_HOSTS = frozenset(
    ["support", "blog", "community", "marketplace", "developers", "devforum", "status",
     "explore", "investors", "careers", "news", "learning", "go", "events"]
)
_ZOOM_NUMBER = re.compile(r"[0-9]{9,11}")
_ZOOM_VANITY = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


def _zoom_cloud(host: str) -> bool | None:
    """None if ``host`` is not Zoom's; else whether it is ZoomGov."""
    for domain, gov in _ZOOM_DOMAINS:
        if host == domain:
            return gov
        if host.endswith("." + domain):
            if host[: -len(domain) - 1].rsplit(".", 1)[-1] in _ZOOM_NON_MEETING_HOSTS:
                return None
            return gov
    return None


def _zoom_number(raw: str | None) -> str:
    """A meeting number as written in a link ("123-4567-8901" too) → digits only."""
    if not raw:
        raise _Reject("Zoom link without meeting number")
    digits = _decode(raw).replace("-", "").replace(" ", "")
    if not _ZOOM_NUMBER.fullmatch(digits):
        raise _Reject("Zoom meeting number must have 9 to 11 digits")
    return digits


def _parse_zoom(link: _Link, *, zoomgov: bool) -> ZoomUrl:
    """``/j/ID`` ``/w/ID`` ``/s/ID`` ``/wc/join/ID`` ``/wc/ID/join`` ``/my/NAME`` ``/join?confno=``.

    Everything else on Zoom's hosts (``/u/`` invite lists, ``/webinar/register/``, ``/download``,
    ``/skype/``, recordings, …) is not a meeting one can join.
    """
    segments = _segments(link.path)
    head = segments[0].lower() if segments else ""
    params = link.params
    if head in ("j", "w", "s") and len(segments) == 2:
        meeting_id = _zoom_number(segments[1])
    elif head == "wc" and len(segments) == 3 and segments[1].lower() == "join":
        meeting_id = _zoom_number(segments[2])
    elif head == "wc" and len(segments) == 3 and segments[2].lower() in ("join", "start"):
        meeting_id = _zoom_number(segments[1])
    elif head == "my" and len(segments) == 2:
        meeting_id = _decode(segments[1])
        if not _ZOOM_VANITY.fullmatch(meeting_id):
            raise _Reject("malformed Zoom personal link name")
    elif head == "join" and len(segments) == 1:
        meeting_id = _zoom_number(_param(params, "confno"))
    else:
        raise _Reject("not a Zoom join link")
    return _zoom_result(meeting_id, params, zoomgov=zoomgov)


def _parse_zoom_app(rest: str) -> ZoomUrl:
    """``zoommtg://zoom.us/join?action=join&confno=ID&pwd=…`` and ``zoomus://`` alike."""
    link = _split_web(rest)
    zoomgov = _zoom_cloud(link.host)
    if zoomgov is None:
        raise _Reject("Zoom app link to a non-Zoom host")
    if [s.lower() for s in _segments(link.path)] not in (["join"], ["start"]):
        raise _Reject("not a Zoom app join link")
    params = link.params
    return _zoom_result(_zoom_number(_param(params, "confno")), params, zoomgov=zoomgov)


def _zoom_result(meeting_id: str, params: list[tuple[str, str]], *, zoomgov: bool) -> ZoomUrl:
    return ZoomUrl(
        meeting_id=meeting_id,
        meeting_password=_secret(_param(params, "pwd"), "Zoom password"),
        tk=_secret(_param(params, "tk"), "Zoom tk"),
        zoomgov=zoomgov,
    )


# --------------------------------------------------------------------------------------------
# Google Meet
# --------------------------------------------------------------------------------------------

_MEET_CODE = re.compile(r"([A-Za-z]{3})-?([A-Za-z]{4})-?([A-Za-z]{3})")
_MEET_NICKNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _meet_code(raw: str) -> str:
    match = _MEET_CODE.fullmatch(raw)
    # Either the canonical "abc-defg-hij" or the bare ten letters; not "abc-defghij".
    if match is None or raw.count("-") not in (0, 2):
        raise _Reject("not a Google Meet code (abc-defg-hij)")
    return "-".join(match.groups()).lower()


def _parse_google_meet(link: _Link) -> GoogleMeetUrl:
    """``meet.google.com/abc-defg-hij`` (query such as ``authuser``/``hs``/``pli`` ignored),
    ``/lookup/NAME``, ``/_meet/CODE`` and the ``g.co/meet/CODE`` short link."""
    segments = _segments(link.path)
    if link.host == "g.co":
        if len(segments) != 2 or segments[0].lower() != "meet":
            raise _Reject("not a Google Meet short link")
        return GoogleMeetUrl(meeting_id=_meet_code(segments[1]))
    if len(segments) == 1:
        return GoogleMeetUrl(meeting_id=_meet_code(segments[0]))
    if len(segments) == 2 and segments[0].lower() == "_meet":
        return GoogleMeetUrl(meeting_id=_meet_code(segments[1]))
    if len(segments) == 2 and segments[0].lower() == "lookup":
        nickname = _decode(segments[1]).lower()
        if not _MEET_NICKNAME.fullmatch(nickname):
            raise _Reject("malformed Google Meet nickname")
        return GoogleMeetUrl(meeting_id=f"lookup/{nickname}")
    raise _Reject("not a Google Meet join link")


# --------------------------------------------------------------------------------------------
# Microsoft Teams
# --------------------------------------------------------------------------------------------

# Host as written → host the canonical link uses. teams.cloud.microsoft is the new name of the
# commercial cloud; GCC High and DoD are separate clouds and keep their hosts.
_TEAMS_HOSTS = {
    "teams.microsoft.com": "teams.microsoft.com",
    "teams.cloud.microsoft": "teams.microsoft.com",
    "gov.teams.microsoft.us": "gov.teams.microsoft.us",
    "dod.teams.microsoft.us": "dod.teams.microsoft.us",
    "teams.live.com": "teams.live.com",
}
_TEAMS_THREAD = re.compile(r"19:[A-Za-z0-9_.=+/-]{1,256}@thread\.[A-Za-z0-9]{1,16}")
_TEAMS_MESSAGE = re.compile(r"[0-9]{1,20}")
_TEAMS_GUID_ISH = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TEAMS_BUSINESS_ID = re.compile(r"[0-9]{6,20}")
_TEAMS_LIVE_ID = re.compile(r"[A-Za-z0-9]{5,40}")
# Paths under which the Teams web client carries the real route in the fragment.
_TEAMS_SHELL_PATHS = frozenset(["", "/", "/_", "/v2", "/v2/"])


def _parse_teams(link: _Link) -> TeamsUrl:
    """``/l/meetup-join/<thread>/<message>?context=…`` (also behind ``/v2/?meetingjoin=true#``
    and ``/_#``), ``/meet/<id>?p=…`` and ``/light-meetings/launch?coords=…``. Meeting options,
    dial-in pages and the like are not join links."""
    host = _TEAMS_HOSTS[link.host]
    path, query = link.path, link.query
    routed = link.fragment.startswith("/") and path.lower() in _TEAMS_SHELL_PATHS
    if routed:
        # https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/19:…/0?context=…
        path, _, query = link.fragment.partition("?")
    segments = _segments(path)
    if routed and segments[:1] and segments[0].lower() == "meetup-join":
        segments.insert(0, "l")  # the older web client's route: /_#/meetup-join/19:…/0
    lowered = [s.lower() for s in segments[:2]]
    params = _query_params(query)
    if lowered == ["l", "meetup-join"] and len(segments) in (3, 4):
        thread_id = _decode_fully(segments[2])
        # Some links lose the "/0"; "0" is what Teams itself puts there for meetings.
        message_id = _decode(segments[3]) if len(segments) == 4 else "0"
        tenant_id, organizer_id = _teams_context(_param(params, "context"))
        # Old links put the tenant in the query instead of the context.
        tenant_id = tenant_id or _guid_ish(_param(params, "tenantid"))
        organizer_id = organizer_id or _guid_ish(_param(params, "organizerid"))
        return _teams_thread(thread_id, message_id, tenant_id, organizer_id, host=host)
    if lowered[:1] == ["meet"] and len(segments) == 2:
        password = _secret(_param(params, "p"), "Teams passcode")
        return _teams_short(_decode(segments[1]), password, host=host)
    if lowered == ["light-meetings", "launch"] and len(segments) == 2:
        return _teams_light_meeting(_param(params, "coords"), host=host)
    raise _Reject("not a Teams join link")


def _teams_thread(
    thread_id: str,
    message_id: str,
    tenant_id: str | None,
    organizer_id: str | None,
    *,
    host: str,
) -> TeamsUrl:
    """A meeting identified by its chat thread (meetup-join and light-meetings links)."""
    if not _TEAMS_THREAD.fullmatch(thread_id):
        raise _Reject("malformed Teams thread id")
    if not _TEAMS_MESSAGE.fullmatch(message_id):
        raise _Reject("malformed Teams message id")
    return TeamsUrl(
        platform="microsoft_teams_live" if host == "teams.live.com" else "microsoft_teams",
        thread_id=thread_id,
        message_id=message_id,
        tenant_id=tenant_id,
        organizer_id=organizer_id,
        host=host,
    )


def _teams_short(meeting_id: str, password: str | None, *, host: str) -> TeamsUrl:
    """A meeting identified by meeting id and passcode (``/meet/<id>?p=…``): Teams for
    business fills Recall's ``business_meeting_*`` fields, Teams (free) on teams.live.com its
    ``meeting_*`` fields."""
    if host == "teams.live.com":
        if not _TEAMS_LIVE_ID.fullmatch(meeting_id):
            raise _Reject("malformed Teams meeting id")
        return TeamsUrl(
            platform="microsoft_teams_live",
            meeting_id=meeting_id,
            meeting_password=password,
            host=host,
        )
    if not _TEAMS_BUSINESS_ID.fullmatch(meeting_id):
        raise _Reject("malformed Teams meeting id")
    return TeamsUrl(business_meeting_id=meeting_id, business_meeting_password=password, host=host)


def _teams_light_meeting(coords: str | None, *, host: str) -> TeamsUrl:
    """``/light-meetings/launch?coords=<base64 JSON>``, the link Teams hands to browsers: the
    JSON holds either the thread (conversationId, messageId, tenantId, organizerId) or a
    meeting code and passcode."""
    if not coords or len(coords) > 2048:
        raise _Reject("Teams light-meetings link without coordinates")
    try:
        padded = coords + "=" * (-len(coords) % 4)
        raw = base64.b64decode(padded, altchars=b"-_" if "-" in coords or "_" in coords else None)
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        raise _Reject("malformed Teams light-meetings coordinates") from None
    if not isinstance(data, dict):
        raise _Reject("malformed Teams light-meetings coordinates")
    thread_id, message_id = data.get("conversationId"), data.get("messageId", "0")
    if isinstance(thread_id, str) and isinstance(message_id, (str, int)):
        return _teams_thread(
            thread_id,
            str(message_id),
            _guid_ish(data.get("tenantId")),
            _guid_ish(data.get("organizerId")),
            host=host,
        )
    code, passcode = data.get("meetingCode"), data.get("passcode")
    if isinstance(code, str) and (passcode is None or isinstance(passcode, str)):
        return _teams_short(code, _secret(passcode, "Teams passcode"), host=host)
    raise _Reject("Teams light-meetings coordinates name no meeting")


def _teams_context(raw: str | None) -> tuple[str | None, str | None]:
    """``{"Tid":"…","Oid":"…"}`` (possibly still percent-encoded) → (tenant, organizer).

    A context that does not decode is ignored rather than fatal: the thread id alone identifies
    the meeting, and mail clients do mangle this part.
    """
    if not raw:
        return None, None
    text = _decode_fully(raw)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    fields = {str(name).lower(): value for name, value in data.items()}
    return _guid_ish(fields.get("tid")), _guid_ish(fields.get("oid"))


def _guid_ish(value: object) -> str | None:
    if isinstance(value, str) and _TEAMS_GUID_ISH.fullmatch(value):
        return value
    return None


# --------------------------------------------------------------------------------------------
# Webex
# --------------------------------------------------------------------------------------------

# Webex's own sites, not customer meeting sites.
_WEBEX_NON_SITES = frozenset(
    ["www", "web", "help", "signin", "idbroker", "settings", "developer", "api", "status",
     "blog", "cart", "pricing", "collaborationhelp"]
)
_WEBEX_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_WEBEX_MTID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_WEBEX_ROOM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _parse_webex(link: _Link) -> WebexUrl:
    """``SUB.webex.com/SUB/j.php?MTID=m…`` (also ``/meet/j.php``, ``/j.php``, deeper prefixes),
    ``SUB.webex.com/wbxmjs/joinservice/sites/SUB/meeting/download/ID?MTID=m…`` (or under
    ``/webappng/sites/``), and personal rooms ``SUB.webex.com/meet/NAME`` or ``/join/NAME``;
    ``SUB`` may be ``acme.my``. Scheduled-meeting links need their MTID; informational pages
    (``/webappng/…/meeting/info/…``), recordings and event (``e.php``) links are refused."""
    subdomain = link.host[: -len(".webex.com")]
    if subdomain.split(".", 1)[0] in _WEBEX_NON_SITES:
        raise _Reject("not a Webex meeting site")
    segments = _segments(link.path)
    lowered = [s.lower() for s in segments]
    if len(segments) == 2 and lowered[0] in ("meet", "join") and lowered[1] != "j.php":
        room = _decode(segments[1])
        if not _WEBEX_ROOM.fullmatch(room):
            raise _Reject("malformed Webex personal room")
        return WebexUrl(meeting_subdomain=subdomain, meeting_personal_room_id=room)
    if not segments or not all(_WEBEX_SEGMENT.fullmatch(s) for s in segments):
        raise _Reject("not a Webex join link")
    j_php = lowered[-1] == "j.php" and len(segments) <= 4
    # .../sites/SUB/meeting/download/<id>?MTID=… (the "Join meeting" button of invitations)
    join_service = (
        len(segments) == 7
        and lowered[:3] == ["wbxmjs", "joinservice", "sites"]
        and lowered[4:6] == ["meeting", "download"]
    ) or (
        len(segments) == 6
        and lowered[:2] == ["webappng", "sites"]
        and lowered[3:5] == ["meeting", "download"]
    )
    if not (j_php or join_service):
        raise _Reject("not a Webex join link")
    mtid = _param(link.params, "mtid")
    if not mtid:
        raise _Reject("Webex meeting link without MTID")
    if not _WEBEX_MTID.fullmatch(mtid):
        raise _Reject("malformed Webex MTID")
    return WebexUrl(meeting_subdomain=subdomain, meeting_mtid=mtid, meeting_path="/".join(segments))


# --------------------------------------------------------------------------------------------
# GoTo Meeting
# --------------------------------------------------------------------------------------------

_GOTO_HOSTS = frozenset(
    ["global.gotomeeting.com", "www.gotomeeting.com", "gotomeeting.com", "app.gotomeeting.com",
     "meet.goto.com", "app.goto.com", "goto.com", "www.goto.com", "gotomeet.me", "www.gotomeet.me"]
)
_GOTO_NUMBER = re.compile(r"[0-9]{9,12}")
_GOTO_ROOM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# First path segments on meet.goto.com / gotomeet.me that are pages, not rooms.
_GOTO_RESERVED = frozenset(
    ["install", "download", "join", "login", "signin", "tel", "app", "meeting", "meetings",
     "help", "support", "settings", "start"]
)


def _goto_id(raw: str | None, *, room_allowed: bool) -> str:
    """A meeting number ("123-456-789" too) → digits; or, where allowed, a room name."""
    value = _decode(raw or "")
    digits = value.replace("-", "").replace(" ", "")
    if digits.isdigit() and digits.isascii():
        if not _GOTO_NUMBER.fullmatch(digits):
            raise _Reject("GoTo meeting number must have 9 to 12 digits")
        return digits
    if room_allowed and _GOTO_ROOM.fullmatch(value) and value.lower() not in _GOTO_RESERVED:
        return value
    raise _Reject("malformed GoTo meeting id")


def _parse_goto(link: _Link) -> GoToUrl:
    """``global.gotomeeting.com/join/ID``, ``app.gotomeeting.com/?meetingId=ID``,
    ``meet.goto.com/ID|ROOM``, ``app.goto.com/meeting/ID``, ``gotomeet.me/ROOM``."""
    host = link.host
    segments = _segments(link.path)
    lowered = [s.lower() for s in segments]
    if host.endswith("gotomeeting.com") and host != "app.gotomeeting.com":
        if len(segments) == 2 and lowered[0] == "join":
            return GoToUrl(meeting_id=_goto_id(segments[1], room_allowed=False))
    elif host == "app.gotomeeting.com":
        if lowered in ([], ["index.html"]):
            meeting_id = _param(link.params, "meetingid")
            return GoToUrl(meeting_id=_goto_id(meeting_id, room_allowed=False))
    elif host in ("app.goto.com", "goto.com", "www.goto.com"):
        if len(segments) == 2 and lowered[0] == "meeting":
            return GoToUrl(meeting_id=_goto_id(segments[1], room_allowed=False))
    elif len(segments) == 1:  # meet.goto.com, gotomeet.me
        return GoToUrl(meeting_id=_goto_id(segments[0], room_allowed=True))
    raise _Reject("not a GoTo join link")


# --------------------------------------------------------------------------------------------
# Summon's own platforms
# --------------------------------------------------------------------------------------------

_SANDBOX = re.compile(r"sandbox://([^/?#]*)/?(?:\?([^#]*))?", re.IGNORECASE | re.ASCII)
_SANDBOX_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def _parse_sandbox(s: str) -> SandboxUrl:
    """``sandbox://<name>?<params>``: name of 1–100 ``[A-Za-z0-9._-]``; params kept as decoded
    strings, each name at most once (a repeated parameter would be ambiguous)."""
    match = _SANDBOX.fullmatch(s)
    if match is None:
        raise _Reject("malformed sandbox link")
    name, query = _decode(match.group(1)), match.group(2) or ""
    if not _SANDBOX_NAME.fullmatch(name):
        raise _Reject("sandbox name must be 1-100 characters of A-Z a-z 0-9 . _ -")
    params: dict[str, str] = {}
    for param, raw in _query_params(query):
        value = _decode(raw)
        if not param:
            raise _Reject("sandbox parameter without a name")
        if param in params:
            raise _Reject(f"sandbox parameter {param!r} given twice")
        params[param] = value
    return SandboxUrl(meeting_id=name, params=tuple(sorted(params.items())))


_JANUS = re.compile(r"januss?://([^/?#]*)/([^/?#]+)/?(?:\?([^#]*))?", re.IGNORECASE | re.ASCII)
_JANUS_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?")
_JANUS_ROOM = re.compile(r"[A-Za-z0-9_-]{1,128}")
_JANUS_PARAMS = frozenset(["pin"])


def _parse_janus(s: str, *, secure: bool) -> JanusUrl:
    """``janus://HOST[:PORT]/ROOM?pin=…``; default port 8088, or 8089 for ``januss://``."""
    match = _JANUS.fullmatch(s)
    if match is None:
        raise _Reject("malformed janus link (janus://HOST:PORT/ROOM)")
    authority, room, query = match.group(1), match.group(2), match.group(3) or ""
    if "@" in authority:
        raise _Reject("user-info in link (user@host)")
    parts = _JANUS_AUTHORITY.fullmatch(authority)
    if parts is None:
        raise _Reject("malformed janus host")
    host = _janus_host(parts.group(1))
    port = int(parts.group(2)) if parts.group(2) else (8089 if secure else 8088)
    if not 1 <= port <= 65535:
        raise _Reject("janus port out of range")
    if not _JANUS_ROOM.fullmatch(room):
        raise _Reject("janus room must be digits or A-Z a-z 0-9 _ -")
    pin: str | None = None
    seen: set[str] = set()
    for name, value in _query_params(query):
        if name not in _JANUS_PARAMS:
            raise _Reject(f"unknown janus parameter {name!r}")
        if name in seen:
            raise _Reject(f"janus parameter {name!r} given twice")
        seen.add(name)
        pin = _secret(_decode(value), "janus pin")
    return JanusUrl(host=host, port=port, room=room, pin=pin, secure=secure)


def _janus_host(raw: str) -> str:
    if raw.startswith("["):
        try:
            address = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise _Reject("malformed IPv6 address") from None
        return str(address)
    host = raw.lower().removesuffix(".")
    if host.replace(".", "").isdigit():
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _Reject("malformed IPv4 address") from None
    if len(host) > 253 or not _HOST.fullmatch(host):
        raise _Reject("malformed janus host")
    return host


# --------------------------------------------------------------------------------------------
# Finding links in text
# --------------------------------------------------------------------------------------------

# Where a link may start: a scheme we know (possibly percent-encoded, as inside another link's
# query), or — without scheme — a platform host followed by a path. The look-behind keeps the
# scheme-less branch from starting in the middle of a host, path or e-mail address.
_LINK_START = r"""
    (?:
        \b(?:https?|zoommtg|zoomus|sandbox|januss?)(?:://|%3a%2f%2f)
      | (?<![\w.@%/-])
        (?=(?:[a-z0-9-]{1,63}\.){0,6}
           (?:zoom\.us|zoom\.com|zoomgov\.com|meet\.google\.com|teams\.microsoft\.com
             |teams\.live\.com|teams\.cloud\.microsoft|teams\.microsoft\.us|webex\.com
             |gotomeeting\.com|goto\.com|gotomeet\.me)/)
    )
"""
# The body runs to whitespace, an angle bracket, a quote or a typographic quote. The bound is
# one more than MAX_URL_LENGTH so that an over-long candidate is recognisable as such, and it
# keeps every match (hence adversarial text) cheap: one character class, linear time.
_CANDIDATE = re.compile(
    _LINK_START + r"""[^\s<>"'`\u2018-\u201f\u00ab\u00bb\u2039\u203a]{0,4097}""",
    re.IGNORECASE | re.VERBOSE,
)
# Second chance for a Teams link whose context is plain JSON (context={"Tid":"…"}): quotes are
# allowed inside one {…} group. Slower per character, so only used when the fast match stopped
# at a quote after an unclosed brace.
_CANDIDATE_WITH_JSON = re.compile(
    _LINK_START
    + r"""(?:[^\s<>"'`{}\u2018-\u201f\u00ab\u00bb\u2039\u203a]|\{[^\s<>{}]{0,1000}\}){0,4097}""",
    re.IGNORECASE | re.VERBOSE,
)
# "Meeting ID: 854 1234 5678" in a Zoom invitation whose link is missing (dial-in only).
_ZOOM_TEXT_ID = re.compile(
    r"\bmeeting\s+id\s*[:#]?\s*((?:[0-9][ \xa0-]?){8,10}[0-9])\b", re.IGNORECASE
)
_ZOOM_TEXT_PASSCODE = re.compile(
    r"\b(?:passcode|password)\s*[:#]?\s*([^\s<>\"']{1,64})", re.IGNORECASE
)
_ZOOM_WORD = re.compile(r"zoom", re.IGNORECASE)


def find_meeting_url(text: str) -> MeetingUrl | None:
    """The meeting a text (calendar description, e-mail body, HTML) invites to, or None.

    The best of :func:`find_meeting_urls`; never raises.
    """
    found = find_meeting_urls(text)
    return found[0] if found else None


def find_meeting_urls(text: str) -> list[MeetingUrl]:
    """Every distinct meeting linked from ``text``, best first; never raises.

    Links are recognised anywhere: plain text, ``<https://…>``, HTML ``href`` attributes with
    entities, SafeLinks/Google redirects, scheme-less ``zoom.us/j/…``. Links that are not joins
    (Zoom ``/u/`` invite lists, Teams meeting options and dial-in pages, downloads, help pages)
    do not count. Two links to the same meeting (same :attr:`MeetingUrl.key`) count once, as
    the first.

    Order: Summon's own ``sandbox``/``janus`` links (never written by calendar software, so
    deliberate), then Teams ``meetup-join``, Teams ``/meet/`` links, Zoom, Google Meet, Webex,
    GoTo; within one rank, order of appearance. When a Zoom invitation carries no link at all,
    its "Meeting ID: … Passcode: …" lines are used, ranked last.
    """
    try:
        return _find(text)
    except Exception:  # noqa: BLE001
        # The contract is "never raises": for a caller scanning mail, a miss is the safe answer.
        return []


def _find(text: str) -> list[MeetingUrl]:
    if not isinstance(text, str) or not text:
        return []
    text = text[:MAX_TEXT_LENGTH]
    if "&" in text:
        text = _unescape_entities(text)
    if "\\/" in text:
        text = text.replace("\\/", "/")  # links inside JSON strings: "https:\/\/zoom.us\/j\/…"

    found: dict[str, tuple[int, int, MeetingUrl]] = {}
    position = 0
    examined = 0
    while examined < _MAX_CANDIDATES:
        match = _CANDIDATE.search(text, position)
        if match is None:
            break
        examined += 1
        candidate, end = match.group(0), match.end()
        if end < len(text) and text[end] in "\"'" and "{" in candidate:
            wider = _CANDIDATE_WITH_JSON.match(text, match.start())
            if wider is not None:
                candidate, end = wider.group(0), wider.end()
        meeting = _try_parse(candidate)
        if meeting is None:
            # The candidate may hide a link further in (e.g. an unknown tracker wrapping a
            # meeting link): look again just after where this one started.
            position = match.start() + 1
            continue
        position = end
        if meeting.key not in found:
            found[meeting.key] = (_rank(meeting), match.start(), meeting)

    if not any(isinstance(m, ZoomUrl) for _, _, m in found.values()):
        zoom = _zoom_from_invitation_text(text)
        if zoom is not None and zoom.key not in found:
            found[zoom.key] = (_RANK_OF_TEXT_FALLBACK, 0, zoom)

    return [meeting for _, _, meeting in sorted(found.values(), key=lambda item: item[:2])]


def _try_parse(candidate: str) -> MeetingUrl | None:
    if len(candidate) > MAX_URL_LENGTH:
        return None
    try:
        return _parse(candidate, depth=0, in_text=True)
    except (_Reject, ValueError, RecursionError):
        return None


_RANKS: dict[type[MeetingUrl], int] = {
    SandboxUrl: 0,
    JanusUrl: 0,
    TeamsUrl: 1,  # meetup-join; /meet/ links rank 2, see _rank
    ZoomUrl: 3,
    GoogleMeetUrl: 4,
    WebexUrl: 5,
    GoToUrl: 6,
}


# Below every link: the "Meeting ID:" lines of a Zoom invitation without a Zoom link.
_RANK_OF_TEXT_FALLBACK = max(_RANKS.values()) + 1


def _rank(meeting: MeetingUrl) -> int:
    rank = _RANKS[type(meeting)]
    if isinstance(meeting, TeamsUrl) and meeting.thread_id is None:
        rank += 1
    return rank


def _zoom_from_invitation_text(text: str) -> ZoomUrl | None:
    """A Zoom meeting from "Meeting ID: 854 1234 5678" (+ "Passcode: …") in a text that talks
    about Zoom but has no Zoom link. Only used as the last resort."""
    if not _ZOOM_WORD.search(text):
        return None
    match = _ZOOM_TEXT_ID.search(text)
    if match is None:
        return None
    digits = re.sub(r"[^0-9]", "", match.group(1))
    if not _ZOOM_NUMBER.fullmatch(digits):
        return None
    passcode = _ZOOM_TEXT_PASSCODE.search(text, match.end(), match.end() + 300)
    return ZoomUrl(meeting_id=digits, meeting_password=passcode.group(1) if passcode else None)

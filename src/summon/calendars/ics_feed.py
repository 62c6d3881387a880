"""An iCalendar feed at a URL (``ics_feed``): the "secret address in iCal format" that Google,
Outlook, iCloud, Fastmail, Nextcloud and every booking tool offer.

Credentials: ``{"url": "https://…/basic.ics"}`` — http or https; ``webcal://`` and
``webcals://`` (the calendar-subscription spelling of the same feed) are read as ``https://``.

Why the state holds the whole body: a feed has no incremental protocol; the best a server
offers is a conditional GET (``If-None-Match`` with the ETag, ``If-Modified-Since`` with the
Last-Modified value) answered by ``304 Not Modified``. The sync window moves on every sync
(a day back, four weeks ahead), and recurring series reach into the new part of the window
without the feed changing — so after a 304 the stored body is expanded again for the new
window, with no download. A body too large for the state cap is not stored; its feed is then
downloaded in full each time (no conditional headers are sent without a body to fall back on).

Failures: 404/410 (the feed was deleted or its secret address reset), 401/403, a body that is
not iCalendar (a login page), a body over the size cap and a redirect loop mean the
connection is broken until the user fixes it (``CalendarDisconnected``); timeouts, refused
connections, 408/429 and 5xx are transient (``CalendarUnavailable``). A malformed event in a
feed is reported in ``problems`` and never fails the fetch.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from summon.abc import CalendarDisconnected, CalendarUnavailable
from summon.calendars import Fetched, HttpCalendarProvider
from summon.calendars.http import HttpRequest, HttpResponse, HttpTransport, send_following
from summon.domain.icalendar import expand, parse_calendar

__all__ = ["PROVIDER", "IcsFeedProvider", "normalize_feed_url"]

MAX_URL_LENGTH = 4096
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def normalize_feed_url(value: object) -> str:
    """The feed URL to request: ``webcal(s)://`` becomes ``https://``; anything but http(s)
    with a host is refused with ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("url is required")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError("url contains blanks or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("url must start with https://, http:// or webcal://")
    scheme = scheme.lower()
    if scheme in ("webcal", "webcals"):
        scheme = "https"
    if scheme not in ("http", "https"):
        raise ValueError(f"url scheme {scheme!r} is not supported (http, https, webcal)")
    url = f"{scheme}://{rest}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"url is malformed: {exc}") from None
    if not parts.hostname:
        raise ValueError("url has no host")
    return url


class IcsFeedProvider(HttpCalendarProvider):
    """Conditional GET of one feed, expanded with :mod:`summon.domain.icalendar`.

    Defaults: 30 s for the whole fetch, 10 MiB per body, 5 redirects. State:
    ``{"etag", "last_modified", "body" | "body_b64"}`` (plus the frame's stamps).
    """

    platform: ClassVar[str] = "ics_feed"

    def __init__(self, *, timeout: float = 30.0, **options: Any) -> None:
        super().__init__(timeout=timeout, **options)

    def normalize(self, credentials: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(credentials, dict):
            raise ValueError("credentials must be an object")  # noqa: TRY004 - the port
        return {"url": normalize_feed_url(credentials.get("url"))}

    def source(self, credentials: dict[str, Any]) -> str:
        return str(credentials["url"])

    async def collect(
        self,
        transport: HttpTransport,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
        deadline: float,
    ) -> Fetched:
        cached = _stored_body(state)
        headers = {"accept": "text/calendar, text/plain;q=0.5, */*;q=0.1"}
        if cached is not None and state:
            if isinstance(state.get("etag"), str):
                headers["if-none-match"] = state["etag"]
            if isinstance(state.get("last_modified"), str):
                headers["if-modified-since"] = state["last_modified"]
        response = await send_following(
            transport, HttpRequest("GET", credentials["url"], headers), deadline=deadline,
            max_bytes=self.max_bytes, max_redirects=self.max_redirects,
        )
        if response.status == 304 and cached is not None and state:
            body = cached
            etag = response.header("etag") or state.get("etag")
            last_modified = response.header("last-modified") or state.get("last_modified")
        elif 200 <= response.status < 300:
            body = response.body
            etag, last_modified = response.header("etag"), response.header("last-modified")
        else:
            raise _failure(response)
        if not _looks_like_icalendar(body):
            kind = response.header("content-type") or "no content type"
            raise CalendarDisconnected(f"the URL does not serve an iCalendar feed ({kind[:80]})")
        parsed = parse_calendar(body)
        occurrences, problems = expand(parsed, window_start, window_end)
        return Fetched(
            occurrences=list(occurrences),
            problems=[*parsed.problems, *problems],
            state={"etag": etag, "last_modified": last_modified, **_body_state(body)},
        )


# The body is kept as text when it is UTF-8 (nearly always: RFC 5545 §3.1.4), else as base64,
# and the model always reads the same bytes it read the first time (it has its own fallbacks
# for UTF-16 and Windows-1252 files).


def _body_state(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_b64": base64.b64encode(body).decode("ascii")}


def _stored_body(state: dict[str, Any] | None) -> bytes | None:
    if not state:
        return None
    if isinstance(state.get("body"), str):
        return str(state["body"]).encode("utf-8")
    if isinstance(state.get("body_b64"), str):
        try:
            return base64.b64decode(state["body_b64"], validate=True)
        except binascii.Error:
            return None
    return None


def _looks_like_icalendar(body: bytes) -> bool:
    head = body[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="replace")
    else:
        text = head.decode("utf-8", errors="replace")
    return "BEGIN:VCALENDAR" in text.upper()


def _failure(response: HttpResponse) -> Exception:
    status = response.status
    if status in (404, 410):
        return CalendarDisconnected(f"the feed is gone (HTTP {status})")
    if status in (401, 403):
        return CalendarDisconnected(f"the feed refuses access (HTTP {status})")
    if status in TRANSIENT_STATUSES or status >= 500:
        return CalendarUnavailable(f"the feed answered HTTP {status}")
    if 400 <= status < 500:
        return CalendarDisconnected(f"the feed answered HTTP {status}")
    return CalendarUnavailable(f"unexpected answer HTTP {status}")


PROVIDER = IcsFeedProvider

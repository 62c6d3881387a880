"""A calendar on a CalDAV server (``caldav``): Nextcloud, Radicale, Baïkal, SOGo, Fastmail,
iCloud, Zimbra, DAViCal.

Credentials: ``{"url", "username"?, "password"?}`` (HTTP Basic authentication when a username
is given). ``url`` is either

- the URL of one calendar collection — that calendar is read; or
- a principal URL, a calendar-home URL, or the server's root — then the calendars of the
  user's home (``calendar-home-set`` of the ``current-user-principal``) are listed and the
  **first one that can hold events** (``supported-calendar-component-set`` includes VEVENT, or
  is not stated), in href order, is read. The choice is kept in ``state`` so it stays put.

Why we speak CalDAV ourselves instead of using the ``caldav`` library: that library is
synchronous (a thread per fetch, with timeouts that cannot interrupt a blocked read) and has
its own HTTP stack, outside the limits every provider here shares — response-size cap, one
deadline for the whole fetch, bounded redirects to http(s) only, no credentials sent to another
origin. The part of CalDAV a reader needs is four requests (RFC 4791, RFC 6578), built here
over the shared async transport:

1. ``PROPFIND`` (depth 0/1) to find the collection — once; kept in ``state``.
2. ``REPORT sync-collection`` with the stored ``sync-token``: the hrefs changed and removed
   since the last sync (continued while the server says the answer was truncated).
3. When there is no token, the server refuses it (expired, 403/409 ``valid-sync-token``) or
   does not support sync: a full ETag listing (``PROPFIND`` depth 1, ``getetag``) compared
   with the stored ETags; the collection's current ``sync-token`` is read first, so nothing
   changed during the listing is missed next time.
4. ``REPORT calendar-multiget`` for the changed hrefs only, in batches of 100.

State: ``collection``, ``sync_token``, and ``items`` — per href its ETag and iCalendar text —
so a moved window is expanded again from what is stored. A state over the cap drops the
items and switches to *windowed* mode: each fetch then asks the server for the objects in the
window (``REPORT calendar-query`` with a ``time-range``), with no incremental sync.

XML is parsed with the standard library's expat-based ElementTree, which resolves no external
entities and, from expat 2.4.1 on, refuses entity-expansion bombs.
"""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit

from summon.abc import CalendarDisconnected, CalendarUnavailable
from summon.calendars import Fetched, HttpCalendarProvider
from summon.calendars.http import HttpRequest, HttpResponse, HttpTransport, send_following
from summon.domain.icalendar import Problem, expand, parse_calendar

__all__ = ["PROVIDER", "CalDavProvider"]

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
MULTIGET_BATCH = 100
MAX_SYNC_ROUNDS = 50
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _t(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


RESOURCETYPE = _t(DAV, "resourcetype")
GETETAG = _t(DAV, "getetag")
SYNC_TOKEN = _t(DAV, "sync-token")
CURRENT_USER_PRINCIPAL = _t(DAV, "current-user-principal")
CALENDAR_HOME_SET = _t(CALDAV, "calendar-home-set")
COMPONENT_SET = _t(CALDAV, "supported-calendar-component-set")
CALENDAR_DATA = _t(CALDAV, "calendar-data")

_PROPS_DISCOVERY = (
    "<D:resourcetype/><D:displayname/><D:current-user-principal/><D:sync-token/>"
    "<C:calendar-home-set/><C:supported-calendar-component-set/>"
)


def _propfind(props: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}"><D:prop>{props}</D:prop></D:propfind>'
    ).encode()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(slots=True)
class _Entry:
    """One ``DAV:response`` of a multistatus: its href, the properties found (200) and the
    status of the response itself when it has one (e.g. 404 for a removed member)."""

    href: str
    status: int | None = None
    props: dict[str, ET.Element] = field(default_factory=dict)


class CalDavProvider(HttpCalendarProvider):
    """Reads one CalDAV calendar (see the module docstring). Defaults: 60 s per fetch, 10 MiB
    per response, 5 redirects."""

    platform: ClassVar[str] = "caldav"

    def normalize(self, credentials: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(credentials, dict):
            raise ValueError("credentials must be an object")  # noqa: TRY004 - the port
        url = credentials.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValueError("url is required")
        url = url.strip()
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"url is malformed: {exc}") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("put the user name and password in username and password, not the url")
        if any(c.isspace() or ord(c) < 0x20 for c in url) or len(url) > 4096:
            raise ValueError("url contains blanks or control characters, or is too long")
        result: dict[str, Any] = {"url": url}
        for name in ("username", "password"):
            value = credentials.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string")  # noqa: TRY004 - the port
            result[name] = value
        if "password" in result and "username" not in result:
            raise ValueError("password given without username")
        if ":" in result.get("username", ""):
            raise ValueError("username must not contain ':'")
        return result

    def source(self, credentials: dict[str, Any]) -> str:
        return f"{credentials['url']} {credentials.get('username', '')}"

    def shrink_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"collection": state.get("collection"), "windowed": True}

    async def collect(
        self,
        transport: HttpTransport,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
        deadline: float,
    ) -> Fetched:
        dav = _Session(self, transport, credentials, deadline)
        state = state or {}
        collection = state.get("collection")
        if not isinstance(collection, str):
            collection = await dav.locate(credentials["url"])
        if state.get("windowed"):
            texts = await dav.query_window(collection, window_start, window_end)
            occurrences, problems = _expand(texts, window_start, window_end)
            return Fetched(occurrences, problems, {"collection": collection, "windowed": True})

        items: dict[str, dict[str, Any]] = {}
        stored = state.get("items")
        if isinstance(stored, dict):
            items = {k: v for k, v in stored.items() if isinstance(v, dict)}
        token = state.get("sync_token") if isinstance(state.get("sync_token"), str) else None
        delta = await dav.sync_changes(collection, token) if token else None
        if delta is None:
            token = await dav.current_sync_token(collection)
            listing = await dav.list_etags(collection)
            changed = {
                path: (href, etag) for path, (href, etag) in listing.items()
                if etag is None or items.get(path, {}).get("etag") != etag
            }
            removed = set(items) - set(listing)
        else:
            changed, removed, token = delta
        for path in removed:
            items.pop(path, None)
        if changed:
            fetched, missing = await dav.multiget(collection, [h for h, _ in changed.values()])
            for path in missing:
                items.pop(path, None)
            for path, (etag, text) in fetched.items():
                items[path] = {"etag": etag or changed.get(path, (None, None))[1], "data": text}
        texts = [(path, item["data"]) for path, item in sorted(items.items())
                 if isinstance(item.get("data"), str)]
        occurrences, problems = _expand(texts, window_start, window_end)
        return Fetched(
            occurrences, problems,
            {"collection": collection, "sync_token": token, "items": items},
        )


def _expand(
    texts: Iterable[tuple[str, str]], window_start: datetime, window_end: datetime
) -> tuple[list[Any], list[Any]]:
    """Every occurrence of every stored object in the window. A broken object costs only itself:
    its problems are reported under its href."""
    occurrences: list[Any] = []
    problems: list[Any] = []
    for path, text in texts:
        try:
            parsed = parse_calendar(text)
            found, trouble = expand(parsed, window_start, window_end)
        except Exception as exc:  # noqa: BLE001 - one bad object never fails the fetch
            problems.append(Problem(uid=path, reason=f"unreadable calendar object: {exc}"))
            continue
        occurrences.extend(found)
        problems.extend(parsed.problems)
        problems.extend(trouble)
    return occurrences, problems


class _Session:
    """The requests of one fetch against one server (credentials, deadline, limits)."""

    def __init__(
        self, provider: CalDavProvider, transport: HttpTransport,
        credentials: dict[str, Any], deadline: float,
    ) -> None:
        self.provider = provider
        self.transport = transport
        self.deadline = deadline
        self.headers = {"content-type": "application/xml; charset=utf-8"}
        if "username" in credentials:
            pair = f"{credentials['username']}:{credentials.get('password', '')}"
            self.headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    # -- requests ------------------------------------------------------------------------------
    async def request(
        self, method: str, url: str, body: bytes, depth: str | None
    ) -> HttpResponse:
        headers = dict(self.headers)
        if depth is not None:
            headers["depth"] = depth
        if time.monotonic() >= self.deadline:
            raise TimeoutError
        return await send_following(
            self.transport, HttpRequest(method, url, headers, body), deadline=self.deadline,
            max_bytes=self.provider.max_bytes, max_redirects=self.provider.max_redirects,
        )

    async def multistatus(
        self, method: str, url: str, body: bytes, depth: str | None
    ) -> tuple[str, list[_Entry]]:
        """A 207 answer's entries (and the URL that answered); any other answer raises the
        calendar error it means."""
        response = await self.request(method, url, body, depth)
        if response.status != 207:
            raise _failure(response, url)
        return response.url, _parse_multistatus(response.body, response.url)

    # -- finding the calendar -----------------------------------------------------------------
    async def locate(self, url: str) -> str:
        answered, entries = await self.multistatus(
            "PROPFIND", url, _propfind(_PROPS_DISCOVERY), "0"
        )
        entry = entries[0] if entries else _Entry(answered)
        if _is_calendar(entry):
            if not _holds_events(entry):
                raise CalendarDisconnected("the calendar at this URL cannot hold events")
            return _absolute(answered, entry.href)
        home = _href_prop(entry, CALENDAR_HOME_SET, answered)
        if home is None:
            principal = _href_prop(entry, CURRENT_USER_PRINCIPAL, answered)
            if principal is not None:
                answered, found = await self.multistatus(
                    "PROPFIND", principal, _propfind("<C:calendar-home-set/>"), "0"
                )
                if found:
                    home = _href_prop(found[0], CALENDAR_HOME_SET, answered)
        if home is None:
            raise CalendarDisconnected("no calendar found at this URL (not a calendar, principal "
                                       "or calendar home)")
        answered, members = await self.multistatus(
            "PROPFIND", home, _propfind(_PROPS_DISCOVERY), "1"
        )
        calendars = sorted(
            _absolute(answered, m.href) for m in members if _is_calendar(m) and _holds_events(m)
        )
        if not calendars:
            raise CalendarDisconnected("the account has no calendar that can hold events")
        return calendars[0]

    # -- what changed ----------------------------------------------------------------------------
    async def current_sync_token(self, collection: str) -> str | None:
        _, entries = await self.multistatus(
            "PROPFIND", collection, _propfind("<D:sync-token/>"), "0"
        )
        for entry in entries:
            element = entry.props.get(SYNC_TOKEN)
            if element is not None and (element.text or "").strip():
                return (element.text or "").strip()
        return None

    async def list_etags(self, collection: str) -> dict[str, tuple[str, str | None]]:
        """Every member object: ``{path: (href, etag)}``."""
        answered, entries = await self.multistatus(
            "PROPFIND", collection, _propfind("<D:resourcetype/><D:getetag/>"), "1"
        )
        own = _path(answered, collection)
        listing: dict[str, tuple[str, str | None]] = {}
        for entry in entries:
            path = _path(answered, entry.href)
            if path.rstrip("/") == own.rstrip("/") or _is_collection(entry):
                continue
            if entry.status is not None and entry.status != 200:
                continue
            listing[path] = (entry.href, _etag(entry))
        return listing

    async def sync_changes(
        self, collection: str, token: str
    ) -> tuple[dict[str, tuple[str, str | None]], set[str], str] | None:
        """``(changed {path: (href, etag)}, removed paths, new token)`` since ``token``, or None
        when the server will not answer from that token (expired, unsupported): the caller
        then lists everything."""
        changed: dict[str, tuple[str, str | None]] = {}
        removed: set[str] = set()
        for _ in range(MAX_SYNC_ROUNDS):
            body = (
                '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
                f"<D:sync-token>{_xml_text(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>"
            ).encode()
            response = await self.request("REPORT", collection, body, "0")
            if response.status in (401, 429) or (
                response.status in TRANSIENT_STATUSES and response.status != 501
            ):
                raise _failure(response, collection)
            if response.status != 207:
                return None  # 403/409 valid-sync-token, 400/415/501 unsupported, …
            root = _parse_xml(response.body)
            if root is None:
                return None
            own = _path(response.url, collection)
            truncated = False
            for entry in _entries(root, response.url):
                path = _path(response.url, entry.href)
                if path.rstrip("/") == own.rstrip("/"):
                    truncated = truncated or entry.status == 507
                    continue
                if entry.status == 404:
                    removed.add(path)
                    changed.pop(path, None)
                elif not _is_collection(entry):
                    changed[path] = (entry.href, _etag(entry))
                    removed.discard(path)
            new_token = (root.findtext(SYNC_TOKEN) or "").strip()
            if not new_token:
                return None
            token = new_token
            if not truncated:
                return changed, removed, token
        return None

    # -- the objects -----------------------------------------------------------------------------
    async def multiget(
        self, collection: str, hrefs: list[str]
    ) -> tuple[dict[str, tuple[str | None, str]], set[str]]:
        """``({path: (etag, text)}, missing paths)`` for ``hrefs``, in batches."""
        found: dict[str, tuple[str | None, str]] = {}
        missing: set[str] = set()
        for i in range(0, len(hrefs), MULTIGET_BATCH):
            batch = hrefs[i: i + MULTIGET_BATCH]
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{CALDAV}">'
                "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
                + "".join(f"<D:href>{_xml_text(h)}</D:href>" for h in batch)
                + "</C:calendar-multiget>"
            ).encode()
            answered, entries = await self.multistatus("REPORT", collection, body, "1")
            for entry in entries:
                path = _path(answered, entry.href)
                data = entry.props.get(CALENDAR_DATA)
                if data is None or entry.status == 404:
                    missing.add(path)
                    continue
                found[path] = (_etag(entry), data.text or "")
        return found, missing

    async def query_window(
        self, collection: str, window_start: datetime, window_end: datetime
    ) -> list[tuple[str, str]]:
        """The objects with an event in the window, as the server filters them (windowed mode)."""
        start, end = (_caldav_time(window_start), _caldav_time(window_end))
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<C:calendar-query xmlns:D="DAV:" xmlns:C="{CALDAV}">'
            "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
            '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/>'
            "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
        ).encode()
        answered, entries = await self.multistatus("REPORT", collection, body, "1")
        texts = []
        for entry in entries:
            data = entry.props.get(CALENDAR_DATA)
            if data is not None and data.text:
                texts.append((_path(answered, entry.href), data.text))
        return sorted(texts)


# -- XML ------------------------------------------------------------------------------------------


def _parse_xml(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _parse_multistatus(body: bytes, base: str) -> list[_Entry]:
    root = _parse_xml(body)
    if root is None or root.tag != _t(DAV, "multistatus"):
        raise CalendarUnavailable("the server answered 207 with a malformed multistatus body")
    return list(_entries(root, base))


def _entries(root: ET.Element, base: str) -> Iterable[_Entry]:
    for response in root.findall(_t(DAV, "response")):
        href = (response.findtext(_t(DAV, "href")) or "").strip()
        if not href:
            continue
        entry = _Entry(href, _status(response.findtext(_t(DAV, "status"))))
        for propstat in response.findall(_t(DAV, "propstat")):
            if _status(propstat.findtext(_t(DAV, "status"))) != 200:
                continue
            prop = propstat.find(_t(DAV, "prop"))
            for element in prop if prop is not None else ():
                entry.props[element.tag] = element
        yield entry


def _status(line: str | None) -> int | None:
    """``HTTP/1.1 404 Not Found`` → 404."""
    parts = (line or "").split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def _is_collection(entry: _Entry) -> bool:
    types = entry.props.get(RESOURCETYPE)
    return types is not None and types.find(_t(DAV, "collection")) is not None


def _is_calendar(entry: _Entry) -> bool:
    types = entry.props.get(RESOURCETYPE)
    return types is not None and types.find(_t(CALDAV, "calendar")) is not None


def _holds_events(entry: _Entry) -> bool:
    components = entry.props.get(COMPONENT_SET)
    if components is None or len(components) == 0:
        return True  # not stated: any component (RFC 4791 §5.2.3)
    return any(
        c.tag == _t(CALDAV, "comp") and (c.get("name") or "").upper() == "VEVENT"
        for c in components
    )


def _href_prop(entry: _Entry, name: str, base: str) -> str | None:
    element = entry.props.get(name)
    if element is None:
        return None
    href = (element.findtext(_t(DAV, "href")) or "").strip()
    return _absolute(base, href) if href else None


def _etag(entry: _Entry) -> str | None:
    element = entry.props.get(GETETAG)
    text = (element.text or "").strip() if element is not None else ""
    return text or None


def _absolute(base: str, href: str) -> str:
    return urljoin(base, href)


def _path(base: str, href: str) -> str:
    """The decoded path an href names: the key of an object, whatever spelling the server used."""
    return unquote(urlsplit(urljoin(base, href)).path)


def _caldav_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _failure(response: HttpResponse, url: str) -> Exception:
    status = response.status
    if status == 401:
        return CalendarDisconnected("the server refused the user name or password (HTTP 401)")
    if status == 403:
        return CalendarDisconnected("the server refuses access to the calendar (HTTP 403)")
    if status in (404, 410):
        return CalendarDisconnected(f"no calendar at {url[:200]} (HTTP {status})")
    if status in TRANSIENT_STATUSES or status >= 500:
        return CalendarUnavailable(f"the server answered HTTP {status}")
    if 200 <= status < 300:
        return CalendarDisconnected(f"not a CalDAV server: HTTP {status} where 207 was expected")
    return CalendarDisconnected(f"the server answered HTTP {status}")


PROVIDER = CalDavProvider

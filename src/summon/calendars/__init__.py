"""Calendar providers, one module per platform, found by platform name — and the frame they share.

A provider module is named after its platform (``ics_feed.py`` serves ``platform ==
"ics_feed"``) and exports its :class:`summon.abc.CalendarProvider` subclass as ``PROVIDER``.
Modules are imported on first use, never at import time, like ``summon.drivers``.

:class:`HttpCalendarProvider` is the frame every provider here is built on, so that the
promises of the port are kept once rather than four times:

- **one deadline per fetch** (``timeout``, default 60 s) for every request of the fetch
  together, and a response-size cap (``max_bytes``, default 10 MiB) per response;
- **errors translated once**: no answer → ``CalendarUnavailable``; an oversized body, a
  refused redirect, a private destination (``public_only``) or invalid credentials →
  ``CalendarDisconnected``;
- **state**: stamped with a version and the identity of the source (URL, calendar id), so
  a ``state`` left over from other credentials is ignored; capped at ``max_state_bytes``
  (default 4 MiB of JSON) — when a provider's state grows past it, the provider's
  :meth:`~HttpCalendarProvider.shrink_state` keeps only what is small and the next fetch
  downloads in full;
- **changed**: a digest of the returned occurrences is kept in ``state``; ``changed`` is
  False exactly when this fetch returns what the previous one did.

The HTTP client is injected (``transport``); without one, each fetch opens and closes its own
aiohttp session, so a provider instance holds no resources and needs no closing.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import re
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from summon.abc import (
    CalendarDisconnected,
    CalendarProvider,
    CalendarUnavailable,
    Clock,
    FetchResult,
)
from summon.calendars.http import (
    AiohttpTransport,
    BlockedDestination,
    HttpRequest,
    HttpResponse,
    HttpTransport,
    OAuthError,
    RedirectRefused,
    ResponseTooLarge,
    TransportError,
    refresh_access_token,
)
from summon.clock import SystemClock

__all__ = [
    "PLATFORMS",
    "Fetched",
    "HttpCalendarProvider",
    "OAuthCalendarProvider",
    "OAuthSession",
    "fingerprint",
    "overlaps",
    "provider_for",
]

#: Every calendar platform this package serves.
PLATFORMS: tuple[str, ...] = ("ics_feed", "caldav", "google_calendar", "microsoft_outlook")
_PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

MiB = 1024 * 1024


def provider_for(platform: str, **options: Any) -> CalendarProvider:
    """A provider instance for ``platform``; ``options`` go to its constructor (``transport``,
    ``clock``, ``timeout``, ``max_bytes``, ``max_state_bytes``, ``public_only`` are accepted by
    every provider; API bases by the OAuth ones). Raises ``LookupError`` for an unknown
    platform. Cheap: call it per fetch or keep the instance, as convenient."""
    if not _PLATFORM_NAME.fullmatch(platform) or platform not in PLATFORMS:
        raise LookupError(f"unknown calendar platform {platform!r}")
    module = importlib.import_module(f"{__name__}.{platform}")
    provider: type[CalendarProvider] = module.PROVIDER
    return provider(**options)


# -- the frame ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a provider's :meth:`HttpCalendarProvider.collect` returns; the frame turns it into
    a :class:`FetchResult` (digest, ``changed``, size cap, stamping)."""

    occurrences: list[Any]
    problems: list[Any]
    state: dict[str, Any]
    credentials: dict[str, Any] | None = None


class HttpCalendarProvider(CalendarProvider):
    """Base of the HTTP providers; subclasses implement :meth:`normalize`, :meth:`source` and
    :meth:`collect` (and :meth:`shrink_state` when their state can grow)."""

    STATE_VERSION = 1

    def __init__(
        self,
        *,
        transport: HttpTransport | None = None,
        clock: Clock | None = None,
        timeout: float = 60.0,
        max_bytes: int = 10 * MiB,
        max_state_bytes: int = 4 * MiB,
        max_redirects: int = 5,
        public_only: bool = False,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0 or max_state_bytes <= 0 or max_redirects < 0:
            raise ValueError("limits must be positive")
        self.transport = transport
        self.clock: Clock = clock or SystemClock()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_state_bytes = max_state_bytes
        self.max_redirects = max_redirects
        self.public_only = public_only

    # -- what a provider implements ------------------------------------------------------------
    @abstractmethod
    def source(self, credentials: dict[str, Any]) -> str:
        """What ``state`` belongs to (the URL, the calendar id): state of another source is
        ignored. ``credentials`` are normalized."""

    @abstractmethod
    async def collect(
        self,
        transport: HttpTransport,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
        deadline: float,
    ) -> Fetched:
        """Do the fetch. ``state`` is the provider's previous state (already checked to belong
        to this source and version) or None; ``deadline`` a :func:`time.monotonic` instant.
        May raise :class:`TransportError`, :class:`ResponseTooLarge`, :class:`RedirectRefused`
        and the two calendar errors."""

    def shrink_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A smaller state for when ``state`` exceeds ``max_state_bytes``: keep identifiers
        that are useful without the cached data. The default keeps nothing."""
        return {}

    # -- the frame -------------------------------------------------------------------------------
    async def fetch(
        self,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
    ) -> FetchResult:
        if window_start.tzinfo is None or window_end.tzinfo is None:
            raise ValueError("the window needs aware datetimes")
        if window_end <= window_start:
            raise ValueError("the window ends before it starts")
        try:
            creds = self.normalize(credentials)
        except ValueError as exc:
            raise CalendarDisconnected(f"invalid credentials: {exc}") from None
        source = self.source(creds)
        previous = self._own_state(state, source)
        deadline = time.monotonic() + self.timeout
        try:
            async with self._transport() as transport, asyncio.timeout(self.timeout):
                fetched = await self.collect(
                    transport, creds, previous, window_start, window_end, deadline
                )
        except TimeoutError:
            raise CalendarUnavailable(f"no complete answer within {self.timeout:g} s") from None
        except TransportError as exc:
            raise CalendarUnavailable(exc.reason) from None
        except ResponseTooLarge as exc:
            raise CalendarDisconnected(exc.reason) from None
        except (RedirectRefused, BlockedDestination) as exc:
            raise CalendarDisconnected(exc.reason) from None
        digest = fingerprint(fetched.occurrences)
        changed = previous is None or previous.get("fingerprint") != digest
        new_state = {**fetched.state, "v": self.STATE_VERSION, "source": source,
                     "fingerprint": digest}
        if _json_size(new_state) > self.max_state_bytes:
            new_state = {**self.shrink_state(fetched.state), "v": self.STATE_VERSION,
                         "source": source, "fingerprint": digest}
        return FetchResult(
            occurrences=fetched.occurrences,
            problems=fetched.problems,
            changed=changed,
            state=new_state,
            credentials=fetched.credentials,
        )

    def _own_state(self, state: dict[str, Any] | None, source: str) -> dict[str, Any] | None:
        if not isinstance(state, dict):
            return None
        if state.get("v") != self.STATE_VERSION or state.get("source") != source:
            return None
        return state

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[HttpTransport]:
        if self.transport is not None:
            yield self.transport
            return
        async with AiohttpTransport(public_only=self.public_only) as transport:
            yield transport


# -- OAuth providers -------------------------------------------------------------------------------


class OAuthCalendarProvider(HttpCalendarProvider):
    """Base of the providers reached with an OAuth 2 refresh token (Google, Microsoft).

    Credentials: ``oauth_client_id``, ``oauth_client_secret``, ``oauth_refresh_token``
    (required); ``calendar_id`` (optional, the provider's default calendar when absent); and
    the cached ``access_token`` with ``access_token_expires_at`` (ISO 8601) that fetches
    return in ``FetchResult.credentials`` after refreshing, so the next fetch can skip the
    token endpoint. A cached token is used until a minute before it expires; a 401 from the
    API refreshes once and retries; a second 401 means the grant is no good.
    """

    #: The token endpoint; a subclass sets its provider's, tests may pass another.
    token_url: str
    #: ``scope`` sent with the refresh (Microsoft's v2 endpoint wants it; Google does not).
    scope: str | None = None

    def __init__(self, *, token_url: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if token_url is not None:
            self.token_url = token_url

    def normalize(self, credentials: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(credentials, dict):
            raise ValueError("credentials must be an object")  # noqa: TRY004 - the port
        result: dict[str, Any] = {}
        for name in ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token"):
            value = credentials.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} is required")
            result[name] = value.strip()
        calendar_id = credentials.get("calendar_id")
        if calendar_id not in (None, ""):
            if not isinstance(calendar_id, str) or len(calendar_id) > 1024:
                raise ValueError("calendar_id must be a string")
            result["calendar_id"] = calendar_id.strip()
        token, expires = credentials.get("access_token"), credentials.get("access_token_expires_at")
        if isinstance(token, str) and token and _parse_instant(expires):
            result["access_token"], result["access_token_expires_at"] = token, expires
        return result

    def session(
        self, transport: HttpTransport, credentials: dict[str, Any], deadline: float
    ) -> OAuthSession:
        return OAuthSession(self, transport, credentials, deadline)


class OAuthSession:
    """The authorized requests of one fetch. ``credentials`` holds what to persist when a
    refresh happened (None otherwise)."""

    def __init__(
        self, provider: OAuthCalendarProvider, transport: HttpTransport,
        credentials: dict[str, Any], deadline: float,
    ) -> None:
        self.provider = provider
        self.transport = transport
        self.deadline = deadline
        self._current = credentials
        self.credentials: dict[str, Any] | None = None

    async def token(self, *, force: bool = False) -> str:
        creds = self._current
        expires = _parse_instant(creds.get("access_token_expires_at"))
        now = self.provider.clock.now()
        if not force and creds.get("access_token") and expires and expires - now > _TOKEN_SLACK:
            return str(creds["access_token"])
        try:
            grant = await refresh_access_token(
                self.transport, self.provider.token_url,
                client_id=creds["oauth_client_id"], client_secret=creds["oauth_client_secret"],
                refresh_token=creds["oauth_refresh_token"], now=now, deadline=self.deadline,
                scope=self.provider.scope,
            )
        except OAuthError as exc:
            if exc.permanent:
                raise CalendarDisconnected(exc.reason) from None
            raise CalendarUnavailable(exc.reason) from None
        creds = {
            **creds,
            "access_token": grant.access_token,
            "access_token_expires_at": grant.expires_at.astimezone(UTC)
            .isoformat(timespec="seconds").replace("+00:00", "Z"),
            "oauth_refresh_token": grant.refresh_token or creds["oauth_refresh_token"],
        }
        self._current = self.credentials = creds
        return grant.access_token

    async def get(self, url: str, headers: dict[str, str] | None = None) -> HttpResponse:
        """GET ``url`` with the bearer token; a 401 refreshes the token once and retries. The
        answer is returned whatever its status (a 401 here survived a fresh token)."""
        response: HttpResponse | None = None
        for attempt in range(2):
            token = await self.token(force=attempt > 0)
            request = HttpRequest(
                "GET", url,
                {**(headers or {}), "authorization": f"Bearer {token}",
                 "accept": "application/json"},
            )
            response = await self.transport.send(
                request, timeout=self.deadline - time.monotonic(),
                max_bytes=self.provider.max_bytes,
            )
            if response.status != 401:
                break
        assert response is not None
        return response


_TOKEN_SLACK = timedelta(seconds=60)


def _parse_instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# -- helpers shared by the providers ------------------------------------------------------------


def overlaps(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> bool:
    """Whether ``[start, end)`` meets ``[window_start, window_end)``; an instant (``end <=
    start``) meets it when it lies inside."""
    if end <= start:
        return window_start <= start < window_end
    return start < window_end and end > window_start


def fingerprint(occurrences: Iterable[Any]) -> str:
    """A digest of every field of every occurrence (order-independent): equal digests mean the
    engine would see no difference."""
    rows = sorted(json.dumps(_plain(o), sort_keys=True, default=str) for o in occurrences)
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _json_size(state: dict[str, Any]) -> int:
    return len(json.dumps(state, separators=(",", ":")))

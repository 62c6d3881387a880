"""How calendar providers speak HTTP: one small port, an aiohttp adapter, and a function adapter
for tests — plus the two HTTP policies every provider shares (redirects, OAuth 2 refresh).

Why a port of our own rather than handing providers an ``aiohttp.ClientSession``:

- Google Calendar and Microsoft Graph cannot be reached from a test machine. Their providers are
  tested by answering each :class:`HttpRequest` with a recorded, documented response through
  :class:`FunctionTransport` — the same code path as production, minus the socket.
- The limits calendars need are enforced in one place for every provider: a response body is
  read at most ``max_bytes`` (decompressed, so a gzip bomb stops there too), redirects are
  followed by hand (:func:`send_following`) so that only http/https targets are taken, at most
  ``max_redirects`` of them, and credentials never travel to another origin.
- Third-party exceptions are translated once, here (:class:`TransportError`), as the webhook
  transport does.

Errors (providers turn them into ``CalendarUnavailable`` / ``CalendarDisconnected``)::

    TransportError      no HTTP answer: refused, reset, DNS, TLS, timeout  (transient)
    ResponseTooLarge    the body exceeds the configured cap                 (permanent)
    RedirectRefused     too many redirects, or one to a non-http(s) URL      (permanent)
    BlockedDestination  ``public_only`` and the host is (or resolves only to) a private,
                        loopback or link-local address                      (permanent)
    OAuthError          the token endpoint refused; ``permanent`` says whether retrying can help
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
import aiohttp.abc

from summon.domain.webhooks import is_blocked_address

__all__ = [
    "AiohttpTransport",
    "BlockedDestination",
    "FunctionTransport",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "OAuthError",
    "RedirectRefused",
    "ResponseTooLarge",
    "TokenGrant",
    "TransportError",
    "origin",
    "refresh_access_token",
    "send_following",
]

USER_AGENT = "Summon-Calendars/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An answer. ``headers`` has lower-cased names (repeated headers joined with ``", "``);
    ``url`` is the URL that answered (after redirects, when :func:`send_following` was used)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` if it is not."""
        return json.loads(self.body)


class TransportError(Exception):
    """The request got no HTTP answer (connection refused or reset, DNS, TLS, timeout)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ResponseTooLarge(Exception):
    """The response body is larger than ``limit`` bytes; reading stopped there."""

    def __init__(self, url: str, limit: int) -> None:
        self.url, self.limit = url, limit
        self.reason = f"response larger than {limit} bytes"
        super().__init__(f"{url}: {self.reason}")


class RedirectRefused(Exception):
    """A redirect we will not follow: too many of them, or to a URL that is not http(s)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BlockedDestination(Exception):
    """``public_only``: the URL's host is, or resolves only to, an address that is not public
    (private, loopback, link-local, …: :func:`summon.domain.webhooks.is_blocked_address`)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.reason = f"{host} is a private, loopback or link-local address: not allowed"
        super().__init__(self.reason)


class _BlockedAddress(OSError):
    """Raised inside aiohttp's connector by :class:`_PublicOnlyResolver`."""


class _PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves like the default resolver, then keeps only public addresses. The connection is
    made to exactly the addresses checked here, so a DNS answer that changes between a check
    and the connection (DNS rebinding) cannot point a request inside."""

    def __init__(self) -> None:
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [r for r in results if not is_blocked_address(r["host"])]
        if not allowed:
            raise _BlockedAddress(host)
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


class HttpTransport(Protocol):
    """Sends one request and returns the answer as it is (redirects are answers too)."""

    async def send(self, request: HttpRequest, *, timeout: float, max_bytes: int) -> HttpResponse:
        """The answer to ``request`` within ``timeout`` seconds; raises :class:`TransportError`
        without an answer and :class:`ResponseTooLarge` for a body over ``max_bytes``."""
        ...


class AiohttpTransport:
    """Production transport: one aiohttp session, opened on first use inside the running loop.

    ``public_only`` refuses private, loopback and link-local destinations (calendar URLs are
    user input): IP literals are checked before connecting, names by a DNS-rebinding-safe
    resolver (:class:`BlockedDestination`). Close it with :meth:`close` (or ``async with``).
    """

    def __init__(self, *, public_only: bool = False, limit: int = 64) -> None:
        self._public_only = public_only
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = _PublicOnlyResolver() if self._public_only else None
            connector = aiohttp.TCPConnector(
                limit=self._limit, resolver=resolver, use_dns_cache=not self._public_only
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"user-agent": USER_AGENT}
            )
        return self._session

    async def send(self, request: HttpRequest, *, timeout: float, max_bytes: int) -> HttpResponse:
        if timeout <= 0:
            raise TransportError("time limit reached")
        if self._public_only:
            _refuse_blocked_literal(request.url)
        try:
            async with self._client().request(
                request.method, request.url, headers=dict(request.headers), data=request.body,
                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise ResponseTooLarge(request.url, max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ResponseTooLarge(request.url, max_bytes)
                    chunks.append(chunk)
                headers: dict[str, str] = {}
                for name, value in response.headers.items():
                    key = name.lower()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                return HttpResponse(response.status, headers, b"".join(chunks), request.url)
        except TimeoutError:
            raise TransportError(f"no answer within {timeout:.1f} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _BlockedAddress):
                raise BlockedDestination(exc.host) from None
            where = f"{exc.host}:{exc.port}"
            raise TransportError(f"cannot connect to {where}: {exc.os_error}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _refuse_blocked_literal(url: str) -> None:
    """An IP-literal host is connected to without resolving: check it here."""
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if is_blocked_address(host):
        raise BlockedDestination(host)


Handler = Callable[[HttpRequest], "Awaitable[HttpResponse] | HttpResponse"]


class FunctionTransport:
    """Answers every request with ``handler(request)`` (plain or async) — for tests that replay
    a service's documented responses. Enforces ``max_bytes`` like the real transport; a handler
    may raise :class:`TransportError` to simulate a network failure. ``requests`` records every
    request sent, in order."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest, *, timeout: float, max_bytes: int) -> HttpResponse:
        self.requests.append(request)
        answer = self._handler(request)
        response = await answer if inspect.isawaitable(answer) else answer
        assert isinstance(response, HttpResponse)
        if len(response.body) > max_bytes:
            raise ResponseTooLarge(request.url, max_bytes)
        headers = {k.lower(): v for k, v in response.headers.items()}
        return HttpResponse(response.status, headers, response.body, response.url or request.url)

    async def close(self) -> None:
        pass


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with default ports filled in: what "same origin" compares."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


async def send_following(
    transport: HttpTransport,
    request: HttpRequest,
    *,
    deadline: float,
    max_bytes: int,
    max_redirects: int = 5,
) -> HttpResponse:
    """Send ``request``, following at most ``max_redirects`` redirects to http/https URLs.

    ``deadline`` is a :func:`time.monotonic` instant shared by the whole exchange. 303 (and 301/
    302 after a POST) continue as GET without a body; other redirects repeat the method and
    body, as browsers and CalDAV clients do. ``Authorization`` is dropped when a redirect leaves
    the origin. The returned response's ``url`` is the one that finally answered.
    Raises :class:`RedirectRefused`, :class:`TransportError`, :class:`ResponseTooLarge`.
    """
    current = request
    for hop in range(max_redirects + 1):
        response = await transport.send(
            current, timeout=deadline - time.monotonic(), max_bytes=max_bytes
        )
        location = response.header("location")
        if response.status not in REDIRECT_STATUSES or not location:
            return HttpResponse(response.status, response.headers, response.body, current.url)
        if hop == max_redirects:
            raise RedirectRefused(f"more than {max_redirects} redirects")
        target = urljoin(current.url, location.strip())
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise RedirectRefused(f"redirect to a non-http(s) URL: {target[:200]}")
        method, body = current.method, current.body
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = "GET", None
        headers = dict(current.headers)
        if origin(target) != origin(current.url):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        current = HttpRequest(method, target, headers, body)
    raise AssertionError("unreachable")


# -- OAuth 2 refresh (Google, Microsoft) --------------------------------------------------------
# The refresh-token grant of RFC 6749 §6, which both token endpoints implement the same way.
#: Token-endpoint error codes after which retrying cannot help: the user must reconnect.
PERMANENT_OAUTH_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_request",
     "unsupported_grant_type", "invalid_scope", "interaction_required", "consent_required"}
)


class OAuthError(Exception):
    """The token endpoint did not give an access token. ``permanent``: the grant or the client
    was refused (revoked or expired refresh token, wrong client secret) — reconnecting is the
    only cure; otherwise the endpoint failed and a later try may work."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        self.reason, self.permanent = reason, permanent
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_at: datetime
    refresh_token: str | None  # a rotated refresh token, when the endpoint issued one


async def refresh_access_token(
    transport: HttpTransport,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    now: datetime,
    deadline: float,
    scope: str | None = None,
) -> TokenGrant:
    """Exchange ``refresh_token`` for an access token (``grant_type=refresh_token``, client
    credentials in the form body). Raises :class:`OAuthError` (an HTTP 4xx with an RFC 6749
    ``error`` code in :data:`PERMANENT_OAUTH_ERRORS` is permanent; 5xx, 429 and unparseable
    answers are not) or :class:`TransportError`."""
    form = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    if scope:
        form["scope"] = scope
    request = HttpRequest(
        "POST", token_url,
        {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
        urlencode(form).encode(),
    )
    try:
        response = await transport.send(
            request, timeout=deadline - time.monotonic(), max_bytes=1 << 20
        )
    except ResponseTooLarge:
        raise OAuthError("token endpoint: oversized answer", permanent=False) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    if response.status != 200:
        code = payload.get("error")
        code = code if isinstance(code, str) else ""
        description = payload.get("error_description")
        reason = f"token endpoint: HTTP {response.status}" + (f" {code}" if code else "")
        if isinstance(description, str) and description:
            reason += f": {description.splitlines()[0][:200]}"
        permanent = 400 <= response.status < 500 and (
            code in PERMANENT_OAUTH_ERRORS or (not code and response.status in (400, 401))
        )
        raise OAuthError(reason, permanent=permanent)
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError("token endpoint answered without an access_token", permanent=False)
    expires_in = payload.get("expires_in", 3600)
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        seconds = 3600.0
    rotated = payload.get("refresh_token")
    return TokenGrant(
        access_token=token,
        expires_at=(now + timedelta(seconds=max(0.0, seconds))).astimezone(UTC),
        refresh_token=rotated if isinstance(rotated, str) and rotated else None,
    )

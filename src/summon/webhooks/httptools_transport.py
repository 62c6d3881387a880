"""The production webhook transport: HTTP/1.1 POSTs on asyncio, answers parsed by httptools.

A webhook delivery is one small POST whose answer matters only for its status code (and the
first bytes of its body, for the ledger). A general-purpose client spends more CPU per request
than signing, sending and recording a delivery together; this one does only what a delivery
needs:

- keep-alive connections pooled per (scheme, host, port), at most ``idle_per_host`` idle ones;
  a pooled connection that turns out closed before any answer byte is replaced once, at once;
- TLS with certificate and host-name verification (the default SSL context) for ``https``;
- bodies of any framing (length, chunked, until close) decoded by httptools' C parser (llhttp);
  only the first ``ANSWER_KEPT`` bytes are kept, and an answer longer than ``ANSWER_LIMIT``
  closes the connection instead of being read;
- no redirects (a 3xx is an answer), no cookies, no proxies;
- with ``public_only`` (SUMMON_WEBHOOK_BLOCK_PRIVATE) names are resolved here and the connection
  is made only to addresses that passed :func:`summon.domain.webhooks.is_blocked_address`, so a
  DNS answer that changes between check and connect (rebinding) cannot point a delivery inside.

Every failure to get a complete answer becomes :class:`DeliveryError` with a reason for the
ledger.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import httptools

from summon.domain.webhooks import is_blocked_address
from summon.webhooks.transport import DeliveryError

#: The start of an answer that is kept for the ledger.
ANSWER_KEPT = 4096
#: An answer longer than this is not read to its end: the connection is closed instead.
ANSWER_LIMIT = 1 << 20
USER_AGENT = "Summon-Webhooks/1"

_Key = tuple[str, str, int]


class _Stale(Exception):
    """A pooled connection was found closed before the answer began."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._status = 0
        self._answer = bytearray()
        self._seen = 0
        self._started = False
        self._headers_done = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes nobody asked for: the connection is not reusable
            self.close()
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(DeliveryError("the endpoint answered with a protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(DeliveryError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._headers_done:  # an answer delimited by the end of the connection
                self._finish(keep_alive=False)
            elif not self._started:
                self._waiter.set_exception(_Stale())
            else:
                self._waiter.set_exception(DeliveryError("the connection closed mid-answer"))

    # -- httptools callbacks -------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._seen += len(body)
        room = ANSWER_KEPT - len(self._answer)
        if room > 0:
            self._answer += body[:room]
        if self._seen > ANSWER_LIMIT:
            self._finish(keep_alive=False)
            self.close()

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self._finish(keep_alive=self._parser.should_keep_alive())

    # -- use -------------------------------------------------------------------------------------
    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise _Stale()
        self._parser = httptools.HttpResponseParser(self)
        self._status, self._answer, self._seen = 0, bytearray(), 0
        self._started = self._headers_done = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive and not self.closed
        self._parser = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._status, bytes(self._answer)))

    def _fail(self, error: DeliveryError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)
        self.close()


class HttptoolsTransport:
    """See the module docstring. Implements :class:`summon.webhooks.transport.WebhookTransport`."""

    def __init__(self, *, public_only: bool = False, idle_per_host: int = 64,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.public_only = public_only
        self.idle_per_host = idle_per_host
        self._ssl = ssl_context
        self._idle: dict[_Key, list[_Connection]] = {}
        self._all: set[_Connection] = set()

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        key, request = _request(url, headers, body)
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    connection, reused = self._take(key)
                    if connection is None:
                        connection, reused = await self._connect(key), False
                    try:
                        status, answer = await connection.request(request)
                    except _Stale:
                        self._drop(connection)
                        if reused:
                            continue  # the server closed an idle connection: take a fresh one
                        raise DeliveryError("the connection closed before an answer") from None
                    break
        except TimeoutError:
            if connection is not None:
                self._drop(connection)
            raise DeliveryError(f"no answer within {timeout:.0f} s") from None
        except DeliveryError:
            if connection is not None:
                self._drop(connection)
            raise
        except (OSError, ssl.SSLError) as exc:
            if connection is not None:
                self._drop(connection)
            raise DeliveryError(f"cannot connect to {key[1]}:{key[2]}: {exc}") from None
        if connection.keep_alive and not connection.closed:
            self._give_back(connection)
        else:
            self._drop(connection)
        return status, answer

    async def close(self) -> None:
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()

    # -- the pool ------------------------------------------------------------------------------
    def _take(self, key: _Key) -> tuple[_Connection | None, bool]:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
            self._all.discard(connection)
        return None, False

    def _give_back(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self.idle_per_host:
            self._drop(connection)
        else:
            idle.append(connection)

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._all.discard(connection)

    async def _connect(self, key: _Key) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        connection = _Connection(key)
        if not self.public_only:
            await loop.create_connection(lambda: connection, host, port, ssl=tls,
                                         server_hostname=host if tls else None)
        else:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            allowed = [info for info in infos if not is_blocked_address(info[4][0])]
            if not allowed:
                raise DeliveryError(f"destination {host} resolves to a blocked address ({infos[0][4][0]})"
                                    if infos else f"cannot resolve {host}")
            error: OSError | None = None
            for family, kind, proto, _, address in allowed:
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                await loop.create_connection(lambda: connection, sock=sock, ssl=tls,
                                             server_hostname=host if tls else None)
                break
            else:
                assert error is not None
                raise error
        self._all.add(connection)
        return connection


def _request(url: str, headers: Mapping[str, str], body: bytes) -> tuple[_Key, bytes]:
    """The pool key and the bytes of one POST to ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DeliveryError(f"unsupported URL scheme {parts.scheme!r}")
    host = parts.hostname
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise DeliveryError("invalid port in URL") from None
    if not host:
        raise DeliveryError("no host in URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{port}"
    # Each header once: what the caller gives wins over our defaults (a repeated Content-Type
    # is refused by strict servers), and framing headers are ours alone.
    given = {name.lower(): (name, value) for name, value in headers.items()}
    for framing in ("host", "content-length", "transfer-encoding", "connection"):
        given.pop(framing, None)
    lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}", f"Content-Length: {len(body)}"]
    defaults = {"user-agent": USER_AGENT, "content-type": "application/json"}
    lines.extend(f"{name.title()}: {value}" for name, value in defaults.items() if name not in given)
    if parts.username is not None and "authorization" not in given:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Authorization: Basic " + base64.b64encode(credentials).decode("ascii"))
    lines.extend(f"{name}: {value}" for name, value in given.values())
    head = "\r\n".join(lines)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in head.replace("\r\n", "")) or " " in target:
        raise DeliveryError("the URL or a header holds characters HTTP does not allow")
    try:
        encoded = head.encode("latin-1", "strict")
    except UnicodeEncodeError:
        raise DeliveryError("the URL or a header holds characters HTTP does not allow") from None
    return (scheme, host, port), encoded + b"\r\n\r\n" + body

"""How a delivery leaves the building: one POST. A port so tests can answer with a plain
function and production can use a real HTTP client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import socket
from typing import Any

import aiohttp
import aiohttp.abc
import httpx

from summon.domain.webhooks import is_blocked_address


class DeliveryError(Exception):
    """The request did not get an HTTP answer (connection refused, timeout, TLS, DNS…)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class WebhookTransport(Protocol):
    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        """POST ``body``; the status code and (the start of) the answer, or DeliveryError."""
        ...

    async def close(self) -> None: ...


class HttpxTransport:
    """Production transport: one pooled httpx client; its errors translated once, here."""

    def __init__(self, max_connections: int = 200) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,  # a redirect is an answer (3xx), not a place to post to
            headers={"user-agent": "Summon-Webhooks/1"},
        )

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        try:
            response = await self._client.post(url, headers=dict(headers), content=body, timeout=timeout)
        except httpx.TimeoutException:
            raise DeliveryError(f"no answer within {timeout:.0f} s") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        return response.status_code, response.content[:4096]

    async def close(self) -> None:
        await self._client.aclose()


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves like the default resolver, then keeps only addresses that may be reached. The
    connection is made to exactly the addresses checked here, so a DNS answer that changes
    between a check and the connect (DNS rebinding) cannot point a delivery inside."""

    def __init__(self) -> None:
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [r for r in results if not is_blocked_address(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to blocked addresses")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


class AiohttpTransport:
    """Production transport: aiohttp, with a connection pool per destination host and its C
    HTTP parser (a general-purpose Python client spends more CPU per request than the whole
    rest of a delivery). Its errors are translated once, here. With ``public_only``, names are
    resolved by :class:`PublicOnlyResolver` (SUMMON_WEBHOOK_BLOCK_PRIVATE)."""

    def __init__(self, max_connections: int = 512, per_host: int = 64, *, public_only: bool = False) -> None:
        self._limits = (max_connections, per_host)
        self._public_only = public_only
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the running loop, on first use
            resolver = PublicOnlyResolver() if self._public_only else None
            connector = aiohttp.TCPConnector(
                limit=self._limits[0], limit_per_host=self._limits[1],
                # No DNS cache when checking: every connection is made to freshly checked addresses.
                ttl_dns_cache=60, use_dns_cache=not self._public_only,
                resolver=resolver,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"user-agent": "Summon-Webhooks/1"}, auto_decompress=False
            )
        return self._session

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        try:
            async with self._client().post(
                url, data=body, headers=dict(headers), allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return response.status, await response.content.read(4096)
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout:.0f} s") from None
        except aiohttp.ClientConnectorError as exc:
            # The underlying error says why (refused, unreachable, or a blocked address).
            raise DeliveryError(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class FunctionTransport:
    """A transport that calls ``handler(url, headers, body)`` — for tests."""

    def __init__(self, handler: Callable[[str, Mapping[str, str], bytes], Awaitable[tuple[int, bytes]]]) -> None:
        self._handler = handler

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        return await self._handler(url, headers, body)

    async def close(self) -> None:
        pass

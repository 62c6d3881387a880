"""How a delivery leaves the building: one POST. A port so tests can answer with a plain
function; production uses :class:`summon.webhooks.httptools_transport.HttptoolsTransport`.
Also the destination checks of SUMMON_WEBHOOK_BLOCK_PRIVATE that other HTTP clients share."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

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


class FunctionTransport:
    """A transport that calls ``handler(url, headers, body)`` — for tests."""

    def __init__(self, handler: Callable[[str, Mapping[str, str], bytes], Awaitable[tuple[int, bytes]]]) -> None:
        self._handler = handler

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
        return await self._handler(url, headers, body)

    async def close(self) -> None:
        pass


async def refuse_private(url: str) -> None:
    """SUMMON_WEBHOOK_BLOCK_PRIVATE: refuse destinations that resolve to private, loopback or
    link-local addresses, checked at send time (not when the endpoint was saved). The
    production transport also resolves through ``PublicOnlyResolver`` and connects only to the
    addresses it checked, which closes the window between this check and the connection."""
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DeliveryError(f"cannot resolve {host}: {exc}") from None
        addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if is_blocked_address(a)]
    if blocked:
        raise DeliveryError(f"destination {host} resolves to a blocked address ({blocked[0]})")

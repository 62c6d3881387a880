"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation.

General-purpose Python clients spend more CPU per request than the server under test does, and
on a 2-core machine the client shares the CPU with the service; this one does only what the
benchmarks need (JSON in, status and body out, Content-Length framing).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson


class Connection:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._base_headers = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{self.host}:{self.port}", **headers}.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        await self._connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._close()

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except ConnectionError:
                pass
            self._writer = None

    async def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        """Send one request and read its answer. The server closes a connection that stayed idle
        past its keep-alive timeout (uvicorn's is 5 s); the request is then sent again on a new
        connection: the server closed it without reading the request, so nothing ran twice."""
        payload = b"" if body is None else orjson.dumps(body)
        head = f"{method} {path} HTTP/1.1\r\n{self._base_headers}Content-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        message = head.encode() + b"\r\n" + payload
        for attempt in (1, 2):
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(message)
                status_line = await self._reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line or attempt == 2:
                break
            await self._close()
            await self._connect()
        if not status_line:
            raise ConnectionError(f"{method} {path}: the server closed the connection without answering")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

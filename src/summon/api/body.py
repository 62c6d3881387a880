"""Request bodies: a hard size limit and JSON as clients really send it.

The Recall docs' own example request ends its object with a trailing comma; clients copy it
verbatim. Strict JSON is tried first; only when that fails, trailing commas before ``}`` or ``]``
(outside strings) are dropped and the text is parsed again. Anything else malformed is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.exceptions import HTTPException
from fastapi.routing import APIRoute

MAX_BODY_BYTES = 1024 * 1024


class PayloadTooLarge(HTTPException):
    """An HTTP exception on purpose: FastAPI turns any other error while reading a body into a
    plain 400."""

    def __init__(self, limit: int = MAX_BODY_BYTES) -> None:
        self.limit = limit
        super().__init__(413, f"Request body is larger than {limit} bytes.")


def drop_trailing_commas(text: bytes) -> bytes:
    """Remove commas that are followed (after white space) by ``}`` or ``]``, outside strings."""
    out = bytearray()
    in_string = escaped = False
    pending_comma: int | None = None  # index in ``out`` of a comma that may be trailing
    after_value = False  # the last significant byte ended a value (so a comma may follow)
    for byte in text:
        if in_string:
            out.append(byte)
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
            continue
        if byte in b" \t\r\n":
            out.append(byte)
            continue
        if byte in b"}]" and pending_comma is not None:
            del out[pending_comma]
        pending_comma = None
        if byte == 0x22:
            in_string = True
        elif byte == 0x2C and after_value:
            pending_comma = len(out)
        after_value = byte not in b"{[,:"
        out.append(byte)
    return bytes(out)


def relax_json(raw: bytes) -> bytes:
    """``raw`` if it is valid JSON (or not JSON at all); else the trailing-comma-free form if
    that one parses. The parser proper reports errors later."""
    if not raw:
        return raw
    try:
        orjson.loads(raw)
        return raw
    except orjson.JSONDecodeError:
        pass
    relaxed = drop_trailing_commas(raw)
    try:
        orjson.loads(relaxed)
    except orjson.JSONDecodeError:
        return raw
    return relaxed


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class SummonRequest(Request):
    """A request whose body is size-limited and, when JSON, relaxed as described above."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            raw = await read_capped(self)
            media = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            self._body = relax_json(raw) if media in ("", "application/json") or media.endswith("+json") else raw
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class SummonRoute(APIRoute):
    """Routes whose handlers see a :class:`SummonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def summon_handler(request: Request) -> Response:
            return await handler(SummonRequest(request.scope, request.receive))

        return summon_handler

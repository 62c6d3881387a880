"""Cursor pagination of the list routes: opaque cursors and the absolute ``next`` link.

A cursor is URL-safe base64 of where the page ended: ``p:<time>|<id>`` for lists ordered by a
timestamp and an id (keyset pagination), ``s:<seq>`` for lists ordered by a sequence number.
Clients pass it back as it is; anything else is a 400 ``{"cursor": ["Invalid cursor."]}``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode
from uuid import UUID

from fastapi import Request

from summon.api.errors import RequestInvalid
from summon.api.plumbing import base_url
from summon.clock import isoformat_z

__all__ = ["decode_position", "decode_seq", "encode_position", "encode_seq", "next_page"]

T = TypeVar("T")


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, prefix: str) -> str:
    """The cursor's text after ``prefix``; ValueError if it is not such a cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if not text.startswith(prefix):
        raise ValueError(cursor)
    return text[len(prefix):]


def _invalid() -> RequestInvalid:
    return RequestInvalid({"cursor": ["Invalid cursor."]})


def encode_position(when: datetime, ident: UUID) -> str:
    return _encode(f"p:{isoformat_z(when)}|{ident}")


def decode_position(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The ``(time, id)`` a page ended at; None without a cursor."""
    if cursor is None:
        return None
    try:
        when, _, ident = _decode(cursor, "p:").partition("|")
        at = datetime.fromisoformat(when.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError(when)
        return at, UUID(ident)
    except ValueError:
        raise _invalid() from None


def encode_seq(seq: int) -> str:
    return _encode(f"s:{seq}")


def decode_seq(cursor: str | None) -> int | None:
    """The sequence number a page ended at; None without a cursor."""
    if cursor is None:
        return None
    try:
        return int(_decode(cursor, "s:"))
    except ValueError:
        raise _invalid() from None


def next_page(
    request: Request, found: list[T], page_size: int, cursor_of: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """``found`` holds up to ``page_size + 1`` items: the page, and the absolute URL of the next
    one (this request's query with the cursor of the page's last item) if there is more."""
    page = found[:page_size]
    if len(found) <= page_size:
        return page, None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor_of(page[-1])))
    return page, base_url(request) + request.url.path + "?" + urlencode(params)

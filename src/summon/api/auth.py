"""``Authorization: Token <key>`` (or the bare key) → the caller's workspace.

Verified keys are cached for ``SUMMON_AUTH_CACHE_S`` seconds so the hot path costs no database
round trip; revocation therefore takes effect within that time on every node (at once on the
node that revoked, which drops its cache).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Request

from summon.api.errors import Unauthorized
from summon.domain.workspaces import hash_api_key
from summon.services import keys
from summon.services.context import Context

MAX_KEY_LENGTH = 200


def extract_key(header: str | None) -> str | None:
    if not header:
        return None
    parts = header.strip().split()
    if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
        key = parts[1]
    elif len(parts) == 1:
        key = parts[0]
    else:
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        return None
    return key


class Authenticator:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._cache: dict[str, tuple[UUID, float]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def workspace_of(self, request: Request) -> UUID:
        key = extract_key(request.headers.get("authorization"))
        if key is None:
            raise Unauthorized()
        digest = hash_api_key(key)
        now = self._ctx.clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await keys.authenticate(self._ctx, key)
        if found is None:
            self._cache.pop(digest, None)
            raise Unauthorized()
        if len(self._cache) > 10_000:  # bound memory against key-spraying clients
            self._cache.clear()
        self._cache[digest] = (found.workspace_id, now + self._ctx.settings.auth_cache_s)
        return found.workspace_id

"""``Idempotency-Key``: the same key (per workspace and path) within 24 h returns the original
response; while the first request still runs, the same key gets 409."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from summon.domain.errors import IdempotencyConflict, IdempotencyMismatch
from summon.services.context import Context

RETENTION = timedelta(hours=24)
#: A claim still "running" after this long belongs to a request that died with its process.
ABANDONED_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: bytes


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def begin(ctx: Context, workspace_id: UUID, scope: str, key: str, body: bytes) -> Replay | None:
    """Claim the key (None: go ahead and run the request) or return what to replay.

    Raises :class:`IdempotencyConflict` while the first request runs and
    :class:`IdempotencyMismatch` when the key is reused with another body.
    """
    now = ctx.clock.now()
    record = await ctx.store.idempotency_begin(
        workspace_id, scope, key, fingerprint(body), now, now - RETENTION, now - ABANDONED_AFTER
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint(body):
        raise IdempotencyMismatch("This Idempotency-Key was already used with a different request body.")
    if record.status_code is None or record.response is None:
        raise IdempotencyConflict("A request with this Idempotency-Key is still in progress; retry later.", retry_after=1)
    return Replay(record.status_code, record.response)


async def finish(ctx: Context, workspace_id: UUID, scope: str, key: str, status_code: int, body: bytes) -> None:
    await ctx.store.idempotency_finish(workspace_id, scope, key, status_code, body)


async def abort(ctx: Context, workspace_id: UUID, scope: str, key: str) -> None:
    await ctx.store.idempotency_abort(workspace_id, scope, key)

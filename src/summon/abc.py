"""Every port of Summon in one file. Adapters live in modules named after their technology.

Contracts are stated here; ``tests/contract`` runs the same suite against every adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from summon.domain.bots import Bot, BotFilter
from summon.domain.events import OutboxMessage
from summon.domain.lifecycle import StatusChange
from summon.domain.workspaces import ApiKey, Workspace


class Clock(Protocol):
    """Wall-clock and monotonic time; ``sleep`` respects the clock (a fake clock's too)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The remembered outcome of a request made with an ``Idempotency-Key``.

    ``status_code`` is None while the first request is still running.
    """

    fingerprint: str
    status_code: int | None
    response: bytes | None
    created_at: datetime


class Store(ABC):
    """Persistence. Each public operation is one transaction: it all happens or none of it does.

    Bots are fenced by ``version``: an operation that changes a bot names the version it read
    (``expected_version``); if the stored version differs it raises
    :class:`summon.domain.errors.StaleVersion` and changes nothing. On success the stored version
    becomes ``bot.version`` (which the caller set to ``expected_version + 1``).
    """

    @abstractmethod
    async def start(self) -> None:
        """Open connections. The schema must already be migrated."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    # -- workspaces and keys -------------------------------------------------------------
    @abstractmethod
    async def ensure_workspace(self, workspace: Workspace) -> tuple[Workspace, bool]:
        """Return the workspace named ``workspace.name``, inserting ``workspace`` if there is
        none; the flag says whether it was created."""

    @abstractmethod
    async def workspace_by_name(self, name: str) -> Workspace | None: ...

    @abstractmethod
    async def count_workspaces(self) -> int: ...

    @abstractmethod
    async def add_api_key(self, key: ApiKey) -> None: ...

    @abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not."""

    @abstractmethod
    async def list_api_keys(self, workspace_id: UUID | None = None) -> list[ApiKey]:
        """Keys (with ``workspace_name`` filled), oldest first."""

    @abstractmethod
    async def revoke_api_key(self, key_id: UUID, when: datetime) -> bool:
        """Mark the key revoked; False if there is no such key or it was already revoked."""

    # -- bots --------------------------------------------------------------------------------
    @abstractmethod
    async def insert_bot(self, bot: Bot, messages: Sequence[OutboxMessage]) -> None:
        """Insert a new bot, its ``status_changes`` (the history so far) and the messages."""

    @abstractmethod
    async def get_bot(self, workspace_id: UUID | None, bot_id: UUID) -> Bot | None:
        """The bot with its full history, or None. ``workspace_id`` None means any workspace
        (internal callers only); otherwise a bot of another workspace is None too."""

    @abstractmethod
    async def list_bots(
        self, workspace_id: UUID, flt: BotFilter, offset: int, limit: int
    ) -> tuple[int, list[Bot]]:
        """Total matching count and one page, newest first, each with its history."""

    @abstractmethod
    async def save_bot(
        self,
        bot: Bot,
        expected_version: int,
        change: StatusChange | None = None,
        messages: Sequence[OutboxMessage] = (),
    ) -> None:
        """Write every mutable field of ``bot``, append ``change`` to its history if given, and
        queue ``messages`` — fenced by ``expected_version``."""

    @abstractmethod
    async def delete_bot(
        self, bot: Bot, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        """Delete the bot and its history for good and queue ``messages`` — fenced."""

    # -- outbox ---------------------------------------------------------------------------------
    @abstractmethod
    async def pending_messages(self, limit: int) -> list[OutboxMessage]:
        """Undispatched outbox messages, oldest first."""

    # -- idempotency --------------------------------------------------------------------------
    @abstractmethod
    async def idempotency_begin(
        self,
        workspace_id: UUID,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        expire_before: datetime,
        abandon_before: datetime,
    ) -> IdempotencyRecord | None:
        """Claim ``key`` for a new request and return None — or return the existing record.

        A record created before ``expire_before`` is forgotten (the key is claimed anew); a
        running record created before ``abandon_before`` is taken to belong to a request that
        died, and is claimed anew too.
        """

    @abstractmethod
    async def idempotency_finish(
        self, workspace_id: UUID, scope: str, key: str, status_code: int, response: bytes
    ) -> None: ...

    @abstractmethod
    async def idempotency_abort(self, workspace_id: UUID, scope: str, key: str) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""

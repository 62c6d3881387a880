"""The store on SQLAlchemy 2 (async): SQLite (aiosqlite) by default, PostgreSQL (asyncpg).

Dialect differences stay in this module:

- SQLite has one writer at a time. Writes go through a dedicated one-connection engine whose
  transactions start with ``BEGIN IMMEDIATE``, so a write never has to upgrade a read lock
  (which is what makes SQLite answer "database is locked"); reads use a small pool of their own
  and, with WAL, never wait for the writer. Another process writing to the same file (the CLI
  while ``serve`` runs) waits on ``busy_timeout``.
- PostgreSQL uses one pooled engine for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from summon.abc import IdempotencyRecord, Store
from summon.domain.bots import Bot, BotFilter
from summon.domain.errors import StaleVersion
from summon.domain.events import OutboxMessage
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.workspaces import ApiKey, Workspace
from summon.store.tables import (
    api_keys,
    bot_status_changes,
    bots,
    idempotency_keys,
    outbox,
    workspaces,
)

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable across process crashes; WAL keeps it consistent
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA cache_size=-16000",
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, writer: bool = False, pool_size: int = 5) -> AsyncEngine:
    """An engine for ``url``; on SQLite ``writer`` selects the single-connection write engine."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=False)
    engine = create_async_engine(
        url,
        pool_size=1 if writer else pool_size,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"check_same_thread": False},
    )
    begin_sql = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so we decide how BEGIN looks.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


class SqlAlchemyStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if is_sqlite(url) else "postgresql"
        self._writer: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None

    async def start(self) -> None:
        if self._writer is not None:
            return
        if self.dialect == "sqlite":
            self._writer = make_engine(self.url, writer=True)
            self._reader = make_engine(self.url, pool_size=4)
        else:
            self._writer = self._reader = make_engine(self.url, pool_size=10)

    async def close(self) -> None:
        engines = {id(e): e for e in (self._writer, self._reader) if e is not None}
        self._writer = self._reader = None
        for engine in engines.values():
            await engine.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        assert self._writer is not None, "store not started"
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        assert self._reader is not None, "store not started"
        async with self._reader.begin() as conn:
            yield conn

    # -- workspaces and keys -----------------------------------------------------------------
    async def ensure_workspace(self, workspace: Workspace) -> tuple[Workspace, bool]:
        async with self._write() as conn:
            row = (await conn.execute(sa.select(workspaces).where(workspaces.c.name == workspace.name))).first()
            if row is not None:
                return Workspace(row.id, row.name, row.created_at), False
            await conn.execute(
                workspaces.insert().values(id=workspace.id, name=workspace.name, created_at=workspace.created_at)
            )
            return workspace, True

    async def workspace_by_name(self, name: str) -> Workspace | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(workspaces).where(workspaces.c.name == name))).first()
        return None if row is None else Workspace(row.id, row.name, row.created_at)

    async def count_workspaces(self) -> int:
        async with self._read() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(workspaces))).scalar_one())

    async def add_api_key(self, key: ApiKey) -> None:
        async with self._write() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    workspace_id=key.workspace_id,
                    key_hash=key.key_hash,
                    prefix=key.prefix,
                    created_at=key.created_at,
                    revoked_at=key.revoked_at,
                )
            )

    _KEY_COLUMNS = (*api_keys.c, workspaces.c.name.label("workspace_name"))

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        query = (
            sa.select(*self._KEY_COLUMNS)
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .where(api_keys.c.key_hash == key_hash)
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _api_key(row)

    async def list_api_keys(self, workspace_id: UUID | None = None) -> list[ApiKey]:
        query = (
            sa.select(*self._KEY_COLUMNS)
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        if workspace_id is not None:
            query = query.where(api_keys.c.workspace_id == workspace_id)
        async with self._read() as conn:
            return [_api_key(row) for row in await conn.execute(query)]

    async def revoke_api_key(self, key_id: UUID, when: datetime) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=when)
            )
            return result.rowcount == 1

    # -- bots ------------------------------------------------------------------------------------
    async def insert_bot(self, bot: Bot, messages: Sequence[OutboxMessage]) -> None:
        async with self._write() as conn:
            await conn.execute(bots.insert().values(**_bot_row(bot), id=bot.id, workspace_id=bot.workspace_id,
                                                    created_at=bot.created_at))
            if bot.status_changes:
                await conn.execute(
                    bot_status_changes.insert(), [_change_row(bot.id, c) for c in bot.status_changes]
                )
            await _queue(conn, messages)

    async def get_bot(self, workspace_id: UUID | None, bot_id: UUID) -> Bot | None:
        query = sa.select(bots).where(bots.c.id == bot_id)
        if workspace_id is not None:
            query = query.where(bots.c.workspace_id == workspace_id)
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            history = await _histories(conn, [bot_id])
        return _bot(row, history.get(bot_id, []))

    async def list_bots(
        self, workspace_id: UUID, flt: BotFilter, offset: int, limit: int
    ) -> tuple[int, list[Bot]]:
        conditions = [bots.c.workspace_id == workspace_id, *_filter_conditions(flt)]
        count_query = sa.select(sa.func.count()).select_from(bots).where(*conditions)
        page_query = (
            sa.select(bots)
            .where(*conditions)
            .order_by(bots.c.created_at.desc(), bots.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self._read() as conn:
            total = int((await conn.execute(count_query)).scalar_one())
            rows = (await conn.execute(page_query)).all() if offset < total else []
            history = await _histories(conn, [r.id for r in rows])
        return total, [_bot(r, history.get(r.id, [])) for r in rows]

    async def save_bot(
        self,
        bot: Bot,
        expected_version: int,
        change: StatusChange | None = None,
        messages: Sequence[OutboxMessage] = (),
    ) -> None:
        async with self._write() as conn:
            result = await conn.execute(
                bots.update()
                .where(bots.c.id == bot.id, bots.c.version == expected_version)
                .values(**_bot_row(bot))
            )
            if result.rowcount != 1:
                raise StaleVersion(bot.id, expected_version)
            if change is not None:
                await conn.execute(bot_status_changes.insert().values(**_change_row(bot.id, change)))
            await _queue(conn, messages)

    async def delete_bot(
        self, bot: Bot, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        async with self._write() as conn:
            # History first: SQLite enforces the cascade only with foreign_keys=ON, and other
            # tools opening the file may not set it.
            exists = sa.select(bots.c.id).where(bots.c.id == bot.id, bots.c.version == expected_version)
            if (await conn.execute(exists)).first() is None:
                raise StaleVersion(bot.id, expected_version)
            await conn.execute(bot_status_changes.delete().where(bot_status_changes.c.bot_id == bot.id))
            await conn.execute(bots.delete().where(bots.c.id == bot.id))
            await _queue(conn, messages)

    # -- outbox ----------------------------------------------------------------------------------
    async def pending_messages(self, limit: int) -> list[OutboxMessage]:
        query = (
            sa.select(outbox)
            .where(outbox.c.dispatched_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            OutboxMessage(
                workspace_id=r.workspace_id,
                event_type=r.event_type,
                payload=r.payload,
                created_at=r.created_at,
                bot_id=r.bot_id,
                id=r.id,
            )
            for r in rows
        ]

    # -- idempotency -----------------------------------------------------------------------------
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
        where = (
            idempotency_keys.c.workspace_id == workspace_id,
            idempotency_keys.c.scope == scope,
            idempotency_keys.c.key == key,
        )
        async with self._write() as conn:
            row = (await conn.execute(sa.select(idempotency_keys).where(*where))).first()
            fresh = dict(fingerprint=fingerprint, status_code=None, response=None, created_at=now)
            if row is None:
                await conn.execute(
                    idempotency_keys.insert().values(workspace_id=workspace_id, scope=scope, key=key, **fresh)
                )
                return None
            expired = row.created_at < expire_before
            abandoned = row.status_code is None and row.created_at < abandon_before
            if expired or abandoned:
                await conn.execute(idempotency_keys.update().where(*where).values(**fresh))
                return None
            return IdempotencyRecord(row.fingerprint, row.status_code, row.response, row.created_at)

    async def idempotency_finish(
        self, workspace_id: UUID, scope: str, key: str, status_code: int, response: bytes
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                idempotency_keys.update()
                .where(
                    idempotency_keys.c.workspace_id == workspace_id,
                    idempotency_keys.c.scope == scope,
                    idempotency_keys.c.key == key,
                )
                .values(status_code=status_code, response=response)
            )

    async def idempotency_abort(self, workspace_id: UUID, scope: str, key: str) -> None:
        async with self._write() as conn:
            await conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.workspace_id == workspace_id,
                    idempotency_keys.c.scope == scope,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.status_code.is_(None),
                )
            )


# -- row mapping ---------------------------------------------------------------------------------
def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        workspace_id=row.workspace_id,
        key_hash=row.key_hash,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        workspace_name=row.workspace_name,
    )


def _bot_row(bot: Bot) -> dict[str, Any]:
    """The mutable columns of a bot."""
    return dict(
        platform=bot.platform,
        meeting_url=bot.meeting_url,
        meeting_url_raw=bot.meeting_url_raw,
        meeting_key=bot.meeting_key,
        bot_name=bot.bot_name,
        join_at=bot.join_at,
        scheduled=bot.scheduled,
        state=bot.state.value,
        version=bot.version,
        config=bot.config,
        metadata=bot.metadata,
        updated_at=bot.updated_at,
    )


def _change_row(bot_id: UUID, change: StatusChange) -> dict[str, Any]:
    return dict(
        bot_id=bot_id,
        code=change.code.value,
        sub_code=change.sub_code,
        message=change.message,
        created_at=change.created_at,
    )


def _bot(row: Any, history: list[StatusChange]) -> Bot:
    return Bot(
        id=row.id,
        workspace_id=row.workspace_id,
        meeting_url=row.meeting_url,
        meeting_url_raw=row.meeting_url_raw,
        meeting_key=row.meeting_key,
        platform=row.platform,
        bot_name=row.bot_name,
        join_at=row.join_at,
        scheduled=row.scheduled,
        state=Status(row.state),
        version=row.version,
        config=row.config,
        metadata=row.metadata,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_changes=history,
    )


async def _histories(conn: AsyncConnection, bot_ids: list[UUID]) -> dict[UUID, list[StatusChange]]:
    if not bot_ids:
        return {}
    query = (
        sa.select(bot_status_changes)
        .where(bot_status_changes.c.bot_id.in_(bot_ids))
        .order_by(bot_status_changes.c.bot_id, bot_status_changes.c.id)
    )
    out: dict[UUID, list[StatusChange]] = {}
    for r in await conn.execute(query):
        out.setdefault(r.bot_id, []).append(StatusChange(Status(r.code), r.sub_code, r.message, r.created_at))
    return out


async def _queue(conn: AsyncConnection, messages: Sequence[OutboxMessage]) -> None:
    if messages:
        await conn.execute(
            outbox.insert(),
            [
                dict(
                    id=m.id,
                    workspace_id=m.workspace_id,
                    bot_id=m.bot_id,
                    event_type=m.event_type,
                    payload=m.payload,
                    created_at=m.created_at,
                )
                for m in messages
            ],
        )


def _filter_conditions(flt: BotFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if flt.join_at_after is not None:
        conditions.append(bots.c.join_at >= flt.join_at_after)
    if flt.join_at_before is not None:
        conditions.append(bots.c.join_at <= flt.join_at_before)
    if flt.meeting_key is not None:
        conditions.append(bots.c.meeting_key == flt.meeting_key)
    if flt.platforms:
        conditions.append(bots.c.platform.in_(list(flt.platforms)))
    if flt.states:
        conditions.append(bots.c.state.in_(list(flt.states)))
    for key, value in flt.metadata.items():
        conditions.append(bots.c.metadata[key].as_string() == value)
    return conditions

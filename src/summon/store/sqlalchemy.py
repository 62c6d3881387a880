"""The store on SQLAlchemy 2 Core: SQLite by default, PostgreSQL for many nodes.

Each public operation is one unit of work — a plain function of a ``Connection`` — run in one
transaction by a :mod:`runner <summon.store.runners>` (group-committing writer thread on SQLite,
asyncpg on PostgreSQL). Dialect differences stay in this module and in the runners.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from summon.abc import IdempotencyRecord, Store
from summon.domain.bots import Bot, BotFilter
from summon.domain.errors import AdhocPoolExhausted, ScheduledCapacityExhausted, StaleVersion
from summon.domain.deliveries import PENDING, Attempt, Delivery, DeliveryFilter, DueDelivery, Outcome
from summon.domain.events import OutboxMessage
from summon.domain.fleet import Admission, Agent, BotCommand
from summon.domain.scheduling import MAX_WINDOW, plus
from summon.domain.webhook_endpoints import WebhookEndpoint
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.workspaces import ApiKey, Workspace
from summon.store.runners import Job, Runner, is_sqlite, make_runner
from summon.store.tables import (
    agents,
    api_keys,
    bot_commands,
    bot_status_changes,
    bots,
    idempotency_keys,
    outbox,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    workspaces,
)

T = TypeVar("T")
_KEY_COLUMNS = (*api_keys.c, workspaces.c.name.label("workspace_name"))


class SqlAlchemyStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if is_sqlite(url) else "postgresql"
        self._runner: Runner = make_runner(url)

    async def start(self) -> None:
        await self._runner.start()

    async def close(self) -> None:
        await self._runner.close()

    async def run_write(self, job: Job[T]) -> T:
        """Run a unit of work in a write transaction (for migrations and maintenance)."""
        return await self._runner.write(job)

    async def run_read(self, job: Job[T]) -> T:
        return await self._runner.read(job)

    # -- workspaces and keys -----------------------------------------------------------------
    async def ensure_workspace(self, workspace: Workspace) -> tuple[Workspace, bool]:
        return await self._runner.write(partial(_ensure_workspace, workspace))

    async def workspace_by_name(self, name: str) -> Workspace | None:
        row = await self._runner.read(partial(_first, sa.select(workspaces).where(workspaces.c.name == name)))
        return None if row is None else Workspace(row.id, row.name, row.created_at)

    async def count_workspaces(self) -> int:
        return await self._runner.read(partial(_scalar, sa.select(sa.func.count()).select_from(workspaces)))

    async def add_api_key(self, key: ApiKey) -> None:
        values = dict(
            id=key.id, workspace_id=key.workspace_id, key_hash=key.key_hash, prefix=key.prefix,
            created_at=key.created_at, revoked_at=key.revoked_at,
        )
        await self._runner.write(partial(_execute, api_keys.insert().values(**values)))

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        query = (
            sa.select(*_KEY_COLUMNS)
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .where(api_keys.c.key_hash == key_hash)
        )
        row = await self._runner.read(partial(_first, query))
        return None if row is None else _api_key(row)

    async def list_api_keys(self, workspace_id: UUID | None = None) -> list[ApiKey]:
        query = (
            sa.select(*_KEY_COLUMNS)
            .join(workspaces, workspaces.c.id == api_keys.c.workspace_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        if workspace_id is not None:
            query = query.where(api_keys.c.workspace_id == workspace_id)
        rows = await self._runner.read(partial(_all, query))
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: UUID, when: datetime) -> bool:
        statement = (
            api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=when)
        )
        return await self._runner.write(partial(_rowcount, statement)) == 1

    # -- bots ------------------------------------------------------------------------------------
    async def insert_bot(
        self, bot: Bot, messages: Sequence[OutboxMessage], admission: Admission | None = None
    ) -> Bot:
        return await self._runner.write(partial(_insert_bot, bot, messages, admission))

    async def get_bot(self, workspace_id: UUID | None, bot_id: UUID) -> Bot | None:
        return await self._runner.read(partial(_get_bot, workspace_id, bot_id))

    async def list_bots(
        self, workspace_id: UUID, flt: BotFilter, offset: int, limit: int
    ) -> tuple[int, list[Bot]]:
        return await self._runner.read(partial(_list_bots, workspace_id, flt, offset, limit))

    async def save_bot(
        self,
        bot: Bot,
        expected_version: int,
        change: StatusChange | None = None,
        messages: Sequence[OutboxMessage] = (),
        admission: Admission | None = None,
    ) -> None:
        await self._runner.write(partial(_save_bot, bot, expected_version, change, messages, admission))

    async def delete_bot(
        self, bot: Bot, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        await self._runner.write(partial(_delete_bot, bot, expected_version, messages))

    # -- scheduling and fleet ----------------------------------------------------------------------
    async def next_stage_at(self) -> datetime | None:
        query = sa.select(sa.func.min(bots.c.stage_at)).where(bots.c.state == "scheduled")
        return await self._runner.read(partial(_scalar_value, query))  # type: ignore[no-any-return]

    async def claim_due_bots(self, agent_id: UUID, now: datetime, lease_until: datetime, limit: int) -> list[Bot]:
        return await self._runner.write(partial(_claim_due, agent_id, now, lease_until, limit))

    async def take_assigned_bots(self, agent_id: UUID, lease_until: datetime, limit: int) -> list[Bot]:
        return await self._runner.write(partial(_take_assigned, agent_id, lease_until, limit))

    async def orphaned_bots(self, live_since: datetime, states: Sequence[str], limit: int) -> list[Bot]:
        live = sa.select(agents.c.id).where(agents.c.heartbeat_at >= live_since, agents.c.stopped_at.is_(None))
        query = (
            sa.select(bots)
            .where(bots.c.state.in_(list(states)), sa.or_(bots.c.agent_id.is_(None), bots.c.agent_id.not_in(live)))
            .order_by(bots.c.join_at)
            .limit(limit)
        )
        return await self._runner.read(partial(_bots_with_history, query))

    async def register_agent(self, agent: Agent) -> None:
        values = dict(
            id=agent.id, name=agent.name, platforms=list(agent.platforms), started_at=agent.started_at,
            heartbeat_at=agent.heartbeat_at, stopped_at=agent.stopped_at, slots_free=agent.slots_free,
            slots_total=agent.slots_total,
        )
        await self._runner.write(partial(_execute, agents.insert().values(**values)))

    async def heartbeat_agent(self, agent_id: UUID, now: datetime, slots_free: int, slots_total: int) -> None:
        statement = (
            agents.update()
            .where(agents.c.id == agent_id)
            .values(heartbeat_at=now, slots_free=slots_free, slots_total=slots_total)
        )
        await self._runner.write(partial(_execute, statement))

    async def stop_agents(self, agent_ids: Sequence[UUID] | None, now: datetime) -> None:
        statement = agents.update().where(agents.c.stopped_at.is_(None)).values(stopped_at=now, slots_free=0)
        if agent_ids is not None:
            statement = statement.where(agents.c.id.in_(list(agent_ids)))
        await self._runner.write(partial(_execute, statement))

    async def live_agents(self, live_since: datetime) -> list[Agent]:
        query = sa.select(agents).where(agents.c.heartbeat_at >= live_since, agents.c.stopped_at.is_(None))
        rows = await self._runner.read(partial(_all, query))
        return [
            Agent(r.id, r.name, tuple(r.platforms), r.started_at, r.heartbeat_at, r.slots_free, r.slots_total,
                  r.stopped_at)
            for r in rows
        ]

    async def queue_command(self, command: BotCommand) -> None:
        values = dict(
            bot_id=command.bot_id, agent_id=command.agent_id, name=command.name, args=command.args,
            created_at=command.created_at,
        )
        await self._runner.write(partial(_execute, bot_commands.insert().values(**values)))

    async def take_commands(self, agent_id: UUID, now: datetime, limit: int) -> list[BotCommand]:
        return await self._runner.write(partial(_take_commands, agent_id, now, limit))

    # -- webhook endpoints ---------------------------------------------------------------------------
    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._runner.write(partial(_execute, webhook_endpoints.insert().values(**_endpoint_row(endpoint))))

    async def get_endpoint(self, workspace_id: UUID, endpoint_id: UUID) -> WebhookEndpoint | None:
        query = sa.select(webhook_endpoints).where(
            webhook_endpoints.c.workspace_id == workspace_id, webhook_endpoints.c.id == endpoint_id
        )
        row = await self._runner.read(partial(_first, query))
        return None if row is None else _endpoint(row)

    async def list_endpoints(self, workspace_id: UUID) -> list[WebhookEndpoint]:
        query = (
            sa.select(webhook_endpoints)
            .where(webhook_endpoints.c.workspace_id == workspace_id)
            .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
        )
        return [_endpoint(r) for r in await self._runner.read(partial(_all, query))]

    async def save_endpoint(self, endpoint: WebhookEndpoint) -> None:
        row = _endpoint_row(endpoint)
        statement = webhook_endpoints.update().where(
            webhook_endpoints.c.id == endpoint.id, webhook_endpoints.c.workspace_id == endpoint.workspace_id
        ).values(**{k: v for k, v in row.items() if k not in ("id", "workspace_id", "created_at")})
        await self._runner.write(partial(_execute, statement))

    async def delete_endpoint(self, workspace_id: UUID, endpoint_id: UUID) -> bool:
        statement = webhook_endpoints.delete().where(
            webhook_endpoints.c.workspace_id == workspace_id, webhook_endpoints.c.id == endpoint_id
        )
        return await self._runner.write(partial(_rowcount, statement)) == 1

    # -- webhook deliveries ------------------------------------------------------------------------
    async def dispatch_outbox(self, now: datetime, limit: int) -> int:
        return await self._runner.write(partial(_dispatch_outbox, now, limit))

    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int, skip_endpoints: Sequence[UUID] = (),
        per_endpoint: int = 1_000_000,
    ) -> list[DueDelivery]:
        return await self._runner.write(
            partial(_claim_deliveries, now, lease_until, limit, list(skip_endpoints), per_endpoint)
        )

    async def release_deliveries(self, seqs: Sequence[int] | None) -> None:
        d = webhook_deliveries.c
        if seqs is None:
            statement = webhook_deliveries.update().where(d.status == PENDING, d.lease_until.is_not(None))
        elif seqs:
            statement = webhook_deliveries.update().where(d.seq.in_(list(seqs)))
        else:
            return
        await self._runner.write(partial(_execute, statement.values(lease_until=None)))

    async def next_delivery_at(self) -> datetime | None:
        query = sa.select(sa.func.min(webhook_deliveries.c.next_attempt_at)).where(webhook_deliveries.c.status == PENDING)
        return await self._runner.read(partial(_scalar_value, query))  # type: ignore[no-any-return]

    async def record_attempt(self, seq: int, endpoint_id: UUID, attempt: Attempt, outcome: Outcome) -> None:
        await self._runner.write(partial(_record_attempt, seq, endpoint_id, attempt, outcome))

    async def list_deliveries(
        self, workspace_id: UUID, flt: DeliveryFilter, before_seq: int | None, limit: int
    ) -> list[Delivery]:
        d = webhook_deliveries.c
        query = sa.select(webhook_deliveries).where(d.workspace_id == workspace_id)
        if before_seq is not None:
            query = query.where(d.seq < before_seq)
        for column, value in ((d.endpoint_id, flt.endpoint_id), (d.event_type, flt.event_type),
                              (d.status, flt.status), (d.bot_id, flt.bot_id)):
            if value is not None:
                query = query.where(column == value)
        return await self._runner.read(partial(_deliveries_with_attempts, query.order_by(d.seq.desc()).limit(limit)))

    async def resend_delivery(self, workspace_id: UUID, delivery_id: UUID, now: datetime) -> Delivery | None:
        return await self._runner.write(partial(_resend, workspace_id, delivery_id, now))

    # -- outbox ----------------------------------------------------------------------------------
    async def pending_messages(self, limit: int) -> list[OutboxMessage]:
        query = sa.select(outbox).where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.seq).limit(limit)
        rows = await self._runner.read(partial(_all, query))
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
        return await self._runner.write(
            partial(_idempotency_begin, workspace_id, scope, key, fingerprint, now, expire_before, abandon_before)
        )

    async def idempotency_finish(
        self, workspace_id: UUID, scope: str, key: str, status_code: int, response: bytes
    ) -> None:
        statement = (
            idempotency_keys.update()
            .where(*_idempotency_where(workspace_id, scope, key))
            .values(status_code=status_code, response=response)
        )
        await self._runner.write(partial(_execute, statement))

    async def idempotency_abort(self, workspace_id: UUID, scope: str, key: str) -> None:
        statement = idempotency_keys.delete().where(
            *_idempotency_where(workspace_id, scope, key), idempotency_keys.c.status_code.is_(None)
        )
        await self._runner.write(partial(_execute, statement))


# -- units of work ---------------------------------------------------------------------------------
def _execute(statement: sa.Executable, conn: Connection) -> None:
    conn.execute(statement)


def _rowcount(statement: sa.Executable, conn: Connection) -> int:
    return conn.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def _first(query: sa.Select[Any], conn: Connection) -> Any:
    return conn.execute(query).first()


def _all(query: sa.Select[Any], conn: Connection) -> list[Any]:
    return list(conn.execute(query).all())


def _scalar(query: sa.Select[Any], conn: Connection) -> int:
    return int(conn.execute(query).scalar_one())


def _ensure_workspace(workspace: Workspace, conn: Connection) -> tuple[Workspace, bool]:
    row = conn.execute(sa.select(workspaces).where(workspaces.c.name == workspace.name)).first()
    if row is not None:
        return Workspace(row.id, row.name, row.created_at), False
    conn.execute(workspaces.insert().values(id=workspace.id, name=workspace.name, created_at=workspace.created_at))
    return workspace, True


# Statements built once; executions only bind parameters (the compiled form is cached).
_INSERT_BOT = bots.insert()
_INSERT_CHANGE = bot_status_changes.insert()
_INSERT_MESSAGE = outbox.insert()
_SAVE_BOT = (
    bots.update()
    .where(bots.c.id == sa.bindparam("match_id"), bots.c.version == sa.bindparam("match_version"))
)


def _insert_bot(bot: Bot, messages: Sequence[OutboxMessage], admission: Admission | None, conn: Connection) -> Bot:
    if admission is not None:
        bot = _admit(conn, bot, admission)
    conn.execute(
        _INSERT_BOT, {**_bot_row(bot), "id": bot.id, "workspace_id": bot.workspace_id, "created_at": bot.created_at}
    )
    if bot.status_changes:
        conn.execute(_INSERT_CHANGE, [_change_row(bot.id, c) for c in bot.status_changes])
    _queue(conn, messages)
    return bot


def _get_bot(workspace_id: UUID | None, bot_id: UUID, conn: Connection) -> Bot | None:
    query = sa.select(bots).where(bots.c.id == bot_id)
    if workspace_id is not None:
        query = query.where(bots.c.workspace_id == workspace_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    return _bot(row, _histories(conn, [bot_id]).get(bot_id, []))


def _list_bots(workspace_id: UUID, flt: BotFilter, offset: int, limit: int, conn: Connection) -> tuple[int, list[Bot]]:
    conditions = [bots.c.workspace_id == workspace_id, *_filter_conditions(flt)]
    total = int(conn.execute(sa.select(sa.func.count()).select_from(bots).where(*conditions)).scalar_one())
    if offset >= total:
        return total, []
    rows = conn.execute(
        sa.select(bots)
        .where(*conditions)
        .order_by(bots.c.created_at.desc(), bots.c.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    history = _histories(conn, [r.id for r in rows])
    return total, [_bot(r, history.get(r.id, [])) for r in rows]


def _save_bot(
    bot: Bot,
    expected_version: int,
    change: StatusChange | None,
    messages: Sequence[OutboxMessage],
    admission: Admission | None,
    conn: Connection,
) -> None:
    if admission is not None:
        bot = _admit(conn, bot, admission)
    result = conn.execute(_SAVE_BOT, {**_bot_row(bot), "match_id": bot.id, "match_version": expected_version})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleVersion(bot.id, expected_version)
    if change is not None:
        conn.execute(_INSERT_CHANGE, _change_row(bot.id, change))
    _queue(conn, messages)


def _delete_bot(bot: Bot, expected_version: int, messages: Sequence[OutboxMessage], conn: Connection) -> None:
    exists = sa.select(bots.c.id).where(bots.c.id == bot.id, bots.c.version == expected_version)
    if conn.execute(exists).first() is None:
        raise StaleVersion(bot.id, expected_version)
    # History first: SQLite enforces the cascade only with foreign_keys=ON, and other tools
    # opening the file may not set it.
    conn.execute(bot_status_changes.delete().where(bot_status_changes.c.bot_id == bot.id))
    conn.execute(bots.delete().where(bots.c.id == bot.id))
    _queue(conn, messages)


#: States in which a bot holds (or will hold) a reserved window of fleet capacity.
RESERVING_STATES = (
    "scheduled", "staged", "joining_call", "in_waiting_room", "in_call_not_recording",
    "recording_permission_allowed", "recording_permission_denied", "in_call_recording",
)
_CAPACITY_LOCK = 0x53554D31  # "SUM1": serialises capacity bookings on PostgreSQL


def _admit(conn: Connection, bot: Bot, admission: Admission) -> Bot:
    """Check (and for ad-hoc bots, reserve) capacity in the booking's own transaction."""
    if admission.adhoc_live_since is not None:
        # Reservations are derived, not counted: the ad-hoc bots assigned to the agent that it
        # has not taken yet. A bot cancelled before it was taken frees its slot by itself.
        untaken = (
            sa.select(sa.func.count())
            .select_from(bots)
            .where(bots.c.agent_id == agents.c.id, bots.c.state == "ready", bots.c.lease_until.is_(None))
            .scalar_subquery()
        )
        free = agents.c.slots_free - untaken
        query = (
            sa.select(agents.c.id)
            .where(agents.c.heartbeat_at >= admission.adhoc_live_since, agents.c.stopped_at.is_(None), free > 0)
            .order_by(free.desc(), agents.c.id)
            .limit(1)
            .with_for_update()
        )
        row = conn.execute(query).first()
        if row is None:
            raise AdhocPoolExhausted("Out of adhoc bots -- Please retry in 30 seconds", retry_after=30)
        if admission.adhoc_reserve:
            bot.agent_id = row.id
    if admission.scheduled_limit is not None:
        assert admission.window_start is not None and admission.window_end is not None and bot.join_at is not None
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CAPACITY_LOCK})
        lead = bot.join_at - admission.window_start
        overlapping = (
            sa.select(sa.func.count())
            .select_from(bots)
            .where(
                bots.c.state.in_(RESERVING_STATES),
                bots.c.window_end.is_not(None),
                bots.c.join_at > plus(admission.window_start, -MAX_WINDOW),  # bounds the index range
                bots.c.join_at < plus(admission.window_end, lead),
                bots.c.window_end > admission.window_start,
            )
        )
        if admission.exclude_bot is not None:
            overlapping = overlapping.where(bots.c.id != admission.exclude_bot)
        if int(conn.execute(overlapping).scalar_one()) >= admission.scheduled_limit:
            raise ScheduledCapacityExhausted(
                "Every bot slot is booked for part of this bot's window; book another time or raise SUMMON_MAX_BOTS.",
                retry_after=60,
            )
    return bot


def _scalar_value(query: sa.Select[Any], conn: Connection) -> Any:
    return conn.execute(query).scalar()


def _bots_with_history(query: sa.Select[Any], conn: Connection) -> list[Bot]:
    rows = conn.execute(query).all()
    history = _histories(conn, [r.id for r in rows])
    return [_bot(r, history.get(r.id, [])) for r in rows]


def _claim(conn: Connection, query: sa.Select[Any], agent_id: UUID, lease_until: datetime) -> list[Bot]:
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # concurrent claimers take different rows
    ids = [r.id for r in conn.execute(query)]
    if not ids:
        return []
    conn.execute(
        bots.update()
        .where(bots.c.id.in_(ids))
        .values(agent_id=agent_id, lease_until=lease_until, version=bots.c.version + 1)
    )
    return _bots_with_history(sa.select(bots).where(bots.c.id.in_(ids)).order_by(bots.c.join_at), conn)


def _claim_due(agent_id: UUID, now: datetime, lease_until: datetime, limit: int, conn: Connection) -> list[Bot]:
    query = (
        sa.select(bots.c.id)
        .where(
            bots.c.state == "scheduled",
            bots.c.stage_at <= now,
            sa.or_(bots.c.lease_until.is_(None), bots.c.lease_until < now),
        )
        .order_by(bots.c.stage_at)
        .limit(limit)
    )
    return _claim(conn, query, agent_id, lease_until)


def _take_assigned(agent_id: UUID, lease_until: datetime, limit: int, conn: Connection) -> list[Bot]:
    query = (
        sa.select(bots.c.id)
        .where(bots.c.agent_id == agent_id, bots.c.state == "ready", bots.c.lease_until.is_(None))
        .order_by(bots.c.created_at)
        .limit(limit)
    )
    taken = _claim(conn, query, agent_id, lease_until)
    if taken:
        # Until the agent's next heartbeat says how many slots it has free, count these as used.
        conn.execute(agents.update().where(agents.c.id == agent_id).values(slots_free=agents.c.slots_free - len(taken)))
    return taken


def _take_commands(agent_id: UUID, now: datetime, limit: int, conn: Connection) -> list[BotCommand]:
    query = (
        sa.select(bot_commands)
        .where(bot_commands.c.agent_id == agent_id, bot_commands.c.delivered_at.is_(None))
        .order_by(bot_commands.c.seq)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if rows:
        conn.execute(
            bot_commands.update().where(bot_commands.c.seq.in_([r.seq for r in rows])).values(delivered_at=now)
        )
    return [BotCommand(r.bot_id, r.agent_id, r.name, r.args, r.created_at, r.seq) for r in rows]


def _dispatch_outbox(now: datetime, limit: int, conn: Connection) -> int:
    query = sa.select(outbox).where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.seq).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages = conn.execute(query).all()
    if not messages:
        return 0
    workspace_ids = {m.workspace_id for m in messages}
    endpoints = conn.execute(
        sa.select(webhook_endpoints.c.id, webhook_endpoints.c.workspace_id, webhook_endpoints.c.event_types).where(
            webhook_endpoints.c.workspace_id.in_(workspace_ids), webhook_endpoints.c.disabled.is_(False)
        )
    ).all()
    rows = [
        dict(id=uuid4(), message_id=m.id, endpoint_id=e.id, workspace_id=m.workspace_id, bot_id=m.bot_id,
             event_type=m.event_type, status=PENDING, attempts=0, next_attempt_at=now, lease_until=None,
             last_status_code=None, created_at=now, updated_at=now)
        for m in messages
        for e in endpoints
        if e.workspace_id == m.workspace_id and (not e.event_types or m.event_type in e.event_types)
    ]
    if rows:
        conn.execute(webhook_deliveries.insert(), rows)
    conn.execute(outbox.update().where(outbox.c.seq.in_([m.seq for m in messages])).values(dispatched_at=now))
    return len(messages)


def _claim_deliveries(
    now: datetime, lease_until: datetime, limit: int, skip_endpoints: list[UUID], per_endpoint: int,
    conn: Connection,
) -> list[DueDelivery]:
    d = webhook_deliveries.c
    earlier = webhook_deliveries.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.endpoint_id == d.endpoint_id,
        earlier.c.bot_id == d.bot_id,
        earlier.c.status == PENDING,
        earlier.c.seq < d.seq,
    )
    due = (
        sa.select(d.seq, sa.func.row_number().over(partition_by=d.endpoint_id, order_by=d.seq).label("rank"))
        .where(
            d.status == PENDING,
            d.next_attempt_at <= now,
            sa.or_(d.lease_until.is_(None), d.lease_until < now),
            sa.or_(d.bot_id.is_(None), ~blocked),
        )
    )
    if skip_endpoints:
        due = due.where(d.endpoint_id.not_in(skip_endpoints))
    # At most ``per_endpoint`` of one endpoint: a busy endpoint's backlog must not crowd out the
    # others' deliveries from the claim.
    ranked = due.subquery()
    query = sa.select(ranked.c.seq).where(ranked.c.rank <= per_endpoint).order_by(ranked.c.seq).limit(limit)
    seqs = [r.seq for r in conn.execute(query)]
    if not seqs:
        return []
    claim = webhook_deliveries.update().where(d.seq.in_(seqs), sa.or_(d.lease_until.is_(None), d.lease_until < now))
    if conn.dialect.name == "postgresql":
        # Two senders may rank the same rows; the one whose update takes a row owns it.
        rows = conn.execute(claim.values(lease_until=lease_until).returning(d.seq)).all()
        seqs = [r.seq for r in rows]
        if not seqs:
            return []
    else:
        conn.execute(claim.values(lease_until=lease_until))
    rows = conn.execute(
        sa.select(webhook_deliveries, outbox.c.payload, webhook_endpoints.c.url, webhook_endpoints.c.secret,
                  webhook_endpoints.c.previous_secret, webhook_endpoints.c.previous_secret_until,
                  webhook_endpoints.c.failing_since)
        .join(outbox, outbox.c.id == d.message_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.endpoint_id)
        .where(d.seq.in_(seqs))
        .order_by(d.seq)
    ).all()
    return [
        DueDelivery(_delivery(r), r.payload, r.url, r.secret, r.previous_secret, r.previous_secret_until,
                    r.failing_since)
        for r in rows
    ]


def _record_attempt(seq: int, endpoint_id: UUID, attempt: Attempt, outcome: Outcome, conn: Connection) -> None:
    conn.execute(
        webhook_attempts.insert().values(
            delivery_seq=seq, attempted_at=attempt.attempted_at, status_code=attempt.status_code,
            duration_ms=attempt.duration_ms, error=attempt.error, response=attempt.response,
        )
    )
    conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.seq == seq)
        .values(
            status=outcome.status, attempts=webhook_deliveries.c.attempts + 1, next_attempt_at=outcome.retry_at,
            lease_until=None, last_status_code=attempt.status_code, updated_at=attempt.attempted_at,
        )
    )
    e = webhook_endpoints.c
    if outcome.disable_endpoint:
        conn.execute(webhook_endpoints.update().where(e.id == endpoint_id).values(
            failing_since=outcome.endpoint_failing_since, disabled=True,
            disabled_reason="every delivery failed for 5 days"))
    elif outcome.endpoint_failing_since is None:
        # Healthy: clear a failure record only if there is one (most deliveries write nothing).
        conn.execute(webhook_endpoints.update().where(e.id == endpoint_id, e.failing_since.is_not(None))
                     .values(failing_since=None))
    else:
        conn.execute(webhook_endpoints.update().where(e.id == endpoint_id, e.failing_since.is_(None))
                     .values(failing_since=outcome.endpoint_failing_since))


def _deliveries_with_attempts(query: sa.Select[Any], conn: Connection) -> list[Delivery]:
    rows = conn.execute(query).all()
    if not rows:
        return []
    history: dict[int, list[Attempt]] = {}
    attempts = conn.execute(
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_seq.in_([r.seq for r in rows]))
        .order_by(webhook_attempts.c.delivery_seq, webhook_attempts.c.id)
    )
    for a in attempts:
        history.setdefault(a.delivery_seq, []).append(
            Attempt(a.attempted_at, a.status_code, a.duration_ms, a.error, a.response)
        )
    return [replace(_delivery(r), history=history.get(r.seq, [])) for r in rows]


def _resend(workspace_id: UUID, delivery_id: UUID, now: datetime, conn: Connection) -> Delivery | None:
    d = webhook_deliveries.c
    result = conn.execute(
        webhook_deliveries.update()
        .where(d.workspace_id == workspace_id, d.id == delivery_id)
        .values(status=PENDING, attempts=0, next_attempt_at=now, lease_until=None, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    found = _deliveries_with_attempts(sa.select(webhook_deliveries).where(d.id == delivery_id), conn)
    return found[0]


def _delivery(r: Any) -> Delivery:
    return Delivery(
        seq=r.seq, id=r.id, message_id=r.message_id, endpoint_id=r.endpoint_id, workspace_id=r.workspace_id,
        bot_id=r.bot_id, event_type=r.event_type, status=r.status, attempts=r.attempts,
        next_attempt_at=r.next_attempt_at, last_status_code=r.last_status_code, created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _idempotency_where(workspace_id: UUID, scope: str, key: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        idempotency_keys.c.workspace_id == workspace_id,
        idempotency_keys.c.scope == scope,
        idempotency_keys.c.key == key,
    )


def _idempotency_begin(
    workspace_id: UUID,
    scope: str,
    key: str,
    fingerprint: str,
    now: datetime,
    expire_before: datetime,
    abandon_before: datetime,
    conn: Connection,
) -> IdempotencyRecord | None:
    where = _idempotency_where(workspace_id, scope, key)
    row = conn.execute(sa.select(idempotency_keys).where(*where).with_for_update()).first()
    fresh = dict(fingerprint=fingerprint, status_code=None, response=None, created_at=now)
    if row is None:
        # Two nodes may race to claim the same new key: the primary key decides, the loser
        # reads the winner's claim.
        inserted = conn.execute(
            _insert_ignore(conn, idempotency_keys).values(workspace_id=workspace_id, scope=scope, key=key, **fresh)
        )
        if inserted.rowcount == 1:  # type: ignore[attr-defined]
            return None
        row = conn.execute(sa.select(idempotency_keys).where(*where)).one()
    expired = row.created_at < expire_before
    abandoned = row.status_code is None and row.created_at < abandon_before
    if expired or abandoned:
        conn.execute(idempotency_keys.update().where(*where).values(**fresh))
        return None
    return IdempotencyRecord(row.fingerprint, row.status_code, row.response, row.created_at)


def _insert_ignore(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _endpoint_row(e: WebhookEndpoint) -> dict[str, Any]:
    return dict(
        id=e.id, workspace_id=e.workspace_id, url=e.url, description=e.description, event_types=list(e.event_types),
        secret=e.sealed_secret, previous_secret=e.sealed_previous_secret, previous_secret_until=e.previous_secret_until,
        disabled=e.disabled, disabled_reason=e.disabled_reason, failing_since=e.failing_since,
        created_at=e.created_at, updated_at=e.updated_at,
    )


def _endpoint(r: Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=r.id, workspace_id=r.workspace_id, url=r.url, description=r.description, event_types=list(r.event_types),
        sealed_secret=r.secret, sealed_previous_secret=r.previous_secret, previous_secret_until=r.previous_secret_until,
        disabled=r.disabled, disabled_reason=r.disabled_reason, failing_since=r.failing_since,
        created_at=r.created_at, updated_at=r.updated_at,
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
        stage_at=bot.stage_at,
        window_end=bot.window_end,
        agent_id=bot.agent_id,
        lease_until=bot.lease_until,
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
        stage_at=row.stage_at,
        window_end=row.window_end,
        agent_id=row.agent_id,
        lease_until=row.lease_until,
    )


def _histories(conn: Connection, bot_ids: list[UUID]) -> dict[UUID, list[StatusChange]]:
    if not bot_ids:
        return {}
    query = (
        sa.select(bot_status_changes)
        .where(bot_status_changes.c.bot_id.in_(bot_ids))
        .order_by(bot_status_changes.c.bot_id, bot_status_changes.c.id)
    )
    out: dict[UUID, list[StatusChange]] = {}
    for r in conn.execute(query):
        out.setdefault(r.bot_id, []).append(StatusChange(Status(r.code), r.sub_code, r.message, r.created_at))
    return out


def _queue(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    if messages:
        conn.execute(
            _INSERT_MESSAGE,
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

"""The store on SQLAlchemy 2 Core: SQLite by default, PostgreSQL for many nodes.

Each public operation is one unit of work — a plain function of a ``Connection`` — run in one
transaction by a :mod:`runner <summon.store.runners>` (group-committing writer thread on SQLite,
asyncpg on PostgreSQL). Dialect differences stay in this module and in the runners.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from summon.abc import IdempotencyRecord, Store
from summon.domain.bots import Bot, BotFilter
from summon.domain.calendars import (
    AutoRecord,
    Calendar,
    CalendarEvent,
    CalendarEventFilter,
    CalendarFilter,
    EventBot,
    EventBotLink,
    StatusChange as CalendarStatusChange,
)
from summon.domain.errors import AdhocPoolExhausted, ScheduledCapacityExhausted, StaleVersion
from summon.domain.deliveries import (
    PENDING,
    Attempt,
    AttemptResult,
    Delivery,
    DeliveryFilter,
    Dispatched,
    DueDelivery,
)
from summon.domain.events import OutboxMessage
from summon.domain.fleet import Admission, Agent, BotCommand
from summon.domain.scheduling import MAX_WINDOW, plus
from summon.domain.webhook_endpoints import WebhookEndpoint
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.workspaces import ApiKey, Workspace
from summon.domain.mailboxes import (  # -- mailboxes --
    HeldBot,
    InstanceChange,
    Invite,
    Mailbox,
    MailboxAddressTaken,
)
from summon.domain.recordings import (  # -- recordings --
    Artifact,
    ArtifactFile,
    ArtifactStatus,
    Recording,
    RecordingFilter,
    RecordingStatus,
)
from summon.store.runners import Job, Runner, is_sqlite, make_runner
from summon.store.tables import bot_mailboxes, mailbox_invites  # -- mailboxes --
from summon.store.tables import recordings  # -- recordings --
from summon.store.tables import (
    calendar_events,
    calendars,
    event_bot_refs,
    event_bots,
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
    async def dispatch_outbox(
        self, now: datetime, limit: int, lease_until: datetime | None = None,
        room: Mapping[UUID, int] | None = None, default_room: int = 0,
    ) -> Dispatched:
        return await self._runner.write(
            partial(_dispatch_outbox, now, limit, lease_until, dict(room or {}), default_room)
        )

    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int, skip_endpoints: Sequence[UUID] = (),
        per_endpoint: int = 1_000_000,
    ) -> list[DueDelivery]:
        return await self._runner.write(
            partial(_claim_deliveries, now, lease_until, limit, list(skip_endpoints), per_endpoint)
        )

    async def claim_for_endpoints(
        self, now: datetime, lease_until: datetime, rooms: Mapping[UUID, int]
    ) -> list[DueDelivery]:
        wanted = {e: n for e, n in rooms.items() if n > 0}
        if not wanted:
            return []
        return await self._runner.write(partial(_claim_for_endpoints, now, lease_until, wanted))

    async def release_deliveries(self, seqs: Sequence[int] | None) -> None:
        d = webhook_deliveries.c
        if seqs is None:
            statement = webhook_deliveries.update().where(d.status == PENDING, d.lease_until.is_not(None))
        elif seqs:
            statement = webhook_deliveries.update().where(d.seq.in_(list(seqs)))
        else:
            return
        await self._runner.write(partial(_execute, statement.values(lease_until=None)))

    async def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        d = webhook_deliveries.c
        query = sa.select(sa.func.min(d.next_attempt_at)).where(d.status == PENDING)
        if after is not None:
            query = query.where(d.next_attempt_at > after)
        return await self._runner.read(partial(_scalar_value, query))  # type: ignore[no-any-return]

    async def record_attempts(self, results: Sequence[AttemptResult], release: Sequence[int] = ()) -> None:
        if results or release:
            await self._runner.write(partial(_record_attempts, list(results), list(release)))

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
    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        if messages:
            await self._runner.write(partial(_queue_outbox, list(messages)))

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

    # -- calendars -------------------------------------------------------------------------------
    async def insert_calendar(
        self, calendar: Calendar, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        await self._runner.write(partial(_insert_calendar, calendar, list(messages)))

    async def get_calendar(self, workspace_id: UUID | None, calendar_id: UUID) -> Calendar | None:
        row = await self._runner.read(partial(_first, _owned(calendars, calendar_id, workspace_id)))
        return None if row is None else _calendar(row)

    async def list_calendars(
        self,
        workspace_id: UUID,
        flt: CalendarFilter,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Calendar]:
        c = calendars.c
        query = sa.select(calendars).where(c.workspace_id == workspace_id)
        for column, value in (
            (c.platform, flt.platform),
            (c.status, flt.status),
            (c.email, flt.email),
        ):
            if value is not None:
                query = query.where(column == value)
        if flt.created_at_gte is not None:
            query = query.where(c.created_at >= flt.created_at_gte)
        if after is not None:
            query = query.where(_after(c.created_at, c.id, after))
        rows = await self._runner.read(
            partial(_all, query.order_by(c.created_at, c.id).limit(limit))
        )
        return [_calendar(r) for r in rows]

    async def save_calendar(
        self, calendar: Calendar, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        await self._runner.write(
            partial(_save_calendar, calendar, expected_version, list(messages))
        )

    async def delete_calendar(self, workspace_id: UUID, calendar_id: UUID) -> list[UUID] | None:
        return await self._runner.write(partial(_delete_calendar, workspace_id, calendar_id))

    async def claim_due_calendars(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Calendar]:
        return await self._runner.write(partial(_claim_calendars, now, lease_until, limit))

    async def next_calendar_sync_at(self) -> datetime | None:
        query = sa.select(sa.func.min(calendars.c.next_sync_at))
        return await self._runner.read(partial(_scalar_value, query))  # type: ignore[no-any-return]

    async def calendar_events(
        self,
        calendar_id: UUID,
        start_from: datetime | None = None,
        start_to: datetime | None = None,
        keys: Sequence[str] = (),
    ) -> list[CalendarEvent]:
        e = calendar_events.c
        bounds: list[sa.ColumnElement[bool]] = []
        if start_from is not None:
            bounds.append(e.start_time >= start_from)
        if start_to is not None:
            bounds.append(e.start_time < start_to)
        query = sa.select(calendar_events).where(e.calendar_id == calendar_id)
        if bounds:
            query = query.where(
                sa.or_(sa.and_(*bounds), e.key.in_(list(keys))) if keys else sa.and_(*bounds)
            )
        rows = await self._runner.read(partial(_all, query.order_by(e.start_time, e.id)))
        return [_calendar_event(r) for r in rows]

    async def apply_calendar_sync(
        self,
        calendar: Calendar,
        expected_version: int,
        events: Sequence[CalendarEvent],
        messages: Sequence[OutboxMessage] = (),
    ) -> None:
        await self._runner.write(
            partial(_apply_calendar_sync, calendar, expected_version, list(events), list(messages))
        )

    async def get_calendar_event(
        self, workspace_id: UUID | None, event_id: UUID
    ) -> CalendarEvent | None:
        row = await self._runner.read(partial(_first, _owned(calendar_events, event_id, workspace_id)))
        return None if row is None else _calendar_event(row)

    async def list_calendar_events(
        self,
        workspace_id: UUID,
        flt: CalendarEventFilter,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[CalendarEvent]:
        e = calendar_events.c
        query = sa.select(calendar_events).where(e.workspace_id == workspace_id)
        if flt.calendar_id is not None:
            query = query.where(e.calendar_id == flt.calendar_id)
        if flt.start_time is not None:
            query = query.where(e.start_time == flt.start_time)
        if flt.start_time_gte is not None:
            query = query.where(e.start_time >= flt.start_time_gte)
        if flt.start_time_lte is not None:
            query = query.where(e.start_time <= flt.start_time_lte)
        if flt.updated_at_gte is not None:
            query = query.where(e.updated_at >= flt.updated_at_gte)
        if flt.is_deleted is not None:
            query = query.where(e.is_deleted == flt.is_deleted)
        if flt.ical_uid is not None:
            # Case-sensitive prefix, with no LIKE wildcards to escape: compare the prefix itself.
            query = query.where(sa.func.substr(e.ical_uid, 1, len(flt.ical_uid)) == flt.ical_uid)
        if after is not None:
            query = query.where(_after(e.start_time, e.id, after))
        rows = await self._runner.read(
            partial(_all, query.order_by(e.start_time, e.id).limit(limit))
        )
        return [_calendar_event(r) for r in rows]

    async def save_calendar_event_bot(
        self, event_id: UUID, manual_bot: dict[str, Any] | None, bot_opt_out: bool, now: datetime
    ) -> None:
        statement = (
            calendar_events.update()
            .where(calendar_events.c.id == event_id)
            .values(manual_bot=manual_bot, bot_opt_out=bot_opt_out, updated_at=now)
        )
        await self._runner.write(partial(_execute, statement))

    async def get_event_bot(self, workspace_id: UUID, dedup_key: str) -> EventBot | None:
        query = sa.select(event_bots).where(*_event_bot_where(workspace_id, dedup_key))
        row = await self._runner.read(partial(_first, query))
        return None if row is None else _event_bot(row)

    async def event_bot_key_of(self, workspace_id: UUID, ref: str) -> str | None:
        r = event_bot_refs.c
        query = sa.select(r.dedup_key).where(r.workspace_id == workspace_id, r.ref == ref)
        return await self._runner.read(partial(_scalar_value, query))  # type: ignore[no-any-return]

    async def reserve_event_bot(
        self, workspace_id: UUID, dedup_key: str, token: UUID, now: datetime, stale_before: datetime
    ) -> EventBot:
        return await self._runner.write(
            partial(_reserve_event_bot, workspace_id, dedup_key, token, now, stale_before)
        )

    async def bind_event_bot(
        self, workspace_id: UUID, dedup_key: str, token: UUID, bot_id: UUID, ref: str, now: datetime
    ) -> tuple[bool, str | None]:
        return await self._runner.write(
            partial(_bind_event_bot, workspace_id, dedup_key, token, bot_id, ref, now)
        )

    async def abandon_event_bot(self, workspace_id: UUID, dedup_key: str, token: UUID) -> None:
        statement = event_bots.delete().where(
            *_event_bot_where(workspace_id, dedup_key),
            event_bots.c.claim == token,
            event_bots.c.bot_id.is_(None),
        )
        await self._runner.write(partial(_execute, statement))

    async def replace_event_bot(
        self, workspace_id: UUID, dedup_key: str, old_bot_id: UUID, token: UUID, now: datetime
    ) -> bool:
        statement = (
            event_bots.update()
            .where(*_event_bot_where(workspace_id, dedup_key), event_bots.c.bot_id == old_bot_id)
            .values(bot_id=None, claim=token, claimed_at=now, updated_at=now)
        )
        return await self._runner.write(partial(_rowcount, statement)) == 1

    async def link_event_bot_ref(
        self, workspace_id: UUID, ref: str, dedup_key: str, bot_id: UUID, now: datetime
    ) -> tuple[bool, str | None]:
        return await self._runner.write(
            partial(_link_event_bot_ref, workspace_id, ref, dedup_key, bot_id, now)
        )

    async def move_event_bot(
        self, workspace_id: UUID, ref: str, old_key: str, new_key: str, now: datetime
    ) -> UUID | None:
        try:
            return await self._runner.write(
                partial(_move_event_bot, workspace_id, ref, old_key, new_key, now)
            )
        except sa.exc.IntegrityError:
            return None  # another attach took ``new_key`` at the same moment

    async def release_event_bot_key(self, workspace_id: UUID, dedup_key: str) -> UUID | None:
        return await self._runner.write(partial(_release_event_bot_key, workspace_id, dedup_key))

    async def unlink_event_bot_ref(self, workspace_id: UUID, ref: str) -> UUID | None:
        return await self._runner.write(partial(_unlink_event_bot_ref, workspace_id, ref))

    async def event_bot_links(
        self, workspace_id: UUID, refs: Sequence[str]
    ) -> dict[str, EventBotLink]:
        if not refs:
            return {}
        return await self._runner.read(partial(_event_bot_links, workspace_id, list(refs)))

    async def refs_of_event_bot(self, workspace_id: UUID, bot_id: UUID) -> list[str]:
        r, e = event_bot_refs.c, event_bots.c
        query = (
            sa.select(r.ref)
            .join(event_bots, sa.and_(e.workspace_id == r.workspace_id, e.dedup_key == r.dedup_key))
            .where(e.workspace_id == workspace_id, e.bot_id == bot_id)
            .order_by(r.ref)
        )
        return [row.ref for row in await self._runner.read(partial(_all, query))]

    # -- mailboxes -------------------------------------------------------------------------------
    async def insert_mailbox(self, mailbox: Mailbox) -> None:
        await self._runner.write(partial(_insert_mailbox, mailbox))

    async def get_mailbox(self, workspace_id: UUID | None, mailbox_id: UUID) -> Mailbox | None:
        row = await self._runner.read(partial(_first, _owned(bot_mailboxes, mailbox_id, workspace_id)))
        return None if row is None else _mailbox(row)

    async def mailbox_by_address(self, address: str) -> Mailbox | None:
        query = sa.select(bot_mailboxes).where(bot_mailboxes.c.address == address)
        row = await self._runner.read(partial(_first, query))
        return None if row is None else _mailbox(row)

    async def list_mailboxes(
        self, workspace_id: UUID, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Mailbox]:
        m = bot_mailboxes.c
        query = sa.select(bot_mailboxes).where(m.workspace_id == workspace_id)
        if after is not None:
            query = query.where(_after(m.created_at, m.id, after))
        query = query.order_by(m.created_at, m.id).limit(limit)
        return [_mailbox(r) for r in await self._runner.read(partial(_all, query))]

    async def save_mailbox(self, mailbox: Mailbox) -> bool:
        return await self._runner.write(partial(_save_mailbox, mailbox))

    async def delete_mailbox(self, workspace_id: UUID, mailbox_id: UUID) -> bool:
        return await self._runner.write(partial(_delete_mailbox, workspace_id, mailbox_id))

    async def get_invite(self, mailbox_id: UUID, uid: str) -> Invite | None:
        i = mailbox_invites.c
        query = sa.select(mailbox_invites).where(i.mailbox_id == mailbox_id, i.uid == uid)
        row = await self._runner.read(partial(_first, query))
        return None if row is None else _invite(row)

    async def save_invite(self, invite: Invite, expected_version: int | None) -> None:
        await self._runner.write(partial(_save_invite, invite, expected_version))

    async def list_invites(
        self, workspace_id: UUID, mailbox_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Invite]:
        i = mailbox_invites.c
        query = sa.select(mailbox_invites).where(
            i.workspace_id == workspace_id, i.mailbox_id == mailbox_id
        )
        if before is not None:
            query = query.where(_before(i.updated_at, i.id, before))
        query = query.order_by(i.updated_at.desc(), i.id.desc()).limit(limit)
        return [_invite(r) for r in await self._runner.read(partial(_all, query))]

    async def invites_holding_bots(self, mailbox_id: UUID) -> list[Invite]:
        query = sa.select(mailbox_invites).where(mailbox_invites.c.mailbox_id == mailbox_id)
        invites = [_invite(r) for r in await self._runner.read(partial(_all, query))]
        return [i for i in invites if i.bots]

    async def count_invites(self, mailbox_id: UUID, status: str) -> int:
        i = mailbox_invites.c
        query = sa.select(sa.func.count()).select_from(mailbox_invites).where(
            i.mailbox_id == mailbox_id, i.status == status
        )
        return await self._runner.read(partial(_scalar, query))

    async def due_invites(self, now: datetime, limit: int) -> list[Invite]:
        i = mailbox_invites.c
        query = (
            sa.select(mailbox_invites)
            .where(i.next_check_at <= now)
            .order_by(i.next_check_at, i.id)
            .limit(limit)
        )
        return [_invite(r) for r in await self._runner.read(partial(_all, query))]

    # -- recordings ------------------------------------------------------------------------------
    async def save_recordings(
        self,
        recordings: Sequence[Recording],
        messages: Sequence[OutboxMessage] = (),
        *,
        bot: Bot | None = None,
        expected_version: int | None = None,
        change: StatusChange | None = None,
    ) -> None:
        await self._runner.write(
            partial(
                _save_recordings, list(recordings), list(messages), bot, expected_version, change
            )
        )

    async def get_recording(
        self, workspace_id: UUID | None, recording_id: UUID
    ) -> Recording | None:
        row = await self._runner.read(partial(_first, _owned(recordings, recording_id, workspace_id)))
        return None if row is None else _recording(row)

    async def list_recordings(
        self,
        workspace_id: UUID,
        flt: RecordingFilter,
        before: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Recording]:
        r = recordings.c
        query = sa.select(recordings).where(r.workspace_id == workspace_id)
        if flt.bot_id is not None:
            query = query.where(r.bot_id == flt.bot_id)
        if flt.created_at_after is not None:
            query = query.where(r.created_at >= flt.created_at_after)
        if flt.created_at_before is not None:
            query = query.where(r.created_at < flt.created_at_before)
        if flt.status is not None:
            query = query.where(r.status == flt.status)
        if before is not None:
            query = query.where(_before(r.created_at, r.id, before))
        query = query.order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        return [_recording(row) for row in await self._runner.read(partial(_all, query))]

    async def recordings_of_bots(
        self, workspace_id: UUID | None, bot_ids: Sequence[UUID]
    ) -> dict[UUID, list[Recording]]:
        if not bot_ids:
            return {}
        r = recordings.c
        query = sa.select(recordings).where(r.bot_id.in_(list(bot_ids)))
        if workspace_id is not None:
            query = query.where(r.workspace_id == workspace_id)
        query = query.order_by(r.created_at, r.id)
        found: dict[UUID, list[Recording]] = {}
        for row in await self._runner.read(partial(_all, query)):
            found.setdefault(row.bot_id, []).append(_recording(row))
        return found

    async def delete_recording(
        self, recording: Recording, messages: Sequence[OutboxMessage] = ()
    ) -> bool:
        return await self._runner.write(partial(_delete_recording, recording, list(messages)))

    async def expired_recordings(self, now: datetime, limit: int) -> list[Recording]:
        r = recordings.c
        query = (
            sa.select(recordings)
            .where(r.expires_at <= now, r.status != "deleted")
            .order_by(r.expires_at, r.id)
            .limit(limit)
        )
        return [_recording(row) for row in await self._runner.read(partial(_all, query))]


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


def _owned(table: sa.Table, row_id: UUID, workspace_id: UUID | None) -> sa.Select[Any]:
    """The row ``row_id`` of ``table``, only if it belongs to ``workspace_id`` (any: None)."""
    query = sa.select(table).where(table.c.id == row_id)
    if workspace_id is not None:
        query = query.where(table.c.workspace_id == workspace_id)
    return query


def _after(first: Any, second: Any, position: tuple[Any, Any]) -> sa.ColumnElement[bool]:
    """Keyset pagination: rows after ``position`` in ``(first, second)`` order."""
    return sa.or_(first > position[0], sa.and_(first == position[0], second > position[1]))


def _before(first: Any, second: Any, position: tuple[Any, Any]) -> sa.ColumnElement[bool]:
    """Keyset pagination, newest first: rows before ``position`` in ``(first, second)`` order."""
    return sa.or_(first < position[0], sa.and_(first == position[0], second < position[1]))


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


def _queue_outbox(messages: list[OutboxMessage], conn: Connection) -> None:
    _queue(conn, messages)


def _dispatch_outbox(
    now: datetime, limit: int, lease_until: datetime | None, room: dict[UUID, int], default_room: int,
    conn: Connection,
) -> Dispatched:
    query = sa.select(outbox).where(outbox.c.dispatched_at.is_(None)).order_by(outbox.c.seq).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    messages = conn.execute(query).all()
    if not messages:
        return Dispatched(0, [])
    e = webhook_endpoints.c
    endpoints = conn.execute(
        sa.select(e.id, e.workspace_id, e.event_types, e.url, e.secret, e.previous_secret,
                  e.previous_secret_until, e.failing_since)
        .where(e.workspace_id.in_({m.workspace_id for m in messages}), e.disabled.is_(False))
    ).all()
    by_workspace: dict[UUID, list[Any]] = {}
    for endpoint in endpoints:
        by_workspace.setdefault(endpoint.workspace_id, []).append(endpoint)
    rows: list[dict[str, Any]] = []
    sources: list[tuple[Any, Any]] = []
    for m in messages:
        for endpoint in by_workspace.get(m.workspace_id, ()):
            if endpoint.event_types and m.event_type not in endpoint.event_types:
                continue
            rows.append(dict(
                id=uuid4(), message_id=m.id, endpoint_id=endpoint.id, workspace_id=m.workspace_id,
                bot_id=m.bot_id, event_type=m.event_type, status=PENDING, attempts=0, next_attempt_at=now,
                lease_until=None, last_status_code=None, created_at=now, updated_at=now,
            ))
            sources.append((m, endpoint))
    blocked: set[tuple[UUID, UUID]] = set()
    overflow: set[UUID] = set()
    leased: list[int] = []
    if lease_until is not None and rows:
        d = webhook_deliveries.c
        pairs = {(r["endpoint_id"], r["bot_id"]) for r in rows if r["bot_id"] is not None}
        if pairs:
            earlier = conn.execute(
                sa.select(d.endpoint_id, d.bot_id).distinct().where(
                    d.status == PENDING,
                    d.bot_id.in_({bot for _, bot in pairs}),
                    d.endpoint_id.in_({endpoint for endpoint, _ in pairs}),
                )
            ).all()
            blocked = pairs & {(r.endpoint_id, r.bot_id) for r in earlier}
        for i, row in enumerate(rows):
            if (row["endpoint_id"], row["bot_id"]) in blocked:
                continue
            left = room.get(row["endpoint_id"], default_room)
            if left <= 0:
                overflow.add(row["endpoint_id"])
                continue
            room[row["endpoint_id"]] = left - 1
            row["lease_until"] = lease_until
            leased.append(i)
    if rows:
        inserted = conn.execute(
            webhook_deliveries.insert().returning(webhook_deliveries.c.seq, sort_by_parameter_order=True), rows
        ).all()
    conn.execute(outbox.update().where(outbox.c.seq.in_([m.seq for m in messages])).values(dispatched_at=now))
    ready = []
    for i in leased:
        row, (message, endpoint) = rows[i], sources[i]
        delivery = Delivery(
            seq=inserted[i].seq, id=row["id"], message_id=message.id, endpoint_id=endpoint.id,
            workspace_id=message.workspace_id, bot_id=message.bot_id, event_type=message.event_type,
            status=PENDING, attempts=0, next_attempt_at=now, last_status_code=None, created_at=now,
            updated_at=now,
        )
        ready.append(DueDelivery(delivery, message.payload, endpoint.url, endpoint.secret,
                                 endpoint.previous_secret, endpoint.previous_secret_until,
                                 endpoint.failing_since, lease_until))
    return Dispatched(len(messages), ready, blocked, overflow)


def _claimable(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """Due, not leased, and not behind an earlier pending delivery of its bot to its endpoint."""
    d = webhook_deliveries.c
    earlier = webhook_deliveries.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.endpoint_id == d.endpoint_id,
        earlier.c.bot_id == d.bot_id,
        earlier.c.status == PENDING,
        earlier.c.seq < d.seq,
    )
    return (
        d.status == PENDING,
        d.next_attempt_at <= now,
        sa.or_(d.lease_until.is_(None), d.lease_until < now),
        sa.or_(d.bot_id.is_(None), ~blocked),
    )


def _claim_for_endpoints(
    now: datetime, lease_until: datetime, rooms: dict[UUID, int], conn: Connection
) -> list[DueDelivery]:
    d = webhook_deliveries.c
    seqs: list[int] = []
    for endpoint, room in rooms.items():
        # One endpoint's claimable deliveries, longest due first: an index walk over its due
        # deliveries only, stopping after ``room`` rows — whatever waits for a later retry, and
        # whatever other endpoints have queued, is never read.
        query = (sa.select(d.seq).where(d.endpoint_id == endpoint, *_claimable(now))
                 .order_by(d.next_attempt_at, d.seq).limit(room))
        seqs.extend(conn.execute(query).scalars())
    return _lease_and_load(seqs, now, lease_until, conn)


def _claim_deliveries(
    now: datetime, lease_until: datetime, limit: int, skip_endpoints: list[UUID], per_endpoint: int,
    conn: Connection,
) -> list[DueDelivery]:
    d = webhook_deliveries.c
    due = (
        sa.select(d.seq, sa.func.row_number().over(partition_by=d.endpoint_id, order_by=d.seq).label("rank"))
        .where(*_claimable(now))
    )
    if skip_endpoints:
        due = due.where(d.endpoint_id.not_in(skip_endpoints))
    # At most ``per_endpoint`` of one endpoint: a busy endpoint's backlog must not crowd out the
    # others' deliveries from the claim.
    ranked = due.subquery()
    query = sa.select(ranked.c.seq).where(ranked.c.rank <= per_endpoint).order_by(ranked.c.seq).limit(limit)
    return _lease_and_load([r.seq for r in conn.execute(query)], now, lease_until, conn)


def _lease_and_load(seqs: list[int], now: datetime, lease_until: datetime, conn: Connection) -> list[DueDelivery]:
    d = webhook_deliveries.c
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
                    r.failing_since, lease_until)
        for r in rows
    ]


def _record_attempts(results: list[AttemptResult], release: list[int], conn: Connection) -> None:
    d, e = webhook_deliveries.c, webhook_endpoints.c
    if results:
        conn.execute(webhook_attempts.insert(), [
            dict(delivery_seq=r.seq, attempted_at=r.attempt.attempted_at, status_code=r.attempt.status_code,
                 duration_ms=r.attempt.duration_ms, error=r.attempt.error, response=r.attempt.response)
            for r in results
        ])
        conn.execute(
            webhook_deliveries.update().where(d.seq == sa.bindparam("b_seq")).values(
                status=sa.bindparam("b_status"), attempts=d.attempts + 1,
                next_attempt_at=sa.bindparam("b_retry_at"), lease_until=None,
                last_status_code=sa.bindparam("b_code"), updated_at=sa.bindparam("b_at"),
            ),
            [dict(b_seq=r.seq, b_status=r.outcome.status, b_retry_at=r.outcome.retry_at,
                  b_code=r.attempt.status_code, b_at=r.attempt.attempted_at) for r in results],
        )
    # The endpoints' failure records: the latest outcome per endpoint decides.
    latest: dict[UUID, AttemptResult] = {}
    for r in results:
        latest[r.endpoint_id] = r
    for endpoint_id, r in latest.items():
        outcome = r.outcome
        if outcome.disable_endpoint:
            conn.execute(webhook_endpoints.update().where(e.id == endpoint_id).values(
                failing_since=outcome.endpoint_failing_since, disabled=True,
                disabled_reason="every delivery failed for 5 days"))
        elif outcome.endpoint_failing_since is None:
            conn.execute(webhook_endpoints.update().where(e.id == endpoint_id, e.failing_since.is_not(None))
                         .values(failing_since=None))
        else:
            conn.execute(webhook_endpoints.update().where(e.id == endpoint_id, e.failing_since.is_(None))
                         .values(failing_since=outcome.endpoint_failing_since))
    if release:
        conn.execute(webhook_deliveries.update().where(d.seq.in_(release), d.status == PENDING)
                     .values(lease_until=None))


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


# -- calendars: units of work -----------------------------------------------------------------
def _for_update(query: sa.Select[Any], conn: Connection) -> sa.Select[Any]:
    """Lock the rows read (PostgreSQL); SQLite's single writer serialises anyway."""
    return query.with_for_update() if conn.dialect.name == "postgresql" else query


def _calendar_row(c: Calendar) -> dict[str, Any]:
    """The mutable columns of a calendar."""
    return dict(
        platform=c.platform,
        status=c.status,
        status_reason=c.status_reason,
        status_changes=[
            {"status": s.status, "reason": s.reason, "created_at": s.created_at.isoformat()}
            for s in c.status_changes
        ],
        credentials=c.sealed_credentials,
        state=c.state,
        auto_record=c.auto_record.to_dict() if c.auto_record is not None else None,
        email=c.email,
        platform_email=c.platform_email,
        version=c.version,
        updated_at=c.updated_at,
        last_synced_at=c.last_synced_at,
        next_sync_at=c.next_sync_at,
        lease_until=c.lease_until,
        sync_error=c.sync_error,
    )


def _calendar(r: Any) -> Calendar:
    return Calendar(
        id=r.id,
        workspace_id=r.workspace_id,
        platform=r.platform,
        status=r.status,
        status_reason=r.status_reason,
        sealed_credentials=r.credentials,
        state=r.state or {},
        auto_record=AutoRecord.from_dict(r.auto_record),
        email=r.email,
        platform_email=r.platform_email,
        created_at=r.created_at,
        updated_at=r.updated_at,
        version=r.version,
        status_changes=[
            CalendarStatusChange(
                s["status"], s.get("reason"), datetime.fromisoformat(s["created_at"])
            )
            for s in r.status_changes or []
        ],
        last_synced_at=r.last_synced_at,
        next_sync_at=r.next_sync_at,
        lease_until=r.lease_until,
        sync_error=r.sync_error,
    )


def _insert_calendar(calendar: Calendar, messages: list[OutboxMessage], conn: Connection) -> None:
    conn.execute(
        calendars.insert().values(
            **_calendar_row(calendar),
            id=calendar.id,
            workspace_id=calendar.workspace_id,
            created_at=calendar.created_at,
        )
    )
    _queue(conn, messages)


def _save_calendar(
    calendar: Calendar, expected_version: int, messages: list[OutboxMessage], conn: Connection
) -> None:
    result = conn.execute(
        calendars.update()
        .where(calendars.c.id == calendar.id, calendars.c.version == expected_version)
        .values(**_calendar_row(calendar))
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleVersion(calendar.id, expected_version)
    _queue(conn, messages)


def _delete_calendar(workspace_id: UUID, calendar_id: UUID, conn: Connection) -> list[UUID] | None:
    where = (calendars.c.id == calendar_id, calendars.c.workspace_id == workspace_id)
    if conn.execute(_for_update(sa.select(calendars.c.id).where(*where), conn)).first() is None:
        return None
    e = calendar_events.c
    ids = [r.id for r in conn.execute(sa.select(e.id).where(e.calendar_id == calendar_id))]
    conn.execute(calendar_events.delete().where(e.calendar_id == calendar_id))
    conn.execute(calendars.delete().where(*where))
    return ids


def _claim_calendars(
    now: datetime, lease_until: datetime, limit: int, conn: Connection
) -> list[Calendar]:
    c = calendars.c
    query = sa.select(c.id).where(c.next_sync_at <= now).order_by(c.next_sync_at).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # concurrent claimers take different rows
    ids = [r.id for r in conn.execute(query)]
    if not ids:
        return []
    # ``next_sync_at`` moves to the lease's end: a syncer that dies leaves the calendar due then.
    conn.execute(
        calendars.update()
        .where(c.id.in_(ids))
        .values(lease_until=lease_until, next_sync_at=lease_until, version=c.version + 1)
    )
    rows = conn.execute(sa.select(calendars).where(c.id.in_(ids)).order_by(c.created_at)).all()
    return [_calendar(r) for r in rows]


#: Columns a sync may change on a stored event (the client's bot request is not among them).
_EVENT_SYNCED = (
    "key",
    "ical_uid",
    "recurrence_id",
    "start_time",
    "end_time",
    "all_day",
    "title",
    "meeting_url",
    "meeting_platform",
    "recurring",
    "cancelled",
    "is_deleted",
    "organizer",
    "attendees",
    "details",
    "raw",
    "updated_at",
)


def _calendar_event_row(ev: CalendarEvent) -> dict[str, Any]:
    return dict(
        id=ev.id,
        workspace_id=ev.workspace_id,
        calendar_id=ev.calendar_id,
        platform=ev.platform,
        key=ev.key,
        ical_uid=ev.ical_uid,
        recurrence_id=ev.recurrence_id,
        start_time=ev.start_time,
        end_time=ev.end_time,
        all_day=ev.all_day,
        title=ev.title,
        meeting_url=ev.meeting_url,
        meeting_platform=ev.meeting_platform,
        recurring=ev.recurring,
        cancelled=ev.cancelled,
        is_deleted=ev.is_deleted,
        organizer=ev.organizer,
        attendees=ev.attendees,
        details=ev.details,
        raw=ev.raw,
        manual_bot=ev.manual_bot,
        bot_opt_out=ev.bot_opt_out,
        created_at=ev.created_at,
        updated_at=ev.updated_at,
    )


def _calendar_event(r: Any) -> CalendarEvent:
    return CalendarEvent(
        id=r.id,
        workspace_id=r.workspace_id,
        calendar_id=r.calendar_id,
        platform=r.platform,
        key=r.key,
        ical_uid=r.ical_uid,
        recurrence_id=r.recurrence_id,
        start_time=r.start_time,
        end_time=r.end_time,
        all_day=r.all_day,
        title=r.title,
        meeting_url=r.meeting_url,
        meeting_platform=r.meeting_platform,
        recurring=r.recurring,
        cancelled=r.cancelled,
        is_deleted=r.is_deleted,
        organizer=r.organizer,
        attendees=r.attendees or [],
        details=r.details or {},
        raw=r.raw or {},
        created_at=r.created_at,
        updated_at=r.updated_at,
        manual_bot=r.manual_bot,
        bot_opt_out=r.bot_opt_out,
    )


_UPDATE_EVENT = (
    calendar_events.update()
    .where(calendar_events.c.id == sa.bindparam("match_id"))
    .values({name: sa.bindparam(name) for name in _EVENT_SYNCED})
)


def _apply_calendar_sync(
    calendar: Calendar,
    expected_version: int,
    events: list[CalendarEvent],
    messages: list[OutboxMessage],
    conn: Connection,
) -> None:
    _save_calendar(calendar, expected_version, messages, conn)
    if not events:
        return
    ids = [ev.id for ev in events]
    existing: set[UUID] = set()
    for chunk in range(0, len(ids), 500):
        query = sa.select(calendar_events.c.id).where(
            calendar_events.c.id.in_(ids[chunk : chunk + 500])
        )
        existing.update(r.id for r in conn.execute(query))
    updates = [
        {**{name: row[name] for name in _EVENT_SYNCED}, "match_id": ev.id}
        for ev in events
        if ev.id in existing
        for row in (_calendar_event_row(ev),)
    ]
    inserts = [_calendar_event_row(ev) for ev in events if ev.id not in existing]
    if updates:
        conn.execute(_UPDATE_EVENT, updates)
    if inserts:
        conn.execute(calendar_events.insert(), inserts)


def _event_bot_where(workspace_id: UUID, dedup_key: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (event_bots.c.workspace_id == workspace_id, event_bots.c.dedup_key == dedup_key)


def _event_bot(r: Any) -> EventBot:
    return EventBot(r.workspace_id, r.dedup_key, r.bot_id, r.claim, r.claimed_at)


def _locked_event_bot(conn: Connection, workspace_id: UUID, dedup_key: str) -> Any:
    query = sa.select(event_bots).where(*_event_bot_where(workspace_id, dedup_key))
    return conn.execute(_for_update(query, conn)).first()


def _reserve_event_bot(
    workspace_id: UUID,
    dedup_key: str,
    token: UUID,
    now: datetime,
    stale_before: datetime,
    conn: Connection,
) -> EventBot:
    row = _locked_event_bot(conn, workspace_id, dedup_key)
    if row is None:
        conn.execute(
            _insert_ignore(conn, event_bots).values(
                workspace_id=workspace_id,
                dedup_key=dedup_key,
                bot_id=None,
                claim=token,
                claimed_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    elif row.bot_id is None and (
        row.claim is None or row.claimed_at is None or row.claimed_at < stale_before
    ):
        conn.execute(
            event_bots.update()
            .where(*_event_bot_where(workspace_id, dedup_key), event_bots.c.bot_id.is_(None))
            .values(claim=token, claimed_at=now, updated_at=now)
        )
    else:
        return _event_bot(row)
    row = _locked_event_bot(conn, workspace_id, dedup_key)
    return _event_bot(row)


def _hold_key(
    conn: Connection, workspace_id: UUID, ref: str, dedup_key: str, now: datetime
) -> str | None:
    """Make ``ref`` hold ``dedup_key``; the key it held before, if another."""
    r = event_bot_refs.c
    where = (r.workspace_id == workspace_id, r.ref == ref)
    old = conn.execute(_for_update(sa.select(r.dedup_key).where(*where), conn)).scalar()
    if old is None:
        inserted = conn.execute(
            _insert_ignore(conn, event_bot_refs).values(
                workspace_id=workspace_id, ref=ref, dedup_key=dedup_key, created_at=now
            )
        )
        if inserted.rowcount == 1:  # type: ignore[attr-defined]
            return None
        old = conn.execute(_for_update(sa.select(r.dedup_key).where(*where), conn)).scalar()
    if old == dedup_key:
        return None
    conn.execute(event_bot_refs.update().where(*where).values(dedup_key=dedup_key))
    return old  # type: ignore[no-any-return]


def _bind_event_bot(
    workspace_id: UUID,
    dedup_key: str,
    token: UUID,
    bot_id: UUID,
    ref: str,
    now: datetime,
    conn: Connection,
) -> tuple[bool, str | None]:
    row = _locked_event_bot(conn, workspace_id, dedup_key)
    if row is None or row.bot_id is not None or row.claim != token:
        return False, None
    conn.execute(
        event_bots.update()
        .where(*_event_bot_where(workspace_id, dedup_key))
        .values(bot_id=bot_id, claim=None, claimed_at=None, updated_at=now)
    )
    return True, _hold_key(conn, workspace_id, ref, dedup_key, now)


def _link_event_bot_ref(
    workspace_id: UUID, ref: str, dedup_key: str, bot_id: UUID, now: datetime, conn: Connection
) -> tuple[bool, str | None]:
    row = _locked_event_bot(conn, workspace_id, dedup_key)
    if row is None or row.bot_id != bot_id:
        return False, None
    return True, _hold_key(conn, workspace_id, ref, dedup_key, now)


def _holders(conn: Connection, workspace_id: UUID, dedup_key: str) -> list[str]:
    r = event_bot_refs.c
    query = (
        sa.select(r.ref).where(r.workspace_id == workspace_id, r.dedup_key == dedup_key).limit(2)
    )
    return [row.ref for row in conn.execute(query)]


def _move_event_bot(
    workspace_id: UUID, ref: str, old_key: str, new_key: str, now: datetime, conn: Connection
) -> UUID | None:
    row = _locked_event_bot(conn, workspace_id, old_key)
    if row is None or row.bot_id is None or _holders(conn, workspace_id, old_key) != [ref]:
        return None
    if _locked_event_bot(conn, workspace_id, new_key) is not None:
        return None
    conn.execute(
        event_bots.update()
        .where(*_event_bot_where(workspace_id, old_key))
        .values(dedup_key=new_key, updated_at=now)
    )
    r = event_bot_refs.c
    conn.execute(
        event_bot_refs.update()
        .where(r.workspace_id == workspace_id, r.ref == ref)
        .values(dedup_key=new_key)
    )
    return row.bot_id  # type: ignore[no-any-return]


def _forget_if_unheld(
    conn: Connection, workspace_id: UUID, dedup_key: str, row: Any
) -> UUID | None:
    if row is None or row.bot_id is None or _holders(conn, workspace_id, dedup_key):
        return None
    conn.execute(event_bots.delete().where(*_event_bot_where(workspace_id, dedup_key)))
    return row.bot_id  # type: ignore[no-any-return]


def _release_event_bot_key(workspace_id: UUID, dedup_key: str, conn: Connection) -> UUID | None:
    row = _locked_event_bot(conn, workspace_id, dedup_key)
    return _forget_if_unheld(conn, workspace_id, dedup_key, row)


def _unlink_event_bot_ref(workspace_id: UUID, ref: str, conn: Connection) -> UUID | None:
    r = event_bot_refs.c
    where = (r.workspace_id == workspace_id, r.ref == ref)
    key = conn.execute(sa.select(r.dedup_key).where(*where)).scalar()
    if key is None:
        return None
    row = _locked_event_bot(conn, workspace_id, key)
    conn.execute(event_bot_refs.delete().where(*where))
    return _forget_if_unheld(conn, workspace_id, key, row)


def _event_bot_links(
    workspace_id: UUID, refs: list[str], conn: Connection
) -> dict[str, EventBotLink]:
    r, e = event_bot_refs.c, event_bots.c
    out: dict[str, EventBotLink] = {}
    for chunk in range(0, len(refs), 500):
        query = (
            sa.select(
                r.ref, r.dedup_key, e.bot_id, bots.c.state, bots.c.join_at, bots.c.meeting_key
            )
            .select_from(event_bot_refs)
            .outerjoin(
                event_bots, sa.and_(e.workspace_id == r.workspace_id, e.dedup_key == r.dedup_key)
            )
            .outerjoin(bots, bots.c.id == e.bot_id)
            .where(r.workspace_id == workspace_id, r.ref.in_(refs[chunk : chunk + 500]))
        )
        for row in conn.execute(query):
            out[row.ref] = EventBotLink(
                ref=row.ref,
                dedup_key=row.dedup_key,
                bot_id=row.bot_id,
                bot_state=row.state,
                bot_join_at=row.join_at,
                bot_meeting_key=row.meeting_key,
            )
    return out


# -- mailboxes: units of work ---------------------------------------------------------------
def _mailbox_row(m: Mailbox) -> dict[str, Any]:
    return dict(
        id=m.id,
        workspace_id=m.workspace_id,
        address=m.address,
        bot_config=m.bot_config,
        allowed_senders=list(m.allowed_senders),
        send_replies=m.send_replies,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


def _mailbox(r: Any) -> Mailbox:
    return Mailbox(
        id=r.id,
        workspace_id=r.workspace_id,
        address=r.address,
        bot_config=dict(r.bot_config),
        allowed_senders=list(r.allowed_senders),
        send_replies=r.send_replies,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _address_taken(conn: Connection, address: str, other_than: UUID | None) -> bool:
    query = sa.select(bot_mailboxes.c.id).where(bot_mailboxes.c.address == address)
    if other_than is not None:
        query = query.where(bot_mailboxes.c.id != other_than)
    return conn.execute(query).first() is not None


def _insert_mailbox(mailbox: Mailbox, conn: Connection) -> None:
    # The unique index decides races; ON CONFLICT keeps the transaction (and its batch) usable.
    if _address_taken(conn, mailbox.address, None):
        raise MailboxAddressTaken(f"The address {mailbox.address} belongs to another mailbox.")
    inserted = conn.execute(
        _insert_ignore(conn, bot_mailboxes).values(**_mailbox_row(mailbox))
    ).rowcount
    if inserted != 1:
        raise MailboxAddressTaken(f"The address {mailbox.address} belongs to another mailbox.")


def _save_mailbox(mailbox: Mailbox, conn: Connection) -> bool:
    if _address_taken(conn, mailbox.address, mailbox.id):
        raise MailboxAddressTaken(f"The address {mailbox.address} belongs to another mailbox.")
    row = _mailbox_row(mailbox)
    statement = (
        bot_mailboxes.update()
        .where(
            bot_mailboxes.c.id == mailbox.id, bot_mailboxes.c.workspace_id == mailbox.workspace_id
        )
        .values(**{k: v for k, v in row.items() if k not in ("id", "workspace_id", "created_at")})
    )
    return bool(conn.execute(statement).rowcount == 1)


def _delete_mailbox(workspace_id: UUID, mailbox_id: UUID, conn: Connection) -> bool:
    found = conn.execute(
        sa.select(bot_mailboxes.c.id).where(
            bot_mailboxes.c.id == mailbox_id, bot_mailboxes.c.workspace_id == workspace_id
        )
    ).first()
    if found is None:
        return False
    conn.execute(mailbox_invites.delete().where(mailbox_invites.c.mailbox_id == mailbox_id))
    conn.execute(bot_mailboxes.delete().where(bot_mailboxes.c.id == mailbox_id))
    return True


def _invite_row(i: Invite) -> dict[str, Any]:
    return dict(
        id=i.id,
        mailbox_id=i.mailbox_id,
        workspace_id=i.workspace_id,
        uid=i.uid,
        method=i.method,
        sequence=i.sequence,
        dtstamp=i.dtstamp,
        status=i.status,
        reason=i.reason,
        calendar=i.calendar,
        body_link=i.body_link,
        instances=[c.to_json() for c in i.instances],
        bots=[b.to_json() for b in i.bots],
        recurring=i.recurring,
        organizer=i.organizer,
        title=i.title,
        sender=i.sender,
        message_id=i.message_id,
        next_check_at=i.next_check_at,
        version=i.version,
        created_at=i.created_at,
        updated_at=i.updated_at,
    )


def _invite(r: Any) -> Invite:
    return Invite(
        id=r.id,
        mailbox_id=r.mailbox_id,
        workspace_id=r.workspace_id,
        uid=r.uid,
        method=r.method,
        sequence=r.sequence,
        dtstamp=r.dtstamp,
        status=r.status,
        reason=r.reason,
        calendar=r.calendar,
        body_link=r.body_link,
        instances=[InstanceChange.from_json(c) for c in r.instances],
        bots=[HeldBot.from_json(b) for b in r.bots],
        recurring=r.recurring,
        organizer=r.organizer,
        title=r.title,
        sender=r.sender,
        message_id=r.message_id,
        next_check_at=r.next_check_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        version=r.version,
    )


def _save_invite(invite: Invite, expected_version: int | None, conn: Connection) -> None:
    row = _invite_row(invite)
    if expected_version is None:
        if conn.execute(_insert_ignore(conn, mailbox_invites).values(**row)).rowcount != 1:
            raise StaleVersion(invite.uid, 0)
        return
    i = mailbox_invites.c
    statement = (
        mailbox_invites.update()
        .where(i.id == invite.id, i.version == expected_version)
        .values(
            **{
                k: v
                for k, v in row.items()
                if k not in ("id", "mailbox_id", "workspace_id", "uid", "created_at")
            }
        )
    )
    if conn.execute(statement).rowcount != 1:
        raise StaleVersion(invite.uid, expected_version)


# -- recordings: units of work ----------------------------------------------------------------
def _recording_row(rec: Recording) -> dict[str, Any]:
    return {
        "id": rec.id,
        "workspace_id": rec.workspace_id,
        "bot_id": rec.bot_id,
        "bot_metadata": rec.bot_metadata,
        "status": rec.status.value,
        "sub_code": rec.sub_code,
        "error": rec.error,
        "duration": rec.duration,
        "started_at": rec.started_at,
        "completed_at": rec.completed_at,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "expires_at": rec.expires_at,
        "artifacts": [
            {
                "id": str(a.id),
                "kind": a.kind,
                "status": a.status.value,
                "created_at": a.created_at.isoformat(),
                "updated_at": a.updated_at.isoformat(),
                "files": {
                    label: {"path": f.path, "content_type": f.content_type, "size": f.size}
                    for label, f in a.files.items()
                },
                "data": a.data,
            }
            for a in rec.artifacts
        ],
    }


def _recording(r: Any) -> Recording:
    return Recording(
        id=r.id,
        workspace_id=r.workspace_id,
        bot_id=r.bot_id,
        bot_metadata=dict(r.bot_metadata or {}),
        status=RecordingStatus(r.status),
        sub_code=r.sub_code,
        started_at=r.started_at,
        completed_at=r.completed_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        expires_at=r.expires_at,
        error=r.error,
        duration=float(r.duration),
        artifacts=tuple(
            Artifact(
                id=UUID(a["id"]),
                kind=a["kind"],
                status=ArtifactStatus(a["status"]),
                created_at=datetime.fromisoformat(a["created_at"]),
                updated_at=datetime.fromisoformat(a["updated_at"]),
                files={
                    label: ArtifactFile(f["path"], f["content_type"], int(f["size"]))
                    for label, f in a["files"].items()
                },
                data=dict(a.get("data") or {}),
            )
            for a in r.artifacts or []
        ),
    )


def _save_recordings(
    recs: list[Recording],
    messages: list[OutboxMessage],
    bot: Bot | None,
    expected_version: int | None,
    change: StatusChange | None,
    conn: Connection,
) -> None:
    if bot is not None:
        if expected_version is None:
            raise ValueError("saving a bot with recordings needs its expected version")
        _save_bot(bot, expected_version, change, (), None, conn)
    for rec in recs:
        row = _recording_row(rec)
        changed = {k: v for k, v in row.items() if k not in ("id", "workspace_id", "bot_id")}
        statement = recordings.update().where(recordings.c.id == rec.id).values(**changed)
        updated = conn.execute(statement)
        if updated.rowcount != 1:  # type: ignore[attr-defined]
            conn.execute(recordings.insert().values(**row))
    _queue(conn, messages)


def _delete_recording(rec: Recording, messages: list[OutboxMessage], conn: Connection) -> bool:
    deleted = conn.execute(recordings.delete().where(recordings.c.id == rec.id))
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _queue(conn, messages)
    return True

"""Calendar use cases (SPEC §11): connect, read, change and remove calendars; sync one; schedule
or remove the bot of one calendar event.

**One sync** (:func:`sync_calendar`) fetches the complete truth of the sync window from the
calendar's provider, diffs it by occurrence key against the stored events (new → inserted,
changed → updated, missing inside the window or cancelled → ``is_deleted``), and writes the
events, the provider's new state and the calendar's status in one transaction fenced by the
calendar's version — so an update made during the fetch (new credentials, new auto-record
rules) wins, and the sync's stale view is dropped. Then it **reconciles bots**: every event of
the window is compared with what it should have (:func:`summon.domain.calendars.desired_bot`),
and only differences cost a write — a missing bot is attached, a moved meeting's bot
re-timed, a deleted or cancelled meeting's bot detached. Because it compares instead of
replaying changes, a sync that died half-way is repaired by the next one.

A bot someone deleted by hand is left deleted (until the meeting moves); a meeting that has
started keeps its bot even if it no longer matches the rules — only its cancellation removes
the bot (told to leave). A disconnected calendar keeps its bots (its meetings did not go away;
nothing is known about them until it reconnects); deleting the calendar releases them.

Webhooks: ``calendar.update`` when the status changes, ``calendar.sync_events`` when events
changed (``last_updated_ts`` = the sync's time: a client passes it as ``updated_at__gte``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from summon.abc import CalendarDisconnected, CalendarProvider, CalendarUnavailable
from summon.domain.calendars import (
    CONNECTED,
    CONNECTING,
    CREDENTIAL_FIELDS,
    DISCONNECTED,
    AutoRecord,
    Calendar,
    CalendarEvent,
    CalendarEventDeleted,
    CalendarEventFilter,
    CalendarFilter,
    EventBotLink,
    MeetingAlreadyEnded,
    StatusChange,
    calendar_sync_events_event,
    calendar_update_event,
    credentials_missing,
    desired_bot,
    diff_events,
    event_id_of_ref,
    event_ref,
    parse_link,
)
from summon.domain.errors import Conflict, FieldInvalid, NotFound, StaleVersion, SummonError
from summon.domain.events import OutboxMessage
from summon.secretbox import SecretBox, SecretUnreadable
from summon.services import event_bots
from summon.services.context import Context

log = logging.getLogger(__name__)

#: How long a syncer holds a claimed calendar (a fetch is bounded by the provider's 60 s).
SYNC_LEASE = timedelta(minutes=3)
FENCE_RETRIES = 5
MISSING = "This field is required."


@dataclass(frozen=True, slots=True)
class NewCalendar:
    platform: str
    credentials: Mapping[str, str]
    email: str | None = None
    auto_record: AutoRecord | None = None
    #: The account's address as the client knows it (Recall's ``oauth_email``).
    oauth_email: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarChanges:
    """A partial update: only the attributes in ``sent`` were given. ``credentials`` are merged
    into the stored ones."""

    sent: frozenset[str]
    credentials: Mapping[str, str] = field(default_factory=dict)
    email: str | None = None
    auto_record: AutoRecord | None = None
    oauth_email: str | None = None


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one sync did: events written, bots attached/detached, and failures."""

    status: str
    events_changed: int = 0
    bots_attached: int = 0
    bots_detached: int = 0
    bot_errors: int = 0
    error: str | None = None


# -- the provider -------------------------------------------------------------------------------
def provider_of(ctx: Context, platform: str) -> CalendarProvider:
    """The provider for ``platform``, built with this service's clock and address policy."""
    from summon.calendars import provider_for

    return provider_for(platform, clock=ctx.clock, public_only=ctx.settings.calendar_block_private)


def _box(ctx: Context) -> SecretBox:
    if ctx.secrets is None:
        raise RuntimeError("the context has no SecretBox: calendar credentials cannot be kept")
    return ctx.secrets


def _seal(ctx: Context, credentials: Mapping[str, Any]) -> str:
    return _box(ctx).encrypt(json.dumps(dict(credentials), separators=(",", ":")))


def _unseal(ctx: Context, calendar: Calendar) -> dict[str, Any]:
    return json.loads(_box(ctx).decrypt(calendar.sealed_credentials))  # type: ignore[no-any-return]


def _check_credentials(ctx: Context, platform: str, credentials: Mapping[str, Any]) -> None:
    missing = credentials_missing(platform, (k for k, v in credentials.items() if v))
    if missing:
        raise FieldInvalid(missing[0], MISSING)
    try:
        provider = provider_of(ctx, platform)
    except (LookupError, ImportError):
        raise FieldInvalid("platform", f"{platform} calendars are not available here.") from None
    try:
        provider.validate(dict(credentials))
    except ValueError as exc:
        raise FieldInvalid(_field_named(platform, str(exc)), str(exc)) from None


def _field_named(platform: str, message: str) -> str:
    """The credential field a provider's message is about (it names the field first)."""
    for name in CREDENTIAL_FIELDS[platform]:
        if message.startswith(name) or f" {name} " in f" {message} ":
            return name
    return CREDENTIAL_FIELDS[platform][0]


def _platform_email(platform: str, credentials: Mapping[str, Any], given: str | None) -> str | None:
    if given:
        return given
    username = str(credentials.get("username") or "")
    return username.lower() if platform == "caldav" and "@" in username else None


# -- calendars ----------------------------------------------------------------------------------
async def create_calendar(ctx: Context, workspace_id: UUID, new: NewCalendar) -> Calendar:
    """Connect a calendar: stored ``connecting``, synced at once by a syncer."""
    credentials = {k: v for k, v in new.credentials.items() if v is not None}
    _check_credentials(ctx, new.platform, credentials)
    now = ctx.clock.now()
    calendar = Calendar(
        id=uuid4(),
        workspace_id=workspace_id,
        platform=new.platform,
        status=CONNECTING,
        status_reason=None,
        sealed_credentials=_seal(ctx, credentials),
        state={},
        auto_record=new.auto_record,
        email=new.email,
        platform_email=_platform_email(new.platform, credentials, new.oauth_email),
        created_at=now,
        updated_at=now,
        status_changes=[StatusChange(CONNECTING, None, now)],
        next_sync_at=now,
    )
    await ctx.store.insert_calendar(calendar)
    ctx.signals.notify("calendars")
    return calendar


async def get_calendar(ctx: Context, workspace_id: UUID, calendar_id: UUID) -> Calendar:
    calendar = await ctx.store.get_calendar(workspace_id, calendar_id)
    if calendar is None:
        raise NotFound("calendar", calendar_id)
    return calendar


async def list_calendars(
    ctx: Context,
    workspace_id: UUID,
    flt: CalendarFilter,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Calendar]:
    return await ctx.store.list_calendars(workspace_id, flt, after, limit)


async def update_calendar(
    ctx: Context, workspace_id: UUID, calendar_id: UUID, changes: CalendarChanges
) -> Calendar:
    """PATCH. New credentials reconnect the calendar (``connecting``, its sync state dropped);
    new credentials, rules or owner e-mail make it sync at once."""
    for _ in range(FENCE_RETRIES):
        calendar = await get_calendar(ctx, workspace_id, calendar_id)
        now = ctx.clock.now()
        updated = replace(calendar, version=calendar.version + 1, updated_at=now)
        messages: list[OutboxMessage] = []
        if changes.credentials:
            try:
                current = _unseal(ctx, calendar)
            except SecretUnreadable:
                current = {}
            merged = {**current, **{k: v for k, v in changes.credentials.items() if v is not None}}
            _check_credentials(ctx, calendar.platform, merged)
            updated.sealed_credentials = _seal(ctx, merged)
            updated.state = {}
            updated.platform_email = _platform_email(
                calendar.platform, merged, changes.oauth_email or calendar.platform_email
            )
            if updated.with_status(CONNECTING, None, now):
                messages.append(calendar_update_event(updated, now))
        if "email" in changes.sent:
            updated.email = changes.email
        if "oauth_email" in changes.sent and changes.oauth_email:
            updated.platform_email = changes.oauth_email
        if "auto_record" in changes.sent:
            updated.auto_record = changes.auto_record
        if changes.credentials or changes.sent & {"email", "oauth_email", "auto_record"}:
            updated.next_sync_at, updated.lease_until = now, None
        try:
            await ctx.store.save_calendar(updated, calendar.version, messages)
        except StaleVersion:
            continue
        ctx.signals.notify("calendars")
        if messages:
            ctx.signals.notify("outbox")
        return updated
    raise Conflict("The calendar changed while it was being updated; retry.")


async def delete_calendar(ctx: Context, workspace_id: UUID, calendar_id: UUID) -> None:
    """Disconnect and forget the calendar and its events; their bots are released."""
    event_ids = await ctx.store.delete_calendar(workspace_id, calendar_id)
    if event_ids is None:
        raise NotFound("calendar", calendar_id)
    for event_id in event_ids:
        await event_bots.detach_bot(ctx, workspace_id, ref=event_ref(event_id))


async def request_sync(ctx: Context, workspace_id: UUID, calendar_id: UUID) -> Calendar:
    """Sync now (a disconnected calendar is tried again too): the syncers are woken."""
    for _ in range(FENCE_RETRIES):
        calendar = await get_calendar(ctx, workspace_id, calendar_id)
        now = ctx.clock.now()
        if calendar.next_sync_at is not None and calendar.next_sync_at <= now:
            break  # due already (or being synced: its lease ends first)
        updated = replace(
            calendar, version=calendar.version + 1, next_sync_at=now, lease_until=None
        )
        try:
            await ctx.store.save_calendar(updated, calendar.version)
        except StaleVersion:
            continue
        calendar = updated
        break
    else:
        raise Conflict("The calendar changed while a sync was being requested; retry.")
    ctx.signals.notify("calendars")
    return calendar


# -- one sync -------------------------------------------------------------------------------------
def sync_window(ctx: Context, now: datetime) -> tuple[datetime, datetime]:
    settings = ctx.settings
    return (
        now - timedelta(days=settings.calendar_window_past_days),
        now + timedelta(days=settings.calendar_window_future_days),
    )


async def sync_calendar(
    ctx: Context,
    calendar_id: UUID,
    *,
    claimed: Calendar | None = None,
    provider: CalendarProvider | None = None,
) -> SyncOutcome:
    """Sync one calendar now (see the module docstring). ``claimed`` is the calendar as a
    syncer claimed it (its lease); without it the calendar is read fresh. ``provider``
    replaces the platform's provider. Never raises for what the source does: a refusal makes
    the calendar ``disconnected`` (with the reason), an outage is retried next period."""
    calendar = claimed or await ctx.store.get_calendar(None, calendar_id)
    if calendar is None:
        raise NotFound("calendar", calendar_id)
    now = ctx.clock.now()
    window_start, window_end = sync_window(ctx, now)
    after = replace(
        calendar,
        version=calendar.version + 1,
        lease_until=None,
        next_sync_at=now + timedelta(seconds=ctx.settings.calendar_sync_interval_s),
    )
    try:
        credentials = _unseal(ctx, calendar)
        source = provider or provider_of(ctx, calendar.platform)
        result = await source.fetch(credentials, calendar.state or None, window_start, window_end)
    except (CalendarDisconnected, SecretUnreadable, LookupError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        after.next_sync_at, after.sync_error = None, None
        return await _finish(ctx, calendar, after, DISCONNECTED, reason, [], now)
    except CalendarUnavailable as exc:
        after.sync_error = exc.reason
        return await _finish(ctx, calendar, after, calendar.status, calendar.status_reason, [], now)
    except Exception as exc:  # a bug in a provider must not stop the syncer
        log.exception("calendar %s: sync failed", calendar.id)
        after.sync_error = f"internal error: {type(exc).__name__}"
        return await _finish(ctx, calendar, after, calendar.status, calendar.status_reason, [], now)

    earliest = min([window_start, *(o.start for o in result.occurrences)])
    keys = [o.key for o in result.occurrences]
    stored = await ctx.store.calendar_events(calendar.id, start_from=earliest, keys=keys)
    changed = diff_events(calendar, stored, result.occurrences, (window_start, window_end), now)
    for problem in result.problems:
        log.info("calendar %s: skipped event %s: %s", calendar.id, problem.uid, problem.reason)
    if result.credentials is not None:
        after.sealed_credentials = _seal(ctx, {**credentials, **result.credentials})
    after.state, after.sync_error, after.last_synced_at = dict(result.state), None, now
    outcome = await _finish(ctx, calendar, after, CONNECTED, None, changed, now)
    if outcome.error is not None:
        return outcome
    attached, detached, errors = await reconcile_bots(ctx, after, now)
    return replace(outcome, bots_attached=attached, bots_detached=detached, bot_errors=errors)


async def _finish(
    ctx: Context,
    before: Calendar,
    after: Calendar,
    status: str,
    reason: str | None,
    events: list[CalendarEvent],
    now: datetime,
) -> SyncOutcome:
    messages: list[OutboxMessage] = []
    if after.with_status(status, reason, now):
        messages.append(calendar_update_event(after, now))
    if events:
        messages.append(calendar_sync_events_event(after, now))
    try:
        await ctx.store.apply_calendar_sync(after, before.version, events, messages)
    except StaleVersion:
        # Changed while we fetched (new credentials or rules): that change asked for a new sync.
        return SyncOutcome(before.status, error="the calendar changed during the sync")
    if messages:
        ctx.signals.notify("outbox")
    if status == DISCONNECTED:
        log.warning("calendar %s disconnected: %s", after.id, reason)
    return SyncOutcome(status, events_changed=len(events), error=after.sync_error)


async def reconcile_bots(ctx: Context, calendar: Calendar, now: datetime) -> tuple[int, int, int]:
    """Give every event of the window the bot it should have; (attached, detached, failed).

    Events that started keep their bot unless they were cancelled or deleted (then it is told
    to leave). Failures (no capacity, a link no platform takes) are logged and tried again at
    the next sync."""
    window_start, window_end = sync_window(ctx, now)
    events = await ctx.store.calendar_events(
        calendar.id, start_from=window_start, start_to=window_end
    )
    events = [e for e in events if e.end_time > now or e.start_time > now]
    links = await ctx.store.event_bot_links(calendar.workspace_id, [e.ref for e in events])
    attached = detached = errors = 0
    for event in events:
        link = links.get(event.ref)
        try:
            action, wanted = _bot_action(calendar, event, link, now)
            if action == "detach":
                await event_bots.detach_bot(ctx, calendar.workspace_id, ref=event.ref)
                detached += 1
            elif action == "attach" and wanted is not None:
                key, config = wanted
                await event_bots.attach_bot(
                    ctx,
                    calendar.workspace_id,
                    ref=event.ref,
                    dedup_key=key,
                    occurrence=event,
                    bot_config=config,
                )
                attached += 1
        except SummonError as exc:
            errors += 1
            log.warning("calendar %s event %s: bot not scheduled: %s", calendar.id, event.id, exc)
    return attached, detached, errors


Wanted = tuple[str, dict[str, Any]]


def _bot_action(
    calendar: Calendar, event: CalendarEvent, link: EventBotLink | None, now: datetime
) -> tuple[str | None, Wanted | None]:
    """``("detach", None)``, ``("attach", (key, bot_config))``, or ``(None, None)`` when the
    event's bot is right."""
    keep: tuple[str | None, Wanted | None] = (None, None)
    if event.start_time <= now:
        gone = event.is_deleted or event.cancelled
        return ("detach", None) if gone and link is not None else keep
    desired = desired_bot(calendar, event, now)
    if desired is None:
        return ("detach", None) if link is not None else keep
    key, config = desired
    if link is None or link.dedup_key != event_bots.stored_key(key):
        return "attach", desired
    if link.bot_id is None or link.bot_state is None:
        return keep  # being created, or deleted by hand: leave it
    if link.bot_state != "scheduled":
        return keep
    meeting = parse_link(str(config.get("meeting_url") or "") or event.meeting_url)
    if link.bot_join_at != event.start_time or (
        meeting is not None and meeting.key != link.bot_meeting_key
    ):
        return "attach", desired
    return keep


# -- calendar events ------------------------------------------------------------------------------
async def get_calendar_event(ctx: Context, workspace_id: UUID, event_id: UUID) -> CalendarEvent:
    event = await ctx.store.get_calendar_event(workspace_id, event_id)
    if event is None:
        raise NotFound("calendar event", event_id)
    return event


async def list_calendar_events(
    ctx: Context,
    workspace_id: UUID,
    flt: CalendarEventFilter,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[CalendarEvent]:
    return await ctx.store.list_calendar_events(workspace_id, flt, after, limit)


async def bots_of_events(
    ctx: Context, workspace_id: UUID, events: Sequence[CalendarEvent]
) -> dict[UUID, EventBotLink]:
    """Each event's bot link (events without a bot are left out)."""
    links = await ctx.store.event_bot_links(workspace_id, [e.ref for e in events])
    return {
        e.id: links[e.ref] for e in events if e.ref in links and links[e.ref].bot_id is not None
    }


async def schedule_event_bot(
    ctx: Context, workspace_id: UUID, event_id: UUID, dedup_key: str, bot_config: Mapping[str, Any]
) -> CalendarEvent:
    """``POST /calendar-events/{id}/bot/``: the event gets (or replaces) its bot under
    ``dedup_key``; the request is remembered, so the bot follows the event when it moves."""
    event = await get_calendar_event(ctx, workspace_id, event_id)
    if event.is_deleted:
        raise CalendarEventDeleted("The calendar event was deleted or cancelled.")
    now = ctx.clock.now()
    if event.end_time > event.start_time and event.end_time <= now:
        raise MeetingAlreadyEnded("The meeting has already ended.")
    if not (bot_config.get("meeting_url") or event.meeting_url):
        raise FieldInvalid("bot_config.meeting_url", event_bots.NO_LINK)
    request = {"deduplication_key": dedup_key, "bot_config": dict(bot_config)}
    await ctx.store.save_calendar_event_bot(event.id, request, False, now)
    try:
        await event_bots.attach_bot(
            ctx,
            workspace_id,
            ref=event.ref,
            dedup_key=dedup_key,
            occurrence=event,
            bot_config=bot_config,
        )
    except BaseException:
        await ctx.store.save_calendar_event_bot(event.id, event.manual_bot, event.bot_opt_out, now)
        raise
    return replace(event, manual_bot=request, bot_opt_out=False, updated_at=now)


async def unschedule_event_bot(ctx: Context, workspace_id: UUID, event_id: UUID) -> CalendarEvent:
    """``DELETE /calendar-events/{id}/bot/``: the event's bot is removed, and auto-record
    leaves this event alone from now on."""
    event = await get_calendar_event(ctx, workspace_id, event_id)
    now = ctx.clock.now()
    await ctx.store.save_calendar_event_bot(event.id, None, True, now)
    await event_bots.detach_bot(ctx, workspace_id, ref=event.ref)
    return replace(event, manual_bot=None, bot_opt_out=True, updated_at=now)


async def calendar_meetings(
    ctx: Context, workspace_id: UUID, bot_id: UUID
) -> list[tuple[CalendarEvent, Calendar]]:
    """The calendar events a bot serves, with their calendars (the bot's ``calendar_meetings``)."""
    out: list[tuple[CalendarEvent, Calendar]] = []
    calendars: dict[UUID, Calendar | None] = {}
    for ref in await event_bots.refs_of_bot(ctx, workspace_id, bot_id):
        event_id = event_id_of_ref(ref)
        event = await ctx.store.get_calendar_event(workspace_id, event_id) if event_id else None
        if event is None:
            continue
        if event.calendar_id not in calendars:
            calendars[event.calendar_id] = await ctx.store.get_calendar(
                workspace_id, event.calendar_id
            )
        calendar = calendars[event.calendar_id]
        if calendar is not None:
            out.append((event, calendar))
    return out

"""Every port of Summon in one file. Adapters live in modules named after their technology.

Contracts are stated here; ``tests/contract`` runs the same suite against every adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from summon.domain.bots import Bot, BotFilter
from summon.domain.calendars import (
    Calendar,
    CalendarEvent,
    CalendarEventFilter,
    CalendarFilter,
    EventBot,
    EventBotLink,
)
from summon.domain.deliveries import AttemptResult, Delivery, DeliveryFilter, Dispatched, DueDelivery
from summon.domain.events import OutboxMessage
from summon.domain.fleet import Admission, Agent, BotCommand
from summon.domain.lifecycle import StatusChange
from summon.domain.mailboxes import Invite, Mailbox  # -- mailboxes --
from summon.domain.recordings import Recording, RecordingFilter  # -- recordings --
from summon.domain.webhook_endpoints import WebhookEndpoint
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
    async def insert_bot(
        self, bot: Bot, messages: Sequence[OutboxMessage], admission: Admission | None = None
    ) -> Bot:
        """Insert a new bot, its ``status_changes`` (the history so far) and the messages, if
        ``admission`` holds (else raise ``AdhocPoolExhausted``/``ScheduledCapacityExhausted`` and
        insert nothing). Returns the bot as stored (``agent_id`` set when a slot was reserved)."""

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
        admission: Admission | None = None,
    ) -> None:
        """Write every mutable field of ``bot``, append ``change`` to its history if given, and
        queue ``messages`` — fenced by ``expected_version``, and only if ``admission`` holds."""

    @abstractmethod
    async def delete_bot(
        self, bot: Bot, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        """Delete the bot and its history for good and queue ``messages`` — fenced."""

    # -- scheduling and fleet --------------------------------------------------------------------
    @abstractmethod
    async def next_stage_at(self) -> datetime | None:
        """The earliest ``stage_at`` of any scheduled bot (an index seek, not a scan)."""

    @abstractmethod
    async def claim_due_bots(
        self, agent_id: UUID, now: datetime, lease_until: datetime, limit: int
    ) -> list[Bot]:
        """Claim up to ``limit`` scheduled bots with ``stage_at <= now`` that nobody holds a live
        lease on, for ``agent_id`` until ``lease_until``; each claimed bot's version moves on
        (the returned bots carry it). Concurrent claimers never get the same bot."""

    @abstractmethod
    async def take_assigned_bots(
        self, agent_id: UUID, lease_until: datetime, limit: int
    ) -> list[Bot]:
        """Take the ad-hoc (``ready``) bots reserved for ``agent_id`` and not yet taken: lease
        them, release their slot reservations; versions move on as with claims."""

    @abstractmethod
    async def orphaned_bots(self, live_since: datetime, states: Sequence[str], limit: int) -> list[Bot]:
        """Bots in ``states`` whose agent is gone: stopped, or silent since before
        ``live_since``, or unknown."""

    @abstractmethod
    async def register_agent(self, agent: Agent) -> None: ...

    @abstractmethod
    async def heartbeat_agent(self, agent_id: UUID, now: datetime, slots_free: int, slots_total: int) -> None: ...

    @abstractmethod
    async def stop_agents(self, agent_ids: Sequence[UUID] | None, now: datetime) -> None:
        """Mark agents stopped (all of them when ``agent_ids`` is None: a single-node start)."""

    @abstractmethod
    async def live_agents(self, live_since: datetime) -> list[Agent]: ...

    @abstractmethod
    async def queue_command(self, command: BotCommand) -> None: ...

    @abstractmethod
    async def take_commands(self, agent_id: UUID, now: datetime, limit: int) -> list[BotCommand]:
        """Undelivered commands for the agent's bots, oldest first, marked delivered."""

    # -- webhook endpoints ------------------------------------------------------------------------
    @abstractmethod
    async def insert_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    @abstractmethod
    async def get_endpoint(self, workspace_id: UUID, endpoint_id: UUID) -> WebhookEndpoint | None: ...

    @abstractmethod
    async def list_endpoints(self, workspace_id: UUID) -> list[WebhookEndpoint]:
        """The workspace's endpoints, oldest first."""

    @abstractmethod
    async def save_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    @abstractmethod
    async def delete_endpoint(self, workspace_id: UUID, endpoint_id: UUID) -> bool: ...

    # -- webhook deliveries -----------------------------------------------------------------------
    @abstractmethod
    async def dispatch_outbox(
        self, now: datetime, limit: int, lease_until: datetime | None = None,
        room: Mapping[UUID, int] | None = None, default_room: int = 0,
    ) -> Dispatched:
        """Turn up to ``limit`` undispatched outbox messages into deliveries, one per enabled
        endpoint of the message's workspace that wants its event type, and mark them
        dispatched — in one transaction.

        With ``lease_until``, new deliveries are claimed in the same transaction for the caller
        (at most ``room[endpoint]``, or ``default_room`` for endpoints not in ``room``, per
        endpoint, oldest first) and returned ready to send — except a delivery whose bot already
        has an earlier pending delivery to that endpoint from before this call: it stays
        unclaimed so that order holds (deliveries of one bot created in the same call are
        leased together; the caller sends them in order)."""

    @abstractmethod
    async def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int, skip_endpoints: Sequence[UUID] = (),
        per_endpoint: int = 1_000_000,
    ) -> list[DueDelivery]:
        """Claim pending deliveries that are due, oldest first, leased until ``lease_until``;
        at most ``per_endpoint`` per endpoint; never one whose bot has an earlier pending
        delivery to the same endpoint (deliveries of a bot reach an endpoint in order), never
        one to ``skip_endpoints``."""

    @abstractmethod
    async def claim_for_endpoints(
        self, now: datetime, lease_until: datetime, rooms: Mapping[UUID, int]
    ) -> list[DueDelivery]:
        """Like :meth:`claim_deliveries`, for the named endpoints only: at most ``rooms[e]``
        of endpoint ``e``, its oldest first. Its cost does not grow with other endpoints'
        backlogs."""

    @abstractmethod
    async def release_deliveries(self, seqs: Sequence[int] | None) -> None:
        """Give claimed deliveries back unattempted (their lease ends now); None: every claimed
        delivery (a single node starting: whoever claimed them is gone)."""

    @abstractmethod
    async def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        """When the earliest pending delivery is due (only those due after ``after``, if given:
        the next retry)."""

    @abstractmethod
    async def record_attempts(self, results: Sequence[AttemptResult], release: Sequence[int] = ()) -> None:
        """Record finished attempts, their outcomes and the endpoints' failure records, and give
        back ``release`` (claimed, not attempted) — in one transaction."""

    @abstractmethod
    async def list_deliveries(
        self, workspace_id: UUID, flt: DeliveryFilter, before_seq: int | None, limit: int
    ) -> list[Delivery]:
        """The ledger, newest first, each delivery with its attempts."""

    @abstractmethod
    async def resend_delivery(self, workspace_id: UUID, delivery_id: UUID, now: datetime) -> Delivery | None:
        """Deliver again from now on (a fresh retry schedule)."""

    # -- outbox ---------------------------------------------------------------------------------
    @abstractmethod
    async def pending_messages(self, limit: int) -> list[OutboxMessage]:
        """Undispatched outbox messages, oldest first."""

    @abstractmethod
    async def append_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Queue messages that no state change of ours carries (a real-time endpoint failing)."""

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

    # -- calendars --------------------------------------------------------------------------------
    # Calendars, their events, and the bots attached to events (``summon.services.event_bots``).
    # A calendar is fenced by ``version`` like a bot: ``save_calendar``/``apply_calendar_sync``
    # name the version they read and raise ``StaleVersion`` if it moved.
    @abstractmethod
    async def insert_calendar(
        self, calendar: Calendar, messages: Sequence[OutboxMessage] = ()
    ) -> None: ...

    @abstractmethod
    async def get_calendar(self, workspace_id: UUID | None, calendar_id: UUID) -> Calendar | None:
        """``workspace_id`` None: any workspace (internal callers)."""

    @abstractmethod
    async def list_calendars(
        self,
        workspace_id: UUID,
        flt: CalendarFilter,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Calendar]:
        """Oldest first, by ``(created_at, id)``, those after the ``after`` position."""

    @abstractmethod
    async def save_calendar(
        self, calendar: Calendar, expected_version: int, messages: Sequence[OutboxMessage] = ()
    ) -> None:
        """Write every mutable field (the stored version becomes ``calendar.version``) and queue
        ``messages`` — fenced by ``expected_version``."""

    @abstractmethod
    async def delete_calendar(self, workspace_id: UUID, calendar_id: UUID) -> list[UUID] | None:
        """Delete the calendar and its events; the deleted events' ids, None if there was no
        such calendar."""

    @abstractmethod
    async def claim_due_calendars(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[Calendar]:
        """Claim up to ``limit`` calendars with ``next_sync_at <= now`` that nobody holds a
        live lease on, until ``lease_until``; each claimed calendar's version moves on (the
        returned ones carry it). Concurrent claimers never get the same calendar."""

    @abstractmethod
    async def next_calendar_sync_at(self) -> datetime | None:
        """The earliest ``next_sync_at`` of any calendar (an index seek)."""

    @abstractmethod
    async def calendar_events(
        self,
        calendar_id: UUID,
        start_from: datetime | None = None,
        start_to: datetime | None = None,
        keys: Sequence[str] = (),
    ) -> list[CalendarEvent]:
        """The calendar's events (deleted ones too) starting within the bounds given — and
        those with one of ``keys`` wherever they start — by start."""

    @abstractmethod
    async def apply_calendar_sync(
        self, calendar: Calendar, expected_version: int, events: Sequence[CalendarEvent],
        messages: Sequence[OutboxMessage] = (),
    ) -> None:
        """One sync's outcome in one transaction: insert or update ``events`` (by id), save the
        calendar, queue ``messages`` — fenced by ``expected_version``."""

    @abstractmethod
    async def get_calendar_event(
        self, workspace_id: UUID | None, event_id: UUID
    ) -> CalendarEvent | None: ...

    @abstractmethod
    async def list_calendar_events(
        self,
        workspace_id: UUID,
        flt: CalendarEventFilter,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[CalendarEvent]:
        """By ``(start_time, id)``, those after the ``after`` position; ``ical_uid`` is a
        case-sensitive prefix match."""

    @abstractmethod
    async def save_calendar_event_bot(
        self, event_id: UUID, manual_bot: dict[str, Any] | None, bot_opt_out: bool, now: datetime
    ) -> None:
        """Record a client's bot request for the event (``manual_bot``/``bot_opt_out``)."""

    # -- event bots: one bot per deduplication key, held by refs (calendar events, mailboxes) --
    @abstractmethod
    async def get_event_bot(self, workspace_id: UUID, dedup_key: str) -> EventBot | None: ...

    @abstractmethod
    async def event_bot_key_of(self, workspace_id: UUID, ref: str) -> str | None:
        """The key ``ref`` holds, if any."""

    @abstractmethod
    async def reserve_event_bot(
        self, workspace_id: UUID, dedup_key: str, token: UUID, now: datetime, stale_before: datetime
    ) -> EventBot:
        """The key's row after claiming it for ``token`` if it has none (bot_id None, claim
        ``token``) or its bot-less claim was taken before ``stale_before`` (a creator that died)."""

    @abstractmethod
    async def bind_event_bot(
        self, workspace_id: UUID, dedup_key: str, token: UUID, bot_id: UUID, ref: str, now: datetime
    ) -> tuple[bool, str | None]:
        """If ``token`` still holds the key's claim: set its bot, make ``ref`` hold the key, and
        return (True, the key ``ref`` held before if another). Else (False, None), nothing done."""

    @abstractmethod
    async def abandon_event_bot(self, workspace_id: UUID, dedup_key: str, token: UUID) -> None:
        """Drop ``token``'s claim on a key that has no bot yet."""

    @abstractmethod
    async def replace_event_bot(
        self, workspace_id: UUID, dedup_key: str, old_bot_id: UUID, token: UUID, now: datetime
    ) -> bool:
        """The key's bot ``old_bot_id`` is gone: claim the key for ``token`` to create another.
        False if the key's row changed meanwhile."""

    @abstractmethod
    async def link_event_bot_ref(
        self, workspace_id: UUID, ref: str, dedup_key: str, bot_id: UUID, now: datetime
    ) -> tuple[bool, str | None]:
        """If the key's bot is still ``bot_id``: make ``ref`` hold the key and return (True, the
        key ``ref`` held before if another). Else (False, None), nothing done."""

    @abstractmethod
    async def move_event_bot(
        self, workspace_id: UUID, ref: str, old_key: str, new_key: str, now: datetime
    ) -> UUID | None:
        """Rename ``old_key`` to ``new_key`` with its bot, if ``ref`` is the only holder of
        ``old_key``, it has a bot, and ``new_key`` is free; the bot id, else None."""

    @abstractmethod
    async def release_event_bot_key(self, workspace_id: UUID, dedup_key: str) -> UUID | None:
        """If no ref holds ``dedup_key`` any more and it has a bot: forget the key and return
        its bot (for the caller to remove). Else None."""

    @abstractmethod
    async def unlink_event_bot_ref(self, workspace_id: UUID, ref: str) -> UUID | None:
        """``ref`` holds no key any more; if that left its key unheld, the key is forgotten
        and its bot returned (for the caller to remove). Else None."""

    @abstractmethod
    async def event_bot_links(
        self, workspace_id: UUID, refs: Sequence[str]
    ) -> dict[str, EventBotLink]:
        """For each of ``refs`` that holds a key: the key, its bot and the bot's state."""

    @abstractmethod
    async def refs_of_event_bot(self, workspace_id: UUID, bot_id: UUID) -> list[str]:
        """The refs holding the key whose bot is ``bot_id``, sorted."""

    # -- mailboxes --------------------------------------------------------------------------------
    # Bot mailboxes and their invites (``summon.services.mailboxes``). An invite is fenced by
    # ``version``: ``save_invite`` names the version it read (None: a new invite) and raises
    # ``StaleVersion`` if the stored one differs (or, for a new one, if the UID is taken).
    @abstractmethod
    async def insert_mailbox(self, mailbox: Mailbox) -> None:
        """Raises ``MailboxAddressTaken`` if any mailbox (of any workspace) has the address."""

    @abstractmethod
    async def get_mailbox(self, workspace_id: UUID | None, mailbox_id: UUID) -> Mailbox | None:
        """``workspace_id`` None: any workspace (internal callers)."""

    @abstractmethod
    async def mailbox_by_address(self, address: str) -> Mailbox | None:
        """The mailbox with exactly this (normalised) address, in any workspace."""

    @abstractmethod
    async def list_mailboxes(
        self, workspace_id: UUID, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Mailbox]:
        """Oldest first, by ``(created_at, id)``, those after the ``after`` position."""

    @abstractmethod
    async def save_mailbox(self, mailbox: Mailbox) -> bool:
        """Write every mutable field; False if there is no such mailbox in its workspace.
        Raises ``MailboxAddressTaken`` if another mailbox has the new address."""

    @abstractmethod
    async def delete_mailbox(self, workspace_id: UUID, mailbox_id: UUID) -> bool:
        """Delete the mailbox and its invites; False if there was no such mailbox."""

    @abstractmethod
    async def get_invite(self, mailbox_id: UUID, uid: str) -> Invite | None: ...

    @abstractmethod
    async def save_invite(self, invite: Invite, expected_version: int | None) -> None:
        """Insert (``expected_version`` None) or update the invite — fenced (see above)."""

    @abstractmethod
    async def list_invites(
        self, workspace_id: UUID, mailbox_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Invite]:
        """Most recently updated first, by ``(updated_at, id)``, those before ``before``."""

    @abstractmethod
    async def invites_holding_bots(self, mailbox_id: UUID) -> list[Invite]:
        """The mailbox's invites that hold at least one bot."""

    @abstractmethod
    async def count_invites(self, mailbox_id: UUID, status: str) -> int:
        """How many of the mailbox's invites have ``status``."""

    @abstractmethod
    async def due_invites(self, now: datetime, limit: int) -> list[Invite]:
        """Invites whose ``next_check_at`` is at or before ``now``, earliest first (an index
        seek)."""

    # -- recordings -------------------------------------------------------------------------------
    # A bot's recording and its artifacts (``summon.services.recordings``).
    @abstractmethod
    async def save_recordings(
        self,
        recordings: Sequence[Recording],
        messages: Sequence[OutboxMessage] = (),
        *,
        bot: Bot | None = None,
        expected_version: int | None = None,
        change: StatusChange | None = None,
    ) -> None:
        """Insert or replace ``recordings`` and queue ``messages`` in one transaction. With
        ``bot``, also write it as :meth:`save_bot` does (fenced by ``expected_version``,
        ``change`` appended to its history): raises ``StaleVersion`` and writes nothing when
        the bot moved on."""

    @abstractmethod
    async def get_recording(
        self, workspace_id: UUID | None, recording_id: UUID
    ) -> Recording | None:
        """``workspace_id`` None: any workspace (internal callers, signed downloads)."""

    @abstractmethod
    async def list_recordings(
        self,
        workspace_id: UUID,
        flt: RecordingFilter,
        before: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[Recording]:
        """Newest first by ``(created_at, id)``, those before the ``before`` position."""

    @abstractmethod
    async def recordings_of_bots(
        self, workspace_id: UUID | None, bot_ids: Sequence[UUID]
    ) -> dict[UUID, list[Recording]]:
        """The recordings of each bot (bots without any are absent), oldest first."""

    @abstractmethod
    async def delete_recording(
        self, recording: Recording, messages: Sequence[OutboxMessage] = ()
    ) -> bool:
        """Delete the recording row and queue ``messages``; False if it was already gone."""

    @abstractmethod
    async def expired_recordings(self, now: datetime, limit: int) -> list[Recording]:
        """Recordings whose ``expires_at`` is at or before ``now`` and whose media is not
        deleted yet, earliest first (an index seek)."""


# -- meeting platforms ------------------------------------------------------------------------
# A driver is the only code that knows a meeting platform (SPEC §8). One instance per bot, built
# by the bot's runtime session, living on the runtime's event loop.


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone in the meeting other than our bot, as the platform describes them.

    ``id`` is stable for the participant within one meeting (Recall renders numeric ids as
    numbers). ``is_bot`` is True only when the *platform* says so (e.g. an announced
    notetaker); bots that pose as people are found by the automatic-leave heuristics instead.
    """

    id: str
    name: str
    is_host: bool = False
    is_bot: bool = False
    platform: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Word:
    """One transcribed word. ``start``/``end`` are instants of the driver's ``Clock.monotonic()``;
    the session turns them into times relative to the recording (a driver cannot know when the
    session started recording)."""

    text: str
    start: float
    end: float


#: Where a driver with media hands each decoded frame (:meth:`Driver.set_media_sinks`): PyAV
#: ``AudioFrame``/``VideoFrame`` of the participant.
AudioSink = Callable[[Participant, Any], None]
VideoSink = Callable[[Participant, Any], None]


class DriverError(Exception):
    """A driver cannot go on: ``sub_code`` is the ``fatal`` sub-code to report
    (``meeting_not_found``, ``platform_connection_error``, ``invalid_sandbox_url``, …)."""

    def __init__(self, sub_code: str, message: str | None = None) -> None:
        self.sub_code = sub_code
        self.message = message
        super().__init__(f"{sub_code}: {message}" if message else sub_code)


class DriverEvents(Protocol):
    """What a driver reports about its meeting; the bot session implements it.

    Contract for drivers:

    - Call these from the event loop the driver was built on, never from another thread.
      They return at once and never raise; they must not be awaited or retried.
    - Order is meaningful: ``waiting_room`` (optional) before ``admitted``; ``participant_joined``
      for everyone already present right after ``admitted``; ``speech``/``webcam``/``chat``/
      ``transcript`` only for a participant between their join and leave.
    - ``meeting_ended`` and ``failed`` are final: after either, and after ``leave()`` or
      ``close()`` was called, the driver reports nothing more.
    """

    def waiting_room(self) -> None:
        """The bot was put in a waiting room / lobby and waits to be let in."""

    def admitted(self) -> None:
        """The bot is in the call (let in from the waiting room, or directly)."""

    def participant_joined(self, p: Participant) -> None: ...

    def participant_left(self, p: Participant) -> None: ...

    def participant_updated(self, p: Participant) -> None:
        """A participant's details changed (name, host role); ``p`` is the new state."""

    def speech(self, p: Participant, speaking: bool) -> None: ...

    def webcam(self, p: Participant, on: bool) -> None: ...

    def screenshare(self, p: Participant, on: bool) -> None: ...

    def chat_message(self, p: Participant, text: str, to: str) -> None:
        """``p`` wrote ``text``; ``to`` is ``"everyone"`` or the bot's own participant id for a
        private message."""

    def transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        """Words ``p`` said (platform captions). ``final=False`` is an interim result that a
        later call for the same utterance replaces; ``final=True`` closes the utterance."""

    def recording_permission(self, granted: bool) -> None:
        """The host answered the bot's request to record (only when
        :attr:`Driver.recording_permission_required`). May come again if the host changes
        their mind."""

    def meeting_ended(self, sub_code: str) -> None:
        """The bot is out of the call for a reason outside the bot: ``call_ended_by_host``,
        ``call_ended_by_platform_idle``, ``bot_kicked_from_call``, …"""

    def failed(self, sub_code: str, message: str | None = None) -> None:
        """Joining or staying failed for good: a ``fatal`` sub-code such as
        ``meeting_not_found``, ``meeting_password_incorrect``, ``meeting_full``,
        ``bot_removed_from_waiting_room``, ``platform_connection_error``."""


class Driver(ABC):
    """One bot in one meeting on one platform. Everything platform-specific lives behind this.

    Lifecycle, driven by the bot session (one task at a time calls these, except that
    ``leave``/``close`` may be called while another call is pending):

    ``__init__`` (cheap, no I/O) → ``prepare()`` (before ``join_at``) → ``join()`` (at
    ``join_at``) → outcome and meeting activity through :class:`DriverEvents` → ``leave()`` →
    ``close()``. ``close()`` is also called after failures, after ``prepare()`` raised, and when
    the bot is cancelled before joining; it must work from any state.

    Methods raise :class:`DriverError` for failures the session should report as ``fatal``
    with that sub-code; any other exception is reported as ``platform_connection_error``.
    """

    #: The ``meeting_url.platform`` this driver serves; also its module name in ``summon.drivers``.
    platform: ClassVar[str]
    #: True when the driver hands out the meeting's decoded media (:meth:`set_media_sinks`).
    #: Without it a recording is the meeting's timeline over silent audio.
    delivers_media: ClassVar[bool] = False

    def __init__(
        self,
        meeting_url: dict[str, Any],
        bot_name: str,
        config: dict[str, Any],
        events: DriverEvents,
        clock: Clock,
    ) -> None:
        """``meeting_url`` is the parsed object (``MeetingUrl.to_dict()``), ``config`` the bot's
        stored configuration. Must not do I/O or start tasks."""
        self.meeting_url = meeting_url
        self.bot_name = bot_name
        self.config = config
        self.events = events
        self.clock = clock

    def set_media_sinks(
        self, on_audio: AudioSink | None = None, on_video: VideoSink | None = None
    ) -> None:
        """Drivers with :attr:`delivers_media`: receive every decoded frame of every
        participant, on the event loop, from now on: ``on_audio(participant, frame)`` (a PyAV
        ``AudioFrame``, e.g. 48 kHz ``s16``, 20 ms) and ``on_video(participant, frame)`` (a PyAV
        ``VideoFrame``). Without ``on_video`` a driver need not receive or decode video at all.
        The sinks return quickly and do not raise. Other drivers have no media: nothing to do."""

    @property
    def recording_permission_required(self) -> bool:
        """True when the platform asks the host before a bot may record. The driver then reports
        :meth:`DriverEvents.recording_permission` after ``admitted`` and the session does not
        record until it was granted. Valid after ``prepare()``."""
        return False

    @abstractmethod
    async def prepare(self) -> None:
        """Do everything that can be done before ``join_at``: validate the meeting URL, load
        media, resolve hosts, warm connections — so that ``join()`` is quick. Raises
        :class:`DriverError` for input that can never work (the bot ends ``fatal``). Reports no
        events."""

    @abstractmethod
    async def join(self) -> None:
        """Start joining. Returns as soon as the attempt is under way (fast: this runs at the
        join instant); the outcome arrives as events (``waiting_room``, ``admitted``,
        ``failed``). Called at most once, after a successful ``prepare()``."""

    @abstractmethod
    async def leave(self) -> None:
        """Leave the call (or the waiting room, or abandon joining) and return once the bot is
        gone. Idempotent; a no-op before ``join()``. Does not report ``meeting_ended`` — the
        session knows why it left."""

    @abstractmethod
    async def send_chat(self, to: str, message: str) -> None:
        """Send a chat message while in the call. ``to`` is ``"everyone"``, ``"host"``,
        ``"everyone_except_host"`` or a participant id. Raises :class:`DriverError` if the
        platform refuses."""

    @abstractmethod
    async def output_audio(self, mp3: bytes | None) -> None:
        """Play an MP3 clip into the meeting, replacing what is playing; ``None`` stops."""

    @abstractmethod
    async def output_video(self, jpeg: bytes | None) -> None:
        """Show a JPEG image as the bot's camera; ``None`` turns the camera off."""

    @abstractmethod
    async def close(self) -> None:
        """Release everything (tasks, connections, media). Idempotent, never raises for
        cleanup problems, callable in any state; no events are reported afterwards."""


# -- calendar providers -----------------------------------------------------------------------
# A calendar provider is the only code that knows a calendar source (SPEC §11): an ICS feed, a
# CalDAV server, Google Calendar, Microsoft Graph. One module per platform in
# ``summon.calendars``; the sync engine calls nothing but :meth:`CalendarProvider.fetch`.

from summon.domain.icalendar import Occurrence, Problem


class CalendarDisconnected(Exception):
    """The source refuses us for good until the user acts: bad or revoked credentials
    (``invalid_grant``), 401/403 after a token refresh, a feed that is gone (404/410), a URL
    that is not a calendar, a feed larger than the limit, a redirect loop. ``reason`` is a
    short human-readable cause, shown as the calendar's status reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CalendarUnavailable(Exception):
    """The source failed this time (timeout, connection error, 5xx, 429, token endpoint down):
    nothing is wrong with the connection; retried at the next sync. ``reason`` as above."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class FetchResult:
    """What one :meth:`CalendarProvider.fetch` learned.

    - ``occurrences``: the *complete* truth inside ``[window_start, window_end)`` (an
      occurrence is inside when it overlaps the window), recurring series expanded, cancelled
      instances included with ``cancelled=True``. An occurrence missing here that the engine
      knew is gone (deleted at the source).
    - ``problems``: events skipped because they are malformed (never a reason to fail).
    - ``changed``: False only when ``occurrences`` is exactly what the fetch that produced
      ``state`` returned (the source reported nothing new — 304, empty delta — and the moved
      window revealed nothing): the engine may skip diffing. True on a first fetch.
    - ``state``: JSON-safe and bounded; persist it and pass it to the next fetch.
    - ``credentials``: credentials to persist instead of the current ones (a refreshed access
      token, a rotated refresh token), or None when unchanged.
    """

    occurrences: list[Occurrence]
    problems: list[Problem]
    changed: bool
    state: dict[str, Any]
    credentials: dict[str, Any] | None = None


class CalendarProvider(ABC):
    """Reads one calendar of one user.

    Contract:

    - :meth:`fetch` is safe to call concurrently for different calendars; it keeps nothing
      between calls except what it returns in ``FetchResult.state``. A ``state`` of another
      version, of another URL/calendar, or damaged is ignored (a full fetch follows).
    - It raises only :class:`CalendarDisconnected` or :class:`CalendarUnavailable`; a
      malformed event goes to ``problems`` instead. It honours the provider's size and time
      limits (whole fetch), follows at most 5 redirects, and only to http/https.
    - :meth:`validate` does no I/O: it checks the shape of ``credentials``.
    """

    #: ``"ics_feed"`` | ``"caldav"`` | ``"google_calendar"`` | ``"microsoft_outlook"``
    platform: ClassVar[str]

    @abstractmethod
    async def fetch(
        self,
        credentials: dict[str, Any],
        state: dict[str, Any] | None,
        window_start: datetime,
        window_end: datetime,
    ) -> FetchResult:
        """Every occurrence overlapping ``[window_start, window_end)`` (aware datetimes), using
        ``state`` from the previous fetch to avoid downloading what did not change."""

    def normalize(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """The credentials in canonical form (e.g. ``webcal://`` → ``https://``, surrounding
        blanks removed, unknown keys dropped); raises ``ValueError`` naming the bad field."""
        return dict(credentials)

    def validate(self, credentials: dict[str, Any]) -> None:
        """Raise ``ValueError`` with a message for missing or invalid fields. No I/O."""
        self.normalize(credentials)

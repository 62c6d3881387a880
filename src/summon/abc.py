"""Every port of Summon in one file. Adapters live in modules named after their technology.

Contracts are stated here; ``tests/contract`` runs the same suite against every adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from summon.domain.bots import Bot, BotFilter
from summon.domain.deliveries import Attempt, Delivery, DeliveryFilter, DueDelivery, Outcome
from summon.domain.events import OutboxMessage
from summon.domain.fleet import Admission, Agent, BotCommand
from summon.domain.lifecycle import StatusChange
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
    async def dispatch_outbox(self, now: datetime, limit: int) -> int:
        """Turn up to ``limit`` undispatched outbox messages into deliveries, one per enabled
        endpoint of the message's workspace that wants its event type, and mark them
        dispatched — in one transaction. Returns how many messages were dispatched."""

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
    async def release_deliveries(self, seqs: Sequence[int] | None) -> None:
        """Give claimed deliveries back unattempted (their lease ends now); None: every claimed
        delivery (a single node starting: whoever claimed them is gone)."""

    @abstractmethod
    async def next_delivery_at(self) -> datetime | None: ...

    @abstractmethod
    async def record_attempt(self, seq: int, endpoint_id: UUID, attempt: Attempt, outcome: Outcome) -> None:
        """Record one attempt at a delivery, its outcome, and the endpoint's failure record."""

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

"""The webhook sender: outbox → deliveries → signed POSTs, retried on the schedule, recorded.

- **Fan-out and hand-over**: undispatched outbox messages become one delivery per enabled
  endpoint of their workspace that wants the event (``Store.dispatch_outbox``), in one
  transaction that also claims the new deliveries for this sender — a fresh message goes
  straight to its lane without a claim round trip.
- **Lanes**: one in-memory lane per endpoint holds that endpoint's claimed deliveries: at most
  ``per_endpoint`` in flight and about ``4 × per_endpoint`` claimed at all. A slow or dead
  endpoint fills only its own lane; what does not fit stays unclaimed in the store and is
  claimed when its lane has room again. Nothing one endpoint does can delay another's lane.
- **Order**: a bot's deliveries reach an endpoint in order. Inside a lane a delivery waits while
  an earlier one of the same bot is in flight; if that one fails, the later ones are given back
  and wait, unclaimed, for it (the store never claims a delivery behind a pending earlier one).
- **Claims** (for retries, backlogs, other nodes' leftovers): targeted at the lanes that left
  work behind, after their results are recorded; and a general claim on a 1 s poll or when a
  retry falls due.
- **Outcome**: a 2xx is delivered; anything else (status, timeout, connection error) is retried
  on Standard Webhooks' schedule and finally ``failed``; an endpoint failing for 5 days is
  disabled. Every attempt goes to the ledger, written in batches (one transaction for all the
  attempts that finished together).
- **At least once**: the lease outlives the request timeout; a sender killed mid-request leaves
  the delivery pending and another (or the restarted) sender sends it again, with the same
  ``webhook-id`` so receivers can deduplicate. A claimed delivery whose lease is about to run out
  is given back instead of sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import timedelta
from uuid import UUID

import orjson

from summon.domain.deliveries import DELIVERED, FAILED, PENDING, Attempt, AttemptResult, DueDelivery, Outcome
from summon.domain.webhooks import (
    DELIVERY_TIMEOUT,
    next_attempt_at,
    should_disable,
    signature_headers,
    truncate_response,
)
from summon.services import webhooks as endpoints
from summon.services.context import Context
from summon.webhooks.transport import DeliveryError, WebhookTransport, refuse_private

log = logging.getLogger(__name__)

POLL_S = 1.0
#: A claim outlives one attempt (15 s timeout) comfortably; after that another sender may try.
LEASE = timedelta(seconds=60)
#: A claimed delivery is only started while its lease covers a whole attempt and this margin.
LEASE_MARGIN = DELIVERY_TIMEOUT + timedelta(seconds=5)
DISPATCH_BATCH = 500
_SECRET_CACHE = 4096


class _Lane:
    """One endpoint's claimed deliveries in this sender."""

    __slots__ = ("queue", "in_flight", "busy", "held", "held_n")

    def __init__(self) -> None:
        self.queue: deque[DueDelivery] = deque()  # claimed, not started, oldest first
        self.in_flight = 0
        self.busy: set[UUID] = set()  # bots with a delivery in flight here
        self.held: dict[UUID, deque[DueDelivery]] = {}  # behind an in-flight one of the same bot
        self.held_n = 0

    @property
    def size(self) -> int:
        return len(self.queue) + self.in_flight + self.held_n

    @property
    def idle(self) -> bool:
        return self.size == 0


class WebhookSender:
    def __init__(self, ctx: Context, transport: WebhookTransport, *, per_endpoint: int = 32,
                 max_in_flight: int = 512, block_private: bool = False) -> None:
        self.ctx = ctx
        self.transport = transport
        self.per_endpoint = per_endpoint
        self.lane_size = 4 * per_endpoint
        self.max_in_flight = max_in_flight
        self.block_private = block_private
        self._lanes: dict[UUID, _Lane] = {}
        #: Endpoints that may have claimable deliveries left in the store (overflow, or waiting
        #: behind one of ours): claimed for as soon as their lane has room and results are written.
        self._wanting: set[UUID] = set()
        self._tasks: set[asyncio.Task[AttemptResult | None]] = set()
        self._finished: list[tuple[DueDelivery, AttemptResult]] = []
        self._unrecorded: dict[UUID, int] = {}  # per endpoint: finished, not yet written
        self._batches_written = 0  # attempt batches written so far (see _claim_for)
        self._give_back: list[int] = []
        self._recorder: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._dispatch_due = True
        self._targeted_due = False
        self._next_poll = float("-inf")  # monotonic: when the general claim runs next
        self._stopping = False
        self._secrets: dict[str, list[str]] = {}
        ctx.signals.subscribe("outbox", self._on_outbox)
        ctx.signals.subscribe("deliveries", self._on_deliveries)

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop claiming; give back what was claimed and not started; let deliveries under way
        finish (up to ``grace_s``), then give up on the rest — they are sent again later."""
        self._stopping = True
        self.ctx.signals.unsubscribe("outbox", self._on_outbox)
        self.ctx.signals.unsubscribe("deliveries", self._on_deliveries)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for lane in self._lanes.values():
            self._give_back.extend(d.delivery.seq for d in lane.queue)
            self._give_back.extend(d.delivery.seq for held in lane.held.values() for d in held)
            lane.queue.clear()
            lane.held.clear()
            lane.held_n = 0
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._record_soon()
        await self.settle()
        await self.transport.close()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def settle(self) -> None:
        """Wait until no attempt is in flight and every finished one is recorded."""
        while self._tasks or (self._recorder is not None and not self._recorder.done()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            if self._recorder is not None:
                await self._recorder

    def _on_outbox(self) -> None:
        """A message was written: fan it out now."""
        self._dispatch_due = True
        self._wake.set()

    def _on_deliveries(self) -> None:
        """Deliveries became due outside the schedule (a resend): claim now."""
        self._next_poll = float("-inf")
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self.tick()
            except Exception:
                log.exception("webhook sender tick failed")
                wait = POLL_S
            if wait > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def tick(self) -> float:
        """Dispatch new messages, claim what is due, start what can start; how long to sleep."""
        store, clock = self.ctx.store, self.ctx.clock
        mono = clock.monotonic()
        polling = mono >= self._next_poll
        if self._dispatch_due or polling:
            self._dispatch_due = False
            while True:
                now = clock.now()
                room = {e: self.lane_size - lane.size for e, lane in self._lanes.items()}
                out = await store.dispatch_outbox(now, DISPATCH_BATCH, now + LEASE, room, self.lane_size)
                self._take(out.leased)
                self._wanting.update(out.overflow)
                self._wanting.update(e for e, _ in out.blocked)
                if out.messages < DISPATCH_BATCH:
                    break
        if self._targeted_due:
            self._targeted_due = False
            rooms = {e: room for e in self._wanting if (room := self._room(e)) >= max(1, self.per_endpoint)}
            if rooms:
                await self._claim_for(rooms)
        if polling:
            full = [e for e, lane in self._lanes.items() if lane.size >= self.lane_size]
            got, limit = await self._claim(full)
            self._wanting.update(full)
            wait = POLL_S
            if got < limit:
                next_at = await store.next_delivery_at(after=clock.now())
                if next_at is not None:
                    wait = min(wait, max((next_at - clock.now()).total_seconds(), 0.0))
            else:
                wait = 0.0
            self._next_poll = clock.monotonic() + wait
        return 0.0 if (self._dispatch_due or self._targeted_due) else max(self._next_poll - clock.monotonic(), 0.0)

    def _claim_limit(self) -> int:
        return max(self.max_in_flight * 2 - sum(lane.size for lane in self._lanes.values()), 0)

    def _room(self, endpoint: UUID) -> int:
        lane = self._lanes.get(endpoint)
        return self.lane_size if lane is None else self.lane_size - lane.size

    async def _claim(self, skip: list[UUID]) -> tuple[int, int]:
        """Claim due deliveries of any endpoint but ``skip`` into lanes; (how many, how many
        were asked for)."""
        limit = self._claim_limit()
        if limit <= 0:
            return 0, 0
        now = self.ctx.clock.now()
        due = await self.ctx.store.claim_deliveries(now, now + LEASE, limit, skip, self.lane_size)
        self._take(due)
        return len(due), limit

    async def _claim_for(self, rooms: dict[UUID, int]) -> None:
        """Refill the lanes of endpoints that left work in the store."""
        now = self.ctx.clock.now()
        written = self._batches_written
        due = await self.ctx.store.claim_for_endpoints(now, now + LEASE, rooms)
        self._take(due)
        if self._batches_written != written:
            # Attempts were written while we claimed (perhaps after the claim read the table):
            # what waited behind them may be claimable now, so every endpoint stays wanted.
            return
        got = {d.delivery.endpoint_id for d in due}
        for endpoint in rooms:
            # Nothing more to claim there, and nothing of ours that later ones wait behind.
            lane = self._lanes.get(endpoint)
            if endpoint not in got and (lane is None or lane.idle) and not self._unrecorded.get(endpoint):
                self._wanting.discard(endpoint)

    def _take(self, items: list[DueDelivery]) -> None:
        touched = set()
        for due in items:
            endpoint = due.delivery.endpoint_id
            lane = self._lanes.get(endpoint)
            if lane is None:
                lane = self._lanes[endpoint] = _Lane()
            lane.queue.append(due)
            touched.add(endpoint)
        for endpoint in touched:
            self._pump(self._lanes[endpoint])

    def _pump(self, lane: _Lane) -> None:
        """Start what the lane may start now, oldest first."""
        if self._stopping:
            return
        while lane.queue and lane.in_flight < self.per_endpoint and len(self._tasks) < self.max_in_flight:
            due = lane.queue.popleft()
            bot = due.delivery.bot_id
            if bot is not None and bot in lane.busy:
                lane.held.setdefault(bot, deque()).append(due)
                lane.held_n += 1
                continue
            if due.lease_until is not None and self.ctx.clock.now() > due.lease_until - LEASE_MARGIN:
                self._give_back.append(due.delivery.seq)  # too late to be sure the claim holds
                self._record_soon()
                continue
            lane.in_flight += 1
            if bot is not None:
                lane.busy.add(bot)
            task = asyncio.create_task(self._deliver(due))
            self._tasks.add(task)
            task.add_done_callback(lambda t, lane=lane, due=due: self._done(lane, due, t))

    def _done(self, lane: _Lane, due: DueDelivery, task: asyncio.Task[AttemptResult | None]) -> None:
        self._tasks.discard(task)
        lane.in_flight -= 1
        result = None if task.cancelled() or task.exception() else task.result()
        if result is None:
            self._give_back.append(due.delivery.seq)
        else:
            self._finished.append((due, result))
            self._unrecorded[result.endpoint_id] = self._unrecorded.get(result.endpoint_id, 0) + 1
            if result.outcome.retry_at is not None:
                until = (result.outcome.retry_at - self.ctx.clock.now()).total_seconds()
                self._next_poll = min(self._next_poll, self.ctx.clock.monotonic() + max(until, 0.0))
        self._record_soon()
        bot = due.delivery.bot_id
        if bot is not None:
            lane.busy.discard(bot)
            held = lane.held.get(bot)
            if held:
                if result is not None and result.outcome.status == DELIVERED:
                    lane.queue.appendleft(held.popleft())
                    lane.held_n -= 1
                else:
                    # The earlier one waits for a retry: the later ones wait for it, unclaimed.
                    self._give_back.extend(d.delivery.seq for d in held)
                    lane.held_n -= len(held)
                    held.clear()
                    self._wanting.add(due.delivery.endpoint_id)
                if not held:
                    del lane.held[bot]
        self._pump(lane)
        if lane.idle and due.delivery.endpoint_id not in self._wanting:
            self._lanes.pop(due.delivery.endpoint_id, None)

    def _record_soon(self) -> None:
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record())

    async def _record(self) -> None:
        """Write finished attempts in batches: everything that finished while the previous batch
        was being written goes in the next one."""
        while self._finished or self._give_back:
            await asyncio.sleep(0)  # let attempts finishing in this loop iteration join the batch
            finished, self._finished = self._finished, []
            give_back, self._give_back = self._give_back, []
            try:
                await self.ctx.store.record_attempts([r for _, r in finished], give_back)
            except Exception:
                # Unrecorded attempts stay claimed until their lease ends, then are sent again.
                log.exception("recording %d webhook attempts failed", len(finished))
                continue
            finally:
                self._batches_written += 1
                for _, result in finished:
                    left = self._unrecorded.pop(result.endpoint_id, 1) - 1
                    if left > 0:
                        self._unrecorded[result.endpoint_id] = left
            if self._wanting and not self._stopping:
                self._targeted_due = True
                self._wake.set()

    async def _deliver(self, due: DueDelivery) -> AttemptResult:
        delivery = due.delivery
        clock = self.ctx.clock
        started = clock.now()
        t0 = clock.monotonic()
        status: int | None = None
        error: str | None = None
        answer = b""
        try:
            body = orjson.dumps(due.payload)
            headers = signature_headers(str(delivery.message_id), int(started.timestamp()), body,
                                        self._signing_secrets(due, started))
            if self.block_private:
                await refuse_private(due.url)
            status, answer = await self.transport.post(due.url, headers, body, DELIVERY_TIMEOUT.total_seconds())
        except DeliveryError as exc:
            error = exc.reason
        except Exception as exc:  # never let one delivery take the sender down
            log.exception("delivery %s failed unexpectedly", delivery.id)
            error = f"{type(exc).__name__}: {exc}"
        finished = clock.now()
        attempt = Attempt(started, status, int((clock.monotonic() - t0) * 1000), error,
                          truncate_response(answer) if answer else None)
        return AttemptResult(delivery.seq, delivery.endpoint_id, attempt, self._outcome(due, status, finished))

    def _signing_secrets(self, due: DueDelivery, now) -> list[str]:  # type: ignore[no-untyped-def]
        """The endpoint's secrets, decrypted once per sealed value (decryption costs more than
        the rest of signing)."""
        key = f"{due.sealed_secret}|{due.sealed_previous_secret}|{due.previous_secret_until}|{now >= (due.previous_secret_until or now)}"
        secrets = self._secrets.get(key)
        if secrets is None:
            if len(self._secrets) >= _SECRET_CACHE:
                self._secrets.clear()
            secrets = endpoints.signing_secrets(self.ctx, _EndpointView(due), now)  # type: ignore[arg-type]
            self._secrets[key] = secrets
        return secrets

    def _outcome(self, due: DueDelivery, status: int | None, now) -> Outcome:  # type: ignore[no-untyped-def]
        if status is not None and 200 <= status < 300:
            return Outcome(DELIVERED, None, None)
        failing_since = due.endpoint_failing_since or now
        retry_at = next_attempt_at(due.delivery.attempts + 1, now)
        return Outcome(PENDING if retry_at else FAILED, retry_at, failing_since,
                       disable_endpoint=should_disable(failing_since, now))


class _EndpointView:
    """What signing needs of an endpoint, from a claimed delivery."""

    def __init__(self, due: DueDelivery) -> None:
        self.sealed_secret = due.sealed_secret
        self.sealed_previous_secret = due.sealed_previous_secret
        self.previous_secret_until = due.previous_secret_until

"""The webhook sender: outbox → deliveries → signed POSTs, retried on the schedule, recorded.

- **Fan-out**: undispatched outbox messages become one delivery per enabled endpoint of their
  workspace that wants the event (``Store.dispatch_outbox``), in one transaction.
- **Claims**: due deliveries are claimed with a lease, oldest first, so several nodes can send;
  a bot's deliveries reach an endpoint in order (a later one waits for the earlier).
- **Isolation**: at most ``per_endpoint`` deliveries to one endpoint are in flight; an endpoint at
  its cap is skipped when claiming, so a slow or dead endpoint only ever holds its own slots,
  never another endpoint's, never the state machine's.
- **Outcome**: a 2xx is delivered; anything else (status, timeout, connection error) is retried
  on Standard Webhooks' schedule and finally ``failed``; an endpoint failing for 5 days is
  disabled. Every attempt goes to the ledger.
- **At least once**: the lease outlives the request timeout; a sender killed mid-request leaves
  the delivery pending and another (or the restarted) sender sends it again, with the same
  ``webhook-id`` so receivers can deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from datetime import timedelta
from urllib.parse import urlsplit
from uuid import UUID

import orjson

from summon.domain.deliveries import DELIVERED, FAILED, PENDING, Attempt, DueDelivery, Outcome
from summon.domain.webhooks import (
    DELIVERY_TIMEOUT,
    is_blocked_address,
    next_attempt_at,
    should_disable,
    signature_headers,
    truncate_response,
)
from summon.services import webhooks as endpoints
from summon.services.context import Context
from summon.webhooks.transport import DeliveryError, WebhookTransport

log = logging.getLogger(__name__)

POLL_S = 1.0
#: A claim outlives one attempt (15 s timeout) comfortably; after that another sender may try.
LEASE = timedelta(seconds=60)
DISPATCH_BATCH = 500


class WebhookSender:
    def __init__(self, ctx: Context, transport: WebhookTransport, *, per_endpoint: int = 32,
                 max_in_flight: int = 512, block_private: bool = False) -> None:
        self.ctx = ctx
        self.transport = transport
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.block_private = block_private
        self._in_flight: dict[UUID, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._slot_freed = asyncio.Event()

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop claiming; let deliveries under way finish (up to ``grace_s``), then give up on
        the rest — their leases expire and they are sent again."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _run(self) -> None:
        while True:
            try:
                wait = await self.tick()
            except Exception:
                log.exception("webhook sender tick failed")
                wait = POLL_S
            await self.ctx.signals.wait("outbox", wait)

    async def tick(self) -> float:
        """Dispatch new messages, start due deliveries; how long to sleep."""
        now = self.ctx.clock.now()
        while await self.ctx.store.dispatch_outbox(now, DISPATCH_BATCH) == DISPATCH_BATCH:
            pass
        room = self.max_in_flight - len(self._tasks)
        if room <= 0:
            return POLL_S
        saturated = [e for e, n in self._in_flight.items() if n >= self.per_endpoint]
        due = await self.ctx.store.claim_deliveries(now, now + LEASE, room, saturated, self.per_endpoint)
        # The claim is oldest-first across endpoints; keep each endpoint within its cap and give
        # the rest back at once (holding them would only delay them and other senders).
        over: list[int] = []
        started = 0
        for item in due:
            endpoint = item.delivery.endpoint_id
            if self._in_flight.get(endpoint, 0) >= self.per_endpoint:
                over.append(item.delivery.seq)
                continue
            self._in_flight[endpoint] = self._in_flight.get(endpoint, 0) + 1
            task = asyncio.create_task(self._deliver(item))
            self._tasks.add(task)
            task.add_done_callback(self._done(endpoint))
            started += 1
        await self.ctx.store.release_deliveries(over)
        if started:
            return 0.0
        next_at = await self.ctx.store.next_delivery_at()
        if next_at is None:
            return POLL_S
        return min(POLL_S, max((next_at - self.ctx.clock.now()).total_seconds(), 0.05))

    def _done(self, endpoint: UUID):  # type: ignore[no-untyped-def]
        def callback(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            left = self._in_flight.get(endpoint, 1) - 1
            if left <= 0:
                self._in_flight.pop(endpoint, None)
            else:
                self._in_flight[endpoint] = left
            self.ctx.signals.notify("outbox")  # a slot is free: claim more

        return callback

    async def _deliver(self, due: DueDelivery) -> None:
        delivery = due.delivery
        clock = self.ctx.clock
        started = clock.now()
        t0 = clock.monotonic()
        status: int | None = None
        error: str | None = None
        answer = b""
        try:
            endpoint_view = _EndpointView(due)
            secrets = endpoints.signing_secrets(self.ctx, endpoint_view, started)  # type: ignore[arg-type]
            body = orjson.dumps(due.payload)
            headers = signature_headers(str(delivery.message_id), int(started.timestamp()), body, secrets)
            if self.block_private:
                await _refuse_private(due.url)
            status, answer = await self.transport.post(due.url, headers, body, DELIVERY_TIMEOUT.total_seconds())
        except DeliveryError as exc:
            error = exc.reason
        except Exception as exc:  # never let one delivery take the sender down
            log.exception("delivery %s failed unexpectedly", delivery.id)
            error = f"{type(exc).__name__}: {exc}"
        finished = clock.now()
        attempt = Attempt(started, status, int((clock.monotonic() - t0) * 1000), error,
                          truncate_response(answer) if answer else None)
        await self.ctx.store.record_attempt(delivery.seq, delivery.endpoint_id, attempt, self._outcome(due, status, finished))

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


async def _refuse_private(url: str) -> None:
    """SUMMON_WEBHOOK_BLOCK_PRIVATE: refuse destinations that resolve to private, loopback or
    link-local addresses, checked at send time (not when the endpoint was saved). The
    production transport also resolves through ``PublicOnlyResolver`` and connects only to the
    addresses it checked, which closes the window between this check and the connection."""
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DeliveryError(f"cannot resolve {host}: {exc}") from None
        addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if is_blocked_address(a)]
    if blocked:
        raise DeliveryError(f"destination {host} resolves to a blocked address ({blocked[0]})")

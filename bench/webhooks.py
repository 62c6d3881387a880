"""Webhook delivery against a real ``summon serve``: throughput and latency to a healthy local
receiver while a slow endpoint (2 s per answer) and a dead one (connection refused) are
registered alongside. Every bot creation is a ``bot.scheduled`` status change that fans out to
all three endpoints. Three measurements:

- **burst**: N creations as fast as 16 clients can make them, sender running: the sender shares
  the process (one event loop) with the API doing the creations;
- **drain**: N messages written while the sender was off, then the service restarted: the
  sender's own throughput, dispatch and recording included (deliveries/s to the healthy
  receiver, first to last arrival);
- **steady**: creations at a fixed rate (default 200/s): state change → received latency.

Latency is measured from the event's ``updated_at`` to its arrival at the receiver. Targets
(SPEC §14): ≥ 1,000 deliveries/s, p99 ≤ 100 ms for healthy endpoints.

    python bench/webhooks.py [--events 3000] [--rate 200] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime

import orjson

sys.path.insert(0, os.path.dirname(__file__))
import _http  # noqa: E402
import _service  # noqa: E402


class Receiver:
    """A minimal HTTP/1.1 server: reads each request, answers 204 at once (or after ``delay``)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.arrivals: list[tuple[float, dict]] = []  # type: ignore[type-arg]
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.handlers):
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while await reader.readline():
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                arrived = time.time()
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.arrivals.append((arrived, orjson.loads(body)))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.handlers.discard(task)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


BODY = {"meeting_url": "https://zoom.us/j/123456789", "join_at": "2031-01-01T10:00:00Z"}


class Setup:
    """The three receivers and a service with the three endpoints registered."""

    def __init__(self) -> None:
        self.healthy, self.slow = Receiver(), Receiver(delay=2.0)

    async def __aenter__(self) -> Setup:
        self.ports = [await self.healthy.start(), await self.slow.start(), _service.free_port()]
        return self

    async def register(self, svc: _service.RunningService) -> None:
        async with _http.Connection(svc.url, _auth(svc)) as conn:
            for port in self.ports:
                status, _ = await conn.request("POST", "/api/v1/webhook_endpoints/",
                                               {"url": f"http://127.0.0.1:{port}/hook", "event_types": ["bot.scheduled"]})
                assert status == 201

    async def __aexit__(self, *exc: object) -> None:
        await self.healthy.stop()
        await self.slow.stop()

    async def wait_for(self, count: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while len(self.healthy.arrivals) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def latencies(self) -> list[float]:
        return [(arrived - datetime.fromisoformat(p["data"]["data"]["updated_at"].replace("Z", "+00:00")).timestamp()) * 1000
                for arrived, p in self.healthy.arrivals]


def _auth(svc: _service.RunningService) -> dict[str, str]:
    return {"Authorization": f"Token {svc.key}"}


async def create(svc: _service.RunningService, count: int, clients: int = 16) -> float:
    """Create ``count`` bots with ``clients`` concurrent connections; the seconds it took."""
    counter = iter(range(count))

    async def creator() -> None:
        async with _http.Connection(svc.url, _auth(svc)) as c:
            for _ in counter:
                status, raw = await c.request("POST", "/api/v1/bot/", BODY)
                assert status == 201, raw

    started = time.time()
    await asyncio.gather(*(creator() for _ in range(clients)))
    return time.time() - started


async def burst(events: int) -> dict[str, float]:
    async with Setup() as setup:
        svc = _service.start()
        try:
            await setup.register(svc)
            started = time.time()
            took = await create(svc, events)
            await setup.wait_for(events)
        finally:
            await asyncio.to_thread(svc.stop)  # the receivers must keep answering meanwhile
        arrivals = setup.healthy.arrivals
        span = max(a for a, _ in arrivals) - started if arrivals else float("nan")
        lat = setup.latencies()
        return {"delivered": len(arrivals), "per_s": len(arrivals) / span, "changes_per_s": events / took,
                "p50": pct(lat, 50), "p99": pct(lat, 99), "slow": len(setup.slow.arrivals)}


async def drain(events: int) -> dict[str, float]:
    async with Setup() as setup:
        svc = _service.start(roles="api,fleet")  # no sender: the messages wait in the outbox
        try:
            await setup.register(svc)
            await create(svc, events)
        finally:
            await asyncio.to_thread(svc.stop)  # the receivers must keep answering meanwhile
        svc = _service.start(again=svc)
        try:
            await setup.wait_for(events)
        finally:
            await asyncio.to_thread(svc.stop)  # the receivers must keep answering meanwhile
        times = sorted(a for a, _ in setup.healthy.arrivals)
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        return {"delivered": len(times), "per_s": (len(times) - 1) / span, "slow": len(setup.slow.arrivals)}


async def steady(rate: float, seconds: float) -> dict[str, float]:
    async with Setup() as setup:
        svc = _service.start()
        try:
            await setup.register(svc)
            total = int(rate * seconds)
            async with _http.Connection(svc.url, _auth(svc)) as c:
                t0 = time.monotonic()
                for i in range(total):
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    status, raw = await c.request("POST", "/api/v1/bot/", BODY)
                    assert status == 201, raw
            await setup.wait_for(total)
        finally:
            await asyncio.to_thread(svc.stop)  # the receivers must keep answering meanwhile
        lat = setup.latencies()
        return {"delivered": len(lat), "sent": total, "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)}


async def run(events: int, rate: float, seconds: float) -> None:
    b = await burst(events)
    d = await drain(events)
    s = await steady(rate, seconds)
    print(f"\nSummon webhooks — a healthy receiver, with a slow (2 s) and a dead endpoint alongside, "
          f"{os.cpu_count()} CPUs")
    print(f"{'measurement':58} {'value':>9}  target")
    print(f"{'burst: delivered to the healthy endpoint':58} {b['delivered']:>5.0f} / {events}")
    print(f"{'burst: deliveries/s (first change → last arrival)':58} {b['per_s']:9.0f}")
    print(f"{'burst: state changes/s (API creations, same process)':58} {b['changes_per_s']:9.0f}")
    print(f"{'burst: change → received p50 / p99 (ms)':58} {b['p50']:9.1f} / {b['p99']:.1f}")
    print(f"{'drain: delivered to the healthy endpoint':58} {d['delivered']:>5.0f} / {events}")
    print(f"{'drain: deliveries/s (sender alone, first → last arrival)':58} {d['per_s']:9.0f}  >= 1000")
    print(f"{'steady ' + format(rate, '.0f') + '/s: delivered':58} {s['delivered']:>5.0f} / {s['sent']:.0f}")
    print(f"{'steady: change → received p50 (ms)':58} {s['p50']:9.1f}")
    print(f"{'steady: change → received p99 (ms)':58} {s['p99']:9.1f}  <= 100")
    print(f"{'steady: change → received max (ms)':58} {s['max']:9.1f}")
    print(f"{'reached the slow endpoint meanwhile (burst / drain)':58} {b['slow']:9.0f} / {d['slow']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0, help="steady creations per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady phase length")
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(run(200, 50.0, 2.0))
    else:
        asyncio.run(run(args.events, args.rate, args.seconds))


if __name__ == "__main__":
    main()

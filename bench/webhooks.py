"""Webhook delivery: throughput and latency to a healthy local receiver while a slow endpoint
and a dead one are registered alongside, against a real ``summon serve``.

A burst of bot creations (each one a ``bot.scheduled`` status change) fans out to the three
endpoints. Prints deliveries/s to the healthy receiver and state change → received latency
p50/p99 (from the event's ``updated_at`` to its arrival). Targets (SPEC §14): ≥ 1,000
deliveries/s, p99 ≤ 100 ms for healthy endpoints.

    python bench/webhooks.py [--events 3000] [--quick]
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

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
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
                del line
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(events: int) -> None:
    healthy, slow = Receiver(), Receiver(delay=2.0)
    healthy_port, slow_port = await healthy.start(), await slow.start()
    dead_port = _service.free_port()  # nobody listens: connection refused
    svc = _service.start()
    try:
        async with _http.Connection(svc.url, {"Authorization": f"Token {svc.key}"}) as conn:
            for port in (healthy_port, slow_port, dead_port):
                status, _ = await conn.request("POST", "/api/v1/webhook_endpoints/",
                                               {"url": f"http://127.0.0.1:{port}/hook", "event_types": ["bot.scheduled"]})
                assert status == 201
        bodies = [{"meeting_url": "https://zoom.us/j/123456789", "join_at": "2031-01-01T10:00:00Z"}] * events
        counter = iter(bodies)

        async def creator() -> None:
            async with _http.Connection(svc.url, {"Authorization": f"Token {svc.key}"}) as c:
                for body in counter:
                    status, raw = await c.request("POST", "/api/v1/bot/", body)
                    assert status == 201, raw

        started = time.time()
        await asyncio.gather(*(creator() for _ in range(16)))
        created = time.time()
        deadline = time.monotonic() + 120
        while len(healthy.arrivals) < events and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        finished = max(a for a, _ in healthy.arrivals) if healthy.arrivals else time.time()
    finally:
        svc.stop()

    latencies = [(arrived - datetime.fromisoformat(p["data"]["data"]["updated_at"].replace("Z", "+00:00")).timestamp()) * 1000
                 for arrived, p in healthy.arrivals]
    span = finished - started
    print(f"\nSummon webhooks — {events} events to a healthy receiver, with a slow (2 s) and a dead endpoint "
          f"alongside, {os.cpu_count()} CPUs")
    print(f"{'metric':44} {'value':>10}  target")
    print(f"{'delivered to the healthy endpoint':44} {len(healthy.arrivals):>5} / {events:<4}")
    print(f"{'deliveries/s (first change → last arrival)':44} {len(healthy.arrivals) / span:10.0f}  >= 1000")
    print(f"{'state changes/s (API creations)':44} {events / (created - started):10.0f}")
    if latencies:
        print(f"{'change → received p50 (ms)':44} {pct(latencies, 50):10.1f}")
        print(f"{'change → received p99 (ms)':44} {pct(latencies, 99):10.1f}  <= 100")
    print(f"{'reached the slow endpoint meanwhile':44} {len(slow.arrivals):10d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    asyncio.run(run(200 if args.quick else args.events))


if __name__ == "__main__":
    main()

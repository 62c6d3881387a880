"""API throughput and latency against a real ``summon serve``.

Creates (scheduled) bots over HTTP with several concurrent keep-alive connections and prints creates/s;
then reads bots one request at a time and prints GET latency percentiles. Targets (SPEC §14):
≥ 1,000 creates/s on SQLite, ≥ 700 on PostgreSQL, GET p99 ≤ 10 ms.

    python bench/api.py [--postgres] [--creates 5000] [--concurrency 32] [--gets 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import orjson

sys.path.insert(0, os.path.dirname(__file__))
import _http  # noqa: E402
import _service  # noqa: E402

# Scheduled bots (join_at far ahead): booking throughput. Ad-hoc bots need a warm slot each
# and are measured by bench/punctuality.py (create → joining_call).
BODIES = [
    {"meeting_url": "https://zoom.us/j/123456789", "join_at": "2031-01-01T10:00:00Z", "metadata": {"n": "1"}},
    {"meeting_url": "https://meet.google.com/abc-defg-hij", "bot_name": "Bench", "join_at": "2031-01-01T10:00:00Z"},
    {"meeting_url": "https://teams.microsoft.com/meet/2452341234?p=abc", "join_at": "2031-01-01T10:30:00Z"},
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def create_load(url: str, key: str, total: int, concurrency: int) -> tuple[float, list[str], list[float]]:
    ids: list[str] = []
    latencies: list[float] = []
    counter = iter(range(total))
    headers = {"Authorization": f"Token {key}"}

    async def worker() -> None:
        async with _http.Connection(url, headers) as conn:
            for i in counter:
                start = time.perf_counter()
                status, body = await conn.request("POST", "/api/v1/bot/", BODIES[i % len(BODIES)])
                latencies.append(time.perf_counter() - start)
                if status != 201:
                    raise SystemExit(f"create failed: {status} {body!r}")
                ids.append(orjson.loads(body)["id"])

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start), ids, latencies


async def get_latency(url: str, key: str, ids: list[str], total: int) -> list[float]:
    """One request at a time: latency, not throughput."""
    latencies: list[float] = []
    async with _http.Connection(url, {"Authorization": f"Token {key}"}) as conn:
        for i in range(total):
            start = time.perf_counter()
            status, body = await conn.request("GET", f"/api/v1/bot/{ids[i % len(ids)]}/")
            latencies.append(time.perf_counter() - start)
            assert status == 200, body
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="use PostgreSQL at 127.0.0.1:5432")
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="create rounds; the median is reported")
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    if args.quick:
        args.creates, args.gets, args.rounds = 300, 200, 1

    env: dict[str, str] = {}
    db_name = None
    if args.postgres:
        url, db_name = _service.postgres_database()
        env["SUMMON_DATABASE_URL"] = url
    svc = _service.start(env)
    try:
        asyncio.run(create_load(svc.url, svc.key, 200, args.concurrency))  # warm-up
        rates, all_ids, create_lat = [], [], []
        for _ in range(args.rounds):
            rate, ids, lat = asyncio.run(create_load(svc.url, svc.key, args.creates, args.concurrency))
            rates.append(rate)
            all_ids += ids
            create_lat += lat
        gets = asyncio.run(get_latency(svc.url, svc.key, all_ids, args.gets))
    finally:
        svc.stop()
        if db_name:
            _service.drop_postgres_database(db_name)

    backend = "PostgreSQL" if args.postgres else "SQLite"
    ms = 1000
    print(f"\nSummon API benchmark — {backend}, {os.cpu_count()} CPUs, concurrency {args.concurrency}")
    print(f"{'metric':34} {'value':>12}  target")
    print(f"{'creates/s (median of rounds)':34} {statistics.median(rates):12.0f}  >= {700 if args.postgres else 1000}")
    print(f"{'creates/s (each round)':34} {', '.join(f'{r:.0f}' for r in rates):>12}")
    print(f"{'create latency p50 / p99 (ms)':34} {percentile(create_lat, 50) * ms:5.1f} / {percentile(create_lat, 99) * ms:5.1f}")
    print(f"{'GET latency p50 (ms)':34} {percentile(gets, 50) * ms:12.2f}")
    print(f"{'GET latency p99 (ms)':34} {percentile(gets, 99) * ms:12.2f}  <= 10")
    print(f"{'GET latency max (ms)':34} {max(gets) * ms:12.2f}")


if __name__ == "__main__":
    main()

"""Punctuality: N sandbox bots sharing one join_at, against a real ``summon serve``.

Prints lateness (joining_call − join_at) p50/p99/max and how many joined early, how staging was
spread over the lead window, CPU and RSS of the service and its runtimes, and ad-hoc
create → joining_call latency. Targets (SPEC §14): all join; p50 ≤ 5 ms, p99 ≤ 25 ms,
max ≤ 100 ms, none early; ad-hoc p99 ≤ 100 ms.

    python bench/punctuality.py [--bots 1000] [--lead 30] [--adhoc 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson

sys.path.insert(0, os.path.dirname(__file__))
import _http  # noqa: E402
import _procs  # noqa: E402
import _service  # noqa: E402


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Sampler(threading.Thread):
    """Samples the RSS of the service and its runtimes while the benchmark runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_service = self.peak_runtimes = 0.0
        self.runtimes_seen = 0
        self.cpu: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU seconds seen
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            pids = _procs.tree(self.pid)
            runtimes = [p for p in pids if _procs.is_runtime(p)]
            for p in pids:
                seconds = _procs.cpu_seconds(p)
                self.cpu[p] = (self.cpu.get(p, (seconds, seconds))[0], seconds)
            self.runtimes_seen = max(self.runtimes_seen, len(runtimes))
            self.peak_service = max(self.peak_service, _procs.rss_mb(self.pid))
            self.peak_runtimes = max(self.peak_runtimes, sum(_procs.rss_mb(p) for p in runtimes))


async def create_many(url: str, key: str, bodies: list[dict[str, object]], concurrency: int = 16) -> list[dict]:  # type: ignore[type-arg]
    out: list[dict] = []  # type: ignore[type-arg]
    it = iter(bodies)

    async def worker() -> None:
        async with _http.Connection(url, {"Authorization": f"Token {key}"}) as conn:
            for body in it:
                status, raw = await conn.request("POST", "/api/v1/bot/", body)
                assert status == 201, raw
                out.append(orjson.loads(raw))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def fetch_all(url: str, key: str) -> list[dict]:  # type: ignore[type-arg]
    bots, page = [], 1
    async with _http.Connection(url, {"Authorization": f"Token {key}"}) as conn:
        while True:
            status, raw = await conn.request("GET", f"/api/v1/bot/?page={page}&page_size=1000")
            data = orjson.loads(raw)
            bots += data["results"]
            if not data["next"]:
                return bots
            page += 1


def wait_finished(url: str, key: str, ids: set[str], timeout: float) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        bots = [b for b in asyncio.run(fetch_all(url, key)) if b["id"] in ids]
        if all(b["state"] in ("done", "fatal") for b in bots) and len(bots) == len(ids):
            return bots
        if time.monotonic() > deadline:
            raise SystemExit(f"not finished: {sum(b['state'] not in ('done', 'fatal') for b in bots)} bots")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--lead", type=float, default=30.0, help="SUMMON_STAGE_LEAD_S for the run")
    parser.add_argument("--slots", type=int, default=500, help="SUMMON_SLOTS_PER_RUNTIME (fewer, fuller runtimes release a shared instant with less contention on few cores)")
    parser.add_argument("--adhoc", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    if args.quick:
        args.bots, args.lead, args.adhoc, args.slots = 50, 3.0, 5, 25

    svc = _service.start({
        "SUMMON_SCHEDULED_THRESHOLD_S": str(args.lead + 5),
        "SUMMON_STAGE_LEAD_S": str(args.lead),
        "SUMMON_SLOTS_PER_RUNTIME": str(args.slots),
        "SUMMON_POOL_SIZE": "8",
    })
    sampler = Sampler(svc.process.pid)
    sampler.start()
    try:
        started = time.monotonic()
        join_at = datetime.now(UTC) + timedelta(seconds=args.lead + 10 + args.bots / 400)
        bodies = [{"meeting_url": f"sandbox://room{i}?participants=alice@0&end_after=2", "join_at": join_at.isoformat(),
                   "bot_name": f"bench {i}"} for i in range(args.bots)]
        created = asyncio.run(create_many(svc.url, svc.key, bodies))
        create_s = time.monotonic() - started
        bots = wait_finished(svc.url, svc.key, {b["id"] for b in created}, timeout=args.lead + 120 + args.bots / 10)

        # Ad-hoc: one at a time, each measured create → joining_call.
        adhoc_ids = []
        for _ in range(args.adhoc):
            adhoc_ids += [b["id"] for b in asyncio.run(create_many(
                svc.url, svc.key, [{"meeting_url": "sandbox://adhoc?participants=alice@0&end_after=0.2"}], 1))]
            time.sleep(0.05)
        adhoc = wait_finished(svc.url, svc.key, set(adhoc_ids), timeout=120)
    finally:
        sampler.stop.set()
        sampler.join()
        svc.stop()

    late_ms, early, failed, staged_offsets = [], 0, 0, []
    for bot in bots:
        changes = {c["code"]: c for c in bot["status_changes"]}
        if "joining_call" not in changes:
            failed += 1
            last = bot["status_changes"][-1]
            print(f"not joined: {bot['id']} {last['code']} {last['sub_code']} {last['message']}", file=sys.stderr)
            continue
        lateness = (ts(changes["joining_call"]["created_at"]) - ts(bot["join_at"])).total_seconds() * 1000
        early += lateness < 0
        late_ms.append(lateness)
        if "staged" in changes:
            staged_offsets.append((ts(bot["join_at"]) - ts(changes["staged"]["created_at"])).total_seconds())
    adhoc_ms = []
    for bot in adhoc:
        joining = next((c for c in bot["status_changes"] if c["code"] == "joining_call"), None)
        if joining:
            adhoc_ms.append((ts(joining["created_at"]) - ts(bot["created_at"])).total_seconds() * 1000)
    used = {p: last - first for p, (first, last) in sampler.cpu.items()}
    cpu_service = used.get(svc.process.pid, 0.0)
    cpu_runtimes = sum(v for p, v in used.items() if p != svc.process.pid)

    print(f"\nSummon punctuality — {args.bots} sandbox bots sharing one join_at, {os.cpu_count()} CPUs, "
          f"stage lead {args.lead:.0f} s, {args.slots} slots/runtime")
    print(f"{'metric':40} {'value':>12}  target")
    print(f"{'bots joined / created':40} {len(late_ms):>6} / {len(bots):<5}  all")
    print(f"{'lateness p50 (ms)':40} {pct(late_ms, 50):12.2f}  <= 5")
    print(f"{'lateness p99 (ms)':40} {pct(late_ms, 99):12.2f}  <= 25")
    print(f"{'lateness max (ms)':40} {max(late_ms):12.2f}  <= 100")
    print(f"{'joined early':40} {early:12d}  0")
    print(f"{'failed to join':40} {failed:12d}  0")
    if staged_offsets:
        print(f"{'staged before join_at: min..max (s)':40} {min(staged_offsets):5.1f} .. {max(staged_offsets):<5.1f} "
              f" spread over the lead window")
    print(f"{'creation time for all bots (s)':40} {create_s:12.1f}")
    print(f"{'service RSS peak (MB)':40} {sampler.peak_service:12.1f}")
    print(f"{'runtimes: count / RSS peak total (MB)':40} {sampler.runtimes_seen:>5} / {sampler.peak_runtimes:<6.1f}")
    print(f"{'CPU s: service / runtimes (whole run)':40} {cpu_service:6.1f} / {cpu_runtimes:<6.1f}")
    if adhoc_ms:
        print(f"{'ad-hoc create → joining_call p50 (ms)':40} {pct(adhoc_ms, 50):12.1f}")
        print(f"{'ad-hoc create → joining_call p99 (ms)':40} {pct(adhoc_ms, 99):12.1f}  <= 100")
    if statistics and early:
        print("WARNING: some bots joined early")


if __name__ == "__main__":
    main()

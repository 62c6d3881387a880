"""Scale: service memory and scheduler tick cost against the number of stored scheduled bots.

Bots far in the future are bulk-inserted straight into the database (creating a million over
HTTP would take a quarter of an hour and measure the API, not this). For each size the script
starts a real ``summon serve`` (API + fleet + scheduler) on the database and reads its RSS once
it is idle, and times, in process, the two queries a scheduler tick makes — the next
``stage_at`` and the claim of what is due (with 100 bots due) — which must cost the same
whatever is stored.

    python bench/scale.py [--sizes 0,100000,1000000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(__file__))
import _procs  # noqa: E402
import _service  # noqa: E402

from summon.domain.workspaces import Workspace  # noqa: E402
from summon.store.migrate import migrate  # noqa: E402
from summon.store.runners import sqlite_engine  # noqa: E402
from summon.store.sqlalchemy import SqlAlchemyStore  # noqa: E402
from summon.store.tables import bot_status_changes, bots  # noqa: E402

MEETING = {"meeting_id": "123456789", "meeting_password": None, "platform": "zoom"}


def bulk_insert(url: str, workspace_id: uuid.UUID, count: int, far: datetime) -> None:
    engine = sqlite_engine(url, "BEGIN IMMEDIATE")
    chunk = 20_000
    with engine.connect() as conn:
        for start in range(0, count, chunk):
            rows, changes = [], []
            for i in range(start, min(count, start + chunk)):
                bot_id = uuid.uuid4()
                join_at = far + timedelta(seconds=i)
                rows.append(dict(
                    id=bot_id, workspace_id=workspace_id, platform="zoom", meeting_url=MEETING,
                    meeting_url_raw="https://zoom.us/j/123456789", meeting_key="zoom:123456789", bot_name="far",
                    join_at=join_at, scheduled=True, state="scheduled", version=1, config={}, metadata={},
                    created_at=far, updated_at=far, stage_at=join_at - timedelta(seconds=120),
                    window_end=join_at + timedelta(hours=1), agent_id=None, lease_until=None,
                ))
                changes.append(dict(bot_id=bot_id, code="scheduled", sub_code=None, message=None, created_at=far))
            with conn.begin():
                conn.execute(bots.insert(), rows)
                conn.execute(bot_status_changes.insert(), changes)
    engine.dispose()


async def tick_cost(url: str, workspace_id: uuid.UUID) -> tuple[float, float]:
    """Median ms of next_stage_at, and of claiming 100 due bots."""
    store = SqlAlchemyStore(url)
    await store.start()
    try:
        next_ms = []
        for _ in range(30):
            t = time.perf_counter()
            await store.next_stage_at()
            next_ms.append((time.perf_counter() - t) * 1000)
        claim_ms = []
        now = datetime.now(UTC)
        for _ in range(5):
            due = []
            for _ in range(100):
                bot_id = uuid.uuid4()
                due.append(dict(
                    id=bot_id, workspace_id=workspace_id, platform="zoom", meeting_url=MEETING,
                    meeting_url_raw="https://zoom.us/j/123456789", meeting_key="zoom:123456789", bot_name="due",
                    join_at=now, scheduled=True, state="scheduled", version=1, config={}, metadata={},
                    created_at=now, updated_at=now, stage_at=now - timedelta(seconds=1), window_end=now,
                    agent_id=None, lease_until=None,
                ))
            await store.run_write(lambda conn, rows=due: conn.execute(bots.insert(), rows))
            t = time.perf_counter()
            claimed = await store.claim_due_bots(uuid.uuid4(), now, now + timedelta(seconds=30), 1000)
            claim_ms.append((time.perf_counter() - t) * 1000)
            assert len(claimed) == 100, len(claimed)
            ids = [b.id for b in claimed]
            await store.run_write(lambda conn, ids=ids: conn.execute(bots.update().where(bots.c.id.in_(ids)).values(state="done")))
        return statistics.median(next_ms), statistics.median(claim_ms)
    finally:
        await store.close()


def service_rss(data_dir: Path) -> float:
    svc = _service.start({"SUMMON_DATA_DIR": str(data_dir)})
    try:
        time.sleep(5)  # let it settle: scheduler ticks, pool warm, nothing due
        return _procs.rss_mb(svc.process.pid)
    finally:
        svc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="small CI-safe run (0 and 20,000 bots)")
    args = parser.parse_args()
    sizes = [0, 20_000] if args.quick else [int(s) for s in args.sizes.split(",")]

    data_dir = Path(tempfile.mkdtemp(prefix="summon-scale-"))
    url = f"sqlite:///{data_dir / 'summon.db'}"
    asyncio.run(migrate(url))
    workspace = Workspace(uuid.uuid4(), "scale", datetime.now(UTC))

    async def make_workspace() -> None:
        store = SqlAlchemyStore(url)
        await store.start()
        await store.ensure_workspace(workspace)
        await store.close()

    asyncio.run(make_workspace())
    far = datetime.now(UTC) + timedelta(days=365)
    stored = 0
    rows = []
    for size in sizes:
        t = time.perf_counter()
        bulk_insert(url, workspace.id, size - stored, far + timedelta(seconds=stored))
        insert_s = time.perf_counter() - t
        stored = size
        next_ms, claim_ms = asyncio.run(tick_cost(url, workspace.id))
        rss = service_rss(data_dir)
        rows.append((size, rss, next_ms, claim_ms, insert_s))
        print(f"  {size:>9} stored: service RSS {rss:6.1f} MB, next_stage_at {next_ms:.2f} ms, claim 100 due {claim_ms:.2f} ms",
              file=sys.stderr)

    print(f"\nSummon scale — scheduled bots stored far in the future (SQLite), {os.cpu_count()} CPUs")
    print(f"{'stored bots':>12} {'service RSS (MB)':>17} {'next stage_at (ms)':>19} {'claim 100 due (ms)':>19}")
    for size, rss, next_ms, claim_ms, _ in rows:
        print(f"{size:>12} {rss:>17.1f} {next_ms:>19.2f} {claim_ms:>19.2f}")
    base = rows[0]
    last = rows[-1]
    print(f"ratio largest/smallest: RSS ×{last[1] / base[1]:.2f}, next ×{last[2] / max(base[2], 1e-6):.2f}, "
          f"claim ×{last[3] / max(base[3], 1e-6):.2f}  (flat = close to ×1)")


if __name__ == "__main__":
    main()

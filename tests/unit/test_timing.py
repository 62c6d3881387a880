"""The join timer: never early, groups waiters by instant, precise on the real clock."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timedelta

import pytest

from summon.clock import SystemClock
from summon.runtime.timing import JoinTimer
from tests.unit.test_session import SteppingClock, advance_to, run_until, settle


class SkewedClock(SteppingClock):
    """A fake clock whose wall time can be stepped without moving monotonic time (NTP)."""

    def __init__(self) -> None:
        self.skew = 0.0
        super().__init__()

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.skew)


async def test_never_early_on_a_fake_clock() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    when = clock.epoch + 100
    task = asyncio.create_task(timer.wait_until(when))
    await advance_to(clock, 100 - 0.000_001)
    assert not task.done() and timer.waiting == 1
    await run_until(clock, task.done)
    assert task.result() >= when and clock.epoch - when < 0.001
    assert timer.waiting == 0 and timer.instants == 0


async def test_an_instant_already_past_returns_at_once() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    assert await timer.wait_until(clock.epoch - 5) == clock.epoch
    assert await timer.wait_until(clock.epoch) == clock.epoch
    assert timer.instants == 0


async def test_many_waiters_one_instant_one_timer_released_together() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    when = clock.epoch + 60
    tasks = [asyncio.create_task(timer.wait_until(when)) for _ in range(300)]
    await settle()
    assert timer.waiting == 300 and timer.instants == 1
    assert len(clock.pending) == 1  # one sleeper for the whole group
    await run_until(clock, lambda: any(t.done() for t in tasks))
    await settle(3)
    assert all(t.done() for t in tasks)  # in the same step
    assert {t.result() for t in tasks} == {clock.epoch}


async def test_different_instants_release_in_order() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    order: list[float] = []
    offsets = [30, 10, 20, 10.5, 20]

    async def wait(offset: float) -> None:
        released = await timer.wait_until(clock.origin + offset)
        assert released >= clock.origin + offset
        order.append(offset)

    tasks = [asyncio.create_task(wait(o)) for o in offsets]
    await settle()
    assert timer.instants == 4
    await run_until(clock, lambda: all(t.done() for t in tasks))
    assert order == sorted(offsets)


async def test_cancelling_waiters() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    when = clock.epoch + 10
    keep = asyncio.create_task(timer.wait_until(when))
    drop = asyncio.create_task(timer.wait_until(when))
    alone = asyncio.create_task(timer.wait_until(when + 5))
    await settle()
    assert timer.waiting == 3 and timer.instants == 2
    drop.cancel()
    alone.cancel()
    await settle()
    assert drop.cancelled() and alone.cancelled()
    assert timer.waiting == 1 and timer.instants == 1  # the empty instant stopped timing
    await run_until(clock, keep.done)
    assert keep.result() >= when


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
async def test_refuses_non_finite_instants(bad: float) -> None:
    with pytest.raises(ValueError):
        await JoinTimer(SteppingClock()).wait_until(bad)


async def test_wall_clock_stepped_back_delays_the_release() -> None:
    clock = SkewedClock()
    timer = JoinTimer(clock)
    when = clock.epoch + 10
    task = asyncio.create_task(timer.wait_until(when))
    await advance_to(clock, 3)
    clock.skew = -5.0  # the wall clock now reads 5 s earlier: 12 s to go
    await advance_to(clock, 14.9)
    assert not task.done()
    await run_until(clock, task.done)
    assert task.result() >= when
    assert clock.monotonic() == pytest.approx(15, abs=0.01)


async def test_wall_clock_stepped_forward_brings_the_release_forward() -> None:
    clock = SkewedClock()
    timer = JoinTimer(clock)
    when = clock.epoch + 10
    task = asyncio.create_task(timer.wait_until(when))
    await advance_to(clock, 3)
    clock.skew = 5.0
    await run_until(clock, task.done)
    assert task.result() >= when
    assert clock.monotonic() == pytest.approx(5, abs=0.01)  # noticed within one nap (1 s)


async def test_real_clock_lateness_of_many_waiters() -> None:
    """500 waiters, 200 ms ahead, on the real clock: none early, all within a few ms.

    The bound is generous (250 ms) so a noisy CI machine does not make it flaky; the benchmark
    measures the real distribution. ``resumed`` is when each waiter's own code ran again.
    """
    timer = JoinTimer(SystemClock())
    when = time.time() + 0.2

    async def waiter() -> tuple[float, float]:
        released = await timer.wait_until(when)
        return released, time.time()

    tasks = [asyncio.create_task(waiter()) for _ in range(500)]
    await asyncio.sleep(0)
    assert timer.instants == 1
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    lateness = sorted(resumed - when for _, resumed in results)
    assert all(released >= when for released, _ in results)
    assert lateness[0] >= 0, "released early"
    assert lateness[-1] < 0.250, f"max lateness {lateness[-1] * 1000:.1f} ms"
    assert statistics.median(lateness) < 0.100


async def test_real_clock_distinct_instants_are_each_crossed_exactly() -> None:
    timer = JoinTimer(SystemClock())
    base = time.time() + 0.05
    instants = [base + 0.01 * i for i in range(5)]

    async def waiter(when: float) -> float:
        await timer.wait_until(when)
        return time.time() - when

    lateness = await asyncio.wait_for(asyncio.gather(*(waiter(w) for w in instants)), timeout=5)
    assert all(0 <= late < 0.250 for late in lateness)

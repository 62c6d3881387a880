"""Per-workspace rate limits: a sliding window (two fixed windows, the older one weighted by how
much of it still overlaps the last minute). Memory is two counters per workspace and bucket.

Limits are per process; several API nodes each allow the full rate (documented).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

WINDOW_S = 60.0


@dataclass(slots=True)
class _Window:
    start: float
    current: int = 0
    previous: int = 0


class RateLimiter:
    def __init__(self, limits: dict[str, int], monotonic: Callable[[], float]) -> None:
        self._limits = limits
        self._monotonic = monotonic
        self._windows: dict[tuple[UUID, str], _Window] = {}

    def hit(self, workspace_id: UUID, bucket: str) -> float | None:
        """Count one request; None if allowed, else the seconds to wait before retrying."""
        limit = self._limits[bucket]
        now = self._monotonic()
        w = self._windows.get((workspace_id, bucket))
        if w is None:
            w = self._windows[(workspace_id, bucket)] = _Window(start=now)
        elapsed = now - w.start
        if elapsed >= WINDOW_S:
            shifts = int(elapsed // WINDOW_S)
            w.previous = w.current if shifts == 1 else 0
            w.current = 0
            w.start += shifts * WINDOW_S
            elapsed = now - w.start
        weight = 1.0 - elapsed / WINDOW_S
        if w.previous * weight + w.current + 1 > limit:
            return _wait(limit, w.previous, w.current, elapsed)
        w.current += 1
        return None


def _wait(limit: int, previous: int, current: int, elapsed: float) -> float:
    """Seconds until one more request fits: later in this window, as the previous one slides
    out, or else some way into the next window, as this one slides out."""
    room = limit - 1 - current
    if previous > 0 and room >= 0:
        in_this_window = WINDOW_S * (1 - room / previous) - elapsed
        if in_this_window < WINDOW_S - elapsed:
            return max(in_this_window, 0.0) + 0.001
    into_next = WINDOW_S * (1 - (limit - 1) / current) if current > 0 else 0.0
    return WINDOW_S - elapsed + max(into_next, 0.0) + 0.001

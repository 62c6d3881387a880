"""When bots are staged and joined, and what happens to bots whose moment passed. Pure rules.

- **Staging** happens ``stage_lead`` before ``join_at``. Bots that share a ``join_at`` (most
  meetings start at :00 and :30) are spread over the first half of the lead window by a hash of
  their id, so the expensive part (starting a runtime, loading a driver) is not all at once and
  the join instant itself costs little.
- **Capacity** is booked per window ``[join_at − stage_lead, window_end]`` where ``window_end`` is
  ``join_at`` plus the expected duration (capped at :data:`MAX_WINDOW`, so the overlap query
  stays a bounded index range).
- **Late joins**: a bot whose ``join_at`` passed while nobody could join it (the service was down)
  still joins if it is at most ``late_join_grace`` late; otherwise it fails with
  ``join_at_missed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from summon.domain.bots import expected_duration

#: Share of the lead window over which bots with the same join_at are spread.
STAGE_SPREAD = 0.5
MAX_WINDOW = timedelta(hours=24)
#: How long an agent may be silent before its bots are taken to be lost with it.
AGENT_TIMEOUT = timedelta(seconds=15)
#: How long a claim on a due bot lasts if its claimer goes quiet before staging it.
CLAIM_LEASE = timedelta(seconds=30)


#: The latest instant the scheduling arithmetic works with; later ``join_at`` values (year
#: 9999 and such, which the API accepts: "no upper limit") saturate here instead of overflowing.
LATEST = datetime.max.replace(tzinfo=UTC) - 2 * MAX_WINDOW


def plus(when: datetime, delta: timedelta) -> datetime:
    """``when + delta`` saturating at :data:`LATEST` (and at its mirror image going back)."""
    earliest = datetime.min.replace(tzinfo=UTC) + 2 * MAX_WINDOW
    try:
        result = when + delta
    except OverflowError:
        return LATEST if delta > timedelta(0) else earliest
    return min(max(result, earliest), LATEST)


def stage_at(bot_id: UUID, join_at: datetime, lead_s: float) -> datetime:
    """When to stage: ``join_at − lead``, plus a stable per-bot share of half the lead."""
    share = (bot_id.int % 10_007) / 10_007
    return plus(join_at, timedelta(seconds=-lead_s + lead_s * STAGE_SPREAD * share))


def window_end(join_at: datetime, config: dict[str, Any], calendar_end: datetime | None = None) -> datetime:
    """End of the slot reservation: the calendar event's end, else the expected duration."""
    if calendar_end is not None and calendar_end > join_at:
        return min(calendar_end, plus(join_at, MAX_WINDOW))
    return plus(join_at, min(timedelta(seconds=expected_duration(config)), MAX_WINDOW))


def window_start(join_at: datetime, lead_s: float) -> datetime:
    return plus(join_at, timedelta(seconds=-lead_s))


class Lateness(Enum):
    ON_TIME = "on_time"  # join at join_at (still ahead)
    LATE = "late"  # join now, say how late
    MISSED = "missed"  # too late: fatal join_at_missed


@dataclass(frozen=True, slots=True)
class JoinPlan:
    lateness: Lateness
    late_by_s: float = 0.0

    @property
    def message(self) -> str | None:
        if self.lateness is Lateness.LATE:
            return f"joined {self.late_by_s:.1f} s after join_at (the service was not running at join_at)"
        if self.lateness is Lateness.MISSED:
            return f"join_at passed {self.late_by_s:.1f} s ago, more than the late-join grace"
        return None


def plan_join(join_at: datetime | None, now: datetime, grace_s: float) -> JoinPlan:
    if join_at is None or join_at >= now:
        return JoinPlan(Lateness.ON_TIME)
    late = (now - join_at).total_seconds()
    return JoinPlan(Lateness.LATE if late <= grace_s else Lateness.MISSED, late)

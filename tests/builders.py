"""Test data builders."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from summon.domain.bots import Bot
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.workspaces import Workspace


def workspace(name: str = "acme", now: datetime | None = None) -> Workspace:
    from tests.conftest import START

    return Workspace(uuid4(), name, now or START)


def bot(workspace_id: UUID, now: datetime, **overrides: Any) -> Bot:
    join_at = overrides.pop("join_at", now + timedelta(hours=1))
    state = overrides.pop("state", Status.SCHEDULED)
    b = Bot(
        id=uuid4(),
        workspace_id=workspace_id,
        meeting_url={"meeting_id": "123456789", "meeting_password": None, "platform": "zoom"},
        meeting_url_raw="https://zoom.us/j/123456789",
        meeting_key="zoom:123456789",
        platform="zoom",
        bot_name="Notetaker",
        join_at=join_at,
        scheduled=True,
        state=state,
        version=1,
        config={"automatic_leave": {"waiting_room_timeout": 1200}},
        metadata={"team": "sales"},
        created_at=now,
        updated_at=now,
        status_changes=[StatusChange(state, None, None, now)],
    )
    for key, value in overrides.items():
        setattr(b, key, value)
    return b

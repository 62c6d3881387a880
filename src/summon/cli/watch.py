"""``summon bots watch``: a live table of bots, their states and how punctually they joined.

A client of the HTTP API like the other ``bots`` commands: it reads the newest bots every
``interval`` seconds and redraws.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "scheduled": "cyan", "staged": "bright_cyan", "ready": "cyan", "joining_call": "yellow",
    "in_waiting_room": "yellow", "in_call_not_recording": "green", "recording_permission_allowed": "green",
    "recording_permission_denied": "red", "in_call_recording": "bold green", "call_ended": "blue",
    "recording_done": "blue", "done": "dim", "fatal": "bold red", "media_expired": "dim",
}


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def lateness_ms(bot: dict[str, Any]) -> float | None:
    join_at = _ts(bot.get("join_at"))
    joining = next((c for c in bot.get("status_changes", []) if c["code"] == "joining_call"), None)
    if join_at is None or joining is None:
        return None
    started = _ts(joining["created_at"])
    return None if started is None else (started - join_at).total_seconds() * 1000


def render(bots: list[dict[str, Any]], total: int, now: datetime) -> Group:
    table = Table(expand=True, header_style="bold")
    for column, justify in (("bot", "left"), ("name", "left"), ("platform", "left"), ("state", "left"),
                            ("sub-code", "left"), ("join_at", "left"), ("in", "right"), ("lateness", "right")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    counts: dict[str, int] = {}
    for bot in bots:
        state = bot["state"]
        counts[state] = counts.get(state, 0) + 1
        join_at = _ts(bot.get("join_at"))
        until = "" if join_at is None else _duration((join_at - now).total_seconds())
        late = lateness_ms(bot)
        last = bot["status_changes"][-1] if bot.get("status_changes") else {}
        table.add_row(
            bot["id"][:8],
            bot.get("bot_name", "")[:24],
            (bot.get("meeting_url") or {}).get("platform", ""),
            Text(state, style=STATE_STYLES.get(state, "")),
            last.get("sub_code") or "",
            join_at.strftime("%Y-%m-%d %H:%M:%S") if join_at else "—",
            until,
            "" if late is None else Text(f"{late:+.1f} ms", style="red" if late > 100 or late < 0 else "green"),
        )
    summary = Text("  ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "no bots yet")
    header = Text(f"{total} bots · showing the newest {len(bots)} · {now.strftime('%H:%M:%S')} UTC", style="bold")
    return Group(header, summary, table)


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "now" if seconds > -1 else ""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def watch(url: str, key: str, interval: float, limit: int, statuses: tuple[str, ...], once: bool = False) -> None:
    params: list[tuple[str, str]] = [("page_size", str(limit))] + [("status", s) for s in statuses]
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=10) as client:
        def frame() -> Group:
            data = client.get("/api/v1/bot/", params=params).raise_for_status().json()
            return render(data["results"], data["count"], datetime.now(UTC))

        if once:
            from rich.console import Console

            Console().print(frame())
            return
        with Live(frame(), refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame())

"""Recordings in the store (SQLite and PostgreSQL) and the use cases around them: storing a
runtime's report fenced with its webhooks, listing, deleting, media expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from summon.clock import FakeClock, isoformat_z
from summon.domain.bots import Bot
from summon.domain.errors import NotFound, StaleVersion
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.recordings import (
    MediaNotDeletable,
    MediaUrlRefused,
    RecordingFilter,
    RecordingReport,
    RecordingStatus,
    recording_from_report,
)
from summon.services import recordings as service
from summon.services.context import Context
from summon.store.sqlalchemy import SqlAlchemyStore
from tests import builders
from tests.conftest import START


async def finished_bot(
    store: SqlAlchemyStore, workspace_id: UUID, state: Status = Status.DONE, **config: Any
) -> Bot:
    bot = builders.bot(workspace_id, START)
    bot = replace(bot, config={**bot.config, "recording_config": config})
    await store.insert_bot(bot, [])
    changed = replace(
        bot, state=state, version=bot.version + 1,
        status_changes=[*bot.status_changes, StatusChange(state, None, None, START)],
    )
    await store.save_bot(changed, bot.version, changed.status_changes[-1])
    return changed


def write_media(root: Path, bot: Bot) -> RecordingReport:
    """Files as a runtime leaves them, and the report it sends."""
    folder = root / str(bot.id)
    folder.mkdir(parents=True)
    files = {}
    for label, name, kind in (
        ("audio_mixed", "audio_mixed.mp3", "audio/mpeg"),
        ("transcript", "transcript.json", "application/json"),
        ("participant_events", "participant_events.json", "application/json"),
        ("speaker_timeline", "speaker_timeline.json", "application/json"),
        ("participants", "participants.json", "application/json"),
        ("meeting_metadata", "meeting_metadata.json", "application/json"),
    ):
        (folder / name).write_bytes(b"[]")
        files[label] = {"path": f"{bot.id}/{name}", "content_type": kind, "size": 2}
    return RecordingReport.from_message({
        "status": "done", "started_at": START.timestamp(),
        "completed_at": START.timestamp() + 30, "duration": 30.0, "files": files,
        "transcript_provider": "meeting_captions",
    })


async def test_save_get_list_and_delete_round_trip(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    other, _ = await store.ensure_workspace(builders.workspace("other"))
    bots = [await finished_bot(store, ws.id) for _ in range(3)]
    recs = []
    for i, bot in enumerate(bots):
        report = RecordingReport.from_message({
            "status": "done", "started_at": START.timestamp() + i, "completed_at": None,
            "duration": 1.0,
            "files": {"audio_mixed": {"path": f"{bot.id}/a.mp3", "content_type": "audio/mpeg",
                                      "size": 1}},
        })
        recs.append(recording_from_report(bot, report, START + timedelta(hours=i)))
    await store.save_recordings(recs)
    assert await store.get_recording(ws.id, recs[0].id) == recs[0]
    assert await store.get_recording(None, recs[0].id) == recs[0]
    assert await store.get_recording(other.id, recs[0].id) is None
    newest_first = [r.id for r in reversed(recs)]
    assert [r.id for r in await store.list_recordings(ws.id, RecordingFilter(), None, 10)] == \
        newest_first
    page = await store.list_recordings(ws.id, RecordingFilter(), None, 2)
    rest = await store.list_recordings(
        ws.id, RecordingFilter(), (page[-1].created_at, page[-1].id), 2
    )
    assert [r.id for r in page + rest] == newest_first
    by_bot = await store.list_recordings(ws.id, RecordingFilter(bot_id=bots[1].id), None, 10)
    assert [r.id for r in by_bot] == [recs[1].id]
    after = RecordingFilter(created_at_after=recs[1].created_at)
    assert {r.id for r in await store.list_recordings(ws.id, after, None, 10)} == {
        recs[1].id, recs[2].id
    }
    assert await store.list_recordings(ws.id, RecordingFilter(status="failed"), None, 10) == []
    assert await store.list_recordings(other.id, RecordingFilter(), None, 10) == []
    of_bots = await store.recordings_of_bots(ws.id, [bots[0].id, bots[2].id])
    assert {k: [r.id for r in v] for k, v in of_bots.items()} == {
        bots[0].id: [recs[0].id], bots[2].id: [recs[2].id]
    }
    updated = replace(recs[0], status=RecordingStatus.FAILED, error="x")
    await store.save_recordings([updated])  # replaces
    assert await store.get_recording(ws.id, recs[0].id) == updated
    assert await store.delete_recording(recs[0])
    assert not await store.delete_recording(recs[0])
    assert await store.get_recording(ws.id, recs[0].id) is None


async def test_expired_recordings_are_an_index_seek_in_expiry_order(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    soon = await finished_bot(store, ws.id, retention={"type": "timed", "hours": 1})
    later = await finished_bot(store, ws.id, retention={"type": "timed", "hours": 2})
    never = await finished_bot(store, ws.id, retention={"type": "forever"})
    report = RecordingReport.from_message({"status": "done", "completed_at": START.timestamp(),
                                           "files": {}})
    recs = [recording_from_report(b, report, START) for b in (later, soon, never)]
    await store.save_recordings(recs)
    assert await store.expired_recordings(START + timedelta(minutes=59), 10) == []
    due = await store.expired_recordings(START + timedelta(hours=5), 10)
    assert [r.bot_id for r in due] == [soon.id, later.id]
    await store.save_recordings([replace(recs[1], status=RecordingStatus.DELETED)])
    assert [r.bot_id for r in await store.expired_recordings(START + timedelta(hours=5), 10)] == [
        later.id
    ]


async def test_record_recording_is_fenced_and_queues_its_webhooks(ctx: Context) -> None:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id, Status.CALL_ENDED)  # type: ignore[arg-type]
    report = write_media(ctx.settings.media_root(), bot)
    before = {m.id for m in await ctx.store.pending_messages(100)}
    updated = await service.record_recording(ctx, bot, report)
    assert updated.version == bot.version + 1
    stored = await ctx.store.get_bot(ws.id, bot.id)
    assert stored is not None and stored.version == updated.version
    queued = [m.event_type for m in await ctx.store.pending_messages(100) if m.id not in before]
    assert queued == ["recording.done", "audio_mixed.done", "transcript.done",
                      "participant_events.done", "meeting_metadata.done"]
    with pytest.raises(StaleVersion):  # a stale writer stores nothing
        await service.record_recording(ctx, bot, report)
    assert len(await ctx.store.recordings_of_bots(None, [bot.id])) == 1


async def test_signed_urls_open_their_file_until_they_expire(ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id)  # type: ignore[arg-type]
    await service.record_recording(ctx, bot, write_media(ctx.settings.media_root(), bot))
    rec = await service.get_recording(ctx, ws.id, (await ctx.store.recordings_of_bots(
        None, [bot.id]))[bot.id][0].id)
    url = service.media_url(ctx, "http://media.example", rec, "speaker_timeline")
    assert url is not None and url.startswith(f"http://media.example/media/{rec.id}/")
    name, query = url.rsplit("/", 1)[1].split("?")
    params = dict(p.split("=") for p in query.split("&"))
    media = await service.open_media(ctx, rec.id, name, params["expires"], params["signature"])
    assert media.path.name == "speaker_timeline.json" and media.content_type == "application/json"
    with pytest.raises(MediaUrlRefused):
        await service.open_media(ctx, rec.id, "participants.json", params["expires"],
                                 params["signature"])
    with pytest.raises(MediaUrlRefused):
        await service.open_media(ctx, rec.id, name, "not-a-number", params["signature"])
    clock.advance(ctx.settings.media_url_ttl_s + 1)
    with pytest.raises(MediaUrlRefused, match="expired"):
        await service.open_media(ctx, rec.id, name, params["expires"], params["signature"])


async def test_delete_media_deletes_files_and_expires_the_bot(ctx: Context) -> None:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id)  # type: ignore[arg-type]
    bot = await service.record_recording(ctx, bot, write_media(ctx.settings.media_root(), bot))
    folder = ctx.settings.media_root() / str(bot.id)
    assert folder.is_dir()
    expired = await service.delete_media(ctx, ws.id, bot.id)
    assert expired.state is Status.MEDIA_EXPIRED and not folder.exists()
    stored = await ctx.store.get_bot(ws.id, bot.id)
    assert stored is not None and stored.state is Status.MEDIA_EXPIRED
    assert [c.code for c in stored.status_changes][-1] is Status.MEDIA_EXPIRED
    rec = (await ctx.store.recordings_of_bots(ws.id, [bot.id]))[bot.id][0]
    assert rec.status is RecordingStatus.DELETED
    assert service.media_url(ctx, "http://x", rec, "audio_mixed") is None
    again = await service.delete_media(ctx, ws.id, bot.id)  # idempotent
    assert again.version == stored.version
    messages = [m.event_type for m in await ctx.store.pending_messages(100)]
    assert {"recording.deleted", "audio_mixed.deleted", "bot.media_expired"} <= set(messages)


async def test_delete_media_refuses_a_bot_still_at_work(ctx: Context) -> None:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id, Status.CALL_ENDED)  # type: ignore[arg-type]
    with pytest.raises(MediaNotDeletable):
        await service.delete_media(ctx, ws.id, bot.id)
    with pytest.raises(NotFound):
        await service.delete_media(ctx, ws.id, builders.bot(ws.id, START).id)


async def test_expire_media_takes_only_recordings_past_retention(ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    store = ctx.store
    assert isinstance(store, SqlAlchemyStore)
    short = await finished_bot(store, ws.id, retention={"type": "timed", "hours": 1})
    kept = await finished_bot(store, ws.id, retention={"type": "forever"})
    for bot in (short, kept):
        await service.record_recording(ctx, bot, write_media(ctx.settings.media_root(), bot))
    assert await service.expire_media(ctx, clock.now()) == 0
    clock.advance(3600 + 31)
    assert await service.expire_media(ctx, clock.now()) == 1
    assert await service.expire_media(ctx, clock.now()) == 0  # done once
    got = {b.id: await ctx.store.get_bot(ws.id, b.id) for b in (short, kept)}
    assert got[short.id].state is Status.MEDIA_EXPIRED  # type: ignore[union-attr]
    assert got[kept.id].state is Status.DONE  # type: ignore[union-attr]
    assert not (ctx.settings.media_root() / str(short.id)).exists()
    assert (ctx.settings.media_root() / str(kept.id)).is_dir()


async def test_delete_recording_removes_files_and_the_record(ctx: Context) -> None:
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id)  # type: ignore[arg-type]
    await service.record_recording(ctx, bot, write_media(ctx.settings.media_root(), bot))
    rec = (await ctx.store.recordings_of_bots(ws.id, [bot.id]))[bot.id][0]
    await service.delete_recording(ctx, ws.id, rec.id)
    assert not (ctx.settings.media_root() / str(bot.id)).exists()
    with pytest.raises(NotFound):
        await service.get_recording(ctx, ws.id, rec.id)
    assert "recording.deleted" in {m.event_type for m in await ctx.store.pending_messages(100)}


async def test_recording_webhooks_carry_the_instant_the_runtime_reported(ctx: Context) -> None:
    """Stored a little later than reported, the recording's webhooks still say when it was
    reported: before the runtime's next status (``recording_done``), so they sort before it."""
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    ws, _ = await ctx.store.ensure_workspace(builders.workspace())
    bot = await finished_bot(ctx.store, ws.id, Status.CALL_ENDED)  # type: ignore[arg-type]
    reported = clock.now()
    report = replace(write_media(ctx.settings.media_root(), bot), reported_at=reported.timestamp())
    clock.advance(0.25)  # the agent stores it a moment later
    before = {m.id for m in await ctx.store.pending_messages(100)}
    await service.record_recording(ctx, bot, report)
    queued = [m for m in await ctx.store.pending_messages(100) if m.id not in before]
    stamps = {m.payload["data"]["data"]["updated_at"] for m in queued}
    assert stamps == {isoformat_z(reported)}

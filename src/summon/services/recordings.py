"""Recordings as use cases (SPEC §9): store what a runtime recorded, read, list and delete
recordings, delete a bot's media, expire media past its retention, and make and check the
signed download URLs.

Files live under ``settings.media_root()`` (``<root>/<bot id>/``); the store keeps paths
relative to that root, so the root can move. Deleting media deletes the files first and then
records it: a crash in between leaves a recording that says its media exists while it does not
(downloads answer 404), never files nobody knows about.

Expiry (:func:`expire_media`) runs in the fleet agent's loop every
``SUMMON_MEDIA_EXPIRY_INTERVAL_S``; it is idempotent and fenced, so several agents may run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from summon.domain.bots import Bot
from summon.domain.errors import NotFound, StaleVersion
from summon.domain.events import bot_status_event
from summon.domain.lifecycle import IllegalTransition, Status, StatusChange, check_transition
from summon.domain.recordings import (
    ArtifactStatus,
    MediaNotDeletable,
    MediaUrlRefused,
    Recording,
    RecordingFilter,
    RecordingReport,
    RecordingStatus,
    media_signature,
    recording_from_report,
    recording_messages,
    verify_media_signature,
    with_media_deleted,
)
from summon.services.context import Context

__all__ = [
    "SEPARATE_INDEX",
    "MediaFile",
    "audio_separate_parts",
    "delete_media",
    "delete_recording",
    "expire_media",
    "get_recording",
    "list_recordings",
    "media_url",
    "open_media",
    "record_recording",
    "recordings_of",
]

log = logging.getLogger(__name__)

#: File extensions of the download URLs, by content type (cosmetic: players like them).
#: The label of a recording's per-participant audio index (a document made when downloaded: its
#: parts' URLs are signed then).
SEPARATE_INDEX = "audio_separate"
_EXTENSIONS = {"audio/mpeg": "mp3", "audio/wav": "wav", "video/mp4": "mp4",
               "application/json": "json"}
EXPIRY_BATCH = 100


# -- the runtime's report --------------------------------------------------------------------------
async def record_recording(ctx: Context, bot: Bot, report: RecordingReport) -> Bot:
    """Store ``bot``'s recording from its runtime's report, with ``recording.<status>`` and
    the artifacts' webhooks, in one transaction fenced by ``bot.version`` (the bot moves to
    the next version). Returns the bot as written. Raises ``StaleVersion``."""
    now = ctx.clock.now()
    # The report's own instant (webhooks then sort before the runtime's next status, written
    # after this); never later than now.
    at = now if report.reported_at is None else min(now, datetime.fromtimestamp(report.reported_at, UTC))
    recording = recording_from_report(bot, report, at)
    updated = replace(bot, version=bot.version + 1, updated_at=now)
    await ctx.store.save_recordings(
        [recording], recording_messages(recording, at), bot=updated, expected_version=bot.version
    )
    ctx.signals.notify("outbox")
    return updated


# -- reading ---------------------------------------------------------------------------------------
async def get_recording(ctx: Context, workspace_id: UUID, recording_id: UUID) -> Recording:
    recording = await ctx.store.get_recording(workspace_id, recording_id)
    if recording is None:
        raise NotFound("recording", recording_id)
    return recording


async def list_recordings(
    ctx: Context,
    workspace_id: UUID,
    flt: RecordingFilter,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Recording]:
    return await ctx.store.list_recordings(workspace_id, flt, before, limit)


async def recordings_of(
    ctx: Context, workspace_id: UUID | None, bot_ids: list[UUID]
) -> dict[UUID, list[Recording]]:
    """Each bot's recordings (for rendering bots)."""
    return await ctx.store.recordings_of_bots(workspace_id, bot_ids)


# -- deleting --------------------------------------------------------------------------------------
async def delete_recording(ctx: Context, workspace_id: UUID, recording_id: UUID) -> None:
    """Delete a recording: its files, then the record (``recording.deleted`` is sent)."""
    recording = await get_recording(ctx, workspace_id, recording_id)
    await _remove_files(ctx, recording)
    now = ctx.clock.now()
    gone = with_media_deleted(recording, now)
    await ctx.store.delete_recording(recording, recording_messages(gone, now))
    ctx.signals.notify("outbox")


async def delete_media(ctx: Context, workspace_id: UUID, bot_id: UUID) -> Bot:
    """Delete every file of a finished bot at once and move it to ``media_expired``
    (idempotent). Raises :class:`MediaNotDeletable` while the bot is not ``done``/``fatal``."""
    bot = await ctx.store.get_bot(workspace_id, bot_id)
    if bot is None:
        raise NotFound("bot", bot_id)
    if bot.state is Status.MEDIA_EXPIRED:
        return bot
    if bot.state not in (Status.DONE, Status.FATAL):
        raise MediaNotDeletable(
            f"the bot is {bot.state.value}: its media can be deleted once it is done"
        )
    return await _expire_bot(ctx, bot)


async def expire_media(ctx: Context, now: datetime) -> int:
    """Delete the media of every recording past its retention and move its bot to
    ``media_expired``. Returns how many recordings were expired. Never raises for one bad
    recording (logged, retried next time)."""
    expired = 0
    while True:
        due = await ctx.store.expired_recordings(now, EXPIRY_BATCH)
        done_here = 0
        for recording in due:
            try:
                bot = await ctx.store.get_bot(None, recording.bot_id)
                if bot is None:
                    continue
                await _expire_bot(ctx, bot)
                done_here += 1
            except Exception:
                log.exception("expiring the media of recording %s failed", recording.id)
        expired += done_here
        if len(due) < EXPIRY_BATCH or done_here == 0:
            return expired


async def _expire_bot(ctx: Context, bot: Bot) -> Bot:
    """Files first, then one fenced transaction: recordings ``deleted``, the bot
    ``media_expired`` (when its state allows), and their webhooks."""
    for _ in range(5):
        recordings = (await ctx.store.recordings_of_bots(None, [bot.id])).get(bot.id, [])
        live = [r for r in recordings if r.status is not RecordingStatus.DELETED]
        for recording in live:
            await _remove_files(ctx, recording)
        now = ctx.clock.now()
        deleted = [with_media_deleted(r, now) for r in live]
        messages = [m for r in deleted for m in recording_messages(r, now)]
        updated, change = bot, None
        try:
            status = check_transition(bot.state, Status.MEDIA_EXPIRED, None)
        except IllegalTransition:
            status = None  # e.g. still finishing: only the recording goes
        if status is not None:
            change = StatusChange(status, None, None, now)
            updated = replace(bot, state=status, version=bot.version + 1, updated_at=now,
                              status_changes=[*bot.status_changes, change])
            messages.append(bot_status_event(updated, change))
        try:
            await ctx.store.save_recordings(
                deleted, messages,
                bot=updated if change is not None else None,
                expected_version=bot.version if change is not None else None,
                change=change,
            )
        except StaleVersion:
            fresh = await ctx.store.get_bot(None, bot.id)
            if fresh is None:
                raise NotFound("bot", bot.id) from None
            bot = fresh
            continue
        ctx.signals.notify("outbox")
        return updated
    raise StaleVersion(bot.id, bot.version)


async def _remove_files(ctx: Context, recording: Recording) -> None:
    root = ctx.settings.media_root()
    paths = {_inside(root, f.path) for a in recording.artifacts for f in a.files.values()}
    folders = {p.parent for p in paths if p is not None}

    def remove() -> None:
        for path in paths:
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            if folder != root:  # the bot's folder (and audio_separate/) once empty
                with contextlib.suppress(OSError):
                    folder.rmdir()

    await asyncio.to_thread(remove)


def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it stays inside ``root`` (stored paths are ours; belt and braces)."""
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) else None


# -- signed URLs -----------------------------------------------------------------------------------
def _key(ctx: Context) -> bytes:
    if ctx.secrets is None:
        raise RuntimeError("signed media URLs need the secret key (Context.secrets)")
    return ctx.secrets.derive("media-urls")


def media_url(ctx: Context, base_url: str, recording: Recording, label: str) -> str | None:
    """The absolute signed URL of file ``label`` of ``recording``, valid for
    ``SUMMON_MEDIA_URL_TTL_S`` from now; None when the file does not exist (any more)."""
    if label == SEPARATE_INDEX:
        separate = recording.artifact("audio_separate")
        if separate is None or separate.status is not ArtifactStatus.DONE:
            return None
        content_type = "application/json"
    else:
        file = recording.file(label)
        if file is None:
            return None
        content_type = file.content_type
    if recording.status is RecordingStatus.DELETED:
        return None
    expires = int(ctx.clock.now().timestamp() + ctx.settings.media_url_ttl_s)
    signature = media_signature(_key(ctx), recording.id, label, expires)
    extension = _EXTENSIONS.get(content_type, "bin")
    query = urlencode({"expires": expires, "signature": signature})
    return f"{base_url.rstrip('/')}/media/{recording.id}/{label}.{extension}?{query}"


async def audio_separate_parts(
    ctx: Context, base_url: str, recording_id: UUID, expires: str, signature: str
) -> list[dict[str, Any]]:
    """The per-participant audio of a recording, for its signed ``audio_separate`` URL: each
    participant's file with a signed URL of its own, and where it sits in the recording
    (``MediaUrlRefused`` / ``NotFound`` like :func:`open_media`)."""
    _check_media_url(ctx, recording_id, SEPARATE_INDEX, expires, signature)
    recording = await ctx.store.get_recording(None, recording_id)
    separate = None if recording is None else recording.artifact("audio_separate")
    if recording is None or separate is None or separate.status is not ArtifactStatus.DONE:
        raise NotFound("media", SEPARATE_INDEX)
    return [
        {
            "participant": part.get("participant"),
            "format": separate.data.get("format"),
            "download_url": media_url(ctx, base_url, recording, part["label"]),
            "start_timestamp": {"relative": part.get("offset") or 0.0},
            "end_timestamp": {"relative": (part.get("offset") or 0.0) + (part.get("duration") or 0.0)},
        }
        for part in separate.data.get("parts") or ()
    ]


def _check_media_url(ctx: Context, recording_id: UUID, label: str, expires: str, signature: str) -> None:
    if not expires.isdecimal() or len(expires) > 12 or not 0 < len(signature) <= 128:
        raise MediaUrlRefused("the download URL is not valid")
    verify_media_signature(_key(ctx), recording_id, label, int(expires), signature, ctx.clock.now())


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file a signed URL grants: where it is, what it is, and a name to save it as."""

    path: Path
    content_type: str
    filename: str


async def open_media(
    ctx: Context, recording_id: UUID, name: str, expires: str, signature: str
) -> MediaFile:
    """Check a signed URL (``MediaUrlRefused`` if tampered with, malformed or expired) and
    find its file (``NotFound`` when the recording or the file is gone)."""
    label = name.rsplit(".", 1)[0]
    _check_media_url(ctx, recording_id, label, expires, signature)
    recording = await ctx.store.get_recording(None, recording_id)
    if recording is None or recording.status is RecordingStatus.DELETED:
        raise NotFound("recording", recording_id)
    file = recording.file(label)
    path = None if file is None else _inside(ctx.settings.media_root(), file.path)
    if file is None or path is None or not await asyncio.to_thread(path.is_file):
        raise NotFound("media", name)
    extension = _EXTENSIONS.get(file.content_type, "bin")
    return MediaFile(path, file.content_type, f"{label}.{extension}")


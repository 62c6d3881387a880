"""Recordings and their artifacts (SPEC §9), as pure records and rules.

A bot that recorded has one **recording** (Recall's object) made of **artifacts**:
``audio_mixed``, ``video_mixed`` (when there was video), ``transcript`` (when one was asked
for), ``participant_events`` (three files: the events, the speaker timeline, the participants)
and ``meeting_metadata``. The runtime writes the files under the bot's media directory and
reports them (:class:`RecordingReport`); the agent turns the report into a :class:`Recording`
(:func:`recording_from_report`) and stores it with its webhooks (:func:`recording_messages`) in
one fenced transaction.

Ids are the stable ones the real-time payloads already use
(:func:`summon.domain.realtime.object_id`): a client can match a ``transcript.data`` event to
the transcript artifact it later downloads.

Files are served by Summon under **signed URLs**, like pre-signed object-store URLs: the path
names the recording and the file, the query carries an expiry and an HMAC-SHA256 over both
(:func:`media_signature`), so downloads need no API key and a URL cannot be altered or used
after it expired. Retention: ``recording_config.retention`` ``{"type": "timed", "hours": N}``
(default 168 h) or ``{"type": "forever"}`` (:func:`expires_at`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from summon.clock import isoformat_z
from summon.domain.bots import Bot
from summon.domain.errors import RuleViolation
from summon.domain.events import OutboxMessage
from summon.domain.realtime import object_id

__all__ = [
    "ARTIFACT_KINDS",
    "DEFAULT_RETENTION_HOURS",
    "Artifact",
    "ArtifactFile",
    "ArtifactStatus",
    "MediaNotDeletable",
    "MediaUrlRefused",
    "Recording",
    "RecordingFilter",
    "RecordingReport",
    "RecordingStatus",
    "expires_at",
    "media_signature",
    "recording_from_report",
    "recording_messages",
    "verify_media_signature",
    "with_media_deleted",
]

DEFAULT_RETENTION_HOURS = 168
#: Artifacts in the order Recall lists them, and which reported files make each one.
ARTIFACT_KINDS: dict[str, tuple[str, ...]] = {
    "audio_mixed": ("audio_mixed",),
    "audio_separate": (),  # one file per participant, named by the report (audio_separate_1…)
    "video_mixed": ("video_mixed",),
    "transcript": ("transcript",),
    "participant_events": ("participant_events", "speaker_timeline", "participants"),
    "meeting_metadata": ("meeting_metadata",),
}


class RecordingStatus(StrEnum):
    PROCESSING = "processing"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"


class ArtifactStatus(StrEnum):
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"


class MediaUrlRefused(RuleViolation):
    """A download URL whose signature does not match or whose time is up."""

    code, http_status = "media_url_invalid", 403


class MediaNotDeletable(RuleViolation):
    """``delete_media`` for a bot that is not finished (its media is still being made)."""

    code, http_status = "cannot_delete_media", 400


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    """One file of an artifact: ``path`` relative to the media root (``<bot id>/<name>``)."""

    path: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Artifact:
    """One artifact of a recording. ``files`` maps a label (``audio_mixed``,
    ``speaker_timeline``…) to its file; ``data`` holds what the artifact says besides its
    files (``format``, ``provider``, ``title``/``zoom``)."""

    id: UUID
    kind: str
    status: ArtifactStatus
    created_at: datetime
    updated_at: datetime
    files: dict[str, ArtifactFile]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recording:
    """A bot's recording. ``expires_at`` None: kept forever. ``error`` explains a failure."""

    id: UUID
    workspace_id: UUID
    bot_id: UUID
    bot_metadata: dict[str, Any]
    status: RecordingStatus
    sub_code: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    artifacts: tuple[Artifact, ...]
    error: str | None = None
    duration: float = 0.0

    def artifact(self, kind: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)

    def file(self, label: str) -> ArtifactFile | None:
        """The file called ``label`` among all artifacts, if it still exists."""
        for a in self.artifacts:
            if label in a.files and a.status is not ArtifactStatus.DELETED:
                return a.files[label]
        return None


@dataclass(frozen=True, slots=True)
class RecordingFilter:
    bot_id: UUID | None = None
    created_at_after: datetime | None = None
    created_at_before: datetime | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class RecordingReport:
    """What a runtime reports when a bot's recording is finished (the pipe message's
    ``recording`` object): ``files`` maps labels to ``{"path", "content_type", "size"}`` with
    paths relative to the media root; times are UTC epoch seconds."""

    status: str  # done | failed
    started_at: float | None
    completed_at: float | None
    duration: float
    files: dict[str, dict[str, Any]]
    audio_format: str = "mp3"
    transcript_provider: str | None = None
    meeting_metadata: dict[str, Any] | None = None
    error: str | None = None
    #: When the runtime reported it: the instant its webhooks carry, so that they sort before
    #: the ``recording_done`` status the runtime reports next.
    reported_at: float | None = None
    #: Per-participant audio: ``{"label", "participant", "offset", "duration"}`` each, the
    #: label naming its file in ``files``.
    audio_separate: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> RecordingReport:
        return cls(
            status=str(data.get("status") or "failed"),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            duration=float(data.get("duration") or 0.0),
            files=dict(data.get("files") or {}),
            audio_format=str(data.get("audio_format") or "mp3"),
            transcript_provider=data.get("transcript_provider"),
            meeting_metadata=data.get("meeting_metadata"),
            error=data.get("error"),
            reported_at=_epoch(data.get("reported_at")),
            audio_separate=tuple(
                part for part in data.get("audio_separate") or ()
                if isinstance(part, Mapping) and isinstance(part.get("label"), str)
            ),
        )


def _provider(bot: Bot, name: str) -> dict[str, Any]:
    """``{name: options}``: the options the bot's configuration gave that provider."""
    transcript = ((bot.config or {}).get("recording_config") or {}).get("transcript") or {}
    asked = transcript.get("provider") if isinstance(transcript, Mapping) else None
    options = asked.get(name) if isinstance(asked, Mapping) else None
    return {name: dict(options) if isinstance(options, Mapping) else {}}


def _epoch(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- rules ---------------------------------------------------------------------------------------
def retention_hours(recording_config: Mapping[str, Any] | None) -> float | None:
    """Hours the media is kept, None when it is kept until deleted: ``forever``, or an explicit
    ``retention: null`` (no automatic expiry). Missing or malformed: the default."""
    config = recording_config or {}
    if "retention" in config and config["retention"] is None:
        return None
    retention = config.get("retention")
    if not isinstance(retention, Mapping):
        return DEFAULT_RETENTION_HOURS
    if retention.get("type") == "forever":
        return None
    hours = retention.get("hours")
    if isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0:
        return float(hours)
    return DEFAULT_RETENTION_HOURS


def expires_at(
    completed_at: datetime, recording_config: Mapping[str, Any] | None
) -> datetime | None:
    """When a recording completed at ``completed_at`` expires (None: never)."""
    hours = retention_hours(recording_config)
    return None if hours is None else completed_at + timedelta(hours=hours)


def recording_from_report(bot: Bot, report: RecordingReport, now: datetime) -> Recording:
    """The stored recording of ``bot`` from its runtime's report: artifacts for the files
    reported (a kind with no file is absent), ``failed`` when the report says so or no audio
    was written."""
    def when(epoch: float | None) -> datetime | None:
        return None if epoch is None else datetime.fromtimestamp(epoch, now.tzinfo)

    failed = report.status != "done" or "audio_mixed" not in report.files
    artifacts = []
    for kind, labels in ARTIFACT_KINDS.items():
        if kind == "audio_separate":
            labels = tuple(part["label"] for part in report.audio_separate)
        files = {
            label: ArtifactFile(
                str(report.files[label]["path"]),
                str(report.files[label].get("content_type") or "application/octet-stream"),
                int(report.files[label].get("size") or 0),
            )
            for label in labels
            if label in report.files
        }
        if not files:
            continue
        data: dict[str, Any] = {}
        if kind == "audio_mixed":
            data["format"] = "raw" if report.audio_format == "wav" else "mp3"
        elif kind == "audio_separate":
            data["format"] = "raw" if report.audio_format == "wav" else "mp3"
            data["parts"] = [
                {"label": part["label"], "participant": part.get("participant"),
                 "offset": part.get("offset") or 0.0, "duration": part.get("duration") or 0.0}
                for part in report.audio_separate if part["label"] in files
            ]
        elif kind == "video_mixed":
            data["format"] = "mp4"
        elif kind == "transcript":
            data["provider"] = _provider(bot, report.transcript_provider or "meeting_captions")
        elif kind == "meeting_metadata":
            meta = report.meeting_metadata or {}
            data.update(title=meta.get("title"), zoom=meta.get("zoom"))
        artifacts.append(
            Artifact(object_id(bot.id, kind), kind, ArtifactStatus.DONE, now, now, files, data)
        )
    completed = when(report.completed_at) or now
    return Recording(
        id=object_id(bot.id, "recording"),
        workspace_id=bot.workspace_id,
        bot_id=bot.id,
        bot_metadata=dict(bot.metadata),
        status=RecordingStatus.FAILED if failed else RecordingStatus.DONE,
        sub_code="recording_failed" if failed else None,
        started_at=when(report.started_at),
        completed_at=completed,
        created_at=when(report.started_at) or now,
        updated_at=now,
        expires_at=expires_at(completed, (bot.config or {}).get("recording_config")),
        artifacts=tuple(artifacts),
        error=report.error if failed else None,
        duration=report.duration,
    )


def with_media_deleted(recording: Recording, now: datetime) -> Recording:
    """The recording once its files are gone: it and every artifact ``deleted``."""
    return replace(
        recording,
        status=RecordingStatus.DELETED,
        updated_at=now,
        artifacts=tuple(
            replace(a, status=ArtifactStatus.DELETED, updated_at=now) for a in recording.artifacts
        ),
    )


# -- webhooks ------------------------------------------------------------------------------------
def _message(
    recording: Recording, event: str, status: dict[str, Any], now: datetime, owner: Artifact | None
) -> OutboxMessage:
    data: dict[str, Any] = {
        "data": status,
        "recording": {"id": str(recording.id), "metadata": {}},
        "bot": {"id": str(recording.bot_id), "metadata": dict(recording.bot_metadata)},
    }
    if owner is not None:
        data[owner.kind] = {"id": str(owner.id), "metadata": {}}
    return OutboxMessage(
        workspace_id=recording.workspace_id,
        event_type=event,
        payload={"event": event, "data": data},
        created_at=now,
        bot_id=recording.bot_id,
    )


def recording_messages(recording: Recording, now: datetime) -> list[OutboxMessage]:
    """The webhooks of a recording's current status: ``recording.<status>`` and, for each
    artifact, ``<kind>.<status>`` (Recall's payloads)."""
    code = recording.status.value
    status: dict[str, Any] = {"code": code, "sub_code": recording.sub_code,
                              "updated_at": isoformat_z(now)}
    if recording.status is RecordingStatus.FAILED:
        status["error"] = {"code": "RECORDING_FAILED",
                           "message": recording.error or "the recording could not be written"}
    messages = [_message(recording, f"recording.{code}", status, now, None)]
    for artifact in recording.artifacts:
        a_status = {"code": artifact.status.value, "sub_code": None, "updated_at": isoformat_z(now)}
        messages.append(_message(recording, f"{artifact.kind}.{artifact.status.value}",
                                 a_status, now, artifact))
    return messages


# -- signed URLs ---------------------------------------------------------------------------------
def media_signature(key: bytes, recording_id: UUID, label: str, expires: int) -> str:
    """The URL signature of file ``label`` of a recording, valid until ``expires`` (epoch s)."""
    message = f"{recording_id}/{label}/{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_media_signature(
    key: bytes, recording_id: UUID, label: str, expires: int, signature: str, now: datetime
) -> None:
    """Raise :class:`MediaUrlRefused` unless ``signature`` is right and the URL not expired."""
    expected = media_signature(key, recording_id, label, expires)
    if not hmac.compare_digest(expected, signature.lower()):
        raise MediaUrlRefused("the download URL is not valid")
    if now.timestamp() > expires:
        raise MediaUrlRefused("the download URL has expired")

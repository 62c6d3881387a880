"""Recording rules: retention, the recording built from a runtime's report, its webhooks, the
signed media URLs — and a bot session writing its recording (pauses cut from the media and from
every timestamp)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import av
import orjson
import pytest

from summon.domain.bots import Bot
from summon.domain.lifecycle import Status
from summon.domain.realtime import object_id
from summon.domain.recordings import (
    ArtifactStatus,
    MediaUrlRefused,
    RecordingReport,
    RecordingStatus,
    expires_at,
    media_signature,
    recording_from_report,
    recording_messages,
    retention_hours,
    verify_media_signature,
    with_media_deleted,
)
from summon.runtime.session import BotSession, BotSpec
from summon.runtime.timing import JoinTimer
from tests.unit.test_session import (
    Sink,
    SteppingClock,
    advance_to,
    quiet_leave,
    run_until,
    start,
)

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def make_bot(recording_config: dict[str, object] | None = None) -> Bot:
    return Bot(
        id=uuid4(),
        workspace_id=uuid4(),
        platform="sandbox",
        meeting_url={"platform": "sandbox"},
        meeting_url_raw="sandbox://x",
        meeting_key="sandbox:x",
        bot_name="Notetaker",
        join_at=None,
        scheduled=False,
        state=Status.CALL_ENDED,
        version=7,
        config={"recording_config": recording_config or {}},
        metadata={"team": "red"},
        created_at=NOW,
        updated_at=NOW,
    )


def report(**overrides: object) -> RecordingReport:
    files = {
        "audio_mixed": {"path": "b/audio_mixed.mp3", "content_type": "audio/mpeg", "size": 10},
        "transcript": {"path": "b/transcript.json", "content_type": "application/json", "size": 2},
        "participant_events": {"path": "b/participant_events.json",
                               "content_type": "application/json", "size": 2},
        "speaker_timeline": {"path": "b/speaker_timeline.json",
                             "content_type": "application/json", "size": 2},
        "participants": {"path": "b/participants.json", "content_type": "application/json",
                         "size": 2},
        "meeting_metadata": {"path": "b/meeting_metadata.json",
                             "content_type": "application/json", "size": 2},
    }
    data: dict[str, object] = {
        "status": "done", "started_at": NOW.timestamp() - 60, "completed_at": NOW.timestamp(),
        "duration": 60.0, "files": files, "audio_format": "mp3",
        "transcript_provider": "meeting_captions",
        "meeting_metadata": {"title": "Standup", "zoom": None},
    }
    data.update(overrides)
    return RecordingReport.from_message(data)


@pytest.mark.parametrize(
    ("config", "hours"),
    [
        ({}, 168),
        ({"retention": {"type": "timed", "hours": 2}}, 2),
        ({"retention": {"type": "timed"}}, 168),
        ({"retention": {"type": "timed", "hours": 0}}, 168),
        ({"retention": {"type": "timed", "hours": True}}, 168),
        ({"retention": {"type": "forever"}}, None),
        ({"retention": None}, None),
        (None, 168),
    ],
)
def test_retention(config: dict[str, object] | None, hours: float | None) -> None:
    assert retention_hours(config) == hours
    expected = None if hours is None else NOW + timedelta(hours=hours)
    assert expires_at(NOW, config) == expected


def test_a_report_becomes_a_recording_with_the_stable_ids() -> None:
    bot = make_bot({"retention": {"type": "timed", "hours": 1}})
    rec = recording_from_report(bot, report(), NOW)
    assert rec.id == object_id(bot.id, "recording")
    assert rec.status is RecordingStatus.DONE and rec.sub_code is None
    assert [a.kind for a in rec.artifacts] == [
        "audio_mixed", "transcript", "participant_events", "meeting_metadata"
    ]
    assert {a.id for a in rec.artifacts} == {
        object_id(bot.id, k)
        for k in ("audio_mixed", "transcript", "participant_events", "meeting_metadata")
    }
    events = rec.artifact("participant_events")
    assert events is not None
    assert set(events.files) == {"participant_events", "speaker_timeline", "participants"}
    assert rec.artifact("audio_mixed").data == {"format": "mp3"}  # type: ignore[union-attr]
    assert rec.artifact("transcript").data == {  # type: ignore[union-attr]
        "provider": {"meeting_captions": {}}
    }
    assert rec.started_at == NOW - timedelta(seconds=60)
    assert rec.completed_at == NOW and rec.expires_at == NOW + timedelta(hours=1)
    assert rec.bot_metadata == {"team": "red"}
    assert rec.file("speaker_timeline") is not None and rec.file("video_mixed") is None


def test_raw_audio_is_reported_as_raw() -> None:
    rec = recording_from_report(make_bot(), report(audio_format="wav"), NOW)
    assert rec.artifact("audio_mixed").data == {"format": "raw"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "overrides",
    [{"status": "failed", "error": "disk full"}, {"files": {}}],
)
def test_a_failed_report_or_no_audio_is_a_failed_recording(overrides: dict[str, object]) -> None:
    rec = recording_from_report(make_bot(), report(**overrides), NOW)
    assert rec.status is RecordingStatus.FAILED and rec.sub_code == "recording_failed"
    messages = recording_messages(rec, NOW)
    assert messages[0].event_type == "recording.failed"
    assert messages[0].payload["data"]["data"]["error"]["code"] == "RECORDING_FAILED"


def test_done_messages_follow_recalls_payloads() -> None:
    bot = make_bot()
    rec = recording_from_report(bot, report(), NOW)
    messages = recording_messages(rec, NOW)
    assert [m.event_type for m in messages] == [
        "recording.done", "audio_mixed.done", "transcript.done", "participant_events.done",
        "meeting_metadata.done",
    ]
    assert all(m.bot_id == bot.id and m.workspace_id == bot.workspace_id for m in messages)
    transcript = messages[2].payload
    assert transcript == {
        "event": "transcript.done",
        "data": {
            "data": {"code": "done", "sub_code": None, "updated_at": "2026-05-04T12:00:00.000000Z"},
            "recording": {"id": str(rec.id), "metadata": {}},
            "bot": {"id": str(bot.id), "metadata": {"team": "red"}},
            "transcript": {"id": str(object_id(bot.id, "transcript")), "metadata": {}},
        },
    }


def test_deleted_media_marks_everything_deleted() -> None:
    rec = with_media_deleted(recording_from_report(make_bot(), report(), NOW), NOW)
    assert rec.status is RecordingStatus.DELETED
    assert {a.status for a in rec.artifacts} == {ArtifactStatus.DELETED}
    assert rec.file("audio_mixed") is None
    assert {m.event_type for m in recording_messages(rec, NOW)} >= {
        "recording.deleted", "audio_mixed.deleted"
    }


def test_a_signature_verifies_until_it_expires() -> None:
    rid = uuid4()
    expires = int(NOW.timestamp()) + 10
    sig = media_signature(KEY, rid, "transcript", expires)
    verify_media_signature(KEY, rid, "transcript", expires, sig, NOW)
    verify_media_signature(KEY, rid, "transcript", expires, sig.upper(), NOW)
    verify_media_signature(KEY, rid, "transcript", expires, sig, NOW + timedelta(seconds=10))
    with pytest.raises(MediaUrlRefused, match="expired"):
        verify_media_signature(KEY, rid, "transcript", expires, sig, NOW + timedelta(seconds=11))


@pytest.mark.parametrize("what", ["recording", "label", "expires", "key", "signature"])
def test_any_change_breaks_the_signature(what: str) -> None:
    rid = uuid4()
    expires = int(NOW.timestamp()) + 100
    sig = media_signature(KEY, rid, "audio_mixed", expires)
    args: dict[str, Any] = {"key": KEY, "recording_id": rid, "label": "audio_mixed",
                            "expires": expires, "signature": sig}
    changes: dict[str, dict[str, Any]] = {
        "recording": {"recording_id": uuid4()},
        "label": {"label": "transcript"},
        "expires": {"expires": expires + 1},
        "key": {"key": b"x" * 32},
        "signature": {"signature": sig[:-1] + ("0" if sig[-1] != "0" else "1")},
    }
    changed = changes[what]
    with pytest.raises(MediaUrlRefused, match="not valid"):
        verify_media_signature(**{**args, **changed}, now=NOW)


# -- the session's recording (sandbox, fake clock) -------------------------------------------------
@dataclass
class RecordingSink(Sink):
    reports: list[dict[str, Any]] = field(default_factory=list)

    def recording(self, bot_id: str, report: dict[str, Any]) -> None:
        assert "recording_done" not in self.codes  # reported before recording_done
        self.reports.append(report)


async def test_a_session_writes_its_recording_with_pauses_cut(tmp_path: Path) -> None:
    clock = SteppingClock()
    params = {"participants": "alice@0", "end_after": "10",
              "say": "alice@1:one two;alice@3.5:hidden;alice@6:three four"}
    spec = BotSpec(
        bot_id="bot-1",
        meeting_url={"meeting_id": "demo", "params": params, "platform": "sandbox"},
        bot_name="Notetaker",
        config={"automatic_leave": quiet_leave(),
                "recording_config": {"start_recording_on": "manual",
                                     "transcript": {"provider": {"meeting_captions": {}}}}},
        join_at=None,
        media_dir=str(tmp_path / "media" / "bot-1"),
    )
    sink = RecordingSink(clock)
    session = BotSession(spec, sink, clock, JoinTimer(clock))
    task = await start(session, clock, until="in_call_not_recording")
    t0 = clock.monotonic()  # the sandbox's script starts here (admitted at once)
    await session.command("start_recording")
    await advance_to(clock, t0 + 3)
    await session.command("pause_recording")
    await advance_to(clock, t0 + 5)
    await session.command("resume_recording")
    await run_until(clock, lambda: "call_ended" in sink.codes)
    end = clock.monotonic()
    await asyncio.wait_for(task, 30)  # the files are written on threads, in real time
    assert sink.codes[-3:] == ["call_ended", "recording_done", "done"]
    [report] = sink.reports
    recorded = 3.0 + (end - (t0 + 5))
    assert report["status"] == "done" and report["error"] is None
    assert abs(report["duration"] - recorded) <= 0.02
    assert set(report["files"]) == {"audio_mixed", "participant_events", "speaker_timeline",
                                    "participants", "meeting_metadata", "transcript"}
    assert report["files"]["audio_mixed"]["path"] == "bot-1/audio_mixed.mp3"
    folder = tmp_path / "media" / "bot-1"
    with av.open(str(folder / "audio_mixed.mp3")) as container:
        stream = container.streams.audio[0]
        seconds = sum(int(f.samples) / int(f.sample_rate) for f in container.decode(stream))
    assert abs(seconds - recorded) <= 0.1
    transcript = orjson.loads((folder / "transcript.json").read_bytes())
    words = [w for u in transcript for w in u["words"]]
    assert [w["text"] for w in words] == ["one", "two", "three", "four"]  # "hidden": paused
    # Positions in the media: "three" was said 1 s after the resume, 3 s were recorded before.
    assert words[2]["start_timestamp"]["relative"] == pytest.approx(3 + 1, abs=1e-3)
    events = orjson.loads((folder / "participant_events.json").read_bytes())
    assert [e["action"] for e in events][:2] == ["join", "speech_on"]
    assert events[0]["timestamp"]["relative"] == pytest.approx(0, abs=1e-3)


def test_the_transcript_names_its_provider_with_the_options_asked_for() -> None:
    options = {"language_code": "en"}
    bot = make_bot({"transcript": {"provider": {"recallai_streaming": options}}})
    rec = recording_from_report(bot, report(transcript_provider="recallai_streaming"), NOW)
    transcript = rec.artifact("transcript")
    assert transcript is not None and transcript.data["provider"] == {"recallai_streaming": options}
    # A provider the configuration does not name (or names with null options): no options.
    bot = make_bot({"transcript": {"provider": {"recallai_streaming": None}}})
    rec = recording_from_report(bot, report(transcript_provider="recallai_streaming"), NOW)
    assert rec.artifact("transcript").data["provider"] == {"recallai_streaming": {}}  # type: ignore[union-attr]


def test_per_participant_files_make_the_audio_separate_artifact() -> None:
    files = {"audio_mixed": {"path": "b/audio_mixed.wav", "content_type": "audio/wav", "size": 9},
             "audio_separate_1": {"path": "b/audio_separate/x.wav", "content_type": "audio/wav", "size": 4}}
    parts = [{"label": "audio_separate_1", "participant": {"id": 7, "name": "Ann"}, "offset": 1.5, "duration": 3.0},
             {"label": "audio_separate_2", "participant": {"id": 8, "name": "Ben"}},  # no file: left out
             "junk"]
    rec = recording_from_report(make_bot(), report(files=files, audio_format="wav", audio_separate=parts), NOW)
    separate = rec.artifact("audio_separate")
    assert separate is not None and set(separate.files) == {"audio_separate_1"}
    assert separate.data == {"format": "raw", "parts": [
        {"label": "audio_separate_1", "participant": {"id": 7, "name": "Ann"}, "offset": 1.5, "duration": 3.0}]}
    assert [a.kind for a in rec.artifacts] == ["audio_mixed", "audio_separate"]

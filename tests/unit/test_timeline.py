"""Recording time (spans, cuts at pauses) and the participant-events / speaker-timeline /
participants / meeting-metadata artifacts in Recall's download shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from summon.abc import Participant
from summon.media.timeline import (
    RecordingSpans,
    Stamper,
    Timeline,
    meeting_metadata,
    participant_json,
)

ALICE = Participant("100", "Alice", is_host=True, platform="desktop")
BOB = Participant("101", "Bob")
WALL0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC).timestamp()  # wall time of monotonic 0


def stamper(spans: RecordingSpans) -> Stamper:
    return Stamper(spans, wall_offset=WALL0)


# -- spans --------------------------------------------------------------------------------------


def test_relative_time_cuts_pauses_and_freezes_after_the_stop() -> None:
    spans = RecordingSpans(10.0)
    spans.pause(12.0)
    spans.resume(15.0)
    spans.stop(17.5)
    assert spans.relative(9.0) == -1.0  # before the start: negative, like Recall's timeline
    assert spans.relative(11.0) == 1.0
    assert spans.relative(13.0) == 2.0  # inside the pause: where the pause cut the media
    assert spans.relative(16.0) == 3.0
    assert spans.relative(100.0) == 4.5
    assert spans.duration(100.0) == 4.5
    assert [spans.recording(t) for t in (9.9, 10.0, 11.9, 12.0, 14.9, 15.0, 17.4, 17.5)] == [
        False, True, True, False, False, True, True, False,
    ]  # fmt: skip
    assert spans.end == 17.5 and spans.stopped and not spans.running


def test_a_paused_recording_stops_where_it_was_paused() -> None:
    spans = RecordingSpans(0.0)
    spans.pause(3.0)
    spans.stop(60.0)
    assert spans.duration(60.0) == 3.0
    assert spans.end == 3.0


def test_spans_refuse_moves_out_of_order() -> None:
    spans = RecordingSpans(0.0)
    with pytest.raises(ValueError):
        spans.resume(1.0)
    spans.pause(1.0)
    with pytest.raises(ValueError):
        spans.pause(2.0)
    spans.stop(2.0)
    for move in (spans.pause, spans.resume, spans.stop):
        with pytest.raises(ValueError):
            move(3.0)


def test_copy_is_independent() -> None:
    spans = RecordingSpans(0.0)
    copy = spans.copy()
    spans.pause(1.0)
    assert copy.running and not spans.running
    assert copy.relative(5.0) == 5.0 and spans.relative(5.0) == 1.0


def test_stamper_renders_absolute_and_relative() -> None:
    spans = RecordingSpans(100.0)
    stamp = stamper(spans)
    assert stamp(102.25) == {"absolute": "2030-01-01T09:01:42.250000Z", "relative": 2.25}
    # an exact wall time wins over the derived one
    assert stamp(102.25, WALL0 + 1.0)["absolute"] == "2030-01-01T09:00:01.000000Z"


# -- participant events ---------------------------------------------------------------------------


def test_participant_events_in_recalls_download_shape() -> None:
    spans = RecordingSpans(10.0)
    timeline = Timeline()
    timeline.record("join", ALICE, 8.0, WALL0 + 8.0)  # before the recording: negative time
    timeline.record("participant_events.speech_on", ALICE, 11.0, WALL0 + 11.0)
    timeline.record("chat_message", BOB, 12.0, WALL0 + 12.0, {"text": "hi", "to": "everyone"})
    timeline.record("chat_message", BOB, 12.5, WALL0 + 12.5, {"text": "psst", "to": "999"})
    events = timeline.participant_events(stamper(spans))
    assert [e["action"] for e in events] == ["join", "speech_on", "chat_message", "chat_message"]
    first = events[0]
    assert set(first) == {"id", "action", "participant", "timestamp", "data"}
    assert first["participant"] == {
        "id": 100,
        "name": "Alice",
        "is_host": True,
        "platform": "desktop",
        "extra_data": {},
        "email": None,
    }
    assert first["timestamp"] == {"absolute": "2030-01-01T09:00:08.000000Z", "relative": -2.0}
    assert first["data"] is None
    assert events[2]["data"] == {"text": "hi", "to": "everyone"}
    assert events[3]["data"] == {"text": "psst", "to": "only_bot"}  # a private message
    assert len({e["id"] for e in events}) == 4


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(ValueError):
        Timeline().record("dance", ALICE, 0.0, WALL0)


def test_speaker_timeline_from_speech_on_and_off() -> None:
    spans = RecordingSpans(0.0)
    spans.pause(5.0)
    spans.resume(8.0)
    timeline = Timeline()
    timeline.record("speech_on", ALICE, 1.0, WALL0 + 1.0)
    timeline.record("speech_on", BOB, 2.0, WALL0 + 2.0)
    timeline.record("speech_off", ALICE, 3.0, WALL0 + 3.0)
    timeline.record("leave", BOB, 4.0, WALL0 + 4.0)  # leaving ends the turn
    timeline.record("speech_on", ALICE, 9.0, WALL0 + 9.0)  # after the pause: cut time
    timeline.record("speech_on", ALICE, 10.0, WALL0 + 10.0)  # "on" twice: a new turn
    timeline.record("webcam_on", BOB, 10.5, WALL0 + 10.5)  # not speech
    turns = timeline.speaker_timeline(stamper(spans), end=12.0)
    rows = [
        (t["participant"]["name"], t["start_timestamp"]["relative"], t["end_timestamp"]["relative"])
        for t in turns
    ]
    assert rows == [
        ("Alice", 1.0, 3.0),
        ("Bob", 2.0, 4.0),
        ("Alice", 6.0, 7.0),
        ("Alice", 7.0, 9.0),
    ]
    assert turns[0]["end_timestamp"]["absolute"] == "2030-01-01T09:00:03.000000Z"
    # without an end the open turn stays open
    assert timeline.speaker_timeline(stamper(spans))[-1]["end_timestamp"] is None


def test_participants_once_each_with_their_latest_details() -> None:
    timeline = Timeline()
    timeline.record("join", ALICE, 0.0, WALL0)
    timeline.record("join", BOB, 1.0, WALL0 + 1)
    timeline.record("update", Participant("100", "Alice B."), 2.0, WALL0 + 2)
    timeline.record("join", Participant("abc-1", "Phone"), 3.0, WALL0 + 3)
    assert [(p["id"], p["name"]) for p in timeline.participants()] == [
        (100, "Alice B."),
        (101, "Bob"),
        ("abc-1", "Phone"),  # a platform with non-numeric ids keeps its strings
    ]
    assert len(timeline) == 4


def test_participant_ids_that_only_look_numeric_stay_strings() -> None:
    assert participant_json(Participant("007", "Bond"))["id"] == "007"
    assert participant_json(Participant("7", "Bond"))["id"] == 7


def test_meeting_metadata() -> None:
    assert meeting_metadata("Weekly sync") == {"title": "Weekly sync", "zoom": None}
    assert meeting_metadata(None, zoom_meeting_uuid="u==") == {
        "title": None,
        "zoom": {"meeting_uuid": "u=="},
    }

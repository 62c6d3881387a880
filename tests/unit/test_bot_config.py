"""Create/Update Bot request models: validation, Recall's defaults, and a truthful JSON schema."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from summon.api.bot_config import (
    CONFIG_FIELDS,
    FREE_FORM_MAX_DEPTH,
    MAX_INT,
    BotCreate,
    BotUpdate,
    ChatMessage,
    MeetingUrlParse,
    OutputAudio,
    OutputVideo,
    Timestamp,
    default_config,
    parse_timestamp,
)

URL = "https://zoom.us/j/123456789"
NO_OFFSET = "Timestamp must include a UTC offset, e.g. 2025-06-16T16:24:00Z."
JPEG_B64 = "/9j/4AAQSkZJRgABAQ=="
MP3_B64 = "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4Ljc2LjEwMAAAAAAAAAAAAAAA"

EXPECTED_DEFAULT_CONFIG: dict[str, Any] = {
    "bot_name": "Meeting Notetaker",
    "recording_config": {
        "transcript": None,
        "realtime_endpoints": [],
        "retention": {"type": "timed", "hours": 168},
        "video_mixed_layout": "speaker_view",
        "video_mixed_mp4": {},
        "participant_events": {},
        "meeting_metadata": {},
        "video_mixed_participant_video_when_screenshare": "overlap",
        "start_recording_on": "participant_join",
        "include_bot_in_recording": {"audio": False},
        "audio_mixed_raw": None,
        "audio_mixed_mp3": None,
        "video_separate_mp4": None,
        "audio_separate_raw": None,
        "audio_separate_mp3": None,
        "video_mixed_flv": None,
        "video_separate_png": None,
        "video_separate_h264": None,
    },
    "output_media": None,
    "automatic_video_output": None,
    "automatic_audio_output": None,
    "chat": None,
    "automatic_leave": {
        "waiting_room_timeout": 1200,
        "noone_joined_timeout": 1200,
        "everyone_left_timeout": {"timeout": 2, "activate_after": None},
        "in_call_not_recording_timeout": 3600,
        "in_call_recording_timeout": None,
        "recording_permission_denied_timeout": 30,
        "silence_detection": {"timeout": 3600, "activate_after": 1200},
        "bot_detection": {
            "using_participant_events": {"timeout": 600, "activate_after": 1200},
            "using_participant_names": None,
        },
    },
    "variant": None,
    "zoom": None,
    "google_meet": None,
    "webex": None,
    "breakout_room": None,
}

FULL_BODY: dict[str, Any] = {
    "meeting_url": URL,
    "bot_name": "Notes",
    "join_at": "2030-01-01T09:00:00+01:00",
    "recording_config": {
        "transcript": {
            "provider": {"recallai_streaming": {"language_code": "de", "key_terms": ["Summon"]}},
            "diarization": {"use_separate_streams_when_available": True},
            "metadata": {"t": "1"},
        },
        "realtime_endpoints": [
            {"type": "webhook", "url": "https://example.com/rt", "events": ["transcript.data"]},
            {
                "type": "websocket",
                "url": "wss://example.com/ws",
                "events": ["audio_mixed_raw.data", "participant_events.join"],
                "metadata": {"k": None},
            },
            {"type": "rtmp", "url": "rtmp://example.com/live", "events": ["video_mixed_flv.data"]},
            {"type": "desktop_sdk_callback", "events": ["transcript.partial_data"]},
        ],
        "retention": {"type": "forever"},
        "video_mixed_layout": "gallery_view_v2",
        "video_separate_mp4": {},
        "audio_mixed_mp3": {"metadata": {"a": "b"}},
        "start_recording_on": "manual",
        "metadata": {"rc": "x"},
    },
    "output_media": {"camera": {"kind": "webpage", "config": {"url": "https://example.com/"}}},
    "automatic_video_output": {"in_call_recording": {"kind": "jpeg", "b64_data": JPEG_B64}},
    "automatic_audio_output": {
        "in_call_recording": {
            "data": {"kind": "mp3", "b64_data": MP3_B64},
            "replay_on_participant_join": {"debounce_interval": 10},
        }
    },
    "chat": {
        "on_bot_join": {"send_to": "everyone", "message": "Hi, I take notes."},
        "on_participant_join": {"message": "Welcome", "exclude_host": True},
    },
    "automatic_leave": {
        "everyone_left_timeout": 30,
        "in_call_recording_timeout": 7200,
        "bot_detection": {
            "using_participant_names": {
                "timeout": 60,
                "activate_after": 60,
                "matches": ["notetaker"],
            }
        },
    },
    "variant": {"zoom": "native", "webex": "web_gpu"},
    "zoom": {"zak_url": "https://example.com/zak", "user_email": "a@example.com"},
    "google_meet": {"google_login_group_id": "123E4567-E89B-12D3-A456-426614174000"},
    "webex": {"anything": {"nested": [1, 2.5, "x", None, True]}},
    "breakout_room": {
        "mode": "join_specific_room",
        "room_id": "123e4567-e89b-12d3-a456-426614174000",
    },
    "metadata": {"customer": "acme", "note": None},
}


def error_map(model: type, body: Any) -> dict[str, list[str]]:
    """Validate and return errors as the API reports them: {"dotted.path": [messages]}."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    errors: dict[str, list[str]] = {}
    for error in caught.value.errors():
        errors.setdefault(".".join(str(part) for part in error["loc"]), []).append(error["msg"])
    return errors


def create_errors(**fields: Any) -> dict[str, list[str]]:
    return error_map(BotCreate, {"meeting_url": URL, **fields})


def with_path(path: str, value: Any) -> dict[str, Any]:
    """A create body with ``value`` placed at dotted ``path`` (numbers index lists)."""
    body: dict[str, Any] = {"meeting_url": URL}
    keys: list[Any] = [int(part) if part.isdigit() else part for part in path.split(".")]
    node: Any = body
    for index, key in enumerate(keys):
        child = value if index == len(keys) - 1 else [] if isinstance(keys[index + 1], int) else {}
        if isinstance(node, list):
            assert key == len(node), "list indexes must be filled in order"
            node.append(child)
        elif key not in node or index == len(keys) - 1:
            node[key] = child
        node = node[key]
    return body


# ---- the seeds' example and timestamps -------------------------------------------------------


def test_seed_example_body_validates() -> None:
    body = BotCreate.model_validate(
        {
            "meeting_url": "https://zoom.us/j/123456789",
            "bot_name": "My scheduled bot",
            "join_at": "2025-06-16T16:24:00+0000",
        }
    )
    assert body.join_at == datetime(2025, 6, 16, 16, 24, tzinfo=UTC)
    assert body.join_at.utcoffset() == timedelta(0)
    assert body.meeting_url == "https://zoom.us/j/123456789"
    assert body.stored_config()["bot_name"] == "My scheduled bot"


def test_seed_example_validates_from_json_text_too() -> None:
    raw = '{"meeting_url": "https://zoom.us/j/1", "join_at": "2025-06-16T17:00:00Z"}'
    assert BotCreate.model_validate_json(raw).join_at == datetime(2025, 6, 16, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-16T16:24:00+0000", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00+00:00", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00Z", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16t16:24:00z", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16 16:24:00Z", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00-00:00", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00+05:30", datetime(2025, 6, 16, 10, 54, tzinfo=UTC)),
        ("2025-06-16T16:24:00+0530", datetime(2025, 6, 16, 10, 54, tzinfo=UTC)),
        ("2025-06-16T16:24:00+05", datetime(2025, 6, 16, 11, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00-08:00", datetime(2025, 6, 17, 0, 24, tzinfo=UTC)),
        ("2025-06-16T16:24Z", datetime(2025, 6, 16, 16, 24, tzinfo=UTC)),
        ("2025-06-16T16:24:00.5Z", datetime(2025, 6, 16, 16, 24, 0, 500000, tzinfo=UTC)),
        ("2025-06-16T16:24:00,25Z", datetime(2025, 6, 16, 16, 24, 0, 250000, tzinfo=UTC)),
        ("2025-06-16T16:24:00.123456Z", datetime(2025, 6, 16, 16, 24, 0, 123456, tzinfo=UTC)),
        ("2025-06-16T16:24:00.123456789Z", datetime(2025, 6, 16, 16, 24, 0, 123456, tzinfo=UTC)),
        (
            "2025-06-16T16:24:00.999999999+00:00",
            datetime(2025, 6, 16, 16, 24, 0, 999999, tzinfo=UTC),
        ),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts_iso_forms(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["2025-06-16T16:24:00", "2025-06-16T16:24:00.123", "2025-06-16 16:24", "2025-06-16T16:24"],
)
def test_timestamp_without_offset_is_ambiguous(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_timestamp(text)
    assert str(caught.value) == NO_OFFSET
    assert create_errors(join_at=text) == {"join_at": [NO_OFFSET]}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "now",
        "2025-06-16",
        "16:24:00Z",
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-06-16T24:00:00Z",
        "2025-06-16T16:60:00Z",
        "2025-06-16T16:24:61Z",
        "2025-06-16T16:24:00+24:00",
        "2025-06-16T16:24:00+05:60",
        "2025-06-16T16:24:00.1234567890Z",
        "2025-06-16T16:24:00.Z",
        "2025-06-16T16:24:00 Z",
        " 2025-06-16T16:24:00Z",
        "2025-06-16T16:24:00Z ",
        "2025-06-16T16:24:00Z\x00",
        "\u0662\u0660\u0662\u0665-06-16T16:24:00Z",  # Arabic-Indic digits
        "0000-02-30T00:00:00Z",
        "2025-06-16T16:24:00.5" + "0" * 100 + "Z",
        "\ud800",
    ],
)
def test_parse_timestamp_rejects_bad_input_with_value_error(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_timestamp(text)
    message = str(caught.value)
    assert message.endswith(".") and len(message) < 200
    assert "join_at" in create_errors(join_at=text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0000-01-01T00:00:00Z", datetime.min.replace(tzinfo=UTC)),
        ("0000-02-29T00:00:00Z", datetime.min.replace(tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", datetime.min.replace(tzinfo=UTC)),
        ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:00:00-05:00", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:60Z", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_instants_beyond_datetime_range_are_clamped(text: str, expected: datetime) -> None:
    # Valid RFC 3339 (so schema-valid `date-time`), just not representable: never a 400 or 500.
    assert parse_timestamp(text) == expected
    assert BotCreate(meeting_url=URL, join_at=text).join_at == expected


def test_parse_timestamp_only_ever_raises_value_error() -> None:
    valid = "2025-06-16T16:24:00.123+05:30"
    candidates = {valid[:cut] for cut in range(len(valid) + 1)}
    for index in range(len(valid)):
        for char in "09+-:.,TtZz \x00é٣\ud800":
            candidates.add(valid[:index] + char + valid[index + 1 :])
            candidates.add(valid[:index] + char + valid[index:])
    for text in candidates:
        try:
            result = parse_timestamp(text)
        except ValueError:
            continue
        assert result.tzinfo is UTC


def test_timestamp_type_json_schema_and_python_inputs() -> None:
    adapter = TypeAdapter(Timestamp)
    assert adapter.json_schema() == {"type": "string", "format": "date-time"}
    aware = datetime(2025, 6, 16, 18, 24, tzinfo=timezone(timedelta(hours=2)))
    assert adapter.validate_python(aware) == datetime(2025, 6, 16, 16, 24, tzinfo=UTC)
    with pytest.raises(ValidationError, match="UTC offset"):
        adapter.validate_python(datetime(2025, 6, 16, 16, 24))
    with pytest.raises(ValidationError, match="must be a string"):
        adapter.validate_python(1750091040)
    edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert adapter.validate_python(edge) == datetime.min.replace(tzinfo=UTC)
    with pytest.raises(TypeError):
        parse_timestamp(1750091040)  # type: ignore[arg-type]


# ---- defaults ----------------------------------------------------------------------------------


def test_default_config_has_every_recall_default() -> None:
    assert default_config() == EXPECTED_DEFAULT_CONFIG
    assert set(default_config()) == set(CONFIG_FIELDS)
    assert BotCreate(meeting_url="x").stored_config() == default_config()


def test_default_config_is_a_fresh_json_safe_copy() -> None:
    first = default_config()
    first["automatic_leave"]["waiting_room_timeout"] = 1
    first["recording_config"]["realtime_endpoints"].append("junk")
    assert default_config() == EXPECTED_DEFAULT_CONFIG
    text = json.dumps(default_config(), allow_nan=False)
    assert json.loads(text) == EXPECTED_DEFAULT_CONFIG


def test_partial_automatic_leave_gets_defaults_at_every_level() -> None:
    stored = BotCreate.model_validate(
        {
            "meeting_url": URL,
            "automatic_leave": {
                "waiting_room_timeout": 60,
                "silence_detection": {"timeout": 20},
                "bot_detection": {"using_participant_events": {"activate_after": 5}},
            },
        }
    ).stored_config()["automatic_leave"]
    expected = copy.deepcopy(EXPECTED_DEFAULT_CONFIG["automatic_leave"])
    expected["waiting_room_timeout"] = 60
    expected["silence_detection"] = {"timeout": 20, "activate_after": 1200}
    expected["bot_detection"]["using_participant_events"] = {"timeout": 600, "activate_after": 5}
    assert stored == expected


def test_bot_detection_heuristics_can_be_switched() -> None:
    names = {"timeout": 30, "activate_after": 10, "matches": ["bot", "recorder"]}
    stored = BotCreate.model_validate(
        {
            "meeting_url": URL,
            "automatic_leave": {
                "bot_detection": {
                    "using_participant_events": None,
                    "using_participant_names": names,
                }
            },
        }
    ).stored_config()["automatic_leave"]["bot_detection"]
    assert stored == {"using_participant_events": None, "using_participant_names": names}
    errors = create_errors(automatic_leave={"bot_detection": {"using_participant_names": {}}})
    assert set(errors) == {
        f"automatic_leave.bot_detection.using_participant_names.{name}"
        for name in ("timeout", "activate_after", "matches")
    }


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (30, {"timeout": 30, "activate_after": None}),
        (30.0, {"timeout": 30, "activate_after": None}),
        ({"timeout": 5}, {"timeout": 5, "activate_after": None}),
        ({"activate_after": 60}, {"timeout": 2, "activate_after": 60}),
        ({"timeout": 5, "activate_after": None}, {"timeout": 5, "activate_after": None}),
        ({}, {"timeout": 2, "activate_after": None}),
    ],
)
def test_everyone_left_timeout_integer_and_object_forms(sent: Any, stored: Any) -> None:
    body = BotCreate.model_validate(
        {"meeting_url": URL, "automatic_leave": {"everyone_left_timeout": sent}}
    )
    assert body.stored_config()["automatic_leave"]["everyone_left_timeout"] == stored


@pytest.mark.parametrize("sent", [0, -1, MAX_INT + 1, True, "30", 2.5, None, [], {"timeout": 0}])
def test_everyone_left_timeout_rejects_bad_values(sent: Any) -> None:
    errors = create_errors(automatic_leave={"everyone_left_timeout": sent})
    assert all(key.startswith("automatic_leave.everyone_left_timeout") for key in errors)


def test_recording_config_partial_and_explicit_nulls() -> None:
    stored = BotCreate.model_validate(
        {
            "meeting_url": URL,
            "recording_config": {"video_mixed_mp4": None, "retention": None, "audio_mixed_raw": {}},
        }
    ).stored_config()["recording_config"]
    expected = copy.deepcopy(EXPECTED_DEFAULT_CONFIG["recording_config"])
    expected.update(video_mixed_mp4=None, retention=None, audio_mixed_raw={})
    assert stored == expected


def test_explicit_null_top_level_objects_stay_null() -> None:
    stored = BotCreate.model_validate(
        {"meeting_url": URL, "recording_config": None, "automatic_leave": None, "join_at": None}
    ).stored_config()
    assert stored["recording_config"] is None
    assert stored["automatic_leave"] is None


def test_retention_defaults_and_forms() -> None:
    def retention(value: Any) -> Any:
        body = {"meeting_url": URL, "recording_config": {"retention": value}}
        return BotCreate.model_validate(body).stored_config()["recording_config"]["retention"]

    assert retention({"type": "timed"}) == {"type": "timed", "hours": 168}
    assert retention({"type": "timed", "hours": 1}) == {"type": "timed", "hours": 1}
    assert retention({"type": "forever"}) == {"type": "forever"}
    for bad in ({"type": "timed", "hours": 0}, {"type": "forever", "hours": 2}, {"hours": 2}):
        assert create_errors(recording_config={"retention": bad})
    assert create_errors(recording_config={"retention": {"type": "timed", "hours": 10**7}})


def test_transcript_provider_exactly_one_with_defaults_filled() -> None:
    body = {
        "meeting_url": URL,
        "recording_config": {"transcript": {"provider": {"recallai_streaming": {}}}},
    }
    transcript = BotCreate.model_validate(body).stored_config()["recording_config"]["transcript"]
    assert transcript == {
        "provider": {
            "recallai_streaming": {
                "language_code": "auto",
                "spelling": None,
                "key_terms": None,
                "filter_profanity": False,
                "mode": "prioritize_accuracy",
            }
        },
        "diarization": {"use_separate_streams_when_available": False},
    }
    for provider in ({"meeting_captions": {}}, {"summon_whisper": {"language_code": "en"}}):
        body["recording_config"]["transcript"]["provider"] = provider
        assert BotCreate.model_validate(body)
    assert "exactly one" in str(create_errors(recording_config={"transcript": {"provider": {}}}))
    two = {"recallai_streaming": {}, "meeting_captions": {}}
    assert "exactly one" in str(create_errors(recording_config={"transcript": {"provider": two}}))
    assert create_errors(recording_config={"transcript": {}})  # provider is required
    assert create_errors(
        recording_config={"transcript": {"provider": {"recallai_streaming": None}}}
    )


def test_third_party_provider_options_are_kept_as_sent() -> None:
    options = {"model": "nova-3", "keyterm": ["Summon"], "endpointing": 10.5, "extra": {"a": None}}
    body = {
        "meeting_url": URL,
        "recording_config": {"transcript": {"provider": {"deepgram_streaming": options}}},
    }
    stored = BotCreate.model_validate(body).stored_config()
    assert stored["recording_config"]["transcript"]["provider"] == {"deepgram_streaming": options}


def test_nullable_objects_without_defaults_stay_null_and_fill_when_sent() -> None:
    stored = BotCreate.model_validate(
        {
            "meeting_url": URL,
            "variant": {"zoom": "web_4_core"},
            "zoom": {},
            "chat": {"on_bot_join": {"send_to": "host", "message": "hello"}},
        }
    ).stored_config()
    assert stored["variant"] == {
        "zoom": "web_4_core",
        "google_meet": None,
        "microsoft_teams": None,
        "webex": None,
    }
    assert stored["zoom"] == {"join_token_url": None, "zak_url": None, "user_email": None}
    assert stored["chat"] == {
        "on_bot_join": {"send_to": "host", "message": "hello", "pin": False},
        "on_participant_join": None,
    }
    assert stored["output_media"] is None and stored["breakout_room"] is None


# ---- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "bot_nmae",
        "recording_config.video_mixed_layuot",
        "recording_config.video_mixed_mp4.enabled",
        "recording_config.include_bot_in_recording.video",
        "recording_config.transcript.provider.recallai_streaming.langauge_code",
        "recording_config.transcript.provider.meeting_captions.language",
        "automatic_leave.waiting_room_timout",
        "automatic_leave.silence_detection.timout",
        "automatic_leave.everyone_left_timeout.delay",
        "automatic_leave.bot_detection.using_participant_events.enabled",
        "chat.on_bot_join.to",
        "output_media.camera.config.width",
        "variant.teams",
        "zoom.password",
        "google_meet.login",
    ],
)
def test_unknown_fields_are_rejected_at_every_level(path: str) -> None:
    body = with_path(path, 1)
    if path.startswith("recording_config.transcript"):
        provider = body["recording_config"]["transcript"].setdefault("provider", {})
        if not provider:
            provider["recallai_streaming"] = {}
    if path.startswith("chat"):
        body["chat"]["on_bot_join"].update(send_to="everyone", message="hi")
    if path.startswith("output_media"):
        body["output_media"]["camera"].update(kind="webpage")
        body["output_media"]["camera"]["config"]["url"] = "https://example.com"
    errors = error_map(BotCreate, body)
    assert errors == {path: ["Extra inputs are not permitted"]}


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (BotUpdate, {"bot_nmae": "x"}),
        (ChatMessage, {"message": "hi", "pin": True}),
        (OutputAudio, {"kind": "mp3", "b64_data": MP3_B64, "loop": True}),
        (OutputVideo, {"kind": "jpeg", "b64_data": JPEG_B64, "x": 1}),
        (MeetingUrlParse, {"url": URL, "platform": "zoom"}),
    ],
)
def test_unknown_fields_are_rejected_in_every_body(model: type, body: dict[str, Any]) -> None:
    assert "Extra inputs are not permitted" in str(error_map(model, body))


def test_unknown_fields_in_lists_and_unions_are_rejected() -> None:
    endpoint = {"type": "webhook", "url": "https://e.com", "events": [], "secret": "x"}
    assert create_errors(recording_config={"realtime_endpoints": [endpoint]})
    desktop = {"type": "desktop_sdk_callback", "url": "https://e.com", "events": []}
    assert create_errors(recording_config={"realtime_endpoints": [desktop]})
    assert create_errors(breakout_room={"mode": "join_main_room", "room_id": "x"})


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("recording_config.video_mixed_layout", "grid"),
        ("recording_config.video_mixed_participant_video_when_screenshare", "side"),
        ("recording_config.start_recording_on", "never"),
        ("recording_config.transcript.provider.recallai_streaming.language_code", "xx"),
        ("recording_config.transcript.provider.recallai_streaming.mode", "fast"),
        ("recording_config.retention.type", "weekly"),
        ("variant.zoom", "gpu"),
        ("variant.google_meet", "native"),
        ("chat.on_bot_join.send_to", "all"),
        ("breakout_room.mode", "join_any_room"),
        ("automatic_video_output.in_call_recording.kind", "png"),
        ("automatic_audio_output.in_call_recording.data.kind", "wav"),
        ("automatic_audio_output.in_call_recording.replay_on_participant_join.debounce_mode", "x"),
        ("output_media.camera.kind", "video"),
    ],
)
def test_unknown_enum_values_are_rejected(path: str, value: str) -> None:
    errors = error_map(BotCreate, with_path(path, value))
    assert errors, path
    assert any(key.startswith(path.rsplit(".", 1)[0]) for key in errors)


@pytest.mark.parametrize(
    "endpoint",
    [
        {"type": "webhooks", "url": "https://e.com", "events": []},
        {"type": "webhook", "url": "https://e.com", "events": ["transcript.done"]},
        {"type": "webhook", "url": "https://e.com", "events": ["audio_mixed_raw.data"]},
        {"type": "webhook", "url": "wss://e.com", "events": []},
        {"type": "webhook", "url": "ftp://e.com", "events": []},
        {"type": "webhook", "url": "https://", "events": []},
        {"type": "webhook", "url": "https://e.com/a b", "events": []},
        {"type": "websocket", "url": "https://e.com", "events": []},
        {"type": "rtmp", "url": "https://e.com", "events": ["video_mixed_flv.data"]},
        {"type": "rtmp", "url": "rtmp://e.com", "events": ["transcript.data"]},
        {"type": "webhook", "events": []},
        {"type": "webhook", "url": "https://e.com"},
        {"url": "https://e.com", "events": []},
    ],
)
def test_realtime_endpoints_are_validated_per_type(endpoint: dict[str, Any]) -> None:
    assert create_errors(recording_config={"realtime_endpoints": [endpoint]})


def test_realtime_endpoint_errors_read_well() -> None:
    errors = create_errors(
        recording_config={
            "realtime_endpoints": [{"type": "webhook", "url": "ws://x", "events": []}]
        }
    )
    assert errors == {
        "recording_config.realtime_endpoints.0.webhook.url": [
            "Must be an http:// or https:// URL (no spaces or control characters)."
        ]
    }


NUL_PLACES = [
    "meeting_url",
    "bot_name",
    "metadata.key",
    "recording_config.metadata.key",
    "recording_config.video_mixed_mp4.metadata.key",
    "recording_config.realtime_endpoints.0.url",
    "recording_config.transcript.provider.deepgram_streaming.deep.list.0",
    "recording_config.transcript.provider.recallai_streaming.key_terms.0",
    "automatic_leave.bot_detection.using_participant_names.matches.0",
    "chat.on_participant_join.message",
    "zoom.zak_url",
    "google_meet.google_login_group_id",
    "webex.option",
    "automatic_video_output.in_call_recording.b64_data",
]


@pytest.mark.parametrize("path", NUL_PLACES)
@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "ok\ud800"])
def test_nul_and_lone_surrogates_are_rejected_anywhere(path: str, bad: str) -> None:
    body = with_path(path, bad)
    if path.startswith("recording_config.realtime_endpoints"):
        body["recording_config"]["realtime_endpoints"][0].update(type="webhook", events=[])
        body["recording_config"]["realtime_endpoints"][0]["url"] = "https://e.com/" + bad
    if path.startswith("automatic_leave"):
        body["automatic_leave"]["bot_detection"]["using_participant_names"].update(
            timeout=10, activate_after=10
        )
    if path.startswith("chat"):
        body["chat"]["on_participant_join"]["exclude_host"] = False
    if path.startswith("automatic_video_output"):
        body["automatic_video_output"]["in_call_recording"]["kind"] = "jpeg"
    errors = error_map(BotCreate, body)
    messages = " ".join(message for values in errors.values() for message in values)
    assert "NUL" in messages or "surrogate" in messages or "base64" in messages, errors


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_nul_in_keys_and_small_bodies_is_rejected(bad: str) -> None:
    assert create_errors(metadata={bad: "v"})
    assert create_errors(webex={"a": {bad: 1}})
    assert error_map(ChatMessage, {"message": bad})
    assert error_map(ChatMessage, {"message": "hi", "to": bad})
    assert error_map(MeetingUrlParse, {"url": bad})


def test_nul_error_message_is_clear() -> None:
    assert create_errors(bot_name="x\x00") == {
        "bot_name": ["Must not contain NUL characters (\\u0000)."]
    }
    nested = create_errors(webex={"a": [{"b": "\x00"}]})
    assert nested == {
        "webex": ["Invalid value at a[0].b: Must not contain NUL characters (\\u0000)."]
    }


def test_metadata_limits() -> None:
    fifty = {f"k{i}": "v" for i in range(50)}
    assert BotCreate(meeting_url=URL, metadata=fifty).metadata == fifty
    assert BotCreate(meeting_url=URL, metadata={"k" * 40: "v" * 500, "n": None})
    assert "metadata" in create_errors(metadata={**fifty, "one_more": "v"})
    assert create_errors(metadata={"k" * 41: "v"})
    assert create_errors(metadata={"": "v"})
    assert create_errors(metadata={"k": "v" * 501})
    assert create_errors(metadata={"k": 1})
    assert create_errors(metadata={"k": {"nested": "v"}})
    assert create_errors(metadata=["k"])
    assert error_map(BotUpdate, {"metadata": None})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected(bad: float) -> None:
    errors = create_errors(webex={"x": [bad]})
    assert errors == {
        "webex": ["Invalid value at x[0]: numbers must be finite (no NaN or Infinity)."]
    }
    options = {"deepgram_streaming": {"endpointing": bad}}
    assert create_errors(recording_config={"transcript": {"provider": options}})
    assert create_errors(automatic_leave={"waiting_room_timeout": bad})
    assert create_errors(automatic_leave={"everyone_left_timeout": bad})


def test_non_finite_numbers_in_json_text_are_rejected() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = f'{{"meeting_url": "x", "webex": {{"a": {literal}}}}}'
        with pytest.raises(ValidationError):
            BotCreate.model_validate_json(raw)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("automatic_leave.waiting_room_timeout", MAX_INT + 1),
        ("automatic_leave.noone_joined_timeout", 10**100),
        ("automatic_leave.in_call_recording_timeout", 2**63),
        ("automatic_leave.silence_detection.timeout", 1e300),
        ("recording_config.retention.hours", 2**40),
        (
            "automatic_audio_output.in_call_recording.replay_on_participant_join.disable_after",
            2**31,
        ),
        ("webex.n", 2**53),
        ("webex.n", -(2**64)),
        ("webex.n", 1e20),
    ],
)
def test_huge_numbers_are_rejected(path: str, value: Any) -> None:
    body = with_path(path, value)
    if path.startswith("recording_config.retention"):
        body["recording_config"]["retention"]["type"] = "timed"
    if path.startswith("automatic_audio_output"):
        body["automatic_audio_output"]["in_call_recording"]["data"] = {
            "kind": "mp3",
            "b64_data": MP3_B64,
        }
        body["automatic_audio_output"]["in_call_recording"]["replay_on_participant_join"][
            "debounce_interval"
        ] = 1
    assert error_map(BotCreate, body)


def test_integer_bounds_follow_the_schema_minimums() -> None:
    assert BotCreate.model_validate(
        {"meeting_url": URL, "automatic_leave": {"waiting_room_timeout": MAX_INT}}
    )
    assert create_errors(automatic_leave={"waiting_room_timeout": 29})
    assert create_errors(automatic_leave={"noone_joined_timeout": 29})
    assert create_errors(automatic_leave={"in_call_recording_timeout": 0})
    assert create_errors(automatic_leave={"silence_detection": {"timeout": 9}})
    assert create_errors(
        automatic_leave={"bot_detection": {"using_participant_events": {"timeout": 9}}}
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("automatic_leave.waiting_room_timeout", "1200"),
        ("automatic_leave.waiting_room_timeout", True),
        ("automatic_leave.waiting_room_timeout", 1200.5),
        ("bot_name", 123),
        ("meeting_url", ["https://zoom.us/j/1"]),
        ("recording_config.include_bot_in_recording.audio", "true"),
        ("recording_config.include_bot_in_recording.audio", 1),
        ("chat.on_participant_join.exclude_host", "yes"),
        ("join_at", 1750091040),
    ],
)
def test_scalar_types_are_strict(path: str, value: Any) -> None:
    body = with_path(path, value)
    if path.startswith("chat"):
        body["chat"]["on_participant_join"]["message"] = "hi"
    assert error_map(BotCreate, body)


def test_string_lengths_are_bounded() -> None:
    assert BotCreate(meeting_url="u" * 4096, bot_name="n" * 100)
    assert create_errors(bot_name="n" * 101) == {
        "bot_name": ["String should have at most 100 characters"]
    }
    assert create_errors(bot_name="")
    assert error_map(BotCreate, {"meeting_url": "u" * 4097})
    assert error_map(BotCreate, {"meeting_url": ""})
    assert error_map(BotCreate, {}) == {"meeting_url": ["Field required"]}
    assert create_errors(
        chat={"on_participant_join": {"message": "m" * 4097, "exclude_host": True}}
    )


def test_lists_are_bounded() -> None:
    endpoint = {"type": "webhook", "url": "https://e.com", "events": ["transcript.data"]}
    assert create_errors(recording_config={"realtime_endpoints": [endpoint] * 21})
    assert BotCreate.model_validate(
        {"meeting_url": URL, "recording_config": {"realtime_endpoints": [endpoint] * 20}}
    )
    endpoint_many_events = {**endpoint, "events": ["transcript.data"] * 65}
    assert create_errors(recording_config={"realtime_endpoints": [endpoint_many_events]})
    names = {"timeout": 10, "activate_after": 10, "matches": ["x"] * 101}
    assert create_errors(automatic_leave={"bot_detection": {"using_participant_names": names}})


def test_free_form_objects_are_bounded() -> None:
    deepest: Any = 1
    for _ in range(FREE_FORM_MAX_DEPTH - 1):
        deepest = [deepest]
    assert BotCreate(meeting_url=URL, webex={"a": deepest})
    errors = create_errors(webex={"a": [deepest]})
    assert "nested too deeply" in errors["webex"][0]
    assert create_errors(webex={str(i): i for i in range(101)})
    assert create_errors(webex={"a": list(range(1001))})
    assert create_errors(webex={"a": "s" * 4097})
    assert create_errors(webex={"k" * 257: 1})
    assert create_errors(webex={"": 1})
    assert create_errors(webex=[1])
    assert error_map(BotCreate, {"meeting_url": URL, "webex": {"a": {1, 2}}})


def test_base64_media_is_validated() -> None:
    assert OutputVideo(kind="jpeg", b64_data=JPEG_B64).b64_data == JPEG_B64
    assert OutputAudio.model_validate({"kind": "mp3", "b64_data": "aGk="})
    assert OutputAudio.model_validate({"kind": "mp3", "b64_data": "aGkh"})
    for bad in ["", "abc", "aGk", "aG==k", "aGk=\n", "aG k=", "aGk_", "aGk-", "====", "a==="]:
        errors = error_map(OutputAudio, {"kind": "mp3", "b64_data": bad})
        assert errors == {
            "b64_data": [
                (
                    "Must be base64 data (standard alphabet A-Z a-z 0-9 + /, padded with =, "
                    "no whitespace)."
                )
            ]
        }, bad
    assert error_map(OutputAudio, {"kind": "jpeg", "b64_data": "aGk="})
    assert error_map(OutputVideo, {"kind": "mp3", "b64_data": "aGk="})
    assert error_map(OutputVideo, {"b64_data": "aGk="}) == {"kind": ["Field required"]}


def test_base64_errors_do_not_echo_the_payload() -> None:
    payload = "A" * 100_001 + "!"
    with pytest.raises(ValidationError) as caught:
        OutputVideo.model_validate({"kind": "jpeg", "b64_data": payload})
    assert payload[:1000] not in str(caught.value)


def test_automatic_audio_output_needs_in_call_recording() -> None:
    assert create_errors(automatic_audio_output={})
    stored = BotCreate.model_validate(
        {
            "meeting_url": URL,
            "automatic_audio_output": {
                "in_call_recording": {"data": {"kind": "mp3", "b64_data": "aGk="}}
            },
        }
    ).stored_config()
    assert stored["automatic_audio_output"] == {
        "in_call_recording": {
            "data": {"kind": "mp3", "b64_data": "aGk="},
            "replay_on_participant_join": None,
        }
    }


def test_uuids_are_checked_and_normalised() -> None:
    upper = "123E4567-E89B-12D3-A456-426614174000"
    body = BotCreate(meeting_url=URL, google_meet={"google_login_group_id": upper})
    assert body.stored_config()["google_meet"] == {"google_login_group_id": upper.lower()}
    for bad in ("not-a-uuid", "123e4567e89b12d3a456426614174000", upper + "0", f"{{{upper}}}"):
        assert create_errors(google_meet={"google_login_group_id": bad})
    assert create_errors(breakout_room={"mode": "join_specific_room", "room_id": "x"})


def test_chat_message_body() -> None:
    assert ChatMessage(message="hi").model_dump() == {
        "to": "everyone",
        "message": "hi",
        "pin_message": False,
    }
    assert ChatMessage.model_validate({"message": "hi", "to": 16778240}).to == "16778240"
    assert ChatMessage.model_validate({"message": "m" * 4096, "to": "host"}).to == "host"
    assert error_map(ChatMessage, {"message": "m" * 4097})
    assert error_map(ChatMessage, {"message": ""})
    assert error_map(ChatMessage, {"to": "everyone"}) == {"message": ["Field required"]}
    for bad_to in (True, -1, 2**60, None, "", "x" * 257, 1.5):
        assert error_map(ChatMessage, {"message": "hi", "to": bad_to}), bad_to


def test_meeting_url_parse_body() -> None:
    assert MeetingUrlParse(url=URL).url == URL
    assert error_map(MeetingUrlParse, {"url": ""})
    assert error_map(MeetingUrlParse, {"url": "u" * 4097})
    assert error_map(MeetingUrlParse, {}) == {"url": ["Field required"]}


# ---- update ------------------------------------------------------------------------------------


def test_update_reports_changed_fields_and_patch() -> None:
    update = BotUpdate.model_validate(
        {
            "join_at": "2025-06-16T17:00:00Z",
            "automatic_leave": {"waiting_room_timeout": 60},
            "chat": None,
            "metadata": {"a": "b"},
        }
    )
    assert update.changed_fields() == {"join_at", "automatic_leave", "chat", "metadata"}
    assert update.join_at == datetime(2025, 6, 16, 17, tzinfo=UTC)
    expected_leave = copy.deepcopy(EXPECTED_DEFAULT_CONFIG["automatic_leave"])
    expected_leave["waiting_room_timeout"] = 60
    assert update.stored_config_patch() == {"automatic_leave": expected_leave, "chat": None}


def test_update_nested_objects_are_replaced_whole_with_defaults() -> None:
    update = BotUpdate.model_validate({"recording_config": {"start_recording_on": "manual"}})
    expected = copy.deepcopy(EXPECTED_DEFAULT_CONFIG["recording_config"])
    expected["start_recording_on"] = "manual"
    assert update.stored_config_patch() == {"recording_config": expected}


def test_update_empty_and_null_rules() -> None:
    empty = BotUpdate.model_validate({})
    assert empty.changed_fields() == set()
    assert empty.stored_config_patch() == {}
    cleared = BotUpdate.model_validate({"join_at": None, "recording_config": None, "webex": None})
    assert cleared.changed_fields() == {"join_at", "recording_config", "webex"}
    assert cleared.join_at is None
    assert cleared.stored_config_patch() == {"recording_config": None, "webex": None}
    for field in ("meeting_url", "bot_name", "metadata"):
        assert error_map(BotUpdate, {field: None}), field
    assert BotUpdate.model_validate({"bot_name": "New"}).stored_config_patch() == {
        "bot_name": "New"
    }
    assert error_map(BotUpdate, {"join_at": "2025-06-16T17:00:00"}) == {"join_at": [NO_OFFSET]}


def test_update_accepts_every_create_field() -> None:
    update = BotUpdate.model_validate(FULL_BODY)
    assert update.changed_fields() == set(FULL_BODY)
    assert update.stored_config_patch() == BotCreate.model_validate(FULL_BODY).stored_config()


# ---- round trip and schema ---------------------------------------------------------------------

ROUND_TRIP_BODIES = [
    {"meeting_url": URL},
    {"meeting_url": URL, "recording_config": None, "automatic_leave": None},
    {
        "meeting_url": URL,
        "recording_config": {"transcript": {"provider": {"meeting_captions": {}}}},
    },
    FULL_BODY,
]


@pytest.mark.parametrize("body", ROUND_TRIP_BODIES)
def test_stored_config_round_trips(body: dict[str, Any]) -> None:
    stored = BotCreate.model_validate(body).stored_config()
    assert json.loads(json.dumps(stored, allow_nan=False)) == stored
    again = BotCreate.model_validate({"meeting_url": URL, **stored}).stored_config()
    assert again == stored
    assert BotUpdate.model_validate(stored).stored_config_patch() == stored


def test_full_body_is_stored_with_everything_filled() -> None:
    stored = BotCreate.model_validate(FULL_BODY).stored_config()
    assert set(stored) == set(CONFIG_FIELDS)
    recording = stored["recording_config"]
    assert recording["metadata"] == {"rc": "x"}
    assert recording["retention"] == {"type": "forever"}
    assert recording["audio_mixed_mp3"] == {"metadata": {"a": "b"}}
    assert recording["realtime_endpoints"][1]["metadata"] == {"k": None}
    assert "metadata" not in recording["realtime_endpoints"][0]
    assert stored["automatic_leave"]["everyone_left_timeout"] == {
        "timeout": 30,
        "activate_after": None,
    }
    assert stored["breakout_room"] == {
        "mode": "join_specific_room",
        "room_id": "123e4567-e89b-12d3-a456-426614174000",
    }


def _walk(schema: Any, defs: dict[str, Any], seen: set[str]) -> Any:
    """Yield every sub-schema, following $refs once."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                yield from _walk(defs[name], defs, seen)
        yield schema
        for key, value in schema.items():
            if key in ("default", "examples"):
                continue
            yield from _walk(value, defs, seen)
    elif isinstance(schema, list):
        for item in schema:
            yield from _walk(item, defs, seen)


@pytest.mark.parametrize(
    "model", [BotCreate, BotUpdate, ChatMessage, OutputAudio, OutputVideo, MeetingUrlParse]
)
def test_json_schema_states_every_bound(model: type) -> None:
    schema = model.model_json_schema()
    json.dumps(schema)
    defs = schema.get("$defs", {})
    for node in _walk(schema, defs, set()):
        kind = node.get("type")
        if "properties" in node:
            assert node.get("additionalProperties") is False, node.get("title")
        if kind == "string" and node.get("format") != "date-time" and "enum" not in node:
            if "const" in node:
                continue
            assert "maxLength" in node, node
            pattern = node["pattern"]
            assert re.search(pattern, "a\x00b") is None, node
        if kind == "array":
            assert "maxItems" in node, node
        if kind == "integer":
            assert node["maximum"] <= 2**53, node
        if kind == "number":
            assert "maximum" in node and "minimum" in node, node
        if kind == "object" and "properties" not in node:
            assert "maxProperties" in node, node


def test_json_schema_shapes_that_validation_relies_on() -> None:
    schema = BotCreate.model_json_schema()
    defs = schema["$defs"]
    assert schema["required"] == ["meeting_url"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["join_at"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    assert defs["TranscriptProvider"]["minProperties"] == 1
    assert defs["TranscriptProvider"]["maxProperties"] == 1
    assert "default" not in defs["TranscriptProvider"]["properties"]["recallai_streaming"]
    everyone_left = defs["AutomaticLeave"]["properties"]["everyone_left_timeout"]
    assert everyone_left["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": MAX_INT}
    assert everyone_left["anyOf"][1] == {"$ref": "#/$defs/EveryoneLeftTimeout"}
    assert (
        schema["properties"]["automatic_leave"]["default"]
        == EXPECTED_DEFAULT_CONFIG["automatic_leave"]
    )
    webhook_url = defs["RealtimeWebhookEndpoint"]["properties"]["url"]["pattern"]
    assert re.fullmatch(webhook_url, "https://example.com/x?y=1")
    assert not re.fullmatch(webhook_url, "wss://example.com/")
    update = BotUpdate.model_json_schema()
    assert "required" not in update
    assert all("default" not in field for field in update["properties"].values())
    assert update["properties"]["meeting_url"]["type"] == "string"  # not nullable


def test_published_patterns_agree_with_validation() -> None:
    schema = BotCreate.model_json_schema()
    defs = schema["$defs"]
    b64 = defs["OutputVideo"]["properties"]["b64_data"]["pattern"]
    for sample in ["aGk=", "aGkh", JPEG_B64, "abc", "aGk", "a===", ""]:
        accepted = not _errors_or_none(OutputVideo, {"kind": "jpeg", "b64_data": sample})
        assert accepted == bool(re.fullmatch(b64, sample)), sample
    uuid_pattern = defs["GoogleMeetOptions"]["properties"]["google_login_group_id"]["anyOf"][0]
    assert uuid_pattern["format"] == "uuid"
    for sample in ["123e4567-e89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000"]:
        accepted = not _errors_or_none(
            BotCreate, {"meeting_url": URL, "google_meet": {"google_login_group_id": sample}}
        )
        assert accepted == bool(re.fullmatch(uuid_pattern["pattern"], sample)), sample


def _errors_or_none(model: type, body: Any) -> Any:
    try:
        model.model_validate(body)
    except ValidationError as error:
        return error.errors()
    return None

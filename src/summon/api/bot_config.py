"""Request bodies of the bot API: Create Bot, Update Bot and the small action bodies.

These models are the API's input shape (DESIGN.md: API schemas are separate from domain records
and tables). They follow Recall's field-level schema (``components.schemas.Bot`` and everything
it references in ``reference/recall_openapi.json``) and SPEC §4.1 / §7 / §9 / §10.4.

Contracts every model here keeps:

- **Typos never pass.** Every object, at every level, forbids unknown keys. The only free-form
  objects are the ones Recall leaves free-form (third-party transcription provider options and
  ``webex``), and those are bounded (see below).
- **Strict scalar types.** A string field takes only a JSON string, an integer field only a JSON
  integer (``5``, or ``5.0`` which JSON Schema also calls an integer; never ``"5"``, ``5.5`` or
  ``true``), a boolean only ``true``/``false``; enums are checked exactly against Recall's values.
- **Everything is bounded.** Every string has a maximum length, every list a maximum number of
  items, every map a maximum number of keys, every integer a maximum (``MAX_INT`` unless the
  field needs less) and free-form objects a maximum nesting depth. No string anywhere may contain
  a NUL character (PostgreSQL cannot store it) or an unpaired surrogate (not encodable as UTF-8).
- **The published JSON schema is the validation.** Every rule is expressed in the schema
  (``pattern``, ``maxLength``, ``minimum``/``maximum``, ``maxItems``, ``maxProperties``,
  ``oneOf`` with a discriminator, ``minProperties``/``maxProperties`` for "exactly one"), so a
  schema-driven fuzzer's valid values are accepted and its invalid values are refused. A value
  that breaks a rule gets a 4xx with a readable message, never a 500. Two refusals are not in
  the schema: unpaired surrogates (Rust-based validators cannot compile such a pattern) and
  timestamps with more than 9 fractional digits (``format: date-time`` has no length).
- **Defaults are Recall's** and are filled in at every level: ``BotCreate.stored_config()`` is
  the complete configuration the service stores and returns. A field that Recall gives no
  default is stored as ``null`` (e.g. ``automatic_leave.in_call_recording_timeout``), so every
  stored configuration has the same keys, and every optional field without a default therefore
  also accepts an explicit ``null``. Nested ``metadata`` maps are the one exception: an empty one
  is left out of the stored form, so the artifact defaults read ``{}`` as in Recall's docs.
- **Round trip.** The JSON produced by ``stored_config()`` is itself a valid body and yields the
  same stored configuration (idempotent).

Where we deliberately simplify Recall's schema:

- Third-party transcription providers (``assembly_ai_*``, ``deepgram_streaming``,
  ``gladia_v2_streaming``, ``rev_streaming``, ``aws_transcribe_streaming``,
  ``speechmatics_streaming``) take a bounded free-form options object: Summon transcribes
  locally and only stores them, and their option catalogues belong to those vendors.
  ``recallai_streaming`` is modelled fully, and ``summon_whisper`` (SPEC §9, Summon's native
  engine) takes the same options because the same local engine serves both.
- ``webex`` has no schema in the reference; it is a bounded free-form object.
- ``retention: {"type": "forever"}`` accepts no other keys (Recall's GenericObject would).
- URLs are checked by scheme only (``http(s)://``, ``ws(s)://``, ``rtmp(s)://`` followed by
  visible characters); whether a destination is reachable or allowed is decided elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

__all__ = [
    "CONFIG_FIELDS",
    "FREE_FORM_MAX_DEPTH",
    "MAX_B64",
    "MAX_BOT_NAME",
    "MAX_INT",
    "MAX_RETENTION_HOURS",
    "MAX_STRING",
    "MAX_URL",
    "METADATA_KEY_MAX",
    "METADATA_MAX_KEYS",
    "METADATA_VALUE_MAX",
    "NO_OFFSET_MESSAGE",
    "AutomaticLeave",
    "BotCreate",
    "BotUpdate",
    "ChatMessage",
    "MeetingUrlParse",
    "OutputAudio",
    "OutputVideo",
    "RecordingConfig",
    "Timestamp",
    "default_config",
    "parse_timestamp",
]

# --------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------

MAX_STRING = 4096
"""Longest string accepted where neither Recall nor the spec names a limit."""
MAX_SHORT_STRING = 256
"""Longest identifier-like string (participant ids, key terms, bot-name matches)."""
MAX_URL = 4096
"""Longest URL (meeting links, webhook and websocket endpoints)."""
MAX_BOT_NAME = 100
MAX_CHAT_MESSAGE = 4096
MAX_EMAIL = 254
MAX_INT = 2**31 - 1
"""Largest integer any field takes: seconds up to ~68 years are plenty, bigger is a mistake."""
MAX_RETENTION_HOURS = 100 * 365 * 24
"""100 years: ``recording end + hours`` must stay inside the range of a datetime."""
MAX_B64 = 1_835_008
"""Recall's ``maxLength`` for ``b64_data``; the 1 MiB request limit is the tighter bound."""
MAX_LIST = 100
"""Most items in a list where no tighter bound is named."""
MAX_REALTIME_ENDPOINTS = 20
MAX_EVENTS = 64
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500

FREE_FORM_MAX_DEPTH = 8
"""Most nested containers in a free-form object, counting the object itself."""
FREE_FORM_MAX_KEYS = 100
FREE_FORM_MAX_ITEMS = 1000
FREE_FORM_MAX_KEY = 256
FREE_FORM_MAX_NUMBER = 2**53 - 1
"""Free-form numbers stay where JSON numbers are exact (and where our JSON encoder works)."""

CONFIG_FIELDS: tuple[str, ...] = (
    "bot_name",
    "recording_config",
    "output_media",
    "automatic_video_output",
    "automatic_audio_output",
    "chat",
    "automatic_leave",
    "variant",
    "zoom",
    "google_meet",
    "webex",
    "breakout_room",
)
"""The body fields that make up a bot's stored configuration (all but meeting_url, join_at and
metadata, which the service keeps in their own columns)."""

# --------------------------------------------------------------------------------------------
# Strings
# --------------------------------------------------------------------------------------------

# No string may hold NUL; every published pattern excludes it. Unpaired surrogates are refused
# too, but not named in the patterns: Rust-based JSON Schema validators reject such a regex, and
# a JSON text that is valid UTF-8 can only carry them as escapes (which generators do not make).
_SAFE_TEXT_PATTERN = r"^[^\x00]*$"
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# A URL: the scheme, then at least one visible, non-space character.
_URL_TAIL = r"[^\x00-\x20\x7f]+$"
_HTTP_URL_PATTERN = rf"^https?://{_URL_TAIL}"
_WS_URL_PATTERN = rf"^wss?://{_URL_TAIL}"
_RTMP_URL_PATTERN = rf"^rtmps?://{_URL_TAIL}"
_EMAIL_PATTERN = r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+$"
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Standard alphabet, padded (RFC 4648 §4); at least one 4-character group.
_B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$"
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _is_base64(value: str) -> bool:
    """Same language as ``_B64_PATTERN``, far faster on a megabyte: the length fixes the groups,
    so only the alphabet and the trailing padding are left to check."""
    if len(value) < 4 or len(value) % 4 or not value.isascii():
        return False
    data = value.rstrip("=")
    if len(value) - len(data) > 2:
        return False
    return not data.encode("ascii").translate(None, _B64_ALPHABET)


def _reject_unstorable(value: Any) -> Any:
    """Refuse strings PostgreSQL (NUL) or UTF-8 (lone surrogates) cannot store.

    Runs before every other string check, so the client learns the real problem first.
    Non-strings pass through untouched; the string check that follows refuses them.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise PydanticCustomError("nul_character", "Must not contain NUL characters (\\u0000).")
        if not value.isascii() and _SURROGATE_RE.search(value):
            raise PydanticCustomError(
                "surrogate_character",
                "Must be valid Unicode text (unpaired surrogate characters are not allowed).",
            )
    return value


@dataclass(frozen=True, slots=True)
class _Text:
    """A bounded string type (use as ``Annotated[str, _Text(...)]``).

    ``pattern`` must be anchored, must exclude NUL itself, and must mean the same in Python,
    ECMA-262 and Rust regex, because it is both checked here and published.
    """

    max_length: int = MAX_STRING
    min_length: int = 0
    pattern: str | None = None
    pattern_message: str = ""
    json_format: str | None = None
    lowercase: bool = False
    matches: Callable[[str], bool] | None = None
    """A faster check equivalent to ``pattern``, for long values."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        schema: core_schema.CoreSchema = core_schema.str_schema(
            min_length=self.min_length or None, max_length=self.max_length, strict=True
        )
        if self.pattern is not None:
            schema = core_schema.no_info_after_validator_function(self._check_pattern, schema)
        return core_schema.no_info_before_validator_function(_reject_unstorable, schema)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        json_schema: dict[str, Any] = {"type": "string"}
        if self.json_format:
            json_schema["format"] = self.json_format
        if self.min_length:
            json_schema["minLength"] = self.min_length
        json_schema["maxLength"] = self.max_length
        json_schema["pattern"] = self.pattern or _SAFE_TEXT_PATTERN
        return json_schema

    def _check_pattern(self, value: str) -> str:
        if self.matches is not None:
            valid = self.matches(value)
        else:
            valid = re.fullmatch(self.pattern or "", value) is not None
        if not valid:
            raise PydanticCustomError("string_format", self.pattern_message)
        return value.lower() if self.lowercase else value


def _text(max_length: int = MAX_STRING, min_length: int = 0) -> Any:
    return Annotated[str, _Text(max_length=max_length, min_length=min_length)]


ShortText = _text(MAX_SHORT_STRING, 1)
HttpUrl = Annotated[
    str,
    _Text(
        max_length=MAX_URL,
        pattern=_HTTP_URL_PATTERN,
        pattern_message="Must be an http:// or https:// URL (no spaces or control characters).",
    ),
]
WebsocketUrl = Annotated[
    str,
    _Text(
        max_length=MAX_URL,
        pattern=_WS_URL_PATTERN,
        pattern_message="Must be a ws:// or wss:// URL (no spaces or control characters).",
    ),
]
RtmpUrl = Annotated[
    str,
    _Text(
        max_length=MAX_URL,
        pattern=_RTMP_URL_PATTERN,
        pattern_message="Must be an rtmp:// or rtmps:// URL (no spaces or control characters).",
    ),
]
Email = Annotated[
    str,
    _Text(
        max_length=MAX_EMAIL,
        pattern=_EMAIL_PATTERN,
        pattern_message="Must be an e-mail address.",
    ),
]
Uuid = Annotated[
    str,
    _Text(
        max_length=36,
        pattern=_UUID_PATTERN,
        pattern_message="Must be a UUID like 123e4567-e89b-12d3-a456-426614174000.",
        json_format="uuid",
        lowercase=True,
    ),
]
Base64 = Annotated[
    str,
    _Text(
        max_length=MAX_B64,
        pattern=_B64_PATTERN,
        matches=_is_base64,
        pattern_message=(
            "Must be base64 data (standard alphabet A-Z a-z 0-9 + /, padded with =, no whitespace)."
        ),
    ),
]

# --------------------------------------------------------------------------------------------
# Numbers, lists, maps
# --------------------------------------------------------------------------------------------


def _integral_float_to_int(value: Any) -> Any:
    # JSON Schema counts 360.0 as an integer, and generated clients may send it so.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int(minimum: int, maximum: int = MAX_INT) -> Any:
    """A JSON integer (``360`` or ``360.0``; never ``"360"``, ``360.5`` or ``true``) in bounds."""
    return Annotated[
        int, Field(strict=True, ge=minimum, le=maximum), BeforeValidator(_integral_float_to_int)
    ]


StrictBool = Annotated[bool, Field(strict=True)]


def _list(item: Any, max_items: int = MAX_LIST) -> Any:
    return Annotated[list[item], Field(max_length=max_items)]  # type: ignore[valid-type]


class _MapSchema:
    """Publish a bounded map as ``propertyNames`` + ``additionalProperties``.

    Pydantic turns a key pattern into ``patternProperties``, which would leave keys that do
    not match it unconstrained in the schema; the validation refuses them, so say so.
    """

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        json_schema = dict(handler(schema))
        pattern_properties = json_schema.pop("patternProperties", None)
        if pattern_properties:
            ((pattern, value_schema),) = pattern_properties.items()
            json_schema["additionalProperties"] = value_schema
            json_schema["propertyNames"] = {
                **json_schema.get("propertyNames", {}),
                "pattern": pattern,
            }
        return json_schema


MetadataKey = _text(METADATA_KEY_MAX, 1)
Metadata = Annotated[
    dict[MetadataKey, _text(METADATA_VALUE_MAX) | None],  # type: ignore[valid-type]
    Field(max_length=METADATA_MAX_KEYS),
    _MapSchema(),
]
"""Custom metadata: string to string-or-null, at most 50 keys of 1-40 characters, values up to
500 characters (SPEC §4.1)."""


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


def _drop_default(json_schema: dict[str, Any]) -> None:
    json_schema.pop("default", None)


def _omittable(**kwargs: Any) -> Any:
    """A field that may be left out but is not nullable: an explicit ``null`` is refused.

    The value is ``None`` only when the field was omitted; it is then left out of dumps.
    """
    return Field(default=None, exclude_if=_is_none, json_schema_extra=_drop_default, **kwargs)


def _nested_metadata() -> Any:
    """``metadata`` inside the recording config: empty maps are left out of the stored form."""
    return Field(default_factory=dict, exclude_if=_is_empty)


# --------------------------------------------------------------------------------------------
# Free-form JSON (bounded)
# --------------------------------------------------------------------------------------------

_FreeKey = _text(FREE_FORM_MAX_KEY, 1)
_FreeString = _text(MAX_STRING)
_FreeNumber = Annotated[float, Field(ge=-FREE_FORM_MAX_NUMBER, le=FREE_FORM_MAX_NUMBER)]


def _free_form_value_types(depth: int) -> Any:
    """Document (for the JSON schema only) a JSON value with at most ``depth`` nested containers.

    JSON Schema cannot bound recursion, so the levels are spelled out as named definitions
    ``FreeFormValue0`` (scalars only) … ``FreeFormValue{depth}``.
    """
    value: Any = TypeAliasType(  # type: ignore[misc]
        "FreeFormValue0", None | bool | _FreeNumber | _FreeString
    )
    for level in range(1, depth + 1):
        value = TypeAliasType(  # type: ignore[misc]
            f"FreeFormValue{level}",
            None
            | bool
            | _FreeNumber
            | _FreeString
            | Annotated[list[value], Field(max_length=FREE_FORM_MAX_ITEMS)]
            | Annotated[dict[_FreeKey, value], Field(max_length=FREE_FORM_MAX_KEYS), _MapSchema()],
        )
    return value


_FreeFormObjectDoc = Annotated[
    dict[_FreeKey, _free_form_value_types(FREE_FORM_MAX_DEPTH - 1)],  # type: ignore[misc]
    Field(max_length=FREE_FORM_MAX_KEYS),
    _MapSchema(),
]


def _free_form_error(path: str, problem: str) -> PydanticCustomError:
    # One context value: a client's key must never be read as a placeholder.
    where = f" at {path}" if path else ""
    return PydanticCustomError(
        "free_form", "{message}", {"message": f"Invalid value{where}: {problem}"}
    )


def _check_free_form(value: Any, levels_left: int, path: str) -> None:
    """Check one JSON value; ``levels_left`` containers may still be opened below here."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > FREE_FORM_MAX_NUMBER:
            raise _free_form_error(path, f"numbers must lie within ±{FREE_FORM_MAX_NUMBER}.")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _free_form_error(path, "numbers must be finite (no NaN or Infinity).")
        if abs(value) > FREE_FORM_MAX_NUMBER:
            raise _free_form_error(path, f"numbers must lie within ±{FREE_FORM_MAX_NUMBER}.")
        return
    if isinstance(value, str):
        _check_free_form_string(value, MAX_STRING, path, "strings")
        return
    if isinstance(value, (list, dict)) and levels_left <= 0:
        raise _free_form_error(
            path, f"nested too deeply (at most {FREE_FORM_MAX_DEPTH} levels of objects/arrays)."
        )
    if isinstance(value, list):
        if len(value) > FREE_FORM_MAX_ITEMS:
            raise _free_form_error(path, f"arrays may have at most {FREE_FORM_MAX_ITEMS} items.")
        for index, item in enumerate(value):
            _check_free_form(item, levels_left - 1, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        _check_free_form_object(value, levels_left, path)
        return
    raise _free_form_error(path, "only JSON values are allowed.")


def _check_free_form_string(value: str, max_length: int, path: str, what: str) -> None:
    try:
        _reject_unstorable(value)
    except PydanticCustomError as error:
        raise _free_form_error(path, error.message()) from None
    if len(value) > max_length:
        raise _free_form_error(path, f"{what} may have at most {max_length} characters.")


def _check_free_form_object(value: dict[Any, Any], levels_left: int, path: str) -> None:
    if len(value) > FREE_FORM_MAX_KEYS:
        raise _free_form_error(path, f"objects may have at most {FREE_FORM_MAX_KEYS} keys.")
    for key, item in value.items():
        if not isinstance(key, str):
            raise _free_form_error(path, "object keys must be strings.")
        if not key:
            raise _free_form_error(path, "object keys must not be empty.")
        _check_free_form_string(key, FREE_FORM_MAX_KEY, path, "object keys")
        _check_free_form(item, levels_left - 1, f"{path}.{key}" if path else key)


def _validate_free_form_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", "Input should be an object.")
    _check_free_form_object(value, FREE_FORM_MAX_DEPTH, "")
    return value


FreeFormObject = Annotated[
    dict[str, Any],
    PlainValidator(_validate_free_form_object, json_schema_input_type=_FreeFormObjectDoc),
]
"""A JSON object Recall leaves open (provider options, ``webex``): bounded in keys, items,
string length, number range and nesting depth; no NaN/Infinity."""

# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------

NO_OFFSET_MESSAGE = "Timestamp must include a UTC offset, e.g. 2025-06-16T16:24:00Z."
_FORMAT_MESSAGE = (
    "Invalid timestamp: expected ISO 8601 date and time with a UTC offset, "
    "e.g. 2025-06-16T16:24:00Z."
)
_TIMESTAMP_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]+))?)?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<offset_hours>[0-9]{2})(?::?(?P<offset_minutes>[0-9]{2}))?)?"
)
_MAX_TIMESTAMP_LENGTH = 64


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 / RFC 3339 timestamp into an aware UTC ``datetime``.

    Accepted: ``YYYY-MM-DD``, ``T`` (or ``t`` or a space), ``hh:mm[:ss[.fraction]]`` and an
    offset ``Z``, ``±hh:mm``, ``±hhmm`` or ``±hh``. Up to 9 fractional digits (``.`` or ``,``),
    truncated to microseconds; a leap second ``:60`` is read as the following second.
    An instant outside what ``datetime`` holds (year 0000, or an offset pushing year 1 or 9999
    across the edge) is clamped to ``datetime.min``/``datetime.max`` in UTC: it is a valid
    RFC 3339 value, and "before anything" / "after anything" is all it can mean here.

    Raises ``ValueError`` with a readable message for any other string — and only
    ``ValueError``, whatever the string (a non-string is a ``TypeError``). A timestamp without
    an offset is refused (it is ambiguous) with ``NO_OFFSET_MESSAGE``.
    """
    if not isinstance(value, str):
        raise TypeError("Timestamp must be a string.")
    if len(value) > _MAX_TIMESTAMP_LENGTH:
        raise ValueError(_FORMAT_MESSAGE)
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise ValueError(_FORMAT_MESSAGE)
    if match["offset"] is None:
        raise ValueError(NO_OFFSET_MESSAGE)
    fraction = match["fraction"] or ""
    if len(fraction) > 9:
        raise ValueError("Invalid timestamp: at most 9 fractional digits are allowed.")
    offset = timedelta(0)
    if match["sign"] is not None:
        offset_hours = int(match["offset_hours"])
        offset_minutes = int(match["offset_minutes"] or 0)
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError("Invalid timestamp: UTC offset out of range.")
        offset = timedelta(hours=offset_hours, minutes=offset_minutes)
        if match["sign"] == "-":
            offset = -offset
    year = int(match["year"])
    second = int(match["second"] or 0)
    leap_second = second == 60
    try:
        local = datetime(
            year or 2000,  # check 0000's date (a leap year, like 2000); it is clamped below
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            59 if leap_second else second,
            int(fraction[:6].ljust(6, "0")),
        )
    except ValueError as error:
        raise ValueError(f"Invalid timestamp: {error}.") from None
    if year == 0:
        return _EARLIEST
    try:
        instant = local - offset
    except OverflowError:
        return _EARLIEST if offset > timedelta(0) else _LATEST
    if leap_second:
        try:
            instant += timedelta(seconds=1)
        except OverflowError:
            return _LATEST
    return instant.replace(tzinfo=UTC)


def _coerce_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            raise PydanticCustomError("timestamp_offset", NO_OFFSET_MESSAGE)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            return _EARLIEST if offset > timedelta(0) else _LATEST
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError as error:
            raise PydanticCustomError("timestamp", "{reason}", {"reason": str(error)}) from None
    raise PydanticCustomError(
        "timestamp_type",
        "Timestamp must be a string in ISO 8601 format, e.g. 2025-06-16T16:24:00Z.",
    )


Timestamp = Annotated[datetime, BeforeValidator(_coerce_timestamp)]
"""A point in time given as an ISO 8601 string with an offset; validated to an aware UTC
``datetime``. Published as ``{"type": "string", "format": "date-time"}``."""

# --------------------------------------------------------------------------------------------
# Nested models
# --------------------------------------------------------------------------------------------


class _Body(BaseModel):
    """Base of every request object: unknown keys are refused; values are immutable."""

    # hide_input_in_errors: an error must not echo a megabyte of base64 into the logs.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# ---- recording_config ----------------------------------------------------------------------

VideoMixedLayout = Literal["speaker_view", "gallery_view", "gallery_view_v2", "audio_only"]
ParticipantVideoWhenScreenshare = Literal["hide", "beside", "overlap"]
StartRecordingOn = Literal["call_join", "participant_join", "participant_speak", "manual"]
LanguageCode = Literal[
    "auto", "bg", "ca", "cs", "da", "de", "el", "en", "en_au", "en_uk", "en_us", "es", "et",
    "fi", "fr", "hi", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "nl", "no", "pl",
    "pt", "ro", "ru", "sk", "sv", "th", "tr", "uk", "vi", "zh",
]  # fmt: skip
WebhookEvent = Literal[
    "participant_events.join",
    "participant_events.leave",
    "participant_events.update",
    "participant_events.speech_on",
    "participant_events.speech_off",
    "participant_events.webcam_on",
    "participant_events.webcam_off",
    "participant_events.screenshare_on",
    "participant_events.screenshare_off",
    "participant_events.chat_message",
    "transcript.data",
    "transcript.partial_data",
    "transcript.provider_data",
]
WebsocketEvent = Literal[
    "participant_events.join",
    "participant_events.leave",
    "participant_events.update",
    "participant_events.speech_on",
    "participant_events.speech_off",
    "participant_events.webcam_on",
    "participant_events.webcam_off",
    "participant_events.screenshare_on",
    "participant_events.screenshare_off",
    "participant_events.chat_message",
    "audio_mixed_raw.data",
    "transcript.data",
    "transcript.partial_data",
    "transcript.provider_data",
    "audio_separate_raw.data",
    "video_separate_png.data",
    "video_separate_h264.data",
]
DesktopSdkCallbackEvent = Literal[
    "participant_events.join",
    "participant_events.leave",
    "participant_events.update",
    "participant_events.speech_on",
    "participant_events.speech_off",
    "participant_events.webcam_on",
    "participant_events.webcam_off",
    "participant_events.screenshare_on",
    "participant_events.screenshare_off",
    "participant_events.chat_message",
    "transcript.data",
    "transcript.partial_data",
    "transcript.provider_data",
    "video_separate_png.data",
    "video_separate_h264.data",
    "audio_mixed_raw.data",
]
RtmpEvent = Literal["video_mixed_flv.data"]


class ArtifactConfig(_Body):
    """Turns on one recording artifact (``{}``); ``metadata`` is copied onto the artifact."""

    metadata: Metadata = _nested_metadata()


class IncludeBotInRecording(_Body):
    audio: StrictBool = False


class RetentionTimed(_Body):
    """Media expires ``hours`` after the recording is done."""

    type: Literal["timed"]
    hours: _int(1, MAX_RETENTION_HOURS) = 168  # type: ignore[valid-type]


class RetentionForever(_Body):
    """Media is kept until deleted explicitly."""

    type: Literal["forever"]


Retention = Annotated[RetentionTimed | RetentionForever, Field(discriminator="type")]


class _RealtimeEndpointBase(_Body):
    metadata: Metadata = _nested_metadata()


class RealtimeWebhookEndpoint(_RealtimeEndpointBase):
    """Real-time events POSTed to an http(s) URL (SPEC §10.4)."""

    type: Literal["webhook"]
    url: HttpUrl
    events: _list(WebhookEvent, MAX_EVENTS)  # type: ignore[valid-type]


class RealtimeWebsocketEndpoint(_RealtimeEndpointBase):
    """Real-time events (and raw media) sent over a ws(s) connection (SPEC §10.4)."""

    type: Literal["websocket"]
    url: WebsocketUrl
    events: _list(WebsocketEvent, MAX_EVENTS)  # type: ignore[valid-type]


class RealtimeRtmpEndpoint(_RealtimeEndpointBase):
    type: Literal["rtmp"]
    url: RtmpUrl
    events: _list(RtmpEvent, MAX_EVENTS)  # type: ignore[valid-type]


class RealtimeDesktopSdkCallbackEndpoint(_RealtimeEndpointBase):
    type: Literal["desktop_sdk_callback"]
    events: _list(DesktopSdkCallbackEvent, MAX_EVENTS)  # type: ignore[valid-type]


RealtimeEndpoint = Annotated[
    RealtimeWebhookEndpoint
    | RealtimeWebsocketEndpoint
    | RealtimeRtmpEndpoint
    | RealtimeDesktopSdkCallbackEndpoint,
    Field(discriminator="type"),
]


class SpellingEntry(_Body):
    find: _list(ShortText, MAX_LIST)  # type: ignore[valid-type]
    replace: _text(MAX_SHORT_STRING)  # type: ignore[valid-type]


class StreamingTranscriptionOptions(_Body):
    """Options of ``recallai_streaming`` (and of Summon's ``summon_whisper``)."""

    language_code: LanguageCode = "auto"
    spelling: _list(SpellingEntry, MAX_LIST) | None = None  # type: ignore[valid-type]
    key_terms: _list(ShortText, 1000) | None = None  # type: ignore[valid-type]
    filter_profanity: StrictBool = False
    mode: Literal["prioritize_low_latency", "prioritize_accuracy"] = "prioritize_accuracy"


class MeetingCaptionsOptions(_Body):
    """``meeting_captions`` takes no options: ``{}``."""


class TranscriptProvider(_Body):
    """Exactly one transcription provider, keyed by name, with its options."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    recallai_streaming: StreamingTranscriptionOptions = _omittable()
    summon_whisper: StreamingTranscriptionOptions = _omittable(
        description="Summon's local speech-to-text engine (same options as recallai_streaming)."
    )
    meeting_captions: MeetingCaptionsOptions = _omittable()
    assembly_ai_async_chunked: FreeFormObject = _omittable()
    assembly_ai_v3_streaming: FreeFormObject = _omittable()
    deepgram_streaming: FreeFormObject = _omittable()
    gladia_v2_streaming: FreeFormObject = _omittable()
    rev_streaming: FreeFormObject = _omittable()
    aws_transcribe_streaming: FreeFormObject = _omittable()
    speechmatics_streaming: FreeFormObject = _omittable()

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) != 1:
            raise PydanticCustomError(
                "one_provider",
                "Choose exactly one transcription provider, e.g. {example}.",
                {"example": '{"recallai_streaming": {}}'},
            )
        return data


class TranscriptDiarization(_Body):
    use_separate_streams_when_available: StrictBool = False


class TranscriptConfig(_Body):
    provider: TranscriptProvider
    diarization: TranscriptDiarization = TranscriptDiarization()
    metadata: Metadata = _nested_metadata()


class RecordingConfig(_Body):
    """What the bot records and where real-time data goes.

    Defaults follow the reference schema field by field. Where the schema states a ``default``
    we use it (``video_mixed_layout``, ``participant_events``, ``meeting_metadata``,
    ``start_recording_on``, ``realtime_endpoints``, …). ``video_mixed_mp4`` has no ``default``
    keyword but its description says ``Default: {}`` ("enabled by default"), so it is ``{}``.
    ``retention`` has neither; SPEC §9 makes ``{"type": "timed", "hours": 168}`` the default.
    ``include_bot_in_recording`` is not optional in the schema, so it is its filled object.
    The other artifacts (``audio_mixed_raw``, ``video_separate_*``, …) and ``transcript`` are
    documented as ``Default: null``: off unless asked for.

    Explicit ``null`` on a nullable field is kept: ``retention: null`` means no automatic
    expiry is configured (the media stays until ``delete_media``), an artifact set to ``null``
    is not produced.
    """

    transcript: TranscriptConfig | None = None
    realtime_endpoints: _list(RealtimeEndpoint, MAX_REALTIME_ENDPOINTS) = []  # type: ignore[valid-type]
    retention: Retention | None = RetentionTimed(type="timed", hours=168)
    video_mixed_layout: VideoMixedLayout = "speaker_view"
    video_mixed_mp4: ArtifactConfig | None = ArtifactConfig()
    participant_events: ArtifactConfig | None = ArtifactConfig()
    meeting_metadata: ArtifactConfig | None = ArtifactConfig()
    video_mixed_participant_video_when_screenshare: ParticipantVideoWhenScreenshare = "overlap"
    start_recording_on: StartRecordingOn = "participant_join"
    include_bot_in_recording: IncludeBotInRecording = IncludeBotInRecording()
    metadata: Metadata = _nested_metadata()
    audio_mixed_raw: ArtifactConfig | None = None
    audio_mixed_mp3: ArtifactConfig | None = None
    video_separate_mp4: ArtifactConfig | None = None
    audio_separate_raw: ArtifactConfig | None = None
    audio_separate_mp3: ArtifactConfig | None = None
    video_mixed_flv: ArtifactConfig | None = None
    video_separate_png: ArtifactConfig | None = None
    video_separate_h264: ArtifactConfig | None = None


# ---- media output, chat ----------------------------------------------------------------------


class OutputAudio(_Body):
    """An MP3 clip, base64-encoded: the body of ``POST /bot/{id}/output_audio/``."""

    kind: Literal["mp3"]
    b64_data: Base64


class OutputVideo(_Body):
    """A JPEG image (16:9), base64-encoded: the body of ``POST /bot/{id}/output_video/``."""

    kind: Literal["jpeg"]
    b64_data: Base64


class AudioOutputReplay(_Body):
    """Replay the clip when more participants join, debounced."""

    debounce_mode: Literal["leading", "trailing"] = "trailing"
    debounce_interval: _int(0)  # type: ignore[valid-type]
    disable_after: _int(0) | None = None  # type: ignore[valid-type]


class AudioOutput(_Body):
    data: OutputAudio
    replay_on_participant_join: AudioOutputReplay | None = None


class AutomaticAudioOutput(_Body):
    """Audio the bot plays by itself once it is recording."""

    in_call_recording: AudioOutput


class AutomaticVideoOutput(_Body):
    """The bot's camera image per state; ``in_call_not_recording`` falls back to the other."""

    in_call_recording: OutputVideo | None = None
    in_call_not_recording: OutputVideo | None = None


class WebpageConfig(_Body):
    url: HttpUrl


class OutputMediaWebpage(_Body):
    """Stream a web page's audio and video as the bot's camera or screen share."""

    kind: Literal["webpage"]
    config: WebpageConfig


class OutputMedia(_Body):
    camera: OutputMediaWebpage | None = None
    screenshare: OutputMediaWebpage | None = None


ChatText = _text(MAX_CHAT_MESSAGE, 1)


class ChatOnBotJoin(_Body):
    send_to: Literal["host", "everyone", "everyone_except_host"]
    message: ChatText  # type: ignore[valid-type]
    pin: StrictBool = False


class ChatOnParticipantJoin(_Body):
    message: ChatText  # type: ignore[valid-type]
    exclude_host: StrictBool


class Chat(_Body):
    """Automatic chat messages (Zoom, Google Meet, Teams)."""

    on_bot_join: ChatOnBotJoin | None = None
    on_participant_join: ChatOnParticipantJoin | None = None


# ---- automatic_leave ---------------------------------------------------------------------------


class EveryoneLeftTimeout(_Body):
    timeout: _int(1) = 2  # type: ignore[valid-type]
    activate_after: _int(1) | None = None  # type: ignore[valid-type]


def _expand_everyone_left(value: Any) -> Any:
    # Older clients send a bare number of seconds.
    value = _integral_float_to_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return {"timeout": value, "activate_after": None}
    if isinstance(value, (dict, EveryoneLeftTimeout)):
        return value
    raise PydanticCustomError(
        "everyone_left_type",
        "Must be a number of seconds or an object {example}.",
        {"example": '{"timeout": 2, "activate_after": null}'},
    )


class _IntOrObject:
    """Accept ``N`` as shorthand for ``{"timeout": N, "activate_after": null}`` (SPEC §4.1)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_expand_everyone_left, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_INT},
                handler(schema),
            ]
        }


class SilenceDetection(_Body):
    timeout: _int(10) = 3600  # type: ignore[valid-type]
    activate_after: _int(1) = 1200  # type: ignore[valid-type]


class BotDetectionUsingParticipantEvents(_Body):
    timeout: _int(10) = 600  # type: ignore[valid-type]
    activate_after: _int(1) = 1200  # type: ignore[valid-type]


class BotDetectionUsingParticipantNames(_Body):
    timeout: _int(10)  # type: ignore[valid-type]
    activate_after: _int(1)  # type: ignore[valid-type]
    matches: _list(ShortText, MAX_LIST)  # type: ignore[valid-type]


class BotDetection(_Body):
    """Leave when everyone left is a bot. ``null`` turns a heuristic off."""

    using_participant_events: BotDetectionUsingParticipantEvents | None = (
        BotDetectionUsingParticipantEvents()
    )
    using_participant_names: BotDetectionUsingParticipantNames | None = None


class AutomaticLeave(_Body):
    """When the bot leaves by itself (SPEC §7); every value is in seconds.

    Keys left out get Recall's defaults, also inside the nested objects.
    ``in_call_recording_timeout`` has no default (record for as long as the meeting lasts) and
    is stored as ``null``.
    """

    waiting_room_timeout: _int(30) = 1200  # type: ignore[valid-type]
    noone_joined_timeout: _int(30) = 1200  # type: ignore[valid-type]
    everyone_left_timeout: Annotated[EveryoneLeftTimeout, _IntOrObject()] = EveryoneLeftTimeout()
    in_call_not_recording_timeout: _int(1) = 3600  # type: ignore[valid-type]
    in_call_recording_timeout: _int(1) | None = None  # type: ignore[valid-type]
    recording_permission_denied_timeout: _int(1) = 30  # type: ignore[valid-type]
    silence_detection: SilenceDetection = SilenceDetection()
    bot_detection: BotDetection = BotDetection()


# ---- platform options ---------------------------------------------------------------------------

WebVariant = Literal["web", "web_4_core", "web_gpu"]


class BotVariant(_Body):
    """Which bot build to use per platform; ``null`` means the platform's default."""

    zoom: Literal["web", "web_4_core", "web_gpu", "native"] | None = None
    google_meet: WebVariant | None = None
    microsoft_teams: WebVariant | None = None
    webex: WebVariant | None = None


class ZoomOptions(_Body):
    join_token_url: HttpUrl | None = None
    zak_url: HttpUrl | None = None
    user_email: Email | None = None


class GoogleMeetOptions(_Body):
    google_login_group_id: Uuid | None = None


class BreakoutRoomJoinMain(_Body):
    mode: Literal["join_main_room"]


class BreakoutRoomJoinSpecific(_Body):
    mode: Literal["join_specific_room"]
    room_id: Uuid


class BreakoutRoomAutoAccept(_Body):
    mode: Literal["auto_accept_all_invites"]


BreakoutRoom = Annotated[
    BreakoutRoomJoinMain | BreakoutRoomJoinSpecific | BreakoutRoomAutoAccept,
    Field(discriminator="mode"),
]

# --------------------------------------------------------------------------------------------
# Create / Update Bot
# --------------------------------------------------------------------------------------------

MeetingUrlText = _text(MAX_URL, 1)
BotName = _text(MAX_BOT_NAME, 1)


class BotCreate(_Body):
    """Body of ``POST /api/v1/bot/`` (SPEC §4.1).

    Only ``meeting_url`` is required. It is checked here only as a bounded string: turning it
    into a platform happens in the meeting-URL parser. ``join_at`` is a UTC timestamp; whether
    it lies in the past is checked by the service (it needs the clock).

    Omitted configuration gets Recall's defaults: ``recording_config`` and ``automatic_leave``
    become their full default objects; the other nullable objects (``output_media``, ``chat``,
    ``zoom``, ``breakout_room``, …) have no default and stay ``null`` (for ``breakout_room`` the
    bot then behaves as ``auto_accept_all_invites``, Recall's documented behaviour).
    """

    meeting_url: MeetingUrlText  # type: ignore[valid-type]
    bot_name: BotName = "Meeting Notetaker"  # type: ignore[valid-type]
    join_at: Timestamp | None = None
    recording_config: RecordingConfig | None = RecordingConfig()
    output_media: OutputMedia | None = None
    automatic_video_output: AutomaticVideoOutput | None = None
    automatic_audio_output: AutomaticAudioOutput | None = None
    chat: Chat | None = None
    automatic_leave: AutomaticLeave | None = AutomaticLeave()
    variant: BotVariant | None = None
    zoom: ZoomOptions | None = None
    google_meet: GoogleMeetOptions | None = None
    webex: FreeFormObject | None = Field(
        default=None, description="Webex specific parameters (free-form, bounded)."
    )
    breakout_room: BreakoutRoom | None = None
    metadata: Metadata = {}

    def stored_config(self) -> dict[str, Any]:
        """The bot's configuration as stored and returned: every ``CONFIG_FIELDS`` key, defaults
        filled in at every level, JSON-safe (strings, numbers, booleans, null, lists, dicts).

        ``b64_data`` of media outputs is included (the runtime needs it); the bot response
        should leave it out, as Recall marks it write-only.
        """
        return self.model_dump(mode="json", include=set(CONFIG_FIELDS))


class BotUpdate(_Body):
    """Body of ``PATCH /api/v1/bot/{id}/``: any Create Bot field, all optional.

    A field left out is unchanged. ``meeting_url``, ``bot_name`` and ``metadata`` cannot be
    ``null``; the other fields take ``null`` exactly where Create Bot does.
    """

    meeting_url: MeetingUrlText = _omittable()  # type: ignore[valid-type]
    bot_name: BotName = _omittable()  # type: ignore[valid-type]
    join_at: Timestamp | None = Field(default=None, json_schema_extra=_drop_default)
    recording_config: RecordingConfig | None = Field(default=None, json_schema_extra=_drop_default)
    output_media: OutputMedia | None = Field(default=None, json_schema_extra=_drop_default)
    automatic_video_output: AutomaticVideoOutput | None = Field(
        default=None, json_schema_extra=_drop_default
    )
    automatic_audio_output: AutomaticAudioOutput | None = Field(
        default=None, json_schema_extra=_drop_default
    )
    chat: Chat | None = Field(default=None, json_schema_extra=_drop_default)
    automatic_leave: AutomaticLeave | None = Field(default=None, json_schema_extra=_drop_default)
    variant: BotVariant | None = Field(default=None, json_schema_extra=_drop_default)
    zoom: ZoomOptions | None = Field(default=None, json_schema_extra=_drop_default)
    google_meet: GoogleMeetOptions | None = Field(default=None, json_schema_extra=_drop_default)
    webex: FreeFormObject | None = Field(default=None, json_schema_extra=_drop_default)
    breakout_room: BreakoutRoom | None = Field(default=None, json_schema_extra=_drop_default)
    metadata: Metadata = _omittable()

    def changed_fields(self) -> set[str]:
        """The fields the client actually sent (an explicit ``null`` counts as sent)."""
        return set(self.model_fields_set)

    def stored_config_patch(self) -> dict[str, Any]:
        """The stored-configuration keys this update replaces, in ``stored_config()`` form.

        Only sent ``CONFIG_FIELDS`` appear. A sent object replaces the stored one whole, with
        its own defaults filled in (it is not merged into the old one); an explicit ``null``
        stays ``null``.
        """
        sent = self.model_fields_set.intersection(CONFIG_FIELDS)
        return self.model_dump(mode="json", include=sent)


def default_config() -> dict[str, Any]:
    """The stored configuration of a bot created with nothing but a meeting URL."""
    return BotCreate(meeting_url="x").stored_config()


# --------------------------------------------------------------------------------------------
# Action bodies
# --------------------------------------------------------------------------------------------


class _TextOrId:
    """A string, or a non-negative integer id (as Zoom reports participants) kept as a string."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(_id_to_text, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "anyOf": [
                handler(schema),
                {"type": "integer", "minimum": 0, "maximum": FREE_FORM_MAX_NUMBER},
            ]
        }


def _id_to_text(value: Any) -> Any:
    value = _integral_float_to_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= FREE_FORM_MAX_NUMBER:
            raise PydanticCustomError(
                "participant_id",
                "A numeric participant id must lie within 0-{maximum}.",
                {"maximum": FREE_FORM_MAX_NUMBER},
            )
        return str(value)
    return value


class ChatMessage(_Body):
    """Body of ``POST /bot/{id}/send_chat_message/``.

    ``to`` is ``"everyone"`` (the default), ``"host"``, ``"everyone_except_host"`` or a
    participant id; a numeric id (as Zoom reports them) is accepted and kept as a string.
    """

    to: Annotated[str, _Text(MAX_SHORT_STRING, 1), _TextOrId()] = "everyone"
    message: ChatText  # type: ignore[valid-type]
    pin_message: StrictBool = Field(
        default=False,
        description="Pin the message after sending (Google Meet and Microsoft Teams).",
    )


class MeetingUrlParse(_Body):
    """Body of ``POST /api/v1/meeting_url/parse/``."""

    url: MeetingUrlText  # type: ignore[valid-type]

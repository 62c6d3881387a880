"""Pure rules: scheduled vs ad-hoc, join_at in the past, rate limits, lenient JSON, keys."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from summon.api.auth import extract_key
from summon.api.body import drop_trailing_commas, relax_json
from summon.api.ratelimit import RateLimiter
from summon.domain.bots import expected_duration, is_scheduled, join_at_in_past
from tests.conftest import START


def test_scheduled_threshold_is_inclusive() -> None:
    assert is_scheduled(START + timedelta(seconds=600), START, 600)
    assert not is_scheduled(START + timedelta(seconds=599.999), START, 600)
    assert not is_scheduled(None, START, 600)
    assert is_scheduled(START + timedelta(days=3650), START, 600)


def test_join_at_in_past_tolerates_small_skew_only() -> None:
    assert not join_at_in_past(START - timedelta(seconds=1), START)
    assert join_at_in_past(START - timedelta(seconds=3), START)
    assert not join_at_in_past(None, START)


def test_expected_duration() -> None:
    assert expected_duration({}) == 3600
    assert expected_duration({"automatic_leave": {"in_call_recording_timeout": 900}}) == 900
    assert expected_duration({"automatic_leave": {"in_call_recording_timeout": None}}) == 3600


class Ticker:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_limiter_sliding_window() -> None:
    tick = Ticker()
    limiter = RateLimiter({"create": 10}, tick)
    ws = uuid4()
    assert all(limiter.hit(ws, "create") is None for _ in range(10))
    wait = limiter.hit(ws, "create")
    # The window must turn over and a tenth of this full one slide out: 60 s + 6 s.
    assert wait is not None and wait == pytest.approx(66, abs=0.01)
    assert limiter.hit(uuid4(), "create") is None  # other workspaces are unaffected
    tick.t += 60  # the full previous window still overlaps: nothing new allowed yet
    assert limiter.hit(ws, "create") is not None
    tick.t += 30  # half of it has slid out
    allowed = sum(limiter.hit(ws, "create") is None for _ in range(10))
    assert allowed == 5
    tick.t += 120
    assert sum(limiter.hit(ws, "create") is None for _ in range(12)) == 10


def test_rate_limiter_retry_after_is_honest() -> None:
    tick = Ticker()
    limiter = RateLimiter({"other": 3}, tick)
    ws = uuid4()
    for _ in range(3):
        limiter.hit(ws, "other")
    wait = limiter.hit(ws, "other")
    assert wait is not None
    tick.t += wait
    assert limiter.hit(ws, "other") is None


def test_trailing_commas_are_forgiven() -> None:
    seed = b'{\n  "meeting_url": "https://zoom.us/j/123456789",\n  "bot_name": "My scheduled bot",\n  "join_at": "2025-06-16T16:24:00+0000",\n}'
    assert orjson.loads(relax_json(seed))["join_at"] == "2025-06-16T16:24:00+0000"
    assert orjson.loads(relax_json(b'{"a": [1, 2,], "b": "x,}",}')) == {"a": [1, 2], "b": "x,}"}
    assert relax_json(b'{"a": "\\",}"}') == b'{"a": "\\",}"}'  # escaped quote inside a string
    assert relax_json(b"{,}") == b"{,}"  # not fixable: left for the parser to reject
    assert relax_json(b"") == b""


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_valid_json_is_left_alone(value: object) -> None:
    raw = orjson.dumps(value)
    assert relax_json(raw) == raw
    assert drop_trailing_commas(raw) == raw


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Token sk_abc", "sk_abc"),
        ("token sk_abc", "sk_abc"),
        ("Bearer sk_abc", "sk_abc"),
        ("sk_abc", "sk_abc"),
        ("  Token   sk_abc  ", "sk_abc"),
        ("", None),
        (None, None),
        ("Token", "Token"),
        ("Token a b", None),
        ("Token \x00", None),
        ("Token " + "x" * 300, None),
        ("Token ключ", None),
    ],
)
def test_extract_key(header: str | None, key: str | None) -> None:
    assert extract_key(header) == key

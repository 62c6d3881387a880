"""Pure webhook rules (SPEC §10, §13): signing as Standard Webhooks receivers check it (verified
with the ``standardwebhooks`` and ``svix`` libraries themselves, never with our own code), the
retry schedule, endpoint disabling, event filtering, blocked destinations, endpoint URLs and
the ledger's bound on answers.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson
import pytest
import standardwebhooks.webhooks as stdwh
import svix.webhooks as svixwh
from hypothesis import given
from hypothesis import strategies as st

from summon.domain.lifecycle import Status
from summon.domain.webhooks import (
    DELIVERY_TIMEOUT,
    DISABLE_AFTER,
    EVENT_TYPES,
    REALTIME_MAX_ATTEMPTS,
    REALTIME_RETRY_EVERY,
    RETRY_SCHEDULE,
    TRUNCATED,
    generate_secret,
    is_blocked_address,
    next_attempt_at,
    next_realtime_attempt_at,
    secret_key,
    should_disable,
    sign,
    signature_headers,
    truncate_response,
    validate_endpoint_url,
    wants,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
#: The published Standard Webhooks / Svix example.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# The receivers check the timestamp against the real clock (5 minutes' tolerance), so deliveries
# made for them carry the real time: the only place these tests read it.


def now_s() -> int:
    return int(time.time())


def body_of(payload: object) -> bytes:
    return orjson.dumps(payload)


def bot_payload(code: str = "call_ended", name: str = "Zoë") -> dict[str, object]:
    return {
        "event": f"bot.{code}",
        "data": {
            "data": {"code": code, "sub_code": None, "updated_at": "2030-01-01T12:00:00.000000Z"},
            "bot": {"id": str(uuid4()), "metadata": {"owner": name}},
        },
    }


def std_verify(secret: str, body: bytes, headers: dict[str, str]) -> object:
    return stdwh.Webhook(secret).verify(body, headers)


def svix_verify(secret: str, body: bytes, headers: dict[str, str]) -> None:
    svixwh.Webhook(secret).verify(body, headers)


RECEIVERS = [pytest.param(std_verify, id="standardwebhooks"), pytest.param(svix_verify, id="svix")]
REFUSED = (stdwh.WebhookVerificationError, svixwh.WebhookVerificationError)


# -- secrets ----------------------------------------------------------------------------------


def test_generated_secrets_are_whsec_and_24_random_bytes() -> None:
    made = {generate_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(secret_key(secret)) == 24
        assert base64.b64decode(secret.removeprefix("whsec_"), validate=True) == secret_key(secret)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # bad padding
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w",
        "whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_é",
    ],
)
def test_malformed_secrets_raise_value_error(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)
    with pytest.raises(ValueError):
        sign(secret, "msg", 1, b"{}")


# -- signatures, as the receivers' libraries check them -----------------------------------------


def test_signature_matches_the_published_example() -> None:
    body = b'{"test": 2432232314}'
    signature = sign(VECTOR_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_are_standard_webhooks_and_svix_twins() -> None:
    headers = signature_headers("msg_1", 1614265330, b'{"test": 2432232314}', [VECTOR_SECRET])
    assert headers == {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": "1614265330",
        "webhook-signature": sign(VECTOR_SECRET, "msg_1", 1614265330, b'{"test": 2432232314}'),
        "svix-id": "msg_1",
        "svix-timestamp": "1614265330",
        "svix-signature": sign(VECTOR_SECRET, "msg_1", 1614265330, b'{"test": 2432232314}'),
    }


@pytest.mark.parametrize("verify", RECEIVERS)
@pytest.mark.parametrize("name", ["Zoë", "日本語の会議 🎉", "\u202e\u0000\"\\", "a" * 100_000])
def test_receivers_verify_our_deliveries(verify, name: str) -> None:  # type: ignore[no-untyped-def]
    secret = generate_secret()
    payload = bot_payload(name=name)
    body = body_of(payload)
    headers = signature_headers(str(uuid4()), now_s(), body, [secret])
    parsed = verify(secret, body, headers)
    if verify is std_verify:
        assert parsed == payload


@pytest.mark.parametrize("verify", RECEIVERS)
def test_receivers_accept_any_header_case(verify) -> None:  # type: ignore[no-untyped-def]
    # Web frameworks hand receivers "Webhook-Signature" and friends.
    secret = generate_secret()
    body = body_of(bot_payload())
    headers = signature_headers(str(uuid4()), now_s(), body, [secret])
    verify(secret, body, {name.title(): value for name, value in headers.items()})


def test_svix_receivers_verify_with_svix_headers_alone() -> None:
    secret = generate_secret()
    body = body_of(bot_payload())
    headers = signature_headers(str(uuid4()), now_s(), body, [secret])
    svix_only = {k: v for k, v in headers.items() if not k.startswith("webhook-")}
    svix_verify(secret, body, svix_only)


@pytest.mark.parametrize("verify", RECEIVERS)
def test_during_rotation_each_secret_alone_verifies(verify) -> None:  # type: ignore[no-untyped-def]
    new, old = generate_secret(), generate_secret()
    body = body_of(bot_payload(name="rotación"))
    headers = signature_headers(str(uuid4()), now_s(), body, [new, old])
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    verify(new, body, headers)
    verify(old, body, headers)
    with pytest.raises(REFUSED):
        verify(generate_secret(), body, headers)


def test_a_secret_given_twice_signs_once() -> None:
    secret = generate_secret()
    headers = signature_headers("msg_1", 1, b"{}", [secret, secret])
    assert headers["webhook-signature"] == sign(secret, "msg_1", 1, b"{}")


@pytest.mark.parametrize("verify", RECEIVERS)
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b, h, s: (b.replace(b"call_ended", b"call_endeD"), h, s), id="body"),
        pytest.param(lambda b, h, s: (b + b" ", h, s), id="trailing-space"),
        pytest.param(lambda b, h, s: (b, h, generate_secret()), id="wrong-secret"),
        pytest.param(lambda b, h, s: (b, {**h, "webhook-id": "x", "svix-id": "x"}, s), id="id"),
        pytest.param(
            lambda b, h, s: (b, {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1),
                                 "svix-timestamp": str(int(h["svix-timestamp"]) + 1)}, s),
            id="timestamp",
        ),
    ],
)
def test_receivers_refuse_tampering(verify, tamper) -> None:  # type: ignore[no-untyped-def]
    secret = generate_secret()
    body = body_of(bot_payload())
    headers = signature_headers(str(uuid4()), now_s(), body, [secret])
    verify(secret, body, headers)  # untouched: fine
    body, headers, secret = tamper(body, headers, secret)
    with pytest.raises(REFUSED):
        verify(secret, body, headers)


@pytest.mark.parametrize("verify", RECEIVERS)
@pytest.mark.parametrize("skew", [-6 * 60, 6 * 60])
def test_receivers_refuse_stale_or_future_timestamps(  # type: ignore[no-untyped-def]
    verify, skew: int
) -> None:
    secret = generate_secret()
    body = body_of(bot_payload())
    headers = signature_headers(str(uuid4()), now_s() + skew, body, [secret])
    with pytest.raises(REFUSED):
        verify(secret, body, headers)


@pytest.mark.parametrize("msg_id", ["", "has space", "new\nline", "naïve", "tab\t"])
def test_message_ids_must_be_header_safe(msg_id: str) -> None:
    with pytest.raises(ValueError):
        signature_headers(msg_id, 1, b"{}", [generate_secret()])


def test_a_delivery_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_headers("msg_1", 1, b"{}", [])
    with pytest.raises(ValueError):
        signature_headers("msg_1", 1, b"{}", ["not-a-secret"])


SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
SECRETS = [generate_secret() for _ in range(3)]


@given(
    body=st.binary(max_size=4096),
    msg_id=st.text(st.characters(codec=None, categories=None, exclude_categories=())),
    timestamp=st.integers(min_value=-(2**63), max_value=2**63),
    secret=st.sampled_from(SECRETS),
)
def test_sign_never_raises(body: bytes, msg_id: str, timestamp: int, secret: str) -> None:
    assert SIGNATURE.fullmatch(sign(secret, msg_id, timestamp, body))


@given(
    text=st.text(max_size=2000),
    msg_id=st.from_regex(r"[\x21-\x7e]{1,64}", fullmatch=True),
    secrets=st.lists(st.sampled_from(SECRETS), min_size=1, max_size=2, unique=True),
)
def test_receivers_accept_any_signed_body(text: str, msg_id: str, secrets: list[str]) -> None:
    body = text.encode()  # receivers decode the body as UTF-8: every body we send is JSON
    headers = signature_headers(msg_id, now_s(), body, secrets)
    for secret in secrets:
        stdwh.Webhook(secret).verify(body, headers, json_parse=False)
        svixwh.Webhook(secret).verify(body, headers)


@given(
    text=st.text(max_size=500),
    msg_id=st.text(min_size=1, max_size=50),
    timestamp=st.integers(0, 253402300799),  # datetime ends with 9999
)
def test_sign_agrees_with_the_reference_signer(text: str, msg_id: str, timestamp: int) -> None:
    when = datetime.fromtimestamp(timestamp, UTC)
    reference = stdwh.Webhook(VECTOR_SECRET).sign(msg_id, when, text)
    assert sign(VECTOR_SECRET, msg_id, timestamp, text.encode()) == reference


# -- retries ----------------------------------------------------------------------------------


def test_the_schedule_is_svix_s() -> None:
    assert RETRY_SCHEDULE == (
        timedelta(0),
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    )
    assert DELIVERY_TIMEOUT == timedelta(seconds=15)


@pytest.mark.parametrize(
    ("attempts_made", "delay"),
    [
        (0, timedelta(0)),
        (1, timedelta(seconds=5)),
        (2, timedelta(minutes=5)),
        (3, timedelta(minutes=30)),
        (4, timedelta(hours=2)),
        (5, timedelta(hours=5)),
        (6, timedelta(hours=10)),
        (7, timedelta(hours=10)),
        (8, None),
        (9, None),
        (1000, None),
    ],
)
def test_next_attempt_after_n_failures(attempts_made: int, delay: timedelta | None) -> None:
    expected = None if delay is None else T0 + delay
    assert next_attempt_at(attempts_made, T0) == expected


def test_a_message_that_always_fails_gets_eight_attempts_over_27_hours() -> None:
    attempts, when = [], next_attempt_at(0, T0)
    while when is not None:
        attempts.append(when)
        when = next_attempt_at(len(attempts), when)
    assert len(attempts) == 8
    assert attempts[0] == T0
    assert attempts[-1] - T0 == timedelta(hours=27, minutes=35, seconds=5)


def test_three_failures_then_success_lands_35_min_5_s_after_the_first() -> None:
    when = T0
    for made in (1, 2, 3):
        when = next_attempt_at(made, when)  # type: ignore[assignment]
    assert when - T0 == timedelta(minutes=35, seconds=5)


def test_negative_attempt_counts_are_a_bug() -> None:
    with pytest.raises(ValueError):
        next_attempt_at(-1, T0)
    with pytest.raises(ValueError):
        next_realtime_attempt_at(-1, T0)


def test_realtime_endpoints_retry_every_second_sixty_attempts_in_all() -> None:
    assert REALTIME_RETRY_EVERY == timedelta(seconds=1) and REALTIME_MAX_ATTEMPTS == 60
    assert next_realtime_attempt_at(0, T0) == T0
    assert next_realtime_attempt_at(1, T0) == T0 + timedelta(seconds=1)
    assert next_realtime_attempt_at(59, T0) == T0 + timedelta(seconds=1)
    assert next_realtime_attempt_at(60, T0) is None


# -- disabling --------------------------------------------------------------------------------


def test_an_endpoint_failing_for_exactly_five_days_is_disabled() -> None:
    assert DISABLE_AFTER == timedelta(days=5)
    assert should_disable(T0, T0 + timedelta(days=5))
    assert should_disable(T0, T0 + timedelta(days=9))
    assert not should_disable(T0, T0 + timedelta(days=5) - timedelta(microseconds=1))
    assert not should_disable(T0, T0)


def test_a_healthy_endpoint_is_never_disabled() -> None:
    assert not should_disable(None, T0)
    assert not should_disable(None, T0 + timedelta(days=365))


# -- events -----------------------------------------------------------------------------------

#: Recall's catalogue (reference/recall_webhook_event_types.json) for bots, recordings, their
#: artifacts, real-time endpoints and calendars.
RECALL_EVENTS = {
    "bot.call_ended", "bot.done", "bot.fatal", "bot.in_call_not_recording", "bot.in_call_recording",
    "bot.in_waiting_room", "bot.joining_call", "bot.recording_permission_allowed",
    "bot.recording_permission_denied",
    "recording.deleted", "recording.done", "recording.failed", "recording.paused",
    "recording.processing",
    *(f"{artifact}.{state}"
      for artifact in ("audio_mixed", "audio_separate", "video_mixed", "video_separate",
                       "transcript",
                       "participant_events", "meeting_metadata")
      for state in ("processing", "done", "failed", "deleted")),
    "realtime_endpoint.running", "realtime_endpoint.done", "realtime_endpoint.failed",
    "calendar.update", "calendar.sync_events",
}


def test_every_bot_status_has_its_event() -> None:
    assert {f"bot.{status.value}" for status in Status} | {"bot.deleted"} <= EVENT_TYPES
    assert {"bot.scheduled", "bot.staged", "bot.ready", "bot.deleted"} <= EVENT_TYPES


def test_event_types_are_recall_s_plus_summon_s_statuses() -> None:
    assert RECALL_EVENTS <= EVENT_TYPES
    ours = {f"bot.{status.value}" for status in Status} | {"bot.deleted"}
    assert EVENT_TYPES - RECALL_EVENTS == ours - RECALL_EVENTS
    # Legacy, SDK and Slack events are never sent, so they cannot be subscribed to.
    assert not {"bot.status_change", "bot.log", "bot.output_log", "sdk_upload.complete",
                "slack.huddle_state"} & EVENT_TYPES
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", name) for name in EVENT_TYPES)


@pytest.mark.parametrize(
    ("subscribed", "event", "expected"),
    [
        (None, "bot.done", True),
        ([], "bot.done", True),
        (set(), "calendar.update", True),
        (["bot.done", "bot.fatal"], "bot.done", True),
        (frozenset({"bot.done"}), "bot.fatal", False),
        (("transcript.done",), "transcript.failed", False),
        (["bot.done"], "bot.Done", False),
    ],
)
def test_wants(subscribed, event: str, expected: bool) -> None:  # type: ignore[no-untyped-def]
    assert wants(subscribed, event) is expected


# -- destinations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255", "0.0.0.0",
        "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1", "192.0.2.1",
        "198.51.100.7", "203.0.113.5", "198.18.0.1",
        "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd00::1", "fd12:3456:789a::1",
        "fec0::1",
        "ff02::1", "ff05::2", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:7f00:1",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::10.0.0.1", "64:ff9b::169.254.169.254",  # NAT64 of private addresses
        "2002:c0a8:101::1", "2002:a9fe:a9fe::1", "2002:808:808::1",  # 6to4, whatever it embeds
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "3fff::1", "64:ff9b:1::1",  # documentation; local-use NAT64
        "not an address", "", "localhost", "127.1", "0x7f000001", "2130706433",
    ],
)
def test_blocked_addresses(ip: str) -> None:
    assert is_blocked_address(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255",
        "172.32.0.1", "192.169.0.1", "223.255.255.254",
        "2001:4860::8888", "2001:4860:4860::8888", "2606:4700:4700::1111", "2a00:1450:4001::200e",
        "::ffff:8.8.8.8", "64:ff9b::8.8.8.8",  # judged as 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert not is_blocked_address(ip)


# -- endpoint URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://hooks.example.com/summon", "https://hooks.example.com/summon"),
        ("HTTPS://Hooks.Example.COM/Path/Case?q=A", "https://hooks.example.com/Path/Case?q=A"),
        ("http://example.com", "http://example.com"),
        ("http://example.com:/x", "http://example.com/x"),
        ("https://example.com:0443/x", "https://example.com:443/x"),
        ("https://example.com:65535/x", "https://example.com:65535/x"),
        ("http://1.2.3.4:8080/hook", "http://1.2.3.4:8080/hook"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/"),  # private: the sender's call
        ("https://[2001:DB8:0:0::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("https://localhost/x", "https://localhost/x"),
        ("https://my_host.internal./x", "https://my_host.internal./x"),
        ("https://bücher.example/x", "https://bücher.example/x"),
        ("https://example.com/a%20b?x=1&y=%E2%9C%93", "https://example.com/a%20b?x=1&y=%E2%9C%93"),
    ],
)
def test_valid_endpoint_urls_are_normalised(url: str, normalised: str) -> None:
    assert validate_endpoint_url(url) == normalised
    assert validate_endpoint_url(normalised) == normalised


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "Enter a URL"),
        ("ftp://example.com/x", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https:///x", "needs a host"),
        ("https:example.com", "needs a host"),
        ("https://:443/x", "needs a host"),
        ("https://user:pw@example.com/x", "user name or password"),
        ("https://user@example.com/x", "user name or password"),
        ("https://@example.com/x", "user name or password"),
        ("https://example.com:0/x", "port"),
        ("https://example.com:65536/x", "port"),
        ("https://example.com:-1/x", "port"),
        ("https://example.com:http/x", "port"),
        ("https://example.com/x#frag", "fragment"),
        ("https://example.com/x#", "fragment"),
        ("not a url", "spaces"),
        ("https://example.com/x y", "spaces"),
        (" https://example.com/x", "spaces"),
        ("https://example.com/x\n", "spaces"),
        ("https://example.com/\x00", "control"),
        ("https://example.com/\u202etxt.exe", "control"),
        ("https://example.com/\u00a0", "spaces"),
        ("https://[zz]/x", "valid URL"),
        ("https://[::1/x", "valid URL"),
        ("https://-bad.example/x", "not a valid host name"),
        ("https://a..b/x", "not a valid host name"),
        ("https://exa%6dple.com/x", "not a valid host name"),
        ("https://" + "a" * 64 + ".com/x", "not a valid host name"),
        ("https://2130706433/x", "IPv4"),
        ("https://0x7f.1/x", "IPv4"),
        ("https://127.1/x", "IPv4"),
        ("https://010.0.0.1/x", "IPv4"),
        ("https://1.2.3.4.5/x", "IPv4"),
        ("https://example.com/" + "a" * 2030, "2048"),
    ],
)
def test_invalid_endpoint_urls_say_why(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        validate_endpoint_url(url)


def test_url_length_limit_is_inclusive() -> None:
    prefix = "https://example.com/"
    assert validate_endpoint_url(prefix + "a" * (2048 - len(prefix)))
    with pytest.raises(ValueError):
        validate_endpoint_url(prefix + "a" * (2049 - len(prefix)))


URL_SHAPED = st.builds(
    "{}://{}{}{}{}".format,
    st.sampled_from(["http", "https", "HTTPS", "ftp", ""]),
    st.sampled_from(["", "user@", "u:p@"]),
    st.one_of(
        st.from_regex(r"[a-zA-Z0-9._\-]{0,20}", fullmatch=True),
        st.from_regex(r"\[[0-9a-fA-F:.]{0,20}\]", fullmatch=True),
        st.ip_addresses(v=4).map(str),
        st.text(max_size=10),
    ),
    st.one_of(
        st.just(""),
        st.integers(-1, 70000).map(lambda n: f":{n}"),
        st.text(max_size=4).map(":{}".format),
    ),
    st.text(max_size=30),
)


@given(st.one_of(st.text(max_size=300), URL_SHAPED))
def test_url_validation_raises_only_value_error(text: str) -> None:
    try:
        normalised = validate_endpoint_url(text)
    except ValueError:
        return
    assert validate_endpoint_url(normalised) == normalised


# -- the ledger -------------------------------------------------------------------------------


def test_short_answers_are_kept_whole() -> None:
    assert truncate_response(b"") == ""
    assert truncate_response(b'{"ok": true}') == '{"ok": true}'
    assert truncate_response("é".encode() * 2048) == "é" * 2048  # the limit counts characters


def test_long_answers_are_cut_and_say_so() -> None:
    kept = truncate_response(b"x" * 2049)
    assert len(kept) == 2048 and kept.endswith(TRUNCATED) and kept.startswith("x" * 2000)
    assert truncate_response(b"abcdefghijklmnopqrstuvwxyz", limit=20) == "abcdefg" + TRUNCATED


def test_undecodable_bytes_and_nul_are_replaced() -> None:
    assert truncate_response(b"ok\xff\xfe\x00!") == "ok\ufffd\ufffd\ufffd!"


def test_a_huge_answer_is_cheap() -> None:
    started = time.process_time()  # CPU time: a loaded machine must not fail this
    kept = truncate_response(b"\xe2\x9c\x93" * 10_000_000)
    assert time.process_time() - started < 0.5
    assert len(kept) == 2048 and kept.endswith(TRUNCATED)


def test_a_limit_must_hold_the_marker() -> None:
    with pytest.raises(ValueError):
        truncate_response(b"x", limit=len(TRUNCATED) - 1)


@given(body=st.binary(max_size=3000), limit=st.integers(len(TRUNCATED), 2500))
def test_truncated_answers_are_bounded_and_faithful(body: bytes, limit: int) -> None:
    kept = truncate_response(body, limit)
    whole = body.decode("utf-8", "replace").replace("\x00", "\ufffd")
    assert len(kept) <= limit and "\x00" not in kept
    if len(whole) <= limit:
        assert kept == whole
    else:
        assert kept == whole[: limit - len(TRUNCATED)] + TRUNCATED

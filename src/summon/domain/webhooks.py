"""The pure rules of webhook delivery (SPEC §10, §13): signing, retrying, disabling, filtering,
where a delivery may go, and how much of an answer the ledger keeps.

No I/O and no clock: every time is passed in. The one exception is :func:`generate_secret`,
which needs real randomness.

Signing follows Standard Webhooks (what Recall and Svix use), so a receiver built only from the
``standardwebhooks`` or ``svix`` libraries verifies our deliveries:

- ``webhook-id``: the outbox message id, the same on every attempt (receivers dedupe by it);
- ``webhook-timestamp``: unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")>``, one per
  signing secret, space-separated; the key is the secret's base64 part after ``whsec_``;
- the same three values again as ``svix-id``, ``svix-timestamp``, ``svix-signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from secrets import token_bytes
from urllib.parse import urlsplit, urlunsplit

from summon.domain.lifecycle import Status

# -- signing ----------------------------------------------------------------------------------

SECRET_PREFIX = "whsec_"
#: Random bytes in a new secret: what Svix and Recall issue.
SECRET_BYTES = 24

_HEADER_SAFE_ID = re.compile(r"[\x21-\x7e]+")


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: its base64 part after ``whsec_``, decoded.

    Raises ValueError if ``secret`` lacks the prefix, is not strict (padded) base64, or decodes
    to nothing. Every secret Summon signs with is one it generated, so anything else is a bug
    (say, a sealed secret that was never opened) and must not quietly sign with a wrong key.
    """
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"A webhook secret starts with {SECRET_PREFIX!r}.")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("A webhook secret is 'whsec_' followed by base64.") from None
    if not key:
        raise ValueError("A webhook secret may not be empty.")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"{msg_id}.{timestamp}.{body}"`` under ``secret``'s key.

    Never raises for a valid secret, whatever the body bytes or the id text; ValueError (from
    :func:`secret_key`) for a malformed secret.
    """
    # surrogatepass: identical to strict UTF-8 for every encodable id, and a lone surrogate
    # (which no receiver could match anyway) yields a signature instead of an exception.
    prefix = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogatepass")
    mac = hmac.new(secret_key(secret), prefix, hashlib.sha256)
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The headers of one delivery attempt of ``body``, signed with each of ``secrets``.

    ``secrets`` is the current secret, then the previous one while a rotation's overlap lasts
    (receivers still holding the old secret keep verifying); duplicates are signed once.
    Returns lower-case names: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, their
    ``svix-*`` twins and ``content-type: application/json``.

    Raises ValueError if there is no secret, a secret is malformed, or ``msg_id`` is not a
    non-empty run of visible ASCII (it travels in a header, and receivers split nothing on it).
    """
    if not _HEADER_SAFE_ID.fullmatch(msg_id):
        raise ValueError("A webhook message id is non-empty visible ASCII.")
    distinct = list(dict.fromkeys(secrets))
    if not distinct:
        raise ValueError("A delivery is signed with at least one secret.")
    stamp = int(timestamp)  # the header and the signed content must spell it the same way
    signature = " ".join(sign(secret, msg_id, stamp, body) for secret in distinct)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "svix-id": msg_id,
        "svix-timestamp": str(stamp),
        "svix-signature": signature,
    }


# -- retries and disabling --------------------------------------------------------------------

#: Delay before attempt n+1 (index n), counted from the attempt before it: attempt 1 at once,
#: attempt 2 five seconds after attempt 1 fails, … attempt 8 ten hours after attempt 7; after
#: the 8th failure the message is ``failed``. Svix's schedule: an attempt that fails three times
#: and then succeeds arrives 35 min 5 s after the first.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
#: An attempt without a complete answer by then counts as failed.
DELIVERY_TIMEOUT = timedelta(seconds=15)
#: An endpoint whose deliveries have all failed for this long is disabled.
DISABLE_AFTER = timedelta(days=5)

#: Real-time (per-bot) webhook endpoints: the data is live, so retry fast and give up soon.
REALTIME_RETRY_EVERY = timedelta(seconds=1)
REALTIME_MAX_ATTEMPTS = 60
#: A real-time attempt without an answer by then failed (the next one comes a second later).
REALTIME_TIMEOUT = timedelta(seconds=5)


def next_attempt_at(attempts_made: int, last_attempt_at: datetime) -> datetime | None:
    """When to make the next attempt at a message after ``attempts_made`` failed ones, the last
    at ``last_attempt_at``; None when the schedule is spent (the message is ``failed``).

    ``attempts_made=0`` gives ``last_attempt_at`` itself (read it as the message's creation):
    the first attempt is due at once. Negative counts raise ValueError.

    No jitter, on purpose: the schedule is the contract receivers and tests rely on, and retries
    of many messages spread out anyway because their first attempts happened at different times.
    """
    if attempts_made < 0:
        raise ValueError("attempts_made cannot be negative")
    if attempts_made >= len(RETRY_SCHEDULE):
        return None
    return last_attempt_at + RETRY_SCHEDULE[attempts_made]


def next_realtime_attempt_at(attempts_made: int, last_attempt_at: datetime) -> datetime | None:
    """:func:`next_attempt_at` for real-time endpoints: every second, at most 60 attempts in
    all; None then (the real-time endpoint is marked failed)."""
    if attempts_made < 0:
        raise ValueError("attempts_made cannot be negative")
    if attempts_made >= REALTIME_MAX_ATTEMPTS:
        return None
    return last_attempt_at if attempts_made == 0 else last_attempt_at + REALTIME_RETRY_EVERY


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """Whether an endpoint is to be disabled: every delivery has failed for ``DISABLE_AFTER``
    (inclusive). ``failing_since`` is the first failure after the last success; None while the
    endpoint is healthy."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


# -- events -----------------------------------------------------------------------------------

#: Artifacts of a recording, each with its own status events.
_ARTIFACTS = (
    "audio_mixed",
    "audio_separate",
    "video_mixed",
    "video_separate",
    "transcript",
    "participant_events",
    "meeting_metadata",
)
_ARTIFACT_STATES = ("processing", "done", "failed", "deleted")

#: Every event type an endpoint may subscribe to: a ``bot.<status>`` per lifecycle status and
#: ``bot.deleted`` (Recall's new-style bot events), recording and artifact events, real-time
#: endpoint events and calendar events — Recall's names (reference catalogue). Recall's legacy
#: ``bot.status_change``/``bot.log``/``bot.output_log``, its desktop-SDK and Slack events are not
#: Summon's: subscribing to an event that never comes would be a silent mistake.
EVENT_TYPES: frozenset[str] = frozenset(
    {f"bot.{status.value}" for status in Status}
    | {"bot.deleted"}
    | {f"recording.{state}" for state in ("processing", "paused", "done", "failed", "deleted")}
    | {f"{artifact}.{state}" for artifact in _ARTIFACTS for state in _ARTIFACT_STATES}
    | {f"realtime_endpoint.{state}" for state in ("running", "done", "failed")}
    | {"calendar.update", "calendar.sync_events"}
)


def wants(event_types: Collection[str] | None, event_type: str) -> bool:
    """Whether an endpoint subscribed to ``event_types`` gets ``event_type``; None or empty
    means every event."""
    return not event_types or event_type in event_types


# -- destinations -----------------------------------------------------------------------------

#: Blocked whatever Python's ``is_global`` says: its lists change between releases (newer ones
#: call 6to4 non-global, 3.11.7 doesn't), and which destinations are refused must not.
_ALWAYS_BLOCKED = (
    ipaddress.IPv4Network("100.64.0.0/10"),  # shared (CGNAT): Python doesn't call it private
    ipaddress.IPv6Network("2002::/16"),  # 6to4: deprecated, and it tunnels to any IPv4 address
    ipaddress.IPv6Network("2001::/32"),  # Teredo: likewise
    ipaddress.IPv6Network("fec0::/10"),  # site-local: deprecated, yet Python calls it global
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
)
#: IPv4 hosts in IPv6 dress: a connection goes to the embedded IPv4 address (the last 32 bits).
_IPV4_EMBEDDING = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
)
MAX_URL_LENGTH = 2048


def is_blocked_address(ip: str) -> bool:
    """Whether ``ip`` is a destination SUMMON_WEBHOOK_BLOCK_PRIVATE refuses: anything but a
    public unicast address.

    Blocked: private, loopback, link-local, multicast, unspecified, reserved, shared (CGNAT
    100.64/10), unique-local (fc00::/7), site-local (fec0::/10), 6to4 and Teredo (tunnels that
    can reach any IPv4 address) and every other range that is not globally reachable. An IPv4
    address in IPv6 dress (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``) is judged as the IPv4
    address it reaches. Text that is not an IP address is blocked: this predicate fails closed.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _IPV4_EMBEDDING):
        address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return (
        any(address in network for network in _ALWAYS_BLOCKED)
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast  # Python calls 224/4 global
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    )


#: Control, formatting (e.g. bidi overrides that disguise a URL), surrogates and separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})
_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")
_NUMERIC = re.compile(r"[0-9]+|0x[0-9a-f]*")


def validate_endpoint_url(url: str) -> str:
    """``url`` as a webhook destination, normalised (lower-case scheme and host, compressed IPv6,
    a port without leading zeros); ValueError with a sentence for the user otherwise.

    Accepted: http or https, a host (DNS name, IPv4, or bracketed IPv6), an optional port
    1–65535, any path and query; at most 2048 characters, none of them whitespace, control or
    invisible formatting. Refused as well: user:password@ (credentials belong in no URL we store
    and log), a fragment (never sent over HTTP), and hosts that only look like numbers (resolvers
    read ``2130706433`` or ``0x7f.1`` as 127.0.0.1). Whether the host resolves to a private
    address is the sender's check, at delivery time, against DNS rebinding.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("Enter a URL.")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"A webhook URL has at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or unicodedata.category(c) in _INVISIBLE for c in url):
        raise ValueError("A webhook URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. unbalanced or invalid [IPv6] brackets
        raise ValueError("Enter a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("A webhook URL starts with http:// or https://.")
    if "@" in parts.netloc:
        raise ValueError("A webhook URL may not contain a user name or password.")
    if parts.fragment or url.endswith("#"):
        raise ValueError("A webhook URL may not contain a fragment (#…).")
    try:
        port = parts.port  # ValueError if not digits or beyond 65535
        if port == 0:
            raise ValueError
    except ValueError:
        raise ValueError("A webhook URL's port is a number between 1 and 65535.") from None
    host = _host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def _host(host: str, *, bracketed: bool) -> str:
    """The host as it goes back into a URL; ValueError if it is not a name or an address."""
    if not host:
        raise ValueError("A webhook URL needs a host.")
    if bracketed:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise ValueError("The host in brackets is not an IPv6 address.") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host  # a trailing dot is a fully qualified name
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name.")
    if _NUMERIC.fullmatch(labels[-1]):
        raise ValueError(f"{host!r} is neither a host name nor an IPv4 address (a.b.c.d).")
    return host


# -- the ledger -------------------------------------------------------------------------------

TRUNCATED = "… [truncated]"


def truncate_response(body: bytes, limit: int = 2048) -> str:
    """What the ledger keeps of an endpoint's answer: ``body`` as UTF-8 text (undecodable bytes
    and NULs as U+FFFD), at most ``limit`` characters in all; a longer answer is cut and ends
    with ``TRUNCATED``. ValueError if ``limit`` cannot hold that marker."""
    if limit < len(TRUNCATED):
        raise ValueError(f"limit must be at least {len(TRUNCATED)}")
    # A character takes at most 4 bytes, so decoding more could not change the result; and
    # PostgreSQL text refuses NUL, which an answer may well contain.
    text = bytes(body[: 4 * limit + 4]).decode("utf-8", "replace").replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)] + TRUNCATED

"""Malformed and hostile mail never escapes the receiver path: arbitrary bytes, broken MIME trees
(any nesting, types, encodings, charsets, boundaries), mutated real invitations — read,
judged, expanded and (last test) received by the service against a real store, without raising.
"""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from summon.domain.invites import judge, read_message, series_items, wanted_occurrences
from summon.domain.workspaces import Workspace
from summon.services import mailboxes as service
from summon.services.context import Context

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
NAMES = sorted(p.name for p in FIXTURES.glob("*.eml"))
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


CALENDARS = [c.text for name in NAMES for c in read_message(load(name)).calendars]


def exercise(raw: bytes) -> None:
    """Everything the receiver does with a message short of the store."""
    message = read_message(raw)
    found, _ = series_items(message)
    state = None
    for item in found:
        outcome = judge(
            state,
            item,
            now=NOW,
            mailbox_id=uuid4(),
            workspace_id=uuid4(),
            sender="a@b.example",
            message_id=message.message_id,
            body_text=message.body_text,
        )
        if outcome.state is not None:
            state = outcome.state
            wanted_occurrences(state, NOW, NOW + timedelta(days=28))


# -- building broken MIME -------------------------------------------------------------------
CONTENT_TYPES = [
    "text/calendar; method=REQUEST; charset=UTF-8",
    "text/calendar",
    "application/ics; name=invite.ics",
    "application/octet-stream; name=x.ics",
    "text/plain; charset=utf-8",
    'text/html; charset="bogus-9"',
    "text/plain; charset=utf-16",
    "message/rfc822",
    "application/pdf",
    "text/calendar; charset=zlib_codec",
    "multipart/mixed",
    "text/calendar; method=CANCEL; charset=latin-1",
    "",
    'text/calendar;;;==";',
]
ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "bogus", ""]

calendar_text = st.one_of(
    st.sampled_from(CALENDARS),
    st.sampled_from(CALENDARS).flatmap(
        lambda text: st.integers(0, len(text)).map(lambda n: text[:n])
    ),
    st.text(max_size=400),
)
body = st.one_of(
    calendar_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=600)
)


def encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(CONTENT_TYPES[:10] + CONTENT_TYPES[11:]))
    encoding = draw(st.sampled_from(ENCODINGS))
    disposition = draw(
        st.sampled_from(["", "attachment; filename=invite.ics", "inline", "attachment;;"])
    )
    data = encode(draw(body), encoding)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut anywhere
    headers = [f"Content-Type: {ctype}", f"Content-Transfer-Encoding: {encoding}"]
    if disposition:
        headers.append(f"Content-Disposition: {disposition}")
    return "\r\n".join(headers).encode() + b"\r\n\r\n" + data


def container(children: st.SearchStrategy[list[bytes]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        parts = draw(children)
        boundary = draw(st.sampled_from(["b", "==b==", "x" * 70, "", "b b"]))
        closing = draw(st.booleans())
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "signed", "report"]))
        out = (
            f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\npreamble\r\n'.encode()
        )
        for part in parts:
            out += f"--{boundary}\r\n".encode() + part + b"\r\n"
        if closing:
            out += f"--{boundary}--\r\n".encode()
        return out

    return build()


mime_tree = st.recursive(
    leaf(), lambda inner: container(st.lists(inner, max_size=4)), max_leaves=12
)


@st.composite
def message(draw: st.DrawFn) -> bytes:
    headers = draw(
        st.lists(
            st.sampled_from(
                [
                    b"From: Alice <alice@acme.example>",
                    b"From: =?utf-8?Q?=FF=FE?= <x@y>",
                    b"To: notes@bots.summon.test",
                    b"Subject: =?bogus?B?////?=",
                    b"Return-Path: <>",
                    b"Sender: " + b"a" * 3000,
                    b"Authentication-Results: mx; dkim=pass header.d=",
                    b"Message-ID: \xff\xfe",
                    b"X-Folded: a\r\n\tb",
                    b"Delivered-To: notes+x@bots.summon.test",
                ]
            ),
            max_size=8,
        )
    )
    return b"\r\n".join(headers) + b"\r\n" + draw(mime_tree)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    raw = bytearray(load(draw(st.sampled_from(NAMES))))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "drop_line", "dup", "insert"]))
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del raw[at:]
        elif kind == "drop_line":
            end = raw.find(b"\n", at)
            del raw[at : end if end >= 0 else len(raw)]
        elif kind == "dup":
            raw[at:at] = raw[at : at + draw(st.integers(1, 200))]
        else:
            raw[at:at] = draw(
                st.sampled_from(
                    [
                        b"\r\n--",
                        b"BEGIN:VEVENT\r\n",
                        b"\x00",
                        b"=\r\n",
                        b"\r\n\r\n",
                        b"RRULE:FREQ=SECONDLY\r\n",
                        b"END:VCALENDAR",
                    ]
                )
            )
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(raw: bytes) -> None:
    exercise(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_broken_mime_trees(raw: bytes) -> None:
    exercise(raw)


@settings(max_examples=300, deadline=None)
@given(mutated_fixture())
def test_mutated_real_invitations(raw: bytes) -> None:
    exercise(raw)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(mutated_fixture(), message()))
async def test_the_receiver_never_raises_for_content(raw: bytes, ctx: Context) -> None:
    workspace, _ = await ctx.store.ensure_workspace(Workspace(uuid4(), "fuzz", NOW))
    if await service.find_mailbox(ctx, "notes@bots.summon.test") is None:
        await service.create_mailbox(
            ctx,
            workspace.id,
            "notes@bots.summon.test",
            {},
            ["acme.example", "contoso.example", "calendar-server.bounces.google.com"],
        )
    receipts = await service.receive_message(
        ctx, raw, "alice@acme.example", ["notes@bots.summon.test"]
    )
    assert all(r.status in ("scheduled", "ignored", "cancelled", "refused") for r in receipts)

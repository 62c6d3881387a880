"""The bots API over HTTP (in process), against SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from summon.clock import FakeClock
from summon.services import keys
from summon.services.context import Context
from tests.conftest import START

SEED_BODY = b"""{
  "meeting_url": "https://zoom.us/j/123456789",
  "bot_name": "My scheduled bot",
  "join_at": "2030-01-01T16:24:00+0000",
}"""


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("meeting_url", "https://zoom.us/j/123456789")
    r = await client.post("/api/v1/bot/", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_seed_example_verbatim_schedule_reschedule_delete(client: httpx.AsyncClient, ctx: Context) -> None:
    r = await client.post("/api/v1/bot/", content=SEED_BODY, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    bot = r.json()
    assert bot["state"] == "scheduled"
    assert bot["join_at"].startswith("2030-01-01T16:24:00") and bot["join_at"].endswith("Z")
    assert bot["bot_name"] == "My scheduled bot"
    assert bot["meeting_url"]["platform"] == "zoom" and bot["meeting_url"]["meeting_id"] == "123456789"
    assert [c["code"] for c in bot["status_changes"]] == ["scheduled"]

    # The seeds write PATCH /bots/{bot_id} without a trailing slash.
    r = await client.patch(f"/api/v1/bots/{bot['id']}", json={"join_at": "2030-01-01T17:00:00Z"})
    assert r.status_code == 200, r.text
    assert r.json()["join_at"].startswith("2030-01-01T17:00:00") and r.json()["state"] == "scheduled"
    assert (await client.get(f"/api/v1/bot/{bot['id']}/")).json()["join_at"].startswith("2030-01-01T17:00:00")

    r = await client.delete(f"/api/v1/bots/{bot['id']}")
    assert r.status_code == 200 and r.json() == {"id": bot["id"], "deleted": True}
    assert (await client.get(f"/api/v1/bot/{bot['id']}/")).status_code == 404
    events = [m.event_type for m in await ctx.store.pending_messages(100)]
    assert events == ["bot.scheduled", "bot.deleted"]


async def test_defaults_are_filled_and_returned(client: httpx.AsyncClient) -> None:
    bot = await create(client)
    assert bot["bot_name"] == "Meeting Notetaker"
    leave = bot["automatic_leave"]
    assert leave["waiting_room_timeout"] == 1200 and leave["noone_joined_timeout"] == 1200
    assert leave["everyone_left_timeout"] == {"timeout": 2, "activate_after": None}
    assert leave["silence_detection"] == {"timeout": 3600, "activate_after": 1200}
    assert bot["recording_config"]["retention"] == {"type": "timed", "hours": 168}
    assert bot["metadata"] == {} and bot["recordings"] == [] and bot["calendar_meetings"] == []
    for field in ("output_media", "chat", "zoom", "google_meet", "variant", "breakout_room"):
        assert field in bot
    got = (await client.get(f"/api/v1/bot/{bot['id']}")).json()
    assert got == bot


async def test_adhoc_bot_is_ready_and_cannot_be_patched_or_deleted(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await create(client)
    assert bot["state"] == "ready" and bot["join_at"] is None
    near = await create(client, join_at=(START + timedelta(minutes=5)).isoformat())
    assert near["state"] == "ready"

    r = await client.patch(f"/api/v1/bot/{bot['id']}/", json={"bot_name": "x"})
    assert r.status_code == 400 and r.json()["code"] == "update_bot_failed" and r.json()["detail"]
    r = await client.delete(f"/api/v1/bot/{bot['id']}/")
    assert r.status_code == 405 and r.json()["code"] == "bot_already_dispatched"

    r = await client.post(f"/api/v1/bot/{bot['id']}/leave_call/")  # no body, no Content-Type
    assert r.status_code == 200, r.text
    left = r.json()
    assert left["state"] == "done"
    assert left["status_changes"][-1]["sub_code"] == "bot_removed_before_join"
    r = await client.post(f"/api/v1/bot/{bot['id']}/leave_call")
    assert r.status_code == 400 and r.json()["code"] == "cannot_command_completed_bot"


async def test_scheduled_bot_leave_call_cancels_it(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await create(client, join_at="2030-01-02T10:00:00Z")
    r = await client.post(f"/api/v1/bots/{bot['id']}/leave_call", content=b"")
    assert r.status_code == 200 and r.json()["state"] == "done"
    assert [m.event_type for m in await ctx.store.pending_messages(10)] == ["bot.scheduled", "bot.done"]


async def test_threshold_boundary(client: httpx.AsyncClient) -> None:
    at = await create(client, join_at=(START + timedelta(seconds=600)).isoformat())
    below = await create(client, join_at=(START + timedelta(seconds=599)).isoformat())
    assert at["state"] == "scheduled" and below["state"] == "ready"


async def test_patch_moving_join_at_inside_threshold_makes_bot_adhoc(client: httpx.AsyncClient) -> None:
    bot = await create(client, join_at="2030-01-02T10:00:00Z")
    r = await client.patch(f"/api/v1/bot/{bot['id']}/", json={"join_at": (START + timedelta(minutes=3)).isoformat()})
    assert r.status_code == 200
    r = await client.patch(f"/api/v1/bot/{bot['id']}/", json={"join_at": "2029-12-31T00:00:00Z"})
    assert r.status_code == 400 and "join_at" in r.json()


async def test_patch_other_fields(client: httpx.AsyncClient) -> None:
    bot = await create(client, join_at="2030-01-02T10:00:00Z", metadata={"a": "1"})
    r = await client.patch(
        f"/api/v1/bot/{bot['id']}/",
        json={"bot_name": "Renamed", "metadata": {"b": "2"}, "meeting_url": "https://meet.google.com/abc-defg-hij",
              "automatic_leave": {"waiting_room_timeout": 60}},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["bot_name"] == "Renamed" and out["metadata"] == {"b": "2"}
    assert out["meeting_url"]["platform"] == "google_meet"
    assert out["automatic_leave"]["waiting_room_timeout"] == 60
    assert out["automatic_leave"]["noone_joined_timeout"] == 1200
    assert out["join_at"] == bot["join_at"]
    r = await client.patch(f"/api/v1/bot/{bot['id']}/", json={"meeting_url": "https://evil.example/j/1"})
    assert r.status_code == 400 and r.json() == {"meeting_url": ["The meeting_url is malformed, or for an unsupported platform."]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"meeting_url": "https://zoom.us.evil.com/j/123456789"}, "meeting_url"),
        ({"meeting_url": ""}, "meeting_url"),
        ({}, "meeting_url"),
        ({"meeting_url": "https://zoom.us/j/123456789", "join_at": "2029-12-31T23:00:00Z"}, "join_at"),
        ({"meeting_url": "https://zoom.us/j/123456789", "join_at": "2030-01-02T10:00:00"}, "join_at"),
        ({"meeting_url": "https://zoom.us/j/123456789", "join_at": "tomorrow"}, "join_at"),
        ({"meeting_url": "https://zoom.us/j/123456789", "bot_name": ""}, "bot_name"),
        ({"meeting_url": "https://zoom.us/j/123456789", "bot_name": "x" * 101}, "bot_name"),
        ({"meeting_url": "https://zoom.us/j/123456789", "bot_nmae": "typo"}, "bot_nmae"),
        ({"meeting_url": "https://zoom.us/j/123456789", "metadata": {"k": 1}}, "metadata.k"),
        ({"meeting_url": "https://zoom.us/j/123456789", "automatic_leave": {"waiting_room_timeout": "soon"}},
         "automatic_leave.waiting_room_timeout"),
        ({"meeting_url": "https://zoom.us/j/123456789", "recording_config": {"video_mixed_layout": "nope"}},
         "recording_config.video_mixed_layout"),
        ({"meeting_url": "https://zoom.us/j/123456789", "bot_name": "a\x00b"}, "bot_name"),
    ],
)
async def test_field_errors(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    r = await client.post("/api/v1/bot/", json=body)
    assert r.status_code == 400, r.text
    errors = r.json()
    assert field in errors, errors
    assert isinstance(errors[field], list) and all(isinstance(m, str) and m for m in errors[field])


async def test_invalid_meeting_url_message(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/bot/", json={"meeting_url": "https://example.com/meeting"})
    assert r.json() == {"meeting_url": ["The meeting_url is malformed, or for an unsupported platform."]}


@pytest.mark.parametrize(
    "content",
    [b"{", b"[1, 2]", b'"text"', b"null", b"{'single': 'quotes'}", b"\xff\xfe", b'{"meeting_url": NaN}',
     b'{"a": ' * 5000, b'{"meeting_url": "https://zoom.us/j/123456789", "join_at": 1e400}'],
)
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, content: bytes) -> None:
    r = await client.post("/api/v1/bot/", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert isinstance(r.json(), dict)


async def test_huge_body_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"meeting_url": "https://zoom.us/j/1", "bot_name": "' + b"x" * (1024 * 1024) + b'"}'
    r = await client.post("/api/v1/bot/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "detail" in r.json()


async def test_auth(client: httpx.AsyncClient, ctx: Context, api_key: str, clock: FakeClock) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Token nope"}, {"Authorization": "Token"}):
        r = await client.get("/api/v1/bot/", headers=headers)
        assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}
    del client.headers["Authorization"]
    r = await client.get("/api/v1/bot/")
    assert r.status_code == 401 and r.json() == {"detail": "Invalid token."}
    assert (await client.get("/api/v1/bot/", headers={"Authorization": api_key})).status_code == 200
    assert (await client.get("/api/v1/bot/", headers={"Authorization": f"Token {api_key}"})).status_code == 200
    await keys.revoke_api_key(ctx, str((await keys.list_api_keys(ctx, "acme"))[0].id))
    # A verified key is cached for SUMMON_AUTH_CACHE_S; after that the revocation is seen.
    clock.advance(ctx.settings.auth_cache_s + 0.1)
    assert (await client.get("/api/v1/bot/", headers={"Authorization": api_key})).status_code == 401


async def test_list_pagination_and_filters(client: httpx.AsyncClient, clock: FakeClock) -> None:
    made = []
    for i in range(5):
        clock.advance(1)
        made.append(await create(
            client,
            meeting_url="https://us02web.zoom.us/j/987654321?pwd=abc" if i % 2 else "https://meet.google.com/abc-defg-hij",
            join_at=f"2030-01-0{i + 2}T10:00:00Z",
            metadata={"team": "sales" if i < 3 else "ops", "i": str(i)},
        ))
    r = await client.get("/api/v1/bot/", params={"page_size": 2})
    page = r.json()
    assert page["count"] == 5 and [b["id"] for b in page["results"]] == [made[4]["id"], made[3]["id"]]
    assert page["previous"] is None and page["next"].startswith("http://testserver/api/v1/bot/")
    assert "page=2" in page["next"] and "page_size=2" in page["next"]
    page2 = (await client.get(page["next"])).json()
    assert [b["id"] for b in page2["results"]] == [made[2]["id"], made[1]["id"]]
    assert page2["previous"] is not None
    page3 = (await client.get(page2["next"])).json()
    assert page3["next"] is None and [b["id"] for b in page3["results"]] == [made[0]["id"]]
    assert (await client.get("/api/v1/bot/", params={"page": 9})).status_code == 404

    async def ids(params: Any) -> set[int]:
        r = await client.get("/api/v1/bot", params=params)
        assert r.status_code == 200, r.text
        found = {b["id"] for b in r.json()["results"]}
        return {i for i, b in enumerate(made) if b["id"] in found}

    assert await ids({"metadata__team": "sales"}) == {0, 1, 2}
    assert await ids({"metadata[team]": "ops"}) == {3, 4}
    assert await ids([("metadata__team", "sales"), ("metadata__i", "1")]) == {1}
    assert await ids({"platform": "zoom"}) == {1, 3}
    assert await ids([("platform", "zoom"), ("platform", "google_meet")]) == {0, 1, 2, 3, 4}
    assert await ids({"meeting_url": "zoom.us/j/987654321"}) == {1, 3}  # compared after parsing
    assert await ids({"meeting_url": "https://meet.google.com/ABC-DEFG-HIJ?authuser=1"}) == {0, 2, 4}
    assert await ids({"meeting_url": "not a link"}) == set()
    assert await ids({"join_at_after": "2030-01-03T00:00:00Z", "join_at_before": "2030-01-05T00:00:00+0000"}) == {1, 2}
    assert await ids({"status": "scheduled"}) == {0, 1, 2, 3, 4}
    assert await ids([("status[]", "ready"), ("status[]", "done")]) == set()
    for bad in ({"status": "bogus"}, {"platform": "skype"}, {"join_at_after": "yesterday"}, {"page": 0},
                {"page_size": 100000}, {"page": "x"}, {"metadata__team": "a\x00"}):
        r = await client.get("/api/v1/bot/", params=bad)
        assert r.status_code == 400, (bad, r.text)


async def test_idempotency_key(client: httpx.AsyncClient) -> None:
    body = {"meeting_url": "https://zoom.us/j/123456789", "join_at": "2030-01-02T10:00:00Z"}
    first = await client.post("/api/v1/bot/", json=body, headers={"Idempotency-Key": "abc"})
    again = await client.post("/api/v1/bot", json=body, headers={"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert (await client.get("/api/v1/bot/")).json()["count"] == 1
    other = await client.post("/api/v1/bot/", json={**body, "bot_name": "x"}, headers={"Idempotency-Key": "abc"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    fresh = await client.post("/api/v1/bot/", json=body, headers={"Idempotency-Key": "def"})
    assert fresh.json()["id"] != first.json()["id"]
    # Client errors are replayed too: the same request would fail the same way.
    bad = {"meeting_url": "nope"}
    r1 = await client.post("/api/v1/bot/", json=bad, headers={"Idempotency-Key": "bad"})
    r2 = await client.post("/api/v1/bot/", json=bad, headers={"Idempotency-Key": "bad"})
    assert r1.status_code == r2.status_code == 400 and r1.json() == r2.json()
    r = await client.post("/api/v1/bot/", json=body, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 400


async def test_rate_limit(ctx: Context, api_key: str, warm_agent: object) -> None:
    from summon.api.app import create_app

    ctx.settings.rate_limits = True
    ctx.settings.rate_limit_create_per_min = 3
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"Authorization": api_key}) as c:
        codes = [(await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})).status_code
                 for _ in range(4)]
        assert codes == [201, 201, 201, 429]
        r = await c.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert (await c.get("/api/v1/bot/")).status_code == 200  # other calls have their own budget


async def test_meeting_url_parse(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/meeting_url/parse/", json={"url": "https://us02web.zoom.us/j/123456789?pwd=xyz"})
    assert r.status_code == 200, r.text
    assert r.json()["meeting_url"]["platform"] == "zoom" and r.json()["supported"] is False
    r = await client.post("/api/v1/meeting_url/parse", json={"url": "https://zoom.us.evil.com/j/1"})
    assert r.status_code == 400 and "url" in r.json()


@pytest.mark.parametrize("path", ["/api/v1/bot/", "/api/v1/bot", "/api/v1/bots/", "/api/v1/bots"])
async def test_every_spelling_of_the_collection(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(path, json={"meeting_url": "https://zoom.us/j/123456789"})
    assert r.status_code == 201
    bot_id = r.json()["id"]
    assert (await client.get(path)).status_code == 200
    item = path.rstrip("/") + f"/{bot_id}"
    for spelling in (item, item + "/"):
        assert (await client.get(spelling)).status_code == 200


async def test_unknown_ids_and_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/bot/00000000-0000-0000-0000-000000000000/")).json() == {"detail": "Not found."}
    assert (await client.get("/api/v1/bot/not-a-uuid/")).status_code == 404
    assert (await client.get("/api/v1/nothing/")).status_code == 404
    r = await client.put("/api/v1/bot/")
    assert r.status_code == 405 and r.json() == {"detail": "Method not allowed."}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("send_chat_message", {"message": "hi", "to": "everyone"}),
        ("start_recording", None),
        ("stop_recording", None),
        ("pause_recording", None),
        ("resume_recording", None),
    ],
)
async def test_commands_need_a_bot_in_a_call(client: httpx.AsyncClient, path: str, body: Any) -> None:
    bot = await create(client, join_at="2030-01-02T10:00:00Z")
    r = await client.post(f"/api/v1/bot/{bot['id']}/{path}/", json=body)
    assert r.status_code == 400 and r.json()["code"] == "cannot_command_unstarted_bot", r.text
    await client.post(f"/api/v1/bot/{bot['id']}/leave_call/")
    r = await client.post(f"/api/v1/bots/{bot['id']}/{path}", json=body)
    assert r.status_code == 400 and r.json()["code"] == "cannot_command_completed_bot", r.text


async def test_command_bodies_are_validated(client: httpx.AsyncClient) -> None:
    bot = await create(client, join_at="2030-01-02T10:00:00Z")
    r = await client.post(f"/api/v1/bot/{bot['id']}/send_chat_message/", json={"message": "x" * 4097})
    assert r.status_code == 400 and "message" in r.json()
    r = await client.post(f"/api/v1/bot/{bot['id']}/output_audio/", json={"kind": "wav", "b64_data": "AAAA"})
    assert r.status_code == 400 and "kind" in r.json()
    r = await client.delete(f"/api/v1/bot/{bot['id']}/output_video/")
    assert r.status_code == 400 and r.json()["code"] == "cannot_command_unstarted_bot"


async def test_far_future_join_at_is_accepted_without_overflow(client: httpx.AsyncClient, ctx: Context) -> None:
    ctx.settings.max_bots = 100  # the capacity query does window arithmetic too
    bot = await create(client, join_at="9999-12-31T23:59:59Z")
    assert bot["state"] == "scheduled" and bot["join_at"].startswith("9999-12-31T23:59:59")
    r = await client.patch(f"/api/v1/bot/{bot['id']}/", json={"join_at": "9999-12-31T23:00:00+0000"})
    assert r.status_code == 200


async def test_media_is_write_only(client: httpx.AsyncClient) -> None:
    jpeg = "/9j/4AAQSkZJRgABAQAAAQABAAD/2Q=="
    bot = await create(client, join_at="2030-01-02T10:00:00Z",
                       automatic_video_output={"in_call_recording": {"kind": "jpeg", "b64_data": jpeg}})
    assert bot["automatic_video_output"]["in_call_recording"]["kind"] == "jpeg"
    assert "b64_data" not in str(bot["automatic_video_output"])
    got = (await client.get(f"/api/v1/bot/{bot['id']}/")).json()
    assert jpeg not in str(got)


async def test_unknown_query_parameters_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/bot/", params={"stauts": "done"})
    assert r.status_code == 400 and r.json() == {"stauts": ["Unknown query parameter."]}
    assert (await client.get("/api/v1/bot/?=x")).status_code == 400

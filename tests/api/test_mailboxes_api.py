"""Bot mailboxes over HTTP: CRUD, validation, one address per installation, tenant isolation,
cursor pages, and the received-invitations list."""

from __future__ import annotations

from pathlib import Path

import httpx

from summon.api.app import create_app
from summon.clock import FakeClock
from summon.services import keys
from summon.services import mailboxes as service
from summon.services.context import Context

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
BASE = "/api/v1/bot_mailboxes/"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def intruder(ctx: Context) -> httpx.AsyncClient:
    _, key = await keys.create_api_key(ctx, "intruder")
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)),
        base_url="http://t",
        headers={"Authorization": f"Token {key}"},
    )


async def test_crud(client: httpx.AsyncClient) -> None:
    r = await client.post(
        BASE,
        json={
            "address": "Notes@Bots.Summon.Test",
            "allowed_senders": ["Acme.example", "bob@partner.example"],
            "bot_config": {
                "bot_name": "Acme Notes",
                "metadata": {"team": "sales"},
                "automatic_leave": {"waiting_room_timeout": 600},
            },
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["address"] == "notes@bots.summon.test"
    assert created["allowed_senders"] == ["acme.example", "bob@partner.example"]
    assert created["send_replies"] is False
    config = created["bot_config"]
    assert config["bot_name"] == "Acme Notes" and config["metadata"] == {"team": "sales"}
    assert config["automatic_leave"]["waiting_room_timeout"] == 600
    assert "recording_config" in config  # Recall's defaults filled in
    one = f"{BASE}{created['id']}/"
    assert (await client.get(one)).json() == created
    assert (await client.get(one.rstrip("/"))).json() == created

    r = await client.patch(one, json={"allowed_senders": ["*.acme.example"], "send_replies": True})
    assert r.status_code == 200, r.text
    assert r.json()["allowed_senders"] == ["*.acme.example"] and r.json()["send_replies"] is True
    assert r.json()["bot_config"] == config and r.json()["address"] == created["address"]
    r = await client.patch(one, json={"address": "other@bots.summon.test", "bot_config": {}})
    assert r.json()["address"] == "other@bots.summon.test"
    assert r.json()["bot_config"]["bot_name"] == "Meeting Notetaker"

    listed = (await client.get(BASE)).json()
    assert [m["id"] for m in listed["results"]] == [created["id"]] and listed["next"] is None
    r = await client.delete(one)
    assert r.status_code == 200 and r.json() == {"id": created["id"], "deleted": True}
    assert (await client.get(one)).status_code == 404
    assert (await client.delete(one)).status_code == 404


async def test_validation(client: httpx.AsyncClient) -> None:
    cases = [
        ({"address": "not an address", "allowed_senders": []}, "address"),
        ({"address": "a@b.test"}, "allowed_senders"),
        (
            {"address": "a@b.test", "allowed_senders": ["ok.example", "no good"]},
            "allowed_senders.1",
        ),
        (
            {
                "address": "a@b.test",
                "allowed_senders": [],
                "bot_config": {"meeting_url": "https://zoom.us/j/1"},
            },
            "bot_config.meeting_url",
        ),
        (
            {
                "address": "a@b.test",
                "allowed_senders": [],
                "bot_config": {"join_at": "2030-01-01T00:00:00Z"},
            },
            "bot_config.join_at",
        ),
        (
            {"address": "a@b.test", "allowed_senders": [], "bot_config": {"bot_nam": "typo"}},
            "bot_config.bot_nam",
        ),
        (
            {
                "address": "a@b.test",
                "allowed_senders": [],
                "bot_config": {"automatic_leave": {"waiting_room_timeout": "x"}},
            },
            "bot_config.automatic_leave.waiting_room_timeout",
        ),
        ({"address": "a@b.test", "allowed_senders": [], "extra": 1}, "extra"),
        ({"address": "a\x00@b.test", "allowed_senders": []}, "address"),
        ({"address": "a@b.test", "allowed_senders": [], "send_replies": "yes"}, "send_replies"),
    ]
    for body, field in cases:
        r = await client.post(BASE, json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json(), (body, r.json())
    created = (await client.post(BASE, json={"address": "a@b.test", "allowed_senders": []})).json()
    r = await client.patch(f"{BASE}{created['id']}/", json={"address": None})
    assert r.status_code == 400 and "address" in r.json()
    r = await client.get(BASE, params={"page_size": 0})
    assert r.status_code == 400
    r = await client.get(BASE, params={"cursor": "garbage"})
    assert r.status_code == 400 and "cursor" in r.json()
    r = await client.get(BASE, params={"adress": "typo"})
    assert r.status_code == 400


async def test_an_address_belongs_to_one_mailbox_in_the_whole_installation(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    body = {"address": "notes@bots.summon.test", "allowed_senders": ["acme.example"]}
    assert (await client.post(BASE, json=body)).status_code == 201
    r = await client.post(BASE, json={**body, "address": "NOTES@bots.summon.test"})
    assert r.status_code == 409 and r.json()["code"] == "mailbox_address_taken"
    async with await intruder(ctx) as other:
        r = await other.post(BASE, json=body)
        assert r.status_code == 409
        mine = (await other.post(BASE, json={**body, "address": "theirs@bots.summon.test"})).json()
        r = await other.patch(f"{BASE}{mine['id']}/", json={"address": "notes@bots.summon.test"})
        assert r.status_code == 409


async def test_workspaces_see_only_their_mailboxes(client: httpx.AsyncClient, ctx: Context) -> None:
    mine = (
        await client.post(BASE, json={"address": "notes@bots.summon.test", "allowed_senders": []})
    ).json()
    async with await intruder(ctx) as other:
        assert (await other.get(BASE)).json()["results"] == []
        for method in ("GET", "PATCH", "DELETE"):
            r = await other.request(
                method, f"{BASE}{mine['id']}/", json={} if method == "PATCH" else None
            )
            assert r.status_code == 404, method
        assert (await other.get(f"{BASE}{mine['id']}/invites/")).status_code == 404
    assert (await client.get(f"{BASE}{mine['id']}/")).status_code == 200


async def test_cursor_pages(client: httpx.AsyncClient, clock: FakeClock) -> None:
    made = []
    for i in range(5):
        clock.advance(1)
        r = await client.post(
            BASE, json={"address": f"m{i}@bots.summon.test", "allowed_senders": []}
        )
        made.append(r.json()["id"])
    seen: list[str] = []
    url: str | None = f"{BASE}?page_size=2"
    while url:
        page = (await client.get(url)).json()
        assert len(page["results"]) <= 2
        seen += [m["id"] for m in page["results"]]
        url = page["next"]
    assert seen == made


async def test_idempotent_create(client: httpx.AsyncClient) -> None:
    body = {"address": "notes@bots.summon.test", "allowed_senders": ["acme.example"]}
    first = await client.post(BASE, json=body, headers={"Idempotency-Key": "k1"})
    again = await client.post(BASE, json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers.get("idempotent-replayed") == "true"


async def test_received_invitations_say_what_happened(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    created = (
        await client.post(
            BASE, json={"address": "notes@bots.summon.test", "allowed_senders": ["acme.example"]}
        )
    ).json()
    await service.receive_message(
        ctx, load("google_request.eml"), "alice@acme.example", ["notes@bots.summon.test"]
    )
    await service.receive_message(
        ctx, load("stranger_request.eml"), "mallory@evil.example", ["notes@bots.summon.test"]
    )
    await service.receive_message(
        ctx, load("reply.eml"), "alice@acme.example", ["notes@bots.summon.test"]
    )
    page = (await client.get(f"{BASE}{created['id']}/invites/")).json()
    by_uid = {i["ical_uid"]: i for i in page["results"]}
    scheduled = by_uid["7kukuqrfedlm2f9t0vr6p2jg3e@google.com"]
    assert scheduled["status"] == "scheduled" and scheduled["method"] == "REQUEST"
    assert scheduled["organizer"] == "alice@acme.example" and scheduled["title"] == "Q1 planning"
    (held,) = scheduled["bots"]
    assert held["start_time"] == "2030-01-06T15:00:00.000000Z"
    bot = (await client.get(f"/api/v1/bot/{held['bot_id']}/")).json()
    assert (
        bot["join_at"] == "2030-01-06T15:00:00.000000Z"
        and bot["meeting_url"]["platform"] == "google_meet"
    )
    refused = by_uid["evil-1@evil.example"]
    assert refused["status"] == "refused" and "mallory@evil.example" in refused["reason"]
    assert refused["bots"] == []
    r = await client.get(f"{BASE}{created['id']}/invites/", params={"page_size": 1})
    assert len(r.json()["results"]) == 1 and r.json()["next"]

"""Tenant isolation on every route: another workspace's id answers exactly like a missing one
(404). Routes are discovered from the app, so a new endpoint is covered without editing this —
it only needs a valid body in VALID_BODIES if it takes one."""

from __future__ import annotations

import base64
import uuid

import httpx
from fastapi.routing import APIRoute

from summon.api.app import create_app
from summon.services import keys
from summon.services.context import Context

TINY_JPEG = base64.b64encode(bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")).decode()
VALID_BODIES = {
    "send_chat_message": {"message": "hello"},
    "output_audio": {"kind": "mp3", "b64_data": base64.b64encode(b"ID3\x03\x00\x00\x00\x00\x00\x00").decode()},
    "output_video": {"kind": "jpeg", "b64_data": TINY_JPEG},
}


def body_for(path: str, method: str) -> dict[str, object] | None:
    if method in ("GET", "HEAD", "DELETE"):
        return None
    for suffix, body in VALID_BODIES.items():
        if f"/{suffix}" in path:
            return body
    return {}


async def test_foreign_ids_are_not_found_on_every_route(ctx: Context, client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789", "join_at": "2030-01-02T10:00:00Z"})
    victim = r.json()["id"]
    missing = str(uuid.uuid4())
    _, intruder_key = await keys.create_api_key(ctx, "intruder")
    app = create_app(ctx)
    routes = [r for r in app.routes if isinstance(r, APIRoute) and "{id}" in r.path]
    assert len(routes) >= 40  # every spelling of every item route
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Token {intruder_key}"}) as intruder:
        for route in routes:
            for method in route.methods - {"HEAD"}:
                body = body_for(route.path, method)
                foreign = await intruder.request(method, route.path.replace("{id}", victim), json=body)
                absent = await intruder.request(method, route.path.replace("{id}", missing), json=body)
                assert foreign.status_code == 404, (method, route.path, foreign.text)
                assert (foreign.status_code, foreign.json()) == (absent.status_code, absent.json())
                assert foreign.json() == {"detail": "Not found."}
    got = (await client.get(f"/api/v1/bot/{victim}/")).json()
    assert got["state"] == "scheduled" and got["bot_name"] == "Meeting Notetaker"

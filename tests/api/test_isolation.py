"""Tenant isolation on every route: another workspace's id answers 404, exactly like a missing
one. Routes are discovered from the app, so a new endpoint is covered without editing this."""

from __future__ import annotations

import httpx
from fastapi.routing import APIRoute

from summon.api.app import create_app
from summon.services import keys
from summon.services.context import Context


async def test_foreign_ids_are_not_found_on_every_route(ctx: Context, client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789", "join_at": "2030-01-02T10:00:00Z"})
    victim = r.json()["id"]
    _, intruder_key = await keys.create_api_key(ctx, "intruder")
    app = create_app(ctx)
    routes = [r for r in app.routes if isinstance(r, APIRoute) and "{id}" in r.path]
    assert len(routes) >= 10  # every spelling of every item route
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Token {intruder_key}"}) as intruder:
        for route in routes:
            for method in route.methods:
                response = await intruder.request(method, route.path.replace("{id}", victim), json={})
                assert response.status_code == 404, (method, route.path, response.text)
                assert response.json() == {"detail": "Not found."}
    # And the victim's bot is untouched.
    got = (await client.get(f"/api/v1/bot/{victim}/")).json()
    assert got["state"] == "scheduled"

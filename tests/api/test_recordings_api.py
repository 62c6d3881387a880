"""The recordings API and signed media downloads over HTTP (in process), against SQLite and
PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

import httpx

from summon.clock import FakeClock
from summon.domain.bots import Bot
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.realtime import object_id
from summon.domain.recordings import RecordingReport
from summon.services import keys
from summon.services import recordings as recording_service
from summon.services.context import Context


async def finished_bot(client: httpx.AsyncClient, ctx: Context) -> Bot:
    """A bot created through the API and finished (``done``)."""
    r = await client.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789",
                                                 "join_at": "2030-01-02T09:00:00Z"})
    assert r.status_code == 201, r.text
    bot = await ctx.store.get_bot(None, UUID(r.json()["id"]))
    assert bot is not None
    done = replace(bot, state=Status.DONE, version=bot.version + 1,
                   status_changes=[*bot.status_changes,
                                   StatusChange(Status.DONE, None, None, ctx.clock.now())])
    await ctx.store.save_bot(done, bot.version, done.status_changes[-1])
    return done


async def finished_bot_with_recording(client: httpx.AsyncClient, ctx: Context) -> dict[str, Any]:
    """A bot created through the API, finished, with the recording its runtime reported."""
    done = bot = await finished_bot(client, ctx)
    folder = ctx.settings.media_root() / str(bot.id)
    folder.mkdir(parents=True)
    (folder / "audio_mixed.mp3").write_bytes(bytes(range(256)) * 4)
    (folder / "transcript.json").write_bytes(b'[{"participant": {"id": 100}, "words": []}]')
    now = ctx.clock.now().timestamp()
    report = RecordingReport.from_message({
        "status": "done", "started_at": now - 30, "completed_at": now, "duration": 30.0,
        "transcript_provider": "meeting_captions",
        "files": {
            "audio_mixed": {"path": f"{bot.id}/audio_mixed.mp3", "content_type": "audio/mpeg",
                            "size": 1024},
            "transcript": {"path": f"{bot.id}/transcript.json",
                           "content_type": "application/json", "size": 41},
        },
    })
    await recording_service.record_recording(ctx, done, report)
    return {"id": str(bot.id), "folder": folder}


async def test_list_retrieve_and_download_without_a_key(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    r = await client.get("/api/v1/recording/", params={"bot_id": bot["id"]})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next"] is None and len(page["results"]) == 1
    rec = page["results"][0]
    assert rec["id"] == str(object_id(UUID(bot["id"]), "recording"))
    assert rec["bot"] == {"id": bot["id"], "metadata": {}}
    assert rec["status"]["code"] == "done"
    shortcuts = rec["media_shortcuts"]
    assert shortcuts["video_mixed"] is None and shortcuts["participant_events"] is None
    url = shortcuts["audio_mixed"]["data"]["download_url"]
    assert url.startswith("http://testserver/media/")
    assert (await client.get(f"/api/v1/recording/{rec['id']}/")).json()["id"] == rec["id"]
    assert (await client.get(f"/api/v1/recording/{rec['id']}")).status_code == 200
    got = await anonymous(client, url)
    assert got.status_code == 200 and got.content == bytes(range(256)) * 4
    assert got.headers["content-type"] == "audio/mpeg"
    part = await anonymous(client, url, Range="bytes=10-19")
    assert part.status_code == 206 and part.content == bytes(range(10, 20))
    refused = await anonymous(client, url.replace("audio_mixed.mp3", "transcript.json"))
    assert refused.status_code == 403 and refused.json()["code"] == "media_url_invalid"
    assert (await anonymous(client, f"/api/v1/recording/{rec['id']}/")).status_code == 401


async def only_recording(client: httpx.AsyncClient, bot_id: str) -> dict[str, Any]:
    r = await client.get("/api/v1/recording/", params={"bot_id": bot_id})
    results = r.json()["results"]
    assert len(results) == 1
    return results[0]  # type: ignore[no-any-return]


async def anonymous(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    """GET without the API key."""
    request = client.build_request("GET", url, headers=headers)
    del request.headers["Authorization"]
    return await client.send(request)


async def test_an_expired_url_is_refused(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    rec = await only_recording(client, bot["id"])
    url = rec["media_shortcuts"]["transcript"]["data"]["download_url"]
    assert (await client.get(url)).status_code == 200
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    clock.advance(ctx.settings.media_url_ttl_s + 1)
    r = await client.get(url)
    assert r.status_code == 403 and "expired" in r.json()["detail"]


async def test_public_url_makes_the_absolute_urls(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    ctx.settings.public_url = "https://summon.example.com/"
    rec = await only_recording(client, bot["id"])
    url = rec["media_shortcuts"]["audio_mixed"]["data"]["download_url"]
    assert url.startswith("https://summon.example.com/media/")


async def test_cursor_pages_and_filters(client: httpx.AsyncClient, ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, FakeClock)
    ids = []
    for _ in range(3):
        ids.append((await finished_bot_with_recording(client, ctx))["id"])
        clock.advance(60)
    seen, url = [], "/api/v1/recording/?page_size=2"
    while url:
        page = (await client.get(url)).json()
        seen += [r["bot"]["id"] for r in page["results"]]
        url = page["next"]
    assert seen == list(reversed(ids))
    done = await client.get("/api/v1/recording/", params={"status_code": "done"})
    assert len(done.json()["results"]) == 3
    nope = await client.get("/api/v1/recording/", params={"status_code": "nope"})
    assert nope.status_code == 400
    assert (await client.get("/api/v1/recording/", params={"cursor": "bad!"})).status_code == 400
    assert (await client.get("/api/v1/recording/", params={"bot": "x"})).status_code == 400


async def test_other_workspaces_see_nothing(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    rec_id = str(object_id(UUID(bot["id"]), "recording"))
    _, other_key = await keys.create_api_key(ctx, "other")
    headers = {"Authorization": f"Token {other_key}"}
    assert (await client.get(f"/api/v1/recording/{rec_id}/", headers=headers)).status_code == 404
    listed = await client.get("/api/v1/recording/", headers=headers)
    assert listed.json()["results"] == []
    r = await client.post(f"/api/v1/bot/{bot['id']}/delete_media/", headers=headers)
    assert r.status_code == 404
    assert (await client.get("/api/v1/recording/not-a-uuid/")).status_code == 404


async def test_delete_media_then_the_bot_is_media_expired(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    rec = await only_recording(client, bot["id"])
    url = rec["media_shortcuts"]["audio_mixed"]["data"]["download_url"]
    r = await client.post(f"/api/v1/bots/{bot['id']}/delete_media")  # no body, alias spelling
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "media_expired"
    assert body["recordings"][0]["status"]["code"] == "deleted"
    assert body["recordings"][0]["media_shortcuts"]["audio_mixed"]["data"]["download_url"] is None
    assert not bot["folder"].exists()
    assert (await client.get(url)).status_code == 404
    again = await client.post(f"/api/v1/bot/{bot['id']}/delete_media/")
    assert again.status_code == 200 and again.json()["state"] == "media_expired"


async def test_delete_media_of_a_bot_at_work_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/bot/", json={"meeting_url": "https://zoom.us/j/123456789",
                                                 "join_at": "2030-01-02T09:00:00Z"})
    refused = await client.post(f"/api/v1/bot/{r.json()['id']}/delete_media/")
    assert refused.status_code == 400 and refused.json()["code"] == "cannot_delete_media"


async def test_delete_recording(client: httpx.AsyncClient, ctx: Context) -> None:
    bot = await finished_bot_with_recording(client, ctx)
    rec_id = str(object_id(UUID(bot["id"]), "recording"))
    r = await client.delete(f"/api/v1/recording/{rec_id}/")
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/api/v1/recording/{rec_id}/")).status_code == 404
    assert (await client.delete(f"/api/v1/recording/{rec_id}/")).status_code == 404
    assert not bot["folder"].exists()


async def test_openapi_describes_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"get"} <= set(paths["/api/v1/recording/"])
    assert {"get", "delete"} <= set(paths["/api/v1/recording/{id}/"])
    assert "post" in paths["/api/v1/bot/{id}/delete_media/"]
    assert "get" in paths["/media/{recording_id}/{name}"]


async def test_per_participant_audio_is_listed_with_signed_urls_of_its_own(
    client: httpx.AsyncClient, ctx: Context
) -> None:
    bot = await finished_bot(client, ctx)
    folder = ctx.settings.media_root() / str(bot.id)
    (folder / "audio_separate").mkdir(parents=True)
    (folder / "audio_mixed.mp3").write_bytes(b"mix")
    (folder / "audio_separate" / "a.mp3").write_bytes(b"alice")
    (folder / "audio_separate" / "b.mp3").write_bytes(b"bob")
    now = ctx.clock.now().timestamp()
    mp3 = "audio/mpeg"
    report = RecordingReport.from_message({
        "status": "done", "started_at": now - 30, "completed_at": now, "duration": 30.0,
        "files": {
            "audio_mixed": {"path": f"{bot.id}/audio_mixed.mp3", "content_type": mp3, "size": 3},
            "audio_separate_1": {"path": f"{bot.id}/audio_separate/a.mp3", "content_type": mp3, "size": 5},
            "audio_separate_2": {"path": f"{bot.id}/audio_separate/b.mp3", "content_type": mp3, "size": 3},
        },
        "audio_separate": [
            {"label": "audio_separate_1", "participant": {"id": 100, "name": "Alice"}, "offset": 0.0, "duration": 30.0},
            {"label": "audio_separate_2", "participant": {"id": 101, "name": "Bob"}, "offset": 12.5, "duration": 17.5},
        ],
    })
    await recording_service.record_recording(ctx, bot, report)
    rec = await only_recording(client, str(bot.id))
    separate = rec["media_shortcuts"]["audio_separate"]
    assert separate["status"]["code"] == "done" and separate["format"] == "mp3"
    index = await anonymous(client, separate["data"]["download_url"])
    assert index.status_code == 200, index.text
    parts = index.json()
    assert [(p["participant"]["name"], p["start_timestamp"]["relative"], p["end_timestamp"]["relative"])
            for p in parts] == [("Alice", 0.0, 30.0), ("Bob", 12.5, 30.0)]
    assert [(await anonymous(client, p["download_url"])).content for p in parts] == [b"alice", b"bob"]
    # The index URL is signed like every other: altered, it is refused.
    tampered = separate["data"]["download_url"].replace("signature=", "signature=0")
    assert (await anonymous(client, tampered)).status_code == 403
    # Deleting the media removes the participants' files too.
    assert (await client.post(f"/api/v1/bot/{bot.id}/delete_media/")).status_code == 200
    assert not (folder / "audio_separate" / "a.mp3").exists()

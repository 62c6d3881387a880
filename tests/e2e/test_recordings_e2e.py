"""Recordings end to end: a real ``summon serve``, a sandbox bot with scripted speech that
records and transcribes from the meeting's captions, its artifacts downloaded through signed
URLs without an API key, webhooks at a real receiver, and ``delete_media``."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import av
import httpx
import pytest

from tests.e2e.conftest import KEY_LINE, Service, start_service
from tests.e2e.fleet_helpers import FAST, Api, parse_ts
from tests.e2e.test_webhooks import Receiver

pytestmark = pytest.mark.slow

URL_TTL_S = 4
SPEECH = "Hello team this is Alice"
MEETING = (
    "sandbox://recorded?participants=alice@0,bob@0&say=alice@0.5:" + SPEECH.replace(" ", "%20")
    + "&chat=bob@1:hi&end_after=4"
)
CONFIG: dict[str, Any] = {"transcript": {"provider": {"meeting_captions": {}}}}


@dataclass
class Finished:
    service: Service
    api: Api
    receiver: Receiver
    bot: dict[str, Any]
    data_dir: Path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """One service and one sandbox bot that recorded a whole meeting."""
    receiver = Receiver()
    receiver.thread.start()
    data_dir = tmp_path_factory.mktemp("recordings") / "data"
    svc = start_service(data_dir, {**FAST, "SUMMON_MEDIA_URL_TTL_S": str(URL_TTL_S)})
    api: Api | None = None
    try:
        key = svc.wait_for_line(KEY_LINE).group(1)
        svc.wait_ready()
        api = Api(svc.url, key)
        Api.open.remove(api)  # shared by the module's tests: closed here, not after each test
        r = api.client.post("/api/v1/webhook_endpoints/", json={"url": receiver.url})
        assert r.status_code == 201, r.text
        receiver.secret = r.json()["secret"]
        bot = api.create_when_pool_allows(meeting_url=MEETING, recording_config=CONFIG)
        done = api.wait_state(bot["id"], {"done", "fatal"}, timeout=60)
        assert done["state"] == "done", done["status_changes"]
        yield Finished(svc, api, receiver, done, data_dir)
    finally:
        if api is not None:
            api.client.close()
        svc.stop()
        receiver.server.shutdown()
        receiver.server.server_close()


def recording_of(f: Finished) -> dict[str, Any]:
    """The bot's recording, read afresh (so its URLs are fresh too)."""
    r = f.api.client.get("/api/v1/recording/", params={"bot_id": f.bot["id"]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 1
    return results[0]  # type: ignore[no-any-return]


def download(url: str) -> httpx.Response:
    """Without any API key: the URL is the credential."""
    return httpx.get(url, timeout=30)


def meeting_seconds(bot: dict[str, Any]) -> float:
    at = {c["code"]: parse_ts(c["created_at"]) for c in bot["status_changes"]}
    return (at["call_ended"] - at["in_call_recording"]).total_seconds()


def test_the_recording_has_every_artifact_with_absolute_urls(finished: Finished) -> None:
    rec = recording_of(finished)
    assert rec["status"]["code"] == "done"
    assert rec["bot"]["id"] == finished.bot["id"]
    shortcuts = rec["media_shortcuts"]
    assert shortcuts["video_mixed"] is None  # the sandbox has no video
    urls = [
        shortcuts["audio_mixed"]["data"]["download_url"],
        shortcuts["transcript"]["data"]["download_url"],
        shortcuts["meeting_metadata"]["data"]["download_url"],
        *(shortcuts["participant_events"]["data"][k] for k in (
            "participant_events_download_url", "speaker_timeline_download_url",
            "participants_download_url")),
    ]
    for url in urls:
        assert url.startswith(finished.service.url + "/media/"), url
    assert shortcuts["audio_mixed"]["format"] == "mp3"
    assert shortcuts["transcript"]["provider"] == {"meeting_captions": {}}
    assert {shortcuts[k]["status"]["code"] for k in
            ("audio_mixed", "transcript", "participant_events", "meeting_metadata")} == {"done"}


def test_the_audio_decodes_to_the_meetings_duration(finished: Finished) -> None:
    r = download(recording_of(finished)["media_shortcuts"]["audio_mixed"]["data"]["download_url"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg"
    with av.open(io.BytesIO(r.content), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(int(frame.samples) for frame in container.decode(stream))
        rate = stream.rate
    assert abs(samples / rate - meeting_seconds(finished.bot)) <= 1.0


def test_the_transcript_holds_the_scripted_words_of_the_speaker(finished: Finished) -> None:
    url = recording_of(finished)["media_shortcuts"]["transcript"]["data"]["download_url"]
    r = download(url)
    assert r.status_code == 200
    transcript = r.json()
    assert [u["participant"]["name"] for u in transcript] == ["alice"]
    words = transcript[0]["words"]
    assert " ".join(w["text"] for w in words) == SPEECH
    starts = [w["start_timestamp"]["relative"] for w in words]
    assert starts == sorted(starts) and 0 <= starts[0] <= meeting_seconds(finished.bot)


def test_participant_events_and_metadata_download(finished: Finished) -> None:
    shortcuts = recording_of(finished)["media_shortcuts"]
    data = shortcuts["participant_events"]["data"]
    events = download(data["participant_events_download_url"]).json()
    actions = [(e["participant"]["name"], e["action"]) for e in events]
    assert ("alice", "join") in actions and ("bob", "join") in actions
    assert ("alice", "speech_on") in actions and ("alice", "speech_off") in actions
    chat = [e for e in events if e["action"] == "chat_message"]
    assert chat and chat[0]["data"] == {"text": "hi", "to": "everyone"}
    timeline = download(data["speaker_timeline_download_url"]).json()
    assert [t["participant"]["name"] for t in timeline] == ["alice"]
    participants = download(data["participants_download_url"]).json()
    assert {p["name"] for p in participants} == {"alice", "bob"}
    metadata = download(shortcuts["meeting_metadata"]["data"]["download_url"]).json()
    assert set(metadata) == {"title", "zoom"}


def test_range_requests_are_served(finished: Finished) -> None:
    url = recording_of(finished)["media_shortcuts"]["audio_mixed"]["data"]["download_url"]
    r = httpx.get(url, headers={"Range": "bytes=0-99"}, timeout=30)
    assert r.status_code == 206 and len(r.content) == 100


def test_a_tampered_url_is_refused(finished: Finished) -> None:
    url = recording_of(finished)["media_shortcuts"]["transcript"]["data"]["download_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    later = {**query, "expires": str(int(query["expires"]) + 3600)}
    other_file = url.replace("/transcript.json?", "/participants.json?")
    bad_signature = {**query, "signature": ("0" if query["signature"][0] != "0" else "1")
                     + query["signature"][1:]}
    for tampered in (
        f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(later)}",
        other_file,
        f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(bad_signature)}",
        f"{parts.scheme}://{parts.netloc}{parts.path}",
    ):
        r = download(tampered)
        assert r.status_code in (403, 400), (tampered, r.status_code)
        assert r.status_code == 403 or "expires" in r.text
    assert download(url).status_code == 200  # the genuine one still works


def test_an_expired_url_is_refused(finished: Finished) -> None:
    url = recording_of(finished)["media_shortcuts"]["transcript"]["data"]["download_url"]
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    deadline = time.monotonic() + URL_TTL_S + 5
    while time.time() <= expires + 1:  # wait for the condition: the URL's time is up
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert download(url).status_code == 403


def test_recording_webhooks_reach_the_receiver(finished: Finished) -> None:
    receiver, bot_id = finished.receiver, finished.bot["id"]
    wanted = {"recording.done", "transcript.done", "audio_mixed.done",
              "participant_events.done", "meeting_metadata.done"}

    def events() -> set[str]:
        return {g["payload"]["event"] for g in receiver.for_bot(bot_id)}

    receiver.wait(lambda: wanted <= events())
    rec = recording_of(finished)
    done = next(g for g in receiver.for_bot(bot_id) if g["payload"]["event"] == "transcript.done")
    data = done["payload"]["data"]
    assert data["recording"]["id"] == rec["id"]
    assert data["transcript"]["id"] == rec["media_shortcuts"]["transcript"]["id"]
    assert receiver.rejected == 0


def test_the_bot_lists_its_recording(finished: Finished) -> None:
    bot = finished.api.get(finished.bot["id"])
    assert [r["id"] for r in bot["recordings"]] == [recording_of(finished)["id"]]
    assert bot["recordings"][0]["media_shortcuts"]["audio_mixed"]["data"]["download_url"]


def test_delete_media_removes_the_files_and_expires_the_bot(finished: Finished) -> None:
    rec = recording_of(finished)
    url = rec["media_shortcuts"]["audio_mixed"]["data"]["download_url"]
    folder = finished.data_dir / "media" / finished.bot["id"]
    assert any(folder.iterdir())
    r = finished.api.client.post(f"/api/v1/bot/{finished.bot['id']}/delete_media/")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "media_expired"
    assert not folder.exists()
    assert download(url).status_code == 404
    after = recording_of(finished)
    assert after["status"]["code"] == "deleted"
    assert after["media_shortcuts"]["audio_mixed"]["data"]["download_url"] is None
    assert finished.api.get(finished.bot["id"])["state"] == "media_expired"

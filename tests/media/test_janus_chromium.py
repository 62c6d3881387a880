"""A real browser in the meeting: headless Chromium joins through ``janus.js``, the bot hears it.

Chromium (Debian's ``chromium``, driven by Playwright's Python package with
``executable_path`` — no browser is ever downloaded) runs inside the test's network namespace:
Playwright's driver and the browser are started by this thread after it entered the namespace,
so they inherit it. The page is served from ``http://localhost`` inside the namespace (a secure
context, so ``getUserMedia`` works) and uses Debian's ``janus.js`` (package
``libjs-janus-gateway``) to publish the fake microphone — which plays a WAV made with
espeak-ng — into the room.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("aiortc")
pytest.importorskip("playwright")

from aiohttp import web
from playwright.async_api import async_playwright

from summon.clock import SystemClock
from summon.domain.meeting_urls import parse_meeting_url
from summon.drivers.janus import JanusDriver
from tests.media.janus_server import JanusServer, Room, janus_unavailable
from tests.media.netns import create_netns, netns_unavailable
from tests.media.participants import DriverLog, espeak_unavailable, speech_wav

CHROMIUM = "/usr/bin/chromium"
JANUS_JS = Path("/usr/share/javascript/janus-gateway/janus.js")
ROOM = 2468

# janus.js asks an "adapter" (webrtc-adapter) which browser this is; Chromium needs no shims.
PAGE = """<!doctype html>
<html><head><title>joining</title>
<script>window.adapter = {browserDetails: {browser: "chrome", version: 120}};</script>
<script src="/janus.js"></script>
</head><body><script>
const config = %(config)s;
function say(state) { document.title = state; }
Janus.init({debug: false, dependencies: Janus.useDefaultDependencies({adapter: window.adapter}),
  callback: () => {
    const janus = new Janus({server: config.server, iceServers: [],
      error: (e) => say("error: " + e),
      success: () => janus.attach({plugin: "janus.plugin.videoroom",
        error: (e) => say("error: " + e),
        success: (handle) => {
          window.handle = handle;
          handle.send({message: {request: "join", ptype: "publisher", room: config.room,
                                 display: config.name}});
        },
        onmessage: (msg, jsep) => {
          const handle = window.handle;
          if (msg.videoroom === "joined") {
            handle.createOffer({tracks: [{type: "audio", capture: true, recv: false}],
              success: (offer) => handle.send({message: {request: "configure", audio: true},
                                               jsep: offer}),
              error: (e) => say("error: " + JSON.stringify(e))});
          }
          if (jsep) handle.handleRemoteJsep({jsep: jsep});
        },
        webrtcState: (up) => say(up ? "published" : "down"),
      })});
  }});
</script></body></html>
"""


def _unavailable() -> str | None:
    for reason in (netns_unavailable(), janus_unavailable(), espeak_unavailable()):
        if reason:
            return reason
    if not os.access(CHROMIUM, os.X_OK) or shutil.which("chromium") is None:
        return "Chromium is not installed (Debian package `chromium`)"
    if not JANUS_JS.exists():
        return "janus.js is not installed (Debian package `libjs-janus-gateway`)"
    return None


@asynccontextmanager
async def _serve_page(config: dict[str, object]) -> AsyncIterator[str]:
    """Serve the page (and janus.js) on the namespace's loopback; yields the page's URL."""
    app = web.Application()
    page = PAGE % {"config": json.dumps(config)}

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def janus_js(request: web.Request) -> web.FileResponse:
        return web.FileResponse(JANUS_JS, headers={"Content-Type": "text/javascript"})

    app.router.add_get("/", index)
    app.router.add_get("/janus.js", janus_js)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # the namespace's own loopback
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://localhost:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_the_bot_hears_a_chromium_participant(tmp_path: Path) -> None:
    if reason := _unavailable():
        pytest.skip(reason)
    wav = speech_wav(tmp_path, "Hello from the browser. Can the bot hear me?")
    ns = create_netns()
    try:
        with ns.entered():
            async with JanusServer(ns, tmp_path / "janus", (Room(ROOM),)) as janus:
                config = {"server": janus.api_url, "room": ROOM, "name": "Browser Bea"}
                async with _serve_page(config) as url:
                    await _browser_joins(janus, url, wav)
    finally:
        ns.destroy()


async def _browser_joins(janus: JanusServer, page_url: str, wav: Path) -> None:
    log = DriverLog()
    meeting = parse_meeting_url(janus.meeting_url(ROOM)).to_dict()
    driver = JanusDriver(meeting, "Summon Bot", {}, log, SystemClock())
    await driver.prepare()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                "--no-first-run",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            await page.wait_for_function("document.title === 'published'", timeout=30_000)
            await driver.join()
            await log.wait(
                lambda: bool(log.about("participant_joined", "Browser Bea")), "Bea reported"
            )
            await log.wait(
                lambda: True in [c[2] for c in log.about("speech", "Browser Bea")],
                "Bea heard speaking",
                timeout=30,
            )
            assert log.names()[0] == "admitted"
            assert not log.of("failed")
        finally:
            await driver.close()
            await browser.close()

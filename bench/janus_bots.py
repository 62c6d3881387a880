"""Janus bots: what an audio-only recording bot costs, and how soon it hears the meeting.

N bots (``--bots``, default 5) are sent through the API of a real ``summon serve`` into one
Janus room where 3 scripted participants (aiortc, ``tests/media/participants.py``) take turns
saying espeak-ng sentences without pause, so someone is always speaking. Each bot records
audio only: the mixed MP3 (``video_mixed_layout: audio_only``: no video is subscribed or
decoded), no transcript; ``--separate`` adds one MP3 per participant (``audio_separate_mp3``).
Everything — Janus, the service with its runtime processes, the participants — runs in a
private network namespace made with the real-media tests' harness (``tests/media``), so this
must run as root with ``janus`` and ``espeak-ng`` installed, like those tests.

What is measured:

- **RSS and CPU per bot**: the runtime processes that host the bots are found through /proc
  (a runtime that has loaded the Janus driver maps aiortc's SRTP library, ``pylibsrtp``; idle
  warm runtimes do not). Their RSS (``/proc/PID/statm``), sampled during the measuring window,
  peak kept, is divided by the number of bots they host: ``RSS per bot`` (everything: the
  interpreter and the imported media stack included) and ``marginal RSS per bot`` (the growth
  since the same processes were idle warm runtimes, before the first bot; it still includes the
  one-time import of the driver, shared by the bots). CPU is their utime+stime
  (``/proc/PID/stat``) over ``--seconds`` while everyone is in the call and someone always
  speaks, as % of one core, per bot: receiving, decrypting and decoding three Opus streams,
  speech detection, mixing and MP3 encoding.
- **join → first audio**: from the bot's ``joining_call`` (the instant its join starts: that
  status change's ``created_at``) to the first participant audio the bot decoded, in two
  parts: ``joining_call → in_call`` (Janus admitted the bot: ``in_call_not_recording``'s
  ``created_at``) and ``in_call → first audio``. The second part is read from the recording:
  it starts at admission (``start_recording_on: call_join``) and the recorder places each
  decoded frame at its arrival time, silence before; the participants' audio carries a noise
  bed at about -50 dBFS, so it is never digital silence, and the first millisecond of the mixed
  MP3 above -70 dBFS is the first decoded frame (to about an MP3 granule, 12 ms). With
  ``--separate`` the same is also read from the per-participant files, which start at the
  20 ms block of that participant's first frame (``length(mixed) − length(file)``).

Targets: ≤ 60 MB RSS and ≤ 5 % of a core per audio-only bot; join → first audio ≤ 0.5 s.
Numbers on a shared 2-core machine are noisy (Janus, the participants' encoders and this
script share the cores with the bots).

    sudo .venv/bin/python bench/janus_bots.py [--bots 5] [--seconds 20] [--separate] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(ROOT))
import _procs  # noqa: E402
import _service  # noqa: E402

ROOM = 2222
SENTENCES = {
    "Alice": "Good morning everyone, let us look at the numbers for this quarter.",
    "Bob": "Sales went up in the north and stayed flat in the south.",
    "Carol": "We should hire two more engineers before the summer.",
}
TARGET_RSS_MB = 60.0
TARGET_CPU_PCT = 5.0
TARGET_FIRST_AUDIO_S = 0.5


def _unavailable() -> str | None:
    from tests.media.janus_server import janus_unavailable
    from tests.media.netns import netns_unavailable
    from tests.media.participants import espeak_unavailable

    try:
        import aiortc  # noqa: F401
    except ImportError:
        return "aiortc is not installed"
    return netns_unavailable() or janus_unavailable() or espeak_unavailable()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _hosts_janus(pid: int) -> bool:
    """A runtime that hosts (or hosted) Janus bots has aiortc's SRTP library (pylibsrtp) mapped."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "pylibsrtp" in f.read()
    except OSError:
        return False


def _main_thread_cpu(pid: int) -> float:
    """utime+stime of the process's main thread (the runtime's event loop) in seconds."""
    try:
        fields = open(f"/proc/{pid}/task/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _procs.TICK


def _runtimes(service_pid: int) -> list[int]:
    return [pid for pid in _procs.tree(service_pid) if _procs.is_runtime(pid)]


def _decoded(path: Path) -> Any:
    """An audio file as 48 kHz mono float samples."""
    import av
    import numpy as np

    resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def first_sound(bot_dir: Path) -> float | None:
    """Seconds from the recording's start to the first sound in the mixed audio: the first
    millisecond louder than -70 dBFS (the participants' audio never is digital silence: it
    carries a noise bed at about -50 dBFS)."""
    import numpy as np

    path = bot_dir / "audio_mixed.mp3"
    if not path.exists():
        return None
    samples = _decoded(path)
    ms = samples[: samples.size // 48 * 48].reshape(-1, 48).astype(np.float64)
    loud = np.flatnonzero(np.sqrt((ms * ms).mean(axis=1)) > 10 ** (-70 / 20))
    return float(loud[0]) / 1000 if loud.size else None


def first_frame(bot_dir: Path) -> float | None:
    """Seconds from the recording's start to the first decoded frame of any participant, from
    the per-participant files (``--separate``): each starts at the 20 ms block where that
    participant's first frame landed, so its offset is ``length(mixed) − length(file)``."""
    mixed = bot_dir / "audio_mixed.mp3"
    separate = sorted((bot_dir / "audio_separate").glob("*.mp3"))
    if not mixed.exists() or not separate:
        return None
    whole = _decoded(mixed).size
    return min(max(0, whole - _decoded(p).size) for p in separate) / 48_000


def _with_noise_bed(samples: Any) -> Any:
    """The clip with white noise at about -50 dBFS under it: never digital silence."""
    import numpy as np

    noise = np.random.default_rng(7).normal(0.0, 100.0, samples.size)
    return np.clip(samples.astype(np.float64) + noise, -32768, 32767).astype(np.int16)


class Talk:
    """The participants take turns, without pause, until stopped."""

    def __init__(self, people: list[Any]) -> None:
        self.people = people
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            for person in self.people:
                await person.say()
                await person.said(timeout=60)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def run(args: argparse.Namespace, ns: Any, folder: Path) -> dict[str, Any]:
    import aiohttp
    import httpx

    from tests.media.janus_server import JanusServer, Room
    from tests.media.participants import ScriptedParticipant, speech_samples, speech_wav

    async with AsyncExitStack() as stack:
        janus = JanusServer(
            ns, folder / "janus", (Room(ROOM, publishers=args.bots + len(SENTENCES) + 2),)
        )
        await janus.start()
        stack.push_async_callback(janus.stop)

        # The service, inside the namespace (this thread is in it, so its children are too).
        # Its blocking start-up runs before any participant has media to keep flowing.
        svc = _service.start(
            {
                "SUMMON_POOL_SIZE": str(args.bots),
                "SUMMON_SLOTS_PER_RUNTIME": str(max(args.bots, 2)),
                "SUMMON_LOG_LEVEL": "warning",
            }
        )
        data_dir = Path(svc.env["SUMMON_DATA_DIR"])
        stack.callback(shutil.rmtree, data_dir, True)
        stack.callback(_stop_service, svc)
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=svc.url, headers={"Authorization": f"Token {svc.key}"}, timeout=30
            )
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())

        # The meeting: three people already talking when the bots come.
        people = []
        for name, text in SENTENCES.items():
            voice = _with_noise_bed(speech_samples(speech_wav(folder, text)))
            person = ScriptedParticipant(http, janus.api_url, ROOM, name, speech=voice)
            stack.push_async_callback(person.close)
            await person.join()
            people.append(person)
        talk = Talk(people)
        talk.start()
        stack.push_async_callback(talk.stop)

        # Warm runtimes, idle, before any bot: the baseline of "marginal RSS".
        await _wait_for(lambda: bool(_runtimes(svc.process.pid)), 30, "a warm runtime")
        idle_rss = {pid: _procs.rss_mb(pid) for pid in _runtimes(svc.process.pid)}

        config = {
            "start_recording_on": "call_join",
            "video_mixed_layout": "audio_only",
            "audio_mixed_mp3": {},
        }
        if args.separate:
            config["audio_separate_mp3"] = {}
        ids = []
        for i in range(args.bots):
            body = {
                "meeting_url": janus.meeting_url(ROOM),
                "bot_name": f"Recorder {i + 1}",
                "recording_config": config,
            }
            ids.append((await _create(api, body))["id"])
        bots = await _wait_states(api, ids, {"in_call_recording"}, 60)
        bad = [b for b in bots if b["state"] != "in_call_recording"]
        if bad:
            raise SystemExit(f"bots did not get into the call: {[(b['id'], b['state']) for b in bad]}")

        # The measuring window: everyone in, someone always speaking.
        hosts = [pid for pid in _runtimes(svc.process.pid) if _hosts_janus(pid)]
        if not hosts:
            raise SystemExit("no runtime process with the Janus driver was found")
        await asyncio.sleep(2.0)  # let every bot's subscription settle before counting CPU
        cpu0 = {pid: _procs.cpu_seconds(pid) for pid in hosts}
        loop0 = {pid: _main_thread_cpu(pid) for pid in hosts}
        svc_cpu0 = _procs.cpu_seconds(svc.process.pid)
        t0 = time.monotonic()
        peak_rss = dict.fromkeys(hosts, 0.0)
        while (elapsed := time.monotonic() - t0) < args.seconds:
            for pid in hosts:
                peak_rss[pid] = max(peak_rss[pid], _procs.rss_mb(pid))
            await asyncio.sleep(min(1.0, args.seconds - elapsed))
        window = time.monotonic() - t0
        cpu = sum(_procs.cpu_seconds(pid) - cpu0[pid] for pid in hosts)
        loop_cpu = sum(_main_thread_cpu(pid) - loop0[pid] for pid in hosts)
        svc_cpu = _procs.cpu_seconds(svc.process.pid) - svc_cpu0
        for pid in hosts:
            peak_rss[pid] = max(peak_rss[pid], _procs.rss_mb(pid))

        # Leave, and read the recordings.
        for bot_id in ids:
            r = await api.post(f"/api/v1/bot/{bot_id}/leave_call/")
            assert r.status_code == 200, r.text
        bots = await _wait_states(api, ids, {"done", "fatal"}, 60)
        latencies = []
        for bot in bots:
            at = {c["code"]: _ts(c["created_at"]) for c in bot["status_changes"]}
            folder = data_dir / "media" / bot["id"]
            offset = await asyncio.to_thread(first_sound, folder)
            frame = await asyncio.to_thread(first_frame, folder) if args.separate else None
            latencies.append(
                {
                    "id": bot["id"],
                    "state": bot["state"],
                    "join_to_in_call": at["in_call_not_recording"] - at["joining_call"],
                    "in_call_to_audio": offset,
                    "in_call_to_frame": frame,
                }
            )
        return {
            "hosts": hosts,
            "idle_rss": idle_rss,
            "peak_rss": peak_rss,
            "cpu_s": cpu,
            "loop_cpu_s": loop_cpu,
            "service_cpu_s": svc_cpu,
            "window": window,
            "latencies": latencies,
        }


async def _create(api: Any, body: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        r = await api.post("/api/v1/bot/", json=body)
        if r.status_code == 201:
            return r.json()  # type: ignore[no-any-return]
        if r.status_code != 507 or time.monotonic() > deadline:
            raise SystemExit(f"creating a bot failed: {r.status_code} {r.text}")
        await asyncio.sleep(0.1)  # no warm slot yet: the pool is starting


async def _wait_states(api: Any, ids: list[str], states: set[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        bots = [(await api.get(f"/api/v1/bot/{i}/")).json() for i in ids]
        if all(b["state"] in states or b["state"] == "fatal" for b in bots):
            return bots
        if time.monotonic() > deadline:
            return bots
        await asyncio.sleep(0.2)


async def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _stop_service(svc: _service.RunningService) -> None:
    """Stop the service and wait for its runtimes (they exit when their pipe closes)."""
    runtimes = _runtimes(svc.process.pid) if svc.process.poll() is None else []
    svc.stop()
    deadline = time.monotonic() + 15
    for pid in runtimes:
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        if os.path.exists(f"/proc/{pid}"):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    hosts, n = result["hosts"], args.bots
    total_rss = sum(result["peak_rss"].values())
    idle = sum(result["idle_rss"].get(pid, 0.0) for pid in hosts)
    rss_per_bot = total_rss / n
    marginal = (total_rss - idle) / n if all(pid in result["idle_rss"] for pid in hosts) else None
    cpu_pct = result["cpu_s"] / result["window"] * 100 / n
    lat = result["latencies"]
    joins = [x["join_to_in_call"] for x in lat]
    audio = [x["in_call_to_audio"] for x in lat if x["in_call_to_audio"] is not None]
    totals = [
        x["join_to_in_call"] + x["in_call_to_audio"] for x in lat if x["in_call_to_audio"] is not None
    ]

    def row(metric: str, value: str, target: str = "") -> None:
        print(f"{metric:44} {value:>14}  {target}")

    def spread(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"{statistics.median(values):.3f} ({max(values):.3f})"

    print(
        f"\nSummon Janus bots — {n} audio-only recording bots, {len(SENTENCES)} speaking "
        f"participants, one room, {os.cpu_count()} CPUs, {result['window']:.1f} s window"
    )
    row("metric", "value", "target")
    row("runtime processes hosting the bots", str(len(hosts)))
    row("RSS of those runtimes, peak (MB)", f"{total_rss:.1f}")
    row("RSS per bot (MB)", f"{rss_per_bot:.1f}", f"<= {TARGET_RSS_MB:g}")
    if marginal is not None:
        row("marginal RSS per bot, over idle runtime (MB)", f"{marginal:.1f}", f"<= {TARGET_RSS_MB:g}")
    row("CPU per bot (% of one core)", f"{cpu_pct:.1f}", f"<= {TARGET_CPU_PCT:g}")
    loop_pct = result["loop_cpu_s"] / result["window"] * 100 / n
    row("  event loop / other threads (decoders, recorder)", f"{loop_pct:.1f} / {cpu_pct - loop_pct:.1f}")
    row("service process CPU (% of one core)", f"{result['service_cpu_s'] / result['window'] * 100:.1f}")
    row("joining_call → in_call, median (max) s", spread(joins))
    row("in_call → first audio, median (max) s", spread(audio), f"<= {TARGET_FIRST_AUDIO_S:g}")
    row("joining_call → first audio, median (max) s", spread(totals), f"<= {TARGET_FIRST_AUDIO_S:g}")
    frames = [x["in_call_to_frame"] for x in lat if x["in_call_to_frame"] is not None]
    if frames:
        row("in_call → first frame (separate files) s", spread(frames))
    missing = [x["id"] for x in lat if x["in_call_to_audio"] is None]
    ended = [x for x in lat if x["state"] != "done"]
    if missing:
        print(f"WARNING: no participant audio recorded by {missing}")
    if ended:
        print(f"WARNING: bots not done: {[(x['id'], x['state']) for x in ended]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="the CPU/RSS window")
    parser.add_argument(
        "--separate",
        action="store_true",
        help="also record one file per participant (costs CPU) and cross-check the latency",
    )
    parser.add_argument("--quick", action="store_true", help="small CI-safe run: 2 bots, 6 s")
    args = parser.parse_args()
    if args.quick:
        args.bots, args.seconds = 2, 6.0
    if reason := _unavailable():
        raise SystemExit(f"cannot run: {reason}")

    from tests.media.netns import create_netns

    ns = create_netns()
    try:
        with tempfile.TemporaryDirectory(prefix="summon-janus-bench-") as tmp, ns.entered():
            result = asyncio.run(run(args, ns, Path(tmp)))
    finally:
        ns.destroy()
    report(args, result)


if __name__ == "__main__":
    main()

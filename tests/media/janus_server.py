"""A real Janus server for tests, with a configuration of its own.

Janus is started from a configuration folder generated into a temporary directory (``-F``) —
never ``/etc/janus``. Only what the tests need is loaded: the VideoRoom and TextRoom plugins and
the HTTP transport, each from a private folder of symlinks to the installed libraries (Janus
loads every library in its plugin/transport folders). The HTTP API listens on one address inside
the test's network namespace; the admin API is off. ICE is restricted to the namespace's veth
interface, with no STUN/TURN server and no 1:1 NAT mapping, so no packet leaves the namespace.

Rooms are static (configured in the generated files), the same id in both plugins: a meeting
is ``janus://ADDRESS:PORT/ROOM`` for media and chat alike.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import aiohttp

from tests.media.netns import NetNs

__all__ = ["JANUS_BINARY", "JanusServer", "Room", "janus_unavailable"]

JANUS_BINARY = "/usr/bin/janus"
_LIB_DIRS = (
    Path("/usr/lib/x86_64-linux-gnu/janus"),
    Path("/usr/lib/aarch64-linux-gnu/janus"),
    Path("/usr/lib/janus"),
)
_PLUGINS = ("libjanus_videoroom.so", "libjanus_textroom.so")
_TRANSPORTS = ("libjanus_http.so",)
_START_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Room:
    """A room created in both VideoRoom and TextRoom."""

    id: int
    pin: str | None = None
    publishers: int = 6
    notify_joining: bool = True


def janus_unavailable() -> str | None:
    """Why Janus cannot run here, or None."""
    if not os.access(JANUS_BINARY, os.X_OK):
        return "Janus is not installed (Debian package `janus`)"
    if _lib_dir() is None:
        return "Janus plugins not found"
    return None


def _lib_dir() -> Path | None:
    for candidate in _LIB_DIRS:
        if (candidate / "plugins" / _PLUGINS[0]).exists():
            return candidate
    return None


@dataclass
class JanusServer:
    """One Janus process inside ``ns``. Use :meth:`start` / :meth:`stop` (or ``async with``)."""

    ns: NetNs
    folder: Path
    rooms: tuple[Room, ...]
    session_timeout: int = 60
    port: int = field(default=0)
    process: asyncio.subprocess.Process | None = None

    @property
    def host(self) -> str:
        return self.ns.address

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/janus"

    def meeting_url(self, room: int | str, pin: str | None = None) -> str:
        query = f"?pin={pin}" if pin is not None else ""
        return f"janus://{self.host}:{self.port}/{room}{query}"

    @property
    def log_path(self) -> Path:
        return self.folder / "janus.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Write the configuration, start Janus and wait until its API answers ``info``."""
        if self.port == 0:
            self.port = _free_port_in(self.ns)
        self._write_config()
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.ns.command(
                    JANUS_BINARY,
                    "-C",
                    str(self.folder / "janus.jcfg"),
                    "-F",
                    str(self.folder),
                    "-P",
                    str(self.folder / "plugins"),
                    "-T",
                    str(self.folder / "transports"),
                    "-o",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        await self._wait_ready()

    async def stop(self) -> None:
        """Stop Janus (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
        await asyncio.wait_for(process.wait(), 5.0)

    def kill(self) -> None:
        """Kill Janus at once (SIGKILL): the server going away without a word."""
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"Janus exited at start:\n{self.log_text()[-4000:]}")
                try:
                    async with http.get(f"{self.api_url}/info") as resp:
                        body = await resp.json(content_type=None)
                        if body.get("janus") == "server_info":
                            plugins = set(body.get("plugins") or {})
                            missing = {"janus.plugin.videoroom", "janus.plugin.textroom"} - plugins
                            if missing:
                                raise RuntimeError(f"Janus lacks plugins {missing}")
                            return
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                await asyncio.sleep(0.1)  # polling a starting process: no event to wait for
        await self.stop()
        raise RuntimeError(
            f"Janus did not answer within {_START_TIMEOUT_S} s:\n{self.log_text()[-4000:]}"
        )

    def _write_config(self) -> None:
        lib = _lib_dir()
        assert lib is not None
        folder = self.folder
        for sub, names in (("plugins", _PLUGINS), ("transports", _TRANSPORTS)):
            target = folder / sub
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name in names:
                (target / name).symlink_to(lib / sub / name)
        for empty in ("events", "loggers"):
            (folder / empty).mkdir(exist_ok=True)
        (folder / "janus.jcfg").write_text(
            _block(
                "general",
                configs_folder=str(folder),
                plugins_folder=str(folder / "plugins"),
                transports_folder=str(folder / "transports"),
                events_folder=str(folder / "events"),
                loggers_folder=str(folder / "loggers"),
                debug_level=4,
                debug_timestamps=True,
                debug_colors=False,
                session_timeout=self.session_timeout,
                interface=self.host,
                hide_dependencies=True,
                protected_folders=[
                    "/bin",
                    "/boot",
                    "/dev",
                    "/etc",
                    "/lib",
                    "/proc",
                    "/sbin",
                    "/sys",
                    "/usr",
                    "/var",
                ],
            )
            + _block("certificates")
            + _block("media", ipv6=False, rtp_port_range="20000-40000")
            + _block(
                "nat",
                nice_debug=False,
                full_trickle=False,
                ignore_mdns=True,
                ice_enforce_list=self.ns.interface,
            )
            + _block("plugins")
            + _block("transports")
            + _block("loggers")
            + _block("events", broadcast=False)
        )
        (folder / "janus.transport.http.jcfg").write_text(
            _block(
                "general",
                json="plain",
                base_path="/janus",
                http=True,
                port=self.port,
                ip=self.host,
                https=False,
            )
            + _block("admin", admin_http=False, admin_https=False)
            + _block("cors")
        )
        video_rooms = _block("general", string_ids=False)
        text_rooms = _block("general", json="plain", string_ids=False)
        for room in self.rooms:
            pin = {"pin": room.pin} if room.pin is not None else {}
            video_rooms += _block(
                f"room-{room.id}",
                description=f"test room {room.id}",
                publishers=room.publishers,
                notify_joining=room.notify_joining,
                audiolevel_ext=True,
                bitrate=256000,
                fir_freq=2,
                **pin,
            )
            text_rooms += _block(f"room-{room.id}", description=f"test room {room.id}", **pin)
        (folder / "janus.plugin.videoroom.jcfg").write_text(video_rooms)
        (folder / "janus.plugin.textroom.jcfg").write_text(text_rooms)


def _block(name: str, **settings: object) -> str:
    lines = [f"{name}: {{"]
    for key, value in settings.items():
        lines.append(f"\t{key} = {_value(value)}")
    lines.append("}\n")
    return "\n".join(lines)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _free_port_in(ns: NetNs) -> int:
    with ns.entered(), socket.socket() as s:
        s.bind((ns.address, 0))
        return int(s.getsockname()[1])

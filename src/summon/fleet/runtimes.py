"""A runtime process as the agent sees it: spawn it, talk to it over its pipes, notice when it
dies (the pipe closes) or hangs (heartbeats stop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from summon.runtime.protocol import decode, encode

log = logging.getLogger(__name__)

Handler = Callable[["RuntimeProcess", dict[str, Any]], None]
ExitHandler = Callable[["RuntimeProcess", str], None]


class RuntimeProcess:
    """One ``python -m summon.runtime`` child hosting up to ``capacity`` bots."""

    def __init__(self, capacity: int, on_message: Handler, on_exit: ExitHandler, monotonic: Callable[[], float]) -> None:
        self.capacity = capacity
        self.bots: set[str] = set()
        #: The platform of the bots it hosts (a runtime hosts one platform at a time, so each
        #: platform gets the slot count that suits it); None while it is empty.
        self.platform: str | None = None
        self.pid: int | None = None
        self.ready = asyncio.Event()
        self.last_seen = monotonic()
        self.exiting = False  # we asked it to stop
        self.hung = False  # we killed it for not heartbeating
        self.failed = False  # it could not be started
        self.greeted = False  # it said hello: bots sent to it are really in it
        self._monotonic = monotonic
        self._on_message = on_message
        self._on_exit = on_exit
        self._process: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def free(self) -> int:
        return self.capacity - len(self.bots)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "summon.runtime",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=16 * 1024 * 1024,
        )
        self.pid = self._process.pid
        self.last_seen = self._monotonic()
        self._reader_task = asyncio.create_task(self._read())

    def send(self, message: dict[str, Any]) -> bool:
        """Queue a message; False if the process is gone."""
        if not self.alive or self._process is None or self._process.stdin is None:
            return False
        try:
            self._process.stdin.write(encode(message))
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            return False
        return True

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        reason = "crashed"
        try:
            while line := await self._process.stdout.readline():
                self.last_seen = self._monotonic()
                try:
                    message = decode(line)
                except ValueError as exc:
                    log.error("runtime %s: %s", self.pid, exc)
                    continue
                if message["op"] == "hello":
                    self.greeted = True
                    self.ready.set()
                self._on_message(self, message)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.error("runtime %s: pipe broken: %s", self.pid, exc)
        finally:
            code = await self._process.wait()
            if self.exiting:
                reason = "stopped"
            elif self.hung:
                reason = "hung"
            log.log(logging.INFO if self.exiting else logging.ERROR, "runtime %s exited with %s (%s)", self.pid, code, reason)
            self.ready.set()
            self._on_exit(self, reason)

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask it to leave its calls and exit; kill it if it does not."""
        self.exiting = True
        if self.send({"op": "shutdown"}) and self._process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), timeout)
        self.kill()
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    def kill(self) -> None:
        if self.alive and self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

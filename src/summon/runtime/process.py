"""The runtime process: hosts bot sessions for its agent, over its stdin/stdout pipes.

Started by the fleet agent as ``python -m summon.runtime``. Everything a bot does in a meeting
happens here (drivers, timers, automatic leave); the agent only relays commands in and events
out, and watches this process's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from summon.clock import SystemClock
from summon.runtime.protocol import HEARTBEAT_S, decode, encode
from summon.runtime.session import BotSession, BotSpec, SessionCommandError
from summon.runtime.timing import JoinTimer

log = logging.getLogger("summon.runtime")
NOT_JOINED_STATES = frozenset({"scheduled", "ready", "staged"})
#: How long bots in a call get to leave it when the runtime is told to stop.
LEAVE_TIMEOUT_S = 20.0


class Runtime:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._outgoing: list[bytes] = []
        self._clock = SystemClock()
        self._timer = JoinTimer(self._clock)
        self._sessions: dict[str, BotSession] = {}
        self._hosting: dict[str, asyncio.Task[None]] = {}  # bot id -> its stage + run task
        self._tasks: set[asyncio.Task[None]] = set()

    # -- SessionEvents ----------------------------------------------------------------------
    def status(self, bot_id: str, code: str, sub_code: str | None, message: str | None, at: float) -> None:
        self._send({"op": "status", "bot_id": bot_id, "code": code, "sub_code": sub_code, "message": message, "at": at})

    def event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
        self._send({"op": "event", "bot_id": bot_id, "kind": kind, "data": data, "at": at})

    def recording(self, bot_id: str, report: dict[str, Any]) -> None:
        self._send({"op": "recording", "bot_id": bot_id, "recording": report})

    def finished(self, bot_id: str) -> None:
        self._sessions.pop(bot_id, None)
        self._send({"op": "finished", "bot_id": bot_id})

    # -- the loop -------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        # Batched: at a join instant hundreds of sessions report within one loop iteration;
        # one write for all of them keeps each session's report (and so the next session's
        # start) cheap.
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(encode(message))

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        self._writer.write(data)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self, reader: asyncio.StreamReader) -> None:
        # No driver is imported before a bot needs it: a runtime hosting sandbox bots never
        # loads a real-media stack.
        self._send({"op": "hello", "pid": os.getpid()})
        self._spawn(self._heartbeat())
        while line := await reader.readline():
            try:
                message = decode(line)
            except ValueError as exc:
                log.error("bad message from agent: %s", exc)
                continue
            op = message["op"]
            if op == "stage":
                spec = BotSpec(**message["bot"])
                task = asyncio.create_task(self._host(spec))
                self._hosting[spec.bot_id] = task
                task.add_done_callback(lambda _t, bot_id=spec.bot_id: self._hosting.pop(bot_id, None))
            elif op == "command":
                self._spawn(self._command(message["bot_id"], message["name"], message.get("args") or {}))
            elif op == "shutdown":
                break
        await self._wind_down()

    async def _wind_down(self) -> None:
        """Stdin closed (the agent is gone) or shutdown. Bots that have not started joining are
        dropped without a word: they stay ``staged`` and the next agent stages them again.
        Bots in a call leave it, and their final statuses are sent before we exit."""
        leaving = []
        for bot_id, session in list(self._sessions.items()):
            task = self._hosting.get(bot_id)
            if session.state in NOT_JOINED_STATES:
                if task is not None:
                    task.cancel()
            else:
                leaving.append(bot_id)
                with contextlib.suppress(SessionCommandError):
                    await session.command("leave", {})
        pending = [self._hosting[b] for b in leaving if b in self._hosting]
        if pending:
            await asyncio.wait(pending, timeout=LEAVE_TIMEOUT_S)
        if self._outgoing:
            self._flush()
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def _heartbeat(self) -> None:
        while True:
            self._send({"op": "heartbeat", "at": self._clock.now().timestamp()})
            await self._writer.drain()
            await asyncio.sleep(HEARTBEAT_S)

    async def _host(self, spec: BotSpec) -> None:
        session = BotSession(spec, self, self._clock, self._timer)
        self._sessions[spec.bot_id] = session
        await session.stage()
        if spec.bot_id not in self._sessions:  # staging failed and was reported
            return
        # Stamped here, on the clock that will stamp ``joining_call``: a staging that ends after
        # join_at (a slow driver import) is still recorded before the join it precedes.
        self._send({"op": "staged", "bot_id": spec.bot_id, "at": self._clock.now().timestamp()})
        await session.run()

    async def _command(self, bot_id: str, name: str, args: dict[str, Any]) -> None:
        session = self._sessions.get(bot_id)
        if session is None:
            return  # finished meanwhile: nothing to do
        try:
            await session.command(name, args)
        except SessionCommandError as exc:
            self._send({"op": "command_failed", "bot_id": bot_id, "name": name, "code": exc.code, "detail": exc.detail})


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    runtime = Runtime(writer)
    await runtime.serve(reader)


#: Niceness asked for: runtimes are what must be on time, so at a join instant they go before
#: the API, the database and anything else on the host that is merely busy.
RUNTIME_NICENESS = -5


def _raise_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, RUNTIME_NICENESS)
    except (PermissionError, OSError):
        log.info("cannot raise the runtime's CPU priority (needs CAP_SYS_NICE); running at normal priority")


def run() -> None:
    logging.basicConfig(level=os.environ.get("SUMMON_LOG_LEVEL", "info").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s runtime[%(process)d] %(name)s: %(message)s")
    # The agent decides when we stop; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_priority()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())

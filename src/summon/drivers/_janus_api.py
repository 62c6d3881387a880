"""A small client for the Janus WebRTC server's HTTP API (the REST/long-poll transport).

Janus speaks JSON over ``POST {base}`` (create a session), ``POST {base}/{session}`` (attach
a plugin, keepalive, destroy) and ``POST {base}/{session}/{handle}`` (plugin messages, trickle,
hangup, detach). Everything asynchronous — plugin events, SDP offers, ``webrtcup``, ``hangup``,
``detached``, the session ``timeout`` — arrives on one long poll, ``GET {base}/{session}``,
which Janus holds for up to 30 s. This module keeps that poll running, answers requests by
transaction id, sends a keepalive every :data:`KEEPALIVE_S`, and routes the rest to the handle
it concerns.

Failure model (what the driver needs to tell "meeting over" from "server gone"):

- a request Janus refuses raises :class:`JanusError` (``code`` and ``reason`` from Janus, or
  the plugin's ``error_code``/``error``);
- losing the server — connection refused/reset, HTTP errors, no answer in time, the session
  unknown to Janus (it timed out or Janus restarted) — ends the session: every pending request
  raises :class:`JanusGone` and :attr:`JanusSession.lost` resolves with the reason. The poll
  retries a broken connection :data:`POLL_RETRIES` times (quickly) before giving up, so a
  server that went away is noticed within seconds, never waited on forever.

All waiting uses the injected clock; every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from summon.abc import Clock

__all__ = [
    "KEEPALIVE_S",
    "JanusError",
    "JanusGone",
    "JanusHandle",
    "JanusSession",
    "PluginEvent",
]

log = logging.getLogger(__name__)

#: Janus drops a session after ``session_timeout`` (60 s by default) without a request.
KEEPALIVE_S = 25.0
#: Longest wait for the answer to one request.
REQUEST_TIMEOUT_S = 10.0
#: Janus answers a long poll after at most 30 s (with a keepalive) when nothing happens.
POLL_TIMEOUT_S = 45.0
#: Consecutive failed polls before the server counts as gone, and the pause between them.
POLL_RETRIES = 3
POLL_RETRY_PAUSE_S = 0.5
#: Events one long poll may return at once.
POLL_MAX_EVENTS = 16

#: Janus core error: the session does not exist (expired or never did).
ERROR_NO_SUCH_SESSION = 458
#: Janus core error: the handle does not exist.
ERROR_NO_SUCH_HANDLE = 459


class JanusError(Exception):
    """Janus (or its plugin) refused a request: ``code`` and ``reason`` as Janus gave them."""

    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason
        super().__init__(f"Janus error {code}: {reason}")


class JanusGone(Exception):
    """The Janus session is over: the server is unreachable, or forgot the session."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class PluginEvent:
    """An asynchronous message for a handle: ``kind`` is the Janus message type (``event``,
    ``webrtcup``, ``media``, ``hangup``, ``detached``, ``slowlink``, ``trickle``); ``data``
    the plugin's ``plugindata.data`` (``{}`` for core messages); ``jsep`` the SDP, if any;
    ``raw`` the whole message."""

    kind: str
    data: dict[str, Any]
    jsep: dict[str, Any] | None
    raw: dict[str, Any]


class JanusSession:
    """One Janus session over HTTP. :meth:`create` it, :meth:`attach` plugin handles, and
    :meth:`destroy` it (idempotent, never raises). :attr:`lost` resolves with a reason when
    the session ends without :meth:`destroy`."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, clock: Clock) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._clock = clock
        self.id: int | None = None
        self._handles: dict[int, JanusHandle] = {}
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        #: True when the loss was Janus timing the session out, not a broken connection.
        self.timed_out = False
        #: Keepalives Janus accepted (for inspection).
        self.keepalives = 0

    @property
    def alive(self) -> bool:
        return self.id is not None and not self.lost.done() and not self._closing

    async def create(self) -> None:
        """Create the session and start its long poll and keepalive."""
        answer = await self._post(self._base, {"janus": "create"})
        self.id = int(answer["data"]["id"])
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._poll(), name=f"janus:{self.id}:poll"),
            loop.create_task(self._keepalive(), name=f"janus:{self.id}:keepalive"),
        ]

    async def attach(self, plugin: str) -> JanusHandle:
        """Attach to ``plugin`` (``janus.plugin.videoroom``, ``janus.plugin.textroom``)."""
        answer = await self._post(self._url(), {"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(answer["data"]["id"]), plugin)
        self._handles[handle.id] = handle
        return handle

    async def destroy(self) -> None:
        """Tell Janus the session is over (best effort, bounded) and stop the poll."""
        if self._closing:
            return
        self._closing = True
        if self.id is not None and not self.lost.done():
            with contextlib.suppress(Exception):
                await self._post(self._url(), {"janus": "destroy"}, timeout=2.0, fatal=False)
        await self._stop_tasks()
        self._fail_waiting(JanusGone("session destroyed"))
        if not self.lost.done():
            self.lost.cancel()  # destroyed on purpose: nobody should read a reason

    # -- requests ---------------------------------------------------------------------------------
    def _url(self, handle: int | None = None) -> str:
        if self.id is None:
            raise JanusGone("no session")
        return f"{self._base}/{self.id}" + (f"/{handle}" if handle is not None else "")

    async def _post(
        self,
        url: str,
        body: dict[str, Any],
        *,
        timeout: float = REQUEST_TIMEOUT_S,
        transaction: str | None = None,
        fatal: bool = True,
    ) -> dict[str, Any]:
        """POST one request; the answer (``success``/``ack``), or JanusError / JanusGone. A
        ``fatal`` request that gets no HTTP answer ends the session (the server is gone)."""
        if self.lost.done():
            raise JanusGone(self._lost_reason())
        body = {**body, "transaction": transaction or secrets.token_hex(8)}
        what = body["janus"]
        try:
            async with self._http.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=what
                    )
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = f"{what} request failed: {type(exc).__name__}: {exc}"
            if fatal:
                self._lose(reason)
            raise JanusGone(reason) from None
        if not isinstance(answer, dict):
            raise JanusGone(f"unexpected answer to {what}: {answer!r}")
        if answer.get("janus") == "error":
            error = answer.get("error") or {}
            code, reason = int(error.get("code") or 0), str(error.get("reason") or "")
            if code == ERROR_NO_SUCH_SESSION:
                self._lose(f"Janus no longer knows the session ({reason})")
                raise JanusGone(reason)
            raise JanusError(code, reason)
        return answer

    async def _request(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None,
        *,
        wait_event: bool,
        timeout: float,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send a plugin message. A synchronous plugin answer is returned at once; an ``ack``
        means the answer comes as an event with the same transaction — waited for when
        ``wait_event``. Returns the plugin data and the JSEP; plugin errors raise JanusError."""
        if self.lost.done():
            raise JanusGone(self._lost_reason())
        transaction = secrets.token_hex(8)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = waiter
        message: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            answer = await self._post(self._url(handle), message, transaction=transaction)
            if answer.get("janus") == "success":
                return _plugin_result(answer)
            if not wait_event:
                return {}, None
            event = await self._wait(waiter, timeout, f"answer to {body.get('request')}")
            return _plugin_result(event)
        finally:
            self._waiting.pop(transaction, None)

    async def _wait(
        self, waiter: asyncio.Future[dict[str, Any]], timeout: float, what: str
    ) -> dict[str, Any]:
        alarm = asyncio.ensure_future(self._clock.sleep(timeout))
        watched: set[asyncio.Future[Any]] = {waiter, alarm, self.lost}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            alarm.cancel()
        if waiter.done():
            return waiter.result()
        if self.lost.done():
            raise JanusGone(self._lost_reason())
        raise JanusGone(f"no {what} from Janus within {timeout:g} s")

    # -- the long poll and the keepalive -----------------------------------------------------------
    async def _poll(self) -> None:
        failures = 0
        url = f"{self._url()}?maxev={POLL_MAX_EVENTS}"
        while not self._closing:
            try:
                async with self._http.get(
                    url, timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT_S)
                ) as resp:
                    if resp.status != 200:
                        raise aiohttp.ClientResponseError(
                            resp.request_info, (), status=resp.status, message="long poll"
                        )
                    payload = await resp.json(content_type=None)
                    if not payload:  # Janus answers empty once it dropped the session
                        raise ValueError("empty answer to the long poll")
                    if _is_error(payload) and _error_code(payload) != ERROR_NO_SUCH_SESSION:
                        # Another error at once would make the next poll fail at once too.
                        raise ValueError(f"Janus error on the long poll: {payload.get('error')}")
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures += 1
                if failures >= POLL_RETRIES:
                    self._lose(f"lost the connection to Janus: {type(exc).__name__}: {exc}")
                    return
                await self._clock.sleep(POLL_RETRY_PAUSE_S * failures)
                continue
            failures = 0
            for message in payload if isinstance(payload, list) else [payload]:
                if isinstance(message, dict) and self._dispatch(message):
                    return

    async def _keepalive(self) -> None:
        while not self._closing:
            await self._clock.sleep(KEEPALIVE_S)
            if self._closing:
                return
            try:
                await self._post(self._url(), {"janus": "keepalive"})
                self.keepalives += 1
            except JanusGone:
                return  # _post already reported the loss
            except JanusError as exc:
                log.warning("Janus refused a keepalive: %s", exc)

    def _dispatch(self, message: dict[str, Any]) -> bool:
        """Route one polled message; True when the session is over."""
        kind = message.get("janus")
        if kind == "keepalive":
            return False
        if kind == "timeout":
            self._lose("Janus timed the session out", timeout=True)
            return True
        if kind == "error":
            error = message.get("error") or {}
            if int(error.get("code") or 0) == ERROR_NO_SUCH_SESSION:
                self._lose(f"Janus no longer knows the session ({error.get('reason')})")
                return True
            log.warning("Janus error on the long poll: %s", error)
            return False
        transaction = message.get("transaction")
        waiter = self._waiting.get(transaction) if isinstance(transaction, str) else None
        if waiter is not None and kind == "event" and not waiter.done():
            waiter.set_result(message)
            return False
        sender = message.get("sender")
        handle = self._handles.get(int(sender)) if isinstance(sender, int) else None
        if handle is None:
            return False
        plugindata = message.get("plugindata") or {}
        event = PluginEvent(
            kind=str(kind),
            data=dict(plugindata.get("data") or {}),
            jsep=message.get("jsep"),
            raw=message,
        )
        if kind == "detached":
            self._handles.pop(handle.id, None)
        handle._deliver(event)
        return False

    # -- ending -----------------------------------------------------------------------------------
    def _lose(self, reason: str, *, timeout: bool = False) -> None:
        if self._closing or self.lost.done():
            return
        self.timed_out = timeout
        self.lost.set_result(reason)
        self._fail_waiting(JanusGone(reason))

    def _lost_reason(self) -> str:
        if self.lost.cancelled():
            return "session destroyed"
        return self.lost.result()

    def _fail_waiting(self, exc: Exception) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: nobody may be waiting any more
        self._waiting.clear()

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        pending = [t for t in tasks if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=5.0)


class JanusHandle:
    """One plugin handle. Asynchronous events go to :attr:`on_event` (set it right after
    attaching); requests are answered by :meth:`request`."""

    def __init__(self, session: JanusSession, handle_id: int, plugin: str) -> None:
        self.session = session
        self.id = handle_id
        self.plugin = plugin
        self.on_event: Callable[[PluginEvent], None] | None = None

    async def request(
        self,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        *,
        wait_event: bool = True,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send ``body`` (and ``jsep``) to the plugin; its answer data and JSEP. Raises
        :class:`JanusError` when Janus or the plugin refuses, :class:`JanusGone` when the
        session is over or no answer came within ``timeout``."""
        return await self.session._request(
            self.id, body, jsep, wait_event=wait_event, timeout=timeout
        )

    async def detach(self) -> None:
        """Detach the handle (best effort, bounded; never raises)."""
        self.session._handles.pop(self.id, None)
        if self.session.alive:
            with contextlib.suppress(Exception):
                await self.session._post(
                    self.session._url(self.id), {"janus": "detach"}, timeout=2.0, fatal=False
                )

    def _deliver(self, event: PluginEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("handling a Janus %s event failed", event.kind)


def _is_error(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("janus") == "error"


def _error_code(payload: dict[str, Any]) -> int:
    return int((payload.get("error") or {}).get("code") or 0)


def _plugin_result(message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A plugin's answer: its data and JSEP; raises JanusError when the plugin refused."""
    data = dict((message.get("plugindata") or {}).get("data") or {})
    if "error_code" in data:
        raise JanusError(int(data.get("error_code") or 0), str(data.get("error") or ""))
    return data, message.get("jsep")

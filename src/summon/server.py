"""The composition root: settings → store → context → roles, and their start and stop.

``summon serve`` runs every role in one process; ``--roles`` runs a subset. Components are built
here, at start-up, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

import uvicorn
from fastapi import FastAPI

from summon.abc import Clock
from summon.api.app import create_app
from summon.calendars.sync import CalendarSyncer
from summon.clock import SystemClock
from summon.secretbox import SecretBox, load_or_create_keys
from summon.services import keys
from summon.services.context import Context
from summon.fleet.agent import FleetAgent
from summon.fleet.scheduler import Scheduler
from summon.settings import ALL_ROLES, ROLE_ALIASES, Settings
from summon.store.migrate import migrate
from summon.store.sqlalchemy import SqlAlchemyStore
from summon.webhooks.realtime import RealtimeRelay
from summon.webhooks.sender import WebhookSender
from summon.webhooks.httptools_transport import HttptoolsTransport

log = logging.getLogger("summon")


def prepare_data_dir(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)


def build_context(settings: Settings, clock: Clock | None = None) -> Context:
    return Context(
        store=SqlAlchemyStore(settings.sqlalchemy_url),
        clock=clock or SystemClock(),
        settings=settings,
        secrets=SecretBox(load_or_create_keys(settings.secret_key, settings.data_dir)),
    )


@asynccontextmanager
async def running(settings: Settings, clock: Clock | None = None, *, announce_key: bool = True) -> AsyncIterator[Context]:
    """Migrate, open the store, bootstrap the default workspace; close everything on exit."""
    prepare_data_dir(settings)
    await migrate(settings.sqlalchemy_url)
    ctx = build_context(settings, clock)
    await ctx.store.start()
    try:
        key = await keys.bootstrap(ctx)
        if key is not None and announce_key:
            print(
                "Created workspace 'default'. Its API key is shown only this once:\n"
                f"    {key}\n"
                "Use it as: Authorization: Token <key>",
                flush=True,
            )
        yield ctx
    finally:
        await ctx.store.close()


def build_app(ctx: Context) -> FastAPI:
    return create_app(ctx)


def normalise_roles(roles: Sequence[str]) -> list[str]:
    named = [ROLE_ALIASES.get(r, r) for r in roles]
    unknown = sorted(set(named) - set(ALL_ROLES))
    if unknown:
        raise SystemExit(f"unknown roles: {', '.join(unknown)} (known: {', '.join(ALL_ROLES)}, scheduler)")
    return sorted(set(named))


@asynccontextmanager
async def fleet(ctx: Context) -> AsyncIterator[FleetAgent]:
    """This host's fleet agent and its scheduler, for the duration of the block."""
    settings = ctx.settings
    if ctx.store.dialect == "sqlite":
        # One process serves a SQLite file: whatever agent was here before is gone, and its
        # bots can be recovered now instead of after the agent timeout.
        await ctx.store.stop_agents(None, ctx.clock.now())
    agent = FleetAgent(ctx, slots_per_runtime=settings.slots_per_runtime, pool_size=settings.pool_size,
                       max_bots=settings.max_bots, platform_slots=settings.runtime_slots)
    block = settings.webhook_block_private
    relay = RealtimeRelay(ctx, HttptoolsTransport(public_only=block), bots=agent.hosted_bot, block_private=block)
    agent.listeners.append(relay.on_event)
    agent.released.append(relay.bot_released)
    await agent.start()
    scheduler = Scheduler(ctx, agent)
    await scheduler.start()
    try:
        yield agent
    finally:
        await scheduler.stop()
        await agent.stop()
        await relay.stop()


@asynccontextmanager
async def webhook_sender(ctx: Context) -> AsyncIterator[WebhookSender]:
    block = ctx.settings.webhook_block_private
    sender = WebhookSender(ctx, HttptoolsTransport(public_only=block), block_private=block)
    if ctx.store.dialect == "sqlite":
        # One process serves a SQLite file: deliveries claimed before a crash are nobody's now.
        await ctx.store.release_deliveries(None)
    await sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


@asynccontextmanager
async def calendar_syncer(ctx: Context) -> AsyncIterator[CalendarSyncer]:
    syncer = CalendarSyncer(ctx)
    await syncer.start()
    try:
        yield syncer
    finally:
        await syncer.stop()


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: it re-raises a captured SIGTERM when it returns,
    which would end the process before the fleet has stopped in order. We handle signals."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_stop_signal(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


async def serve(settings: Settings, roles: Sequence[str] = ALL_ROLES) -> None:
    roles = normalise_roles(roles)
    async with running(settings) as ctx, AsyncExitStack() as stack:
        if "fleet" in roles:
            await stack.enter_async_context(fleet(ctx))
        if "webhooks" in roles:
            await stack.enter_async_context(webhook_sender(ctx))
        if "calendars" in roles:
            await stack.enter_async_context(calendar_syncer(ctx))
        if "mail" in roles:  # -- mailboxes --
            await stack.enter_async_context(mail_receivers(ctx))
        if "api" not in roles:
            log.info("summon running roles %s", ",".join(roles))
            stop = asyncio.Event()
            _on_stop_signal(stop.set)
            await stop.wait()
            return
        app = build_app(ctx)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            lifespan="on",
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            http="httptools",
            server_header=False,
        )
        server = _Server(config)
        _on_stop_signal(lambda: setattr(server, "should_exit", True))
        log.info("summon %s on http://%s:%s (roles: %s)", "serving", settings.host, settings.port, ",".join(roles))
        await server.serve()


def run_serve(settings: Settings, roles: Sequence[str]) -> None:
    try:
        import uvloop

        uvloop.run(serve(settings, roles))
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(serve(settings, roles))


# -- mailboxes ------------------------------------------------------------------------------------
@asynccontextmanager
async def mail_receivers(ctx: Context) -> AsyncIterator[None]:
    """The mail role: the SMTP receiver (unless ``SUMMON_SMTP_PORT=0``), the IMAP poller (when
    ``SUMMON_IMAP_URL`` is set) and the periodic pass over recurring invitations.

    The SMTP port is a default (2525) that several ``summon serve`` on one host would share:
    when it is taken and was not configured explicitly, the service logs it and runs without
    the SMTP receiver; an explicitly configured port that cannot be bound stops the start."""
    from summon.mail.imap import ImapPoller, parse_imap_url
    from summon.mail.refresher import InviteRefresher
    from summon.mail.smtp import SmtpReceiver, tls_context

    settings = ctx.settings
    async with AsyncExitStack() as stack:
        if settings.smtp_port:
            tls = None
            if settings.smtp_tls_cert and settings.smtp_tls_key:
                tls = tls_context(settings.smtp_tls_cert, settings.smtp_tls_key)
            receiver = SmtpReceiver(
                ctx, settings.smtp_host, settings.smtp_port, hostname=settings.smtp_hostname,
                max_message_bytes=settings.smtp_max_message_bytes, tls=tls,
                require_tls=settings.smtp_require_tls,
            )
            try:
                await receiver.start()
            except OSError as exc:
                if "smtp_port" in settings.model_fields_set:
                    raise
                log.warning("SMTP receiver not started: %s:%s is not available (%s); "
                            "set SUMMON_SMTP_PORT", settings.smtp_host, settings.smtp_port, exc)
            else:
                stack.push_async_callback(receiver.stop)
        if settings.imap_url:
            poller = ImapPoller(
                ctx, parse_imap_url(settings.imap_url), address=settings.imap_address,
                interval_s=settings.imap_poll_interval_s,
                max_message_bytes=settings.smtp_max_message_bytes,
            )
            await poller.start()
            stack.push_async_callback(poller.stop)
        refresher = InviteRefresher(ctx)
        await refresher.start()
        stack.push_async_callback(refresher.stop)
        yield

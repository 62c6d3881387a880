"""Shared fixtures. The store fixtures are parametrized over SQLite and PostgreSQL: every test
that uses them is one contract test run against both adapters.

PostgreSQL: ``SUMMON_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``) is used
only to create and drop a database of our own per test session. Without a reachable server the
PostgreSQL cases are skipped — unless ``SUMMON_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cryptography.fernet import Fernet

from summon.clock import FakeClock
from summon.secretbox import SecretBox
from summon.domain.fleet import Agent
from summon.services import keys
from summon.services.context import Context
from summon.settings import Settings
from summon.store.migrate import migrate
from summon.store.sqlalchemy import SqlAlchemyStore
from summon.store.tables import metadata

PG_ADMIN_URL = os.environ.get("SUMMON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("SUMMON_REQUIRE_POSTGRES") == "1"
#: CI sets it: every test must run there (Janus, Chromium, Dovecot, espeak-ng are installed), so
#: a test that skips itself — a tool missing, a namespace that cannot be made — fails instead.
NO_SKIPS = os.environ.get("SUMMON_NO_SKIPS") == "1"
T = TypeVar("T")
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(PG_ADMIN_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a loop of its own, in a thread: session fixtures are set up
    lazily, sometimes from inside a test's running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _with_database(url: str, name: str) -> str:
    base = url.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this session's own, dropped at the end."""
    name = f"summon_test_{uuid.uuid4().hex[:12]}"
    try:
        run_blocking(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = _with_database(PG_ADMIN_URL, name)
    run_blocking(migrate(url))
    yield url
    run_blocking(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating once is faster)."""
    path = tmp_path_factory.mktemp("template") / "summon.db"
    run_blocking(migrate(f"sqlite:///{path}"))
    return path


async def _truncate(url: str) -> None:
    store = SqlAlchemyStore(url)
    await store.start()
    names = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))
    try:
        await store.run_write(lambda conn: conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE")))
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "summon.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    await _truncate(url)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlAlchemyStore]:
    s = SqlAlchemyStore(store_url)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limits=False, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def ctx(store: SqlAlchemyStore, clock: FakeClock, settings: Settings) -> Context:
    return Context(store=store, clock=clock, settings=settings, secrets=SecretBox([Fernet.generate_key().decode()]))


@pytest.fixture
async def api_key(ctx: Context) -> str:
    _, plaintext = await keys.create_api_key(ctx, "acme")
    return plaintext


async def register_agent(ctx: Context, slots_free: int = 10_000) -> Agent:
    """What a running fleet agent does: announce itself with its free warm slots."""
    now = ctx.clock.now()
    agent = Agent(uuid.uuid4(), "test-agent", ("sandbox",), now, now, slots_free, slots_free)
    await ctx.store.register_agent(agent)
    return agent


@pytest.fixture
async def warm_agent(ctx: Context) -> Agent:
    return await register_agent(ctx)


@pytest.fixture
async def client(ctx: Context, api_key: str, warm_agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app (in process), authenticated for workspace ``acme``."""
    from summon.api.app import create_app

    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Token {api_key}"}
    ) as c:
        yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but SUMMON_NO_SKIPS=1 requires every test to run: {report.longrepr}"

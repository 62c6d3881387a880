"""Applying migrations: ``summon migrate`` and ``summon serve`` on start.

Safe with several nodes starting at once on PostgreSQL: an advisory lock lets one migrate while
the others wait, then find nothing left to do.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from summon.store.runners import make_runner

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x53554D4D  # "SUMM"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema."""
    runner = make_runner(url)
    await runner.start()
    try:
        await runner.write(_upgrade)
    finally:
        await runner.close()


async def current_revision(url: str) -> str | None:
    runner = make_runner(url)
    await runner.start()
    try:
        return await runner.read(_current)
    finally:
        await runner.close()

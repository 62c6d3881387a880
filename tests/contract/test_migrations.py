"""The migrations produce exactly the models' schema, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from summon.store.migrate import current_revision, head_revision, migrate
from summon.store.sqlalchemy import SqlAlchemyStore
from summon.store.tables import metadata


async def test_migrated_schema_matches_models(store_url: str) -> None:
    store = SqlAlchemyStore(store_url)
    await store.start()
    try:
        diff = await store.run_read(
            lambda conn: compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        )
    finally:
        await store.close()
    assert diff == []


async def test_migrate_is_idempotent_and_at_head(store_url: str) -> None:
    await migrate(store_url)
    await migrate(store_url)
    assert await current_revision(store_url) == head_revision()

"""Alembic environment. Summon runs migrations itself (``summon migrate``, and ``serve`` on
start) through :func:`summon.store.migrate.migrate`, which hands us an open connection."""

from __future__ import annotations

from alembic import context

from summon.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("run migrations with `summon migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: migrations always run on a connection handed over by `store.migrate`."""

from __future__ import annotations

from alembic import context

from cloudassist.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not supported
    raise RuntimeError("run migrations through cloudassist.store.migrate")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
context.run_migrations()

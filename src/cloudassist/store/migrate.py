"""Bring a database to the newest schema, safely when several servers start at once.

An empty database gets the schema of `tables.py` in one step and is stamped with the newest
revision (the test suite proves the migrations produce exactly that schema); a database at the
newest revision is left alone; anything else is upgraded by Alembic. Alembic is imported only in
that last case, which keeps a server's start well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudassist.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest revision in migrations/versions (a test checks it against Alembic's own view).
HEAD: Final = "0008"

#: An arbitrary constant: the PostgreSQL advisory lock that serialises migrations.
_LOCK_KEY: Final = 0x0C10DA55


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class SchemaTooNew(Exception):
    """The database was migrated by a newer cloudassist: this one does not know its schema."""


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    revision = current_revision(connection)
    if revision == HEAD:
        return
    if revision is not None and revision > HEAD:  # revisions are zero-padded numbers
        raise SchemaTooNew(
            f"the database is at schema revision {revision}, which a newer cloudassist made; this one knows "
            f"up to {HEAD}: run the newer version, or restore the backup taken before the upgrade (docs/deploy.md)"
        )
    if revision is None and not inspect(connection).get_table_names():
        metadata.create_all(connection)
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": HEAD})
        return
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Run every pending migration in one transaction."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
        async with conn.begin():
            await conn.run_sync(_upgrade)

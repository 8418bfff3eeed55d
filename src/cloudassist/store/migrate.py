"""Bring a database to the newest schema with Alembic, safely when several servers start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
#: An arbitrary constant: the PostgreSQL advisory lock that serialises migrations.
_LOCK_KEY = 0x0C10DA55


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Run every pending migration in one transaction."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
        async with conn.begin():
            await conn.run_sync(_upgrade)

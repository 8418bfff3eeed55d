"""What every repository shares: its connection and the dialect-neutral upsert-or-skip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection


class Repository:
    """A set of queries about one noun, run on the transaction's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    async def insert_or_skip(self, table: Table, values: dict[str, Any]) -> bool:
        """Insert `values` unless the primary key exists; True when the row was inserted."""
        if self.dialect == "postgresql":  # each dialect's module is imported only when used
            from sqlalchemy.dialects import postgresql

            result = await self.conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects import sqlite

            result = await self.conn.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
        return bool(result.rowcount)

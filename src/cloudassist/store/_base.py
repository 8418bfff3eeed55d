"""What every repository shares: its connection and the dialect-neutral upsert-or-skip."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

#: Namespaces of `Repository.serialise` (one per kind of key, so keys of two kinds never collide).
LOCK_TAGS: Final = 1
LOCK_KEPT_COMMANDS: Final = 2


class Repository:
    """A set of queries about one noun, run on the transaction's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    async def serialise(self, namespace: int, key: str) -> None:
        """Wait until no other transaction holds (`namespace`, `key`), then hold it until this one ends.

        PostgreSQL: a transaction-scoped advisory lock on (namespace, hashtext(key)) — the two-key lock
        space, apart from the migrations' one-key lock; a hash collision only makes two keys wait for each
        other. SQLite needs nothing: a writing transaction holds the database's write lock from BEGIN.
        Take several keys in a fixed order (sorted), so two transactions cannot wait for each other.
        """
        if self.dialect == "postgresql":
            await self.conn.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:key))"), {"namespace": namespace, "key": key}
            )

    async def insert_or_skip(self, table: Table, values: dict[str, Any]) -> bool:
        """Insert `values` unless the primary key exists; True when the row was inserted."""
        if self.dialect == "postgresql":  # each dialect's module is imported only when used
            from sqlalchemy.dialects import postgresql

            result = await self.conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects import sqlite

            result = await self.conn.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
        return bool(result.rowcount)

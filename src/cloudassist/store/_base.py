"""What every repository shares: its connection and the dialect-neutral upsert-or-skip."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any, Final, Protocol

from sqlalchemy import Boolean, ColumnElement, Select, Table, literal_column, text
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

#: Namespaces of `Repository.serialise` (one per kind of key, so keys of two kinds never collide).
LOCK_TAGS: Final = 1
LOCK_KEPT_COMMANDS: Final = 2


_WORD = re.compile(r"^[A-Za-z]+$")


def one_of(column: ColumnElement[Any], words: Sequence[str]) -> ColumnElement[bool]:
    """`column IN ('a', 'b')` with the values in the SQL itself: for statements built once, whose IN list
    then needs no expanding per call. Only for fixed words of our own (statuses), never for input."""
    assert all(_WORD.match(w) for w in words), words
    return column.in_([literal_column(f"'{w}'") for w in words])


class member_of(ColumnElement[bool]):
    """`column IN (query)`; on PostgreSQL `column = ANY(ARRAY(query))`, which the planner cannot turn into a
    join: the query runs once, then its values are looked up in an index on `column`. (Without statistics,
    as on a table just filled, PostgreSQL estimates one row on either side of `IN (query)` and joins them
    in a nested loop that runs the query once per row of the table: seconds at 30,000 rows.)"""

    __visit_name__ = "member_of"
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's cache key)
        ("column", InternalTraversal.dp_clauseelement),
        ("query", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], query: Select[Any]) -> None:
        self.column = column
        self.query = query


@compiles(member_of)
def _member_in(element: member_of, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(element.query), **kw)


@compiles(member_of, "postgresql")
def _member_any(element: member_of, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY(ARRAY({compiler.process(element.query.scalar_subquery(), **kw)}))"


class Conn(Protocol):
    """What repositories use of a connection: SQLAlchemy's AsyncConnection (PostgreSQL), or the inline
    connection of SQLite (store/inline.py)."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[*tuple[Any, ...]]: ...

    async def scalar(self, statement: Any, parameters: Any = None) -> Any: ...


class Repository:
    """A set of queries about one noun, run on the transaction's connection."""

    def __init__(self, conn: Conn) -> None:
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
        return bool((await self.conn.execute(skip_existing(table, self.dialect), values)).rowcount)


@functools.cache
def skip_existing(table: Table, dialect: str) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` into `table` in `dialect`, built once; executed with a row's values."""
    if dialect == "postgresql":  # each dialect's module is imported only when used
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()

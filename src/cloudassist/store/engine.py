"""Engines for the two databases: SQLite (WAL, one writer at a time) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> AsyncEngine:
    """An async engine for `url`, configured for its dialect.

    SQLite: WAL journal, foreign keys on, a 10 s busy timeout so several processes can share the
    file, and transactions that write start with `BEGIN IMMEDIATE` so two writers never deadlock
    upgrading a read lock. PostgreSQL: a small pool that checks connections before use.
    """
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 10})
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_inline_engine(url: str, busy_ms: int) -> Engine:
    """A synchronous engine on the same SQLite file as `url` (an aiosqlite URL), for statements run on the
    event loop's thread (store/inline.py); its busy handler gives up after `busy_ms`."""
    engine = create_engine(url.replace("sqlite+aiosqlite:", "sqlite:", 1), pool_size=8, max_overflow=32)
    _configure_sqlite(engine, busy_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_ms: int = 10_000) -> None:
    engine.dialect.statement_compiler = _hinted_compiler(engine.dialect.statement_compiler)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver; "begin" below issues BEGIN itself
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":  # only a new file is switched (it takes a lock)
            _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # LIKE matches case-sensitively, as on PostgreSQL: `Name=deploy*` never matches "Deploy-web"
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _hinted_compiler(base: type[SQLCompiler]) -> type[SQLCompiler]:
    """`base` (SQLite's statement compiler), rendering a table hint of `Select.with_hint(table, text,
    dialect_name="sqlite")` after the table's name, as SQLAlchemy does for MySQL's index hints: the store pins
    a query's index with `INDEXED BY` (store/results.py). SQLAlchemy's own SQLite compiler drops such hints."""
    if base in _HINTED.values():
        return base
    return _HINTED.setdefault(base, type(f"Hinted{base.__name__}", (base,), {"get_from_hint_text": _hint_text}))


def _hint_text(self: SQLCompiler, table: Any, text: str | None) -> str | None:
    return text


_HINTED: dict[type[SQLCompiler], type[SQLCompiler]] = {}


def _enter_wal(cursor: Any, deadline_s: float = 10.0) -> None:
    """Switch the file to WAL. Changing the journal mode needs an exclusive lock and SQLite answers
    SQLITE_BUSY at once, without its busy handler, while other connections are opening the same new
    file, so the switch is retried here for up to `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

"""SQLite statements run on the event loop's own thread, behind the async methods repositories call.

SQLite answers an indexed statement in microseconds, and a connection in WAL mode never waits to read.
Through the async driver (aiosqlite) every statement instead travels to a worker thread and back, which
costs ~250 µs of CPU a statement (thread hand-off, GIL, wake-up pipe) against ~25 µs run in place (measured
with SQLAlchemy Core on this machine). So the store runs SQLite inline: `InlineConnection` gives the
repositories the same `await conn.execute(...)` over a synchronous SQLAlchemy connection. The one wait
SQLite can impose, another process holding the write lock, is met by `begin_immediate`, which retries
with `asyncio.sleep` instead of blocking the loop in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.exc import OperationalError

#: How long SQLite's own busy handler may block the loop before `begin_immediate` yields and retries.
BUSY_MS = 20


class InlineConnection:
    """The async face (`execute`, `scalar`, `dialect`) of a synchronous SQLAlchemy connection."""

    __slots__ = ("sync",)

    def __init__(self, sync: Connection) -> None:
        self.sync = sync

    @property
    def dialect(self) -> Dialect:
        return self.sync.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[*tuple[Any, ...]]:
        return self.sync.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync.scalar(statement, parameters)


async def begin_immediate(conn: Connection, deadline_s: float = 10.0) -> None:
    """`BEGIN IMMEDIATE` (through the engine's begin hook) on `conn`, waiting asynchronously while another
    process holds the write lock, for up to `deadline_s` (then the OperationalError stands)."""
    deadline = time.monotonic() + deadline_s
    delay = 0.001
    while True:
        try:
            conn.begin()
            return
        except OperationalError as exc:
            locked = isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)
            if not locked or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)

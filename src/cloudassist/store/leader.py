"""One leader per database: the server process that runs the jobs that must run once (the deadline sweeper,
the retention job, the nonce purge), however many servers share the store.

PostgreSQL: a session advisory lock held on a connection of its own. When the leader dies its connection
closes and the lock is free; the others try every `every` seconds, so one takes over within that. SQLite
(servers sharing one file on one machine): an exclusive `flock` on a file beside the database, released by
the kernel when the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("cloudassist.leader")

#: The advisory lock's key (one-key space, apart from the migrations' lock and the two-key locks of tags).
LEADER_KEY: Final = 0x0C1EADE5


class Leadership:
    """Whether this process leads; `keep_trying` holds or seeks the lock until cancelled."""

    def __init__(self, url: str, every: float = 2.0) -> None:
        self.url = url
        self.every = every
        self.leading = asyncio.Event()
        self._conn: Any = None
        self._fd: int | None = None

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def keep_trying(self) -> None:
        try:
            while True:
                try:
                    held = await self._hold()
                except Exception as exc:  # the database is away: not leading until it is back
                    log.warning("leadership check failed (%s); retrying", type(exc).__name__)
                    await self._drop()
                    held = False
                if held and not self.leading.is_set():
                    log.info("this server now runs the sweeper and the retention job (leader)")
                    self.leading.set()
                elif not held and self.leading.is_set():
                    log.warning("this server lost the leadership")
                    self.leading.clear()
                await asyncio.sleep(self.every)
        finally:
            await self._drop()

    async def _hold(self) -> bool:
        if self.url.startswith("sqlite"):
            return self._hold_file()
        import asyncpg  # type: ignore[import-untyped]

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(_plain(self.url), timeout=10)
            return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY))
        if self.leading.is_set():  # still connected, so still holding it
            await self._conn.fetchval("SELECT 1", timeout=10)
            return True
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY))

    def _hold_file(self) -> bool:
        if self._fd is not None:
            return True
        path = Path(_sqlite_path(self.url) + ".leader")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.leading.clear()


def _plain(url: str) -> str:
    """`postgresql+asyncpg://…` (SQLAlchemy's form) as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1].split("?", 1)[0]

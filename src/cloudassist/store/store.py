"""The Store: one interface to persistence; a transaction (`Tx`) exposes one repository per noun."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudassist.errors import ApiError
from cloudassist.metrics import db_time
from cloudassist.store import migrate
from cloudassist.store._base import Conn
from cloudassist.store.accounts import Accounts
from cloudassist.store.activations import Activations
from cloudassist.store.assistant_settings import AssistantSettingsRepo
from cloudassist.store.commands import Commands
from cloudassist.store.committer import GroupCommit
from cloudassist.store.counts import Deltas
from cloudassist.store.engine import is_sqlite, make_engine, make_inline_engine
from cloudassist.store.files import Files
from cloudassist.store.history import History
from cloudassist.store.inline import BUSY_MS, InlineConnection, begin_immediate
from cloudassist.store.instances import Instances
from cloudassist.store.invocations import Invocations
from cloudassist.store.logins import Logins
from cloudassist.store.nonces import Nonces
from cloudassist.store.plugins import Plugins
from cloudassist.store.reserve import DiskReserve, is_disk_full
from cloudassist.store.results import Results
from cloudassist.store.sessions import TerminalSessions
from cloudassist.store.tags import Tags
from cloudassist.store.tokens import ClientTokens

T = TypeVar("T")

#: How long a transaction waits for a database that refuses connections or cannot be reached before its
#: request is answered ServiceUnavailable: PostgreSQL restarting takes a few seconds.
CONNECT_WAIT_SECONDS: Final = 5.0


class RoomMade(ApiError):
    """ServiceUnavailable from a write that met a full disk and gave the disk reserve back: the same write, applied
    again, has room (the group commit does so once; a caller of `write()` gets the 503)."""

    worth_retrying = True


@dataclass(frozen=True)
class Tx:
    """A transaction and the repositories bound to it."""

    conn: Conn
    _deferred: dict[Hashable, Callable[[Tx], Awaitable[None]]] = field(default_factory=dict, compare=False)
    #: what this transaction changed in the counters of execution records, applied last (store/counts.py)
    counts: Deltas = field(default_factory=Deltas, compare=False)

    def defer(self, key: Hashable, work: Callable[[Tx], Awaitable[None]]) -> None:
        """Run `work` once, just before this transaction commits, however many times it is deferred under
        `key` (e.g. a task's roll-up after several of its records changed in one batch)."""
        self._deferred.setdefault(key, work)

    async def finish(self) -> None:
        while self._deferred:
            key = next(iter(self._deferred))
            await self._deferred.pop(key)(self)
        await self.counts.flush(self.conn)  # last: the counter rows are the last rows it locks

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.conn)

    @property
    def nonces(self) -> Nonces:
        return Nonces(self.conn)

    @property
    def commands(self) -> Commands:
        return Commands(self.conn)

    @property
    def invocations(self) -> Invocations:
        return Invocations(self.conn)

    @property
    def results(self) -> Results:
        return Results(self.conn, self.counts)

    @property
    def history(self) -> History:
        return History(self.conn)

    @property
    def tags(self) -> Tags:
        return Tags(self.conn)

    @property
    def activations(self) -> Activations:
        return Activations(self.conn)

    @property
    def instances(self) -> Instances:
        return Instances(self.conn)

    @property
    def tokens(self) -> ClientTokens:
        return ClientTokens(self.conn)

    @property
    def files(self) -> Files:
        return Files(self.conn)

    @property
    def logins(self) -> Logins:
        return Logins(self.conn)

    @property
    def sessions(self) -> TerminalSessions:
        return TerminalSessions(self.conn)

    @property
    def assistant_settings(self) -> AssistantSettingsRepo:
        return AssistantSettingsRepo(self.conn)

    @property
    def plugins(self) -> Plugins:
        return Plugins(self.conn)


class Store:
    """Persistence of accounts, commands, invocations, results, activations and instances."""

    def __init__(self, engine: AsyncEngine, reserve: DiskReserve | None = None) -> None:
        self.engine = engine
        self.url = str(engine.url)
        #: Space beside a SQLite database given back when a write meets a full disk (store/reserve.py).
        self.reserve = reserve
        #: SQLite has one writer at a time. Writers of this process queue here, in order, instead of each
        #: taking a pooled connection and waiting in SQLite's busy handler, which sleeps (up to 100 ms a
        #: time) rather than waking when the lock is free; other processes still meet the busy handler.
        self._writer = asyncio.Lock() if is_sqlite(self.url) else None
        #: SQLite runs on the loop's thread (store/inline.py); `engine` stays for migrations and tools.
        self.inline = make_inline_engine(self.url, BUSY_MS) if is_sqlite(self.url) else None
        self._group = GroupCommit(self.write)

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True, reserve_bytes: int = 0) -> Store:
        """Connect to `url` and, unless told otherwise, migrate it to the newest schema. With `reserve_bytes`, a
        SQLite database keeps that much disk space in reserve beside it (store/reserve.py)."""
        engine = make_engine(url)
        if upgrade:
            try:
                await migrate.upgrade(engine)
            except BaseException:
                await engine.dispose()
                raise
        reserve = None
        database = engine.url.database
        if reserve_bytes > 0 and is_sqlite(url) and database and database != ":memory:":
            reserve = DiskReserve(Path(database).parent, reserve_bytes)
            reserve.ensure()
        return cls(engine, reserve)

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.url)

    async def close(self) -> None:
        if self.inline is not None:
            self.inline.dispose()
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A read-only transaction: one snapshot for all its statements (SQLite: a read transaction in WAL mode;
        PostgreSQL: REPEATABLE READ, which never fails a transaction that only reads), so e.g. a page and its
        TotalCount agree."""
        if self.inline is not None:
            with db_time("read"), self._translated_sync(), self.inline.connect() as sync, sync.begin():
                yield Tx(InlineConnection(sync))
            return
        async with self._translated(), self._connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            with db_time("read"):
                async with conn.begin():
                    yield Tx(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A transaction that writes; on SQLite it holds the write lock from its first statement."""
        if self.inline is not None:
            async with self._exclusive(), self._translated():
                with db_time("write"), self.inline.connect() as plain:
                    sync = plain.execution_options(sqlite_begin="IMMEDIATE")
                    await begin_immediate(sync)
                    try:
                        tx = Tx(InlineConnection(sync))
                        yield tx
                        await tx.finish()
                    except BaseException:
                        sync.rollback()
                        raise
                    sync.commit()
            return
        async with self._exclusive(), self._translated(), self._connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            with db_time("write"):
                async with conn.begin():
                    tx = Tx(conn)
                    yield tx
                    await tx.finish()

    async def batch(self, work: Callable[[Tx], Awaitable[T]], key: str = "") -> T:
        """Apply a small write in a transaction it may share with other concurrent writes (group commit); its
        result once committed. `work` must do only database work, and may run twice (store/committer.py)."""
        return await self._group.run(work, key)

    @property
    def group(self) -> GroupCommit[Tx]:
        return self._group

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        if self._writer is None:
            yield
            return
        async with self._writer:
            yield

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection. A database that cannot be reached or refuses the connection (PostgreSQL shutting
        down or starting up, `57P03`, comes as a plain DBAPIError) is an outage, whatever its error says: it is
        tried again for up to CONNECT_WAIT_SECONDS (a restart takes a few), then it is ServiceUnavailable.
        Nothing has run on a connection that was never made, so trying again is always safe."""
        deadline, pause = time.monotonic() + CONNECT_WAIT_SECONDS, 0.05
        while True:
            try:
                conn = await self.engine.connect()
                break
            except (DBAPIError, OSError) as exc:
                if time.monotonic() + pause > deadline:
                    raise ApiError.of("ServiceUnavailable") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
        try:
            yield conn
        finally:
            await asyncio.shield(conn.close())

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        """Database outages become ServiceUnavailable at this boundary, never a traceback."""
        with self._translated_sync():
            yield

    @contextmanager
    def _translated_sync(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
                raise
            if self.reserve is not None and is_disk_full(exc) and self.reserve.release():
                raise RoomMade.of("ServiceUnavailable") from exc
            raise ApiError.of("ServiceUnavailable") from exc

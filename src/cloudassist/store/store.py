"""The Store: one interface to persistence; a transaction (`Tx`) exposes one repository per noun."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cloudassist.errors import ApiError
from cloudassist.store import migrate
from cloudassist.store.accounts import Accounts
from cloudassist.store.activations import Activations
from cloudassist.store.commands import Commands
from cloudassist.store.engine import is_sqlite, make_engine
from cloudassist.store.files import Files
from cloudassist.store.history import History
from cloudassist.store.instances import Instances
from cloudassist.store.invocations import Invocations
from cloudassist.store.nonces import Nonces
from cloudassist.store.results import Results
from cloudassist.store.tags import Tags
from cloudassist.store.tokens import ClientTokens


@dataclass(frozen=True)
class Tx:
    """A transaction and the repositories bound to it."""

    conn: AsyncConnection

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
        return Results(self.conn)

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


class Store:
    """Persistence of accounts, commands, invocations, results, activations and instances."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url = str(engine.url)

    @classmethod
    async def open(cls, url: str, *, upgrade: bool = True) -> Store:
        """Connect to `url` and, unless told otherwise, migrate it to the newest schema."""
        engine = make_engine(url)
        if upgrade:
            await migrate.upgrade(engine)
        return cls(engine)

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.url)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A read-only transaction (a consistent snapshot on both databases)."""
        async with self._translated(), self.engine.connect() as conn, conn.begin():
            yield Tx(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A transaction that writes; on SQLite it holds the write lock from its first statement."""
        async with self._translated(), self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                yield Tx(conn)

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        """Database outages become ServiceUnavailable at this boundary, never a traceback."""
        try:
            yield
        except (OperationalError, DBAPIError, OSError) as exc:
            if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) and not exc.connection_invalidated:
                raise
            raise ApiError.of("ServiceUnavailable") from exc

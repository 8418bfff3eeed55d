"""Fixtures shared by every tier: fresh databases on SQLite and PostgreSQL, stores, contexts."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.counts import drift
from cloudassist.store.store import Store
from cloudassist.testing import FixedClock, pg_database


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start, however pytest itself was started. A background job of a
    non-interactive shell (`pytest … &` in a script) begins with SIGINT ignored; its children inherit that
    through exec, and a Python child that starts with SIGINT ignored never raises KeyboardInterrupt, so the tests
    that interrupt a CLI (`run`, `session --port-forward`) would wait for its exit in vain. A handled SIGINT is
    back to the default in a child, as in the foreground job of an interactive shell."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards), as a postgresql:// URL."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each engine, as the user would pass it to `--db` ("" = SQLite default)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(db: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store; after the test, its counters of execution records must equal the records (every write
    of the test went through the store's write path, which keeps them: store/counts.py)."""
    opened = await Store.open(database_url(db, tmp_path))
    try:
        yield opened
        assert await counter_drift(opened) == {}, "result_counts differs from invocation_results"
    finally:
        await opened.close()


async def counter_drift(store: Store) -> dict[tuple[int, str, str, str], tuple[int, int]]:
    """The counters of `result_counts` that differ from a count of the rows: {key: (kept, counted)}."""
    async with store.read() as tx:
        return await drift(tx.conn)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ctx(store: Store, clock: FixedClock, tmp_path: Path) -> Context:
    return Context(store, clock, Settings(data_dir=tmp_path))

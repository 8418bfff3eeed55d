"""Fixtures shared by every tier: fresh databases on SQLite and PostgreSQL, stores, contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.store import Store
from cloudassist.testing import FixedClock, pg_database


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
    opened = await Store.open(database_url(db, tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ctx(store: Store, clock: FixedClock, tmp_path: Path) -> Context:
    return Context(store, clock, Settings(data_dir=tmp_path))

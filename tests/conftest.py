"""Fixtures shared by every tier: fresh databases on SQLite and PostgreSQL, stores, contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.counts import DIMENSIONS
from cloudassist.store.store import Store
from cloudassist.store.tables import invocation_results, result_counts
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
    """A fresh store; after the test, its counters of execution records must equal the records (every write
    of the test went through the store's write path, which keeps them: store/counts.py)."""
    opened = await Store.open(database_url(db, tmp_path))
    try:
        yield opened
        assert await counter_drift(opened) == {}, "result_counts differs from invocation_results"
    finally:
        await opened.close()


async def counter_drift(store: Store) -> dict[tuple[Any, ...], tuple[int, int]]:
    """The counters of `result_counts` that differ from a count of the rows: {key: (kept, counted)}."""
    R, K = invocation_results.c, result_counts.c
    async with store.read() as tx:
        kept = {
            (int(a), r, d, v): int(n)
            for a, r, d, v, n in await tx.conn.execute(select(K.account_id, K.region_id, K.dim, K.value, K.n))
        }
        counted: dict[tuple[Any, ...], int] = {}
        for dim, column in DIMENSIONS.items():
            stmt = select(R.account_id, R.region_id, R[column], func.count()).group_by(
                R.account_id, R.region_id, R[column]
            )
            for a, r, v, n in await tx.conn.execute(stmt):
                counted[(int(a), r, dim, v)] = int(n)
    return {
        k: (kept.get(k, 0), counted.get(k, 0))
        for k in kept.keys() | counted.keys()
        if kept.get(k, 0) != counted.get(k, 0)
    }


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ctx(store: Store, clock: FixedClock, tmp_path: Path) -> Context:
    return Context(store, clock, Settings(data_dir=tmp_path))

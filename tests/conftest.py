"""Fixtures shared by every tier: fresh databases on SQLite and PostgreSQL, stores, contexts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store.store import Store
from cloudassist.testing import TEST_PG, FixedClock


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(TEST_PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards), as a postgresql:// URL."""
    name = f"ca_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield TEST_PG.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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

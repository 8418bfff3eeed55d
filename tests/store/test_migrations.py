"""The Alembic migrations build exactly the schema of `store.tables`, idempotently and under concurrency.

`Store.open` has two ways to bring a database to the newest schema: an empty database gets
`tables.metadata.create_all` and is stamped with the newest revision (the fast path); anything else
is upgraded by Alembic. Both must end in the same schema, so these tests run the Alembic migrations
themselves as well as `Store.open`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from cloudassist.settings import database_url
from cloudassist.store import migrate
from cloudassist.store.store import Store
from cloudassist.store.tables import metadata
from cloudassist.testing import TEST_PG

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _diff(sync_conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(sync_conn, opts={"compare_type": True}), metadata))


async def schema_diff(store: Store) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match `tables.metadata`."""
    async with store.engine.connect() as conn:
        return await conn.run_sync(_diff)


def _describe(sync_conn: Connection) -> dict[str, Any]:
    inspector = inspect(sync_conn)
    return {
        name: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
            sorted((i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(name)),
            inspector.get_pk_constraint(name)["constrained_columns"],
            sorted((fk["name"] or "", tuple(fk["constrained_columns"])) for fk in inspector.get_foreign_keys(name)),
        )
        for name in sorted(inspector.get_table_names())
    }


async def describe(store: Store) -> dict[str, Any]:
    """Every table of the database with its columns, indexes, primary key and foreign keys."""
    async with store.engine.connect() as conn:
        return await conn.run_sync(_describe)


async def versions(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return [row[0] for row in await conn.execute(text("SELECT version_num FROM alembic_version"))]


def alembic_head() -> str:
    revision = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert revision is not None
    return revision


def _alembic_upgrade(sync_conn: Connection) -> None:
    command.upgrade(migrate.alembic_config(sync_conn), "head")


async def alembic_upgrade(store: Store) -> None:
    """Run the Alembic migrations to head (never the fast path), in one write transaction."""
    async with store.engine.connect() as conn:
        conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
        async with conn.begin():
            await conn.run_sync(_alembic_upgrade)


@pytest.fixture
async def migrated(db: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh database brought to head by the Alembic migrations alone."""
    store = await Store.open(database_url(db, tmp_path), upgrade=False)
    try:
        await alembic_upgrade(store)
        yield store
    finally:
        await store.close()


def test_head_constant_is_alembic_head() -> None:
    """`migrate.HEAD`, which the fast path stamps, is the newest revision Alembic knows."""
    assert alembic_head() == migrate.HEAD


async def test_alembic_migrations_equal_tables_metadata(migrated: Store) -> None:
    """After the Alembic migrations, autogenerate finds nothing to change: the migrations create exactly
    the tables, columns, types, indexes and keys of `tables.metadata`."""
    diff = await schema_diff(migrated)
    assert diff == [], "the migrations differ from tables.metadata:\n" + "\n".join(map(str, diff))


async def test_store_open_schema_equals_tables_metadata(store: Store) -> None:
    """A fresh database opened with Store.open matches `tables.metadata` and is stamped at head."""
    diff = await schema_diff(store)
    assert diff == [], "Store.open's schema differs from tables.metadata:\n" + "\n".join(map(str, diff))
    assert await versions(store) == [alembic_head()]


@pytest.fixture
async def other_url(db: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second fresh database on the same engine as `db`, as an async URL."""
    if db.startswith("sqlite"):
        yield database_url(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
        return
    name = f"ca_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(database_url(TEST_PG, tmp_path), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield database_url(TEST_PG.rsplit("/", 1)[0] + f"/{name}", tmp_path)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_alembic_and_store_open_build_the_same_database(migrated: Store, other_url: str) -> None:
    """A database migrated by Alembic (as an older server left it) and one created by Store.open have the
    same tables, columns, indexes and keys, so a server may treat both alike once they are at head."""
    opened = await Store.open(other_url)
    try:
        created = await describe(opened)
    finally:
        await opened.close()
    assert await describe(migrated) == created


async def test_migrated_database_is_at_head(migrated: Store) -> None:
    """A database migrated by Alembic records exactly one version, the newest revision."""
    assert await versions(migrated) == [alembic_head()]


async def test_alembic_twice_is_a_no_op(migrated: Store) -> None:
    """Running the Alembic migrations again on a database at head changes neither schema nor version."""
    before = await describe(migrated)
    await alembic_upgrade(migrated)
    assert await describe(migrated) == before
    assert await versions(migrated) == [alembic_head()]


async def test_store_open_of_an_alembic_database_leaves_it_alone(migrated: Store) -> None:
    """Store.open of a database Alembic brought to head changes nothing and keeps its rows."""
    async with migrated.write() as tx:
        account = await tx.accounts.ensure("alice", NOW)
    before = await describe(migrated)
    again = await Store.open(migrated.url)
    try:
        assert await describe(again) == before
        async with again.read() as tx:
            assert await tx.accounts.find("alice") == account
    finally:
        await again.close()


async def test_opening_twice_is_a_no_op(db: str, tmp_path: Path) -> None:
    """Opening (and so migrating) an up-to-date database again changes neither schema nor data, and
    running the Alembic migrations on it afterwards is a no-op too."""
    url = database_url(db, tmp_path)
    first = await Store.open(url)
    try:
        async with first.write() as tx:
            account = await tx.accounts.ensure("alice", NOW)
            await tx.accounts.allocate_seq(account, 5)
        schema = await describe(first)
    finally:
        await first.close()

    second = await Store.open(url)
    try:
        await migrate.upgrade(second.engine)
        await alembic_upgrade(second)
        assert await describe(second) == schema
        assert await versions(second) == [alembic_head()]
        async with second.read() as tx:
            assert await tx.accounts.find("alice") == account
            assert await tx.accounts.current_seq(account) == 5
    finally:
        await second.close()


async def test_concurrent_opens_of_a_fresh_database_both_succeed(db: str, tmp_path: Path) -> None:
    """Two servers starting at once on the same empty database both open it without error (PostgreSQL
    serialises them with an advisory lock, SQLite with BEGIN IMMEDIATE), and the schema is built once."""
    url = database_url(db, tmp_path)
    stores = await asyncio.gather(Store.open(url), Store.open(url))
    try:
        for store in stores:
            assert await versions(store) == [alembic_head()]
            assert await schema_diff(store) == []
        for i, store in enumerate(stores):
            async with store.write() as tx:
                await tx.accounts.ensure(f"account-{i}", NOW)
        async with stores[0].read() as tx:
            assert set((await tx.accounts.names()).values()) == {"account-0", "account-1"}
    finally:
        for store in stores:
            await store.close()


async def test_many_concurrent_opens_of_a_fresh_database_succeed(db: str, tmp_path: Path) -> None:
    """Five simultaneous Store.open calls on one empty database all succeed and see the same schema."""
    url = database_url(db, tmp_path)
    stores = await asyncio.gather(*(Store.open(url) for _ in range(5)))
    try:
        schemas = [await describe(store) for store in stores]
        assert all(schema == schemas[0] for schema in schemas)
        assert await versions(stores[0]) == [alembic_head()]
    finally:
        for store in stores:
            await store.close()

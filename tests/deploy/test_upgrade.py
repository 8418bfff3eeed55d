"""Upgrading (docs/deploy.md): a server opening a database of an older schema migrates it on start and keeps its
data; one opening a database a newer cloudassist migrated refuses it in one line and leaves it untouched. Both
engines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from cloudassist.services.access import AccessService
from cloudassist.services.context import Context
from cloudassist.settings import Settings, database_url
from cloudassist.store import migrate
from cloudassist.store.store import Store
from cloudassist.testing import FixedClock

OLDER = "0004"


async def _revision(store: Store) -> str | None:
    async with store.engine.connect() as conn:
        return await conn.run_sync(migrate.current_revision)


async def _at_older_revision_with_a_key(url: str) -> None:
    """A database brought by the migrations to OLDER only (as an older cloudassist left it), holding a key."""
    store = await Store.open(url, upgrade=False)
    try:
        async with store.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                await conn.run_sync(lambda sync: command.upgrade(migrate.alembic_config(sync), OLDER))
            async with conn.begin():
                await conn.execute(text(
                    "INSERT INTO accounts (name, creation_time) VALUES ('default', :now)"), {"now": datetime.now(UTC)})
        assert await _revision(store) == OLDER
    finally:
        await store.close()


async def test_a_server_migrates_an_older_database_on_start_and_keeps_its_data(db: str, tmp_path: Path) -> None:
    url = database_url(db, tmp_path)
    await _at_older_revision_with_a_key(url)
    store = await Store.open(url)  # what `cloudassist server` does on start
    try:
        assert await _revision(store) == migrate.HEAD
        access = AccessService(Context(store, FixedClock(), Settings(data_dir=tmp_path, db=db)))
        made = await access.create_key()  # the old account is there, and the new schema takes writes
        assert made.access_key_id.startswith("LTAI")
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM accounts WHERE name = 'default'"))).scalar() == 1
    finally:
        await store.close()


async def test_a_database_a_newer_version_migrated_is_refused_and_left_alone(db: str, tmp_path: Path) -> None:
    url = database_url(db, tmp_path)
    store = await Store.open(url)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9001'"))
    await store.close()
    with pytest.raises(migrate.SchemaTooNew, match=f"revision 9001, which a newer cloudassist made; this one knows "
                                                    f"up to {migrate.HEAD}"):
        await Store.open(url)
    store = await Store.open(url, upgrade=False)
    try:
        assert await _revision(store) == "9001"
    finally:
        await store.close()

"""Group commit (Store.batch): concurrent small writes share transactions, each caller is answered only once
its write has committed, a failing write fails only its own caller, and deferred work runs once per
transaction. On SQLite and on PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloudassist.settings import database_url
from cloudassist.store.store import Store, Tx
from cloudassist.store.tables import nonces

LATER = datetime(2030, 1, 1, tzinfo=UTC)


async def count_nonces(store: Store) -> int:
    async with store.read() as tx:
        return int(await tx.conn.scalar(select(func.count()).select_from(nonces)) or 0)


async def test_concurrent_writes_share_transactions_and_all_commit(store: Store) -> None:
    async def claim(i: int) -> bool:
        return await store.batch(lambda tx: tx.nonces.claim("k", f"n{i}", LATER))

    before = store.group.batches
    answers = await asyncio.gather(*(claim(i) for i in range(200)))
    assert answers == [True] * 200
    assert await count_nonces(store) == 200
    # 200 writes arrived together: far fewer transactions than writes
    assert store.group.batches - before < 50


async def test_a_caller_is_answered_only_after_its_write_is_visible_to_others(store: Store) -> None:
    seen_by_reader: list[int] = []

    async def write_then_read(i: int) -> None:
        await store.batch(lambda tx: tx.nonces.claim("k", f"v{i}", LATER))
        async with store.read() as tx:  # another connection: sees only what has committed
            row = await tx.conn.scalar(select(func.count()).select_from(nonces).where(nonces.c.nonce == f"v{i}"))
        seen_by_reader.append(int(row or 0))

    await asyncio.gather(*(write_then_read(i) for i in range(50)))
    assert seen_by_reader == [1] * 50


async def test_a_failing_write_fails_only_its_caller(store: Store) -> None:
    class Boom(Exception):
        pass

    async def bad(tx: Tx) -> bool:
        await tx.nonces.claim("k", "bad", LATER)  # rolled back with the failure
        raise Boom

    results = await asyncio.gather(
        *(store.batch(lambda tx, i=i: tx.nonces.claim("k", f"ok{i}", LATER)) for i in range(20)),
        store.batch(bad),
        *(store.batch(lambda tx, i=i: tx.nonces.claim("k", f"ok{i + 20}", LATER)) for i in range(20)),
        return_exceptions=True,
    )
    assert [type(r) for r in results].count(Boom) == 1
    assert [r for r in results if not isinstance(r, Boom)] == [True] * 40
    assert await count_nonces(store) == 40
    async with store.read() as tx:
        assert await tx.conn.scalar(select(func.count()).select_from(nonces).where(nonces.c.nonce == "bad")) == 0


async def test_a_replay_within_one_batch_is_refused(store: Store) -> None:
    """Two writes of the same nonce in one shared transaction: the first wins, the second sees the conflict."""
    answers = await asyncio.gather(*(store.batch(lambda tx: tx.nonces.claim("k", "same", LATER)) for _ in range(10)))
    assert sorted(answers) == [False] * 9 + [True]


async def test_deferred_work_runs_once_per_transaction_before_commit(store: Store) -> None:
    runs: list[str] = []

    async def note(tx: Tx) -> None:
        runs.append("deferred")
        await tx.nonces.claim("k", "deferred", LATER)

    async def write(tx: Tx, i: int) -> bool:
        tx.defer("same key", note)
        return await tx.nonces.claim("k", f"d{i}", LATER)

    async with store.write() as tx:
        for i in range(5):
            await write(tx, i)
    assert runs == ["deferred"]
    assert await count_nonces(store) == 6


async def test_writes_wait_for_another_process_holding_the_sqlite_write_lock(tmp_path: Path) -> None:
    """Another process (here a raw connection) holds SQLite's write lock for a while: the store's writer waits
    for it without blocking the event loop, then commits."""
    store = await Store.open(database_url(f"sqlite:///{tmp_path / 'locked.db'}", tmp_path))
    try:
        other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        running = asyncio.ensure_future(ticker())
        writing = asyncio.ensure_future(store.batch(lambda tx: tx.nonces.claim("k", "late", LATER)))
        await asyncio.sleep(0.5)
        assert not writing.done()
        assert ticks >= 20, "the event loop went on while the writer waited"
        other.execute("COMMIT")
        other.close()
        assert await asyncio.wait_for(writing, 5) is True
        running.cancel()
    finally:
        await store.close()


async def test_a_lone_write_is_applied_again_only_when_its_error_is_worth_it(store: Store) -> None:
    """A lone write whose transaction failed with an error marked `worth_retrying` (the store just gave its disk
    reserve back) is applied once more and its caller gets the result; any other error reaches the caller at once,
    with the write applied once."""
    tries: list[str] = []

    class MadeRoom(Exception):
        worth_retrying = True

    class Plain(Exception):
        pass

    async def flaky(tx: Tx, name: str, error: type[Exception]) -> bool:
        tries.append(name)
        if tries.count(name) == 1:
            raise error
        return await tx.nonces.claim("k", name, LATER)

    assert await store.batch(lambda tx: flaky(tx, "room", MadeRoom)) is True
    assert tries == ["room", "room"]
    with pytest.raises(Plain):
        await store.batch(lambda tx: flaky(tx, "plain", Plain))
    assert tries.count("plain") == 1

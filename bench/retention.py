#!/usr/bin/env python
"""How fast the retention job deletes expired execution records, and how long it holds the write lock.

For each engine this script opens a fresh store (migrations run), seeds `--records` execution records
30 days old (beyond the two-week window) under tasks of `--per-task` records each, measures the
machine's commit rate (single-row write transactions: on SQLite with the server's own pragmas — WAL,
synchronous=NORMAL — on a file in the same directory; on PostgreSQL through asyncpg), then runs one
pass of the retention job while an API-like writer takes the write lock in a loop, and prints

    rows/s deleted (wall clock, the job's pauses included) and rows/s while holding the lock,
    the number of batches and the longest write-lock hold of the job,
    the longest and median wait of the concurrent writer, and the longest concurrent read.

    .venv/bin/python bench/retention.py [--records 100000] [--batch 1000] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select

from cloudassist.clock import SystemClock
from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.services.retention import RetentionJob
from cloudassist.settings import Settings, database_url
from cloudassist.store.store import Store
from cloudassist.store.tables import invocation_results, invocations
from cloudassist.testing import TEST_PG, register_instance, under_contention

SPEC = CommandSpec(name="bench", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo hi",
                   working_dir="", timeout=60, enable_parameter=False, launcher="", resource_group_id="")
ONCE = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                  username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                  launcher=None, container_id="", container_name="", resource_group_id="")


def sqlite_commit_rate(directory: Path, seconds: float = 2.0) -> float:
    """Single-row write transactions per second on a fresh SQLite file with the server's pragmas."""
    conn = sqlite3.connect(directory / "commit-rate.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    count, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('x')")
        conn.execute("COMMIT")
        count += 1
    rate = count / (time.perf_counter() - started)
    conn.close()
    return rate


async def pg_commit_rate(url: str, seconds: float = 2.0) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, v text)")
        count, deadline = 0, time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            async with conn.transaction():
                await conn.execute("INSERT INTO t (v) VALUES ('x')")
            count += 1
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def seed(ctx: Context, records: int, per_task: int) -> Scope:
    """One real task as a template, then `records` copies of its record 30 days old (numbered before it)."""
    instance = await register_instance(ctx)
    async with ctx.store.read() as tx:
        account_id = await tx.accounts.find("default")
    assert account_id is not None
    scope = Scope(account_id, "cn-hangzhou")
    started = await InvocationService(ctx).run_command(scope, SPEC, ONCE, Targets([instance]), (),
                                                       keep_command=False, idempotency=None)
    await InvocationService(ctx).stop_invocation(scope, started.invoke_id, [])
    created = ctx.clock.now() - timedelta(days=30)
    async with ctx.store.read() as tx:
        task = dict((await tx.conn.execute(
            select(invocations).where(invocations.c.invoke_id == started.invoke_id))).one()._mapping)
        record = dict((await tx.conn.execute(
            select(invocation_results).where(invocation_results.c.invoke_id == started.invoke_id))).one()._mapping)
    del record["result_id"]
    tasks = -(-records // per_task)
    chunk = 5000
    for first_task in range(0, tasks, chunk // per_task or 1):
        last_task = min(tasks, first_task + (chunk // per_task or 1))
        task_rows, record_rows = [], []
        for t in range(first_task, last_task):
            invoke_id = f"t-bench-{t:08d}"
            task_rows.append({**task, "invoke_id": invoke_id, "seq": -tasks + t, "creation_time": created})
            for r in range(per_task):
                n = t * per_task + r
                if n >= records:
                    break
                record_rows.append({**record, "invoke_id": invoke_id, "instance_id": f"mi-bench-{r}",
                                    "seq": -records + n, "creation_time": created, "status": "Success",
                                    "record_status": "Finished"})
        async with ctx.store.write() as tx:
            await tx.conn.execute(invocations.insert(), task_rows)
            await tx.conn.execute(invocation_results.insert(), record_rows)
    return scope


async def measure(ctx: Context, scope: Scope) -> dict[str, Any]:
    """One retention pass while a writer and a reader loop; the job's and the writer's timings."""
    done, seen = await under_contention(ctx, scope.account_id, RetentionJob(ctx).run_once())
    async with ctx.store.read() as tx:
        left = int(await tx.conn.scalar(select(func.count()).select_from(invocation_results)) or 0)
    return {"pass": done, "writes": seen.writes, "reads": seen.reads, "left": left}


async def bench(engine: str, records: int, per_task: int, batch: int, tmp: Path, pg_admin: str) -> None:
    pg_name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    if engine == "sqlite":
        db = ""
        commit_rate = sqlite_commit_rate(tmp)
    else:
        admin = await asyncpg.connect(pg_admin)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        db = pg_admin.rsplit("/", 1)[0] + f"/{pg_name}"
        commit_rate = await pg_commit_rate(db)
    data_dir = tmp / engine
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir, db=db, retention_batch_size=batch)
    store = await Store.open(database_url(db, data_dir))
    try:
        ctx = Context(store, SystemClock(), settings)
        print(f"[{engine}] seeding {records:,} expired records …", file=sys.stderr, flush=True)
        began = time.perf_counter()
        scope = await seed(ctx, records, per_task)
        print(f"[{engine}] seeded in {time.perf_counter() - began:.1f} s; deleting …", file=sys.stderr, flush=True)
        got = await measure(ctx, scope)
    finally:
        await store.close()
        if engine == "postgresql":
            admin = await asyncpg.connect(pg_admin)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
    done, writes, reads = got["pass"], got["writes"], got["reads"]
    print(f"\n{engine}: {records:,} records in tasks of {per_task}, batches of {batch}")
    print(f"  machine commit rate (1-row write transactions): {commit_rate:,.0f}/s")
    print(f"  deleted {done.records:,} records and {done.tasks:,} tasks in {done.seconds:.2f} s "
          f"({got['left']} records left)")
    print(f"  rows/s deleted: {done.records / done.seconds:,.0f} wall clock (pauses included), "
          f"{done.records / done.held:,.0f} while holding the lock ({done.held:.2f} s held in all)")
    print(f"  write transactions of the job: {done.batches}, longest lock hold {done.longest_hold * 1000:.1f} ms")
    print(f"  concurrent writer: {len(writes)} writes, median wait {statistics.median(writes) * 1000:.1f} ms, "
          f"longest {max(writes) * 1000:.1f} ms")
    print(f"  concurrent reader: {len(reads)} reads, longest {max(reads) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--per-task", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--engines", default="sqlite")
    parser.add_argument("--pg-url", default=TEST_PG)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            asyncio.run(bench(engine.strip(), args.records, args.per_task, args.batch, Path(tmp), args.pg_url))


if __name__ == "__main__":
    main()

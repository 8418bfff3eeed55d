"""Counters of execution records: TotalCount of DescribeInvocationResults without counting the records.

An account keeps up to 100,000 records (the seed's retention ceiling). Counting those a broad filter
selects (no filter, InvokeRecordStatus=Finished, a popular CommandId) reads tens of thousands of index
entries: 10-20 ms on either database. So `result_counts` holds, per account and region, how many rows
of `invocation_results` there are per status, per command and per instance, and a count is that number
less the rows the retention window hides (`store.results`), which the retention job keeps few.

How the counters stay exact:

- Every write of `invocation_results` goes through `store.results.Results` (insert, a change of status,
  a task's new command) or `store.retention.Retention.delete`. Each adds what it changed to the
  transaction's `Deltas`, from values the database itself returned (`RETURNING`, or rows read under lock),
  never from what the caller believed. Other columns (output, times, `seq`) are not counted.
- `Tx.finish` applies them just before the commit, after the deferred work: one upsert per changed counter,
  summed over the whole transaction (a group commit of 300 agent reports moves each status counter once),
  in key order. So on PostgreSQL the counter rows are the last rows a transaction locks, always in the same
  order: two writers never wait for each other in a cycle, and a counter row stays locked only for the
  commit. A rolled-back transaction takes its deltas with it.
- `recount` rebuilds every counter from the rows (the migration that added them, and tools that write
  rows directly, like the benchmarks' seeding).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, literal, select, text
from sqlalchemy.engine import Connection

from cloudassist.store._base import Conn
from cloudassist.store.tables import invocation_results, result_counts

#: The counted columns of `invocation_results`, by the name of their dimension in `result_counts.dim`.
STATUS: Final = "status"
COMMAND: Final = "command"
INSTANCE: Final = "instance"
DIMENSIONS: Final = {STATUS: "status", COMMAND: "command_id", INSTANCE: "instance_id"}

Key = tuple[int, str, str, str]
K = result_counts.c


class Deltas:
    """A transaction's changes to the counters, summed per (account_id, region_id, dim, value)."""

    __slots__ = ("_emptied", "_n")

    def __init__(self) -> None:
        self._n: dict[Key, int] = {}
        #: counters that rows were deleted from: removed once they reach zero (ids of commands and instances
        #: come and go; their counters must not pile up)
        self._emptied: set[Key] = set()

    def add(self, account_id: int, region_id: str, dim: str, value: str, n: int) -> None:
        key = (account_id, region_id, dim, value)
        self._n[key] = self._n.get(key, 0) + n

    def rows(self, account_id: int, region_id: str, status: str, command_id: str, instance_id: str, n: int) -> None:
        """`n` rows with these values were inserted (n < 0: deleted)."""
        self.add(account_id, region_id, STATUS, status, n)
        self.add(account_id, region_id, COMMAND, command_id, n)
        self.add(account_id, region_id, INSTANCE, instance_id, n)
        if n < 0:
            self._emptied.update(
                (account_id, region_id, dim, value)
                for dim, value in ((STATUS, status), (COMMAND, command_id), (INSTANCE, instance_id))
            )

    def moved(self, account_id: int, region_id: str, dim: str, old: str, new: str, n: int = 1) -> None:
        """`n` rows changed their value of `dim` from `old` to `new`."""
        if old != new:
            self.add(account_id, region_id, dim, old, -n)
            self.add(account_id, region_id, dim, new, n)

    async def flush(self, conn: Conn) -> None:
        """Apply the changes (in key order) and forget them."""
        changes = sorted((key, n) for key, n in self._n.items() if n)
        emptied = sorted(self._emptied)
        self._n.clear()
        self._emptied.clear()
        if changes:
            await conn.execute(
                _upsert(conn.dialect.name),
                [{"account_id": a, "region_id": r, "dim": d, "value": v, "n": n} for (a, r, d, v), n in changes],
            )
        if emptied:
            await conn.execute(_PRUNE, [{"p_a": a, "p_r": r, "p_d": d, "p_v": v} for a, r, d, v in emptied])


@functools.cache
def _upsert(dialect: str) -> Any:
    """`INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` in `dialect`, built once."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(result_counts)
        return pg.on_conflict_do_update(index_elements=list(result_counts.primary_key), set_={"n": K.n + pg.excluded.n})
    from sqlalchemy.dialects import sqlite

    lite = sqlite.insert(result_counts)
    return lite.on_conflict_do_update(index_elements=list(result_counts.primary_key), set_={"n": K.n + lite.excluded.n})


_PRUNE = delete(result_counts).where(
    K.account_id == bindparam("p_a"),
    K.region_id == bindparam("p_r"),
    K.dim == bindparam("p_d"),
    K.value == bindparam("p_v"),
    K.n == 0,
)


def _recount_statements() -> Iterable[Any]:
    R = invocation_results.c
    yield delete(result_counts)
    for dim, column in DIMENSIONS.items():
        values = R[column]
        yield result_counts.insert().from_select(
            ["account_id", "region_id", "dim", "value", "n"],
            select(R.account_id, R.region_id, literal(dim), values, func.count()).group_by(
                R.account_id, R.region_id, values
            ),
        )


def recount(conn: Connection) -> None:
    """Rebuild every counter from the rows of `invocation_results`, in the caller's transaction (a
    synchronous connection: a migration's). On PostgreSQL, writers of the records wait until it commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE invocation_results IN SHARE MODE"))
    for stmt in _recount_statements():
        conn.execute(stmt)


async def recount_in(conn: Conn) -> None:
    """`recount` through a store transaction (`tx.conn`): for tools that write rows directly."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE invocation_results IN SHARE MODE"))
    for stmt in _recount_statements():
        await conn.execute(stmt)


async def drift(conn: Conn) -> dict[Key, tuple[int, int]]:
    """The counters that differ from a count of the rows, as {key: (kept, counted)}: empty while every write
    went through the store (the test suites check it after every test)."""
    R = invocation_results.c
    kept = {
        (int(a), r, d, v): int(n)
        for a, r, d, v, n in await conn.execute(select(K.account_id, K.region_id, K.dim, K.value, K.n))
    }
    counted: dict[Key, int] = {}
    for dim, column in DIMENSIONS.items():
        stmt = select(R.account_id, R.region_id, R[column], func.count()).group_by(R.account_id, R.region_id, R[column])
        for a, r, v, n in await conn.execute(stmt):
            counted[(int(a), r, dim, v)] = int(n)
    return {
        k: (kept.get(k, 0), counted.get(k, 0))
        for k in kept.keys() | counted.keys()
        if kept.get(k, 0) != counted.get(k, 0)
    }

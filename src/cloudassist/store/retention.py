"""The queries of the retention job: find the oldest execution records, delete a batch of them by key.

Each table of execution records is a `Trimmed`: its primary key, its sequence and time columns, and
how its oldest rows are found cheaply. `TRIMMED` lists them; a new history table is one more entry.

    by_region=True   the table has an `(account_id, region_id, seq, …)` index: the job walks each
                     account's regions (found by a loose index scan, one index seek per region) from
                     the smallest `seq`, so every read is O(batch) whatever the table's size
    by_region=False  the oldest rows are read in primary-key order (insertion order, hence time order)

Reads happen in read transactions; only the deletion of one batch, by primary key, takes the write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table, delete, func, select

from cloudassist.clock import utc
from cloudassist.store._base import Conn, Repository
from cloudassist.store.counts import Deltas
from cloudassist.store.tables import (
    accounts,
    client_tokens,
    commands,
    file_results,
    file_tasks,
    invocation_history,
    invocation_results,
    invocations,
    tags,
)


@dataclass(frozen=True)
class Trimmed:
    """A table of execution records the retention job trims."""

    table: Table
    key: str
    by_region: bool
    #: a column that must hold one of `done` for a row to be deleted (records still running are kept)
    status: str | None = None
    done: frozenset[str] = frozenset()
    #: whether `result_counts` counts its rows (store/counts.py): a deletion takes them off
    counted: bool = False

    def col(self, name: str) -> Column[Any]:
        return self.table.c[name]


#: Every per-instance status after which a record never changes (reference §5.3).
TERMINAL = frozenset({"Success", "Failed", "Invalid", "Aborted", "Error", "Timeout", "Cancelled", "Terminated"})

#: The tables of execution records, trimmed in this order; each has account_id, region_id, seq,
#: creation_time and invoke_id columns. Tasks (`invocations`) left with no record in any of them go too.
TRIMMED: tuple[Trimmed, ...] = (
    Trimmed(invocation_results, "result_id", by_region=True, status="status", done=TERMINAL, counted=True),
    Trimmed(invocation_history, "history_id", by_region=False),
)


@dataclass(frozen=True)
class Row:
    key: int
    account_id: int
    seq: int
    creation_time: datetime
    invoke_id: str
    finished: bool


class Retention(Repository):
    def __init__(self, conn: Conn, counts: Deltas | None = None) -> None:
        super().__init__(conn)
        #: the transaction's changes to the counters of records: needed to delete counted rows
        self.counts = counts

    async def newest_seqs(self) -> dict[int, int]:
        """Each account's newest execution-record number (the count window ends this many back)."""
        rows = await self.conn.execute(select(accounts.c.account_id, accounts.c.result_seq))
        return {int(r.account_id): int(r.result_seq) for r in rows}

    async def regions(self, table: Table, account_id: int) -> list[str]:
        """The regions an account has rows of `table` in (the table has an index on (account_id, region_id,
        …)): a loose index scan, one `min()` seek per region."""
        found: list[str] = []
        column = table.c.region_id
        while True:
            stmt = select(func.min(column)).where(table.c.account_id == account_id)
            if found:
                stmt = stmt.where(column > found[-1])
            region = await self.conn.scalar(stmt)
            if region is None:
                return found
            found.append(str(region))

    async def oldest(
        self,
        t: Trimmed,
        limit: int,
        *,
        account_id: int | None = None,
        region_id: str | None = None,
        after: int | None = None,
    ) -> list[Row]:
        """The oldest `limit` rows: of one account and region by `seq` after `after` (by_region), else by key
        after `after`."""
        key, seq = t.col(t.key), t.col("seq")
        columns = [key, t.col("account_id"), seq, t.col("creation_time"), t.col("invoke_id")]
        if t.status is not None:
            columns.append(t.col(t.status))
        stmt = select(*columns)
        if t.by_region:
            stmt = stmt.where(t.col("account_id") == account_id, t.col("region_id") == region_id)
            if after is not None:
                stmt = stmt.where(seq > after)
            stmt = stmt.order_by(seq)
        else:
            if after is not None:
                stmt = stmt.where(key > after)
            stmt = stmt.order_by(key)
        return [
            Row(
                key=int(r[0]),
                account_id=int(r[1]),
                seq=int(r[2]),
                creation_time=utc(r[3]),
                invoke_id=str(r[4]),
                finished=t.status is None or r[5] in t.done,
            )
            for r in await self.conn.execute(stmt.limit(limit))
        ]

    async def delete(self, t: Trimmed, keys: Sequence[int]) -> int:
        if not keys:
            return 0
        stmt = delete(t.table).where(t.col(t.key).in_(list(keys)))
        if not t.counted:
            return int((await self.conn.execute(stmt)).rowcount)
        assert self.counts is not None, "counted rows are deleted in a write transaction's Retention(conn, counts)"
        c = t.table.c
        gone = (
            await self.conn.execute(stmt.returning(c.account_id, c.region_id, c.status, c.command_id, c.instance_id))
        ).all()
        for account_id, region_id, status, command_id, instance_id in gone:
            self.counts.rows(int(account_id), region_id, status, command_id, instance_id, -1)
        return len(gone)

    async def ended_tasks(self, invoke_ids: Sequence[str], ended: frozenset[str]) -> set[str]:
        """Those of the tasks whose roll-up is one of `ended` (the task is over)."""
        i = invocations.c
        rows = await self.conn.execute(
            select(i.invoke_id).where(i.invoke_id.in_(list(set(invoke_ids))), i.status.in_(sorted(ended)))
        )
        return {r[0] for r in rows}

    async def drop_empty_tasks(self, invoke_ids: Sequence[str]) -> int:
        """Delete those tasks (and their tags) that have no execution record left in any trimmed table."""
        if not invoke_ids:
            return 0
        wanted = list(dict.fromkeys(invoke_ids))
        alive: set[str] = set()
        for t in TRIMMED:
            rows = await self.conn.execute(select(t.col("invoke_id")).where(t.col("invoke_id").in_(wanted)).distinct())
            alive.update(r[0] for r in rows)
        empty = [i for i in wanted if i not in alive]
        if not empty:
            return 0
        await self.conn.execute(delete(tags).where(tags.c.resource_type == "invocation", tags.c.resource_id.in_(empty)))
        return int((await self.conn.execute(delete(invocations).where(invocations.c.invoke_id.in_(empty)))).rowcount)

    async def unkept_commands(
        self, account_id: int, region_id: str, before: datetime, ended: Sequence[str], limit: int
    ) -> list[str]:
        """Commands RunCommand did not keep, made before `before`, that no task still running uses (left by a
        DryRun, or by tasks that ended before they were deleted at the end of their task)."""
        c, i = commands.c, invocations.c
        running = select(i.invoke_id).where(
            i.account_id == c.account_id,
            i.region_id == c.region_id,
            i.command_id == c.command_id,
            i.status.not_in(list(ended)),
        )
        stmt = (
            select(c.command_id)
            .where(
                c.account_id == account_id,
                c.region_id == region_id,
                c.kept.is_(False),
                c.creation_time < before,
                ~running.exists(),
            )
            .limit(limit)
        )
        return [row[0] for row in await self.conn.execute(stmt)]

    async def delete_commands(self, command_ids: Sequence[str]) -> int:
        if not command_ids:
            return 0
        await self.conn.execute(
            delete(tags).where(tags.c.resource_type == "command", tags.c.resource_id.in_(list(command_ids)))
        )
        stmt = delete(commands).where(commands.c.command_id.in_(list(command_ids)), commands.c.kept.is_(False))
        return int((await self.conn.execute(stmt)).rowcount)

    async def old_tokens(self, before: datetime, limit: int) -> list[tuple[int, str, str]]:
        c = client_tokens.c
        rows = await self.conn.execute(
            select(c.account_id, c.action, c.token)
            .where(c.creation_time < before)
            .order_by(c.creation_time)
            .limit(limit)
        )
        return [(int(r.account_id), r.action, r.token) for r in rows]

    async def delete_tokens(self, keys: Sequence[tuple[int, str, str]]) -> int:
        c = client_tokens.c
        deleted = 0
        for account_id, action, token in keys:
            result = await self.conn.execute(
                delete(client_tokens).where(c.account_id == account_id, c.action == action, c.token == token)
            )
            deleted += int(result.rowcount)
        return deleted

    async def old_file_tasks(self, account_id: int, region_id: str, before: datetime, limit: int) -> list[str]:
        """The oldest file tasks of an account's region created before `before` whose every record has ended
        (walked by the task index, oldest first)."""
        f, r = file_tasks.c, file_results.c
        open_ = select(r.result_id).where(r.invoke_id == f.invoke_id, r.status.in_(["Pending", "Running"]))
        stmt = (
            select(f.invoke_id)
            .where(f.account_id == account_id, f.region_id == region_id, f.creation_time < before, ~open_.exists())
            .order_by(f.seq)
            .limit(limit)
        )
        return [row[0] for row in await self.conn.execute(stmt)]

    async def delete_file_tasks(self, invoke_ids: Sequence[str]) -> int:
        """Delete file tasks with their per-instance records and tags; how many records went."""
        if not invoke_ids:
            return 0
        wanted = list(invoke_ids)
        await self.conn.execute(
            delete(tags).where(tags.c.resource_type == "invocation", tags.c.resource_id.in_(wanted))
        )
        gone = await self.conn.execute(delete(file_results).where(file_results.c.invoke_id.in_(wanted)))
        records = int(gone.rowcount)
        await self.conn.execute(delete(file_tasks).where(file_tasks.c.invoke_id.in_(wanted)))
        return records

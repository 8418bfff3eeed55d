"""Execution history: the ended runs of recurring tasks, rows of `invocation_history`.

Why a table of its own rather than more rows in `invocation_results`: the default
DescribeInvocationResults (no IncludeHistory) and the agent's task list read only the latest
state per instance. Were past runs rows of `invocation_results`, every one of its listing indexes
would need an "is current" column in front of `seq` (or every query a filter the index cannot
answer), and the agent's and the sweeper's indexes would grow with every run. Apart, the default
path reads exactly the table and indexes it read before, and the history is read only when asked
for, by InvokeId (which IncludeHistory requires), through its own `(invoke_id, seq, creation_time)`
index.

Both tables take `seq` from the same account sequence (`accounts.result_seq`), so the combined set
has one order, one NextToken position and one retention window by count; `creation_time` (for a
past run: when its record was made, i.e. when the run ended) is the retention window by age.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, Table, func, literal, select, union_all

from cloudassist.domain.invocations import InvocationResult
from cloudassist.domain.statuses import legacy
from cloudassist.store._base import Repository
from cloudassist.store.results import BY_TASK, ResultFilter, index_on, result_of, where_of
from cloudassist.store.tables import invocation_history, invocation_results

H = invocation_history.c
R = invocation_results.c
_CURRENT, _PAST = 0, 1


class History(Repository):
    async def add(self, *, account_id: int, region_id: str, seq: int, run: InvocationResult, now: datetime) -> None:
        """Keep one ended run (`run`: its status, output, exit and error codes, times and run number)."""
        await self.conn.execute(
            invocation_history.insert().values(
                account_id=account_id,
                region_id=region_id,
                seq=seq,
                invoke_id=run.invoke_id,
                instance_id=run.instance_id,
                command_id=run.command_id,
                status=run.status.value,
                record_status=legacy(run.status).value,
                exit_code=run.exit_code,
                output=run.output,
                dropped=run.dropped,
                error_code=run.error_code.value,
                start_time=run.start_time,
                finished_time=run.finished_time,
                stop_time=run.stop_time,
                update_time=now,
                creation_time=now,
                repeats=run.repeats,
                invoke_version=run.invoke_version,
            )
        )

    async def list_with_current(self, f: ResultFilter, offset: int, limit: int) -> list[tuple[int, InvocationResult]]:
        """(seq, record) pairs of the current records and the past runs that match `f`, newest first.

        The page is chosen on `(seq, source, id)` alone, from the two tables' indexes; then only that
        page's rows are read.
        """
        # each side yields at most offset + limit keys, newest first, straight from its index
        conditions, values = where_of(f, invocation_results)  # the same bound values serve both tables
        sides = [
            _by_task(
                select(seq.label("seq"), literal(src).label("src"), key.label("id"))
                .where(*(conditions if table is invocation_results else where_of(f, table)[0]))
                .order_by(seq.desc())
                .limit(offset + limit),
                table,
            ).subquery()
            for table, seq, key, src in (
                (invocation_results, R.seq, R.result_id, _CURRENT),
                (invocation_history, H.seq, H.history_id, _PAST),
            )
        ]
        both = union_all(*(select(side.c.seq, side.c.src, side.c.id) for side in sides)).subquery()
        page = [
            (int(seq), int(src), int(id_))
            for seq, src, id_ in await self.conn.execute(
                select(both.c.seq, both.c.src, both.c.id).order_by(both.c.seq.desc()).offset(offset).limit(limit),
                values,
            )
        ]
        current = await self._rows(invocation_results, R.result_id, [i for _, s, i in page if s == _CURRENT])
        past = await self._rows(invocation_history, H.history_id, [i for _, s, i in page if s == _PAST])
        found = []
        for seq, src, id_ in page:
            if src == _CURRENT and id_ in current:
                found.append((seq, result_of(current[id_])))
            elif src == _PAST and id_ in past:
                found.append((seq, result_of(past[id_], "history_id")))
        return found

    async def count_with_current(self, f: ResultFilter) -> int:
        total = 0
        for table in (invocation_results, invocation_history):
            conditions, values = where_of(f, table)
            stmt = _by_task(select(func.count()).select_from(table).where(*conditions), table)
            total += int(await self.conn.scalar(stmt, values) or 0)
        return total

    async def _rows(self, table: Any, key: Any, ids: Sequence[int]) -> dict[int, Row[Any]]:
        if not ids:
            return {}
        return {int(row._mapping[key.name]): row for row in await self.conn.execute(select(table).where(key.in_(ids)))}


#: The index by task of each table (IncludeHistory requires an InvokeId), pinned on SQLite (store/results.py).
_TASK_INDEX = {
    invocation_results: BY_TASK,
    invocation_history: index_on(invocation_history, "invoke_id", "seq", "creation_time"),
}


def _by_task(stmt: Select[Any], table: Table) -> Select[Any]:
    return stmt.with_hint(table, f"INDEXED BY {_TASK_INDEX[table]}", dialect_name="sqlite")

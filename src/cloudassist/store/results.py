"""Execution records: rows of `invocation_results` become `domain.invocations.InvocationResult` here."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, bindparam, func, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.invocations import InvocationResult
from cloudassist.domain.statuses import ErrorCode, InvocationStatus, legacy
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository, one_of
from cloudassist.store.tables import invocation_results, invocations
from cloudassist.store.tags import tagged_with

R = invocation_results.c

# The agent face's statements, built once: building a statement and its cache key costs more than SQLite
# takes to run it. Statuses are literals, so no IN list is expanded per call.
_CURRENT = (
    select(invocation_results)
    .where(R.invoke_id == bindparam("invoke_id"), R.instance_id == bindparam("instance_id"))
    .order_by(R.seq.desc())
    .limit(1)
)
_UPDATE = update(invocation_results).where(R.result_id == bindparam("b_result_id"))
_UPDATE_EXPECTING = _UPDATE.where(R.status == bindparam("b_expect"))
_STATUSES_OF = select(R.status).where(R.invoke_id == bindparam("invoke_id")).distinct()
_WAITING = (
    (R.status == "Pending") & R.delivered_time.is_(None)
    | (R.status == "Stopping")
    | (
        one_of(R.status, ["Scheduled", "Running"])
        & R.delivered_time.is_(None)
        & select(invocations.c.invoke_id)
        .where(invocations.c.invoke_id == R.invoke_id, invocations.c.repeat_mode == "Period")
        .exists()
    )
)
_WAITING_ONE = select(R.instance_id).where(_WAITING, R.instance_id == bindparam("instance_id")).limit(1)


@dataclass(frozen=True)
class ResultFilter:
    """What DescribeInvocationResults selects; `min_seq` and `not_before` are the retention window."""

    account_id: int
    region_id: str
    not_before: datetime
    min_seq: int
    invoke_id: str | None = None
    instance_id: str | None = None
    command_id: str | None = None
    statuses: frozenset[InvocationStatus] | None = None
    #: A legacy InvokeRecordStatus value (Running, Finished, Failed, Stopped, Stopping).
    record_status: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()
    before_seq: int | None = None


@dataclass(frozen=True)
class NewResult:
    instance_id: str
    status: InvocationStatus
    error_code: ErrorCode = ErrorCode.NONE


Shape = tuple[bool, bool, bool, tuple[str, ...] | None, bool, bool, bool]


def _shape(f: ResultFilter) -> Shape:
    """Which filters `f` uses (and which statuses): the statement is the same for every filter of one shape."""
    statuses = None if f.statuses is None else tuple(sorted(s.value for s in f.statuses))
    return (
        bool(f.invoke_id),
        bool(f.instance_id),
        bool(f.command_id),
        statuses,
        f.record_status is not None,
        f.before_seq is not None,
        bool(f.resource_group_id),
    )


@functools.cache
def _conditions(table: Table, shape: Shape) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a filter of this shape, with its values as bound parameters (see `where_of`)."""
    c = table.c
    invoke_id, instance_id, command_id, statuses, record_status, before_seq, resource_group = shape
    where = [
        c.account_id == bindparam("w_account_id"),
        c.region_id == bindparam("w_region_id"),
        c.seq > bindparam("w_min_seq"),
        c.creation_time >= bindparam("w_not_before", type_=c.creation_time.type),
    ]
    for column, used in ((c.invoke_id, invoke_id), (c.instance_id, instance_id), (c.command_id, command_id)):
        if used:
            where.append(column == bindparam(f"w_{column.name}"))
    if statuses is not None:
        where.append(one_of(c.status, statuses) if statuses else c.status.in_([]))
    if record_status:
        where.append(c.record_status == bindparam("w_record_status"))
    if before_seq:
        where.append(c.seq < bindparam("w_before_seq"))
    if resource_group:
        where.append(
            c.invoke_id.in_(
                select(invocations.c.invoke_id).where(
                    invocations.c.account_id == bindparam("w_account_id"),
                    invocations.c.resource_group_id == bindparam("w_resource_group_id"),
                )
            )
        )
    return tuple(where)


def where_of(f: ResultFilter, table: Table) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The conditions of `f` on a table of execution records (`invocation_results` or `invocation_history`),
    and the values of their bound parameters. Conditions are built once per shape of filter: building them
    costs more than SQLite takes to answer an indexed page."""
    values = {
        "w_account_id": f.account_id,
        "w_region_id": f.region_id,
        "w_min_seq": f.min_seq,
        "w_not_before": f.not_before,
        "w_invoke_id": f.invoke_id,
        "w_instance_id": f.instance_id,
        "w_command_id": f.command_id,
        "w_record_status": f.record_status,
        "w_before_seq": f.before_seq,
        "w_resource_group_id": f.resource_group_id,
    }
    where = [*_conditions(table, _shape(f)), *tagged_with(f.account_id, "invocation", table.c.invoke_id, f.tags)]
    return where, {k: v for k, v in values.items() if v is not None}


@functools.cache
def _page(shape: Shape) -> Any:
    return (
        select(invocation_results)
        .where(*_conditions(invocation_results, shape))
        .order_by(R.seq.desc())
        .offset(bindparam("w_offset"))
        .limit(bindparam("w_limit"))
    )


@functools.cache
def _count(shape: Shape) -> Any:
    return select(func.count()).select_from(invocation_results).where(*_conditions(invocation_results, shape))


class Results(Repository):
    async def insert(
        self,
        *,
        account_id: int,
        region_id: str,
        invoke_id: str,
        command_id: str,
        first_seq: int,
        items: Sequence[NewResult],
        now: datetime,
        invoke_version: int = 1,
    ) -> None:
        if not items:
            return
        rows = [
            {
                "account_id": account_id,
                "region_id": region_id,
                "seq": first_seq + i,
                "invoke_id": invoke_id,
                "instance_id": item.instance_id,
                "command_id": command_id,
                "status": item.status.value,
                "record_status": legacy(item.status).value,
                "exit_code": None,
                "output": b"",
                "dropped": 0,
                "error_code": item.error_code.value,
                "start_time": None,
                "finished_time": None,
                "stop_time": None,
                "update_time": now,
                "creation_time": now,
                "repeats": 0,
                "invoke_version": invoke_version,
            }
            for i, item in enumerate(items)
        ]
        await self.conn.execute(invocation_results.insert(), rows)

    async def list(self, f: ResultFilter, offset: int, limit: int) -> list[tuple[int, InvocationResult]]:
        """(seq, result) pairs, newest first."""
        where, values = where_of(f, invocation_results)
        stmt = (
            _page(_shape(f))
            if not f.tags
            else select(invocation_results).where(*where).order_by(R.seq.desc()).offset(offset).limit(limit)
        )
        rows = await self.conn.execute(stmt, {**values, "w_offset": offset, "w_limit": limit})
        return [(int(row.seq), result_of(row)) for row in rows]

    async def count(self, f: ResultFilter) -> int:
        where, values = where_of(f, invocation_results)
        stmt = _count(_shape(f)) if not f.tags else select(func.count()).select_from(invocation_results).where(*where)
        return int(await self.conn.scalar(stmt, values) or 0)

    async def of_invocations(self, invoke_ids: Sequence[str]) -> dict[str, builtins.list[InvocationResult]]:
        """Every result of each invocation, in instance order."""
        found: dict[str, builtins.list[InvocationResult]] = {i: [] for i in invoke_ids}
        if invoke_ids:
            stmt = select(invocation_results).where(R.invoke_id.in_(list(invoke_ids))).order_by(R.seq)
            for row in await self.conn.execute(stmt):
                found[row.invoke_id].append(result_of(row))
        return found

    async def statuses_of(self, invoke_id: str) -> set[InvocationStatus]:
        """The distinct statuses of a task's records (from the (invoke_id, status) index alone)."""
        return {InvocationStatus(row[0]) for row in await self.conn.execute(_STATUSES_OF, {"invoke_id": invoke_id})}

    async def for_instance(
        self, instance_id: str, statuses: Sequence[InvocationStatus], limit: int = 100
    ) -> builtins.list[InvocationResult]:
        """An instance's executions in the given statuses, oldest first (what its agent should hear of)."""
        stmt = _for_instance(tuple(statuses), limit)
        return [result_of(row) for row in await self.conn.execute(stmt, {"instance_id": instance_id})]

    async def current(self, invoke_id: str, instance_id: str) -> InvocationResult | None:
        """The newest execution of a task on an instance."""
        row = (await self.conn.execute(_CURRENT, {"invoke_id": invoke_id, "instance_id": instance_id})).first()
        return None if row is None else result_of(row)

    async def update(self, result_id: int, *, expect: InvocationStatus | None = None, **values: Any) -> bool:
        """Change one execution record; with `expect`, only if it is still in that status.

        A new `status` brings its legacy `record_status` along, so the two never disagree.
        """
        if "status" in values:
            values["record_status"] = legacy(InvocationStatus(values["status"])).value
        values["b_result_id"] = result_id
        if expect is None:
            return bool((await self.conn.execute(_UPDATE, values)).rowcount)
        values["b_expect"] = expect.value
        return bool((await self.conn.execute(_UPDATE_EXPECTING, values)).rowcount)

    async def end_many(
        self,
        result_ids: Sequence[int],
        *,
        expect: InvocationStatus,
        status: InvocationStatus,
        error_code: ErrorCode,
        now: datetime,
        finished: bool,
    ) -> int:
        """End many records in one kind of ending, each only if it is still in `expect`; how many ended."""
        ended = 0
        for first in range(0, len(result_ids), 500):
            stmt = (
                update(invocation_results)
                .where(R.result_id.in_(list(result_ids[first : first + 500])), R.status == expect.value)
                .values(
                    status=status.value,
                    record_status=legacy(status).value,
                    error_code=error_code.value,
                    update_time=now,
                    finished_time=now if finished else None,
                )
            )
            ended += int((await self.conn.execute(stmt)).rowcount)
        return ended

    async def modified(self, invoke_id: str, *, command_id: str, redeliver: bool, now: datetime) -> None:
        """A task was modified: every record of it gets the next invoke version and the task's command;
        with `redeliver`, its scheduled and running records count as not yet fetched (listed again)."""
        await self.conn.execute(
            update(invocation_results)
            .where(R.invoke_id == invoke_id)
            .values(invoke_version=R.invoke_version + 1, command_id=command_id)
        )
        if redeliver:
            await self.conn.execute(
                update(invocation_results)
                .where(R.invoke_id == invoke_id, R.status.in_(["Running", "Scheduled"]))
                .values(delivered_time=None, update_time=now)
            )

    async def overdue(
        self, *, pending_before: datetime, started_before: datetime, stopped_before: datetime, limit: int = 1000
    ) -> builtins.list[InvocationResult]:
        """Executions that may have passed a deadline: Pending since `pending_before`, Running with a run
        deadline before `started_before`, Stopping since `stopped_before`."""
        stmt = (
            select(invocation_results)
            .where(
                ((R.status == "Pending") & (R.creation_time < pending_before))
                | ((R.status == "Running") & (R.run_deadline < started_before))
                | ((R.status == "Stopping") & (R.stop_time < stopped_before))
            )
            .order_by(R.result_id)
            .limit(limit)
        )
        return [result_of(row) for row in await self.conn.execute(stmt)]

    async def waiting_instances(self, instance_id: str | None = None, limit: int = 10_000) -> set[str]:
        """Instances with work not yet fetched, or stops not yet confirmed (worth a kick): Pending records never
        fetched, Stopping records, and records of a schedule modified since its agent last fetched it."""
        if instance_id is not None:
            return {row[0] for row in await self.conn.execute(_WAITING_ONE, {"instance_id": instance_id})}
        stmt = select(R.instance_id).where(_WAITING)
        return {row[0] for row in await self.conn.execute(stmt.distinct().limit(limit))}


@functools.cache
def _for_instance(statuses: tuple[InvocationStatus, ...], limit: int) -> Any:
    return (
        select(invocation_results)
        .where(R.instance_id == bindparam("instance_id"), one_of(R.status, [s.value for s in statuses]))
        .order_by(R.seq)
        .limit(limit)
    )


def result_of(row: Row[Any], key: str = "result_id") -> InvocationResult:
    """The execution record of a row of `invocation_results`, or of `invocation_history` (key "history_id"),
    which has no delivery columns."""
    r = row._mapping
    return InvocationResult(
        result_id=int(r[key]),
        invoke_id=r["invoke_id"],
        instance_id=r["instance_id"],
        command_id=r["command_id"],
        status=InvocationStatus(r["status"]),
        exit_code=None if r["exit_code"] is None else int(r["exit_code"]),
        output=bytes(r["output"]),
        dropped=int(r["dropped"]),
        error_code=ErrorCode(r["error_code"]),
        start_time=utc_or_none(r["start_time"]),
        finished_time=utc_or_none(r["finished_time"]),
        stop_time=utc_or_none(r["stop_time"]),
        update_time=utc(r["update_time"]),
        creation_time=utc(r["creation_time"]),
        repeats=int(r["repeats"]),
        invoke_version=int(r["invoke_version"]),
        delivered_time=utc_or_none(r.get("delivered_time")),
        received=int(r.get("received", 0)),
    )

"""Execution records: rows of `invocation_results` become `domain.invocations.InvocationResult` here."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Table, bindparam, func, literal_column, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.invocations import InvocationResult
from cloudassist.domain.statuses import ErrorCode, InvocationStatus, legacy, legacy_filter
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Conn, Repository, member_of, one_of
from cloudassist.store.counts import COMMAND, INSTANCE, STATUS, Deltas
from cloudassist.store.tables import invocation_results, invocations, result_counts
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
_UPDATE_EXPECTING_STATUS = _UPDATE_EXPECTING.returning(R.account_id, R.region_id)
_STATUS_OF = (
    select(R.account_id, R.region_id, R.status).where(R.result_id == bindparam("b_result_id")).with_for_update()
)
#: Counted columns (store/counts.py) that `Results.update` never changes.
_FIXED = frozenset({"account_id", "region_id", "instance_id", "command_id"})
_STATUSES_OF = select(R.status).where(R.invoke_id == bindparam("invoke_id")).distinct()
_WAITING = (
    (R.status == "Pending") & (R.delivered_time.is_(None) | (R.delivered_time < bindparam("relist_before")))
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


#: Which filters a ResultFilter uses: InvokeId, InstanceId, CommandId (each: given or not), the statuses
#: (themselves), the legacy InvokeRecordStatus (itself: one of five words), a NextToken position (given or
#: not), a ResourceGroupId (given or not).
Shape = tuple[bool, bool, bool, tuple[str, ...] | None, str | None, bool, bool]


def _shape(f: ResultFilter) -> Shape:
    """Which filters `f` uses (and which statuses): the statement is the same for every filter of one shape."""
    statuses = None if f.statuses is None else tuple(sorted(s.value for s in f.statuses))
    return (
        bool(f.invoke_id),
        bool(f.instance_id),
        bool(f.command_id),
        statuses,
        f.record_status or None,
        f.before_seq is not None,
        bool(f.resource_group_id),
    )


def index_on(table: Table, *columns: str) -> str:
    """The name of the index of `table` on exactly these columns."""
    for index in table.indexes:
        if tuple(c.name for c in index.columns) == columns:
            return str(index.name)
    raise LookupError(table.name, columns)


# The index each shape of filter reads, pinned. SQLite without statistics (the server never runs ANALYZE)
# rates (account_id, region_id, seq) and (invoke_id, seq) alike for a query by InvokeId, and takes whichever
# of the two the schema lists first; `create_all` creates a table's indexes in the order of a Python set,
# which differs from one process to the next. So one database answers by InvokeId from its 10 rows and
# another walks every record of the account, by luck. `INDEXED BY` (rendered by store/engine.py) names the
# index; PostgreSQL ignores the hint and chooses from its statistics (tests/store/test_plans.py).
BY_SEQ = index_on(invocation_results, "account_id", "region_id", "seq", "creation_time")
BY_TASK = index_on(invocation_results, "invoke_id", "seq", "creation_time")
BY_INSTANCE = index_on(invocation_results, "account_id", "region_id", "instance_id", "seq", "creation_time")
BY_COMMAND = index_on(invocation_results, "account_id", "region_id", "command_id", "seq", "creation_time")
BY_STATUS = index_on(invocation_results, "account_id", "region_id", "status", "seq", "creation_time")
BY_RECORD_STATUS = index_on(invocation_results, "account_id", "region_id", "record_status", "seq", "creation_time")
BY_AGE = index_on(invocation_results, "account_id", "region_id", "creation_time", "seq")


def index_of(shape: Shape, *, tags: bool = False) -> str:
    """The index a page and a count of this shape read: the narrowest filter's, in the order InvokeId (one
    task's records), InstanceId, CommandId, status, InvokeRecordStatus; a ResourceGroupId or tags alone
    read their tasks' records by task; nothing else, the account's records in order."""
    invoke_id, instance_id, command_id, statuses, record_status, _, resource_group = shape
    if invoke_id:
        return BY_TASK
    if instance_id:
        return BY_INSTANCE
    if command_id:
        return BY_COMMAND
    if statuses is not None:
        return BY_STATUS
    if record_status:
        return BY_RECORD_STATUS
    return BY_TASK if resource_group or tags else BY_SEQ


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
    if record_status:  # a literal: PostgreSQL plans with the value's frequency even for a generic plan
        where.append(one_of(c.record_status, [record_status]))
    if before_seq:
        where.append(c.seq < bindparam("w_before_seq"))
    if resource_group:
        where.append(
            member_of(
                c.invoke_id,
                select(invocations.c.invoke_id).where(
                    invocations.c.account_id == bindparam("w_account_id"),
                    invocations.c.resource_group_id == bindparam("w_resource_group_id"),
                ),
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
        "w_before_seq": f.before_seq,
        "w_resource_group_id": f.resource_group_id,
    }
    where = [
        *_conditions(table, _shape(f)),
        *tagged_with(f.account_id, "invocation", table.c.invoke_id, f.tags, member_of),
    ]
    return where, {k: v for k, v in values.items() if v is not None}


def _pinned(stmt: Select[Any], index: str) -> Select[Any]:
    return stmt.with_hint(invocation_results, f"INDEXED BY {index}", dialect_name="sqlite")


def _page_of(where: Sequence[ColumnElement[bool]], index: str, oldest_first: bool) -> Select[Any]:
    order = R.seq.asc() if oldest_first else R.seq.desc()
    stmt = select(invocation_results).where(*where).order_by(order)
    return _pinned(stmt, index).offset(bindparam("w_offset")).limit(bindparam("w_limit"))


@functools.cache
def _page(shape: Shape, oldest_first: bool = False) -> Select[Any]:
    return _page_of(_conditions(invocation_results, shape), index_of(shape), oldest_first)


def _rows_counted(where: Sequence[ColumnElement[bool]], index: str) -> Select[Any]:
    return _pinned(select(func.count()).select_from(invocation_results).where(*where), index)


@functools.cache
def _count(shape: Shape) -> Select[Any]:
    """TotalCount: from the counters (`_kept_count`) when the filter is one counted column, else the rows."""
    kept = _kept_count(shape)
    return kept if kept is not None else _rows_counted(_conditions(invocation_results, shape), index_of(shape))


def _kept_count(shape: Shape) -> Select[Any] | None:
    """The count of a filter on at most one counted column (status, command, instance; InvokeRecordStatus
    is a set of statuses), without reading the rows it selects: the counter (store/counts.py) less the rows
    the retention window hides, i.e. those numbered `min_seq` or below (read from the filter's own index,
    from its oldest end) and the younger ones created before `not_before` (from the `BY_AGE` index). The
    retention job deletes hidden rows that have ended, so both ranges are short. One statement: on
    PostgreSQL its three parts see one snapshot, as the counters and the rows change in one transaction.
    None when the filter needs the rows (InvokeId, ResourceGroupId, two filters, a NextToken position)."""
    invoke_id, instance_id, command_id, statuses, record_status, before_seq, resource_group = shape
    wanted = statuses if statuses is not None else ()
    if record_status:
        wanted = tuple(sorted(s.value for s in legacy_filter(record_status)))
    by_status = statuses is not None or bool(record_status)
    if invoke_id or before_seq or resource_group or instance_id + command_id + by_status > 1:
        return None
    if (by_status and not wanted) or (statuses is not None and record_status):
        return None
    K = result_counts.c
    counters = [K.account_id == bindparam("w_account_id"), K.region_id == bindparam("w_region_id")]
    mine = [R.account_id == bindparam("w_account_id"), R.region_id == bindparam("w_region_id")]
    if instance_id:
        counters += [K.dim == INSTANCE, K.value == bindparam("w_instance_id")]
        mine.append(R.instance_id == bindparam("w_instance_id"))
        index = BY_INSTANCE
    elif command_id:
        counters += [K.dim == COMMAND, K.value == bindparam("w_command_id")]
        mine.append(R.command_id == bindparam("w_command_id"))
        index = BY_COMMAND
    else:
        counters.append(K.dim == STATUS)
        index = BY_SEQ
        if wanted:  # counted by status; InvokeRecordStatus is `legacy(status)`, written with it (Results.update)
            counters.append(one_of(K.value, wanted))
            mine.append(one_of(R.status, wanted))
            index = BY_STATUS
    kept = select(func.coalesce(func.sum(K.n), 0)).where(*counters).scalar_subquery()
    beyond = _rows_counted([*mine, R.seq <= bindparam("w_min_seq")], index).scalar_subquery()
    too_old = _rows_counted(
        [
            *mine,
            R.creation_time < bindparam("w_not_before", type_=R.creation_time.type),
            # `seq + 0`: no index range on seq, so a generic plan (PostgreSQL, values unknown) cannot take the
            # (…, seq, …) index for this part and walk the window; its range here is on creation_time
            R.seq + literal_column("0") > bindparam("w_min_seq"),
        ],
        BY_AGE,
    ).scalar_subquery()
    return select(kept - beyond - too_old)


class Results(Repository):
    def __init__(self, conn: Conn, counts: Deltas) -> None:
        super().__init__(conn)
        #: the transaction's changes to the counters of records (store/counts.py)
        self.counts = counts

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
        for item in items:
            self.counts.rows(account_id, region_id, item.status.value, command_id, item.instance_id, 1)

    async def list(
        self, f: ResultFilter, offset: int, limit: int, *, total: int | None = None
    ) -> list[tuple[int, InvocationResult]]:
        """(seq, result) pairs, newest first.

        With `total`, the count of `f` read in the same transaction (`count`), a page at or past the end
        reads nothing, and a page nearer the oldest end than the newest is read from the oldest end (then
        turned round): a deep PageNumber costs the rows between the page and the nearer end, not its offset.
        """
        shape = _shape(f)
        where, values = where_of(f, invocation_results)
        oldest_first = False
        if total is not None and f.before_seq is None:
            if offset >= total:
                return []
            from_oldest = max(0, total - offset - limit)
            if from_oldest < offset:
                oldest_first = True
                offset, limit = from_oldest, min(limit, total - offset)
        stmt = _page(shape, oldest_first) if not f.tags else _page_of(where, index_of(shape, tags=True), oldest_first)
        rows = await self.conn.execute(stmt, {**values, "w_offset": offset, "w_limit": limit})
        found = [(int(row.seq), result_of(row)) for row in rows]
        return found[::-1] if oldest_first else found

    async def count(self, f: ResultFilter) -> int:
        """How many records `f` selects (TotalCount)."""
        where, values = where_of(f, invocation_results)
        stmt = _count(_shape(f)) if not f.tags else _rows_counted(where, index_of(_shape(f), tags=True))
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

        A new `status` brings its legacy `record_status` along, so the two never disagree, and moves the
        record between the status counters (store/counts.py): from the status the database had.
        """
        assert not values.keys() & _FIXED, "a record's account, region, instance and command do not change here"
        values["b_result_id"] = result_id
        if "status" not in values:
            if expect is None:
                return bool((await self.conn.execute(_UPDATE, values)).rowcount)
            values["b_expect"] = expect.value
            return bool((await self.conn.execute(_UPDATE_EXPECTING, values)).rowcount)
        status = InvocationStatus(values["status"]).value
        values["record_status"] = legacy(InvocationStatus(status)).value
        if expect is None:  # the status it had, read under lock (PostgreSQL) until this transaction ends
            was = (await self.conn.execute(_STATUS_OF, values)).first()
            if was is None or not (await self.conn.execute(_UPDATE, values)).rowcount:
                return False
            self.counts.moved(int(was.account_id), was.region_id, STATUS, was.status, status)
            return True
        values["b_expect"] = expect.value
        changed = (await self.conn.execute(_UPDATE_EXPECTING_STATUS, values)).first()
        if changed is None:
            return False
        self.counts.moved(int(changed.account_id), changed.region_id, STATUS, expect.value, status)
        return True

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
                .returning(R.account_id, R.region_id)
            )
            for account_id, region_id in (await self.conn.execute(stmt)).all():
                self.counts.moved(int(account_id), region_id, STATUS, expect.value, status.value)
                ended += 1
        return ended

    async def modified(self, invoke_id: str, *, command_id: str, redeliver: bool, now: datetime) -> None:
        """A task was modified: every record of it gets the next invoke version and the task's command;
        with `redeliver`, its scheduled and running records count as not yet fetched (listed again)."""
        moving = select(R.account_id, R.region_id, R.command_id).where(
            R.invoke_id == invoke_id, R.command_id != command_id
        )
        for account_id, region_id, was in (await self.conn.execute(moving.with_for_update())).all():
            self.counts.moved(int(account_id), region_id, COMMAND, was, command_id)
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

    async def waiting_instances(
        self, instance_id: str | None = None, *, relist_before: datetime, limit: int = 10_000
    ) -> set[str]:
        """Instances with work not yet fetched, or stops not yet confirmed (worth a kick): Pending records never
        fetched or last listed before `relist_before` (listed, but their agent never said it started them),
        Stopping records, and records of a schedule modified since its agent last fetched it."""
        if instance_id is not None:
            params = {"instance_id": instance_id, "relist_before": relist_before}
            return {row[0] for row in await self.conn.execute(_WAITING_ONE, params)}
        stmt = select(R.instance_id).where(_WAITING).distinct().limit(limit)
        return {row[0] for row in await self.conn.execute(stmt, {"relist_before": relist_before})}


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

"""DescribeInvocationResults reads, for every shape of filter, the index meant for it, on a table of
realistic size and whatever the planner knows, proved with EXPLAIN (store/results.py: `index_of`,
`_kept_count`); and its TotalCount and pages, read from the counters and from either end, are the rows.

SQLite is asked without statistics (as the server leaves it) with the table's indexes created in several
orders: without statistics SQLite rates some candidate indexes alike and takes the one its schema lists
first, and `create_all` creates them in the order of a Python set, which changes from one process to the
next. Created with (account_id, region_id, seq) last, the old statements read every record of the account
for a query by InvokeId. Then with the statistics of ANALYZE, and with false ones. PostgreSQL is asked
after ANALYZE, both for the plan of the values at hand and for the generic plan of a cached prepared
statement (values unknown).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect

from cloudassist.domain.statuses import InvocationStatus, legacy, legacy_filter
from cloudassist.domain.tags import Tag
from cloudassist.store.counts import recount_in
from cloudassist.store.results import ResultFilter
from cloudassist.store.store import Store
from cloudassist.store.tables import invocation_results, invocations, tags

S = InvocationStatus
REGION, OTHER_REGION = "cn-hangzhou", "cn-beijing"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NOT_BEFORE = NOW - timedelta(days=14)
TASKS = 3_000  # of 10 records: 30,000 records in the measured account and region, ~4,000 elsewhere
PER_TASK = 10
INSTANCES = 300
COMMANDS = 40
#: records numbered up to here are beyond the count window (the newest N of the account)
MIN_SEQ = 2_200

SEQ = ("account_id", "region_id", "seq", "creation_time")
TASK = ("invoke_id", "seq", "creation_time")
INSTANCE = ("account_id", "region_id", "instance_id", "seq", "creation_time")
COMMAND = ("account_id", "region_id", "command_id", "seq", "creation_time")
STATUS = ("account_id", "region_id", "status", "seq", "creation_time")
RECORD_STATUS = ("account_id", "region_id", "record_status", "seq", "creation_time")
AGE = ("account_id", "region_id", "creation_time", "seq")
TASK_STATUS = ("invoke_id", "status")


@dataclass
class Record:
    account_id: int
    region_id: str
    seq: int
    invoke_id: str
    instance_id: str
    command_id: str
    status: InvocationStatus
    created: datetime


@dataclass
class Seeded:
    account_id: int
    records: list[Record] = field(default_factory=list)
    resource_group_tasks: set[str] = field(default_factory=set)
    tagged_tasks: set[str] = field(default_factory=set)
    invoke_id: str = ""
    instance_id: str = ""
    command_id: str = ""

    def visible(self, pred: Callable[[Record], bool]) -> list[Record]:
        """The records of the measured account and region inside the window that `pred` selects, newest first."""
        return sorted(
            (
                r
                for r in self.records
                if r.account_id == self.account_id
                and r.region_id == REGION
                and r.seq > MIN_SEQ
                and r.created >= NOT_BEFORE
                and pred(r)
            ),
            key=lambda r: -r.seq,
        )


def _status(rng: random.Random, running: bool) -> InvocationStatus:
    if running:
        return S.RUNNING
    r = rng.random()
    return S.SUCCESS if r < 0.90 else S.FAILED if r < 0.96 else S.TIMEOUT if r < 0.995 else S.CANCELLED


async def seed(store: Store) -> Seeded:
    """One transaction of executemany: tasks and records shaped as InvocationService writes them, then the
    counters rebuilt from them (rows written directly bypass the store's counting)."""
    rng = random.Random(20261205)
    async with store.write() as tx:
        account = await tx.accounts.ensure("plans", NOW)
        other = await tx.accounts.ensure("other", NOW)
    seeded = Seeded(account)
    task_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    weights = [1 / (i + 1) for i in range(COMMANDS)]
    places = [(account, REGION, TASKS), (account, OTHER_REGION, 200), (other, REGION, 200)]
    for account_id, region_id, n_tasks in places:
        seq = 0
        for k in range(n_tasks):
            invoke_id = f"t-{account_id}-{region_id}-{k:05d}"
            command_id = f"c-{rng.choices(range(COMMANDS), weights)[0]}"
            created = NOW - timedelta(hours=23) + timedelta(seconds=20 * k)
            if 0.04 * n_tasks < k < 0.12 * n_tasks or rng.random() < 0.01:
                created = NOW - timedelta(days=15, seconds=k)  # older than the window (some deep inside it)
            seq += 1
            resource_group = "rg-plans" if rng.random() < 0.05 else ""
            task_rows.append(_task_row(invoke_id, account_id, region_id, command_id, created, k, resource_group))
            if account_id == account and region_id == REGION:
                if resource_group:
                    seeded.resource_group_tasks.add(invoke_id)
                if rng.random() < 0.05:
                    seeded.tagged_tasks.add(invoke_id)
                    tag_rows.append(
                        {"resource_type": "invocation", "resource_id": invoke_id, "tag_key": "team",
                         "tag_value": "plans", "account_id": account_id}
                    )
            running = k >= n_tasks - 15
            for instance in rng.sample(range(INSTANCES), PER_TASK):
                seq += 1
                seeded.records.append(
                    Record(account_id, region_id, seq, invoke_id, f"i-{instance:04d}", command_id,
                           _status(rng, running), created)
                )
    async with store.write() as tx:
        await tx.conn.execute(invocations.insert(), task_rows)
        await tx.conn.execute(tags.insert(), tag_rows)
        for first in range(0, len(seeded.records), 5_000):
            await tx.conn.execute(
                invocation_results.insert(), [_record_row(r) for r in seeded.records[first : first + 5_000]]
            )
        await recount_in(tx.conn)
    mine = seeded.visible(lambda r: True)
    seeded.invoke_id = mine[len(mine) // 2].invoke_id
    seeded.instance_id = mine[len(mine) // 2 + 1].instance_id  # one of the task's
    seeded.command_id = mine[len(mine) // 4].command_id
    return seeded


def _task_row(invoke_id: str, account_id: int, region_id: str, command_id: str, created: datetime, k: int,
              resource_group: str) -> dict[str, Any]:
    return {
        "invoke_id": invoke_id, "account_id": account_id, "region_id": region_id, "command_id": command_id,
        "command_name": "deploy", "command_type": "RunShellScript", "command_description": "", "content": b"true",
        "enable_parameter": False, "parameters": "{}", "repeat_mode": "Once", "frequency": "", "timeout": 60,
        "working_dir": "/root", "username": "root", "windows_password_name": "", "termination_mode": "Process",
        "launcher": "", "container_id": "", "container_name": "", "resource_group_id": resource_group,
        "creation_time": created, "stop_time": None, "seq": k + 1, "status": "Success", "invoke_status": "Finished",
    }


def _record_row(r: Record) -> dict[str, Any]:
    return {
        "account_id": r.account_id, "region_id": r.region_id, "seq": r.seq, "invoke_id": r.invoke_id,
        "instance_id": r.instance_id, "command_id": r.command_id, "status": r.status.value,
        "record_status": legacy(r.status).value, "exit_code": 0, "output": b"x" * 300, "dropped": 0,
        "error_code": "", "start_time": r.created, "finished_time": r.created, "stop_time": None,
        "update_time": r.created, "creation_time": r.created, "repeats": 1,
    }


@dataclass(frozen=True)
class Case:
    """A shape of filter: its fields, and the indexes (by columns) its page and its count must read."""

    name: str
    fields: Callable[[Seeded], dict[str, Any]]
    page: tuple[str, ...]
    count: frozenset[tuple[str, ...]] | None  # None: a NextToken page, which has no count
    select: Callable[[Seeded, Record], bool]
    #: the offset of the page asked for: a function of TotalCount (deep pages read from the oldest end)
    offset: Callable[[int], int] = lambda total: 0
    #: other indexes PostgreSQL may read instead, choosing by its statistics, that bound the work as well
    pg_also: frozenset[tuple[str, ...]] = frozenset()


def _statuses(value: str) -> frozenset[InvocationStatus]:
    return frozenset(legacy_filter(value))


CASES = [
    Case("no filter", lambda s: {}, SEQ, frozenset({SEQ, AGE}), lambda s, r: True),
    # the task's (invoke_id, status) index holds as few entries (PostgreSQL takes it at 100,000 records)
    Case("InvokeId", lambda s: {"invoke_id": s.invoke_id}, TASK, frozenset({TASK}),
         lambda s, r: r.invoke_id == s.invoke_id, pg_also=frozenset({TASK_STATUS})),
    Case("InstanceId", lambda s: {"instance_id": s.instance_id}, INSTANCE, frozenset({INSTANCE, AGE}),
         lambda s, r: r.instance_id == s.instance_id),
    Case("CommandId", lambda s: {"command_id": s.command_id}, COMMAND, frozenset({COMMAND, AGE}),
         lambda s, r: r.command_id == s.command_id),
    # a status most records have (Finished: 94%, Success: 90%) is read about as well in the account's order
    Case("InvokeRecordStatus=Finished", lambda s: {"record_status": "Finished"}, RECORD_STATUS,
         frozenset({STATUS, AGE}), lambda s, r: r.status in _statuses("Finished"), pg_also=frozenset({SEQ})),
    *(
        Case(f"InvokeRecordStatus={value}", lambda s, v=value: {"record_status": v}, RECORD_STATUS,
             frozenset({STATUS, AGE}), lambda s, r, v=value: r.status in _statuses(v))
        for value in ("Failed", "Stopped", "Running")
    ),
    Case("InvokeRecordStatus=Success", lambda s: {"statuses": frozenset({S.SUCCESS})}, STATUS,
         frozenset({STATUS, AGE}), lambda s, r: r.status is S.SUCCESS, pg_also=frozenset({SEQ})),
    Case("InvokeId+InstanceId", lambda s: {"invoke_id": s.invoke_id, "instance_id": s.instance_id}, TASK,
         frozenset({TASK}), lambda s, r: r.invoke_id == s.invoke_id and r.instance_id == s.instance_id,
         pg_also=frozenset({TASK_STATUS, INSTANCE})),
    Case("InstanceId+InvokeRecordStatus", lambda s: {"instance_id": s.instance_id, "record_status": "Failed"},
         INSTANCE, frozenset({INSTANCE}),
         lambda s, r: r.instance_id == s.instance_id and r.status in _statuses("Failed")),
    Case("CommandId+InvokeRecordStatus", lambda s: {"command_id": s.command_id, "record_status": "Finished"},
         COMMAND, frozenset({COMMAND}),
         lambda s, r: r.command_id == s.command_id and r.status in _statuses("Finished")),
    Case("InstanceId+CommandId", lambda s: {"instance_id": s.instance_id, "command_id": s.command_id},
         INSTANCE, frozenset({INSTANCE}),
         lambda s, r: r.instance_id == s.instance_id and r.command_id == s.command_id),
    Case("ResourceGroupId", lambda s: {"resource_group_id": "rg-plans"}, TASK, frozenset({TASK}),
         lambda s, r: r.invoke_id in s.resource_group_tasks),
    Case("Tag", lambda s: {"tags": (Tag("team", "plans"),)}, TASK, frozenset({TASK}),
         lambda s, r: r.invoke_id in s.tagged_tasks),
    Case("no filter, next to last page", lambda s: {}, SEQ, frozenset({SEQ, AGE}), lambda s, r: True,
         offset=lambda total: total - 15),
    Case("InvokeRecordStatus=Finished, deep page", lambda s: {"record_status": "Finished"}, RECORD_STATUS,
         frozenset({STATUS, AGE}), lambda s, r: r.status in _statuses("Finished"), offset=lambda total: total * 3 // 4,
         pg_also=frozenset({SEQ})),
    Case("NextToken", lambda s: {"before_seq": 20_000}, SEQ, None, lambda s, r: r.seq < 20_000),
    Case("NextToken+InvokeId", lambda s: {"invoke_id": s.invoke_id, "before_seq": 10**9}, TASK, None,
         lambda s, r: r.invoke_id == s.invoke_id, pg_also=frozenset({TASK_STATUS})),
    Case("NextToken+InvokeRecordStatus", lambda s: {"record_status": "Failed", "before_seq": 20_000},
         RECORD_STATUS, None, lambda s, r: r.seq < 20_000 and r.status in _statuses("Failed")),
]


def window(seeded: Seeded, case: Case) -> ResultFilter:
    return ResultFilter(account_id=seeded.account_id, region_id=REGION, not_before=NOT_BEFORE, min_seq=MIN_SEQ,
                        **case.fields(seeded))


# --------------------------------------------------------------------------------------------- EXPLAIN

class Captured:
    """The statements the store sends while `on`, as sent (SQL and parameters)."""

    def __init__(self, store: Store) -> None:
        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(store.inline or store.engine.sync_engine, "before_cursor_execute", self._hook)

    def _hook(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if self.on and "invocation_results" in statement:
            self.statements.append((statement, parameters))


async def statements(store: Store, captured: Captured, seeded: Seeded, case: Case) -> dict[str, tuple[str, Any]]:
    """The count and page statements the store sends for `case` (as the service: the count first)."""
    f = window(seeded, case)
    found = {}
    async with store.read() as tx:
        total = None
        if case.count is not None:
            captured.statements.clear()
            captured.on = True
            total = await tx.results.count(f)
            captured.on = False
            (found["count"],) = captured.statements
        captured.statements.clear()
        captured.on = True
        # a page at or past TotalCount reads nothing (its plan is asked for all the same)
        await tx.results.list(f, case.offset(total or 0), 11, total=total or None)
        captured.on = False
        (found["page"],) = captured.statements
    return found


def _sqlite_indexes(rows: list[Any], names: dict[str, tuple[str, ...]]) -> list[tuple[str, ...] | str]:
    """The indexes of invocation_results in an EXPLAIN QUERY PLAN (by columns), "table scan" for a scan of it."""
    used: list[tuple[str, ...] | str] = []
    for row in rows:
        detail = str(row[3])
        if not re.match(r"(SEARCH|SCAN) invocation_results\b", detail):
            continue
        index = re.search(r"USING (?:COVERING )?INDEX (\S+)", detail)
        used.append(names[index.group(1)] if index else f"table scan: {detail}")
    return used


def _pg_indexes(plan: Any, names: dict[str, tuple[str, ...]]) -> list[tuple[str, ...] | str]:
    used: list[tuple[str, ...] | str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Index Name") in names:
            used.append(names[node["Index Name"]])
        elif node.get("Relation Name") == "invocation_results" and node["Node Type"] != "Bitmap Heap Scan":
            used.append(f"{node['Node Type']} on invocation_results")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return used


async def index_names(store: Store) -> dict[str, tuple[str, ...]]:
    """The indexes of invocation_results as the database names them (PostgreSQL shortens long names)."""
    async with store.engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("invocation_results"))
    return {str(i["name"]): tuple(str(c) for c in i["column_names"]) for i in found}


async def sqlite_plans(store: Store, captured: Captured, seeded: Seeded) -> dict[str, dict[str, Any]]:
    names = await index_names(store)
    assert store.inline is not None
    store.inline.dispose()  # fresh connections: they read the schema and the statistics as they now are
    found: dict[str, dict[str, Any]] = {}
    for case in CASES:
        sent = await statements(store, captured, seeded, case)
        with store.inline.connect() as conn:
            found[case.name] = {
                kind: _sqlite_indexes(list(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)), names)
                for kind, (sql, params) in sent.items()
            }
    return found


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


async def pg_plans(store: Store, captured: Captured, seeded: Seeded, *, generic: bool) -> dict[str, dict[str, Any]]:
    """Each statement's plan for its values, or (generic) the plan a prepared statement gets once PostgreSQL
    caches a generic one (EXPLAIN EXECUTE under plan_cache_mode = force_generic_plan)."""
    names = await index_names(store)
    found: dict[str, dict[str, Any]] = {}
    for case in CASES:
        sent = await statements(store, captured, seeded, case)
        found[case.name] = {}
        async with store.engine.connect() as conn:
            for kind, (sql, params) in sent.items():
                if generic:
                    await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    await conn.exec_driver_sql(f"PREPARE plans_probe AS {sql}")
                    args = ", ".join(_literal(p) for p in params)
                    result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) EXECUTE plans_probe({args})")
                    plan = result.scalar()
                    await conn.exec_driver_sql("DEALLOCATE plans_probe")
                else:
                    plan = (await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)).scalar()
                found[case.name][kind] = _pg_indexes(plan, names)
            await conn.rollback()
    return found


def mismatches(plans: dict[str, dict[str, Any]], *, postgresql: bool = False) -> list[str]:
    """Where a statement reads other indexes than its case's, or scans the table. SQLite must read exactly
    the indexes meant; PostgreSQL, which cannot be told, only some of them or of the case's `pg_also`."""
    wrong = []
    for case in CASES:
        want = {"page": {case.page}, **({"count": set(case.count)} if case.count is not None else {})}
        for kind, indexes in want.items():
            got = set(plans[case.name][kind])
            fine = got and got <= indexes | case.pg_also if postgresql else got == indexes
            if not fine:
                wrong.append(f"{case.name}, {kind}: reads {plans[case.name][kind]}, meant {sorted(indexes)}")
    return wrong


@pytest.fixture
async def seeded(store: Store) -> Seeded:
    return await seed(store)


async def _recreate_indexes(store: Store, order: Callable[[list[str]], list[str]]) -> None:
    """Drop the indexes of invocation_results and create them again in `order` (of their names)."""
    async with store.engine.begin() as conn:
        rows = list(await conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invocation_results' "
            "AND sql IS NOT NULL ORDER BY rowid"))
        sql = {str(name): str(create) for name, create in rows}
        for name in sql:
            await conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for name in order(list(sql)):
            await conn.exec_driver_sql(sql[name])


def _orders(names: dict[str, tuple[str, ...]]) -> Iterator[tuple[str, Callable[[list[str]], list[str]]]]:
    by_seq = next(name for name, columns in names.items() if columns == SEQ)
    yield "as created", lambda ns: ns
    yield "reversed", lambda ns: ns[::-1]
    yield "(account_id, region_id, seq) last", lambda ns: [n for n in ns if n != by_seq] + [by_seq]
    yield "(account_id, region_id, seq) first", lambda ns: [by_seq] + [n for n in ns if n != by_seq]


async def test_each_shape_reads_its_index(store: Store, seeded: Seeded) -> None:
    """Every shape of filter reads its index. SQLite: without statistics, whatever the order the indexes
    were created in; with ANALYZE's statistics; with false statistics that make every other index look
    better. PostgreSQL, after ANALYZE (autovacuum's): the plan for the values at hand and the generic plan
    of a prepared statement reused with other values."""
    captured = Captured(store)
    wrong: dict[str, list[str]] = {}
    if store.sqlite:
        names = await index_names(store)
        for label, order in _orders(names):
            await _recreate_indexes(store, order)
            wrong[f"no statistics, indexes {label}"] = mismatches(await sqlite_plans(store, captured, seeded))
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
        wrong["ANALYZE"] = mismatches(await sqlite_plans(store, captured, seeded))
        async with store.engine.begin() as conn:  # every index but the account's order: a million rows a value
            for name, columns in names.items():
                stat = "1000000 1 1 1 1" if columns == SEQ else " ".join(["1000000"] * (len(columns) + 1))
                await conn.exec_driver_sql("UPDATE sqlite_stat1 SET stat = ? WHERE idx = ?", (stat, name))
            await conn.exec_driver_sql("ANALYZE sqlite_schema")
        wrong["false statistics"] = mismatches(await sqlite_plans(store, captured, seeded))
    else:
        async with store.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("ANALYZE")
        for generic in (False, True):
            plans = await pg_plans(store, captured, seeded, generic=generic)
            wrong["generic plans" if generic else "custom plans"] = mismatches(plans, postgresql=True)
    failures = [f"{condition}: {line}" for condition, lines in wrong.items() for line in lines]
    assert not failures, "\n".join(failures)


async def test_counts_and_pages_are_the_rows(store: Store, seeded: Seeded) -> None:
    """For every shape: TotalCount (from the counters less the hidden rows, or from the rows) is the number of
    records inside the window, and the pages, at the start, deep (read from the oldest end), at the last
    record and past the end, are the records in order."""
    for case in CASES:
        f = window(seeded, case)
        want = [(r.invoke_id, r.instance_id) for r in seeded.visible(lambda r, c=case: c.select(seeded, r))]
        async with store.read() as tx:
            total = await tx.results.count(f) if case.count is not None else None
            if total is not None:
                assert total == len(want), case.name
            n = len(want)
            for offset in sorted({0, case.offset(n), n // 2, max(0, n - 11), max(0, n - 1), n, n + 5}):
                rows = await tx.results.list(f, offset, 11, total=total)
                got = [(r.invoke_id, r.instance_id) for _, r in rows]
                assert got == want[offset : offset + 11], (case.name, offset)

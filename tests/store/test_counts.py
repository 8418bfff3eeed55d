"""The counters of execution records (store/counts.py) follow every kind of write of `invocation_results`,
and TotalCount read from them is the count of the records inside the retention window; a rolled-back
transaction leaves them as they were; `recount` rebuilds them. (The `store` fixture also checks, after
every test of the storage and service suites, that the counters equal the records.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cloudassist.domain.statuses import ErrorCode, InvocationStatus
from cloudassist.store.counts import drift, recount_in
from cloudassist.store.results import ResultFilter
from cloudassist.store.retention import TRIMMED, Retention
from cloudassist.store.store import Store
from cloudassist.store.tables import invocation_results, result_counts
from store.test_store import REGION, T0, add_task, make_invocation, new_account

S = InvocationStatus
RESULTS = next(t for t in TRIMMED if t.table is invocation_results)


def window(account_id: int, **fields: object) -> ResultFilter:
    return ResultFilter(account_id=account_id, region_id=REGION, not_before=T0 - timedelta(days=14), min_seq=0,
                        **fields)  # type: ignore[arg-type]


async def counter_drift(store: Store) -> dict[tuple[int, str, str, str], tuple[int, int]]:
    async with store.read() as tx:
        return await drift(tx.conn)


async def totals(store: Store, account_id: int) -> dict[str, int]:
    """TotalCount of a few filters, each checked against a count of the rows it selects."""
    filters = {
        "all": window(account_id),
        "Finished": window(account_id, record_status="Finished"),
        "Running": window(account_id, record_status="Running"),
        "Stopped": window(account_id, record_status="Stopped"),
        "c-1": window(account_id, command_id="c-1"),
        "c-2": window(account_id, command_id="c-2"),
        "i-1": window(account_id, instance_id="i-1"),
    }
    found = {}
    async with store.read() as tx:
        for name, f in filters.items():
            found[name] = await tx.results.count(f)
            assert found[name] == len(await tx.results.list(f, 0, 1000)), name
    assert await counter_drift(store) == {}
    return found


async def test_counters_follow_every_write(store: Store) -> None:
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-1", command_id="c-1"), [("i-1", S.PENDING), ("i-2", S.PENDING)])
        await add_task(tx, make_invocation(alice, "t-2", command_id="c-1"), [("i-1", S.RUNNING), ("i-3", S.RUNNING)])
    assert await totals(store, alice) == {"all": 4, "Finished": 0, "Running": 4, "Stopped": 0, "c-1": 4, "c-2": 0,
                                          "i-1": 2}
    async with store.read() as tx:
        t1 = {r.instance_id: r for r in (await tx.results.of_invocations(["t-1"]))["t-1"]}
        t2 = {r.instance_id: r for r in (await tx.results.of_invocations(["t-2"]))["t-2"]}
    async with store.write() as tx:  # a report (expected status), a stop (no expected status), a stale report
        assert await tx.results.update(t2["i-1"].result_id, expect=S.RUNNING, status=S.SUCCESS.value)
        assert await tx.results.update(t1["i-2"].result_id, status=S.CANCELLED.value)
        assert not await tx.results.update(t2["i-1"].result_id, expect=S.RUNNING, status=S.FAILED.value)
        assert await tx.results.update(t2["i-3"].result_id, expect=S.RUNNING, output=b"no status change")
    assert await totals(store, alice) == {"all": 4, "Finished": 1, "Running": 2, "Stopped": 1, "c-1": 4, "c-2": 0,
                                          "i-1": 2}
    async with store.write() as tx:  # the sweeper: only records still in the expected status end
        ended = await tx.results.end_many([t1["i-1"].result_id, t1["i-2"].result_id, t2["i-3"].result_id],
                                          expect=S.PENDING, status=S.ERROR, error_code=ErrorCode.DELIVERY_TIMEOUT,
                                          now=T0, finished=False)
        assert ended == 1
        await tx.results.modified("t-2", command_id="c-2", redeliver=True, now=T0)  # a task's new command
    assert await totals(store, alice) == {"all": 4, "Finished": 1, "Running": 1, "Stopped": 1, "c-1": 2, "c-2": 2,
                                          "i-1": 2}
    async with store.write() as tx:  # the retention job deletes
        assert await Retention(tx.conn, tx.counts).delete(RESULTS, [t1["i-1"].result_id, t1["i-2"].result_id]) == 2
    assert await totals(store, alice) == {"all": 2, "Finished": 1, "Running": 1, "Stopped": 0, "c-1": 0, "c-2": 2,
                                          "i-1": 1}
    async with store.read() as tx:  # the counters of an id with no record left are gone, not kept at zero
        values = {r[0] for r in await tx.conn.execute(select(result_counts.c.value).where(result_counts.c.n == 0))}
    assert not values & {"c-1", "i-2"}


async def test_a_rolled_back_write_leaves_the_counters(store: Store) -> None:
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-1"), [("i-1", S.PENDING)])

    async def fails() -> None:
        async with store.write() as tx:
            await add_task(tx, make_invocation(alice, "t-2"), [("i-1", S.PENDING)])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await fails()
    assert (await totals(store, alice))["all"] == 1


async def test_recount_rebuilds_the_counters(store: Store) -> None:
    alice = await new_account(store)
    async with store.write() as tx:
        await add_task(tx, make_invocation(alice, "t-1"), [("i-1", S.PENDING), ("i-2", S.SUCCESS)])
    async with store.write() as tx:
        await tx.conn.execute(result_counts.delete())
    assert await counter_drift(store) != {}
    async with store.write() as tx:
        await recount_in(tx.conn)
    assert await counter_drift(store) == {}
    async with store.read() as tx:
        assert await tx.conn.scalar(select(func.sum(result_counts.c.n))) == 2 * 3  # status, command, instance

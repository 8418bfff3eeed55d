"""The retention job: delete execution records the API no longer returns, a small batch at a time.

Queries hide records outside the retention window at once (older than `retention_days`, or beyond
the account's newest `retention_count`: see `Context.retention_start` and `accounts.result_seq`);
this job makes the database forget them, so it does not grow without end. Per pass it

1. trims every table of `store.retention.TRIMMED` (the current records, the history of recurring
   tasks): the oldest rows first, at most `retention_batch_size` per write transaction, deleting
   those outside the window that have ended (a record still running is kept whatever its age), and
   stopping at the first row still inside the window;
2. deletes the tasks (and their tags) that have no record left;
3. deletes file tasks (SendFile) older than their six-week window whose records have all ended, with
   those records and their tags;
4. deletes commands RunCommand did not keep that no running task uses (normally gone when their task
   ended; this catches a DryRun's);
5. forgets ClientTokens older than `client_token_hours` and quota counters of past days.

Candidates are read in read transactions; a write transaction only deletes rows by primary key, so
the write lock (SQLite) is held for one batch at a time, and the job pauses as long as each batch
took before the next, leaving the API at least half of the time. `Pass` reports what was done and
the longest a batch held the write lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloudassist import metrics
from cloudassist.domain.files import RETENTION as FILE_RETENTION
from cloudassist.services.commands import TASK_ENDED
from cloudassist.services.context import Context
from cloudassist.services.quotas import utc_day
from cloudassist.store.quotas import Quotas
from cloudassist.store.retention import TRIMMED, Retention, Row, Trimmed
from cloudassist.store.tables import commands, file_results, file_tasks

log = logging.getLogger("cloudassist.retention")
TASK_ENDED_VALUES = frozenset(s.value for s in TASK_ENDED)


@dataclass
class Pass:
    """What one pass of the job did."""

    deleted: dict[str, int] = field(default_factory=dict)
    tasks: int = 0
    #: commands RunCommand did not keep, left behind
    commands: int = 0
    tokens: int = 0
    batches: int = 0
    #: the longest a write transaction of the job was open (seconds): how long it held the lock
    longest_hold: float = 0.0
    #: the time its write transactions were open, in all
    held: float = 0.0
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(self.deleted.values())


class RetentionJob:
    def __init__(self, ctx: Context, *, pause: bool = True) -> None:
        self.ctx = ctx
        self.batch = max(1, ctx.settings.retention_batch_size)
        #: between batches, wait as long as the batch held the lock (off in tests that count batches only)
        self.pause = pause

    async def run_once(self) -> Pass:
        """One pass over every table; returns what it did."""
        started = time.perf_counter()
        done = Pass()
        now = self.ctx.clock.now()
        cutoff = self.ctx.retention_start(now)
        async with self.ctx.store.read() as tx:
            newest = await Retention(tx.conn).newest_seqs()
        floors = {account: seq - self.ctx.settings.retention_count for account, seq in newest.items()}
        for t in TRIMMED:
            if t.by_region:
                for account_id in sorted(floors):
                    async with self.ctx.store.read() as tx:
                        regions = await Retention(tx.conn).regions(t.table, account_id)
                    for region_id in regions:
                        await self._trim(t, done, cutoff, floors, account_id, region_id)
            else:
                await self._trim(t, done, cutoff, floors, None, None)
        for account_id in sorted(floors):
            await self._forget_commands(done, account_id, now - timedelta(hours=1))
            await self._forget_files(done, account_id, now - FILE_RETENTION)
        await self._forget_tokens(done, now - timedelta(hours=self.ctx.settings.client_token_hours))
        async with self._writing(done) as retention:
            await Quotas(retention.conn).forget_days_before(utc_day(now - timedelta(days=1)))
        done.seconds = time.perf_counter() - started
        return done

    async def _trim(
        self,
        t: Trimmed,
        done: Pass,
        cutoff: datetime,
        floors: dict[int, int],
        account_id: int | None,
        region_id: str | None,
    ) -> None:
        after: int | None = None
        while True:
            async with self.ctx.store.read() as tx:
                rows = await Retention(tx.conn).oldest(
                    t, self.batch, account_id=account_id, region_id=region_id, after=after
                )
            doomed: list[Row] = []
            inside = False
            for row in rows:
                if row.creation_time >= cutoff and row.seq > floors.get(row.account_id, 0):
                    inside = True  # the oldest row still returned: everything after it is newer
                    break
                if row.finished:
                    doomed.append(row)
                after = row.seq if t.by_region else row.key
            if doomed and t.status is not None:
                # a record of a task still going is kept: the task's roll-up is made from its records
                async with self.ctx.store.read() as tx:
                    ended = await Retention(tx.conn).ended_tasks([r.invoke_id for r in doomed], TASK_ENDED_VALUES)
                doomed = [r for r in doomed if r.invoke_id in ended]
            if doomed:
                await self._delete(t, done, doomed)
            if inside or len(rows) < self.batch:
                return

    async def _delete(self, t: Trimmed, done: Pass, rows: Sequence[Row]) -> None:
        async with self._writing(done) as retention:
            deleted = await retention.delete(t, [r.key for r in rows])
            done.tasks += await retention.drop_empty_tasks([r.invoke_id for r in rows])
        done.deleted[t.table.name] = done.deleted.get(t.table.name, 0) + deleted

    async def _forget_commands(self, done: Pass, account_id: int, before: datetime) -> None:
        """Commands RunCommand did not keep whose tasks are all gone or ended (normally deleted when their task
        ends; this catches a DryRun's, and any whose task ended before that)."""
        ended = sorted(s.value for s in TASK_ENDED)
        async with self.ctx.store.read() as tx:
            regions = await Retention(tx.conn).regions(commands, account_id)
        for region_id in regions:
            while True:
                async with self.ctx.store.read() as tx:
                    found = await Retention(tx.conn).unkept_commands(account_id, region_id, before, ended, self.batch)
                if not found:
                    break
                async with self._writing(done) as retention:
                    done.commands += await retention.delete_commands(found)
                if len(found) < self.batch:
                    break

    async def _forget_files(self, done: Pass, account_id: int, before: datetime) -> None:
        """File tasks (SendFile) past their six-week window, once every record of theirs has ended."""
        async with self.ctx.store.read() as tx:
            regions = await Retention(tx.conn).regions(file_tasks, account_id)
        for region_id in regions:
            while True:
                async with self.ctx.store.read() as tx:
                    found = await Retention(tx.conn).old_file_tasks(account_id, region_id, before, self.batch)
                if not found:
                    break
                async with self._writing(done) as retention:
                    records = await retention.delete_file_tasks(found)
                done.deleted[file_results.name] = done.deleted.get(file_results.name, 0) + records
                done.tasks += len(found)
                if len(found) < self.batch:
                    break

    async def _forget_tokens(self, done: Pass, before: datetime) -> None:
        while True:
            async with self.ctx.store.read() as tx:
                keys = await Retention(tx.conn).old_tokens(before, self.batch)
            if not keys:
                return
            async with self._writing(done) as retention:
                done.tokens += await retention.delete_tokens(keys)
            if len(keys) < self.batch:
                return

    def _writing(self, done: Pass) -> _Batch:
        return _Batch(self, done)

    async def keep_running(self) -> None:
        """Run a pass every `retention_interval_seconds` (0: never) until cancelled; a failed pass is logged and
        retried at the next interval."""
        every = self.ctx.settings.retention_interval_seconds
        if every <= 0:  # turned off: records stay hidden by the queries, but are never deleted
            return
        while True:
            await asyncio.sleep(every)
            if not self.ctx.leader.is_leader:  # another server sharing the store runs it
                continue
            try:
                done = await self.run_once()
            except Exception:
                metrics.RETENTION_RUNS.labels("failed").inc()
                log.exception("retention pass failed; will retry")
                continue
            metrics.RETENTION_RUNS.labels("ok").inc()
            for what, n in (("records", done.records), ("tasks", done.tasks), ("commands", done.commands),
                            ("tokens", done.tokens)):
                metrics.RETENTION_DELETED.labels(what).inc(n)
            if done.records or done.tasks or done.tokens or done.commands:
                log.info(
                    "retention: deleted %d records, %d tasks, %d unkept commands, %d client tokens in %.2fs "
                    "(longest lock %.3fs)",
                    done.records,
                    done.tasks,
                    done.commands,
                    done.tokens,
                    done.seconds,
                    done.longest_hold,
                )


class _Batch:
    """One write transaction of the job: timed (its lock hold), then a pause as long as it took."""

    def __init__(self, job: RetentionJob, done: Pass) -> None:
        self.job = job
        self.done = done
        self._tx = self.job.ctx.store.write()
        self._began = 0.0

    async def __aenter__(self) -> Retention:
        tx = await self._tx.__aenter__()
        self._began = time.perf_counter()
        return Retention(tx.conn, tx.counts)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._tx.__aexit__(*exc)  # type: ignore[arg-type]
        finally:
            held = time.perf_counter() - self._began
            self.done.batches += 1
            self.done.longest_hold = max(self.done.longest_hold, held)
            self.done.held += held
        if self.job.pause and exc[0] is None:
            await asyncio.sleep(held)

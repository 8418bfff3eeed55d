"""Group commit: many small writes from concurrent requests share one transaction and one commit.

A request hands its write to `GroupCommit.run` as a function of the transaction and waits; one loop applies
everything queued so far in a single write transaction, then answers each caller with its own result once
the transaction has committed, so nothing is acknowledged before it is durable. While one batch commits the
next one gathers, so under load a batch grows to what arrived meanwhile and a lone write waits for nothing.

A write that raises aborts its batch: the batch is rolled back and every write of it is applied again alone,
so one bad write fails only its own caller. A lone write is applied again only when its error says it is worth
it (`worth_retrying`: the store just made room on a full disk). A write must therefore do nothing but database
work through its transaction (side effects come after it returns). Writes are applied in the order of their
`key` (then of arrival), so transactions that lock rows by key take the locks in one order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
X = TypeVar("X")

log = logging.getLogger("cloudassist.store")


@dataclass
class _Write(Generic[X]):
    work: Callable[[X], Awaitable[Any]]
    key: str
    future: asyncio.Future[Any]


class GroupCommit(Generic[X]):
    """Batches writes into shared transactions opened by `begin` (a write transaction of the store)."""

    def __init__(self, begin: Callable[[], AbstractAsyncContextManager[X]], max_batch: int = 500) -> None:
        self.begin = begin
        self.max_batch = max_batch
        self._queue: list[_Write[X]] = []
        self._loop_task: asyncio.Task[None] | None = None
        #: Batches committed and writes applied so far (for the metrics and the benchmarks).
        self.batches = 0
        self.writes = 0

    async def run(self, work: Callable[[X], Awaitable[T]], key: str = "") -> T:
        """Apply `work` in a write transaction shared with other writes; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(work, key, future))
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            batch.sort(key=lambda w: w.key)
            try:
                results = await self._apply(batch)
            except Exception as exc:
                if len(batch) == 1 and not getattr(exc, "worth_retrying", False):
                    self._fail(batch[0], exc)
                    continue
                log.debug("a batch of %d writes failed; applying them one by one", len(batch))
                for write in batch:
                    if write.future.cancelled():
                        continue
                    try:
                        (result,) = await self._apply([write])
                    except Exception as alone:
                        self._fail(write, alone)
                    else:
                        _answer(write, result)
                continue
            for write, result in zip(batch, results, strict=True):
                _answer(write, result)

    async def _apply(self, batch: list[_Write[X]]) -> list[Any]:
        results = []
        async with self.begin() as tx:
            for write in batch:
                results.append(await write.work(tx))
        self.batches += 1
        self.writes += len(batch)
        return results

    @staticmethod
    def _fail(write: _Write[X], exc: BaseException) -> None:
        if not write.future.done():
            write.future.set_exception(exc)


def _answer(write: _Write[Any], result: Any) -> None:
    if not write.future.done():
        write.future.set_result(result)

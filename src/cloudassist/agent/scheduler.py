"""Schedules of periodic tasks (`repeat` Rate, At, Period) kept by our agent (agent-protocol §1.8).

The server lists a scheduled task once (and again on every start-up fetch); from then on the agent fires
it by itself. Each schedule is one asyncio task that computes its next wall-clock run with
`domain.schedules.next_run`, sleeps until then, fires, and starts over:

* monotonic-safe: it sleeps in naps of at most `NAP` seconds and compares the wall clock's progress with
  the monotonic clock's; when they disagree by more than `JUMP` seconds (the wall clock was set) it
  computes the next run again from the new wall-clock time. A tick the wall clock jumped over is not
  caught up; a tick is fired only once the wall clock has reached it;
* never overlapping: the loop waits for a run to end before computing the next one, so ticks that pass
  while a run is going are skipped (rate ticks stay anchored at creation: they count between starts);
* a tick fires once: the next one is computed from the later of now and the last tick fired, so a wall
  clock set back (even during a run) never fires the same tick again, nor an `at()` twice;
* no next run (a passed `at()`, a cron beyond its last year): the `completed` callback, once; if it fails
  (a full spool, say) it is logged and tried again every `RETRY` seconds while the schedule is kept;
* a failing `fire` is logged and the schedule goes on with its next tick;
* a new `invokeVersion` of the same task replaces its schedule; the same version again is a no-op; an
  older one is ignored.

What a run does and how it is reported is the caller's (`runner.Agent`): `fire(schedule, tick)` runs one
tick and returns when the run has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Protocol

log = logging.getLogger("cloudassist.agent.scheduler")
NAP = 30.0  #: the longest single sleep: a wall-clock jump is noticed within this
JUMP = 2.0  #: seconds of disagreement between the wall and monotonic clocks that count as a jump
RETRY = 60.0  #: seconds before a failed `completed` callback is tried again
SCHEDULED_MODES = frozenset({"Period", "Rate", "At"})


class Clock(Protocol):
    def time(self) -> float: ...  # the wall clock (time.time())

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def local_zone(name: str | None, now: time.struct_time | None = None) -> tzinfo:
    """The instance's zone for cron expressions without one: the IANA zone `name` if known, else the
    fixed offset the system reports at `now` (default: now; `time.localtime().tm_gmtoff`)."""
    if name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only once a task has a schedule

        with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
            return ZoneInfo(name)
    now = now or time.localtime()
    offset = timedelta(seconds=now.tm_gmtoff)
    return timezone(offset, now.tm_zone) if now.tm_zone else timezone(offset)


class Added(StrEnum):
    NEW = "new"
    SAME = "same"  #: this version is scheduled already (every start-up fetch lists it again)
    REPLACED = "replaced"  #: a newer version: the old schedule was cancelled
    OLDER = "older"  #: an older version than the one scheduled: ignored


@dataclass(eq=False)
class Schedule:
    """One scheduled task version."""

    task_id: str
    version: int
    repeat: str  #: Period | Rate | At
    frequency: str
    created: datetime
    loop: asyncio.Task[None] | None = None
    runs: int = 0  #: ticks fired by this process
    last_start: float | None = None  #: time.time() of the last run's start, if any (set by the caller)
    last_end: float | None = None
    last_tick: float | None = None  #: the last tick fired: the next one is strictly after it
    cancelled: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.version


Fire = Callable[[Schedule, float], Awaitable[None]]
Completed = Callable[[Schedule], None]


@dataclass(eq=False)
class Scheduler:
    """The agent's schedules, one per task id."""

    fire: Fire
    completed: Completed
    #: The zone of cron expressions that name none, found when first needed: the agent loads the zone
    #: database (and the cron code) only once a task has a schedule.
    zone_of: Callable[[], tzinfo] = lambda: UTC
    clock: Clock = field(default_factory=SystemClock)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    _zone: tzinfo | None = field(default=None, init=False, repr=False)

    @property
    def zone(self) -> tzinfo:
        if self._zone is None:
            self._zone = self.zone_of()
        return self._zone

    def add(self, schedule: Schedule) -> Added:
        """Start `schedule` unless this version (or a newer one) of its task is scheduled; call in the loop."""
        current = self.schedules.get(schedule.task_id)
        if current is not None:
            if current.version == schedule.version:
                return Added.SAME
            if current.version > schedule.version:
                return Added.OLDER
            self.cancel(current.task_id)
        self.schedules[schedule.task_id] = schedule
        schedule.loop = asyncio.create_task(self._run(schedule), name=f"schedule {schedule.task_id}")
        return Added.NEW if current is None else Added.REPLACED

    def get(self, task_id: str) -> Schedule | None:
        return self.schedules.get(task_id)

    def cancel(self, task_id: str) -> Schedule | None:
        """Stop firing the task's schedule (a run going on is the caller's to stop); the schedule, if any."""
        schedule = self.schedules.pop(task_id, None)
        if schedule is not None:
            schedule.cancelled = True
            if schedule.loop is not None:
                schedule.loop.cancel()
        return schedule

    async def close(self) -> None:
        """Cancel every schedule and wait for their loops (the runs they await are not cancelled)."""
        loops = [s.loop for s in self.schedules.values() if s.loop is not None]
        for task_id in list(self.schedules):
            self.cancel(task_id)
        await asyncio.gather(*loops, return_exceptions=True)

    def next_run(self, schedule: Schedule) -> float | None:
        """The next tick after now and after the last tick fired (time.time() units), or None."""
        from cloudassist.domain.schedules import next_run

        after = datetime.fromtimestamp(max(self.clock.time(), schedule.last_tick or 0.0), UTC)
        found = next_run(schedule.frequency, after=after, created=schedule.created, local_zone=self.zone)
        return None if found is None else found.timestamp()

    async def _run(self, schedule: Schedule) -> None:
        while not schedule.cancelled:
            try:
                tick = self.next_run(schedule)
            except ValueError as exc:  # checked when it was scheduled: cannot happen, but must not go silent
                log.error("task %s: no next run of %r (%s); schedule dropped", schedule.task_id,
                          schedule.frequency, exc)
                self._forget(schedule)
                return
            if tick is None:
                try:
                    self.completed(schedule)
                except Exception:
                    log.exception("task %s: its completion cannot be reported; again in %.0f s",
                                  schedule.task_id, RETRY)
                    await self.clock.sleep(RETRY)
                    continue
                self._forget(schedule)
                return
            if not await self._sleep_until(tick):
                log.info("task %s: the wall clock jumped; next run computed again", schedule.task_id)
                continue
            schedule.runs += 1
            schedule.last_tick = tick
            try:
                await self.fire(schedule, tick)
            except Exception:
                log.exception("task %s: the run of tick %.3f failed; the schedule goes on", schedule.task_id, tick)

    def _forget(self, schedule: Schedule) -> None:
        if self.schedules.get(schedule.task_id) is schedule:
            del self.schedules[schedule.task_id]

    async def _sleep_until(self, wall_target: float) -> bool:
        """Sleep until the wall clock reaches `wall_target`: True; False as soon as the wall clock jumps."""
        while True:
            wall, mono = self.clock.time(), self.clock.monotonic()
            remaining = wall_target - wall
            if remaining <= 0:
                return True
            await self.clock.sleep(min(remaining, NAP))
            drift = (self.clock.time() - wall) - (self.clock.monotonic() - mono)
            if abs(drift) > JUMP:
                return False

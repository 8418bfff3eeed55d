"""The agent's schedules: the Scheduler's timing on a fake clock (ticks, no overlap, wall-clock jumps, versions),
then Agent.dispatch with scheduled and reboot entries on real short intervals, the reports read from the spool
(no server: the sender is never started)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloudassist.agent import identity as ident
from cloudassist.agent.runner import Agent
from cloudassist.agent.scheduler import NAP, Added, Schedule, Scheduler
from cloudassist.agent.spool import Item

T0 = datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=UTC).timestamp()


class FakeClock:
    """Wall and monotonic clocks that move only when slept on; `jumps` are applied to the wall clock during
    the next sleeps (one per sleep)."""

    def __init__(self, wall: float) -> None:
        self.wall, self.mono = wall, 0.0
        self.jumps: list[float] = []
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += seconds + (self.jumps.pop(0) if self.jumps else 0.0)
        self.mono += seconds
        await asyncio.sleep(0)


class Recorder:
    def __init__(self, clock: FakeClock, run_seconds: float = 0.0, stop_after: int = 5) -> None:
        self.clock, self.run_seconds, self.stop_after = clock, run_seconds, stop_after
        self.fired: list[tuple[str, float, float]] = []  # (task id, tick, wall time at fire)
        self.completed: list[str] = []
        self.done = asyncio.Event()

    async def fire(self, schedule: Schedule, tick: float) -> None:
        self.fired.append((schedule.task_id, tick, self.clock.time()))
        self.clock.wall += self.run_seconds
        self.clock.mono += self.run_seconds
        if len(self.fired) >= self.stop_after:
            self.done.set()
        await asyncio.sleep(0)

    def complete(self, schedule: Schedule) -> None:
        self.completed.append(schedule.task_id)
        self.done.set()


def schedule(frequency: str, task_id: str = "t-1", version: int = 1, created: float = T0) -> Schedule:
    return Schedule(task_id, version, "Period", frequency, datetime.fromtimestamp(created, UTC))


async def run_until_done(scheduler: Scheduler, recorder: Recorder) -> None:
    await asyncio.wait_for(recorder.done.wait(), 5)
    await scheduler.close()


async def test_a_cron_fires_on_each_tick_never_before_it() -> None:
    clock = FakeClock(T0)
    rec = Recorder(clock)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("*/5 * * * * ?"))
    await run_until_done(scheduler, rec)
    ticks = [tick - T0 for _, tick, _ in rec.fired][:5]  # the loop may run ahead before we look
    assert ticks == [4.5, 9.5, 14.5, 19.5, 24.5]  # :05, :10, … after 10:00:00.5
    assert all(wall >= tick for _, tick, wall in rec.fired)


async def test_ticks_while_a_run_is_going_are_skipped_and_a_rate_stays_anchored() -> None:
    clock = FakeClock(T0)
    rec = Recorder(clock, run_seconds=150, stop_after=3)  # each run takes 2.5 intervals of 60 s
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("rate(60s)", created=T0 - 30))
    await run_until_done(scheduler, rec)
    assert [tick - T0 for _, tick, _ in rec.fired][:3] == [30, 210, 390]  # creation + 1, 4, 7 intervals


async def test_a_wall_clock_jump_back_is_noticed_during_the_sleep() -> None:
    clock = FakeClock(T0)  # 10:00:00.5; the next hourly tick is 11:00
    clock.jumps = [-86_400.0]  # during the first nap, the clock is set back one day
    rec = Recorder(clock, stop_after=1)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("0 0 * * * ?"))
    await run_until_done(scheduler, rec)
    tick = rec.fired[0][1]
    assert tick == T0 - 0.5 + 3600 - 86_400  # 11:00 of the day before: computed again from the new time
    assert max(clock.sleeps) <= NAP


async def test_a_wall_clock_jump_forward_skips_the_missed_tick() -> None:
    clock = FakeClock(T0)
    clock.jumps = [2 * 3600.0]  # 10:00:30 becomes 12:00:30: the 11:00 and 12:00 ticks are not caught up
    rec = Recorder(clock, stop_after=1)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("0 0 * * * ?"))
    await run_until_done(scheduler, rec)
    assert rec.fired[0][1] == T0 - 0.5 + 3 * 3600


async def test_a_passed_at_completes_without_firing_and_a_future_one_fires_once() -> None:
    clock = FakeClock(T0)
    rec = Recorder(clock)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("at(2026-06-01T10:00:10)", task_id="t-at"))
    await asyncio.wait_for(rec.done.wait(), 5)
    assert [(task, tick - T0) for task, tick, _ in rec.fired] == [("t-at", 9.5)]
    assert rec.completed == ["t-at"]
    assert scheduler.get("t-at") is None


async def test_versions_same_is_a_noop_newer_replaces_older_is_ignored() -> None:
    clock = FakeClock(T0)
    rec = Recorder(clock, stop_after=4)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    first = schedule("0 0 * * * ?", version=2)
    assert scheduler.add(first) is Added.NEW
    assert scheduler.add(schedule("*/5 * * * * ?", version=2)) is Added.SAME
    assert scheduler.add(schedule("*/5 * * * * ?", version=1)) is Added.OLDER
    assert scheduler.add(schedule("*/7 * * * * ?", version=3)) is Added.REPLACED
    await run_until_done(scheduler, rec)
    assert first.cancelled
    seconds = [datetime.fromtimestamp(tick, UTC).second for _, tick, _ in rec.fired[:4]]
    assert seconds == [7, 14, 21, 28]  # only the */7 schedule fired (not the hourly one nor */5)
    assert len({task for task, _, _ in rec.fired}) == 1


# ---- the agent: dispatch of scheduled and reboot entries, reports read from the spool ----


class NoServer:
    """A client that is never called (the tests call dispatch directly and never start the sender)."""

    async def aclose(self) -> None:
        return None

    async def report(self, kind: str, query: Any, body: bytes) -> None:
        raise AssertionError("no report is sent in these tests")


@pytest.fixture(scope="module")
def key() -> Any:
    return ident.generate()


@pytest.fixture
async def agent(tmp_path: Path, key: Any) -> AsyncIterator[Agent]:
    identity = ident.Identity("i-sched0001", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
    made = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    yield made
    await made.scheduler.close()
    for run in list(made._runs.values()):
        if run.execution is not None:
            run.execution.stop()
    await asyncio.gather(*(r.future for r in made._runs.values() if r.future), return_exceptions=True)


def entry(task_id: str, script: str, repeat: str, cron: str = "", version: int = 1, **task: Any) -> dict[str, Any]:
    return {
        "repeat": repeat,
        "task": {
            "taskID": task_id, "invokeVersion": version, "type": "RunShellScript", "timeOut": "30",
            "commandContent": base64.b64encode(script.encode()).decode(), "cron": cron,
            "creationTime": int(time.time() * 1000), **task,
        },
        "output": {"interval": 1000, "logQuota": 12000},
    }


def reports(agent: Agent, task_id: str) -> list[Item]:
    return [i for i in agent.spool.items() if i.query.get("taskId") == task_id]


async def wait_reports(agent: Agent, task_id: str, predicate: Any, seconds: float = 8.0) -> list[Item]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = reports(agent, task_id)
        if predicate(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"reports of {task_id}: {[(i.kind, i.query) for i in reports(agent, task_id)]}")


def finishes(items: list[Item]) -> list[Item]:
    return [i for i in items if i.kind == "finish"]


async def test_a_cron_task_runs_every_tick_and_reports_like_the_official_agent(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-cron1", "echo tick", "Period", "* * * * * ?")]})
    items = await wait_reports(agent, "t-cron1", lambda f: len(finishes(f)) >= 2)
    assert [i.kind for i in items[:4]] == ["running", "finish", "running", "finish"]
    running, finish = items[0], items[1]
    assert running.query["currentTime"] == running.query["start"]
    assert set(running.query) >= {"offset", "timeZone"}
    assert running.body == b""
    assert finish.query["start"] == running.query["start"]
    assert finish.query["currentTime"] == finish.query["end"]
    assert finish.query["exitCode"] == "0"
    assert {"offset", "timeZone"} <= set(finish.query)
    assert finish.body == b"tick\n"
    starts = [int(i.query["start"]) for i in finishes(items)]
    assert starts[1] - starts[0] >= 500  # one a second, never two in the same tick
    assert agent.schedule_journal.get("t-cron1", 1).state == "done"  # type: ignore[union-attr]


async def test_the_same_version_again_does_not_duplicate_a_newer_one_replaces(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-cron2", "echo v1", "Period", "* * * * * ?")]})
    first = agent.scheduler.get("t-cron2")
    agent.dispatch({"run": [entry("t-cron2", "echo v1", "Period", "* * * * * ?")]})  # a start-up fetch again
    assert agent.scheduler.get("t-cron2") is first
    assert len(agent.scheduler.schedules) == 1
    await wait_reports(agent, "t-cron2", lambda f: len(finishes(f)) >= 1)
    agent.dispatch({"run": [entry("t-cron2", "echo v2", "Period", "* * * * * ?", version=2)]})
    assert first is not None
    assert first.cancelled
    items = await wait_reports(agent, "t-cron2", lambda f: any(i.query["invokeVersion"] == "2" for i in finishes(f)))
    v2 = [i for i in finishes(items) if i.query["invokeVersion"] == "2"]
    assert v2[0].body == b"v2\n"
    starts = sorted(int(i.query["start"]) for i in items if i.kind == "running")
    assert len(starts) == len(set(starts))  # never two runs of one task at once or per tick


async def test_a_rate_task_reports_current_time_only(agent: Agent) -> None:
    created = int((time.time() - 1.5) * 1000)
    agent.dispatch({"run": [entry("t-rate1", "echo r", "Rate", "rate(2s)", creationTime=created)]})
    items = await wait_reports(agent, "t-rate1", lambda f: len(finishes(f)) >= 1, 5)
    finish = finishes(items)[0]
    assert "currentTime" in finish.query
    assert "offset" not in finish.query
    assert "timeZone" not in finish.query
    assert (int(finish.query["start"]) - created) % 2000 < 1000  # anchored at creation


async def test_an_at_task_runs_once_then_completes(agent: Agent) -> None:
    when = datetime.fromtimestamp(int(time.time()) + 2, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    agent.dispatch({"run": [entry("t-at1", "echo at", "At", f"at({when})")]})
    items = await wait_reports(agent, "t-at1", lambda f: any(i.kind == "stopped" for i in f))
    assert [i.kind for i in items] == ["running", "finish", "stopped"]
    assert items[2].query["result"] == "completed"
    assert items[2].query["start"] == items[1].query["start"]
    assert items[2].query["end"] == items[1].query["end"]
    agent.dispatch({"run": [entry("t-at1", "echo at", "At", f"at({when})")]})  # listed again: nothing more
    await asyncio.sleep(0.3)
    assert len(reports(agent, "t-at1")) == 3


async def test_bad_expressions_are_invalid_and_a_passed_at_is_expired(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-bad1", "echo", "Period", "garbage"), entry("t-bad2", "echo", "Rate", "rate(x)"),
                            entry("t-bad3", "echo", "At", "at(2020-01-01T00:00:00)")]})
    got = {i.query["taskId"]: (i.kind, i.query.get("param"), i.query.get("value")) for i in agent.spool.items()}
    assert got == {"t-bad1": ("invalid", "cron", "InvalidCronExpression"),
                   "t-bad2": ("invalid", "cron", "InvalidRateExpression"),
                   "t-bad3": ("invalid", "cron", "AtExpressionExpired")}
    agent.dispatch({"run": [entry("t-bad1", "echo", "Period", "garbage")]})  # listed again: reported once
    assert len(agent.spool.items()) == 3


async def test_a_cron_beyond_its_years_completes_at_once(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-old1", "echo", "Period", "0 0 0 1 1 ? 2020")]})
    items = await wait_reports(agent, "t-old1", lambda f: len(f) >= 1)
    assert [(i.kind, i.query["result"]) for i in items] == [("stopped", "completed")]


async def test_a_stop_while_idle_cancels_and_reports_the_last_run(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-stop1", "echo s", "Period", "* * * * * ?")]})
    items = await wait_reports(agent, "t-stop1", lambda f: len(finishes(f)) >= 1)
    # stop right after a run ended (a run takes far less than the second between ticks)
    while agent._runs:  # noqa: ASYNC110 - polling the agent from outside
        await asyncio.sleep(0.01)
    agent.dispatch({"stop": [entry("t-stop1", "", "Period", "* * * * * ?")]})
    assert agent.scheduler.get("t-stop1") is None
    await asyncio.sleep(1.5)
    items = reports(agent, "t-stop1")
    stopped = [i for i in items if i.kind == "stopped"]
    assert len(stopped) == 1
    assert stopped[0].query["result"] == "killed"
    last = finishes(items)[-1]
    assert stopped[0].query["start"] == last.query["start"]
    assert stopped[0].query["end"] == last.query["end"]
    assert items[-1].kind == "stopped"  # nothing ran after the stop
    agent.dispatch({"run": [entry("t-stop1", "echo s", "Period", "* * * * * ?")]})  # a later start-up fetch
    assert agent.scheduler.get("t-stop1") is None


async def test_a_stop_while_a_run_goes_kills_it(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-stop2", "echo begin; sleep 20", "Period", "* * * * * ?")]})
    await wait_reports(agent, "t-stop2", lambda f: any(i.kind == "running" for i in f))
    await asyncio.sleep(0.5)  # the shell has printed "begin"
    agent.dispatch({"stop": [entry("t-stop2", "", "Period")]})
    items = await wait_reports(agent, "t-stop2", lambda f: any(i.kind == "stopped" for i in f))
    assert [i.kind for i in items] == ["running", "stopped"]
    assert items[1].query["result"] == "killed"
    assert items[1].body == b"begin\n"
    await asyncio.sleep(1.2)
    assert len(reports(agent, "t-stop2")) == 2


async def test_reboot_tasks_run_once_like_once_tasks(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-next1", "echo next", "NextRebootOnly"), entry("t-every1", "echo every",
                                                                                 "EveryReboot")]})
    for task in ("t-next1", "t-every1"):
        items = await wait_reports(agent, task, lambda f: any(i.final for i in f))
        assert [i.kind for i in items if i.final] == ["finish"]
        assert "currentTime" not in items[-1].query
    agent.dispatch({"run": [entry("t-next1", "echo next", "NextRebootOnly"), entry("t-every1", "echo every",
                                                                                 "EveryReboot")]})
    await asyncio.sleep(0.5)
    assert sum(i.final for i in reports(agent, "t-next1") + reports(agent, "t-every1")) == 2


async def test_every_reboot_runs_again_in_a_new_agent_process_next_reboot_only_does_not(
    tmp_path: Path, key: Any
) -> None:
    identity = ident.Identity("i-sched0002", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
    for boot in range(2):
        agent = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
        agent._recover()
        agent.dispatch({"run": [entry("t-next2", "echo next", "NextRebootOnly"),
                                entry("t-every2", "echo every", "EveryReboot")]})
        await wait_reports(agent, "t-every2", lambda f, n=boot + 1: sum(i.kind == "finish" for i in f) == n)
        await asyncio.sleep(0.3)
        assert sum(i.kind == "finish" for i in reports(agent, "t-next2")) == 1


async def test_a_scheduled_run_cut_short_by_an_agent_death_is_reported_interrupted(tmp_path: Path, key: Any) -> None:
    identity = ident.Identity("i-sched0003", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
    first = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    first.dispatch({"run": [entry("t-int1", "sleep 30", "Period", "* * * * * ?")]})
    await wait_reports(first, "t-int1", lambda f: any(i.kind == "running" for i in f))
    # the agent "dies": its schedule and run vanish without a report (the process is killed by hand)
    await first.scheduler.close()
    [run] = first._runs.values()
    assert run.execution is not None
    assert run.execution.pid is not None
    run.future.cancel()  # type: ignore[union-attr]
    second = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    second._recover()
    errors = [i for i in reports(second, "t-int1") if i.kind == "error"]
    assert len(errors) == 1
    assert errors[0].query["errCode"] == "ExecutionInterrupted"
    second._recover()  # a second restart reports nothing more
    assert len([i for i in reports(second, "t-int1") if i.kind == "error"]) == 1


async def test_a_new_version_waits_for_the_old_versions_run(agent: Agent) -> None:
    """A replaced schedule's run goes on and is reported under its version; the new version's ticks are
    skipped until it has ended (one task never runs twice at once)."""
    agent.dispatch({"run": [entry("t-repl1", "echo old; sleep 2.5", "Period", "* * * * * ?")]})
    await wait_reports(agent, "t-repl1", lambda f: any(i.kind == "running" for i in f))
    agent.dispatch({"run": [entry("t-repl1", "echo new", "Period", "* * * * * ?", version=2)]})
    items = await wait_reports(agent, "t-repl1", lambda f: any(i.query["invokeVersion"] == "2" for i in finishes(f)))
    old = [i for i in items if i.query["invokeVersion"] == "1"]
    assert [i.kind for i in old] == ["running", "finish"]
    assert old[1].body == b"old\n"
    first_new = next(i for i in items if i.query["invokeVersion"] == "2")
    assert int(first_new.query["start"]) >= int(old[1].query["end"])


async def test_a_run_whose_final_report_was_spooled_is_not_reported_again(tmp_path: Path, key: Any) -> None:
    """The agent died after spooling a run's final report but before journaling it done: the restart finds
    the report in the spool and adds no ExecutionInterrupted for that run (the server would count a run more)."""
    identity = ident.Identity("i-sched0004", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
    first = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    started = time.time()
    first.schedule_journal.start("t-spool1", 1, started)
    first.spool.put("finish", {"taskId": "t-spool1", "invokeVersion": "1", "start": str(int(started * 1000) + 5),
                               "end": str(int(started * 1000) + 20), "exitCode": "0"}, b"ok\n", final=True)
    first.schedule_journal.start("t-spool2", 1, started)  # this one really was cut short
    second = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
    second._recover()
    assert [i.kind for i in reports(second, "t-spool1")] == ["finish"]
    assert [i.query["errCode"] for i in reports(second, "t-spool2")] == ["ExecutionInterrupted"]
    assert second.schedule_journal.get("t-spool1", 1).state == "done"  # type: ignore[union-attr]


# ---- review fixes: versions rejected, clock steps back, early stops, ended runs, failures, bounds, zone ----


async def test_a_newer_version_that_is_invalid_ends_the_older_schedule(agent: Agent) -> None:
    for bad in ({"cron": "garbage"}, {"cron": "at(2020-01-01T00:00:00)", "repeat": "At"},
                {"commandContent": "%%%not base64"}):
        task = f"t-vbad{len(agent.spool.items())}"
        agent.dispatch({"run": [entry(task, "echo v1", "Period", "* * * * * ?")]})
        await wait_reports(agent, task, lambda f: len(finishes(f)) >= 1)
        newer = entry(task, "echo v2", bad.pop("repeat", "Period"), "* * * * * ?", version=2)
        newer["task"].update(bad)
        agent.dispatch({"run": [newer]})
        assert agent.scheduler.get(task) is None
        assert (task, 1) not in agent._scheduled
        assert (task, 1) not in agent._contents
        await asyncio.sleep(1.3)
        while agent._runs:  # noqa: ASYNC110 - a v1 run that was going may end
            await asyncio.sleep(0.05)
        count = len(reports(agent, task))
        await asyncio.sleep(1.2)
        assert len(reports(agent, task)) == count  # v1 no longer runs
        assert [i.kind for i in reports(agent, task) if i.query["invokeVersion"] == "2"] in (["invalid"], ["error"])


class SteppingBack(Recorder):
    """Each run sets the wall clock back 30 s (an NTP step) while the monotonic clock moves on."""

    async def fire(self, schedule: Schedule, tick: float) -> None:
        await super().fire(schedule, tick)
        self.clock.wall -= 30
        self.clock.mono += 1


async def test_a_wall_clock_set_back_during_a_run_never_fires_the_same_tick_again() -> None:
    clock = FakeClock(T0)
    rec = SteppingBack(clock, stop_after=3)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("0 * * * * ?"))
    await run_until_done(scheduler, rec)
    ticks = [tick for _, tick, _ in rec.fired]
    assert len(ticks) == len(set(ticks)), ticks
    assert ticks[1] - ticks[0] == 60


async def test_an_at_fires_once_even_if_the_clock_is_set_back_after_it() -> None:
    clock = FakeClock(T0)
    rec = SteppingBack(clock)
    scheduler = Scheduler(rec.fire, rec.complete, clock=clock)
    scheduler.add(schedule("at(2026-06-01T10:00:10)", task_id="t-at"))
    await asyncio.wait_for(rec.done.wait(), 5)
    assert len(rec.fired) == 1
    assert rec.completed == ["t-at"]


async def test_a_failing_completion_is_retried_and_a_failing_run_does_not_end_the_schedule() -> None:
    clock = FakeClock(T0)
    calls: list[str] = []
    done = asyncio.Event()

    def complete(s: Schedule) -> None:
        calls.append(s.task_id)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        done.set()

    fired: list[float] = []

    async def fire(s: Schedule, tick: float) -> None:
        fired.append(tick)
        if len(fired) == 1:
            raise RuntimeError("the run blew up")

    scheduler = Scheduler(fire, complete, clock=clock)
    scheduler.add(schedule("at(2026-06-01T10:00:10)", task_id="t-at"))
    scheduler.add(schedule("*/5 * * * * ?", task_id="t-cron"))
    await asyncio.wait_for(done.wait(), 5)
    assert calls == ["t-at", "t-at"]
    assert scheduler.get("t-at") is None
    for _ in range(50):
        if len([t for t in fired if t]) >= 3:
            break
        await asyncio.sleep(0)
    await scheduler.close()
    assert len(fired) >= 3  # the cron schedule went on after its first run failed


async def test_a_stop_before_the_run_took_its_first_step_is_reported_and_forgotten(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-early1", "echo never", "Once")]})
    assert ("t-early1", 1) in agent._runs
    agent._stop_task("t-early1", 1)  # before the event loop ran the new task even once
    items = await wait_reports(agent, "t-early1", lambda f: len(f) >= 1, 3)
    assert [(i.kind, i.query["result"]) for i in items] == [("stopped", "killed")]
    assert agent._runs == {}
    assert agent.journal.get("t-early1", 1).state == "done"  # type: ignore[union-attr]


async def test_a_scheduled_run_reported_invalid_ends_its_schedule(agent: Agent) -> None:
    agent.dispatch({"run": [entry("t-inv1", "echo x", "Period", "* * * * * ?", workingDirectory="/no/such/dir")]})
    await wait_reports(agent, "t-inv1", lambda f: any(i.kind == "invalid" for i in f))
    await asyncio.sleep(1.5)
    assert [i.kind for i in reports(agent, "t-inv1")] == ["invalid"]
    assert agent.scheduler.get("t-inv1") is None
    assert ("t-inv1", 1) not in agent._scheduled
    agent.dispatch({"run": [entry("t-inv1", "echo x", "Period", "* * * * * ?", workingDirectory="/no/such/dir")]})
    assert agent.scheduler.get("t-inv1") is None  # listed again: not scheduled again


async def test_stops_confirmed_and_entries_skipped_are_remembered_within_a_bound(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudassist.agent import runner

    small = runner.Recent(4)
    for n in range(10):
        small.add(("t", n))
    assert len(small) == 4
    assert ("t", 9) in small
    assert ("t", 0) not in small
    monkeypatch.setattr(runner, "RECENT_LIMIT", 4)
    bounded = Agent(agent.identity, agent.state_dir, client=NoServer())  # type: ignore[arg-type]
    bounded.dispatch({"stop": [entry(f"t-gone{n}", "", "Once") for n in range(10)],
                      "run": [entry(f"t-odd{n}", "echo", "Weekly") for n in range(10)]})
    assert len(bounded._stops_sent) == 4
    assert len(bounded._skipped) == 4
    assert ("t-gone9", 1) in bounded._stops_sent


def test_a_local_zone_without_a_name_is_the_systems_offset_not_utc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: Any
) -> None:
    from datetime import timedelta

    from cloudassist.agent import client
    from cloudassist.domain.schedules import next_run

    copied = tmp_path / "localtime"
    copied.write_bytes(b"TZif2 a copy, not a link")
    monkeypatch.setattr(client, "TIMEZONE_FILE", str(tmp_path / "no-timezone"))
    monkeypatch.setattr(client, "LOCALTIME", str(copied))
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    try:
        assert client._zone_name() is None
        assert client._time_zone() == "UTC+05:30"
        identity = ident.Identity("i-sched0005", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
        made = Agent(identity, tmp_path / "state", client=NoServer())  # type: ignore[arg-type]
        zone = made.scheduler.zone
        assert zone.utcoffset(None) == timedelta(hours=5, minutes=30)
        after = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
        found = next_run("0 0 9 * * ?", after=after, created=after, local_zone=zone)
        assert found == datetime(2026, 6, 1, 3, 30, tzinfo=UTC)  # 09:00 at +05:30
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        assert client._zone_name() == "Asia/Tokyo"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

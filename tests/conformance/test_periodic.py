"""§4.4 (and scheduletask.go): periodic tasks. The agent schedules a task by its `repeat` alone: "Period" feeds
`cron` to its cron parser, "Rate" to its rate parser (`rate(7s)`), "At" to its at parser (`at(2006-01-02T15:04:05)`,
UTC); a cron run posts `running?…&start=S&currentTime=S&offset=0&timeZone=Etc%2FUTC` and `finish?…&currentTime=E&…`
every time it fires, and it keeps firing until a `stop` entry arrives."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from luban import Agent, Ecs, Execution, acknowledged, now_ms, wait_for_kick

TERMINAL = {"Success", "Failed", "Error", "Timeout", "Cancelled", "Terminated", "Invalid", "Aborted"}
#: gorhill/cronexpr needs 6-8 fields (ratescheduled.go / cronscheduled.go decide by `repeat`, not by content).
RATE = re.compile(r"(?i)^rate\s*\((\d+)\s*([smhd])\)$")


def delivered(agent: Agent, invoke_id: str) -> dict[str, Any]:
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    return entry


def new_at_scheduled(cronat: str) -> datetime:
    """atscheduled.go's NewAtScheduled: strip `at(` … `)`, parse "2006-01-02T15:04:05" as UTC; raises ValueError."""
    if cronat[:3].lower() == "at(" and cronat.endswith(")"):
        cronat = cronat[3:-1]
    return datetime.strptime(cronat, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def cron_run(agent: Agent, task: dict[str, Any], output: bytes) -> Execution:
    """One firing of a cron task as captured: the started post and the finish, both with the wall-clock params."""
    run = Execution(task["taskID"], task["invokeVersion"], now_ms())
    acknowledged(agent.report("running", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                              ("start", run.start), ("currentTime", run.start), ("offset", 0),
                              ("timeZone", "Etc/UTC")))
    run.end = run.start + 20
    acknowledged(agent.report("finish", ("taskId", run.task_id), ("invokeVersion", run.invoke_version),
                              ("start", run.start), ("end", run.end), ("exitCode", 0), ("dropped", 0),
                              ("currentTime", run.end), ("offset", 0), ("timeZone", "Etc/UTC"), body=output))
    return run


def test_a_cron_frequency_is_delivered_as_repeat_period(agent: Agent, api: Ecs) -> None:
    """RepeatMode=Period with a cron Frequency reaches the agent as `"repeat":"Period"` and the expression in
    `cron`, which its cron parser takes (6 fields, optional year and time zone)."""
    invoke_id = api.run_command(agent.instance_id, "echo tick", RepeatMode="Period", Frequency="0 */5 * * * ?")
    entry = delivered(agent, invoke_id)
    assert entry["repeat"] == "Period", entry
    assert entry["task"]["cron"] == "0 */5 * * * ?", entry


def test_a_rate_frequency_is_delivered_as_repeat_rate(agent: Agent, api: Ecs) -> None:
    """RepeatMode=Period with Frequency `rate(5m)` must reach the agent as `"repeat":"Rate"` with `cron` `rate(5m)`
    (as captured for t-rate0001): under "Period" the agent hands `rate(5m)` to its cron parser and reports
    `task/invalid?param=cron&value=InvalidCronExpression` instead of running it."""
    invoke_id = api.run_command(agent.instance_id, "echo tick", RepeatMode="Period", Frequency="rate(5m)")
    entry = delivered(agent, invoke_id)
    assert RATE.match(entry["task"]["cron"]), entry
    assert entry["repeat"] == "Rate", entry


def test_an_at_frequency_is_delivered_as_repeat_at_in_the_agents_format(agent: Agent, api: Ecs) -> None:
    """RepeatMode=Period with Frequency `at(2030-01-01 08:00:00 Asia/Shanghai)` must reach the agent as
    `"repeat":"At"` with a `cron` its at parser reads: `at(2030-01-01T00:00:00)`, UTC, no zone."""
    invoke_id = api.run_command(agent.instance_id, "echo once", RepeatMode="Period",
                                Frequency="at(2030-01-01 08:00:00 Asia/Shanghai)")
    entry = delivered(agent, invoke_id)
    problems = []
    if entry["repeat"] != "At":
        problems.append(f'repeat {entry["repeat"]!r}, want "At"')
    try:
        when = new_at_scheduled(entry["task"]["cron"])
        if when != datetime(2030, 1, 1, 0, 0, tzinfo=UTC):
            problems.append(f"at parses to {when}, want 2030-01-01T00:00:00Z")
    except ValueError as exc:
        problems.append(f'the agent cannot parse cron {entry["task"]["cron"]!r}: {exc}')
    assert not problems, problems


def test_a_periodic_task_stays_scheduled_and_stoppable_after_it_fires(agent: Agent, api: Ecs) -> None:
    """After a cron task fires once (started + finish 'tick\\n'), its execution is not over: the next firing's
    reports are recorded too, and StopInvocation still reaches the agent as a `stop` entry, confirmed by
    `stopped?…&exitcode=0&dropped=0&result=killed`. (If the first finish ended it, the agent would go on firing
    forever with nothing able to stop it.)"""
    with agent.websocket() as ws:
        invoke_id = api.run_command(agent.instance_id, "echo tick", RepeatMode="Period", Frequency="0 */5 * * * ?")
        wait_for_kick(ws)
        entry = delivered(agent, invoke_id)
        task = entry["task"]
        cron_run(agent, task, b"tick\n")
        after_first = api.result(invoke_id)
        last = cron_run(agent, task, b"tock\n")
        after_second = api.result(invoke_id)

        api("StopInvocation", {"InvokeId": invoke_id, "InstanceId.1": agent.instance_id})
        try:
            wait_for_kick(ws, timeout=5.0)
            kicked = True
        except TimeoutError:
            kicked = False
        stops = [e for e in agent.tasks("kickoff")["stop"] if e["task"]["taskID"] == invoke_id]
        acknowledged(agent.stopped(Execution(invoke_id, task["invokeVersion"], last.start, last.end)))
        final = api.result(invoke_id)

    problems = []
    if not kicked:
        problems.append("StopInvocation sent no kick to the connected agent")
    if after_first["InvocationStatus"] in TERMINAL:
        problems.append(f"one firing ended the periodic execution: {after_first['InvocationStatus']}")
    if "tock" not in after_second["Output"]:
        problems.append(f"the second firing was not recorded: Output {after_second['Output']!r}")
    if len(stops) != 1:
        problems.append("StopInvocation did not put the task in the agent's `stop` list")
    if final["InvocationStatus"] not in ("Terminated", "Cancelled", "Stopped"):
        problems.append(f"after the agent's stopped report: {final['InvocationStatus']}")
    assert not problems, problems


def test_a_periodic_task_is_listed_again_on_every_agent_start(agent: Agent, api: Ecs) -> None:
    """Schedules live only in the agent's memory and are re-learned from the `reason=startup` fetch (§1.8: the
    server is the source of truth): after the cron task has fired once, a restarted agent's startup fetch
    (`cold_start=false`) lists it again with the same invokeVersion, so the schedule survives the restart."""
    invoke_id = api.run_command(agent.instance_id, "echo tick", RepeatMode="Period", Frequency="0 */5 * * * ?")
    task = delivered(agent, invoke_id)["task"]
    cron_run(agent, task, b"tick\n")
    again = [e for e in agent.tasks("startup", cold_start=False)["run"] if e["task"]["taskID"] == invoke_id]
    assert len(again) == 1, "the restarted agent would never run this schedule again"
    assert again[0]["task"]["invokeVersion"] == task["invokeVersion"], again
    assert again[0]["repeat"] == "Period", again

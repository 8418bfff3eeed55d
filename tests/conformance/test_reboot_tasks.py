"""§1.5, §4.5: `reason=startup&cold_start=…` tells the server whether the host has just booted (`true`, the shm
flag is gone) or the agent merely restarted (`false`). The agent runs whatever `run` entry it is given at once
(scheduletask.go treats NextRebootOnly and EveryReboot like Once), so choosing WHEN to hand out a reboot task is
the server's job."""

from __future__ import annotations

from luban import Agent, Ecs, acknowledged


def listed(agent: Agent, invoke_id: str, reason: str, **kw: bool) -> list[dict]:
    return [e for e in agent.tasks(reason, **kw)["run"] if e["task"]["taskID"] == invoke_id]


def test_a_next_reboot_only_task_waits_for_the_next_boot(agent: Agent, api: Ecs) -> None:
    """RepeatMode=NextRebootOnly is not handed out on a kick or an agent restart (`cold_start=false`), which would
    run it right away; it is handed out, as `"repeat":"NextRebootOnly"`, on the first fetch after a boot
    (`reason=startup&cold_start=true`)."""
    invoke_id = api.run_command(agent.instance_id, "echo booted", RepeatMode="NextRebootOnly")
    early = listed(agent, invoke_id, "kickoff") + listed(agent, invoke_id, "startup", cold_start=False)
    booted = listed(agent, invoke_id, "startup", cold_start=True)
    problems = []
    if early:
        problems.append("handed out before a reboot: the agent would run it immediately")
    if len(booted) != 1:
        problems.append("not handed out after the reboot")
    elif booted[0]["repeat"] != "NextRebootOnly":
        problems.append(f"repeat {booted[0]['repeat']!r}")
    assert not problems, problems


def test_an_every_reboot_task_runs_again_after_each_boot(agent: Agent, api: Ecs) -> None:
    """RepeatMode=EveryReboot is handed out after a boot; once that run has finished it is handed out again after
    the next boot (`cold_start=true`), but not on a mere agent restart."""
    invoke_id = api.run_command(agent.instance_id, "echo every-boot", RepeatMode="EveryReboot")
    [first] = listed(agent, invoke_id, "startup", cold_start=True)
    assert first["repeat"] == "EveryReboot", first
    run = agent.execution(first)
    acknowledged(agent.running(run))
    acknowledged(agent.finish(run, 0, b"every-boot\n"))
    restarted = listed(agent, invoke_id, "startup", cold_start=False)
    rebooted = listed(agent, invoke_id, "startup", cold_start=True)
    problems = []
    if restarted:
        problems.append("handed out again on a mere agent restart")
    if len(rebooted) != 1:
        problems.append("not handed out again after the next boot")
    assert not problems, problems

"""ModifyInvocationAttribute as the official agent sees it (agent-protocol §1.5 "Dedup"): the agent keys tasks by
(taskID, invokeVersion) and replaces a periodic task's schedule when a new invokeVersion arrives, so after a
modification the very next task list (a kick's, not only a start-up's) must carry the task with invokeVersion 2,
its new content and schedule, and the agent must be kicked to fetch it. Runs it reports afterwards are kept in
the task's history (DescribeInvocationResults IncludeHistory)."""

from __future__ import annotations

import base64

from luban import Agent, Ecs, Execution, acknowledged, now_ms, wait_for_kick


def entries(agent: Agent, invoke_id: str, reason: str) -> list[dict[str, object]]:
    return [e for e in agent.tasks(reason)["run"] if e["task"]["taskID"] == invoke_id]


def test_a_modified_periodic_task_is_listed_again_with_invoke_version_2(agent: Agent, api: Ecs) -> None:
    invoke_id = api.run_command(agent.instance_id, "echo one", RepeatMode="Period", Frequency="0 */5 * * * ?")
    [first] = entries(agent, invoke_id, "startup")
    assert first["task"]["invokeVersion"] == 1  # type: ignore[index]
    assert entries(agent, invoke_id, "kickoff") == []  # the agent keeps the schedule itself
    with agent.websocket() as ws:
        modified = api("ModifyInvocationAttribute", {"InvokeId": invoke_id, "CommandContent": "echo two",
                                                     "Frequency": "0 */10 * * * ?"})
        wait_for_kick(ws)
    [again] = entries(agent, invoke_id, "kickoff")
    task = again["task"]
    assert (task["invokeVersion"], base64.b64decode(task["commandContent"]), task["cron"],  # type: ignore[index]
            task["commandId"]) == (2, b"echo two", "0 */10 * * * ?", modified["CommandId"])  # type: ignore[index]
    assert again["repeat"] == "Period"
    assert entries(agent, invoke_id, "kickoff") == []  # listed once per version

    for output in (b"run 1\n", b"run 2\n"):
        run = Execution(invoke_id, 2, now_ms())
        acknowledged(agent.running(run))
        run.end = run.start + 10
        acknowledged(agent.finish(run, 0, output))
    body = api("DescribeInvocationResults", {"InvokeId": invoke_id, "IncludeHistory": "true",
                                             "ContentEncoding": "PlainText"})["Invocation"]
    found = body["InvocationResults"]["InvocationResult"]
    assert [(r["InvocationStatus"], r["Output"], r["Repeats"]) for r in found] == [
        ("Scheduled", "run 2\n", 2), ("Success", "run 2\n", 2), ("Success", "run 1\n", 1)]
    assert body["TotalCount"] == 3

"""§4.5: an agent restarted in the same install dir refuses to run a task again (its script file exists) and
reports `task/error?…&errCode=-9&errDesc=ScriptFileExisted…`; the server must read that as "already ran"."""

from __future__ import annotations

from typing import Any

from luban import Agent, Ecs, acknowledged

TERMINAL = {"Success", "Failed", "Error", "Timeout", "Cancelled", "Terminated", "Invalid", "Aborted"}
#: The fields a re-sent task must not change once the first run has ended.
KEPT = ("InvocationStatus", "ExitCode", "Output", "ErrorCode", "ErrorInfo", "StartTime", "FinishedTime", "Dropped",
        "Repeats")


def script_existed(task: dict[str, Any]) -> str:
    name = f"{task['commandName']}-{task['taskID']}.iv{task['invokeVersion']}.sh"
    path = f"/usr/local/share/aliyun-assist/work/script/{name}"
    return f"ScriptFileExisted: Saving script to {path} failed: script file existed"


def test_error_minus_9_after_a_finished_run_leaves_the_result_unchanged(agent: Agent, api: Ecs) -> None:
    """A task that already finished (Success, 'hello\\n') and is then, after an agent restart
    (`reason=startup&cold_start=false`), refused with `error?…&start=0&end=0&exitCode=0&dropped=0&errCode=-9
    &errDesc=ScriptFileExisted…` (what the agent posts whenever it is handed a Once task it already ran) keeps its
    finished result: the -9 is acknowledged and changes nothing."""
    invoke_id = api.run_command(agent.instance_id, "echo hello")
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    run = agent.execution(entry)
    acknowledged(agent.running(run))
    acknowledged(agent.finish(run, 0, b"hello\n"))
    before = api.result(invoke_id)
    assert before["InvocationStatus"] == "Success", before

    agent.tasks("startup", cold_start=False)  # the restarted agent's fetch; whatever it lists, it runs nothing
    response = agent.error(invoke_id, run.invoke_version, "-9", script_existed(entry["task"]))
    assert "&errCode=-9&errDesc=ScriptFileExisted%3A+Saving+script+to+%2Fusr%2F" in str(response.request.url)
    acknowledged(response)
    after = api.result(invoke_id)
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}


def test_a_running_task_refused_with_minus_9_after_a_restart_ends_as_execution_interrupted(
        agent: Agent, api: Ecs) -> None:
    """A task that was Running when the agent restarted is re-listed; the agent answers errCode -9 (it will not run
    it twice), and the result ends in a terminal status with ErrorCode ExecutionInterrupted, its StartTime and the
    output streamed before the restart kept; it is not offered again."""
    invoke_id = api.run_command(agent.instance_id, "echo partial; sleep 120")
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    run = agent.execution(entry)
    acknowledged(agent.running(run))
    acknowledged(agent.running(run, b"partial\n"))
    before = api.result(invoke_id)
    assert before["InvocationStatus"] == "Running", before

    relisted = agent.tasks("startup", cold_start=False)
    again = [e for e in relisted["run"] if e["task"]["taskID"] == invoke_id]
    version = again[0]["task"]["invokeVersion"] if again else run.invoke_version
    acknowledged(agent.error(invoke_id, version, "-9", script_existed(entry["task"])))

    result = api.result(invoke_id)
    assert result["InvocationStatus"] in TERMINAL, result
    assert result["ErrorCode"] == "ExecutionInterrupted", result
    assert result["StartTime"] == before["StartTime"], result
    assert result["Output"] == "partial\n", result
    assert all(e["task"]["taskID"] != invoke_id for e in agent.tasks("startup", cold_start=False)["run"])

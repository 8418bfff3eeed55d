"""§1.3: final reports are retried (3 times, 2 s apart) and running posts are fire-and-forget, so duplicates and
late arrivals happen; each must be acknowledged and change nothing."""

from __future__ import annotations

from typing import Any

from luban import Agent, Ecs, Execution, acknowledged

KEPT = ("InvocationStatus", "ExitCode", "Output", "ErrorCode", "StartTime", "FinishedTime", "StopTime", "Dropped",
        "Repeats")


def finished(agent: Agent, api: Ecs, exit_code: int = 0) -> tuple[str, Execution, dict[str, Any]]:
    invoke_id = api.run_command(agent.instance_id, "echo start; echo done")
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    run = agent.execution(entry)
    acknowledged(agent.running(run))
    acknowledged(agent.running(run, b"start\n"))
    acknowledged(agent.finish(run, exit_code, b"done\n"))
    result = api.result(invoke_id)
    assert result["Output"] == "start\ndone\n", result
    return invoke_id, run, result


def kept(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k) for k in KEPT}


def test_the_same_finish_sent_twice_changes_nothing(agent: Agent, api: Ecs) -> None:
    """A finish retried with the same query and body is acknowledged again (code 200) and the result keeps one
    copy of the output, the same status, exit code and times."""
    invoke_id, run, first = finished(agent, api, exit_code=3)
    acknowledged(agent.finish(run, 3, b"done\n"))
    assert kept(api.result(invoke_id)) == kept(first)


def test_a_running_chunk_after_finish_changes_nothing(agent: Agent, api: Ecs) -> None:
    """A running post (with or without output) that arrives after the finish is acknowledged and neither appends to
    the output nor moves the result back to Running."""
    invoke_id, run, first = finished(agent, api)
    acknowledged(agent.running(run, b"late\n"))
    acknowledged(agent.running(run))
    assert kept(api.result(invoke_id)) == kept(first)
    assert first["InvocationStatus"] == "Success"


def test_a_late_timeout_or_stopped_after_finish_changes_nothing(agent: Agent, api: Ecs) -> None:
    """Other final reports for an execution that has already ended (timeout, stopped) are acknowledged and
    ignored: the first final report wins."""
    invoke_id, run, first = finished(agent, api)
    acknowledged(agent.timeout(run))
    acknowledged(agent.stopped(run))
    assert kept(api.result(invoke_id)) == kept(first)


def test_a_report_for_a_task_the_server_never_gave_is_acknowledged_harmlessly(agent: Agent, api: Ecs) -> None:
    """A finish for an unknown task id (say, from a wiped database) gets a parseable acknowledgement instead of
    an error the agent would retry three times."""
    stray = Execution("t-selftest-unknown0001", 1, 1_795_726_930_091)
    acknowledged(agent.finish(stray, 0, b"hello\n"))

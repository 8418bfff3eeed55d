"""§4.1-§4.3: the reports the agent posts while and after running a task, and what the API shows for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from luban import Agent, Ecs, acknowledged, api_time, ms_time, wait_for_kick
from websockets.sync.client import ClientConnection


def fetch(agent: Agent, invoke_id: str, reason: str = "startup") -> dict:
    listing = agent.tasks(reason)
    [entry] = [e for e in listing["run"] if e["task"]["taskID"] == invoke_id]
    return entry


def close_to(api_text: str, millis: int) -> bool:
    """An API time (whole seconds) matches a millisecond timestamp the agent sent."""
    return abs((api_time(api_text) - ms_time(millis)).total_seconds()) <= 1.0


def test_a_zero_exit_run_is_success_with_its_output(agent: Agent, api: Ecs) -> None:
    """§4.1: the empty "started" post (`running?taskId&invokeVersion&start`) then `finish?…&exitCode=0&dropped=0`
    with body 'hello\\n' make the result Success, ExitCode 0, Output 'hello\\n', with StartTime and FinishedTime
    taken from the agent's start and end."""
    invoke_id = api.run_command(agent.instance_id, "echo hello")
    run = agent.execution(fetch(agent, invoke_id))
    acknowledged(agent.running(run))
    acknowledged(agent.finish(run, 0, b"hello\n"))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Success", result
    assert result["ExitCode"] == 0
    assert result["Output"] == "hello\n"
    assert result["ErrorCode"] in ("", "0"), result
    assert close_to(result["StartTime"], run.start), (result["StartTime"], run.start)
    assert close_to(result["FinishedTime"], run.end), (result["FinishedTime"], run.end)


def test_streamed_output_and_a_nonzero_exit_are_failed_with_the_whole_output(agent: Agent, api: Ecs) -> None:
    """§4.2: after the empty "started" post the result is Running with StartTime; chunks 'start\\n' then empty
    ticks, then `finish?…&exitCode=3&dropped=0` whose body holds only the unstreamed tail 'done\\n', make it
    Failed, ErrorCode ExitCodeNonzero, ExitCode 3, Output 'start\\ndone\\n' (the server concatenates)."""
    invoke_id = api.run_command(agent.instance_id, "echo start; sleep 4; echo done >&2; exit 3")
    run = agent.execution(fetch(agent, invoke_id))

    acknowledged(agent.running(run))
    running = api.result(invoke_id)
    assert running["InvocationStatus"] == "Running", running
    assert running["StartTime"], running
    assert close_to(running["StartTime"], run.start), (running["StartTime"], run.start)

    acknowledged(agent.running(run, b"start\n"))
    for _ in range(3):
        acknowledged(agent.running(run))  # "still running" ticks (an agent told skipEmpty=false sends them)
    assert api.result(invoke_id)["Output"] == "start\n"

    acknowledged(agent.finish(run, 3, b"done\n"))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Failed", result
    assert result["ErrorCode"] == "ExitCodeNonzero", result
    assert result["ExitCode"] == 3, result
    assert result["Output"] == "start\ndone\n", result
    assert result["Dropped"] == 0, result
    assert result["FinishedTime"], result


@pytest.fixture
def kick_channel(agent: Agent) -> Iterator[ClientConnection]:
    """The agent's signed websocket, open before the test creates any work."""
    with agent.websocket() as ws:
        yield ws


def test_stop_invocation_reaches_the_agent_and_stopped_with_lower_case_exitcode_terminates(
        agent: Agent, api: Ecs, kick_channel: ClientConnection) -> None:
    """§4.3: StopInvocation on a Running task kicks the agent; the next task/list has the task in `stop`; then
    `stopped?…&exitcode=0&dropped=0&result=killed` (lower-case exitcode) makes it Terminated with StopTime set and
    the output streamed so far kept."""
    invoke_id = api.run_command(agent.instance_id, "echo long; sleep 60")
    wait_for_kick(kick_channel)
    run = agent.execution(fetch(agent, invoke_id, "kickoff"))
    acknowledged(agent.running(run))
    acknowledged(agent.running(run, b"long\n"))
    assert api.result(invoke_id)["InvocationStatus"] == "Running"

    api("StopInvocation", {"InvokeId": invoke_id, "InstanceId.1": agent.instance_id})
    wait_for_kick(kick_channel)
    listing = agent.tasks("kickoff")
    stops = [e for e in listing["stop"] if e["task"]["taskID"] == invoke_id]
    assert len(stops) == 1, listing
    assert stops[0]["task"]["invokeVersion"] == run.invoke_version
    assert all(e["task"]["taskID"] != invoke_id for e in listing["run"]), listing

    response = agent.stopped(run)
    assert "&exitcode=0&dropped=0&result=killed" in str(response.request.url)
    acknowledged(response)
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Terminated", result
    assert result["StopTime"], result
    assert result["Output"] == "long\n", result


def test_a_timeout_report_is_timeout_with_execution_timeout(agent: Agent, api: Ecs) -> None:
    """§4.3: a task with timeOut "10" (the API's minimum; the capture's stub served "3") streams '',
    'before\\n', '', '' and then `timeout?…&exitCode=1&dropped=0`: the result is Timeout with ErrorCode
    ExecutionTimeout and Output 'before\\n'."""
    invoke_id = api.run_command(agent.instance_id, "echo before; sleep 30", Timeout="10")
    entry = fetch(agent, invoke_id)
    assert entry["task"]["timeOut"] == "10"
    run = agent.execution(entry)
    for chunk in (b"", b"before\n", b"", b""):
        acknowledged(agent.running(run, chunk))
    acknowledged(agent.timeout(run))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Timeout", result
    assert result["ErrorCode"] == "ExecutionTimeout", result
    assert result["Output"] == "before\n", result


def test_an_invalid_working_directory_report_is_invalid_with_directory_not_exists(agent: Agent, api: Ecs) -> None:
    """§4.3: `invalid?taskId&invokeVersion&param=workingDirectory&value=WorkingDirectoryNotExist%3A+%3Cnil%3E`
    (the agent's pre-check of a missing WorkingDir) makes the result Invalid with ErrorCode DirectoryNotExists."""
    invoke_id = api.run_command(agent.instance_id, "echo never", WorkingDir="/nonexistent/dir")
    task = fetch(agent, invoke_id)["task"]
    assert task["workingDirectory"] == "/nonexistent/dir"
    response = agent.invalid(invoke_id, task["invokeVersion"], "workingDirectory", "WorkingDirectoryNotExist: <nil>")
    assert str(response.request.url).endswith("&param=workingDirectory&value=WorkingDirectoryNotExist%3A+%3Cnil%3E")
    acknowledged(response)
    acknowledged(agent.metrics("agent.task.failed", "TASK", {
        "InvokeVersion": str(task["invokeVersion"]), "errormsg": "WorkingDirectoryNotExist: /nonexistent/dir",
        "reason": "0", "taskid": invoke_id}, "ERROR"))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Invalid", result
    assert result["ErrorCode"] == "DirectoryNotExists", result


def test_dropped_bytes_reported_with_finish_are_counted(agent: Agent, api: Ecs) -> None:
    """The ring buffer's dropped byte count travels on the final report (`…&dropped=N`); the result's Dropped
    counts them."""
    invoke_id = api.run_command(agent.instance_id, "yes | head -c 40000")
    run = agent.execution(fetch(agent, invoke_id))
    acknowledged(agent.running(run))
    acknowledged(agent.running(run, b"y\n" * 100))
    acknowledged(agent.finish(run, 0, b"y\n" * 100, dropped=12_345))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Success", result
    assert result["Dropped"] >= 12_345, result
    assert result["Output"].startswith("y\ny\n"), result


def test_a_utf8_character_split_across_two_chunks_is_joined(agent: Agent, api: Ecs) -> None:
    """The agent cuts output into chunks by bytes (2048-byte reads, a ring buffer), so a UTF-8 character can be
    split between a running post and the next one; the server joins the bytes, and the output reads whole."""
    invoke_id = api.run_command(agent.instance_id, "echo 'h\u00e9llo \u2713'")
    run = agent.execution(fetch(agent, invoke_id))
    text = "h\u00e9llo \u2713\n".encode()
    cut = text.index("\u2713".encode()) + 1
    acknowledged(agent.running(run))
    acknowledged(agent.running(run, text[:cut]))
    acknowledged(agent.finish(run, 0, text[cut:]))
    assert api.result(invoke_id)["Output"] == "h\u00e9llo \u2713\n"

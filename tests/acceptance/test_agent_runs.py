"""Commands really running: the official SDKs drive a live server, and real agent processes run real /bin/sh.

Two agents per engine (module-scoped) are registered with `cloudassist agent register` from an activation
made by CreateActivation, and run as `python -m cloudassist agent run`. Every test starts its commands with
RunCommand and reads them back with DescribeInvocationResults, polled with a deadline until terminal.
"""

from __future__ import annotations

import pwd
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest
from aliyunsdkecs.request.v20140526.StopInvocationRequest import StopInvocationRequest

from acceptance.agents import (
    Agent,
    Agents,
    activation,
    current,
    decoded,
    final,
    finals,
    kill_marked,
    marked,
    page,
    recent,
    register_all,
    tag,
    wait_for,
    when,
)
from acceptance.sdk import REGION, Core, Server, b64, core_fails, fails, invocation, run, tea_client
from cloudassist.agent.client import AGENT_VERSION

pytestmark = pytest.mark.acceptance

#: Output kept per execution (seed: "larger than 24 KB"), and the agent's split of it: the head streamed
#: while the command runs, the tail sent with the final report (cloudassist.agent.output.OutputBuffer).
LIMIT = 24 * 1024
HEAD = TAIL = LIMIT // 2


@pytest.fixture(scope="module")
def pair(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Agent]]:
    """Two agents registered with one activation (InstanceCount 2) and connected; on the way out both must
    exit 0 on SIGTERM with no traceback in their logs (every agent is ended even if a test failed)."""
    made = Agents(tmp_path_factory.mktemp("agents"))
    try:
        activation_id, code = activation(tea_client(server.endpoint), 2)
        two = [made.new("a"), made.new("b")]
        register_all(server.live, two, activation_id, code)
        for agent in two:
            agent.start()
        for agent in two:
            wait_for(agent.connected, 60, f"agent {agent.instance_id} to connect")
        yield two
        assert made.close() == [0, 0], [a.log() for a in two]
        for agent in two:
            assert "Traceback" not in agent.log(), agent.log()
    finally:
        made.close()


@pytest.fixture
def marker() -> Iterator[str]:
    """A marker for the processes of one test; whatever still carries it is killed afterwards."""
    mark = tag()
    yield mark
    kill_marked(mark)


def test_echo_hello_succeeds(tea: EcsClient, core: Core, pair: list[Agent]) -> None:
    """`echo hello` ends Success / Finished with ExitCode 0, Output 'hello\\n' (PlainText) or its Base64,
    Repeats 1, no error, StartTime <= FinishedTime and no StopTime; aliyunsdkcore reads the same record."""
    agent = pair[0]
    invoke_id = run(tea, [agent.instance_id], command_content="echo hello")
    done = final(tea, invoke_id)
    assert (done.invocation_status, done.invoke_record_status, done.exit_code, done.output, done.dropped,
            done.repeats, done.error_code, done.error_info) == ("Success", "Finished", 0, "hello\n", 0, 1, "", "")
    assert (done.instance_id, done.invoke_id, done.stop_time) == (agent.instance_id, invoke_id, "")
    assert done.command_id.startswith("c-")
    assert recent(done.start_time)
    assert when(done.start_time) <= when(done.finished_time)
    [encoded] = page(tea, invoke_id, "Base64")
    assert (encoded.output, decoded(encoded.output)) == (b64(b"hello\n"), b"hello\n")

    request = DescribeInvocationResultsRequest()
    request.set_InvokeId(invoke_id)
    request.set_ContentEncoding("PlainText")
    [raw] = core.send(request)["Invocation"]["InvocationResults"]["InvocationResult"]
    assert {k: raw[k] for k in ("InvocationStatus", "InvokeRecordStatus", "ExitCode", "Output", "Dropped", "Repeats",
                                "ErrorCode", "ErrorInfo", "StartTime", "FinishedTime", "StopTime")} == {
        "InvocationStatus": "Success", "InvokeRecordStatus": "Finished", "ExitCode": 0, "Output": "hello\n",
        "Dropped": 0, "Repeats": 1, "ErrorCode": "", "ErrorInfo": "", "StartTime": done.start_time,
        "FinishedTime": done.finished_time, "StopTime": ""}


def test_nonzero_exit_is_failed(tea_v3: EcsClient, pair: list[Agent]) -> None:
    """`exit 3` ends Failed with ExitCode 3, ErrorCode ExitCodeNonzero and the seed's ErrorInfo "the command
    execution exit code is not zero", legacy InvokeRecordStatus Finished (the seed's example), Repeats 1,
    and what it printed to stderr as Output."""
    done = final(tea_v3, run(tea_v3, [pair[0].instance_id], command_content="echo oops >&2; exit 3"))
    assert (done.invocation_status, done.invoke_record_status, done.exit_code, done.error_code, done.error_info,
            done.output, done.dropped, done.repeats, done.stop_time) == (
        "Failed", "Finished", 3, "ExitCodeNonzero", "the command execution exit code is not zero", "oops\n", 0, 1,
        "")
    assert when(done.start_time) <= when(done.finished_time)


def _printed(lead: int, lines: int, trail: int) -> bytes:
    """What `_big_script(lead, lines, trail)` prints, built the same way in Python."""
    body = "".join(f"línea {i:05d} ✓ 日本語のテキスト\n" for i in range(lines))
    return ("x" * lead + "\n" + body + "y" * trail + "\n").encode()


def _big_script(lead: int, lines: int, trail: int) -> str:
    return (f"printf '%s\\n' '{'x' * lead}'\n"
            f"i=0; while [ $i -lt {lines} ]; do printf 'línea %05d ✓ 日本語のテキスト\\n' $i; i=$((i+1)); done\n"
            f"printf '%s\\n' '{'y' * trail}'\n")


def _char_start(data: bytes, cut: int) -> int:
    """The start of the UTF-8 character byte `cut` belongs to (cut itself when it starts one)."""
    while data[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


def test_large_output_keeps_head_and_tail_within_24_kib(tea_v3: EcsClient, pair: list[Agent]) -> None:
    """A command printing ~100 KB of multi-byte text: Output is at most 24 KiB and is the first part of what
    was printed (the head, up to 12 KiB, streamed while it ran) followed by the last part (the tail, up to
    12 KiB, sent with the final report); both cuts fall inside a 3-byte character here, and each moves back
    to the character's start so no character is split; Dropped is exactly the bytes in between. Base64 gives
    the same bytes."""
    lines = 3000

    def both_cuts_split_a_character(text: bytes) -> bool:
        return text[HEAD] & 0xC0 == 0x80 and text[len(text) - TAIL] & 0xC0 == 0x80  # continuation bytes

    # the padding that puts both cuts inside a 3-byte character (searched, so the test says where they fall)
    lead, trail = next((a, b) for a in range(40) for b in range(40)
                       if both_cuts_split_a_character(_printed(a, lines, b)))
    printed = _printed(lead, lines, trail)
    assert len(printed) > 100 * 1024
    head_end = _char_start(printed, HEAD)  # the head may not end inside a character: it ends before it
    tail_start = len(printed) - TAIL
    while printed[tail_start] & 0xC0 == 0x80:  # nor may the tail start inside one: it starts after it
        tail_start += 1
    expected = printed[:head_end] + printed[tail_start:]

    invoke_id = run(tea_v3, [pair[0].instance_id], command_content=_big_script(lead, lines, trail))
    done = final(tea_v3, invoke_id)
    assert (done.invocation_status, done.exit_code, done.error_code) == ("Success", 0, "")
    kept = done.output.encode()
    assert len(kept) <= LIMIT
    assert HEAD - 3 <= head_end < HEAD
    assert TAIL - 3 <= len(printed) - tail_start < TAIL
    assert kept == expected
    assert done.dropped == len(printed) - len(kept)
    assert kept.decode().startswith("x" * lead + "\nlínea 00000 ✓")
    assert kept.decode().endswith(f"línea {lines - 1:05d} ✓ 日本語のテキスト\n" + "y" * trail + "\n")
    [encoded] = page(tea_v3, invoke_id, "Base64")
    assert (decoded(encoded.output), encoded.dropped) == (expected, done.dropped)


def test_non_utf8_output_comes_back_exactly_in_base64(tea_v3: EcsClient, pair: list[Agent]) -> None:
    """`printf '\\377\\376abc'` prints bytes that are not UTF-8: the Base64 Output decodes to exactly them."""
    invoke_id = run(tea_v3, [pair[0].instance_id], command_content=r"printf '\377\376abc'")
    done = final(tea_v3, invoke_id, encoding="Base64")
    assert (done.invocation_status, done.exit_code, done.dropped) == ("Success", 0, 0)
    assert decoded(done.output) == b"\xff\xfeabc"


def test_timeout_kills_children_and_grandchildren(tea_v3: EcsClient, pair: list[Agent], marker: str) -> None:
    """Timeout=10 (the minimum) on a shell that forks a child, a grandchild in a session of its own (setsid)
    and waits: the result is Timeout / ExecutionTimeout with the seed's ErrorInfo, legacy Failed; FinishedTime
    is StartTime plus the Timeout; and when it is reported none of the three sleeps is alive."""
    script = f"sleep 1000.{marker}1 & (setsid sleep 1000.{marker}2 &); sleep 1000.{marker}3"
    invoke_id = run(tea_v3, [pair[0].instance_id], command_content=script, timeout=10)
    wait_for(lambda: len(marked(marker)) == 3, 20, "the three sleeps to run")
    assert current(tea_v3, invoke_id).invocation_status == "Running"
    done = final(tea_v3, invoke_id, 60)
    assert marked(marker) == []
    assert (done.invocation_status, done.invoke_record_status, done.error_code, done.error_info, done.repeats,
            done.stop_time, done.output, done.dropped) == (
        "Timeout", "Failed", "ExecutionTimeout", "the command execution has been timeout", 1, "", "", 0)
    assert 10 <= (when(done.finished_time) - when(done.start_time)).total_seconds() <= 11


def test_stop_invocation_terminates_a_running_command(tea_v3: EcsClient, core: Core, pair: list[Agent],
                                                      marker: str) -> None:
    """StopInvocation (aliyunsdkcore) on a running `sleep 300`: the result is Terminated, legacy Stopped, with
    StopTime set (no earlier than StartTime), and the sleep is gone when it is reported."""
    agent = pair[0]
    invoke_id = run(tea_v3, [agent.instance_id], command_content=f"sleep 300.{marker}")
    wait_for(lambda: marked(marker) and current(tea_v3, invoke_id).invocation_status == "Running", 20,
             "the sleep to run")
    stop = StopInvocationRequest()
    stop.set_InvokeId(invoke_id)
    stop.set_InstanceIds([agent.instance_id])
    core.send(stop)
    done = final(tea_v3, invoke_id, 30)
    assert marked(marker) == []
    assert (done.invocation_status, done.invoke_record_status, done.error_code, done.error_info, done.repeats) == (
        "Terminated", "Stopped", "", "", 1)
    assert recent(done.stop_time, 60)
    assert when(done.start_time) <= when(done.stop_time) <= when(done.finished_time)
    assert invocation(tea_v3, invoke_id).invocation_status == "Stopped"


def test_stop_invocation_cancels_an_undelivered_task(tea_v3: EcsClient, pair: list[Agent], tmp_path: Path) -> None:
    """With the agent stopped, RunCommand leaves the execution Pending; StopInvocation then makes it Cancelled
    (legacy Stopped, StopTime set, no StartTime, Repeats 0) and the task Stopped; started again, the agent never
    runs it."""
    agent = pair[1]
    assert agent.stop() == 0
    ran = tmp_path / "ran"
    try:
        invoke_id = run(tea_v3, [agent.instance_id], command_content=f"touch {ran}")
        assert current(tea_v3, invoke_id).invocation_status == "Pending"
        tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id))
        done = current(tea_v3, invoke_id)
        assert (done.invocation_status, done.invoke_record_status, done.repeats, done.start_time, done.output,
                done.error_code) == ("Cancelled", "Stopped", 0, "", "", "")
        assert recent(done.stop_time, 60)
        assert invocation(tea_v3, invoke_id).invocation_status == "Stopped"
    finally:
        agent.start()
        wait_for(agent.connected, 60, "the agent to connect again")
    after = final(tea_v3, run(tea_v3, [agent.instance_id], command_content="echo back"))  # it fetched its list
    assert (after.invocation_status, after.output) == ("Success", "back\n")
    assert current(tea_v3, invoke_id).invocation_status == "Cancelled"
    assert not ran.exists()


def test_missing_working_dir_is_invalid(tea_v3: EcsClient, pair: list[Agent], tmp_path: Path) -> None:
    """A WorkingDir that does not exist on the instance: Invalid / DirectoryNotExists with the seed's ErrorInfo,
    legacy Failed; the command never started (no StartTime, Repeats 0) and printed nothing."""
    ran = tmp_path / "ran"
    invoke_id = run(tea_v3, [pair[0].instance_id], command_content=f"touch {ran}",
                    working_dir=f"/nonexistent-{uuid.uuid4().hex}")
    done = final(tea_v3, invoke_id)
    assert (done.invocation_status, done.invoke_record_status, done.error_code, done.error_info, done.output,
            done.repeats, done.start_time) == (
        "Invalid", "Failed", "DirectoryNotExists", "the specified directory does not exists", "", 0, "")
    assert recent(done.finished_time)
    assert not ran.exists()


def test_missing_username_is_invalid(tea_v3: EcsClient, pair: list[Agent], tmp_path: Path) -> None:
    """A Username with no account on the instance: Invalid / AccountNotExists with the seed's ErrorInfo, legacy
    Failed; nothing ran."""
    ran = tmp_path / "ran"
    invoke_id = run(tea_v3, [pair[0].instance_id], command_content=f"touch {ran}",
                    username=f"nouser{uuid.uuid4().hex[:10]}")
    done = final(tea_v3, invoke_id)
    assert (done.invocation_status, done.invoke_record_status, done.error_code, done.error_info, done.output,
            done.repeats, done.start_time) == (
        "Invalid", "Failed", "AccountNotExists", "the specified account does not exists", "", 0, "")
    assert not ran.exists()


def test_username_runs_the_command_as_that_user(tea_v3: EcsClient, pair: list[Agent]) -> None:
    """Username names a real account (a throwaway one made with useradd): the command runs as it, with its
    uid, in its home directory by default."""
    name = f"ca{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        account = pwd.getpwnam(name)
        invoke_id = run(tea_v3, [pair[0].instance_id], command_content="id -un; id -u; pwd", username=name)
        done = final(tea_v3, invoke_id)
        assert (done.invocation_status, done.exit_code, done.error_code) == ("Success", 0, "")
        assert done.output == f"{name}\n{account.pw_uid}\n{account.pw_dir}\n"
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def test_run_bat_script_on_linux_is_refused(tea_v3: EcsClient, core: Core, pair: list[Agent]) -> None:
    """RunBatScript on the agent's instance, which the server knows runs Linux: both SDKs get
    InvalidInstance.NotMatch (400) and no task is made."""
    instance = pair[0].instance_id
    before = tea_v3.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION, instance_id=instance))
    fails(lambda: run(tea_v3, [instance], type="RunBatScript", command_content="echo hello"),
          "InvalidInstance.NotMatch", 400)
    core_fails(core.call_error("RunCommand", {"Type": "RunBatScript", "CommandContent": "echo hello",
                                              "InstanceId.1": instance}), "InvalidInstance.NotMatch", 400)
    after = tea_v3.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION, instance_id=instance))
    assert after.body.total_count == before.body.total_count


def _status(tea: EcsClient, instance_id: str) -> ecs.DescribeCloudAssistantStatusResponseBodyInstanceCloudAssistantStatusSetInstanceCloudAssistantStatus:  # noqa: E501
    body = tea.describe_cloud_assistant_status(ecs.DescribeCloudAssistantStatusRequest(
        region_id=REGION, instance_id=[instance_id])).body
    [one] = body.instance_cloud_assistant_status_set.instance_cloud_assistant_status
    return one


def test_cloud_assistant_status_reflects_the_agent_and_its_runs(tea_v3: EcsClient, pair: list[Agent]) -> None:
    """DescribeCloudAssistantStatus of a running agent: CloudAssistantStatus "true", the agent's version,
    OSType Linux, a recent heart-beat; ActiveTaskCount is 1 while a command runs and 0 after, and
    InvocationCount grows by one per finished run, with LastInvokedTime set."""
    agent = pair[0]
    before = _status(tea_v3, agent.instance_id)
    assert (before.cloud_assistant_status, before.cloud_assistant_version, before.ostype) == (
        "true", AGENT_VERSION, "Linux")
    assert recent(before.last_heartbeat_time, 130)
    assert before.active_task_count == 0

    invoke_id = run(tea_v3, [agent.instance_id], command_content="sleep 3")
    wait_for(lambda: current(tea_v3, invoke_id).invocation_status == "Running", 20, "the run to start")
    assert _status(tea_v3, agent.instance_id).active_task_count == 1
    assert final(tea_v3, invoke_id).invocation_status == "Success"
    after = _status(tea_v3, agent.instance_id)
    assert (after.active_task_count, after.invocation_count) == (0, before.invocation_count + 1)
    assert recent(after.last_invoked_time, 60)
    assert after.cloud_assistant_status == "true"


def test_describe_invocations_rolls_up_two_instances(tea_v3: EcsClient, pair: list[Agent], marker: str) -> None:
    """Tasks on the two agents' instances, as DescribeInvocations rolls them up (reference §5.3): both succeed →
    Success; both fail → Failed; both stopped while running → Stopped; one fails ({{ACS::InstanceId}} tells
    them apart) → PartialFailed; each instance keeps its own status and exit code."""
    ids = [a.instance_id for a in pair]
    tasks = {
        "Success": run(tea_v3, ids, command_content="true"),
        "Failed": run(tea_v3, ids, command_content="exit 1"),
        "Stopped": run(tea_v3, ids, command_content=f"sleep 300.{marker}"),
        "PartialFailed": run(tea_v3, ids, command_content=f'[ "{{{{ACS::InstanceId}}}}" = "{ids[0]}" ]',
                             enable_parameter=True),
    }
    wait_for(lambda: len(marked(marker)) == 2 and {r.invocation_status for r in page(tea_v3, tasks["Stopped"])} == {
        "Running"}, 30, "the sleeps to run on both instances")
    tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=tasks["Stopped"]))
    expected = {"Success": {ids[0]: ("Success", 0), ids[1]: ("Success", 0)},
                "Failed": {ids[0]: ("Failed", 1), ids[1]: ("Failed", 1)},
                "Stopped": {ids[0]: ("Terminated", None), ids[1]: ("Terminated", None)},
                "PartialFailed": {ids[0]: ("Success", 0), ids[1]: ("Failed", 1)}}
    for roll_up, invoke_id in tasks.items():
        finals(tea_v3, invoke_id, 2)
        task = invocation(tea_v3, invoke_id)
        assert task.invocation_status == roll_up, (roll_up, task.to_map())
        got = {e.instance_id: (e.invocation_status, e.exit_code if roll_up != "Stopped" else None)
               for e in task.invoke_instances.invoke_instance}
        assert got == expected[roll_up]
    assert marked(marker) == []

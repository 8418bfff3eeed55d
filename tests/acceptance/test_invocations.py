"""RunCommand, InvokeCommand, DescribeInvocations and StopInvocation through the official SDKs, on managed
instances registered into the server's store. No agent runs: every execution stays Pending until stopped."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest
from aliyunsdkecs.request.v20140526.DescribeInvocationsRequest import DescribeInvocationsRequest
from aliyunsdkecs.request.v20140526.InvokeCommandRequest import InvokeCommandRequest
from aliyunsdkecs.request.v20140526.RunCommandRequest import RunCommandRequest
from aliyunsdkecs.request.v20140526.StopInvocationRequest import StopInvocationRequest

from acceptance.sdk import (
    ISO,
    REGION,
    Core,
    Server,
    b64,
    core_fails,
    create,
    fails,
    invocation,
    results,
    round_trips,
    run,
    tea_client,
    unique,
)

pytestmark = pytest.mark.acceptance

NO_SUCH_INSTANCE = "mi-hz0000000000000000nothere"


@pytest.fixture(scope="module")
def pool(server: Server) -> list[str]:
    """101 Linux instances registered once per server: one more than a run may target."""
    return server.register(101)


def recent(text: str) -> bool:
    """Whether an API time is well-formed and within a minute of now."""
    assert ISO.match(text), text
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


def test_run_command_creates_a_pending_task(tea: EcsClient, server: Server) -> None:
    """RunCommand answers a t- InvokeId and c- CommandId; DescribeInvocations then shows the task with every
    attribute it was given, Pending on each instance, in the typed model."""
    instances = server.register(2)
    name = unique("run")
    response = tea.run_command(ecs.RunCommandRequest(
        region_id=REGION, type="RunShellScript", command_content="echo hello", instance_id=instances, name=name,
        description="a task", timeout=30, working_dir="/tmp", username="root", termination_mode="Process",
        tag=[ecs.RunCommandRequestTag(key="owner", value="qa")]))
    assert response.status_code == 200
    body = response.body
    assert body.invoke_id.startswith("t-")
    assert body.command_id.startswith("c-")
    assert body.request_id

    task = invocation(tea, body.invoke_id)
    assert task.invoke_id == body.invoke_id
    assert task.command_id == body.command_id
    assert task.command_name == name
    assert task.command_type == "RunShellScript"
    assert task.command_content == b64(b"echo hello")
    assert task.invocation_status == "Pending"
    assert task.invoke_status == "Running"
    assert task.repeat_mode == "Once"
    assert task.timed is False
    assert task.timeout == 30
    assert task.working_dir == "/tmp"
    assert task.username == "root"
    assert task.termination_mode == "Process"
    assert recent(task.creation_time)
    assert [(t.tag_key, t.tag_value) for t in task.tags.tag] == [("owner", "qa")]
    executions = task.invoke_instances.invoke_instance
    assert sorted(e.instance_id for e in executions) == sorted(instances)
    for execution in executions:
        assert execution.invocation_status == "Pending"
        assert execution.instance_invoke_status == "Running"
        assert (execution.repeats, execution.dropped, execution.output) == (0, 0, "")
        assert (execution.start_time, execution.finish_time, execution.stop_time) == ("", "", "")
        assert recent(execution.creation_time)


def test_run_command_base64_content(tea: EcsClient, server: Server) -> None:
    """RunCommand with ContentEncoding=Base64 decodes the content: DescribeInvocations answers it in PlainText
    as the script itself."""
    script = "echo 'naïve' | tr a-z A-Z"
    invoke_id = run(tea, server.register(), command_content=b64(script.encode()), content_encoding="Base64")
    assert invocation(tea, invoke_id, content_encoding="PlainText").command_content == script


def test_run_command_keep_command(tea: EcsClient, server: Server) -> None:
    """RunCommand keeps its command only with KeepCommand=true: then DescribeCommands lists it (invoked once)
    and InvokeCommand may run it again; without it the command is not listed."""
    instance = server.register()
    dropped = tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="true",
                                                    instance_id=instance)).body
    listed = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=dropped.command_id)).body
    assert listed.total_count == 0

    kept = tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="true",
                                                 instance_id=instance, keep_command=True)).body
    listed = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=kept.command_id)).body
    assert listed.total_count == 1
    assert listed.commands.command[0].invoke_times == 1
    again = tea.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=kept.command_id,
                                                        instance_id=instance)).body
    assert again.invoke_id.startswith("t-")
    assert again.invoke_id != kept.invoke_id


def test_run_command_with_parameters(tea: EcsClient, server: Server) -> None:
    """RunCommand with EnableParameter and Parameters records the values passed: DescribeInvocations shows
    them as a JSON object string."""
    invoke_id = run(tea, server.register(), command_content="echo {{greeting}}", enable_parameter=True,
                    parameters={"greeting": "hello world"})
    assert json.loads(invocation(tea, invoke_id).parameters) == {"greeting": "hello world"}


def test_invoke_command_runs_a_stored_command(tea: EcsClient, server: Server) -> None:
    """InvokeCommand runs a created command on the instances given: its InvokeId names a task of that
    command, Pending on each instance, and the command's InvokeTimes counts it."""
    instances = server.register(2)
    command_id = create(tea, command_content=b64(b"echo {{who}}"), enable_parameter=True)
    response = tea.invoke_command(ecs.InvokeCommandRequest(
        region_id=REGION, command_id=command_id, instance_id=instances, parameters={"who": "me"}, timeout=45,
        tag=[ecs.InvokeCommandRequestTag(key="via", value="invoke")]))
    assert response.status_code == 200
    assert response.body.invoke_id.startswith("t-")
    assert response.body.request_id

    task = invocation(tea, response.body.invoke_id)
    assert task.command_id == command_id
    assert task.timeout == 45
    assert task.invocation_status == "Pending"
    assert json.loads(task.parameters) == {"who": "me"}
    assert [(t.tag_key, t.tag_value) for t in task.tags.tag] == [("via", "invoke")]
    assert sorted(e.instance_id for e in task.invoke_instances.invoke_instance) == sorted(instances)
    command = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id)).body
    assert command.commands.command[0].invoke_times == 1


def test_describe_invocations_filters(tea: EcsClient, server: Server) -> None:
    """DescribeInvocations narrows by InstanceId, CommandId and InvokeStatus and counts what it found."""
    first, second = server.register(2)
    command_id = create(tea)
    one = tea.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                      instance_id=[first])).body.invoke_id
    two = tea.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                      instance_id=[first, second])).body.invoke_id

    def found(**fields: object) -> list[str]:
        body = tea.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION, **fields)).body
        ids = [i.invoke_id for i in body.invocations.invocation]
        assert body.total_count == len(ids)
        return ids

    assert found(instance_id=second) == [two]
    assert sorted(found(instance_id=first)) == sorted([one, two])
    assert sorted(found(command_id=command_id)) == sorted([one, two])
    assert sorted(found(command_id=command_id, invoke_status="Running")) == sorted([one, two])
    assert found(command_id=command_id, invoke_status="Finished") == []


def test_commands_run_through_aliyunsdkcore(core: Core, server: Server) -> None:
    """The aliyunsdkecs request classes run, invoke, describe and stop a task over RPC v1 signing."""
    first, second = server.register(2)
    run_request = RunCommandRequest()
    run_request.set_Type("RunShellScript")
    run_request.set_CommandContent("echo {{name}}")
    run_request.set_EnableParameter(True)
    run_request.set_Parameters(json.dumps({"name": "Jack"}))
    run_request.set_InstanceIds([first, second])
    run_request.set_KeepCommand(True)
    started = core.send(run_request)
    assert started["InvokeId"].startswith("t-")
    assert started["CommandId"].startswith("c-")

    invoke = InvokeCommandRequest()
    invoke.set_CommandId(started["CommandId"])
    invoke.set_InstanceIds([second])
    invoke.set_Parameters(json.dumps({"name": "Jill"}))
    invoked = core.send(invoke)
    assert invoked["InvokeId"].startswith("t-")

    describe = DescribeInvocationsRequest()
    describe.set_InvokeId(started["InvokeId"])
    task = core.send(describe)["Invocations"]["Invocation"][0]
    assert (task["CommandId"], task["InvocationStatus"], json.loads(task["Parameters"])) == (
        started["CommandId"], "Pending", {"name": "Jack"})

    stop = StopInvocationRequest()
    stop.set_InvokeId(started["InvokeId"])
    assert set(core.send(stop)) == {"RequestId"}
    results_request = DescribeInvocationResultsRequest()
    results_request.set_InvokeId(started["InvokeId"])
    found = core.send(results_request)["Invocation"]["InvocationResults"]["InvocationResult"]
    assert sorted((r["InstanceId"], r["InvocationStatus"]) for r in found) == sorted(
        [(first, "Cancelled"), (second, "Cancelled")])


def test_stop_invocation_cancels_pending_executions(tea: EcsClient, server: Server) -> None:
    """StopInvocation cancels executions that have not started: each becomes Cancelled (legacy Stopped) with
    a StopTime of the call, and the task becomes Stopped."""
    instances = server.register(2)
    invoke_id = run(tea, instances)
    response = tea.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id))
    assert response.status_code == 200
    assert response.body.request_id

    found = results(tea, invoke_id=invoke_id).invocation_results.invocation_result
    assert sorted(r.instance_id for r in found) == sorted(instances)
    for result in found:
        assert result.invocation_status == "Cancelled"
        assert result.invoke_record_status == "Stopped"
        assert recent(result.stop_time)
        assert result.start_time == ""
    task = invocation(tea, invoke_id)
    assert task.invocation_status == "Stopped"
    assert task.invoke_status == "Stopped"
    for execution in task.invoke_instances.invoke_instance:
        assert execution.invocation_status == "Cancelled"
        assert recent(execution.stop_time)


def test_stop_invocation_on_some_instances(tea: EcsClient, server: Server) -> None:
    """StopInvocation with InstanceId.N cancels only those instances' executions; the task stays Pending
    while another instance's execution is Pending, and is Stopped once that one is stopped too."""
    first, second = server.register(2)
    invoke_id = run(tea, [first, second])
    tea.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id, instance_id=[first]))
    found = {r.instance_id: r for r in results(tea, invoke_id=invoke_id).invocation_results.invocation_result}
    assert (found[first].invocation_status, found[second].invocation_status) == ("Cancelled", "Pending")
    assert recent(found[first].stop_time)
    assert found[second].stop_time == ""
    assert invocation(tea, invoke_id).invocation_status == "Pending"

    tea.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id, instance_id=[second]))
    assert invocation(tea, invoke_id).invocation_status == "Stopped"


def test_stop_invocation_unknown(tea_v3: EcsClient, server: Server) -> None:
    """StopInvocation of an InvokeId that does not exist is InvalidInvokeId.NotFound (404); of an instance
    the task does not run on, InvalidInstanceId.NotFound (404)."""
    fails(lambda: tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id="t-hz0000nothere")),
          "InvalidInvokeId.NotFound", 404)
    invoke_id = run(tea_v3, server.register())
    fails(lambda: tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id,
                                                                   instance_id=[NO_SUCH_INSTANCE])),
          "InvalidInstanceId.NotFound", 404)


def test_client_token_makes_run_command_idempotent(tea: EcsClient, server: Server) -> None:
    """RunCommand retried with the same ClientToken and parameters answers the same InvokeId and CommandId
    and starts nothing new; the same token with other parameters is IdempotentParameterMismatch (403)."""
    instance = server.register()
    token = unique("token")
    first = tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="date",
                                                  instance_id=instance, client_token=token)).body
    again = tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="date",
                                                  instance_id=instance, client_token=token)).body
    assert (again.invoke_id, again.command_id) == (first.invoke_id, first.command_id)
    assert results(tea, instance_id=instance[0]).total_count == 1
    fails(lambda: tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript",
                                                        command_content="uptime", instance_id=instance,
                                                        client_token=token)),
          "IdempotentParameterMismatch", 403)
    assert results(tea, instance_id=instance[0]).total_count == 1


def test_client_token_under_concurrent_retries(server: Server) -> None:
    """Eight clients sending the same RunCommand with the same ClientToken at once all get the same InvokeId,
    and one task runs."""
    instance = server.register()
    token = unique("race")

    def send(_: int) -> str:
        return run(tea_client(server.endpoint), instance, client_token=token)

    with ThreadPoolExecutor(8) as pool_of_threads:
        invoke_ids = set(pool_of_threads.map(send, range(8)))
    assert len(invoke_ids) == 1
    assert results(tea_client(server.endpoint), instance_id=instance[0]).total_count == 1


def test_failed_request_leaves_its_client_token_unused(tea_v3: EcsClient, server: Server) -> None:
    """A RunCommand that failed did not use up its ClientToken: the corrected request with the same token
    runs."""
    instance = server.register()
    token = unique("retry")
    fails(lambda: run(tea_v3, [*instance, NO_SUCH_INSTANCE], client_token=token), "InvalidInstance.NotFound", 404)
    invoke_id = run(tea_v3, instance, client_token=token)
    assert results(tea_v3, instance_id=instance[0]).invocation_results.invocation_result[0].invoke_id == invoke_id


def test_unknown_instance(tea_v3: EcsClient, server: Server) -> None:
    """RunCommand naming an instance that is not registered is InvalidInstance.NotFound (404), and no
    execution starts on the instances that do exist."""
    instance = server.register()
    fails(lambda: run(tea_v3, [*instance, NO_SUCH_INSTANCE]), "InvalidInstance.NotFound", 404)
    assert results(tea_v3, instance_id=instance[0]).total_count == 0


def test_instance_limit_is_100(tea_v3: EcsClient, pool: list[str]) -> None:
    """RunCommand and InvokeCommand take up to 100 instances; 101 is InstanceIds.ExceedLimit (403)."""
    invoke_id = run(tea_v3, pool[:100])
    assert results(tea_v3, invoke_id=invoke_id).total_count == 100
    fails(lambda: run(tea_v3, pool), "InstanceIds.ExceedLimit", 403)
    command_id = create(tea_v3)
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                                 instance_id=pool)), "InstanceIds.ExceedLimit", 403)


def test_stop_invocation_instance_limit_is_50(tea_v3: EcsClient, pool: list[str]) -> None:
    """StopInvocation takes up to 50 InstanceId.N; 51 is InstanceIds.ExceedLimit (403) and stops nothing."""
    invoke_id = run(tea_v3, pool[:51])
    fails(lambda: tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id,
                                                                   instance_id=pool[:51])),
          "InstanceIds.ExceedLimit", 403)
    assert results(tea_v3, invoke_id=invoke_id, invoke_record_status="Stopped").total_count == 0
    tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id, instance_id=pool[:50]))
    assert results(tea_v3, invoke_id=invoke_id, invoke_record_status="Stopped").total_count == 50
    assert results(tea_v3, invoke_id=invoke_id, invoke_record_status="Running").total_count == 1


def test_no_instance(tea_v3: EcsClient) -> None:
    """RunCommand and InvokeCommand with neither InstanceId nor ResourceTag are MissingParam.InstanceId (400)."""
    fails(lambda: run(tea_v3, []), "MissingParam.InstanceId", 400)
    command_id = create(tea_v3)
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id)),
          "MissingParam.InstanceId", 400)


def test_command_type_must_match_the_instance(tea_v3: EcsClient, server: Server) -> None:
    """A RunBatScript on a Linux instance, or a RunShellScript on a Windows one, is InvalidInstance.NotMatch
    (400)."""
    linux = server.register()
    windows = server.register(os_type="windows")
    fails(lambda: run(tea_v3, linux, type="RunBatScript"), "InvalidInstance.NotMatch", 400)
    fails(lambda: run(tea_v3, windows), "InvalidInstance.NotMatch", 400)
    assert run(tea_v3, windows, type="RunPowerShellScript").startswith("t-")


def test_parameters_need_enable_parameter(tea_v3: EcsClient, server: Server) -> None:
    """Parameters passed to a command whose custom parameters are disabled are Parameter.Disabled (400)."""
    instance = server.register()
    fails(lambda: run(tea_v3, instance, command_content="echo {{a}}", parameters={"a": "1"}),
          "Parameter.Disabled", 400)
    command_id = create(tea_v3, command_content=b64(b"echo {{a}}"))
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                                 instance_id=instance, parameters={"a": "1"})),
          "Parameter.Disabled", 400)


def test_parameters_must_be_defined(tea_v3: EcsClient, server: Server) -> None:
    """A parameter the command does not define is Parameter.NotMatched (403)."""
    instance = server.register()
    fails(lambda: run(tea_v3, instance, command_content="echo {{a}}", enable_parameter=True, parameters={"b": "1"}),
          "Parameter.NotMatched", 403)
    command_id = create(tea_v3, command_content=b64(b"echo {{a}}"), enable_parameter=True)
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                                 instance_id=instance, parameters={"b": "1"})),
          "Parameter.NotMatched", 403)


def test_unknown_repeat_mode(tea_v3: EcsClient, server: Server) -> None:
    """A RepeatMode other than Once, Period, NextRebootOnly, EveryReboot and DryRun is
    InvalidRepeatMode.NotFound (404)."""
    fails(lambda: run(tea_v3, server.register(), repeat_mode="Sometimes"), "InvalidRepeatMode.NotFound", 404)


def test_period_needs_a_frequency(tea_v3: EcsClient, server: Server) -> None:
    """RepeatMode=Period without a Frequency is MissingParam.Frequency (400); with a rate expression it is
    a timed task."""
    instance = server.register()
    fails(lambda: run(tea_v3, instance, repeat_mode="Period"), "MissingParam.Frequency", 400)
    invoke_id = run(tea_v3, instance, repeat_mode="Period", frequency="rate(5m)")
    task = invocation(tea_v3, invoke_id)
    assert (task.repeat_mode, task.frequency, task.timed) == ("Period", "rate(5m)", True)


def test_invalid_frequency(tea_v3: EcsClient, server: Server) -> None:
    """A Frequency that is no rate, at or cron expression, or a rate under 60 seconds or over 7 days, is
    InvalidParam.Frequency (400), and no task is created."""
    instance = server.register()
    for frequency in ("every now and then", "rate(10s)", "rate(8d)", "rate(5 minutes)"):
        fails(lambda frequency=frequency: run(tea_v3, instance, repeat_mode="Period", frequency=frequency),
              "InvalidParam.Frequency", 400)
    assert results(tea_v3, instance_id=instance[0]).total_count == 0


def test_unknown_termination_mode(tea_v3: EcsClient, server: Server) -> None:
    """A TerminationMode other than Process and ProcessTree is InvalidTerminationMode.NotFound (404)."""
    fails(lambda: run(tea_v3, server.register(), termination_mode="Gently"), "InvalidTerminationMode.NotFound", 404)


def test_invoke_unknown_command(tea_v3: EcsClient, server: Server) -> None:
    """InvokeCommand of a CommandId that does not exist is InvalidCmdId.NotFound (404)."""
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id="c-hz0000nothere",
                                                                 instance_id=server.register())),
          "InvalidCmdId.NotFound", 404)


def test_run_command_limits(tea_v3: EcsClient, server: Server) -> None:
    """RunCommand holds to the command limits: Base64 content over 24 KB is CmdContent.ExceedLimit, a Name
    over 128 characters CmdName.ExceedLimit, a Description over 512 CmdDesc.ExceedLimit, all 403; an
    unknown Type is InvalidCmdType.NotFound (404)."""
    instance = server.register()
    fails(lambda: run(tea_v3, instance, command_content="#" * (24 * 1024 // 4 * 3 + 1)), "CmdContent.ExceedLimit", 403)
    fails(lambda: run(tea_v3, instance, name="n" * 129), "CmdName.ExceedLimit", 403)
    fails(lambda: run(tea_v3, instance, description="d" * 513), "CmdDesc.ExceedLimit", 403)
    fails(lambda: run(tea_v3, instance, type="RunPythonScript"), "InvalidCmdType.NotFound", 404)
    assert results(tea_v3, instance_id=instance[0]).total_count == 0


def test_timeout_of_the_wrong_type(core: Core, server: Server) -> None:
    """A Timeout that is not a number is InvalidParameter.Timeout (400)."""
    error = core.call_error("RunCommand", {"Type": "RunShellScript", "CommandContent": "true",
                                           "InstanceId.1": server.register()[0], "Timeout": "abc"})
    core_fails(error, "InvalidParameter.Timeout", 400)


def test_invocation_responses_match_the_sdk_models(core: Core, server: Server) -> None:
    """The raw JSON of RunCommand, InvokeCommand, DescribeInvocations and StopInvocation is exactly what the
    SDK models read and write back: the same keys, nesting and wrapped lists."""
    instance = server.register()[0]
    ran = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "true", "InstanceId.1": instance,
                                   "KeepCommand": "true", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    round_trips(ecs.RunCommandResponseBody, ran)
    invoked = core.call("InvokeCommand", {"CommandId": ran["CommandId"], "InstanceId.1": instance})
    round_trips(ecs.InvokeCommandResponseBody, invoked)
    described = core.call("DescribeInvocations", {"InvokeId": ran["InvokeId"], "IncludeOutput": "true"})
    assert described["TotalCount"] == 1
    round_trips(ecs.DescribeInvocationsResponseBody, described)
    round_trips(ecs.StopInvocationResponseBody, core.call("StopInvocation", {"InvokeId": invoked["InvokeId"]}))
    round_trips(ecs.DescribeInvocationsResponseBody, core.call("DescribeInvocations",
                                                               {"InvokeId": invoked["InvokeId"]}))


def test_describe_invocations_next_token_walk(tea: EcsClient, server: Server) -> None:
    """DescribeInvocations pages by MaxResults and NextToken: three tasks on one instance with MaxResults 2
    come in pages of 2 and 1, each task once, and the last page has no NextToken."""
    instance = server.register()
    made = {run(tea, instance) for _ in range(3)}
    seen: list[str] = []
    sizes: list[int] = []
    token = None
    for _ in range(10):
        body = tea.describe_invocations(ecs.DescribeInvocationsRequest(
            region_id=REGION, instance_id=instance[0], max_results=2, next_token=token)).body
        sizes.append(len(body.invocations.invocation))
        seen += [i.invoke_id for i in body.invocations.invocation]
        token = body.next_token
        if not token:
            break
    assert sizes == [2, 1]
    assert sorted(seen) == sorted(made)


def test_describe_invocations_next_token_not_issued(tea_v3: EcsClient) -> None:
    """A NextToken DescribeInvocations never issued is InvalidParameter.NextToken (400)."""
    for token in ("abc", "YWJj", "not a token!", "LTE"):
        fails(lambda token=token: tea_v3.describe_invocations(ecs.DescribeInvocationsRequest(
            region_id=REGION, max_results=5, next_token=token)), "InvalidParameter.NextToken", 400)

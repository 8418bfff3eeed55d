"""Execution history (DescribeInvocationResults IncludeHistory), Timed, and ModifyInvocationAttribute, through the
official SDKs against a live server on both engines.

Runs of a schedule are reported straight to the server's store the way its agent face applies them
(DeliveryService.fetch/report, which the luban routes call), so a history exists without waiting for a real
schedule; everything else goes through the SDKs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest
from aliyunsdkecs.request.v20140526.ModifyInvocationAttributeRequest import ModifyInvocationAttributeRequest

from acceptance.agents import Agent, current, one_agent, page, wait_for
from acceptance.sdk import REGION, Core, Server, b64, core_fails, create, fails, invocation, results, round_trips, run
from cloudassist.services.delivery import DeliveryService, Report

pytestmark = pytest.mark.acceptance

Result = ecs.DescribeInvocationResultsResponseBodyInvocationInvocationResultsInvocationResult


def report_runs(server: Server, instance: str, invoke_id: str, outputs: list[tuple[bytes, int]]) -> None:
    """The instance's agent fetches its tasks and reports one run per (output, exit code), a minute apart."""
    delivery = DeliveryService(server.ctx)
    base = datetime.now(UTC) - timedelta(hours=1)

    async def go() -> None:
        await delivery.fetch(instance)
        for n, (output, code) in enumerate(outputs):
            start = base + timedelta(minutes=n)
            assert await delivery.report(instance, Report("running", invoke_id, start=start))
            assert await delivery.report(instance, Report("finish", invoke_id, start=start,
                                                          end=start + timedelta(seconds=5), exit_code=code,
                                                          output=output))

    server.loop.run_until_complete(go())


@pytest.fixture(scope="module")
def periodic(server: Server) -> tuple[str, list[str]]:
    """A Period task on two instances: three runs on the first, one on the second (4 past + 2 current)."""
    from acceptance.sdk import tea_client
    first, second = server.register(2)
    invoke_id = run(tea_client(server.endpoint), [first, second], repeat_mode="Period", frequency="rate(5m)",
                    command_content="echo tick")
    report_runs(server, first, invoke_id, [(b"a1\n", 0), (b"a2\n", 2), (b"a3\n", 0)])
    report_runs(server, second, invoke_id, [(b"b1\n", 0)])
    return invoke_id, [first, second]


def records(page: ecs.DescribeInvocationResultsResponseBodyInvocation) -> list[tuple[str, str, int]]:
    return [(r.invocation_status, r.output, r.repeats) for r in page.invocation_results.invocation_result]


def test_include_history_returns_every_run_with_its_own_output_and_status(tea: EcsClient,
                                                                           periodic: tuple[str, list[str]]) -> None:
    invoke_id, (first, _second) = periodic
    page = results(tea, invoke_id=invoke_id, include_history=True, content_encoding="PlainText", page_size=50)
    assert page.total_count == 6
    # newest first; a current record stands for its instance's newest run, so it lists before that run
    assert records(page) == [("Scheduled", "b1\n", 1), ("Success", "b1\n", 1), ("Scheduled", "a3\n", 3),
                             ("Success", "a3\n", 3), ("Failed", "a2\n", 2), ("Success", "a1\n", 1)]
    failed = page.invocation_results.invocation_result[4]
    assert (failed.exit_code, failed.error_code, failed.invoke_record_status, failed.instance_id) == (
        2, "ExitCodeNonzero", "Finished", first)
    assert failed.start_time < failed.finished_time
    assert all(r.invoke_id == invoke_id for r in page.invocation_results.invocation_result)


def test_without_include_history_only_the_latest_state(tea: EcsClient, periodic: tuple[str, list[str]]) -> None:
    invoke_id, _ = periodic
    for flag in (None, False):
        page = results(tea, invoke_id=invoke_id, include_history=flag, content_encoding="PlainText")
        assert (page.total_count, records(page)) == (2, [("Scheduled", "b1\n", 1), ("Scheduled", "a3\n", 3)])


def test_include_history_pages_by_page_number_and_next_token(tea: EcsClient, periodic: tuple[str, list[str]]) -> None:
    invoke_id, _ = periodic
    everything = records(results(tea, invoke_id=invoke_id, include_history=True, content_encoding="PlainText"))
    by_number = []
    for number in (1, 2, 3):
        page = results(tea, invoke_id=invoke_id, include_history=True, content_encoding="PlainText",
                       page_number=number, page_size=4)
        assert (page.total_count, page.page_number, page.page_size) == (6, number, 4)
        by_number += records(page)
    assert by_number == everything
    by_token, token = [], None
    for _ in range(4):
        page = results(tea, invoke_id=invoke_id, include_history=True, content_encoding="PlainText", max_results=4,
                       next_token=token)
        by_token += records(page)
        token = page.next_token
        if not token:
            break
    assert by_token == everything


def test_include_history_filters(tea: EcsClient, periodic: tuple[str, list[str]]) -> None:
    invoke_id, (_first, second) = periodic
    page = results(tea, invoke_id=invoke_id, include_history=True, instance_id=second, content_encoding="PlainText")
    assert records(page) == [("Scheduled", "b1\n", 1), ("Success", "b1\n", 1)]
    running = results(tea, invoke_id=invoke_id, include_history=True, invoke_record_status="Running")
    assert running.total_count == 2  # the two current (Scheduled) records; every past run is legacy Finished


def test_include_history_through_aliyunsdkcore(core: Core, periodic: tuple[str, list[str]]) -> None:
    invoke_id, _ = periodic
    request = DescribeInvocationResultsRequest()
    request.set_InvokeId(invoke_id)
    request.set_IncludeHistory(True)
    request.set_PageSize(5)
    request.set_ContentEncoding("PlainText")
    body = core.send(request)
    found = body["Invocation"]["InvocationResults"]["InvocationResult"]
    assert (body["Invocation"]["TotalCount"], len(found)) == (6, 5)
    assert [r["Output"] for r in found] == ["b1\n", "b1\n", "a3\n", "a3\n", "a2\n"]
    round_trips(ecs.DescribeInvocationResultsResponseBody, body)


def test_include_history_needs_an_invoke_id(tea: EcsClient, core: Core) -> None:
    fails(lambda: tea.describe_invocation_results(ecs.DescribeInvocationResultsRequest(region_id=REGION,
                                                                                       include_history=True)),
          "MissingParameter.InvokeId", 400)
    request = DescribeInvocationResultsRequest()
    request.set_IncludeHistory(True)
    core_fails(core.error(request), "MissingParameter.InvokeId", 400)


def test_timed_output_and_filter(tea: EcsClient, server: Server, periodic: tuple[str, list[str]]) -> None:
    """Timed is true for a recurring task still to run, false for a one-time task; the filter selects by it."""
    invoke_id, _ = periodic
    instance = server.register()
    once = run(tea, instance)
    assert invocation(tea, invoke_id).timed is True
    assert invocation(tea, invoke_id).invocation_status == "Scheduled"
    assert invocation(tea, once).timed is False
    assert invocation(tea, invoke_id, timed=True).invoke_id == invoke_id
    assert invocation(tea, once, timed=False).invoke_id == once
    for task, flag in ((invoke_id, False), (once, True)):
        body = tea.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION, invoke_id=task,
                                                                       timed=flag)).body
        assert body.total_count == 0


# ---------------------------------------------------------------------------------------- ModifyInvocationAttribute

def modify(tea: EcsClient, invoke_id: str, **fields: object) -> str:
    response = tea.modify_invocation_attribute(ecs.ModifyInvocationAttributeRequest(region_id=REGION,
                                                                                    invoke_id=invoke_id, **fields))
    assert response.status_code == 200
    assert set(response.body.to_map()) == {"CommandId", "RequestId"}
    return str(response.body.command_id)


def test_modify_content_frequency_and_instances(tea: EcsClient, server: Server) -> None:
    """A content change returns a new CommandId and the task shows the new content, schedule and instances; the
    added instance's record is Pending."""
    first, second = server.register(2)
    invoke_id = run(tea, [first], repeat_mode="Period", frequency="rate(5m)", command_content="echo one")
    old = invocation(tea, invoke_id).command_id
    command_id = modify(tea, invoke_id, command_content=b64(b"echo two"), content_encoding="Base64",
                        frequency="rate(10m)", instance_id=[second])
    assert command_id != old
    task = invocation(tea, invoke_id, content_encoding="PlainText")
    assert (task.command_id, task.command_content, task.frequency) == (command_id, "echo two", "rate(10m)")
    assert sorted((i.instance_id, i.invocation_status) for i in task.invoke_instances.invoke_instance) == sorted(
        [(first, "Pending"), (second, "Pending")])
    assert modify(tea, invoke_id, frequency="rate(15m)") == command_id  # no new content: the same command


def test_modify_parameters_of_an_invoked_command(tea: EcsClient, server: Server) -> None:
    """InvokeCommand of a command with {{name}}: new Parameters re-render the task's content."""
    [instance] = server.register()
    command_id = create(tea, command_content=b64(b"echo {{name}}"), enable_parameter=True)
    invoke_id = str(tea.invoke_command(ecs.InvokeCommandRequest(
        region_id=REGION, command_id=command_id, instance_id=[instance], repeat_mode="Period",
        frequency="rate(5m)", parameters={"name": "old"})).body.invoke_id)
    assert modify(tea, invoke_id, parameters={"name": "new"}) == command_id
    task = invocation(tea, invoke_id, content_encoding="PlainText")
    assert (task.command_content, json.loads(task.parameters)) == ("echo new", {"name": "new"})


def test_modify_through_aliyunsdkcore_with_a_client_token(core: Core, server: Server, tea: EcsClient) -> None:
    [instance] = server.register()
    invoke_id = run(tea, [instance], repeat_mode="Period", frequency="rate(5m)")

    def request(content: str) -> ModifyInvocationAttributeRequest:
        r = ModifyInvocationAttributeRequest()
        r.set_InvokeId(invoke_id)
        r.set_CommandContent(content)
        r.set_ClientToken(f"token-{invoke_id}")
        return r

    first = core.send(request("echo a"))
    assert set(first) == {"CommandId", "RequestId"}
    assert core.send(request("echo a"))["CommandId"] == first["CommandId"]
    core_fails(core.error(request("echo b")), "IdempotentParameterMismatch", 403)


def test_modify_errors(tea: EcsClient, server: Server) -> None:
    """Each documented refusal, with its code and HTTP status."""
    [instance] = server.register()
    [windows] = server.register(os_type="windows")
    periodic = run(tea, [instance], repeat_mode="Period", frequency="rate(5m)")
    once = run(tea, [instance])
    stopped = run(tea, [instance], repeat_mode="Period", frequency="rate(5m)")
    tea.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=stopped))
    cases: list[tuple[str, dict[str, object], str, int]] = [
        ("t-hz0000nothere", {"frequency": "rate(10m)"}, "InvalidInvokeId.NotFound", 404),
        (once, {"frequency": "rate(10m)"}, "InvalidOperation.RepeatModeUnsupported", 403),
        (stopped, {"frequency": "rate(10m)"}, "InvalidOperation.InvokeAlreadyFinished", 403),
        (periodic, {"frequency": "rate(5s)"}, "InvalidParameter.Frequency", 400),
        (periodic, {"command_content": "!!notbase64", "content_encoding": "Base64"},
         "InvalidCommandContent.DecodeError", 400),
        (periodic, {"command_content": "x" * 20_000}, "InvalidCommandContent.LengthLimitExceeded", 403),
        (periodic, {"parameters": {"a": "b"}, "enable_parameter": True}, "InvalidParameters.KeyNotMatch", 400),
        (periodic, {"instance_id": ["mi-hz0000nothere"]}, "InvalidInstanceId.NotFound", 404),
        (periodic, {"instance_id": [windows]}, "InvalidInstanceId.OSTypeUnsupported", 403),
    ]
    for invoke_id, fields, code, status in cases:
        fails(lambda i=invoke_id, f=fields: tea.modify_invocation_attribute(  # type: ignore[misc]
            ecs.ModifyInvocationAttributeRequest(region_id=REGION, invoke_id=i, **f)), code, status)
    fails(lambda: tea.modify_invocation_attribute(ecs.ModifyInvocationAttributeRequest(region_id=REGION)),
          "MissingParameter.InvokeId", 400)
    assert invocation(tea, periodic).frequency == "rate(5m)"


# ---------------------------------------------------------------------------------------- with our real agent

@pytest.fixture(scope="module")
def real_agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One connected `cloudassist agent` process; on the way out it must exit 0 with no traceback."""
    with one_agent(server, tmp_path_factory.mktemp("history-agents"), "h") as one:
        yield one


def test_a_real_agents_runs_are_kept_and_a_modification_reaches_it(tea_v3: EcsClient, real_agent: Agent) -> None:
    """A cron task firing every 10 s (the shortest interval allowed): each run becomes a history record (Success,
    exit 0, its own times, run numbers 1, 2, …); ModifyInvocationAttribute's new content reaches the agent's
    schedule (later runs print it); StopInvocation ends the task."""
    first = (datetime.now(UTC).second + 3) % 10  # the first run in about 3 s, then every 10 s
    invoke_id = run(tea_v3, [real_agent.instance_id], command_content="echo one", repeat_mode="Period",
                    frequency=f"{first}/10 * * * * ?", timeout=10)

    def history() -> list[Result]:
        return page(tea_v3, invoke_id, include_history=True)

    wait_for(lambda: len(history()) >= 2 or None, 20, "a run in the history")
    modify(tea_v3, invoke_id, command_content="echo two")
    wait_for(lambda: any(r.output == "two\n" and r.invocation_status == "Success" for r in history()) or None, 25,
             "a run of the modified content")
    tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id))
    wait_for(lambda: current(tea_v3, invoke_id).invocation_status in ("Terminated", "Cancelled") or None, 20,
             "the stop")
    records = history()
    now, *past = records
    assert now.invocation_status in ("Terminated", "Cancelled")
    assert [r.repeats for r in past] == list(range(len(past), 0, -1))
    assert now.repeats == len(past)
    done = [r for r in past if r.invocation_status == "Success"]
    assert len(done) >= len(past) - 1  # the last one may have been cut short by the stop (Terminated)
    assert all(r.exit_code == 0 and r.start_time <= r.finished_time for r in done)
    outputs = [r.output for r in reversed(done)]
    assert outputs[0] == "one\n"
    assert outputs[-1] == "two\n"
    assert outputs == sorted(outputs, key=lambda o: o == "two\n")  # all "one" runs, then all "two" runs

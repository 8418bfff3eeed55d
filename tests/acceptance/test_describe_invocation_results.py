"""DescribeInvocationResults, parameter by parameter as the seed lists them, through the official SDKs.

No agent runs here, so every execution is Pending until StopInvocation cancels it; output, exit codes and
the Finished/Failed records that agents produce are left to the tier that runs one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest

from acceptance.sdk import (
    REGION,
    Core,
    Server,
    core_fails,
    create,
    fails,
    model_keys,
    results,
    round_trips,
    run,
    tea_client,
)

pytestmark = pytest.mark.acceptance

Result = ecs.DescribeInvocationResultsResponseBodyInvocationInvocationResultsInvocationResult

#: Every field of the seed's response table for one InvocationResult.
SEED_FIELDS = frozenset({"CommandId", "Dropped", "ErrorCode", "ErrorInfo", "ExitCode", "FinishedTime", "InstanceId",
                         "InvocationStatus", "InvokeId", "InvokeRecordStatus", "Output", "Repeats", "StartTime",
                         "StopTime"})


@pytest.fixture(scope="module")
def twelve(server: Server) -> tuple[str, list[str]]:
    """One task on twelve instances of its own: its InvokeId and the instances."""
    instances = server.register(12)
    return run(tea_client(server.endpoint), instances), instances


def instance_ids(page: ecs.DescribeInvocationResultsResponseBodyInvocation) -> list[str]:
    return [r.instance_id for r in page.invocation_results.invocation_result]


def test_region_id_is_required(tea: EcsClient) -> None:
    """A request without RegionId (the tea SDK sends none unless the request model has one) is
    MissingParameter.RegionId (400)."""
    fails(lambda: tea.describe_invocation_results(ecs.DescribeInvocationResultsRequest(invoke_id="t-hz0000nothere")),
          "MissingParameter.RegionId", 400)


def test_invoke_id(tea: EcsClient, server: Server) -> None:
    """InvokeId selects the executions of that task only; an InvokeId that does not exist is an empty page."""
    instance = server.register()
    first, second = run(tea, instance), run(tea, instance)
    page = results(tea, invoke_id=first)
    assert (page.total_count, [r.invoke_id for r in page.invocation_results.invocation_result]) == (1, [first])
    assert results(tea, invoke_id=second).invocation_results.invocation_result[0].invoke_id == second
    nothing = results(tea, invoke_id="t-hz0000nothere")
    assert (nothing.total_count, nothing.invocation_results.invocation_result) == (0, [])


def test_instance_id(tea: EcsClient, server: Server) -> None:
    """InstanceId selects the executions on that instance, across tasks and together with InvokeId."""
    first, second = server.register(2)
    both = run(tea, [first, second])
    alone = run(tea, [second])
    page = results(tea, instance_id=second)
    assert page.total_count == 2
    assert sorted(r.invoke_id for r in page.invocation_results.invocation_result) == sorted([both, alone])
    assert instance_ids(results(tea, instance_id=first)) == [first]
    assert instance_ids(results(tea, invoke_id=both, instance_id=first)) == [first]
    assert results(tea, invoke_id=alone, instance_id=first).total_count == 0


def test_command_id(tea: EcsClient, server: Server) -> None:
    """CommandId selects the executions of tasks of that command only."""
    instance = server.register()
    command_id = create(tea)
    invoked = [tea.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                           instance_id=instance)).body.invoke_id for _ in range(2)]
    other = run(tea, instance)
    page = results(tea, command_id=command_id)
    assert page.total_count == 2
    assert sorted(r.invoke_id for r in page.invocation_results.invocation_result) == sorted(invoked)
    assert all(r.command_id == command_id for r in page.invocation_results.invocation_result)
    assert other not in [r.invoke_id for r in results(tea, command_id=command_id, instance_id=instance[0])
                         .invocation_results.invocation_result]


def test_invoke_record_status(tea: EcsClient, server: Server) -> None:
    """InvokeRecordStatus selects by the legacy status: Running finds the Pending executions, Stopped the
    cancelled ones, and Finished and Failed neither."""
    instance = server.register()
    pending = run(tea, instance)
    stopped = run(tea, instance)
    tea.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=stopped))

    def found(status: str) -> list[str]:
        page = results(tea, instance_id=instance[0], invoke_record_status=status)
        ids = [r.invoke_id for r in page.invocation_results.invocation_result]
        assert page.total_count == len(ids)
        assert all(r.invoke_record_status == status for r in page.invocation_results.invocation_result)
        return ids

    assert found("Running") == [pending]
    assert found("Stopped") == [stopped]
    assert found("Finished") == []
    assert found("Failed") == []


def test_include_history(tea: EcsClient, server: Server) -> None:
    """IncludeHistory=true needs InvokeId: without it the call is MissingParameter.InvokeId (400); with it,
    or with IncludeHistory=false, the executions are returned."""
    instance = server.register()
    invoke_id = run(tea, instance)
    fails(lambda: results(tea, include_history=True), "MissingParameter.InvokeId", 400)
    assert instance_ids(results(tea, invoke_id=invoke_id, include_history=True)) == instance
    assert instance_ids(results(tea, instance_id=instance[0], include_history=False)) == instance


def test_content_encoding(tea: EcsClient, server: Server) -> None:
    """ContentEncoding Base64 (the default), PlainText, or an unknown value (read as the default) are all
    accepted; an execution that has produced nothing has an empty Output in each."""
    invoke_id = run(tea, server.register())
    for encoding in (None, "Base64", "PlainText", "plaintext", "Rot13"):
        page = results(tea, invoke_id=invoke_id, content_encoding=encoding)
        assert [r.output for r in page.invocation_results.invocation_result] == [""]


def test_page_number_and_size_defaults(tea: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """Without PageNumber and PageSize the first page of 10 is returned, with PageNumber 1, PageSize 10 and
    the TotalCount of every match; page 2 holds the other 2; a page past the end is empty."""
    invoke_id, instances = twelve
    first = results(tea, invoke_id=invoke_id)
    assert (first.page_number, first.page_size, first.total_count) == (1, 10, 12)
    assert len(first.invocation_results.invocation_result) == 10
    second = results(tea, invoke_id=invoke_id, page_number=2)
    assert (second.page_number, second.page_size, second.total_count) == (2, 10, 12)
    assert sorted(instance_ids(first) + instance_ids(second)) == sorted(instances)
    past = results(tea, invoke_id=invoke_id, page_number=3)
    assert (past.total_count, past.invocation_results.invocation_result) == (12, [])


def test_page_walk_has_no_duplicates_or_omissions(tea: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """Walking PageNumber 1, 2, 3 with PageSize 5 returns pages of 5, 5 and 2 that together hold every
    execution exactly once."""
    invoke_id, instances = twelve
    pages = [results(tea, invoke_id=invoke_id, page_number=n, page_size=5) for n in (1, 2, 3)]
    assert [len(instance_ids(p)) for p in pages] == [5, 5, 2]
    assert [(p.page_number, p.page_size, p.total_count) for p in pages] == [(1, 5, 12), (2, 5, 12), (3, 5, 12)]
    walked = [i for p in pages for i in instance_ids(p)]
    assert sorted(walked) == sorted(instances)


def test_page_size_limits(tea: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """PageSize 1 and 50 are accepted; 51, 0 and -1 are InvalidParam.PageSize, and PageNumber 0 or -1
    InvalidParam.PageNumber, each HTTP 403 as the seed says."""
    invoke_id, _ = twelve
    assert len(instance_ids(results(tea, invoke_id=invoke_id, page_size=1))) == 1
    largest = results(tea, invoke_id=invoke_id, page_size=50)
    assert (largest.page_size, len(instance_ids(largest))) == (50, 12)
    for size in (51, 0, -1):
        fails(lambda size=size: results(tea, invoke_id=invoke_id, page_size=size), "InvalidParam.PageSize", 403)
    for number in (0, -1):
        fails(lambda number=number: results(tea, invoke_id=invoke_id, page_number=number),
              "InvalidParam.PageNumber", 403)


def test_page_parameters_that_are_not_numbers(core: Core, twelve: tuple[str, list[str]]) -> None:
    """A PageNumber or PageSize that is not a whole number is InvalidParam.PageNumber or
    InvalidParam.PageSize (403), as an out-of-range one is."""
    invoke_id, _ = twelve
    for value in ("abc", "1.5", "2e1"):
        core_fails(core.call_error("DescribeInvocationResults", {"InvokeId": invoke_id, "PageSize": value}),
                   "InvalidParam.PageSize", 403)
        core_fails(core.call_error("DescribeInvocationResults", {"InvokeId": invoke_id, "PageNumber": value}),
                   "InvalidParam.PageNumber", 403)


def walk(tea: EcsClient, **fields: object) -> Iterator[ecs.DescribeInvocationResultsResponseBodyInvocation]:
    """Every page of a NextToken walk, the first without a token."""
    token = None
    for _ in range(100):
        page = results(tea, next_token=token, **fields)
        yield page
        token = page.next_token
        if not token:
            return
    raise AssertionError("NextToken never ran out")


def test_next_token_walk(tea: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """Walking with MaxResults 5 and each answer's NextToken gives pages of 5, 5 and 2, every execution
    exactly once, and an empty NextToken on the last page only."""
    invoke_id, instances = twelve
    pages = list(walk(tea, invoke_id=invoke_id, max_results=5))
    assert [len(instance_ids(p)) for p in pages] == [5, 5, 2]
    assert [bool(p.next_token) for p in pages] == [True, True, False]
    walked = [i for p in pages for i in instance_ids(p)]
    assert sorted(walked) == sorted(instances)


def test_next_token_walk_with_default_page(tea: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """MaxResults alone pages by NextToken too; MaxResults 50 holds all twelve in one page."""
    invoke_id, instances = twelve
    pages = list(walk(tea, invoke_id=invoke_id, max_results=50))
    assert len(pages) == 1
    assert sorted(instance_ids(pages[0])) == sorted(instances)


def test_max_results_limit(tea_v3: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """MaxResults above 50 or below 1 is InvalidParameter.MaxResults (400)."""
    invoke_id, _ = twelve
    for value in (51, 0):
        fails(lambda value=value: results(tea_v3, invoke_id=invoke_id, max_results=value),
              "InvalidParameter.MaxResults", 400)


def test_next_token_not_issued_by_the_server(tea_v3: EcsClient, twelve: tuple[str, list[str]]) -> None:
    """A NextToken the server never issued is InvalidParameter.NextToken (400), whatever it decodes to."""
    invoke_id, _ = twelve
    for token in ("abc", "YWJj", "not a token!", "LTE"):
        fails(lambda token=token: results(tea_v3, invoke_id=invoke_id, max_results=5, next_token=token),
              "InvalidParameter.NextToken", 400)


def test_pending_result_fields(core: Core, server: Server) -> None:
    """Each result carries every field of the seed's table and every field the SDK model reads, no other;
    a result no agent has taken yet is Pending, legacy Running, with Repeats 0, nothing dropped, no
    output, no error and no times."""
    instance = server.register()[0]
    ran = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "true", "InstanceId.1": instance})
    body = core.call("DescribeInvocationResults", {"InvokeId": ran["InvokeId"]})
    [result] = body["Invocation"]["InvocationResults"]["InvocationResult"]
    assert set(result) >= SEED_FIELDS
    assert set(result) == model_keys(Result)
    assert set(body["Invocation"]) == model_keys(ecs.DescribeInvocationResultsResponseBodyInvocation)
    assert (result["InvokeId"], result["CommandId"], result["InstanceId"]) == (
        ran["InvokeId"], ran["CommandId"], instance)
    assert (result["InvocationStatus"], result["InvokeRecordStatus"], result["Repeats"]) == ("Pending", "Running", 0)
    assert (result["Dropped"], result["Output"], result["ErrorCode"], result["ErrorInfo"]) == (0, "", "", "")
    assert (result["StartTime"], result["FinishedTime"], result["StopTime"]) == ("", "", "")
    assert isinstance(result["ExitCode"], int)
    round_trips(ecs.DescribeInvocationResultsResponseBody, body)


def test_typed_model_is_filled(tea: EcsClient, server: Server) -> None:
    """The tea SDK reads a page into its typed model: paging fields, and each result's ids and statuses."""
    instance = server.register()
    response = tea.run_command(ecs.RunCommandRequest(region_id=REGION, type="RunShellScript", command_content="id",
                                                     instance_id=instance, username="nobody",
                                                     termination_mode="ProcessTree"))
    page = results(tea, invoke_id=response.body.invoke_id)
    assert (page.page_number, page.page_size, page.total_count) == (1, 10, 1)
    [result] = page.invocation_results.invocation_result
    assert isinstance(result, Result)
    assert (result.invoke_id, result.command_id, result.instance_id) == (
        response.body.invoke_id, response.body.command_id, instance[0])
    assert (result.invocation_status, result.invoke_record_status, result.repeats) == ("Pending", "Running", 0)
    assert (result.username, result.termination_mode) == ("nobody", "ProcessTree")
    assert result.dropped == 0


def test_every_parameter_through_aliyunsdkcore(core: Core, server: Server) -> None:
    """The aliyunsdkecs request class sends every seed parameter at once; the server applies them all."""
    first, second = server.register(2)
    ran = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "true", "InstanceId.1": first,
                                   "InstanceId.2": second})
    request = DescribeInvocationResultsRequest()
    request.set_InvokeId(ran["InvokeId"])
    request.set_InstanceId(second)
    request.set_CommandId(ran["CommandId"])
    request.set_InvokeRecordStatus("Running")
    request.set_IncludeHistory(False)
    request.set_ContentEncoding("PlainText")
    request.set_PageNumber(1)
    request.set_PageSize(1)
    body = core.send(request)["Invocation"]
    assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (1, 1, 1)
    [result] = body["InvocationResults"]["InvocationResult"]
    assert (result["InvokeId"], result["InstanceId"], result["InvokeRecordStatus"]) == (
        ran["InvokeId"], second, "Running")

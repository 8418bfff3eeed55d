"""The wire, seen from the official SDKs: unknown and unimplemented actions, XML answers, error envelopes,
and requests far larger than any command."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeInvocationResultsRequest import DescribeInvocationResultsRequest
from aliyunsdkecs.request.v20140526.RunCommandRequest import RunCommandRequest

from acceptance.sdk import ERROR_KEYS, REGION, Core, Server, core_fails, fails, parse_xml, results, run, tea_client

pytestmark = pytest.mark.acceptance

#: Comfortably more than the 128 KB a request must be able to carry.
LARGE = 130 * 1024


def test_unknown_action(core: Core) -> None:
    """An action the API does not have is InvalidAction.NotFound (404), in the JSON error envelope."""
    status, headers, body = core.raw("DescribeUnicorns")
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert set(error) == ERROR_KEYS
    assert error["Code"] == "InvalidAction.NotFound"
    assert headers["x-acs-request-id"] == error["RequestId"]
    core_fails(core.call_error("DescribeUnicorns"), "InvalidAction.NotFound", 404)


def test_session_actions_through_both_sdks(tea: EcsClient, core: Core) -> None:
    """EndTerminalSession of an unknown session is InvalidSessionId.NotFound (404) in both SDKs;
    DescribeTerminalSessions reads as the SDK model (an empty Sessions.Session list)."""
    request = ecs.EndTerminalSessionRequest(region_id=REGION, session_id="s-hz0000nothere")
    fails(lambda: tea.end_terminal_session(request), "InvalidSessionId.NotFound", 404)
    unknown = core.call_error("EndTerminalSession", {"SessionId": "s-hz0000nothere"})
    core_fails(unknown, "InvalidSessionId.NotFound", 404)
    listed = tea.describe_terminal_sessions(
        ecs.DescribeTerminalSessionsRequest(region_id=REGION, session_id="s-hz0000nothere")
    ).body
    assert listed.sessions.session == []
    assert core.call("DescribeTerminalSessions", {"SessionId": "s-hz0000nothere"})["Sessions"] == {"Session": []}


def test_json_is_the_default_format(core: Core) -> None:
    """Answers are JSON with a JSON Content-Type, and the RequestId of the body is echoed in x-acs-request-id."""
    status, headers, body = core.raw("DescribeInvocationResults", {"InvokeId": "t-hz0000nothere"})
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    parsed = json.loads(body)
    assert parsed["Invocation"]["TotalCount"] == 0
    assert headers["x-acs-request-id"] == parsed["RequestId"]


def test_xml_answer_of_describe_invocation_results(core: Core, server: Server) -> None:
    """Format=XML answers a well-formed document rooted at <DescribeInvocationResultsResponse>, holding the
    RequestId and the results wrapped as <Invocation><InvocationResults><InvocationResult>…, one element
    per execution, each with the seed's fields."""
    first, second = server.register(2)
    invoke_id = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "echo <&>",
                                         "InstanceId.1": first, "InstanceId.2": second})["InvokeId"]
    status, headers, body = core.raw("DescribeInvocationResults", {"InvokeId": invoke_id}, fmt="XML")
    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    root = parse_xml(body)
    assert root.tag == "DescribeInvocationResultsResponse"
    assert root.findtext("RequestId") == headers["x-acs-request-id"]
    invocation = root.find("Invocation")
    assert invocation is not None
    assert (invocation.findtext("TotalCount"), invocation.findtext("PageSize"), invocation.findtext("PageNumber")) == (
        "2", "10", "1")
    wrapped = root.findall("./Invocation/InvocationResults")
    assert len(wrapped) == 1
    items = wrapped[0].findall("InvocationResult")
    assert len(items) == 2
    assert sorted(item.findtext("InstanceId") or "" for item in items) == sorted([first, second])
    for item in items:
        assert item.findtext("InvokeId") == invoke_id
        assert item.findtext("InvocationStatus") == "Pending"
        assert item.findtext("InvokeRecordStatus") == "Running"
        assert item.findtext("Repeats") == "0"
        for field in ("CommandId", "Dropped", "ErrorCode", "ErrorInfo", "ExitCode", "FinishedTime", "Output",
                      "StartTime", "StopTime"):
            assert item.find(field) is not None, field


def test_xml_answer_with_no_results(core: Core) -> None:
    """An XML answer with no results still holds the <InvocationResults> wrapper, empty, and TotalCount 0."""
    status, _, body = core.raw("DescribeInvocationResults", {"InvokeId": "t-hz0000nothere"}, fmt="XML")
    assert status == 200
    root = parse_xml(body)
    wrapped = root.find("./Invocation/InvocationResults")
    assert wrapped is not None
    assert list(wrapped) == []
    assert root.findtext("./Invocation/TotalCount") == "0"


def test_xml_escapes_what_it_carries(core: Core, server: Server) -> None:
    """Text with XML's special characters (and a control character XML cannot carry) comes back in a
    well-formed XML answer, the special characters intact."""
    script = "echo '<a & b>' ]]> \x01done"
    invoke_id = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": script,
                                         "InstanceId.1": server.register()[0]})["InvokeId"]
    status, _, body = core.raw("DescribeInvocations", {"InvokeId": invoke_id, "ContentEncoding": "PlainText"},
                               fmt="XML")
    assert status == 200
    root = parse_xml(body)
    assert root.tag == "DescribeInvocationsResponse"
    content = root.findtext("./Invocations/Invocation/CommandContent") or ""
    assert content.startswith("echo '<a & b>' ]]> ")
    assert content.endswith("done")
    assert root.findtext("./Invocations/Invocation/InvokeId") == invoke_id


def test_xml_error(core: Core) -> None:
    """An error asked for in XML is a document rooted at <Error> holding Code, Message, RequestId and HostId,
    with the error's HTTP status."""
    status, headers, body = core.raw("DescribeInvocationResults", {"PageSize": "51"}, fmt="XML")
    assert status == 403
    assert headers["content-type"].startswith("text/xml")
    root = parse_xml(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == "InvalidParam.PageSize"
    assert root.findtext("Message")
    assert root.findtext("RequestId") == headers["x-acs-request-id"]
    assert root.findtext("HostId")


def test_xml_answer_of_other_actions(core: Core, server: Server) -> None:
    """RunCommand and StopInvocation answer XML too, rooted at <ActionResponse>."""
    status, _, body = core.raw("RunCommand", {"Type": "RunShellScript", "CommandContent": "true",
                                              "InstanceId.1": server.register()[0]}, fmt="XML")
    assert status == 200
    root = parse_xml(body)
    assert root.tag == "RunCommandResponse"
    invoke_id = root.findtext("InvokeId")
    assert invoke_id
    assert (root.findtext("CommandId") or "").startswith("c-")
    status, _, body = core.raw("StopInvocation", {"InvokeId": invoke_id}, fmt="XML")
    assert status == 200
    assert parse_xml(body).tag == "StopInvocationResponse"


def test_large_request_rejected_by_a_length_check(core: Core, server: Server) -> None:
    """A RunCommand whose query string is over 128 KB (a Description of 130 KB) reaches the API and is
    answered CmdDesc.ExceedLimit (403) in JSON, not a connection error or 414."""
    request = RunCommandRequest()
    request.set_Type("RunShellScript")
    request.set_CommandContent("true")
    request.set_InstanceIds(server.register())
    request.set_Description("d" * LARGE)
    core_fails(core.error(request), "CmdDesc.ExceedLimit", 403)


def test_large_request_with_an_ignored_parameter(core: Core, server: Server) -> None:
    """A DescribeInvocationResults carrying an ignored parameter (OwnerAccount) of 130 KB is answered as
    if it were not there."""
    invoke_id = core.call("RunCommand", {"Type": "RunShellScript", "CommandContent": "true",
                                         "InstanceId.1": server.register()[0]})["InvokeId"]
    request = DescribeInvocationResultsRequest()
    request.set_InvokeId(invoke_id)
    request.set_OwnerAccount("o" * LARGE)
    body = core.send(request)
    assert body["Invocation"]["TotalCount"] == 1


def test_large_request_through_tea(tea: EcsClient, server: Server) -> None:
    """The tea SDK's large requests (V3 and v2 signed) are answered too: a 130 KB Description is
    CmdDesc.ExceedLimit (403) and creates nothing."""
    instance = server.register()
    fails(lambda: run(tea, instance, description="d" * LARGE), "CmdDesc.ExceedLimit", 403)
    assert results(tea, instance_id=instance[0]).total_count == 0


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3", "v2"])
def test_wrong_secret_through_tea(server: Server, algorithm: str | None) -> None:
    """A request signed with the wrong secret is SignatureDoesNotMatch (400), whose message carries the
    server's string to sign after a colon."""
    wrong = tea_client(server.endpoint, algorithm, secret="not-the-secret")
    body = fails(lambda: results(wrong, invoke_id="t-hz0000nothere"), "SignatureDoesNotMatch", 400)
    assert body["Message"].startswith("Specified signature is not matched with our calculation.")
    assert ":" in body["Message"]


def test_wrong_secret_through_aliyunsdkcore(server: Server) -> None:
    """aliyunsdkcore, signing with the wrong secret, recognises the server's string to sign as its own and
    reports InvalidAccessKeySecret (400): both sides canonicalise the request identically."""
    request = DescribeInvocationResultsRequest()
    request.set_InvokeId("t-hz0000nothere")
    core_fails(Core(server.endpoint, secret="not-the-secret").error(request), "InvalidAccessKeySecret", 400)


def test_unknown_access_key(server: Server) -> None:
    """A request from an AccessKeyId the server does not know is InvalidAccessKeyId.NotFound (404) in both
    SDKs."""
    stranger = tea_client(server.endpoint, access_key_id="LTAInobodyknowsthis00", secret="x")
    fails(lambda: results(stranger, invoke_id="t-hz0000nothere"), "InvalidAccessKeyId.NotFound", 404)
    core_fails(Core(server.endpoint, access_key_id="LTAInobodyknowsthis00", secret="x").call_error(
        "DescribeInvocationResults", {"InvokeId": "t-hz0000nothere"}), "InvalidAccessKeyId.NotFound", 404)

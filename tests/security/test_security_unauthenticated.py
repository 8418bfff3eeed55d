"""No data without authentication: every action of the Cloud Assistant family, asked without valid
credentials, answers a bare error (RequestId, HostId, Code, Message, Recommend) and changes nothing.

The requests name account A's real resources (its CommandId, InvokeId, InstanceId, ActivationId), so a
leak or a side effect would show; after each one, A (properly signed) still sees those resources intact.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from secwire import (
    AK,
    HTTP,
    REGION,
    VERSION,
    acs_call,
    acs_client,
    now,
    refused,
    send_params,
    v1_signed,
    v3_signed,
)

from cloudassist.api.rpc.actions import FAMILY
from conftest import A_COMMAND_NAME, A_SECRET_CONTENT, Deployment, World


def params_for(action: str, world: World, activation_id: str) -> dict[str, str]:
    """Plausible parameters for `action` that point at account A's resources."""
    return {
        "RegionId": REGION, "CommandId": world.a_command, "InvokeId": world.a_invoke,
        "InstanceId": world.a_instance, "InstanceId.1": world.a_instance, "ActivationId": activation_id,
        "Name": "unauth-" + action, "Type": "RunShellScript",
        "CommandContent": base64.b64encode(b"echo unauth").decode(), "InstanceName": "unauth-name",
        "ContentEncoding": "PlainText", "PageSize": "50",
    }


def _unsigned(endpoint: str, action: str, params: dict[str, str]) -> httpx.Response:
    return send_params(endpoint, {"Action": action, "Version": VERSION, "Format": "JSON", **params})


def _v3_unsigned(endpoint: str, action: str, params: dict[str, str]) -> httpx.Response:
    signed = v3_signed(endpoint, action, params)
    headers = {k: v for k, v in signed.headers.items() if k != "authorization"}
    return HTTP.post(f"http://{endpoint}/", params=params, headers=headers)


ATTEMPTS: dict[str, tuple[Callable[[str, str, dict[str, str]], httpx.Response], str, int]] = {
    "unsigned": (_unsigned, "MissingParameter.AccessKeyId", 400),
    "V3 headers without Authorization": (_v3_unsigned, "MissingParameter.AccessKeyId", 400),
    "v1 wrong secret": (lambda e, a, p: send_params(e, v1_signed(a, p, AK, "guess")), "SignatureDoesNotMatch", 400),
    "V3 wrong secret": (lambda e, a, p: v3_signed(e, a, p, AK, "guess").send(e), "SignatureDoesNotMatch", 400),
    "unknown key": (lambda e, a, p: send_params(e, v1_signed(a, p, "LTAIunknownunknown000", "x")),
                    "InvalidAccessKeyId.NotFound", 404),
    "expired timestamp": (lambda e, a, p: send_params(e, v1_signed(a, p, timestamp=now() - timedelta(hours=2))),
                          "InvalidTimeStamp.Expired", 400),
}


def a_still_intact(deployment: Deployment, world: World, activation_id: str) -> None:
    """A's command, task, instance and activation are still there, unchanged, for A."""
    a = acs_client()
    endpoint = deployment.endpoint
    commands = acs_call(a, endpoint, "DescribeCommands", {"RegionId": REGION, "CommandId": world.a_command,
                                                          "ContentEncoding": "PlainText"})
    (command,) = commands["Commands"]["Command"]
    assert (command["Name"], command["CommandContent"]) == (A_COMMAND_NAME, A_SECRET_CONTENT)
    invocations = acs_call(a, endpoint, "DescribeInvocations", {"RegionId": REGION, "InvokeId": world.a_invoke})
    (invocation,) = invocations["Invocations"]["Invocation"]
    assert invocation["InvocationStatus"] not in {"Stopped", "Stopping"}, invocation
    instances = acs_call(a, endpoint, "DescribeManagedInstances", {"RegionId": REGION,
                                                                    "InstanceId.1": world.a_instance})
    assert [i["InstanceName"] for i in instances["Instances"]] == ["a-host"]
    activations = acs_call(a, endpoint, "DescribeActivations", {"RegionId": REGION, "ActivationId": activation_id})
    assert [x["Disabled"] for x in activations["ActivationList"]] == [False]
    unauth = acs_call(a, endpoint, "DescribeCommands", {"RegionId": REGION, "Name": "unauth-CreateCommand"})
    assert unauth["Commands"]["Command"] == []


@pytest.mark.parametrize("action", FAMILY)
def test_no_action_answers_without_valid_credentials(deployment: Deployment, world: World, a_activation: str,
                                                     action: str) -> None:
    """Each of the 27 Cloud Assistant actions, sent unsigned, with V3 headers but no Authorization, signed
    with a wrong secret (v1 and V3), by an unknown key, or with an expired timestamp, is refused with that
    failure's Code and status; the body holds only the error fields and no name of A's resources; and A's
    resources are unchanged afterwards."""
    problems: list[str] = []
    for attempt, (send, code, status) in ATTEMPTS.items():
        response = send(deployment.endpoint, action, params_for(action, world, a_activation))
        try:
            refused(response, code, status)
            for private in (A_COMMAND_NAME, A_SECRET_CONTENT, "a-host", "a-private", world.a_run_invoke):
                assert private not in response.text, f"{private} leaked"
        except (AssertionError, ValueError) as exc:
            problems.append(f"{attempt}: {exc}")
    assert not problems, "\n".join(problems)
    a_still_intact(deployment, world, a_activation)


def test_unsigned_describe_commands_in_xml_reveals_nothing(deployment: Deployment, world: World) -> None:
    """An unsigned DescribeCommands asking for XML gets an XML <Error> with Code MissingParameter.AccessKeyId
    (HTTP 400) and no <Commands> element; signed, the same query lists A's command."""
    response = send_params(deployment.endpoint, {"Action": "DescribeCommands", "Version": VERSION, "Format": "XML",
                                                 "RegionId": REGION, "CommandId": world.a_command})
    assert response.status_code == 400, response.text
    root = ET.fromstring(response.text)  # noqa: S314 - our own server's answer
    assert root.tag == "Error"
    assert root.findtext("Code") == "MissingParameter.AccessKeyId"
    assert {child.tag for child in root} <= {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert A_COMMAND_NAME not in response.text

    signed = send_params(deployment.endpoint, v1_signed("DescribeCommands", {
        "Format": "XML", "RegionId": REGION, "CommandId": world.a_command}))
    assert signed.status_code == 200
    assert A_COMMAND_NAME in signed.text


def test_get_and_form_body_unsigned_reveal_nothing(deployment: Deployment, world: World) -> None:
    """Unsigned DescribeCommands via GET, and via POST with the parameters in a form body, are refused 400
    MissingParameter.AccessKeyId with no Commands key."""
    query = {"Action": "DescribeCommands", "Version": VERSION, "RegionId": REGION, "CommandId": world.a_command}
    refused(send_params(deployment.endpoint, query, method="GET"), "MissingParameter.AccessKeyId", 400)
    form = HTTP.post(f"http://{deployment.endpoint}/", data=query)
    body = refused(form, "MissingParameter.AccessKeyId", 400)
    assert "Commands" not in body

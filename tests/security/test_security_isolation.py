"""Whose resources a caller sees: one account's commands, tasks, activations and instances are invisible to
another account, and one region's are invisible in another region, for listing and for acting on them.

Every "B cannot" is paired with "A can" (or "B can, on its own"), so an empty answer proves isolation and
not a broken listing.
"""

from __future__ import annotations

from typing import Any

from alibabacloud_ecs20140526 import models as ecs_models
from aliyunsdkcore.client import AcsClient
from secwire import OTHER_REGION, REGION, acs_call, acs_client, acs_error, tea_client

from conftest import A_COMMAND_NAME, A_SECRET_CONTENT, Deployment, World


def a_client() -> AcsClient:
    return acs_client()


def b_client(deployment: Deployment) -> AcsClient:
    return acs_client(*deployment.b_key)


def ids_in(body: Any, key: str) -> set[str]:
    """Every value of `key` anywhere in a response body."""
    found: set[str] = set()
    if isinstance(body, dict):
        for k, v in body.items():
            if k == key and isinstance(v, str):
                found.add(v)
            found |= ids_in(v, key)
    elif isinstance(body, list):
        for item in body:
            found |= ids_in(item, key)
    return found


def no_trace_of_a(body: Any, world: World) -> None:
    """Nothing of account A's resources appears anywhere in `body`."""
    text = str(body)
    for secret in (world.a_instance, world.a_command, world.a_invoke, world.a_run_invoke, world.a_run_command,
                   A_COMMAND_NAME, "a-host", "a-private"):
        assert secret not in text, f"{secret} leaked: {text}"


def assert_not_found(client: AcsClient, deployment: Deployment, action: str, params: dict[str, str],
                     codes: set[str]) -> None:
    exc = acs_error(client, deployment.endpoint, action, params)
    assert exc.get_error_code() in codes, (exc.get_error_code(), exc.get_error_msg())
    assert exc.get_http_status() == 404, (exc.get_http_status(), exc.get_error_msg())


# ------------------------------------------------------------------------------------------------ listings

def test_b_lists_none_of_a_commands(deployment: Deployment, world: World) -> None:
    """Account B's DescribeCommands (unfiltered, by A's CommandId, by A's command name) returns none of
    A's commands, through aliyunsdkcore and the tea SDK; B sees its own command and A sees A's."""
    endpoint = deployment.endpoint
    b = b_client(deployment)
    everything = acs_call(b, endpoint, "DescribeCommands", {"RegionId": REGION, "PageSize": "50"})
    assert world.b_command in ids_in(everything, "CommandId")
    no_trace_of_a(everything, world)
    for query in ({"CommandId": world.a_command}, {"Name": A_COMMAND_NAME}):
        body = acs_call(b, endpoint, "DescribeCommands", {"RegionId": REGION, **query})
        assert body["Commands"]["Command"] == [], body
        assert body["TotalCount"] == 0, body
    typed = tea_client(endpoint, *deployment.b_key).describe_commands(
        ecs_models.DescribeCommandsRequest(region_id=REGION, command_id=world.a_command))
    assert typed.body.commands.command == []
    assert typed.body.total_count == 0

    mine = acs_call(a_client(), endpoint, "DescribeCommands", {"RegionId": REGION, "CommandId": world.a_command})
    assert ids_in(mine, "CommandId") == {world.a_command}
    assert ids_in(mine, "Name") == {A_COMMAND_NAME}


def test_b_lists_none_of_a_invocations(deployment: Deployment, world: World) -> None:
    """Account B's DescribeInvocations (unfiltered, by A's InvokeId, CommandId or InstanceId) returns none
    of A's tasks; A sees both of its tasks."""
    b = b_client(deployment)
    queries: list[dict[str, str]] = [{}, {"InvokeId": world.a_invoke}, {"InvokeId": world.a_run_invoke},
                                     {"CommandId": world.a_command}, {"InstanceId": world.a_instance},
                                     {"CommandName": A_COMMAND_NAME}]
    for query in queries:
        body = acs_call(b, deployment.endpoint, "DescribeInvocations", {"RegionId": REGION, "PageSize": "50",
                                                                        **query})
        no_trace_of_a(body, world)
        assert ids_in(body, "InvokeId") == set(), (query, body)

    mine = acs_call(a_client(), deployment.endpoint, "DescribeInvocations", {"RegionId": REGION, "PageSize": "50"})
    assert {world.a_invoke, world.a_run_invoke} <= ids_in(mine, "InvokeId")


def test_b_lists_none_of_a_invocation_results(deployment: Deployment, world: World) -> None:
    """Account B's DescribeInvocationResults (unfiltered, by A's InvokeId, CommandId or InstanceId) returns
    none of A's executions, not their output; A sees its executions."""
    b = b_client(deployment)
    queries: list[dict[str, str]] = [{}, {"InvokeId": world.a_invoke}, {"InvokeId": world.a_run_invoke},
                                     {"CommandId": world.a_command}, {"InstanceId": world.a_instance},
                                     {"InvokeId": world.a_invoke, "IncludeHistory": "true"}]
    for query in queries:
        body = acs_call(b, deployment.endpoint, "DescribeInvocationResults", {
            "RegionId": REGION, "PageSize": "50", "ContentEncoding": "PlainText", **query})
        no_trace_of_a(body, world)
        assert body["Invocation"]["InvocationResults"]["InvocationResult"] == [], (query, body)

    mine = acs_call(a_client(), deployment.endpoint, "DescribeInvocationResults",
                    {"RegionId": REGION, "InvokeId": world.a_invoke})
    assert ids_in(mine, "InstanceId") == {world.a_instance}


def test_b_lists_none_of_a_activations(deployment: Deployment, world: World, a_activation: str) -> None:
    """Account B's DescribeActivations (unfiltered, and by A's ActivationId) returns none of A's activation
    codes; A sees its activation."""
    b = b_client(deployment)
    for query in ({}, {"ActivationId": a_activation}, {"InstanceName": "apriv"}):
        body = acs_call(b, deployment.endpoint, "DescribeActivations", {"RegionId": REGION, "PageSize": "50",
                                                                        **query})
        assert a_activation not in str(body), body
        assert "a-private-activation" not in str(body), body
    mine = acs_call(a_client(), deployment.endpoint, "DescribeActivations",
                    {"RegionId": REGION, "ActivationId": a_activation})
    assert ids_in(mine, "ActivationId") == {a_activation}


def test_b_lists_none_of_a_managed_instances(deployment: Deployment, world: World) -> None:
    """Account B's DescribeManagedInstances (unfiltered, by A's InstanceId, by A's instance name) returns
    none of A's instances; B sees its own instance and A sees A's."""
    b = b_client(deployment)
    everything = acs_call(b, deployment.endpoint, "DescribeManagedInstances", {"RegionId": REGION,
                                                                                 "PageSize": "50"})
    assert world.b_instance in ids_in(everything, "InstanceId")
    no_trace_of_a(everything, world)
    for query in ({"InstanceId.1": world.a_instance}, {"InstanceName": "a-host"}):
        body = acs_call(b, deployment.endpoint, "DescribeManagedInstances", {"RegionId": REGION, **query})
        assert body["Instances"] == [], (query, body)
    mine = acs_call(a_client(), deployment.endpoint, "DescribeManagedInstances",
                    {"RegionId": REGION, "InstanceId.1": world.a_instance})
    assert ids_in(mine, "InstanceId") == {world.a_instance}


# ------------------------------------------------------------------------------------------------ actions

def test_b_cannot_invoke_a_command(deployment: Deployment, world: World) -> None:
    """Account B's InvokeCommand of A's CommandId (on B's own instance) is 404 InvalidCmdId.NotFound; B's
    InvokeCommand of its own command on its own instance is accepted."""
    b = b_client(deployment)
    assert_not_found(b, deployment, "InvokeCommand", {
        "RegionId": REGION, "CommandId": world.a_command, "InstanceId.1": world.b_instance},
        {"InvalidCmdId.NotFound"})
    own = acs_call(b, deployment.endpoint, "InvokeCommand", {
        "RegionId": REGION, "CommandId": world.b_command, "InstanceId.1": world.b_instance})
    assert own["InvokeId"].startswith("t-")


def test_b_cannot_target_a_instance(deployment: Deployment, world: World) -> None:
    """Account B's RunCommand on A's instance, and B's InvokeCommand of its own command on A's instance,
    are 404 InvalidInstance.NotFound and start nothing there; B's RunCommand on its own instance works."""
    b = b_client(deployment)
    assert_not_found(b, deployment, "RunCommand", {
        "RegionId": REGION, "Type": "RunShellScript", "CommandContent": "echo from-b",
        "InstanceId.1": world.a_instance}, {"InvalidInstance.NotFound"})
    assert_not_found(b, deployment, "InvokeCommand", {
        "RegionId": REGION, "CommandId": world.b_command, "InstanceId.1": world.a_instance},
        {"InvalidInstance.NotFound"})
    own = acs_call(b, deployment.endpoint, "RunCommand", {
        "RegionId": REGION, "Type": "RunShellScript", "CommandContent": "echo from-b",
        "InstanceId.1": world.b_instance})
    assert own["InvokeId"].startswith("t-")
    on_a = acs_call(a_client(), deployment.endpoint, "DescribeInvocationResults",
                    {"RegionId": REGION, "InstanceId": world.a_instance, "PageSize": "50",
                     "ContentEncoding": "PlainText"})
    assert "from-b" not in str(on_a)


def test_b_cannot_stop_a_invocation(deployment: Deployment, world: World) -> None:
    """Account B's StopInvocation of A's InvokeId is 404 InvalidInvokeId.NotFound and A's task is not
    stopped; B stopping its own task is accepted."""
    b = b_client(deployment)
    for invoke_id in (world.a_invoke, world.a_run_invoke):
        assert_not_found(b, deployment, "StopInvocation", {"RegionId": REGION, "InvokeId": invoke_id},
                         {"InvalidInvokeId.NotFound"})
    mine = acs_call(a_client(), deployment.endpoint, "DescribeInvocations",
                    {"RegionId": REGION, "InvokeId": world.a_invoke})
    statuses = {inv["InvocationStatus"] for inv in mine["Invocations"]["Invocation"]}
    assert statuses, mine
    assert not statuses & {"Stopped", "Stopping"}, mine

    own = acs_call(b, deployment.endpoint, "InvokeCommand", {
        "RegionId": REGION, "CommandId": world.b_command, "InstanceId.1": world.b_instance})
    acs_call(b, deployment.endpoint, "StopInvocation", {"RegionId": REGION, "InvokeId": own["InvokeId"]})


def test_b_cannot_modify_or_delete_a_command(deployment: Deployment, world: World) -> None:
    """Account B's ModifyCommand and DeleteCommand of A's CommandId are 404 InvalidCmdId.NotFound and A's
    command is unchanged (same name, same content)."""
    b = b_client(deployment)
    assert_not_found(b, deployment, "ModifyCommand", {"RegionId": REGION, "CommandId": world.a_command,
                                                      "Name": "renamed-by-b"}, {"InvalidCmdId.NotFound"})
    assert_not_found(b, deployment, "DeleteCommand", {"RegionId": REGION, "CommandId": world.a_command},
                     {"InvalidCmdId.NotFound"})
    mine = acs_call(a_client(), deployment.endpoint, "DescribeCommands", {
        "RegionId": REGION, "CommandId": world.a_command, "ContentEncoding": "PlainText"})
    (command,) = mine["Commands"]["Command"]
    assert command["Name"] == A_COMMAND_NAME
    assert command["CommandContent"] == A_SECRET_CONTENT


def test_b_cannot_touch_a_activation(deployment: Deployment, world: World, a_activation: str) -> None:
    """Account B's DisableActivation and DeleteActivation of A's ActivationId are 404
    InvalidActivationId.NotFound, and A's activation stays enabled and present."""
    b = b_client(deployment)
    for action in ("DisableActivation", "DeleteActivation"):
        assert_not_found(b, deployment, action, {"RegionId": REGION, "ActivationId": a_activation},
                         {"InvalidActivationId.NotFound"})
    mine = acs_call(a_client(), deployment.endpoint, "DescribeActivations",
                    {"RegionId": REGION, "ActivationId": a_activation})
    (activation,) = mine["ActivationList"]
    assert activation["Disabled"] is False


def test_b_cannot_touch_a_managed_instance(deployment: Deployment, world: World) -> None:
    """Account B's ModifyManagedInstance and DeregisterManagedInstance of A's instance are refused 404 (the
    instance does not exist for B), and A's instance keeps its name and stays registered."""
    b = b_client(deployment)
    not_found = {"InvalidInstanceId.NotFound", "InvalidInstance.NotFound"}
    assert_not_found(b, deployment, "ModifyManagedInstance", {
        "RegionId": REGION, "InstanceId": world.a_instance, "InstanceName": "renamed-by-b"}, not_found)
    assert_not_found(b, deployment, "DeregisterManagedInstance", {
        "RegionId": REGION, "InstanceId": world.a_instance}, not_found)
    mine = acs_call(a_client(), deployment.endpoint, "DescribeManagedInstances",
                    {"RegionId": REGION, "InstanceId.1": world.a_instance})
    (instance,) = mine["Instances"]
    assert instance["InstanceName"] == "a-host"


# ------------------------------------------------------------------------------------------------ regions

def test_a_resources_are_invisible_in_another_region(deployment: Deployment, world: World,
                                                     a_activation: str) -> None:
    """Account A's cn-hangzhou command, tasks, executions, activation and instance are all absent when A
    lists in cn-shanghai, while the same listings in cn-hangzhou show them."""
    a = a_client()
    endpoint = deployment.endpoint
    listings = {
        "DescribeCommands": ("CommandId", world.a_command),
        "DescribeInvocations": ("InvokeId", world.a_invoke),
        "DescribeInvocationResults": ("InvokeId", world.a_invoke),
        "DescribeActivations": ("ActivationId", a_activation),
        "DescribeManagedInstances": ("InstanceId", world.a_instance),
    }
    for action, (key, value) in listings.items():
        there = acs_call(a, endpoint, action, {"RegionId": OTHER_REGION, "PageSize": "50"})
        assert value not in str(there), (action, there)
        no_trace_of_a(there, world)
        here = acs_call(a, endpoint, action, {"RegionId": REGION, "PageSize": "50"})
        assert value in ids_in(here, key), (action, here)


def test_a_cannot_act_on_its_resources_from_another_region(deployment: Deployment, world: World) -> None:
    """In cn-shanghai, account A's own cn-hangzhou resources do not exist: InvokeCommand of its command is
    404 InvalidCmdId.NotFound, RunCommand on its instance 404 InvalidInstance.NotFound, StopInvocation of its
    task 404 InvalidInvokeId.NotFound, ModifyCommand/DeleteCommand 404 InvalidCmdId.NotFound."""
    a = a_client()
    shanghai_instance = deployment.register_instance("default", OTHER_REGION, name="a-shanghai")
    assert_not_found(a, deployment, "InvokeCommand", {
        "RegionId": OTHER_REGION, "CommandId": world.a_command, "InstanceId.1": shanghai_instance},
        {"InvalidCmdId.NotFound"})
    assert_not_found(a, deployment, "RunCommand", {
        "RegionId": OTHER_REGION, "Type": "RunShellScript", "CommandContent": "echo x",
        "InstanceId.1": world.a_instance}, {"InvalidInstance.NotFound"})
    assert_not_found(a, deployment, "StopInvocation", {"RegionId": OTHER_REGION, "InvokeId": world.a_invoke},
                     {"InvalidInvokeId.NotFound"})
    assert_not_found(a, deployment, "ModifyCommand", {"RegionId": OTHER_REGION, "CommandId": world.a_command,
                                                      "Name": "renamed"}, {"InvalidCmdId.NotFound"})
    assert_not_found(a, deployment, "DeleteCommand", {"RegionId": OTHER_REGION, "CommandId": world.a_command},
                     {"InvalidCmdId.NotFound"})
    # and in its own region the same resources are there to act on
    started = acs_call(a, deployment.endpoint, "RunCommand", {
        "RegionId": OTHER_REGION, "Type": "RunShellScript", "CommandContent": "echo x",
        "InstanceId.1": shanghai_instance})
    assert started["InvokeId"].startswith("t-")
    mine = acs_call(a, deployment.endpoint, "DescribeCommands", {"RegionId": REGION, "CommandId": world.a_command})
    assert ids_in(mine, "Name") == {A_COMMAND_NAME}

"""Activation codes and managed instances through the official SDKs: CreateActivation, DescribeActivations,
DisableActivation, DeleteActivation, DescribeManagedInstances, ModifyManagedInstance,
DeregisterManagedInstance and DescribeCloudAssistantStatus."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.sdk import ISO, REGION, Core, Server, fails, round_trips, run, unique

pytestmark = pytest.mark.acceptance


def activation(tea: EcsClient, activation_id: str) -> ecs.DescribeActivationsResponseBodyActivationList:
    body = tea.describe_activations(ecs.DescribeActivationsRequest(region_id=REGION, activation_id=activation_id)).body
    assert body.total_count == 1
    assert len(body.activation_list) == 1
    return body.activation_list[0]


def managed(tea: EcsClient, instance_id: str) -> ecs.DescribeManagedInstancesResponseBodyInstances:
    body = tea.describe_managed_instances(ecs.DescribeManagedInstancesRequest(region_id=REGION,
                                                                              instance_id=[instance_id])).body
    assert body.total_count == 1
    assert len(body.instances) == 1
    return body.instances[0]


def test_create_activation_is_described(tea: EcsClient) -> None:
    """CreateActivation answers an ActivationId and a code shown once; DescribeActivations shows the code's
    attributes, none of it used yet, in the typed model."""
    created = tea.create_activation(ecs.CreateActivationRequest(
        region_id=REGION, description="lab machines", instance_count=5, instance_name="lab",
        ip_address_range="10.0.0.0/8", time_to_live_in_hours=2,
        tag=[ecs.CreateActivationRequestTag(key="site", value="lab")]))
    assert created.status_code == 200
    assert created.body.activation_id
    assert created.body.activation_code
    found = activation(tea, created.body.activation_id)
    assert found.activation_id == created.body.activation_id
    assert (found.description, found.instance_count, found.instance_name) == ("lab machines", 5, "lab")
    assert (found.ip_address_range, found.time_to_live_in_hours) == ("10.0.0.0/8", 2)
    assert (found.registered_count, found.deregistered_count, found.disabled) == (0, 0, False)
    assert ISO.match(found.creation_time)
    assert [(t.tag_key, t.tag_value) for t in found.tags] == [("site", "lab")]


def test_create_activation_defaults(tea: EcsClient) -> None:
    """An activation code created with nothing but a region may register 10 instances for 4 hours."""
    created = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION)).body
    found = activation(tea, created.activation_id)
    assert (found.instance_count, found.time_to_live_in_hours, found.disabled) == (10, 4, False)


def test_disable_then_delete_activation(tea: EcsClient) -> None:
    """DisableActivation marks the code disabled and answers it; DeleteActivation removes an unused code and
    answers what it removed; a code that does not exist is InvalidActivationId.NotFound (404)."""
    activation_id = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION,
                                                                      description="short-lived")).body.activation_id
    disabled = tea.disable_activation(ecs.DisableActivationRequest(region_id=REGION, activation_id=activation_id))
    assert disabled.status_code == 200
    assert (disabled.body.activation.activation_id, disabled.body.activation.disabled) == (activation_id, True)
    assert activation(tea, activation_id).disabled is True

    deleted = tea.delete_activation(ecs.DeleteActivationRequest(region_id=REGION, activation_id=activation_id))
    assert deleted.status_code == 200
    assert (deleted.body.activation.activation_id, deleted.body.activation.description) == (
        activation_id, "short-lived")
    gone = tea.describe_activations(ecs.DescribeActivationsRequest(region_id=REGION, activation_id=activation_id))
    assert gone.body.total_count == 0
    fails(lambda: tea.delete_activation(ecs.DeleteActivationRequest(region_id=REGION, activation_id=activation_id)),
          "InvalidActivationId.NotFound", 404)


def test_registered_instance_is_described(tea: EcsClient, server: Server) -> None:
    """A registered instance that has just beaten is described by DescribeManagedInstances as connected,
    with its registration's attributes, and by DescribeCloudAssistantStatus as running the agent."""
    [instance_id] = server.register()
    found = managed(tea, instance_id)
    assert found.instance_id == instance_id
    assert found.connected is True
    assert found.activation_id
    assert (found.hostname, found.intranet_ip, found.agent_version) == ("test-host", "10.0.0.2", "2.2.3.578")
    assert found.os_type.lower() == "linux"
    assert ISO.match(found.registration_time)
    assert found.invocation_count == 0

    status = tea.describe_cloud_assistant_status(ecs.DescribeCloudAssistantStatusRequest(
        region_id=REGION, instance_id=[instance_id])).body
    assert status.total_count == 1
    [agent] = status.instance_cloud_assistant_status_set.instance_cloud_assistant_status
    assert (agent.instance_id, agent.cloud_assistant_status, agent.cloud_assistant_version) == (
        instance_id, "true", "2.2.3.578")
    assert (agent.ostype, agent.active_task_count) == ("Linux", 0)
    assert ISO.match(agent.last_heartbeat_time)


def test_modify_managed_instance_renames_it(tea: EcsClient, server: Server) -> None:
    """ModifyManagedInstance changes the instance's name, answers it, and DescribeManagedInstances shows it."""
    [instance_id] = server.register()
    name = unique("renamed")
    response = tea.modify_managed_instance(ecs.ModifyManagedInstanceRequest(region_id=REGION,
                                                                            instance_id=instance_id,
                                                                            instance_name=name))
    assert (response.body.instance.instance_id, response.body.instance.instance_name) == (instance_id, name)
    assert managed(tea, instance_id).instance_name == name


def test_deregistered_instance_takes_no_commands(tea: EcsClient, server: Server) -> None:
    """DeregisterManagedInstance answers the instance it removed; it is no longer described, and RunCommand
    on it is InvalidInstance.NotFound (404)."""
    [instance_id] = server.register()
    response = tea.deregister_managed_instance(ecs.DeregisterManagedInstanceRequest(region_id=REGION,
                                                                                    instance_id=instance_id))
    assert response.status_code == 200
    assert response.body.instance.instance_id == instance_id
    gone = tea.describe_managed_instances(ecs.DescribeManagedInstancesRequest(region_id=REGION,
                                                                              instance_id=[instance_id]))
    assert gone.body.total_count == 0
    fails(lambda: run(tea, [instance_id]), "InvalidInstance.NotFound", 404)


def test_managed_instance_responses_match_the_sdk_models(core: Core, server: Server) -> None:
    """The raw JSON of every activation and managed-instance action is exactly what its SDK model reads and
    writes back: the same keys, nesting, and bare or wrapped lists."""
    created = core.call("CreateActivation", {"Description": "shape", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    round_trips(ecs.CreateActivationResponseBody, created)
    round_trips(ecs.DescribeActivationsResponseBody,
                core.call("DescribeActivations", {"ActivationId": created["ActivationId"]}))
    round_trips(ecs.DisableActivationResponseBody,
                core.call("DisableActivation", {"ActivationId": created["ActivationId"]}))
    round_trips(ecs.DeleteActivationResponseBody,
                core.call("DeleteActivation", {"ActivationId": created["ActivationId"]}))
    [instance_id] = server.register()
    described = core.call("DescribeManagedInstances", {"InstanceId.1": instance_id})
    assert described["TotalCount"] == 1
    round_trips(ecs.DescribeManagedInstancesResponseBody, described)
    status = core.call("DescribeCloudAssistantStatus", {"InstanceId.1": instance_id})
    assert status["TotalCount"] == 1
    round_trips(ecs.DescribeCloudAssistantStatusResponseBody, status)
    round_trips(ecs.ModifyManagedInstanceResponseBody,
                core.call("ModifyManagedInstance", {"InstanceId": instance_id, "InstanceName": "shape-name"}))
    round_trips(ecs.DeregisterManagedInstanceResponseBody,
                core.call("DeregisterManagedInstance", {"InstanceId": instance_id}))

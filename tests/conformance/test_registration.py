"""§3 of agent-protocol.md Part 2: `aliyun-service --register` as captured, and what its reply must be."""

from __future__ import annotations

import base64
import json
from typing import Any

from luban import VERSION, Activation, Agent, Ecs, acknowledged, create_activation, refused

from cloudassist.testing import LiveServer


def test_the_captured_registration_body_gets_integer_code_200_and_an_mi_id(server: LiveServer, api: Ecs,
                                                                            activation: Activation) -> None:
    """The agent's exact register body (unsigned; json.Marshal's `"intranetIp":"\\u003cnil\\u003e"`, tags as
    `[{key,value}]`, publicKey = base64 of a PEM PUBLIC KEY) is answered HTTP 200 with `"code":200` as a JSON
    integer and an `mi-` instanceId, the only reply on which the agent keeps its keys."""
    agent = Agent(server)
    try:
        body = agent.registration_body(activation.activation_id, activation.code)
        assert b'"intranetIp":"\\u003cnil\\u003e"' in body
        assert b'"tag":[{"key":"env","value":"test"},{"key":"team","value":"qa"}]' in body
        sent = json.loads(body)
        assert base64.b64decode(sent["publicKey"]).startswith(b"-----BEGIN PUBLIC KEY-----\n")
        assert list(sent) == ["activationCode", "machineId", "regionId", "instanceName", "hostname", "intranetIp",
                              "osVersion", "osType", "agentVersion", "publicKey", "activationId", "tag"]

        response = agent.register(activation.activation_id, activation.code)
        reply = acknowledged(response)
        assert isinstance(reply.get("instanceId"), str), response.text
        assert reply["instanceId"].startswith("mi-"), response.text
        assert agent.instance_id == reply["instanceId"]
    finally:
        agent.close()


def test_a_registered_instance_is_listed_with_what_the_agent_sent(server: LiveServer, api: Ecs,
                                                                 activation: Activation) -> None:
    """After the captured registration, DescribeManagedInstances lists the instance with the agent's name,
    hostname, machine id, OS type, version and tags, and `<nil>` is not taken for an intranet IP."""
    agent = Agent(server)
    try:
        acknowledged(agent.register(activation.activation_id, activation.code, instance_name="selftest-box"))
        [listed] = api.managed_instances(**{"InstanceId.1": agent.instance_id})
        assert listed["InstanceName"] == "selftest-box"
        assert listed["Hostname"] == "vm"
        assert listed["MachineId"] == agent.machine_id
        assert listed["ActivationId"] == activation.activation_id
        assert listed["OsType"] == "linux"
        assert listed["AgentVersion"] == VERSION
        assert listed["IntranetIp"] in ("", None), listed
        assert sorted((t["TagKey"], t["TagValue"]) for t in listed["Tags"]) == [("env", "test"), ("team", "qa")]
    finally:
        agent.close()


def test_a_wrong_activation_code_gets_a_parsed_reply_whose_code_is_not_200(server: LiveServer, api: Ecs) -> None:
    """A wrong activation code is answered with JSON the agent can parse whose integer `code` is not 200 (so it
    prints "register failed" and keeps no keys), and nothing is registered against the activation."""
    fresh = create_activation(api, 2)
    agent = Agent(server)
    try:
        response = agent.register(fresh.activation_id, "a-wrong-code-" + fresh.code[:4])
        reply = response.json()
        assert isinstance(reply, dict), response.text
        assert reply.get("code") != 200, response.text
        assert agent.instance_id == "", "the agent would have kept keys for this reply"
        assert api.managed_instances(ActivationId=fresh.activation_id) == []
        assert api.managed_instances(MachineId=agent.machine_id) == []
        [described] = api("DescribeActivations", {"ActivationId": fresh.activation_id})["ActivationList"]
        assert described["RegisteredCount"] == 0, described
    finally:
        agent.close()


def test_an_activation_code_cannot_register_more_hosts_than_its_instance_count(server: LiveServer,
                                                                                api: Ecs) -> None:
    """With InstanceCount=1, a second host registering with the same code gets a parsed reply whose code is not
    200, and only the first host is registered."""
    single = create_activation(api, 1)
    first, second = Agent(server, hostname="first"), Agent(server, hostname="second")
    try:
        acknowledged(first.register(single.activation_id, single.code))
        response = second.register(single.activation_id, single.code)
        reply = response.json()
        assert isinstance(reply, dict), response.text
        assert reply.get("code") != 200, response.text
        assert second.instance_id == ""
        listed = api.managed_instances(ActivationId=single.activation_id)
        assert [i["InstanceId"] for i in listed] == [first.instance_id]
    finally:
        first.close()
        second.close()


def test_registration_without_name_or_tags_is_accepted(server: LiveServer, api: Ecs, activation: Activation) -> None:
    """Without --InstanceName and --tag the agent sends `"instanceName":""` and `"tag":null` (a nil Go slice);
    registration still answers integer code 200, and the instance gets a name of its own."""
    agent = Agent(server, hostname="nameless-host")
    try:
        body = json.loads(agent.registration_body(activation.activation_id, activation.code, instance_name=""))
        body["tag"] = None
        raw = json.dumps(body, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").encode()
        assert b'"instanceName":"",' in raw
        assert raw.endswith(b'"tag":null}')
        response = agent.send("POST", "/luban/api/instance/register", body=raw, signed=False)
        reply = acknowledged(response)
        assert str(reply.get("instanceId", "")).startswith("mi-"), response.text
        [listed] = api.managed_instances(**{"InstanceId.1": reply["instanceId"]})
        assert listed["InstanceName"], listed
        assert listed["Tags"] == [], listed
    finally:
        agent.close()


def test_deregister_answers_integer_code_200_and_the_keys_stop_working(make_agent: Any, api: Ecs) -> None:
    """`--deregister` posts `/luban/api/instance/deregister` signed with an empty body; the agent deletes its key
    files only on `"code":200` (an integer). Afterwards the instance is gone and its signed requests are refused."""
    agent = make_agent()
    acknowledged(agent.send("POST", "/luban/api/instance/deregister"))
    assert api.managed_instances(**{"InstanceId.1": agent.instance_id}) == []
    refused(agent.heartbeat())

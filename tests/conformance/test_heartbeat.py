"""§1.11, §2.1, §4.1 and §4.7: the heart-beat, its plain-HTTP first try, and what the API makes of it."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from luban import FORM, UA_386, VERSION, Activation, Agent, Ecs, acknowledged, go_query, now_ms

from cloudassist.testing import LiveServer

#: The agent switches to its "full fields" heart-beat when errMsg says this (heartbeat.go).
FIELD_MISSING = re.compile(r"Required request parameter '(\w+)' for method parameter type (\w+) is not present")


def test_a_plain_http_heart_beat_on_the_agent_port_is_not_counted_as_delivered(
        make_agent: Callable[..., Agent], api: Ecs) -> None:
    """The agent's first beat may be plain `http://` on the agent port. Its http helper counts any status <= 400
    as delivered (it would then keep beating over http forever), so the server must fail that connection or
    answer > 400; and such a beat does not mark the instance online."""
    agent = make_agent(beat=False)
    try:
        response = agent.heartbeat(scheme="http")
    except httpx.TransportError:
        pass  # reset / closed without a response: the agent retries, then switches to https
    else:
        assert response.status_code > 400, f"plain-http beat answered {response.status_code}: {response.text}"
    assert api.assistant_status(agent.instance_id)["CloudAssistantStatus"] == "false"


def test_the_first_https_heart_beat_gets_code_instance_id_next_interval_and_new_tasks(
        make_agent: Callable[..., Agent]) -> None:
    """The captured first beat (`GET /luban/api/heart-beat?uptime&timestamp&pid&process_uptime&index=0&seq_no=0
    &virt_type=kvm&os_version=…&az=unknown&machineid=…&cold_start=true`, form Content-Type on a GET) is answered
    200 with `code` 200 (integer), the instanceId, a numeric `nextInterval` in [55000, 65000] ms (the only range
    the agent honours) and a boolean `newTasks`, and no errMsg that would switch the agent's field set."""
    agent = make_agent(beat=False)
    query = agent.heartbeat_query()
    assert re.fullmatch(r"uptime=\d+&timestamp=\d+&pid=\d+&process_uptime=\d+&index=0&seq_no=0&virt_type=kvm"
                        r"&os_version=Linux_%231\+SMP\+PREEMPT_DYNAMIC\+%400_x86_64&az=unknown&machineid=[0-9a-f]{32}"
                        r"&cold_start=true", query), query
    response = agent.send("GET", "/luban/api/heart-beat", query, content_type=FORM)
    body = acknowledged(response)
    assert body.get("instanceId") == agent.instance_id, response.text
    interval = body.get("nextInterval")
    assert type(interval) in (int, float), response.text
    assert 55_000 <= interval <= 65_000, response.text
    assert type(body.get("newTasks")) is bool, response.text
    assert not FIELD_MISSING.search(str(body.get("errMsg", ""))), response.text


def test_later_heart_beats_without_the_first_beat_fields_are_accepted(make_agent: Callable[..., Agent]) -> None:
    """Beats after the first carry only `uptime&timestamp&pid&process_uptime&index&seq_no` (index = beats
    acknowledged, seq_no = beats sent); they are acknowledged like the first."""
    agent = make_agent()  # one beat done
    query = agent.heartbeat_query()
    assert "machineid=" not in query
    assert "&index=1&seq_no=1" in query
    body = acknowledged(agent.send("GET", "/luban/api/heart-beat", query, content_type=FORM))
    assert 55_000 <= body["nextInterval"] <= 65_000


@pytest.mark.parametrize("arch", ["linux_386", "linux_amd64"])
def test_describe_cloud_assistant_status_shows_the_agent_running_with_its_version(
        make_agent: Callable[..., Agent], api: Ecs, arch: str) -> None:
    """After a heart-beat from `linux_386/2.2.3.578` (the official package) or `linux_amd64/2.2.3.578`,
    DescribeCloudAssistantStatus reports CloudAssistantStatus "true" and CloudAssistantVersion 2.2.3.578."""
    agent = make_agent(arch=arch)
    status = api.assistant_status(agent.instance_id)
    assert status["CloudAssistantStatus"] == "true", status
    assert status["CloudAssistantVersion"] == VERSION, status
    assert status["LastHeartbeatTime"], status


def test_the_version_reported_is_the_user_agent_of_the_heart_beat(server: LiveServer, api: Ecs,
                                                                  activation: Activation) -> None:
    """The User-Agent is the agent's version signal after registration: a host registered by an older agent
    (agentVersion 2.2.3.512) that self-updated and now beats as `linux_386/2.2.3.578` is reported at 2.2.3.578."""
    agent = Agent(server, arch="linux_386")
    try:
        acknowledged(agent.register(activation.activation_id, activation.code, agent_version="2.2.3.512"))
        assert agent.user_agent == UA_386
        acknowledged(agent.heartbeat())
        status = api.assistant_status(agent.instance_id)
        assert status["CloudAssistantStatus"] == "true", status
        assert status["CloudAssistantVersion"] == VERSION, status
    finally:
        agent.close()


def test_an_unknown_extra_heart_beat_field_is_tolerated(make_agent: Callable[..., Agent]) -> None:
    """The "full fields" variant the agent falls back to (`…&virt_type=kvm&lang=golang&os_type=linux&os_version=…
    &app_version=2.2.3.578&az=unknown&cold_start=true`) is acknowledged as well."""
    agent = make_agent(beat=False)
    query = go_query(("uptime", 1_790_000), ("timestamp", now_ms()), ("pid", agent.pid), ("process_uptime", 5000),
                     ("index", 0), ("seq_no", 0), ("virt_type", "kvm"), ("lang", "golang"), ("os_type", "linux"),
                     ("os_version", "Linux_#1 SMP PREEMPT_DYNAMIC @0_x86_64"), ("app_version", VERSION),
                     ("az", "unknown"), ("cold_start", "true"))
    body = acknowledged(agent.send("GET", "/luban/api/heart-beat", query, content_type=FORM))
    assert 55_000 <= body["nextInterval"] <= 65_000

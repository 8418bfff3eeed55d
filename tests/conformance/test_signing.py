"""§1.2 and §3: every request of a registered agent is signed; the signature covers neither the method, the path
nor the body, so the server must check timestamp skew and request-id reuse itself. Refusals must be HTTP > 400,
the only statuses the agent treats as errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from luban import FORM, Agent, Ecs, acknowledged, now_ms, refused

MINUTE_MS = 60_000


def test_every_captured_request_verifies_with_the_agents_own_signature(agent: Agent) -> None:
    """A request signed as captured (X-Acs-Instance-Id, X-Acs-Timestamp in ms, X-Acs-Request-Id a UUIDv4,
    X-Acs-Signature = base64 PKCS#1 v1.5 over MD5 of instance id + machine id + timestamp + request id) is
    accepted on a GET with a query and on a POST with a body alike."""
    headers = agent.sign()
    assert len(headers["X-Acs-Timestamp"]) == 13
    assert headers["X-Acs-Request-Id"][14] == "4"
    acknowledged(agent.send("GET", "/luban/api/heart-beat", agent.heartbeat_query(), content_type=FORM,
                            signing=headers))
    acknowledged(agent.task_list("startup"))


def test_a_replayed_request_id_is_refused(agent: Agent) -> None:
    """The exact signing headers of an accepted request, sent again, are refused (status > 400)."""
    headers = agent.sign()
    acknowledged(agent.send("GET", "/luban/api/heart-beat", agent.heartbeat_query(), content_type=FORM,
                            signing=headers))
    refused(agent.send("GET", "/luban/api/heart-beat", agent.heartbeat_query(), content_type=FORM, signing=headers))
    refused(agent.send("POST", "/luban/api/v1/task/list", "reason=kickoff", signing=headers))


def test_a_replayed_signature_cannot_carry_a_different_report(agent: Agent, api: Ecs) -> None:
    """Signing headers lifted from one report cannot be reused for another (the signature does not cover the URL
    or the body): the forged finish is refused and the task stays as the agent left it."""
    invoke_id = api.run_command(agent.instance_id, "echo start; sleep 30")
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    run = agent.execution(entry)
    lifted = agent.sign()
    acknowledged(agent.send("POST", "/luban/api/v1/task/running",
                            f"taskId={run.task_id}&invokeVersion={run.invoke_version}&start={run.start}",
                            content_type="text/plain; charset=utf-8", signing=lifted))
    forged = agent.send("POST", "/luban/api/v1/task/finish",
                        f"taskId={run.task_id}&invokeVersion={run.invoke_version}&start={run.start}"
                        f"&end={run.start + 10}&exitCode=0&dropped=0", body=b"forged\n",
                        content_type="text/plain; charset=utf-8", signing=lifted)
    refused(forged)
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Running", result
    assert result["Output"] == "", result


@pytest.mark.parametrize("skew_minutes", [-20, 20])
def test_a_timestamp_twenty_minutes_off_is_refused(agent: Agent, skew_minutes: int) -> None:
    """A correctly signed request whose X-Acs-Timestamp is 20 minutes in the past (or future) is refused."""
    headers = agent.sign(timestamp=now_ms() + skew_minutes * MINUTE_MS)
    refused(agent.send("GET", "/luban/api/heart-beat", agent.heartbeat_query(), content_type=FORM, signing=headers))


def test_another_instances_id_with_my_signature_is_refused(make_agent: Callable[..., Agent], api: Ecs) -> None:
    """An agent that puts another instance's id in X-Acs-Instance-Id and signs with its own key is refused, and
    cannot fetch or report that instance's task."""
    me, victim = make_agent(), make_agent()
    invoke_id = api.run_command(victim.instance_id, "echo victim; sleep 30")
    [entry] = [e for e in victim.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    run = victim.execution(entry)
    acknowledged(victim.running(run))

    for machine_id in (me.machine_id, victim.machine_id):
        refused(me.send("GET", "/luban/api/heart-beat", me.heartbeat_query(), content_type=FORM,
                        signing=me.sign(instance_id=victim.instance_id, machine_id=machine_id)))
    refused(me.send("POST", "/luban/api/v1/task/list", "reason=kickoff",
                    signing=me.sign(instance_id=victim.instance_id)))
    refused(me.send("POST", "/luban/api/v1/task/finish",
                    f"taskId={run.task_id}&invokeVersion={run.invoke_version}&start={run.start}&end={run.start + 5}"
                    f"&exitCode=0&dropped=0", body=b"forged\n", content_type="text/plain; charset=utf-8",
                    signing=me.sign(instance_id=victim.instance_id)))
    result = api.result(invoke_id)
    assert result["InvocationStatus"] == "Running", result
    assert result["Output"] == "", result


def test_unsigned_and_wrongly_signed_requests_are_refused(agent: Agent) -> None:
    """Without signing headers, with a signature by another key, or with a signature over a different machine id,
    a request is refused."""
    refused(agent.send("POST", "/luban/api/v1/task/list", "reason=startup", signed=False))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(agent.send("POST", "/luban/api/v1/task/list", "reason=startup", signing=agent.sign(key=other)))
    refused(agent.send("POST", "/luban/api/v1/task/list", "reason=startup",
                       signing=agent.sign(machine_id="0" * 32)))


def test_a_deregistered_instance_is_refused(agent: Agent, api: Ecs) -> None:
    """After DeregisterManagedInstance, the instance's correctly signed requests are refused."""
    api("DeregisterManagedInstance", {"InstanceId": agent.instance_id})
    refused(agent.heartbeat())
    refused(agent.task_list("startup"))


@pytest.mark.parametrize("skew_minutes", [-2, 2])
def test_a_clock_a_couple_of_minutes_off_is_tolerated(agent: Agent, skew_minutes: int) -> None:
    """Hosts' clocks drift: a request signed with a timestamp two minutes off is still accepted."""
    headers = agent.sign(timestamp=now_ms() + skew_minutes * MINUTE_MS)
    acknowledged(agent.send("GET", "/luban/api/heart-beat", agent.heartbeat_query(), content_type=FORM,
                            signing=headers))

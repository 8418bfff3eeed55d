"""Issue 8, points 4 and 8: what an authenticated agent's websockets may hold, and what their close means.

An instance keeps one websocket per server (a new one replaces the old), its messages are small, the
server pings it, and when the last one closes the agent is offline at once: DescribeCloudAssistantStatus
says so, and a task sent to it ends ClientNotRunning, not ClientNotResponse two minutes later.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable

import pytest
from faultwire import closed_by_peer, tls_context
from luban import Agent, Ecs, acknowledged, create_activation, wait_for_kick
from websockets.exceptions import ConnectionClosed

from cloudassist.testing import LiveServer, wait_for


def registered(server: LiveServer, api: Ecs) -> Agent:
    activation = create_activation(api, 10)
    agent = Agent(server)
    acknowledged(agent.register(activation.activation_id, activation.code))
    acknowledged(agent.heartbeat())
    return agent


def online(api: Ecs, agent: Agent) -> bool:
    return api.assistant_status(agent.instance_id)["CloudAssistantStatus"] == "true"


@pytest.fixture
def api() -> Callable[[LiveServer], Ecs]:
    made: list[Ecs] = []

    def make(server: LiveServer) -> Ecs:
        made.append(Ecs(server.endpoint))
        return made[-1]

    yield make  # type: ignore[misc]
    for client in made:
        client.close()


def test_a_new_websocket_of_an_instance_replaces_the_old_one(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """An instance opening a second websocket gets it, the first is closed by the server, kicks go to the
    new one, and the agent stays online (the replaced socket does not mark it offline)."""
    server = start()
    ecs = api(server)
    agent = registered(server, ecs)
    with agent.websocket() as first, agent.websocket() as second:
        with pytest.raises(ConnectionClosed):
            first.recv(timeout=5)
        ecs.run_command(agent.instance_id, "echo hi")
        assert wait_for_kick(second).startswith("kick_vm")
        assert online(ecs, agent)
    agent.close()


def test_a_websocket_message_over_4_kib_closes_the_socket(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """The agent sends `accept:kick_vm`-sized messages: 64 KiB is refused with close code 1009."""
    server = start()
    agent = registered(server, api(server))
    with agent.websocket() as ws:
        ws.send("accept:" + "x" * 100)  # a small one is fine
        ws.send("x" * 65536)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    agent.close()


def test_a_websocket_that_does_not_answer_pings_is_closed_and_its_agent_offline(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """With pings every second, a websocket whose peer has gone silent (it never reads, so never answers a
    ping) is closed within a few seconds, and its agent is reported offline although it beat just now."""
    server = start(agent_ping_seconds=1)
    ecs = api(server)
    agent = registered(server, ecs)
    raw = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", server.agent_port)))
    key = base64.b64encode(os.urandom(16)).decode()
    headers = "".join(f"{name}: {value}\r\n" for name, value in agent.sign().items())
    raw.sendall((f"GET /luban/notify_server HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 101")
    assert online(ecs, agent)
    assert closed_by_peer(raw, within=6), "a silent websocket was kept"
    wait_for(lambda: not online(ecs, agent) or None, 3, "the agent reported offline")
    raw.close()
    agent.close()


def test_a_closed_websocket_marks_the_agent_offline_at_once_and_a_heartbeat_brings_it_back(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """An agent that beat a second ago and whose websocket closes is offline within a second (its
    LastHeartbeatTime still shown); its next heart-beat, or a new websocket, makes it online again."""
    server = start()
    ecs = api(server)
    agent = registered(server, ecs)
    with agent.websocket():
        assert online(ecs, agent)
    wait_for(lambda: not online(ecs, agent) or None, 1.5, "the agent reported offline")
    assert ecs.assistant_status(agent.instance_id)["LastHeartbeatTime"]
    assert ecs.managed_instances(**{"InstanceId.1": agent.instance_id})[0]["Connected"] is False
    acknowledged(agent.heartbeat())
    assert online(ecs, agent)
    with agent.websocket():
        pass
    wait_for(lambda: not online(ecs, agent) or None, 1.5, "the agent reported offline")
    with agent.websocket():
        assert online(ecs, agent), "opening a websocket is a sign of life"
    agent.close()


def test_an_agent_without_a_websocket_is_judged_by_its_heartbeats(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """An agent that keeps no websocket is online while it beats."""
    server = start()
    ecs = api(server)
    agent = registered(server, ecs)
    assert online(ecs, agent)
    time.sleep(1)
    acknowledged(agent.heartbeat())
    assert online(ecs, agent)
    agent.close()


def test_a_task_sent_after_the_websocket_closed_ends_client_not_running(
    start: Callable[..., LiveServer], api: Callable[[LiveServer], Ecs]
) -> None:
    """With a 2 s delivery window: a task sent to an agent whose websocket closed (it beat a second before)
    is never fetched and ends Aborted with ClientNotRunning, not ClientNotResponse."""
    server = start(delivery_timeout_seconds=2)
    ecs = api(server)
    agent = registered(server, ecs)
    with agent.websocket():
        pass
    wait_for(lambda: not online(ecs, agent) or None, 1.5, "the agent reported offline")
    invoke_id = ecs.run_command(agent.instance_id, "echo never")
    result = wait_for(lambda: ((r := ecs.result(invoke_id))["InvocationStatus"] != "Pending" and r) or None, 15,
                      "the task to end")
    assert (result["InvocationStatus"], result["ErrorCode"]) == ("Aborted", "ClientNotRunning"), result
    agent.close()

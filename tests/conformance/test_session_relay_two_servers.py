"""A session whose client reaches one server process and whose agent reaches another, both sharing one
PostgreSQL database: the kick, the frames both ways and the end cross between the processes."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from luban import Agent, Ecs, acknowledged, create_activation
from sessionwire import (
    accept_session_kick,
    agent_frame,
    client_frame,
    in_flight,
    open_client,
    open_data_socket,
    recv_agent,
    recv_client,
    recv_client_to_the_end,
    report_status,
    session_list,
)

from cloudassist.testing import LiveServer, pg_database

OUTPUT, INPUT, SET_SIZE, STATUS = 1, 0, 2, 5


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    with pg_database("sessions") as db:
        front = LiveServer(Path(tmp_path_factory.mktemp("front")) / "data", db=db).start()
        try:
            back = LiveServer(Path(tmp_path_factory.mktemp("back")) / "data", db=db).start()
            try:
                yield front, back
            finally:
                back.stop()
        finally:
            front.stop()


def test_client_on_one_server_agent_on_another(two_servers: tuple[LiveServer, LiveServer]) -> None:
    """StartTerminalSession and the client on server A, the agent's notify socket, list, data socket and status on
    server B: output and input cross, the resize is converted, and the agent's Ok ends the client on A."""
    front, back = two_servers
    api = Ecs(front.endpoint)
    agent = Agent(back)
    try:
        activation = create_activation(api, 1)
        acknowledged(agent.register(activation.activation_id, activation.code))
        acknowledged(agent.heartbeat())
        started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
        assert f"//{front.endpoint}/session?" in started["WebSocketUrl"]
        with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
            channel = accept_session_kick(notify)
            (entry,) = session_list(agent, channel)
            assert entry["channelId"] == channel
            with open_data_socket(agent, channel) as data:
                data.send(agent_frame(OUTPUT, b"remote $ ", channel, 0))
                assert recv_client(client) == (OUTPUT, b"remote $ ")
                client.send(client_frame(INPUT, b"whoami\r", 0))
                assert recv_agent(data) == (INPUT, b"whoami\r")
                client.send(client_frame(SET_SIZE, struct.pack("<hh", 24, 80), 1))
                kind, payload = recv_agent(data)
                assert (kind, json.loads(payload)) == (SET_SIZE, {"cols": 80, "rows": 24})
                report_status(agent, channel, "Success", "Ok")
                assert recv_client(client) == (STATUS, b"\x05Exit")
        body = api("DescribeTerminalSessions", {"SessionId": started["SessionId"]})
        (connection,) = body["Sessions"]["Session"][0]["Connections"]["Connection"]
        assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "AgentSocketClosed")
    finally:
        agent.close()
        api.close()


def test_output_in_flight_on_the_agent_s_server_reaches_the_client_on_the_other_before_exit(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    """The agent's last output is still on its way over its data socket to server B when its status report there
    has been taken (and sent over the bus): the client on server A gets that output before `Exit`, even while
    the agent keeps its data socket open."""
    front, back = two_servers
    api = Ecs(front.endpoint)
    agent = Agent(back)
    try:
        activation = create_activation(api, 1)
        acknowledged(agent.register(activation.activation_id, activation.code))
        acknowledged(agent.heartbeat())
        started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
        with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
            channel = accept_session_kick(notify)
            with open_data_socket(agent, channel) as data:
                data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
                assert recv_client(client) == (OUTPUT, b"$ ")
                last = agent_frame(OUTPUT, b"exit\r\nlogout\r\n", channel, 1)
                data.send(in_flight(last, lambda: report_status(agent, channel, "Success", "Ok")))
                told = recv_client_to_the_end(client)
        assert told == [(OUTPUT, b"exit\r\nlogout\r\n"), (STATUS, b"\x05Exit")]
    finally:
        agent.close()
        api.close()


def test_end_terminal_session_on_the_agent_s_server_ends_the_client_on_the_other(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    """EndTerminalSession called on server B (where the agent is) stops the agent there and tells the client on
    server A `Exit` through the bus."""
    front, back = two_servers
    api, back_api = Ecs(front.endpoint), Ecs(back.endpoint)
    agent = Agent(back)
    try:
        activation = create_activation(api, 1)
        acknowledged(agent.register(activation.activation_id, activation.code))
        acknowledged(agent.heartbeat())
        started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
        with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
            channel = accept_session_kick(notify)
            with open_data_socket(agent, channel) as data:
                data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
                assert recv_client(client) == (OUTPUT, b"$ ")
                back_api("EndTerminalSession", {"SessionId": started["SessionId"]})
                assert notify.recv(timeout=15) == f"kick_vm session stop {channel}"
                assert recv_client(client) == (STATUS, b"\x05Exit")
    finally:
        agent.close()
        api.close()
        back_api.close()

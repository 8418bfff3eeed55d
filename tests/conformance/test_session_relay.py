"""Session Manager against a live server: the official agent's side replayed as session-protocol.md describes it
(kick -> v1/session/list -> data websocket in agent framing -> v1/session/status), and a client speaking the
official CLI's framing on the returned WebSocketUrl."""

from __future__ import annotations

import json
import struct
import threading
import time

import pytest
from luban import Agent, Ecs
from sessionwire import (
    accept_session_kick,
    agent_frame,
    client_frame,
    open_client,
    open_data_socket,
    recv_agent,
    recv_client,
    recv_client_to_the_end,
    report_status,
    session_list,
)
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection

OUTPUT, INPUT, SET_SIZE, CLOSE, STATUS = 1, 0, 2, 3, 5


def connections(api: Ecs, session_id: str) -> list[dict[str, object]]:
    body = api("DescribeTerminalSessions", {"SessionId": session_id})
    (session,) = body["Sessions"]["Session"]
    found: list[dict[str, object]] = session["Connections"]["Connection"]
    return found


def test_a_shell_session_end_to_end(agent: Agent, api: Ecs) -> None:
    """Kick, list, data socket, output and input re-framed both ways, a resize converted to JSON, and the agent's
    `Ok` report ending the client with status 5 `Exit`; the record says Terminated by AgentSocketClosed."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id, "Username": "ops"})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        assert len(channel) <= 32
        (entry,) = session_list(agent, channel)
        assert (entry["channelId"], entry["username"], entry["portNumber"]) == (channel, "ops", "")
        assert entry["flowLimit"] == 0
        client.send(client_frame(INPUT, b"early\r"))  # before the agent is ready: buffered, not lost
        with open_data_socket(agent, channel) as data:
            assert connections(api, started["SessionId"])[0]["Status"] == "Connected"
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            assert recv_agent(data) == (INPUT, b"early\r")
            client.send(client_frame(INPUT, b"ls\r", 1))
            assert recv_agent(data) == (INPUT, b"ls\r")
            client.send(client_frame(SET_SIZE, struct.pack("<hh", 40, 120), 2))
            kind, payload = recv_agent(data)
            assert (kind, json.loads(payload)) == (SET_SIZE, {"cols": 120, "rows": 40})
            data.send(agent_frame(OUTPUT, "héllo\r\n".encode(), channel, 1))
            assert recv_client(client) == (OUTPUT, "héllo\r\n".encode())
            report_status(agent, channel, "Success", "Ok")
            assert recv_client(client) == (STATUS, b"\x05Exit")
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=10)
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "AgentSocketClosed")
    assert connection["EndTime"]


def test_client_close_stops_the_agent_and_refuses_its_redial(agent: Agent, api: Ecs) -> None:
    """A type-3 close from the client sends `kick_vm session stop <channel>`; the agent's re-dial is refused."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            client.send(client_frame(CLOSE, b"1", 1))
            stop = notify.recv(timeout=15)
            assert stop == f"kick_vm session stop {channel}"
        with pytest.raises(InvalidHandshake), open_data_socket(agent, channel):
            pass
        assert session_list(agent, channel) == []
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "ClientClosed")


def test_token_is_single_use_and_end_terminal_session_closes_everything(agent: Agent, api: Ecs) -> None:
    """A second dial of a shell session's URL is told TokenUsed; EndTerminalSession ends the live connection with
    `Exit` to the client and a stop kick to the agent."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_client(started["WebSocketUrl"]) as second:
            assert recv_client(second) == (STATUS, b"\x05TokenUsed")
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            api("EndTerminalSession", {"SessionId": started["SessionId"]})
            assert notify.recv(timeout=15) == f"kick_vm session stop {channel}"
            assert recv_client(client) == (STATUS, b"\x05Exit")
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "SessionEnded")


def test_a_malformed_client_frame_closes_only_that_session(agent: Agent, api: Ecs) -> None:
    """Garbage from the client ends its connection with MessageFormatInvalid, said to it; the server still
    serves the next session."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        client.send(b"\x07garbage")
        assert recv_client(client) == (STATUS, b"\x05MessageFormatInvalid")
        assert notify.recv(timeout=15) == f"kick_vm session stop {channel}"
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Failed", "MessageFormatInvalid")
    assert "client" in str(connection["FailedDetail"])
    again = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(again["WebSocketUrl"]):
        assert accept_session_kick(notify)


def test_a_malformed_agent_frame_closes_the_session(agent: Agent, api: Ecs) -> None:
    """A short frame from the agent ends the connection with MessageFormatInvalid (agent)."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id, "PortNumber": "22"})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        (entry,) = session_list(agent, channel)
        assert entry["portNumber"] == "22"
        with open_data_socket(agent, channel) as data:
            data.send(b"\x01\x00\x00\x00short")
            assert recv_client(client) == (STATUS, b"\x05MessageFormatInvalid")
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Failed", "MessageFormatInvalid")


def test_another_instance_cannot_take_the_channel(agent: Agent, make_agent: object, api: Ecs) -> None:
    """The channel is served only to the instance it was made for: another registered agent gets no list entry
    and its data socket is refused."""
    other = make_agent()  # type: ignore[operator]
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]):
        channel = accept_session_kick(notify)
        assert session_list(other, channel) == []
        with pytest.raises(InvalidHandshake), open_data_socket(other, channel):
            pass


def test_port_forward_url_serves_each_local_connection(agent: Agent, api: Ecs) -> None:
    """The official CLI's portforward dials the same URL for each local TCP connection: each gets its own channel
    (its own kick), a stray resize is dropped and the bytes pass unchanged."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id, "PortNumber": "8080"})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as first, \
            open_client(started["WebSocketUrl"]) as second:
        channels = {accept_session_kick(notify), accept_session_kick(notify)}
        assert len(channels) == 2
        for channel in channels:
            (entry,) = session_list(agent, channel)
            assert (entry["portNumber"], entry["targetHost"]) == ("8080", "")
        channel = sorted(channels)[0]
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"\x00\xffHTTP/1.1 200", channel, 0))
            clients = (first, second)
            got = [c for c in clients if _try_recv(c) == (OUTPUT, b"\x00\xffHTTP/1.1 200")]
            assert len(got) == 1
            got[0].send(client_frame(SET_SIZE, struct.pack("<hh", 24, 80), 0))
            got[0].send(client_frame(INPUT, b"GET / HTTP/1.1\r\n\r\n", 1))
            assert recv_agent(data) == (INPUT, b"GET / HTTP/1.1\r\n\r\n")
    assert len(connections(api, started["SessionId"])) == 2


def _try_recv(client: ClientConnection) -> tuple[int, bytes] | None:
    try:
        return recv_client(client, timeout=3)
    except TimeoutError:
        return None


def test_pacing_rates_are_forwarded_and_crashing_ones_refused(agent: Agent, api: Ecs) -> None:
    """A status-7 rate of 16384 bit/s reaches the agent as sent (big-endian); a rate of 100, which would crash the
    agent, closes the session as MessageFormatInvalid instead."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            client.send(client_frame(STATUS, b"\x07\x00\x00\x40\x00", 0))
            assert recv_agent(data) == (STATUS, b"\x07\x00\x00\x40\x00")
            client.send(client_frame(STATUS, b"\x07\x64", 1))
            assert recv_client(client) == (STATUS, b"\x05MessageFormatInvalid")


def test_an_agent_talking_on_after_its_report_is_cut_off_within_seconds(agent: Agent, api: Ecs) -> None:
    """Output that comes after the agent's status report is still relayed (it may have been on its way), but only
    for a few seconds: an agent that keeps its data socket open and goes on sending does not keep the client."""
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            report_status(agent, channel, "Success", "Ok")
            reported = time.monotonic()
            done = threading.Event()

            def talk() -> None:
                seq = 1
                while not done.wait(0.1):
                    data.send(agent_frame(OUTPUT, b"more", channel, seq))
                    seq += 1

            talker = threading.Thread(target=talk)
            talker.start()
            try:
                told = recv_client_to_the_end(client)
                took = time.monotonic() - reported
            finally:
                done.set()
                talker.join()
    assert told[-1] == (STATUS, b"\x05Exit")
    assert set(told[:-1]) == {(OUTPUT, b"more")}  # some, all relayed after the report
    assert took < 12, took
    (connection,) = connections(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "AgentSocketClosed")

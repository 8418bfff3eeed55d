"""Session Manager's timers, limits and audit against a live server whose limits are set small: the start
timeout when the agent never dials, the idle timeout, the agent's re-dial, the per-instance limit, the flow
limit, and the audit record and transcript (cut at its cap)."""

from __future__ import annotations

import asyncio
import time
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
)

from cloudassist.store.store import Store
from cloudassist.testing import LiveServer

OUTPUT, INPUT, STATUS = 1, 0, 5
TRANSCRIPT_CAP = 16


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a 3 s start timeout, a 4 s idle timeout, 2 connections per instance, a 64 kbit/s input
    limit and transcripts kept up to 16 bytes."""
    env = {
        "CLOUDASSIST_SESSION_START_SECONDS": "3",
        "CLOUDASSIST_SESSION_IDLE_SECONDS": "4",
        "CLOUDASSIST_SESSION_MAX_PER_INSTANCE": "2",
        "CLOUDASSIST_SESSION_MAX_INPUT_BPS": "65536",
        "CLOUDASSIST_SESSION_TRANSCRIPTS": "true",
        "CLOUDASSIST_SESSION_TRANSCRIPT_MAX_BYTES": str(TRANSCRIPT_CAP),
    }
    live = LiveServer(Path(tmp_path_factory.mktemp("small")) / "data", extra_env=env).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def pair(small: LiveServer) -> Iterator[tuple[Ecs, Agent]]:
    api = Ecs(small.endpoint)
    agent = Agent(small)
    activation = create_activation(api, 1)
    acknowledged(agent.register(activation.activation_id, activation.code))
    acknowledged(agent.heartbeat())
    try:
        yield api, agent
    finally:
        agent.close()
        api.close()


def connection_of(api: Ecs, session_id: str) -> dict[str, str]:
    body = api("DescribeTerminalSessions", {"SessionId": session_id})
    (connection,) = body["Sessions"]["Session"][0]["Connections"]["Connection"]
    return dict(connection)


def wait_ended(api: Ecs, session_id: str, seconds: float = 20.0) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        connection = connection_of(api, session_id)
        if connection["Status"] not in ("Connecting", "Connected") or time.monotonic() > deadline:
            return connection
        time.sleep(0.2)


def kept_transcript(server: LiveServer, channel: str) -> tuple[bytes, bool] | None:
    """The transcript the server kept for `channel` and whether it was cut (None: none kept), read from its
    SQLite store."""

    async def read() -> tuple[bytes, bool] | None:
        store = await Store.open(f"sqlite+aiosqlite:///{server.data_dir / 'cloudassist.db'}", upgrade=False)
        try:
            async with store.read() as tx:
                return await tx.sessions.transcript(channel)
        finally:
            await store.close()

    return asyncio.run(read())


def test_an_agent_that_never_dials_fails_the_connection(pair: tuple[Ecs, Agent]) -> None:
    """Kicked but never dialling (the kick lost to a self-update): after the start timeout the client is told
    AgentTimeout and the connection is Failed by DeliveryTimeout."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        accept_session_kick(notify)
        assert recv_client(client, timeout=20) == (STATUS, b"\x05AgentTimeout")
    connection = wait_ended(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Failed", "DeliveryTimeout")


def test_idle_connection_is_closed_and_the_agent_stopped(pair: tuple[Ecs, Agent]) -> None:
    """No data either way for the idle timeout: the client is told IdleTimeout, the agent gets a stop kick."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            assert recv_client(client, timeout=20) == (STATUS, b"\x05IdleTimeout")
            assert notify.recv(timeout=15) == f"kick_vm session stop {channel}"
    connection = wait_ended(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "IdleTimeout")


def test_the_agent_may_redial_an_open_channel(pair: tuple[Ecs, Agent]) -> None:
    """A data socket dropped without a status report is re-dialled (session-protocol.md §3) and the session
    goes on over the new socket."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"one", channel, 0))
            assert recv_client(client) == (OUTPUT, b"one")
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"two", channel, 1))
            assert recv_client(client) == (OUTPUT, b"two")
            client.send(client_frame(INPUT, b"x", 0))
            assert recv_agent(data) == (INPUT, b"x")
        assert connection_of(api, started["SessionId"])["Status"] == "Connected"


def test_connections_per_instance_are_limited(pair: tuple[Ecs, Agent]) -> None:
    """With two connections open on the instance, a third client is told ConnectionLimitExceeded."""
    api, agent = pair
    urls = [api("StartTerminalSession", {"InstanceId.1": agent.instance_id})["WebSocketUrl"] for _ in range(3)]
    with agent.websocket() as notify, open_client(urls[0]), open_client(urls[1]):
        accept_session_kick(notify)
        accept_session_kick(notify)
        with open_client(urls[2]) as third:
            assert recv_client(third) == (STATUS, b"\x05ConnectionLimitExceeded")


def test_a_client_flooding_input_is_closed_by_the_flow_limit(pair: tuple[Ecs, Agent]) -> None:
    """Input far beyond the relay's limit (64 kbit/s, 4 s burst) closes the connection with FlowExceedLimit."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ ", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ ")
            for seq in range(40):  # 80 KB at once: more than the 32 KB burst
                client.send(client_frame(INPUT, b"y" * 2048, seq))
            kinds = []
            while (frame := recv_client(client))[0] != STATUS:
                kinds.append(frame[0])
            assert frame == (STATUS, b"\x05FlowExceedLimit")
    connection = wait_ended(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "FlowExceedLimit")


def test_every_connection_is_audited_with_its_transcript(pair: tuple[Ecs, Agent], small: LiveServer) -> None:
    """The server's log has one session line (account, AccessKeyId, client address, duration, ending, bytes) and
    the record keeps the transcript of what the terminal showed, cut at the cap."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"0123456789", channel, 0))
            assert recv_client(client)[1] == b"0123456789"
            data.send(agent_frame(OUTPUT, b"abcdefghij", channel, 1))
            assert recv_client(client)[1] == b"abcdefghij"
            client.send(client_frame(3, b"1"))
            assert notify.recv(timeout=15) == f"kick_vm session stop {channel}"
    wait_ended(api, started["SessionId"])
    line = next(line for line in small.log().splitlines() if f"channel={channel}" in line)
    for part in (started["SessionId"], "AccessKeyId=testak", "client=127.0.0.1", "reason=ClientClosed", "out=20"):
        assert part in line, line
    assert started["SecurityToken"] not in small.log()

    assert kept_transcript(small, channel) == (b"0123456789abcdef", True)


def test_output_still_in_flight_when_the_agent_reports_its_end_reaches_the_client_first(
    pair: tuple[Ecs, Agent], small: LiveServer
) -> None:
    """The shell's last line is still on its way over the data socket when the agent's v1/session/status (Ok, with
    our agent's exitCode) has been taken: the client gets that line, then `exitCode=5`, then `Exit`, and the
    transcript holds all the output."""
    api, agent = pair
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(OUTPUT, b"$ exit\r\n", channel, 0))
            assert recv_client(client) == (OUTPUT, b"$ exit\r\n")
            last = agent_frame(OUTPUT, b"logout\r\n", channel, 1)
            data.send(in_flight(last, lambda: report_status(agent, channel, "Success", "Ok", "exitCode=5")))
        # then the data socket is closed, after the report, as our agent and the official one do
        told = recv_client_to_the_end(client)
    assert told == [(OUTPUT, b"logout\r\n"), (STATUS, b"\x03exitCode=5"), (STATUS, b"\x05Exit")]
    connection = wait_ended(api, started["SessionId"])
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "AgentSocketClosed")

    assert kept_transcript(small, channel) == (b"$ exit\r\nlogout\r\n", False)

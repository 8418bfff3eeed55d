"""§1.4, §4.2 and §5.3: the kick websocket `wss://<host>/luban/notify_server`. Without it the official agent
never learns of tasks created after its start-up (it does not poll and ignores `newTasks`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from luban import Agent, Ecs, wait_for_kick
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection


def refused_upgrade(connect: Callable[[], ClientConnection]) -> None:
    """The upgrade is not accepted: an HTTP status > 400 instead of 101 (or the handshake is cut)."""
    with pytest.raises(InvalidHandshake) as caught, connect():
        pass
    if isinstance(caught.value, InvalidStatus):
        assert caught.value.response.status_code > 400, caught.value.response.status_code


def test_run_command_kicks_a_connected_agent_which_then_fetches_the_task(agent: Agent, api: Ecs) -> None:
    """With the signed websocket open, RunCommand makes the server send a text frame starting with `kick_vm`
    within a few seconds; the agent answers `accept:kick_vm…` and its `reason=kickoff` fetch lists the task."""
    with agent.websocket() as ws:
        invoke_id = api.run_command(agent.instance_id, "echo kicked")
        started = time.monotonic()
        kick = wait_for_kick(ws, timeout=10.0)  # a few seconds, with room for a loaded test machine
        assert time.monotonic() - started < 10.0
        assert kick.split()[0] == "kick_vm", kick
        listing = agent.tasks("kickoff")
        assert [e["task"]["taskID"] for e in listing["run"]] == [invoke_id], listing


def test_an_agent_that_connects_while_work_waits_is_kicked(agent: Agent, api: Ecs) -> None:
    """A task created while the agent's websocket was down is announced by a kick soon after it reconnects."""
    invoke_id = api.run_command(agent.instance_id, "echo waiting")
    with agent.websocket() as ws:
        wait_for_kick(ws)
        assert [e["task"]["taskID"] for e in agent.tasks("kickoff")["run"]] == [invoke_id]


def test_the_keepalive_ping_and_the_agents_replies_keep_the_channel_open(agent: Agent, api: Ecs) -> None:
    """The agent's `keepalive` ping frame is answered with a pong, its `unknow:<msg>` and `accept:<msg>` replies
    are taken quietly, and kicks still arrive on the same socket afterwards."""
    with agent.websocket() as ws:
        pong = ws.ping(b"keepalive")
        assert pong.wait(10.0), "no pong to the agent's keepalive ping"
        ws.send("unknow:hello-unknown")
        ws.send("accept:kick_vm")
        api.run_command(agent.instance_id, "echo still-open")
        wait_for_kick(ws)


def test_an_unsigned_upgrade_is_refused(agent: Agent) -> None:
    """A websocket upgrade without the X-Acs-* signing headers is refused with a status > 400."""
    refused_upgrade(lambda: agent.websocket(signed=False))


def test_a_wrongly_signed_upgrade_is_refused(agent: Agent) -> None:
    """An upgrade whose X-Acs-Signature was made with a key other than the registered one is refused."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused_upgrade(lambda: agent.websocket(signing=agent.sign(key=other)))


def test_a_replayed_upgrade_is_refused(agent: Agent) -> None:
    """A second upgrade carrying the very same signing headers (same X-Acs-Request-Id) is refused."""
    headers = agent.sign()
    with agent.websocket(signing=headers):
        pass
    refused_upgrade(lambda: agent.websocket(signing=headers))

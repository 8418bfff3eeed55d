"""Conformance with the official agent: one live `cloudassist server` for the whole directory, the ECS API
client that drives it, and agents that speak to its agent face exactly as aliyun_assist_client 2.2.3.578
was captured doing (see luban.py and agent-protocol.md Part 2).

Every agent registers itself through `/luban/api/instance/register` with an activation code made by
CreateActivation, so each test has its own managed instance and sees only its own tasks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from luban import Activation, Agent, Ecs, acknowledged, create_activation

from cloudassist.testing import LiveServer

for _name in [n for n in os.environ if n.lower().endswith("_proxy")]:
    del os.environ[_name]  # traffic to 127.0.0.1 must not go through a proxy


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real `cloudassist server` process (SQLite store): ECS API on http, agent face on https."""
    live = LiveServer(tmp_path_factory.mktemp("conformance") / "data").start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def api(server: LiveServer) -> Iterator[Ecs]:
    client = Ecs(server.endpoint)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def activation(api: Ecs) -> Activation:
    """An activation code with room for every agent the suite registers."""
    return create_activation(api, 1000)


@pytest.fixture
def make_agent(server: LiveServer, activation: Activation) -> Iterator[Callable[..., Agent]]:
    """Make agents: registered and heart-beating by default (like a host after `--register` and a restart)."""
    made: list[Agent] = []

    def make(*, arch: str = "linux_amd64", register: bool = True, beat: bool = True) -> Agent:
        agent = Agent(server, arch=arch)
        made.append(agent)
        if register:
            acknowledged(agent.register(activation.activation_id, activation.code))
            assert agent.instance_id.startswith("mi-")
            if beat:
                acknowledged(agent.heartbeat())
        return agent

    try:
        yield make
    finally:
        for agent in made:
            agent.close()


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    """A registered, heart-beating official agent (linux_amd64) with nothing to do yet."""
    return make_agent()

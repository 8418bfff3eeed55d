"""Fifty real agents on one server: one activation, fifty state directories, fifty agent processes, and one
RunCommand on all fifty instances, through the official SDK."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.agents import activation, agents, engine, finals, register_all, wait_for
from acceptance.sdk import Server, invocation, run

pytestmark = pytest.mark.acceptance

FLEET = 50


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fifty_agents_each_run_the_command(tea_v3: EcsClient, server: Server, tmp_path: Path) -> None:
    """Fifty agents registered with one activation (InstanceCount 50) and started at once all connect; one
    RunCommand on their fifty instances ends Success on every one of them within 120 s, each printing its own
    instance id ({{ACS::InstanceId}}, filled in by its agent); then all fifty exit 0 on SIGTERM. Prints the
    wall time from RunCommand to all-terminal and the memory the agents use."""
    with agents(tmp_path) as made:
        fleet = [made.new(f"agent{i:02d}") for i in range(FLEET)]
        began = time.monotonic()
        register_all(server.live, fleet, *activation(tea_v3, FLEET))
        registered = time.monotonic()
        for agent in fleet:
            agent.start()
        try:
            wait_for(lambda: all(a.connected() for a in fleet), 180, "all agents to connect", every=0.5)
        except AssertionError:
            late = [a for a in fleet if not a.connected()]
            raise AssertionError(f"{len(late)} agent(s) not connected; the log of {late[0].home.name}:\n"
                                 f"{late[0].log()[-3000:]}\nserver log:\n{server.log()[-3000:]}") from None
        connected = time.monotonic()
        ids = [a.instance_id for a in fleet]
        assert len(set(ids)) == FLEET
        agents_rss = [a.rss_kib() for a in fleet]

        sent = time.monotonic()
        invoke_id = run(tea_v3, ids, command_content='echo "{{ACS::InstanceId}}"', enable_parameter=True)
        done = finals(tea_v3, invoke_id, FLEET, 120)
        wall = time.monotonic() - sent
        assert sorted((r.instance_id, r.invocation_status, r.exit_code, r.output) for r in done) == sorted(
            (i, "Success", 0, f"{i}\n") for i in ids)
        assert invocation(tea_v3, invoke_id).invocation_status == "Success"
        assert server.live.process is not None
        server_rss = _rss_kib(server.live.process.pid)
        print(f"\n[{engine(server)}] {FLEET} agents: registered in {registered - began:.1f} s, connected "
              f"{connected - registered:.1f} s later; RunCommand to all-terminal {wall:.2f} s; agent RSS "
              f"{sum(agents_rss) / 1024:.0f} MiB in all ({min(agents_rss) / 1024:.1f}-{max(agents_rss) / 1024:.1f} "
              f"MiB each); server RSS {server_rss / 1024:.0f} MiB")
        assert made.close() == [0] * FLEET
    for agent in fleet:
        assert "Traceback" not in agent.log(), agent.log()

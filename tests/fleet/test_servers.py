"""Three servers on one PostgreSQL database, simulated agents spread across them, and one server killed.

The three `cloudassist server` processes share the database and one agent certificate (as servers behind a
TCP load balancer do). Each simulated official agent keeps its connections to one of them and, when that one
is gone, reconnects to the next, as a load balancer would send it. The checks:

* a RunCommand made on one server kicks agents connected to the others at once (LISTEN/NOTIFY), long
  before the delivery loop's 5-second re-kick could;
* one server leads (runs the sweeper and the retention job); when it is killed with SIGKILL another takes
  over within seconds;
* killed while every agent runs a task, no task is lost and none runs twice: every record ends Success,
  each agent having started it exactly once.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from scale import Api, chunks, results_of, run_command, until_status

from cloudassist import tls
from cloudassist.testing import LiveServer, pg_database, wait_for
from fleet import Fleet, RunMode, load_keys, patch_tls_buffers

pytestmark = pytest.mark.acceptance

SERVERS = 3
AGENTS = 150
REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    patch_tls_buffers()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    shared = tmp_path_factory.mktemp("shared-cert")
    cert = tls.ensure(shared, tls.default_names())
    with pg_database("servers") as db:
        made = []
        try:
            for i in range(SERVERS):
                server = LiveServer(tmp_path_factory.mktemp(f"server{i}") / "data", db=db, extra_env={
                    "CLOUDASSIST_AGENT_CERT": str(cert.cert), "CLOUDASSIST_AGENT_KEY": str(cert.key)})
                made.append(server.start(timeout=60))
                if i == 0:  # the first to start leads; the others start once it does
                    wait_for(lambda: "(leader)" in made[0].log(), 20, "the first server to lead")
            yield made
        finally:
            for server in made:
                server.stop()
            for server in made:
                log = server.log()
                assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def fleet(servers: list[LiveServer], runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[Fleet, list[Api]]]:
    ca = next(tmp_path_factory.getbasetemp().glob("shared-cert*")) / "ca.pem"
    endpoints = ",".join(s.agent_endpoint for s in servers)

    async def up() -> tuple[Fleet, list[Api]]:
        apis = [Api(s) for s in servers]
        sim = Fleet(endpoints, ca, mode=RunMode.SHELL, noise=False, redial_seconds=1.0)
        made = await apis[0]("CreateActivation", InstanceCount=str(AGENTS), Description="three servers")
        await sim.register(load_keys(AGENTS, None), [(made["ActivationId"], made["ActivationCode"], AGENTS)], REGION)
        await sim.start()
        return sim, apis

    sim, apis = runner.run(up())
    try:
        yield sim, apis
    finally:
        async def down() -> None:
            await sim.close()
            for api in apis:
                await api.close()

        runner.run(down())
        gc.collect()  # a socket left open would warn here, in this tier, not in a later test


def test_agents_are_spread_over_the_three_servers(fleet: tuple[Fleet, list[Api]], servers: list[LiveServer]) -> None:
    sim, _ = fleet
    assert sim.connected() == AGENTS
    by_server = {s.agent_endpoint: sum(1 for a in sim.agents if a.wire.endpoint == s.agent_endpoint)
                 for s in servers}
    assert all(n == AGENTS // SERVERS for n in by_server.values()), by_server


def test_a_task_made_on_one_server_kicks_agents_held_by_the_others_at_once(
    fleet: tuple[Fleet, list[Api]], servers: list[LiveServer], runner: asyncio.Runner
) -> None:
    """RunCommand on server 0 for agents connected to servers 1 and 2: every one is kicked well within the
    delivery loop's 5-second period (the kick travels by NOTIFY), and the task succeeds everywhere."""
    sim, apis = fleet
    elsewhere = [a for a in sim.agents if a.wire.endpoint != servers[0].agent_endpoint]

    async def scenario() -> tuple[list[float], list[dict[str, Any]]]:
        for _ in range(3):  # three rounds, each at a random point of the delivery loop's period
            await asyncio.sleep(1.7)
            kicks_before = {a.instance_id: a.kicks for a in elsewhere}
            began = time.monotonic()
            invoke_id = await run_command(apis[0], "echo kicked", [a.instance_id for a in elsewhere][:100],
                                          Timeout="60")
            await until_status(apis[1], [invoke_id], {"Success"}, every=0.05, limit=60)
            delays = [o.kicked - began for a in elsewhere[:100] if (o := sim.last(invoke_id, a.instance_id))]
            assert all(a.kicks > kicks_before[a.instance_id] for a in elsewhere[:100])
        return delays, await results_of(apis[2], invoke_id)

    delays, records = runner.run(scenario())
    assert len(delays) == 100
    assert {r["InvocationStatus"] for r in records} == {"Success"}
    print(f"\nkick on another server: median {statistics.median(delays) * 1e3:.0f} ms, max {max(delays) * 1e3:.0f} ms")
    assert max(delays) < 2.0, sorted(delays)[-5:]


def test_killing_the_leading_server_loses_nothing_and_runs_nothing_twice(
    fleet: tuple[Fleet, list[Api]], servers: list[LiveServer], runner: asyncio.Runner
) -> None:
    """Every agent runs a 4-second task; the leading server is killed (SIGKILL) while they run. Its agents
    reconnect to the other two and report there; another server takes over the leadership; every record ends
    Success, and no agent started the task twice."""
    sim, apis = fleet
    leader = servers[0]

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        parts = chunks(sim.instance_ids, 50)
        invoke_ids = list(await asyncio.gather(
            *(run_command(apis[1 + i % 2], "sleep 4; echo survived", p, Timeout="60") for i, p in enumerate(parts))))
        await asyncio.sleep(1.5)
        assert leader.process is not None
        leader.process.send_signal(signal.SIGKILL)
        leader.process.wait()
        try:
            await until_status(apis[1], invoke_ids, {"Success", "Failed", "PartialFailed", "Stopped"}, every=0.5,
                               limit=180)
        except RuntimeError as exc:  # which records, and what their agents did
            stuck = [r for i in invoke_ids for r in await results_of(apis[2], i)
                     if r["InvocationStatus"] not in ("Success", "Failed")]
            raise AssertionError((str(exc), [(r["InstanceId"], r["InvocationStatus"], r["ErrorCode"],
                                              sim.outcomes.get((r["InvokeId"], r["InstanceId"]))) for r in stuck[:3]],
                                  dict(sim.stats.failures))) from None
        return invoke_ids, [r for i in invoke_ids for r in await results_of(apis[2], i)]

    invoke_ids, records = runner.run(scenario())
    assert len(records) == AGENTS
    bad = [(r["InstanceId"], r["InvocationStatus"], r["ErrorCode"]) for r in records
           if (r["InvocationStatus"], r["Output"]) != ("Success", "survived\n")]
    seen = {iid: runs for (task, iid), runs in sim.outcomes.items() if task in invoke_ids}
    assert not bad, [(b, seen.get(b[0]), dict(sim.stats.failures), sim.stats.dropped_reports) for b in bad[:3]]
    for invoke_id in invoke_ids:
        for (task, _), runs in sim.outcomes.items():
            if task == invoke_id:
                assert sum(1 for o in runs if o.started) == 1, runs
    wait_for(lambda: any("(leader)" in s.log() for s in servers[1:]), 30, "another server to take the lead")

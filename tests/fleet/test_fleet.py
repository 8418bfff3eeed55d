"""A thousand agents on one server: RunCommand, StopInvocation and a schedule across all of them.

One live `cloudassist server` per engine, 1,000 simulated official agents (bench/fleet.py) registered through
real activation codes with their own RSA-2048 keys, each keeping its websocket, and each running what it is
given with a real `/bin/sh`. RunCommand goes out at the real cap of 100 instances per call. Every check reads
the server's answers through the ECS API (DescribeInvocations, DescribeInvocationResults) and compares them
with what each agent did.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from scale import Api, chunks, results_of, run_command, until_status

from cloudassist.testing import LiveServer, pg_database
from fleet import Fleet, RunMode, load_keys, patch_tls_buffers

pytestmark = pytest.mark.acceptance

AGENTS = 1000
PER_CALL = 100
REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def keys() -> list[Any]:
    """One RSA-2048 key per agent, made fresh on every core for this run."""
    return load_keys(AGENTS, None)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the module: the fleet's sockets live as long as the module's tests."""
    patch_tls_buffers()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with pg_database("fleet") if request.param == "postgresql" else nullcontext("") as db:
        server = LiveServer(tmp_path_factory.mktemp(f"fleet-{request.param}") / "data", db=db)
        server.start(timeout=60)
        try:
            yield server
        finally:
            server.stop()
            log = server.log()
            assert "Traceback" not in log, log[-5000:]


@pytest.fixture(scope="module")
def fleet(live: LiveServer, keys: list[Any], runner: asyncio.Runner) -> Iterator[tuple[Fleet, Api]]:
    async def up() -> tuple[Fleet, Api]:
        api = Api(live)
        fleet = Fleet(live.agent_endpoint, live.data_dir / "ca.pem", mode=RunMode.SHELL, noise=False)
        activations = []
        for first in range(0, AGENTS, 1000):
            room = min(1000, AGENTS - first)
            made = await api("CreateActivation", InstanceCount=str(room), Description="fleet test")
            activations.append((made["ActivationId"], made["ActivationCode"], room))
        await fleet.register(keys, activations, REGION)
        await fleet.start()
        return fleet, api

    made = runner.run(up())
    try:
        yield made
    finally:
        runner.run(_down(*made))
        gc.collect()  # a socket left open would warn here, in this tier, not in a later test


async def _down(fleet: Fleet, api: Api) -> None:
    await fleet.close()
    await api.close()


def test_every_agent_is_connected_and_registered(fleet: tuple[Fleet, Api], runner: asyncio.Runner) -> None:
    sim, api = fleet
    assert sim.connected() == AGENTS
    assert len(set(sim.instance_ids)) == AGENTS

    async def count() -> int:
        body = await api("DescribeManagedInstances", PageSize="50")
        return int(body["TotalCount"])

    assert runner.run(count()) == AGENTS


def test_run_command_on_a_thousand_agents(fleet: tuple[Fleet, Api], runner: asyncio.Runner) -> None:
    """`echo {{ACS::InstanceId}}` on every agent, 100 instances per RunCommand: every record is Success with
    its own agent's output (the agent fills in its instance id), each agent ran it exactly once, and no report
    was refused or dropped."""
    sim, api = fleet
    script = 'echo "{{ACS::InstanceId}}-ran"'

    async def scenario() -> list[dict[str, Any]]:
        parts = chunks(sim.instance_ids, PER_CALL)
        invoke_ids = list(await asyncio.gather(
            *(run_command(api, script, p, Timeout="60", EnableParameter="true") for p in parts)))
        await until_status(api, invoke_ids, {"Success", "Failed", "PartialFailed"}, every=0.2, limit=300)
        return [r for i in invoke_ids for r in await results_of(api, i)]

    records = runner.run(scenario())
    assert len(records) == AGENTS
    assert {r["InstanceId"] for r in records} == set(sim.instance_ids)
    bad = [r for r in records if (r["InvocationStatus"], r["ExitCode"], r["ErrorCode"]) != ("Success", 0, "")]
    assert not bad, bad[:3]
    for record in records:
        runs = sim.outcomes[(record["InvokeId"], record["InstanceId"])]
        assert len(runs) == 1, runs
        assert runs[0].acked
        assert runs[0].kind == "finish"
        assert record["Output"] == runs[0].output.decode() == f"{record['InstanceId']}-ran\n"
    assert sim.stats.dropped_reports == 0
    assert sim.stats.server_errors() == 0


def test_stop_invocation_on_a_thousand_running_agents(fleet: tuple[Fleet, Api], runner: asyncio.Runner) -> None:
    """`sleep 600` running on every agent, then StopInvocation of each task: every record Terminated, every
    agent killed its process and reported `stopped`, none reported a finish. (A stop listed again before the
    agent's report committed is reported again, as the official agent does: stop is idempotent.)"""
    sim, api = fleet

    async def scenario() -> list[dict[str, Any]]:
        parts = chunks(sim.instance_ids, PER_CALL)
        invoke_ids = list(await asyncio.gather(*(run_command(api, "sleep 600", p, Timeout="3600") for p in parts)))
        for _ in range(600):
            started = sum(1 for i in invoke_ids for iid in sim.instance_ids
                          if (o := sim.last(i, iid)) is not None and o.started)
            if started == AGENTS:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"only {started} of {AGENTS} agents started the task")
        await asyncio.gather(*(api("StopInvocation", InvokeId=i) for i in invoke_ids))
        await until_status(api, invoke_ids, {"Stopped"}, every=0.2, limit=120)
        return [r for i in invoke_ids for r in await results_of(api, i)]

    records = runner.run(scenario())
    assert len(records) == AGENTS
    assert {r["InvocationStatus"] for r in records} == {"Terminated"}
    for record in records:
        runs = sim.outcomes[(record["InvokeId"], record["InstanceId"])]
        assert {o.kind for o in runs} == {"stopped"}, runs
        assert runs[0].started
        assert runs[0].acked
    assert not any(a.runs for a in sim.agents), "a sleep is still running"


def test_a_schedule_runs_on_a_thousand_agents_until_stopped(
    fleet: tuple[Fleet, Api], runner: asyncio.Runner
) -> None:
    """A cron task every 10 s on every agent: each agent runs it on its own clock at least twice, every run is
    kept in the history (IncludeHistory), and StopInvocation ends the schedule everywhere."""
    sim, api = fleet

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        parts = chunks(sim.instance_ids, PER_CALL)
        invoke_ids = list(await asyncio.gather(*(
            run_command(api, "echo tick", p, Timeout="10", RepeatMode="Period", Frequency="0/10 * * * * ?")
            for p in parts)))
        wanted = set(invoke_ids)
        for _ in range(240):
            await asyncio.sleep(0.5)
            ran = [sum(1 for o in runs if o.acked) for (task, _), runs in list(sim.outcomes.items()) if task in wanted]
            if len(ran) == AGENTS and min(ran) >= 2:
                break
        else:
            raise AssertionError("not every agent ran the schedule twice within 120 s")
        await asyncio.gather(*(api("StopInvocation", InvokeId=i) for i in invoke_ids))
        await until_status(api, invoke_ids, {"Stopped", "Success", "Failed", "PartialFailed"}, every=0.5, limit=120)
        history = []
        for invoke_id in invoke_ids:
            token = ""
            while True:
                params = {"InvokeId": invoke_id, "IncludeHistory": "true", "MaxResults": "50",
                          "ContentEncoding": "PlainText", **({"NextToken": token} if token else {})}
                body = await api("DescribeInvocationResults", **params)
                history += body["Invocation"]["InvocationResults"]["InvocationResult"]
                token = body.get("NextToken") or body["Invocation"].get("NextToken") or ""
                if not token:
                    break
        return invoke_ids, history

    invoke_ids, history = runner.run(scenario())
    runs_by_instance: dict[str, list[dict[str, Any]]] = {}
    for record in history:
        runs_by_instance.setdefault(record["InstanceId"], []).append(record)
    assert set(runs_by_instance) == set(sim.instance_ids)
    for instance_id, records in runs_by_instance.items():
        ended = [r for r in records if r["InvocationStatus"] == "Success"]
        acked = [o for i in invoke_ids for o in sim.outcomes.get((i, instance_id), [])
                 if o.kind == "finish" and o.acked]
        assert len(ended) >= 2, records
        assert all(r["Output"] == "tick\n" for r in ended), [(r["Output"], r["Repeats"]) for r in records]
        assert len(ended) >= len(acked) - 1  # a run in flight at the stop may end Terminated instead
    assert not any(a.schedules for a in sim.agents), "a schedule is still kept by an agent"

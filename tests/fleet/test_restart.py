"""Issue 8, point 7: a one-time task an agent has started is never handed out again, to the official agent
restarted (simulated by bench/fleet.py, which, unlike the real one, keeps no script file on disk to refuse
a repeat with) on both engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from scale import Api, results_of, run_command

from cloudassist.testing import LiveServer, pg_database
from fleet import Fleet, RunMode, SimAgent, load_keys

REGION = "cn-hangzhou"


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    with pg_database("restart") if request.param == "postgresql" else nullcontext("") as db:
        server = LiveServer(tmp_path / "data", db=db)
        server.start(timeout=60)
        try:
            yield server
        finally:
            server.stop()
            assert "Traceback" not in server.log(), server.log()[-5000:]


async def _restart_scenario(live: LiveServer) -> tuple[int, str]:
    api = Api(live)
    fleet = Fleet(live.agent_endpoint, live.data_dir / "ca.pem", mode=RunMode.FAKE, noise=False)
    try:
        made = await api("CreateActivation", InstanceCount="1")
        await fleet.register(load_keys(1, None), [(made["ActivationId"], made["ActivationCode"], 1)], REGION)
        await fleet.start()
        [first] = fleet.agents
        invoke_id = await run_command(api, "sleep 30", [first.instance_id])
        for _ in range(200):
            [record] = await results_of(api, invoke_id)
            if record["InvocationStatus"] == "Running":
                break
            await asyncio.sleep(0.05)
        assert record["InvocationStatus"] == "Running", record

        # the agent restarts: a new process with the same identity, which remembers nothing of the run
        await first.close()
        second = SimAgent(fleet, 1, first.key)
        second.instance_id, second.machine_id = first.instance_id, first.machine_id
        fleet.agents.append(second)
        await second.start(cold_start=False)
        await second.on_kick(None, 0.0)  # a kick too: whatever the server lists now, the agent runs
        await asyncio.sleep(1)
        [record] = await results_of(api, invoke_id)
        return len(fleet.outcomes[(invoke_id, first.instance_id)]), record["InvocationStatus"]
    finally:
        await fleet.close()
        await api.close()


def test_a_restarted_official_agent_is_not_handed_its_running_task_again(live: LiveServer) -> None:
    """The simulated official agent reports a one-time task running, then restarts (`reason=startup`,
    `cold_start=false`) and is kicked: the task is not listed again, so it runs once, and stays Running
    (its deadlines end it) rather than starting over."""
    runs, status = asyncio.run(_restart_scenario(live))
    assert runs == 1
    assert status == "Running"

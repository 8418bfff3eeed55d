"""§1.8 and §1.9: tasks that legitimately wait on the host. A cron/rate schedule fires long after the agent fetched
it, and a NextRebootOnly task waits for the next boot; the agent sends nothing for them meanwhile (its `running`
post comes only when a firing starts). The server's delivery deadlines must not end them while they wait.

These tests run against their own server with short deadlines (delivery window 2 s, grace 2 s; the server sweeps
every 5 s), so that "long after" is about 20 seconds. A Once task fetched and never started is the control: the
same sweeper does end it (DeliveryTimeout), so the deadlines are really in force.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from luban import Agent, Ecs, acknowledged, create_activation

from cloudassist.testing import LiveServer

TERMINAL = {"Success", "Failed", "Error", "Timeout", "Cancelled", "Terminated", "Invalid", "Aborted"}
#: delivery window + Timeout (10 s, the API's minimum) + grace, plus a sweep (every 5 s) and a margin.
WAIT_SECONDS = 2 + 10 + 2 + 6


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("deadlines") / "data",
                      extra_env={"CLOUDASSIST_DELIVERY_TIMEOUT_SECONDS": "2", "CLOUDASSIST_GRACE_SECONDS": "2"}).start()
    try:
        yield live
    finally:
        live.stop()


def test_waiting_schedules_and_reboot_tasks_outlive_the_delivery_deadlines(strict_server: LiveServer) -> None:
    """After the deadlines have passed: a fetched Once task that never started is over (the control); a cron task
    (daily at 03:00) the agent fetched and a NextRebootOnly task waiting for a boot are not — and the cron task is
    still handed out to a restarting agent."""
    api = Ecs(strict_server.endpoint)
    agent = Agent(strict_server)
    try:
        activation = create_activation(api, 1)
        acknowledged(agent.register(activation.activation_id, activation.code))
        acknowledged(agent.heartbeat())
        once = api.run_command(agent.instance_id, "echo once", Timeout="10")
        cron = api.run_command(agent.instance_id, "echo nightly", Timeout="10", RepeatMode="Period",
                               Frequency="0 0 3 * * ?")
        reboot = api.run_command(agent.instance_id, "echo booted", Timeout="10", RepeatMode="NextRebootOnly")
        fetched = {e["task"]["taskID"] for e in agent.tasks("startup", cold_start=False)["run"]}
        assert {once, cron} <= fetched, fetched

        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            acknowledged(agent.heartbeat())  # the agent is alive and beating all along
            time.sleep(2.5)

        control = api.result(once)
        assert control["InvocationStatus"] in TERMINAL, f"control: the sweeper did not run: {control}"
        problems = []
        for name, invoke_id in (("cron", cron), ("NextRebootOnly", reboot)):
            result = api.result(invoke_id)
            if result["InvocationStatus"] in TERMINAL:
                problems.append(f"{name} task ended while waiting: {result['InvocationStatus']}/{result['ErrorCode']}")
        relisted = {e["task"]["taskID"] for e in agent.tasks("startup", cold_start=False)["run"]}
        if cron not in relisted:
            problems.append("the cron task is no longer handed out to a restarting agent")
        assert not problems, problems
    finally:
        agent.close()
        api.close()

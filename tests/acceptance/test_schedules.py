"""Scheduled and reboot tasks run by our agent: the official SDK drives a live server, a real agent process keeps
the schedule (agent-protocol §1.8, §1.9).

One agent per engine (module-scoped). A cron task with a seconds field fires on its own until StopInvocation
ends it; reboots are simulated by removing the agent's cold-start flag (kept in the agent's home through
CLOUDASSIST_AGENT_RUNTIME_DIR, see identity.cold_start) before restarting it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.agents import Agent, current, final, one_agent, wait_for
from acceptance.sdk import REGION, Server, run

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One connected agent; on the way out it must exit 0 on SIGTERM with no traceback in its log."""
    with one_agent(server, tmp_path_factory.mktemp("sched-agents"), "a") as one:
        yield one


def restart(agent: Agent, *, reboot: bool) -> None:
    """Stop the agent (SIGTERM) and start it again; `reboot` first clears its cold-start flag (the RAM flag a
    real reboot wipes). Returns once it is connected and its start-up fetch has been answered."""
    assert agent.stop() == 0, agent.log()
    if reboot:
        flags = list(agent.home.glob("cloudassist-agent-*"))
        assert len(flags) == 1, flags
        flags[0].unlink()
    mark = f"cold start: {reboot}"
    before = agent.log().count(mark)
    agent.start()
    wait_for(agent.connected, 30, "the agent to reconnect")
    assert agent.log().count(mark) == before + 1, agent.log()[-2000:]


def test_a_cron_with_seconds_fires_repeatedly_until_stopped(tea_v3: EcsClient, agent: Agent, tmp_path: Path) -> None:
    """`S/10 * * * * ?` (every 10 s, the shortest interval the API allows for cron, with Timeout 10; S chosen so
    the first tick is ~3 s away): the agent fires it by itself; DescribeInvocationResults counts the runs in
    Repeats and shows the latest run's output; StopInvocation ends the schedule."""
    counter = tmp_path / "count"
    script = f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo "run-$n"'
    first = (int(time.time()) + 3) % 10
    invoke_id = run(tea_v3, [agent.instance_id], command_content=script, repeat_mode="Period",
                    frequency=f"{first}/10 * * * * ?", timeout=10)

    def two_runs() -> ecs.DescribeInvocationResultsResponseBodyInvocationInvocationResultsInvocationResult | None:
        found = current(tea_v3, invoke_id)
        return found if found.repeats >= 2 and found.invocation_status == "Scheduled" else None

    seen = wait_for(two_runs, 30, "two runs of the cron task")
    assert seen.repeats == int(counter.read_text())
    assert seen.output == f"run-{seen.repeats}\n"  # the latest run's output
    assert (seen.exit_code, seen.error_code or "") == (0, "")

    response = tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id,
                                                                instance_id=[agent.instance_id]))
    assert response.status_code == 200
    ended = final(tea_v3, invoke_id, 20)
    assert ended.invocation_status == "Terminated", ended
    # the agent dropped the schedule (tests/agent/test_scheduler.py shows nothing fires after that; waiting
    # here for the next tick would double this test's time)
    assert f"task {invoke_id} (v1): schedule stopped" in agent.log() or "ended: stopped" in agent.log()
    assert int(counter.read_text()) == ended.repeats


def test_an_at_task_runs_once_at_its_time_and_ends_success(tea_v3: EcsClient, agent: Agent) -> None:
    """`at(<now + 4 s> Asia/Shanghai)`: the agent runs it once at that time, then reports the schedule completed:
    Success with Repeats 1 and the run's output."""
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    local = due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    invoke_id = run(tea_v3, [agent.instance_id], command_content="date +%s", repeat_mode="Period",
                    frequency=f"at({local} Asia/Shanghai)", timeout=10)
    ended = final(tea_v3, invoke_id, 20)
    assert (ended.invocation_status, ended.repeats, ended.exit_code) == ("Success", 1, 0), ended
    ran_at = int(ended.output.strip())
    assert due.timestamp() <= ran_at <= due.timestamp() + 2


def test_reboot_tasks_run_after_simulated_reboots_only(tea_v3: EcsClient, agent: Agent) -> None:
    """NextRebootOnly runs once after the next (simulated) boot and never again; EveryReboot runs once per
    boot; a plain agent restart runs neither."""
    once = run(tea_v3, [agent.instance_id], command_content="echo next-boot", repeat_mode="NextRebootOnly")
    every = run(tea_v3, [agent.instance_id], command_content="echo every-boot", repeat_mode="EveryReboot")
    assert current(tea_v3, once).invocation_status == "Scheduled"

    restart(agent, reboot=True)
    done = final(tea_v3, once, 20)
    assert (done.invocation_status, done.output, done.repeats) == ("Success", "next-boot\n", 1)
    first = wait_for(lambda: (r := current(tea_v3, every)).repeats == 1 and r.invocation_status == "Scheduled"
                     and r, 20, "the EveryReboot task's first run")
    assert first.output == "every-boot\n"

    restart(agent, reboot=False)
    time.sleep(1.5)  # the start-up fetch lists nothing: nothing runs
    assert current(tea_v3, every).repeats == 1
    assert current(tea_v3, once).repeats == 1

    restart(agent, reboot=True)
    wait_for(lambda: current(tea_v3, every).repeats == 2, 20, "the EveryReboot task's second run")
    again = current(tea_v3, once)
    assert (again.invocation_status, again.repeats) == ("Success", 1)

"""Crashes with commands in flight: the agent SIGKILLed mid-command, the server SIGKILLed while a result is on
its way. Real processes throughout, driven through the official SDKs; each test has agents (and, for the
server crash, a server on the same engine as the session's) of its own, all ended however the test ends."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.agents import (
    activation,
    agents,
    current,
    engine,
    final,
    kill_marked,
    marked,
    own_server,
    tag,
    wait_for,
    when,
)
from acceptance.sdk import Server, invocation, run, tea_client
from cloudassist.testing import LiveServer

pytestmark = pytest.mark.acceptance


@pytest.fixture
def marker() -> Iterator[str]:
    """A marker for the processes of one test; whatever still carries it is killed afterwards."""
    mark = tag()
    yield mark
    kill_marked(mark)


def test_agent_killed_mid_command_reports_it_interrupted_and_never_runs_it_again(
        tea_v3: EcsClient, server: Server, tmp_path: Path, marker: str) -> None:
    """SIGKILL the agent while its command runs, then start it again: the command ran exactly once (it appends
    one line to a file), what was left of it is killed, the result is Error / ExecutionInterrupted with the
    seed's ErrorInfo (legacy Failed, Repeats 1) keeping the output it had streamed, and it is never run again,
    not even after the restarted agent has fetched and run another task."""
    runs = tmp_path / "runs"
    with agents(tmp_path) as made:
        agent = made.new("agent")
        agent.register(server.live, *activation(tea_v3)).start()
        wait_for(agent.connected, 60, "the agent to connect")
        script = f"echo run >> {runs}; echo started; sleep 60.{marker}"
        invoke_id = run(tea_v3, [agent.instance_id], command_content=script)
        wait_for(lambda: marked(marker) and current(tea_v3, invoke_id).output == "started\n", 20,
                 "the command to run and stream its first line")
        assert agent.stop(signal.SIGKILL) == -signal.SIGKILL
        assert marked(marker), "the command outlives the agent's process"

        agent.start()
        done = final(tea_v3, invoke_id, 60)
        assert (done.invocation_status, done.invoke_record_status, done.error_code, done.error_info, done.repeats,
                done.output) == (
            "Error", "Failed", "ExecutionInterrupted", "the command execution has been interrupted", 1, "started\n")
        assert when(done.start_time) <= when(done.finished_time)
        assert marked(marker) == []
        wait_for(agent.connected, 60, "the restarted agent to connect")
        after = final(tea_v3, run(tea_v3, [agent.instance_id], command_content="echo after"))
        assert (after.invocation_status, after.output) == ("Success", "after\n")
        time.sleep(1)
        assert runs.read_text() == "run\n"
        assert current(tea_v3, invoke_id).invocation_status == "Error"
        assert agent.stop() == 0
    assert "Traceback" not in agent.log(), agent.log()


#: What the command prints after the server died: 21 KB, so the whole output fits in the 24 KB kept.
LINES = 380


def _late_output() -> str:
    return "".join(f"line {i:04d} printed while the server was down\n" for i in range(LINES))


def test_server_killed_with_a_result_in_flight_loses_nothing(server: Server, tmp_path: Path) -> None:
    """SIGKILL the server while a command runs; the command then prints ~21 KB and finishes while no server is
    there; a new server process on the same data directory (or database) and ports gets the result: Success
    with its complete output and nothing dropped; a result acknowledged before the crash is still there."""
    gate, finished = tmp_path / "gate", tmp_path / "finished"
    late = _late_output()
    script = (f"echo before; while [ ! -e {gate} ]; do sleep 0.1; done\n"
              f"i=0; while [ $i -lt {LINES} ]; do printf 'line %04d printed while the server was down\\n' $i; "
              f"i=$((i+1)); done\necho after; touch {finished}\n")
    with own_server(engine(server), tmp_path / "server") as first, agents(tmp_path) as made:
        tea = tea_client(first.endpoint)
        agent = made.new("agent")
        agent.register(first, *activation(tea)).start()
        wait_for(agent.connected, 60, "the agent to connect")
        early_id = run(tea, [agent.instance_id], command_content="echo acknowledged")
        early = final(tea, early_id)
        assert (early.invocation_status, early.output) == ("Success", "acknowledged\n")

        invoke_id = run(tea, [agent.instance_id], command_content=script)
        wait_for(lambda: current(tea, invoke_id).output == "before\n", 20, "the first output to arrive")
        assert first.process is not None
        first.process.kill()
        first.process.wait()
        gate.touch()
        wait_for(finished.exists, 20, "the command to finish")
        time.sleep(2)  # its final report is made, and cannot be delivered

        second = LiveServer(first.data_dir, db=first.db, port=first.port, agent_port=first.agent_port)
        try:
            second.start(timeout=60)
            done = final(tea, invoke_id, 120)
            assert (done.invocation_status, done.invoke_record_status, done.exit_code, done.error_code,
                    done.dropped, done.repeats) == ("Success", "Finished", 0, "", 0, 1)
            assert done.output == "before\n" + late + "after\n"
            assert invocation(tea, invoke_id).invocation_status == "Success"
            again = final(tea, early_id)
            assert (again.invocation_status, again.output, again.finished_time) == (
                "Success", "acknowledged\n", early.finished_time)
            assert made.close() == [0]
        finally:
            second.stop()
        assert "Traceback" not in first.log(), first.log()
    assert "Traceback" not in agent.log(), agent.log()

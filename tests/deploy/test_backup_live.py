"""`cloudassist backup` under a live server with a running agent writing results, `cloudassist restore` into a
new data directory, and a server started there that serves the restored data: its keys, commands, tasks and
their outputs, and the managed instance, whose agent (same state directory, same address) reconnects to it,
trusting it through the restored CA, and runs a new command (docs/deploy.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs

from acceptance.agents import activation, agents, current, final
from acceptance.sdk import REGION, tea_client
from cloudassist.store import migrate
from cloudassist.testing import LiveServer, wait_for

pytestmark = pytest.mark.acceptance

LINES = 300  #: the writer task prints 1..LINES, one line every 40 ms (12 s or more): the backup falls inside


def _cloudassist(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDASSIST_") and not k.lower().endswith("_proxy")}
    done = subprocess.run([sys.executable, "-m", "cloudassist", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_backup_taken_while_an_agent_writes_restores_into_a_server_that_serves_it(tmp_path: Path) -> None:
    data, copy, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    live = LiveServer(data)
    second: LiveServer | None = None
    try:
        live.start(timeout=60)
        made_key = dict(line.split(":", 1) for line in
                        _cloudassist("keys", "create", "--account", "team-b", "--data-dir", str(data)).splitlines())
        key_id, secret = made_key["AccessKeyId"].strip(), made_key["AccessKeySecret"].strip()
        tea = tea_client(live.endpoint)
        with agents(tmp_path / "agents") as made:
            agent = made.new("a").register(live, *activation(tea)).start()
            wait_for(agent.connected, 60, "the agent to connect")
            command_id = tea.create_command(ecs.CreateCommandRequest(
                region_id=REGION, name="kept-command", type="RunShellScript",
                command_content="ZWNobyBrZXB0")).body.command_id
            before = tea.run_command(ecs.RunCommandRequest(
                region_id=REGION, type="RunShellScript", command_content="echo before-backup",
                instance_id=[agent.instance_id])).body.invoke_id
            assert final(tea, str(before)).output == "before-backup\n"
            writer = str(tea.run_command(ecs.RunCommandRequest(
                region_id=REGION, type="RunShellScript", instance_id=[agent.instance_id],
                command_content=f"for i in $(seq 1 {LINES}); do echo $i; sleep 0.04; done")).body.invoke_id)
            wait_for(lambda: current(tea, writer).output.count("\n") >= 10, 60, "the writer to be streaming")

            said = _cloudassist("backup", "--data-dir", str(data), str(copy))  # while the agent reports output
            assert current(tea, writer).invocation_status == "Running", "the backup must be taken mid-write"
            assert f"into {copy}" in said
            whole = final(tea, writer)
            assert whole.output == "".join(f"{i}\n" for i in range(1, LINES + 1))
            assert made.close() == [0]
            assert live.stop() == 0

            said = _cloudassist("restore", "--data-dir", str(restored), str(copy))
            assert f"restored cloudassist.db (schema revision {migrate.HEAD})" in said
            assert (restored / "ca.pem").read_bytes() == (data / "ca.pem").read_bytes()
            assert (restored / "ca-key.pem").read_bytes() == (data / "ca-key.pem").read_bytes()
            # the same addresses, so that the agent's identity.json still points at it
            second = LiveServer(restored, port=live.port, agent_port=live.agent_port).start(timeout=60)

            # the keys: the one made by `keys create` authenticates, in its own account (which sees no command)
            team_b = tea_client(second.endpoint, access_key_id=key_id, secret=secret)
            found = team_b.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION)).body
            assert found.total_count == 0
            # the commands, the finished task and its output, the task caught mid-write as it was then
            kept = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id)).body
            assert [c.name for c in kept.commands.command] == ["kept-command"]
            assert (final(tea, str(before)).invocation_status, final(tea, str(before)).output) == (
                "Success", "before-backup\n")
            snapshot = current(tea, writer).output
            numbers = [int(line) for line in snapshot.splitlines()]
            assert numbers == list(range(1, len(numbers) + 1))  # whole lines, from the start, in order
            assert 10 <= len(numbers) < LINES

            # the managed instance: its agent comes back to the restored server and runs new work
            agent.start()
            wait_for(agent.connected, 60, "the agent to reconnect to the restored server")
            after = tea.run_command(ecs.RunCommandRequest(
                region_id=REGION, type="RunShellScript", command_content="echo after-restore",
                instance_id=[agent.instance_id])).body.invoke_id
            assert (final(tea, str(after)).invocation_status, final(tea, str(after)).output) == (
                "Success", "after-restore\n")
            assert made.close() == [0]
            assert "Traceback" not in agent.log()
        assert "Traceback" not in second.log()
    finally:
        live.stop()
        if second is not None:
            assert second.stop() == 0

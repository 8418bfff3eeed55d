"""One agent, two servers on one PostgreSQL database, and the first server killed while the agent runs a task.

Two `cloudassist server` processes share a database and one agent certificate (CLOUDASSIST_AGENT_CERT /
CLOUDASSIST_AGENT_KEY, made with `cloudassist.tls.ensure`). A real agent is registered with both addresses
(`cloudassist agent register --server A --server B`) and run as `python -m cloudassist agent run`: it uses A.
A is killed with SIGKILL while the agent runs a task; the checks:

* the task's result arrives through B (the agent's final report, refused by A's dead port, goes to B) and
  the task ran once;
* the agent opens its kick channel on B, and a task made on B reaches it at once (kicked, not found at the
  next heart-beat a minute later).

The session's SQLite and PostgreSQL servers of this tier are not used here: the servers are this module's.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acceptance.agents import AGENT, TERMINAL, Agent, Agents, registered_ids
from cloudassist import tls
from cloudassist.testing import LiveServer, pg_database, wait_for

pytestmark = pytest.mark.acceptance

REGION = "cn-hangzhou"


@pytest.fixture(autouse=True)
def _server_healthy() -> None:
    """Replaces the tier's check of the session server, which this module does not use (the servers here are
    checked at the end of `servers`)."""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[list[LiveServer], Path]]:
    """Two servers on one new PostgreSQL database with one agent certificate; (the servers, the CA file). On the
    way out, no server logged a traceback."""
    (tmp_path / "shared-cert").mkdir()
    cert = tls.ensure(tmp_path / "shared-cert", tls.default_names())
    env = {"CLOUDASSIST_AGENT_CERT": str(cert.cert), "CLOUDASSIST_AGENT_KEY": str(cert.key)}
    with pg_database("acc_failover") as db:
        made: list[LiveServer] = []
        try:
            for i in range(2):
                made.append(LiveServer(tmp_path / f"server{i}", db=db, extra_env=env).start(timeout=60))
                if i == 0:  # the first to start leads (and makes the schema); the second starts once it does
                    wait_for(lambda: "(leader)" in made[0].log(), 20, "the first server to lead")
            yield made, tmp_path / "shared-cert" / "ca.pem"
        finally:
            for server in made:
                server.stop()
        for server in made:
            assert "Traceback" not in server.log(), server.log()[-5000:]


def _run(server: LiveServer, instance_id: str, script: str) -> str:
    return str(server.api(Action="RunCommand", Type="RunShellScript", CommandContent=script,
                          ContentEncoding="PlainText", Timeout="60", **{"InstanceId.1": instance_id})["InvokeId"])


def _final(server: LiveServer, invoke_id: str, seconds: float) -> dict[str, Any]:
    """The execution's record once terminal, read through `server`'s API."""

    def terminal() -> dict[str, Any] | None:
        page = server.api(Action="DescribeInvocationResults", InvokeId=invoke_id, ContentEncoding="PlainText")
        results = page["Invocation"]["InvocationResults"]["InvocationResult"]
        return results[0] if results and results[0]["InvocationStatus"] in TERMINAL else None

    return wait_for(terminal, seconds, f"{invoke_id} to end", every=0.1)


def test_the_agent_fails_over_to_the_second_server_and_loses_nothing(
        servers: tuple[list[LiveServer], Path], tmp_path: Path) -> None:
    """A is killed (SIGKILL) while the agent runs a 3-second task made on A: the task ends Success with its
    output, read through B, having run once; the agent moved to B (its log says so) and a task made on B
    afterwards reaches it through a kick: Success within 5 s."""
    (a, b), ca = servers
    made = a.api(Action="CreateActivation", InstanceCount="1")
    agents = Agents(tmp_path / "agents")
    try:
        agent: Agent = agents.new("a").prepare()
        done = subprocess.run([*AGENT, "register", "--server", a.agent_endpoint, "--server", b.agent_endpoint,
                               "--activation-id", made["ActivationId"], "--region", REGION, "--ca-file", str(ca),
                               "--state-dir", str(agent.state_dir)],
                              env={**agent.env, "CLOUDASSIST_ACTIVATION_CODE": made["ActivationCode"]},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        [agent.instance_id] = registered_ids(done.stdout)
        agent.start()
        wait_for(agent.connected, 60, "the agent to connect")
        assert f"kick channel connected ({a.agent_endpoint})" in agent.log()

        runs = tmp_path / "runs.txt"
        invoke_id = _run(a, agent.instance_id, f"echo started >> {runs}; sleep 3; echo done")
        wait_for(lambda: runs.exists() and runs.read_text(), 30, "the task to start")
        assert a.process is not None
        a.process.kill()
        a.process.wait(10)

        record = _final(b, invoke_id, 60)
        assert (record["InvocationStatus"], record["ExitCode"], record["Output"]) == ("Success", 0, "done\n")
        assert runs.read_text() == "started\n"  # once
        wait_for(lambda: f"kick channel connected ({b.agent_endpoint})" in agent.log(), 30,
                 "the agent to open its kick channel on B")
        assert f"server {a.agent_endpoint} does not answer" in agent.log()
        assert f"now using {b.agent_endpoint}" in agent.log()

        began = time.monotonic()
        second = _run(b, agent.instance_id, "echo second")
        record = _final(b, second, 30)
        assert (record["InvocationStatus"], record["Output"]) == ("Success", "second\n")
        assert time.monotonic() - began < 5.0
        assert agents.close() == [0], agent.log()
        assert "Traceback" not in agent.log(), agent.log()
    finally:
        agents.close()

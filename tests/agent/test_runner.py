"""The agent end to end: real `cloudassist server` processes, real agent processes, the ECS API as a user calls it.

Agents register with `agent register` (an activation made by CreateActivation) and run as
`python -c "from cloudassist.agent.cli import agent; agent()" run --state-dir D`; commands go in through
RunCommand and results come out of DescribeInvocationResults.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudassist.agent import proctree
from cloudassist.testing import LiveServer, wait_for

REGION = "cn-hangzhou"
AGENT = [sys.executable, "-c", "from cloudassist.agent.cli import agent; agent()"]


def serving(live: LiveServer) -> LiveServer:
    """`live`, started, once its agent face accepts connections too."""
    live.start()
    wait_for(lambda: _accepts(live.agent_port), 20, "the agent face")
    return live


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def run_command(server: LiveServer, instance_id: str, script: str, **extra: str) -> str:
    """RunCommand of a plain-text shell script on one instance; its InvokeId."""
    made = server.api(Action="RunCommand", Type="RunShellScript", CommandContent=script,
               ContentEncoding="PlainText", **{"InstanceId.1": instance_id}, **extra)
    return str(made["InvokeId"])


def result(server: LiveServer, invoke_id: str) -> dict[str, Any]:
    found = server.api(Action="DescribeInvocationResults", InvokeId=invoke_id, ContentEncoding="PlainText")
    [one] = found["Invocation"]["InvocationResults"]["InvocationResult"]
    return dict(one)


def final_result(server: LiveServer, invoke_id: str, seconds: float = 30.0) -> dict[str, Any]:
    """The result once it is no longer Pending or Running."""
    return dict(wait_for(lambda: (r := result(server, invoke_id))["InvocationStatus"] not in
                         ("Pending", "Running", "Stopping") and r, seconds, f"{invoke_id} to end"))


@dataclass
class AgentProcess:
    """An agent in its own state directory, registered and run through the CLI."""

    home: Path
    process: subprocess.Popen[bytes] | None = None
    instance_id: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    def register(self, server: LiveServer) -> AgentProcess:
        made = server.api(Action="CreateActivation", InstanceCount="1")
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        self.env.update(CLOUDASSIST_AGENT_RUNTIME_DIR=str(self.home),
                        CLOUDASSIST_ACTIVATION_CODE=made["ActivationCode"])
        done = subprocess.run([*AGENT, "register", "--server", server.agent_endpoint, "--activation-id",
                               made["ActivationId"], "--region", REGION, "--ca-file", str(server.data_dir / "ca.pem"),
                               "--state-dir", str(self.state_dir)], env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        self.instance_id = done.stdout.split("instance id ", 1)[1].split()[0]
        return self

    def start(self) -> AgentProcess:
        with open(self.home / "agent.log", "ab") as log:
            self.process = subprocess.Popen([*AGENT, "run", "--state-dir", str(self.state_dir), "--log-level",
                                             "debug"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def connected(self) -> bool:
        return "kick channel connected" in self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log(self) -> str:
        path = self.home / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module's ordinary tests; its log must hold no traceback at the end."""
    live = serving(LiveServer(tmp_path_factory.mktemp("server")))
    yield live
    live.stop()
    assert "Traceback" not in live.log(), live.log()


@pytest.fixture(scope="module")
def running_agent(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One agent process shared by the module's ordinary tests; it must shut down cleanly with status 0."""
    agent = AgentProcess(tmp_path_factory.mktemp("agent")).register(server).start()
    wait_for(agent.connected, 30, "the agent to connect")
    yield agent
    assert agent.stop() == 0, agent.log()
    assert "Traceback" not in agent.log(), agent.log()


def test_a_command_runs_and_its_output_comes_back(server: LiveServer, running_agent: AgentProcess) -> None:
    """RunCommand `echo hello` on a registered agent: DescribeInvocationResults shows Success, ExitCode 0 and
    Output 'hello\\n'."""
    done = final_result(server, run_command(server, running_agent.instance_id, "echo hello"))
    assert (done["InvocationStatus"], done["ExitCode"], done["Output"], done["ErrorCode"]) == (
        "Success", 0, "hello\n", "")
    assert done["StartTime"]
    assert done["FinishedTime"]


def test_a_nonzero_exit_is_failed(server: LiveServer, running_agent: AgentProcess) -> None:
    """`echo oops; exit 3` ends Failed with ErrorCode ExitCodeNonzero, ExitCode 3, and its output (stderr
    merged)."""
    done = final_result(server, run_command(server, running_agent.instance_id, "echo oops >&2; exit 3"))
    assert (done["InvocationStatus"], done["ErrorCode"], done["ExitCode"], done["Output"]) == (
        "Failed", "ExitCodeNonzero", 3, "oops\n")


def test_output_streams_while_the_command_runs(server: LiveServer, running_agent: AgentProcess) -> None:
    """Output printed before a pause is visible while the command still runs; the final output is whole,
    with nothing repeated; built-in parameters such as {{ACS::InstanceId}} are filled in by the agent."""
    invoke_id = run_command(server, running_agent.instance_id,
                            "echo start; sleep 3; echo '{{ACS::InstanceId}}'; echo done", EnableParameter="true")
    wait_for(lambda: (r := result(server, invoke_id))["InvocationStatus"] == "Running" and r["Output"] == "start\n",
             15, "streamed output")
    done = final_result(server, invoke_id)
    assert done["InvocationStatus"] == "Success"
    assert done["Output"] == f"start\n{running_agent.instance_id}\ndone\n"


def test_stop_invocation_kills_the_command(server: LiveServer, running_agent: AgentProcess, tmp_path: Path) -> None:
    """StopInvocation on a running command: the agent kills its process tree and the result is Terminated."""
    pid_file = tmp_path / "pid"
    invoke_id = run_command(server, running_agent.instance_id, f"sleep 60 & echo $! > {pid_file}; wait")
    wait_for(lambda: result(server, invoke_id)["InvocationStatus"] == "Running" and pid_file.exists(), 15)
    server.api(Action="StopInvocation", InvokeId=invoke_id, **{"InstanceId.1": running_agent.instance_id})
    done = final_result(server, invoke_id)
    assert done["InvocationStatus"] == "Terminated"
    wait_for(lambda: not proctree.alive(int(pid_file.read_text())), 10, "the background child to be killed")


def test_a_missing_working_directory_is_invalid(server: LiveServer, running_agent: AgentProcess) -> None:
    """A WorkingDir that does not exist is reported `invalid`: the result is Invalid / DirectoryNotExists."""
    done = final_result(server, run_command(server, running_agent.instance_id, "pwd", WorkingDir="/no/such/dir"))
    assert (done["InvocationStatus"], done["ErrorCode"]) == ("Invalid", "DirectoryNotExists")


def test_a_result_made_while_the_server_is_down_is_delivered_later(tmp_path: Path) -> None:
    """The server stops while a command runs; the command finishes meanwhile and its result waits in the
    agent's spool, which survives an agent restart too; a new server process on the same data directory and
    ports gets it: Success, whole output, and the spool drains."""
    first = serving(LiveServer(tmp_path / "server"))
    agent = AgentProcess(tmp_path / "agent").register(first).start()
    try:
        wait_for(agent.connected, 30, "the agent to connect")
        invoke_id = run_command(first, agent.instance_id, "echo before; sleep 2; echo after")
        wait_for(lambda: result(first, invoke_id)["Output"] == "before\n", 15, "the first output")
        first.stop()
        spool = agent.state_dir / "spool"
        wait_for(lambda: list(spool.glob("*-final.rep")), 15, "the final report to be spooled")
        assert agent.stop() == 0
        agent.start()
        wait_for(lambda: re.search(r"cold start: False, [1-9]\d* report\(s\) spooled", agent.log()), 30,
                 "the restarted agent to find its spool")
        second = serving(LiveServer(tmp_path / "server", port=first.port, agent_port=first.agent_port))
        try:
            done = final_result(second, invoke_id, 90)
            assert (done["InvocationStatus"], done["ExitCode"], done["Output"]) == ("Success", 0, "before\nafter\n")
            wait_for(lambda: not list(spool.glob("*.rep")), 30, "the spool to drain")
        finally:
            second.stop()
        assert "Traceback" not in second.log()
    finally:
        first.stop()
        agent.stop()
    assert "Traceback" not in agent.log(), agent.log()


def test_a_run_cut_short_by_an_agent_crash_is_reported_interrupted_and_never_rerun(tmp_path: Path) -> None:
    """SIGKILL the agent while a command runs, start it again: the server still lists the command, but the
    agent does not run it a second time; it kills what is left of the first run and reports Error /
    ExecutionInterrupted."""
    server = serving(LiveServer(tmp_path / "server"))
    agent = AgentProcess(tmp_path / "agent").register(server).start()
    runs, pid_file = tmp_path / "runs", tmp_path / "pid"
    try:
        wait_for(agent.connected, 30, "the agent to connect")
        invoke_id = run_command(server, agent.instance_id, f"echo run >> {runs}; echo $$ > {pid_file}; sleep 60")
        wait_for(lambda: result(server, invoke_id)["InvocationStatus"] == "Running" and pid_file.exists(), 15)
        agent.stop(signal.SIGKILL)
        shell = int(pid_file.read_text())
        assert proctree.alive(shell)
        agent.start()
        done = final_result(server, invoke_id)
        assert (done["InvocationStatus"], done["ErrorCode"]) == ("Error", "ExecutionInterrupted")
        wait_for(lambda: not proctree.alive(shell), 10, "the leftover shell to be killed")
        time.sleep(1)
        assert runs.read_text() == "run\n"
        assert agent.stop() == 0
    finally:
        agent.stop()
        server.stop()
    assert "Traceback" not in server.log()


def test_sigterm_interrupts_running_commands_and_reports_them(tmp_path: Path) -> None:
    """SIGTERM with a command running: the agent kills it, reports Error / ExecutionInterrupted with the
    output so far, and exits 0 within seconds."""
    server = serving(LiveServer(tmp_path / "server"))
    agent = AgentProcess(tmp_path / "agent").register(server).start()
    try:
        wait_for(agent.connected, 30, "the agent to connect")
        invoke_id = run_command(server, agent.instance_id, "echo working; sleep 60")
        wait_for(lambda: result(server, invoke_id)["Output"] == "working\n", 15, "the command to start")
        began = time.monotonic()
        assert agent.stop(signal.SIGTERM) == 0
        assert time.monotonic() - began < 15
        done = result(server, invoke_id)
        assert (done["InvocationStatus"], done["ErrorCode"], done["Output"]) == (
            "Error", "ExecutionInterrupted", "working\n")
        assert not list((agent.state_dir / "spool").glob("*.rep"))
    finally:
        agent.stop()
        server.stop()
    assert "Traceback" not in agent.log(), agent.log()

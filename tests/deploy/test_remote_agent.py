"""An agent reaching the server by an address other than loopback, as on another host (docs/deploy.md): the
server listens on every address; the generated certificate carries that address only once `--agent-name` names
it (before, the agent refuses the server, as it must); the CA stays the same when the certificate is made again,
so `ca.pem` copied to the host earlier still works; the agent registers with an activation code from
CreateActivation and runs a command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs

from acceptance.agents import AGENT, Agent, agents, clean_env, final, registered_ids
from acceptance.sdk import AK, REGION, SECRET, tea_client
from cloudassist.testing import free_port, wait_for

pytestmark = pytest.mark.acceptance


def _host_address() -> str:
    """This host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), address
    return address


@pytest.fixture
def server_argv(tmp_path: Path) -> tuple[list[str], int, int]:
    """`cloudassist server` with its API on loopback and its agent face on every address; the two ports."""
    api, agent_port = free_port(), free_port()
    return ([sys.executable, "-m", "cloudassist", "server", "--data-dir", str(tmp_path / "data"),
            "--listen", f"127.0.0.1:{api}", "--agent-listen", f"0.0.0.0:{agent_port}"], api, agent_port)


def _start(argv: list[str], log: Path, api: int) -> subprocess.Popen[bytes]:
    env = {**clean_env(), "CLOUDASSIST_ACCESS_KEY_ID": AK, "CLOUDASSIST_ACCESS_KEY_SECRET": SECRET}
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert process.poll() is None, log.read_text()
        return "agent protocol listening" in log.read_text()
    wait_for(listening, 60, "the server to listen")
    return process


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    return process.wait(30)


def _register(host: str, port: int, ca: Path, state_dir: Path, activation: tuple[str, str]) -> \
        subprocess.CompletedProcess[str]:
    env = {**clean_env(), "CLOUDASSIST_ACTIVATION_CODE": activation[1]}
    return subprocess.run([*AGENT, "register", "--server", f"{host}:{port}", "--ca-file", str(ca), "--region", REGION,
                           "--activation-id", activation[0], "--state-dir", str(state_dir)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_an_agent_on_another_address_registers_once_the_certificate_names_it(
    tmp_path: Path, server_argv: tuple[list[str], int, int],
) -> None:
    address = _host_address()
    argv, api, port = server_argv
    copied_ca = tmp_path / "host" / "ca.pem"  # what the operator copied to the managed host
    copied_ca.parent.mkdir()
    process = _start(argv, tmp_path / "server-1.log", api)
    try:
        copied_ca.write_bytes((tmp_path / "data" / "ca.pem").read_bytes())
        tea = tea_client(f"127.0.0.1:{api}")
        body = tea.create_activation(ecs.CreateActivationRequest(region_id=REGION, instance_count=1)).body
        activation = (str(body.activation_id), str(body.activation_code))
        refused = _register(address, port, copied_ca, tmp_path / "host" / "state", activation)
        assert refused.returncode != 0
        assert "certificate" in (refused.stdout + refused.stderr).lower()
        assert _stop(process) == 0

        process = _start([*argv, "--agent-name", address], tmp_path / "server-2.log", api)
        assert (tmp_path / "data" / "ca.pem").read_bytes() == copied_ca.read_bytes()
        done = _register(address, port, copied_ca, tmp_path / "host" / "state", activation)
        assert done.returncode == 0, done.stdout + done.stderr
        [instance_id] = registered_ids(done.stdout)
        with agents(tmp_path / "agents") as made:
            agent = Agent(tmp_path / "host", instance_id).prepare()
            made.all.append(agent)
            agent.start()
            wait_for(agent.connected, 60, "the agent to connect")
            invoke_id = tea.run_command(ecs.RunCommandRequest(
                region_id=REGION, type="RunShellScript", command_content="echo from-afar",
                instance_id=[instance_id])).body.invoke_id
            result = final(tea, str(invoke_id))
            assert (result.invocation_status, result.output) == ("Success", "from-afar\n")
            assert made.close() == [0]
        # the agent came by the host's address, not by loopback
        assert f"client={address}" in (tmp_path / "server-2.log").read_text()
    finally:
        if process.poll() is None:
            _stop(process)
    for log in tmp_path.glob("server-*.log"):
        assert "Traceback" not in log.read_text()
    assert os.stat(tmp_path / "data").st_mode & 0o077 == 0

"""The agent's client against a real server: registration, signed requests, the kick websocket, identity files.

One `cloudassist server` process (LiveServer) serves the module; activations are made through its ECS API
(CreateActivation), and agents register through its agent face, as a real machine would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cloudassist.agent import identity as ident
from cloudassist.agent.cli import agent
from cloudassist.agent.client import (
    RunOrder,
    ServerClient,
    ServerError,
    heartbeat_interval,
    parse_kick,
    register,
    registration_body,
    ssl_context,
    user_agent,
)
from cloudassist.agent.transport import TransportError, WebSocketRefused
from cloudassist.testing import LiveServer, free_port

REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server with its agent face up; its log must hold no traceback at the end."""
    live = LiveServer(tmp_path_factory.mktemp("server")).start()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", live.agent_port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, live.log()
            time.sleep(0.05)
    yield live
    live.stop()
    assert "Traceback" not in live.log(), live.log()


def activation(server: LiveServer, count: int = 10) -> tuple[str, str]:
    made = server.api(Action="CreateActivation", InstanceCount=str(count))
    return made["ActivationCode"], made["ActivationId"]


def registered(server: LiveServer, state_dir: Path, name: str = "") -> ident.Identity:
    """Register a new key through the agent face, as `agent register` does, and store the identity."""
    code, activation_id = activation(server)
    key = ident.generate()
    machine_id = ident.machine_id(state_dir)
    ca = str(server.data_dir / "ca.pem")
    body = registration_body(key=key, activation_code=code, activation_id=activation_id, region_id=REGION,
                             machine_id=machine_id, name=name, tags=[("env", "test")])
    instance_id = asyncio.run(register(server.agent_endpoint, ca, body))
    identity = ident.Identity(instance_id, machine_id, REGION, server.agent_endpoint, ca, name, key)
    ident.save(state_dir, identity)
    return identity


async def _with_client(identity: ident.Identity, action: Any) -> Any:
    client = ServerClient(identity)
    try:
        return await action(client)
    finally:
        await client.aclose()


def test_a_registered_agent_is_accepted_and_known_to_the_api(server: LiveServer, tmp_path: Path) -> None:
    """An activation from CreateActivation registers a key through `instance/register`; signed heart-beats,
    task lists and reports are then accepted, and DescribeManagedInstances shows the machine with the
    name, tag and agent version (from the User-Agent) that the agent sent."""
    identity = registered(server, tmp_path / "state", name="box-1")
    assert identity.instance_id.startswith("mi-")

    async def talk(client: ServerClient) -> tuple[dict[str, Any], dict[str, Any]]:
        beat = await client.heart_beat(first=True, cold_start=True)
        tasks = await client.task_list("startup", cold_start=True)
        await client.report("running", {"taskId": "t-unknown", "invokeVersion": "1"}, b"")
        await client.check()
        return beat, tasks

    beat, tasks = asyncio.run(_with_client(ident.load(tmp_path / "state"), talk))
    assert beat["instanceId"] == identity.instance_id
    assert beat["newTasks"] is False
    assert tasks["run"] == []
    assert tasks["stop"] == []
    [shown] = server.api(Action="DescribeManagedInstances", **{"InstanceId.1": identity.instance_id})["Instances"]
    assert shown["InstanceName"] == "box-1"
    assert shown["AgentVersion"] == user_agent().split("/", 1)[1]
    assert shown["Connected"] is True
    assert shown["Tags"] == [{"TagKey": "env", "TagValue": "test"}]


def _headers(identity: ident.Identity) -> dict[str, str]:
    return {**ident.sign_headers(identity), "User-Agent": user_agent()}


def test_tampered_replayed_or_foreign_signatures_are_refused(server: LiveServer, tmp_path: Path) -> None:
    """The server answers 401 to a signature with one bit flipped, to a replayed request id, to a signature
    made with another key or for another machine id, and to an unsigned request; a fresh one passes."""
    identity = registered(server, tmp_path / "state")
    url = f"https://{server.agent_endpoint}/luban/api/heart-beat"
    with httpx.Client(verify=ssl_context(identity.ca_file)) as http:
        good = _headers(identity)
        assert http.get(url, headers=good).status_code == 200
        assert http.get(url, headers=good).status_code == 401  # the same request id again

        tampered = _headers(identity)
        raw = bytearray(base64.b64decode(tampered["X-Acs-Signature"]))
        raw[10] ^= 0x01
        tampered["X-Acs-Signature"] = base64.b64encode(bytes(raw)).decode()
        assert http.get(url, headers=tampered).status_code == 401

        impostor = ident.Identity(identity.instance_id, identity.machine_id, REGION, identity.server,
                                  identity.ca_file, "", ident.generate())
        assert http.get(url, headers=_headers(impostor)).status_code == 401
        clone = ident.Identity(identity.instance_id, "0" * 32, REGION, identity.server, identity.ca_file, "",
                               identity.private_key)
        assert http.get(url, headers=_headers(clone)).status_code == 401
        assert http.get(url).status_code == 401
        assert http.get(url, headers=_headers(identity)).status_code == 200

    async def report(client: ServerClient) -> None:
        await client.report("finish", {"taskId": "t-x", "invokeVersion": "1"}, b"")

    with pytest.raises(ServerError) as refused:
        asyncio.run(_with_client(impostor, report))
    assert refused.value.status == 401
    assert not refused.value.permanent


def test_the_kick_websocket_is_signed_and_rings_for_new_work(server: LiveServer, tmp_path: Path) -> None:
    """notify_socket() opens the signed websocket; RunCommand for the instance then sends `kick_vm` on it.
    The same upgrade with another key is refused (HTTP 403)."""
    identity = registered(server, tmp_path / "state")

    async def ring(client: ServerClient) -> str:
        async with await client.notify_socket() as ws:
            await asyncio.to_thread(server.api, Action="RunCommand", Type="RunShellScript",
                                    CommandContent="echo hi", ContentEncoding="PlainText",
                                    **{"InstanceId.1": identity.instance_id})
            message = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(message, str)
            await ws.send(f"accept:{message}")
            return message

    assert asyncio.run(_with_client(identity, ring)).startswith("kick_vm")

    async def listed(client: ServerClient) -> dict[str, Any]:
        return await client.task_list("kickoff")

    [entry] = asyncio.run(_with_client(identity, listed))["run"]
    assert base64.b64decode(entry["task"]["commandContent"]) == b"echo hi"
    assert entry["repeat"] == "Once"
    assert entry["task"]["invokeVersion"] == 1

    impostor = ident.Identity(identity.instance_id, identity.machine_id, REGION, identity.server,
                              identity.ca_file, "", ident.generate())

    async def refused(client: ServerClient) -> None:
        await client.notify_socket()

    with pytest.raises(WebSocketRefused) as refusal:
        asyncio.run(_with_client(impostor, refused))
    assert refusal.value.status == 403


def test_the_server_certificate_must_chain_to_the_pinned_ca(server: LiveServer, tmp_path: Path) -> None:
    """With the system's CAs instead of the server's CA file, TLS fails: nothing is sent to an unverified
    server."""
    identity = registered(server, tmp_path / "state")
    unpinned = ident.Identity(identity.instance_id, identity.machine_id, REGION, identity.server, "", "",
                              identity.private_key)

    async def beat(client: ServerClient) -> None:
        await client.heart_beat(first=True, cold_start=False)

    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_with_client(unpinned, beat))


def test_identity_files_are_private_and_an_exposed_key_is_refused(server: LiveServer, tmp_path: Path) -> None:
    """The state directory is 0700 and the private key 0600; load() gives back the same identity and refuses
    a key that others can read."""
    state = tmp_path / "state"
    identity = registered(server, state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / ident.PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    loaded = ident.load(state)
    assert loaded.public_record() == identity.public_record()
    assert ident.signature(loaded, "1", "r") == ident.signature(identity, "1", "r")
    (state / ident.PRIVATE_KEY_FILE).chmod(0o644)
    with pytest.raises(ident.IdentityError, match="chmod 600"):
        ident.load(state)


def test_cli_registers_once_and_refuses_bad_activations(server: LiveServer, tmp_path: Path) -> None:
    """`agent register` stores an identity (CA pinned in the state directory) and refuses to register a
    second time; a wrong activation code is refused by the server and leaves nothing behind; `status
    --check` shows the instance and that the server accepts its signature; `deregister` forgets it."""
    code, activation_id = activation(server)
    runner = CliRunner()
    args = ["register", "--server", server.agent_endpoint, "--activation-id", activation_id, "--region", REGION,
            "--ca-file", str(server.data_dir / "ca.pem")]
    bad = runner.invoke(agent, [*args, "--activation-code", "a-wrong", "--state-dir", str(tmp_path / "bad")])
    assert bad.exit_code == 1
    assert "registration refused" in bad.output
    assert not ident.is_registered(tmp_path / "bad")

    state = tmp_path / "good"
    ok = runner.invoke(agent, [*args, "--activation-code", code, "--state-dir", str(state), "--tag", "a=b"])
    assert ok.exit_code == 0, ok.output
    identity = ident.load(state)
    assert identity.ca_file == str((state / "ca.pem").resolve())
    again = runner.invoke(agent, [*args, "--activation-code", code, "--state-dir", str(state)])
    assert again.exit_code == 1
    assert "already registered" in again.output

    status = runner.invoke(agent, ["status", "--state-dir", str(state), "--check"])
    assert status.exit_code == 0
    assert identity.instance_id in status.output
    assert "server_check: ok" in status.output

    gone = runner.invoke(agent, ["deregister", "--state-dir", str(state)])
    assert gone.exit_code == 0, gone.output
    assert not ident.is_registered(state)
    assert server.api(Action="DescribeManagedInstances", **{"InstanceId.1": identity.instance_id})["Instances"] == []


def test_kicks_are_answered_as_the_official_agent_answers() -> None:
    """`kick_vm…` is accepted (and means "fetch" for bare and task kicks, with the task id when given);
    anything else is answered `unknow:<msg>`, sic."""
    assert parse_kick("kick_vm") == ("accept:kick_vm", True, None)
    assert parse_kick("kick_vm task run t-1") == ("accept:kick_vm task run t-1", True, "t-1")
    assert parse_kick("kick_vm task stop t-2") == ("accept:kick_vm task stop t-2", True, "t-2")
    assert parse_kick("kick_vm noop") == ("accept:kick_vm noop", False, None)
    assert parse_kick("kick_vm agent update") == ("accept:kick_vm agent update", False, None)
    assert parse_kick("hello-unknown") == ("unknow:hello-unknown", False, None)


def test_heartbeat_interval_honours_the_server_only_within_55_to_65_seconds() -> None:
    """nextInterval (ms) within 55-65 s is used as is; anything else becomes a random value in that range."""
    assert heartbeat_interval(60_000) == 60.0
    assert heartbeat_interval("55000") == 55.0
    for odd in (1000, 600_000, None, "soon", -5):
        assert 55.0 <= heartbeat_interval(odd) <= 65.0


def test_a_run_entry_is_read_leniently_and_built_ins_are_filled_only_when_enabled() -> None:
    """A task-list entry gives the script (base64-decoded, {{ACS::…}} filled from builtInParameter when
    enableParameter is true, unknown names left alone), the timeout (bad → 3600 s) and output settings
    with the official floors (1 s, 12,000 bytes); an empty repeat means Once unless there is a cron."""
    script = b"echo {{ACS::InstanceId}} {{ ACS::InvokeId }} {{ACS::Nope}} {{custom}}"
    task: dict[str, Any] = {
        "taskID": "t-1", "invokeVersion": 2, "type": "RunShellScript", "enableParameter": True,
        "commandContent": base64.b64encode(script).decode(), "timeOut": "abc",
        "builtInParameter": {"ACS::InstanceId": "mi-1", "ACS::InvokeId": "t-1"}}
    entry = {"task": task, "output": {"interval": 10, "logQuota": 5}, "repeat": ""}
    order = RunOrder.parse(entry)
    assert order.key == ("t-1", 2)
    assert (order.repeat, order.timeout, order.interval, order.log_quota) == ("Once", 3600.0, 1.0, 12_000)
    assert order.content() == b"echo mi-1 t-1 {{ACS::Nope}} {{custom}}"
    task["enableParameter"] = False
    assert RunOrder.parse(entry).content() == script
    task["cron"] = "0 * * * * ?"
    assert RunOrder.parse(entry).repeat == "Period"
    task["commandContent"] = "not base64!"
    with pytest.raises(ValueError, match="base64"):
        RunOrder.parse(entry).content()


def test_cli_registers_with_several_servers_and_uses_the_one_that_answers(server: LiveServer, tmp_path: Path) -> None:
    """`--server` given twice, the first listing two addresses: the machine registers on the first that takes a
    connection (the live one, third), identity.json keeps all three in order, and `status --check` reaches
    the live server past the refusing ones. An address that is not HOST:PORT is refused before anything."""
    code, activation_id = activation(server)
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    runner = CliRunner()
    args = ["register", "--activation-id", activation_id, "--region", REGION, "--ca-file",
            str(server.data_dir / "ca.pem"), "--activation-code", code]
    state = tmp_path / "state"
    wrong = runner.invoke(agent, [*args, "--server", "h:1,h:port", "--state-dir", str(state)])
    assert wrong.exit_code == 2
    assert "'h:port' is not HOST:PORT" in wrong.output
    ok = runner.invoke(agent, [*args, "--server", f"{dead[0]}, {dead[1]}", "--server", server.agent_endpoint,
                               "--state-dir", str(state)])
    assert ok.exit_code == 0, ok.output
    identity = ident.load(state)
    assert identity.server == f"{dead[0]},{dead[1]},{server.agent_endpoint}"
    assert identity.servers == [*dead, server.agent_endpoint]
    assert json.loads((state / ident.IDENTITY_FILE).read_text())["server"] == identity.server
    status = runner.invoke(agent, ["status", "--state-dir", str(state), "--check"])
    assert status.exit_code == 0, status.output
    assert "server_check: ok" in status.output
    assert f"server: {identity.server}" in status.output


def test_an_identity_without_a_server_is_refused(tmp_path: Path) -> None:
    """identity.json whose `server` is empty: not usable (the agent would have nowhere to go)."""
    ident.save(tmp_path, ident.Identity("mi-x", "a" * 32, "r", "", "", "", ident.generate()))
    with pytest.raises(ident.IdentityError, match="names no server"):
        ident.load(tmp_path)

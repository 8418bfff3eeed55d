"""`cloudassist up`: the server and a local agent, registered as a managed instance of this machine.

The server and the agent run as two child processes (the agent may run commands as other users and
kills whole process trees; it should not share a process with the server). `up` registers the agent
once, through an activation code it creates itself, then supervises both until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import click

from cloudassist.cli import options
from cloudassist.settings import Settings, load

REGION = "cn-hangzhou"


def _wait_for(ports: list[int], process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            last = lines[-1].removeprefix("Error: ") if lines else "no output"
            raise click.ClickException(f"the server exited during start-up: {last} (its log: {log})")
        try:
            for port in ports:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
            return
        except OSError:
            time.sleep(0.1)
    raise click.ClickException("the server did not start listening in time")


def _access_key(settings: Settings) -> tuple[str, str]:
    key_id, secret = os.environ.get("CLOUDASSIST_ACCESS_KEY_ID"), os.environ.get("CLOUDASSIST_ACCESS_KEY_SECRET")
    if key_id and secret:
        return key_id, secret
    from cloudassist.server import KEY_FILE

    values = dict(line.split("=", 1) for line in (settings.data_dir / KEY_FILE).read_text().split())
    return values["CLOUDASSIST_ACCESS_KEY_ID"], values["CLOUDASSIST_ACCESS_KEY_SECRET"]


async def _activation(settings: Settings, region: str) -> tuple[str, str]:
    """A one-use activation code of the default account, made directly in the store."""
    from cloudassist.clock import SystemClock
    from cloudassist.services.access import DEFAULT_ACCOUNT
    from cloudassist.services.activations import ActivationService, ActivationSpec
    from cloudassist.services.context import Context, Scope
    from cloudassist.store.store import Store

    store = await Store.open(settings.database_url)
    try:
        ctx = Context(store, SystemClock(), settings)
        async with store.write() as tx:
            account_id = await tx.accounts.ensure(DEFAULT_ACCOUNT, ctx.clock.now())
        made = await ActivationService(ctx).create_activation(
            Scope(account_id, region),
            ActivationSpec(description="cloudassist up: this machine", instance_count=1, ttl_hours=1),
        )
        return made.code, made.activation.activation_id
    finally:
        await store.close()


def _child(argv: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *argv], stdout=log, stderr=subprocess.STDOUT)


@click.command()
@options.data_dir
@options.listen
@options.agent_listen
@options.db
@click.option("--region", default=REGION, show_default=True, help="Region of the local managed instance.")
@options.log_format
def up(
    data_dir: Path | None, listen: str | None, agent_listen: str | None, db: str | None, region: str,
    log_format: str | None,
) -> None:
    """Run the server and a local agent; print the endpoint, the access key and an SDK snippet."""
    from cloudassist import preflight
    from cloudassist.server import secure_data_dir, split_listen

    settings = load(data_dir=data_dir, listen=listen, agent_listen=agent_listen, db=db)
    if not settings.agent_listen:
        raise click.UsageError("`up` needs the agent face; give --agent-listen HOST:PORT")
    try:
        asyncio.run(preflight.check(settings))  # before anything is made: a taken port is not our server
    except preflight.StartupError as exc:
        raise click.ClickException(str(exc)) from None
    secure_data_dir(settings.data_dir)
    state_dir = settings.data_dir / "agent"
    server_argv = [
        "cloudassist",
        "server",
        "--data-dir",
        str(settings.data_dir),
        "--listen",
        settings.listen,
        "--agent-listen",
        settings.agent_listen,
    ]
    if settings.db:
        server_argv += ["--db", settings.db]
    if log_format:
        server_argv += ["--log-format", log_format]
    server_log = open(settings.data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the child
    agent_log = open(settings.data_dir / "agent.log", "ab")  # noqa: SIM115
    server = _child(server_argv, server_log)
    agent: subprocess.Popen[bytes] | None = None
    try:
        api_port, agent_port = split_listen(settings.listen)[1], split_listen(settings.agent_listen)[1]
        _wait_for([api_port, agent_port], server, settings.data_dir / "server.log")
        agent_host = f"127.0.0.1:{agent_port}"
        if not (state_dir / "identity.json").exists():
            code, activation_id = asyncio.run(_activation(settings, region))
            registered = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cloudassist.agent",
                    "register",
                    "--server",
                    agent_host,
                    "--activation-id",
                    activation_id,
                    "--region",
                    region,
                    "--ca-file",
                    str(settings.data_dir / "ca.pem"),
                    "--state-dir",
                    str(state_dir),
                    "--name",
                    socket.gethostname()[:100] or "localhost",
                ],
                env={**os.environ, "CLOUDASSIST_ACTIVATION_CODE": code},
                capture_output=True,
                text=True,
                check=False,
            )
            if registered.returncode != 0:
                raise click.ClickException(
                    f"registering the local agent failed: {registered.stdout}{registered.stderr}"
                )
        instance_id = json.loads((state_dir / "identity.json").read_text())["instance_id"]
        agent = _child(["cloudassist.agent", "run", "--state-dir", str(state_dir)], agent_log)
        key_id, secret = _access_key(settings)
        click.echo(_banner(settings.listen, key_id, secret, instance_id, region, settings.data_dir))
        _supervise(server, agent)
    finally:
        for child in (agent, server):
            if child is not None and child.poll() is None:
                child.terminate()
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
        server_log.close()
        agent_log.close()


def _supervise(server: subprocess.Popen[bytes], agent: subprocess.Popen[bytes]) -> None:
    """Wait until a signal asks us to stop, or a child dies (then stop the other and fail)."""
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop:
            for name, child in (("server", server), ("agent", agent)):
                if child.poll() is not None:
                    raise click.ClickException(f"the {name} exited with status {child.returncode}; see its log")
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _banner(listen: str, key_id: str, secret: str, instance_id: str, region: str, data_dir: Path) -> str:
    host = listen.replace("0.0.0.0", "127.0.0.1")  # noqa: S104 - turns a wildcard into a dialable address
    return f"""cloudassist is up.

  API endpoint       http://{host}/   (ECS 2014-05-26, both SDKs)
  AccessKeyId        {key_id}
  AccessKeySecret    {secret}
  Local instance     {instance_id}   (region {region})
  Logs               {data_dir / "server.log"}, {data_dir / "agent.log"}

Paste into Python (pip install alibabacloud-ecs20140526):

from alibabacloud_tea_openapi.models import Config
from alibabacloud_ecs20140526.client import Client
from alibabacloud_ecs20140526 import models

ecs = Client(Config(access_key_id="{key_id}", access_key_secret="{secret}",
                    endpoint="{host}", protocol="http", region_id="{region}"))
run = ecs.run_command(models.RunCommandRequest(
    region_id="{region}", type="RunShellScript", command_content="uname -a", instance_id=["{instance_id}"]))
import time; time.sleep(2)
out = ecs.describe_invocation_results(models.DescribeInvocationResultsRequest(
    region_id="{region}", invoke_id=run.body.invoke_id, content_encoding="PlainText"))
print(out.body.invocation.invocation_results.invocation_result[0].output)

Ctrl-C stops both."""

"""`cloudassist agent …`: register this machine, run the agent, show its state, deregister.

`agent` is a click.Group; the main CLI mounts it as `cloudassist agent`. Stand-alone:
`python -m cloudassist.agent run --state-dir D`, which runs the agent without loading click (agent/serve.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import click

from cloudassist.agent import identity as ident
from cloudassist.agent import serve
from cloudassist.agent.client import ServerClient, ServerError, register, registration_body
from cloudassist.agent.journal import Journal
from cloudassist.agent.spool import Spool
from cloudassist.agent.transport import TransportError, authority

STATE_DIR_ENV = serve.STATE_DIR_ENV


def _state_dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=ident.DEFAULT_STATE_DIR,
        envvar=STATE_DIR_ENV,
        show_default=True,
        show_envvar=True,
        help="Where the agent keeps its identity, key, journal and spool.",
    )(func)


def _load(state_dir: Path) -> ident.Identity:
    try:
        return ident.load(state_dir)
    except ident.IdentityError as exc:
        raise click.ClickException(str(exc)) from None


def _tag(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, str]]:
    tags = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        tags.append((key, val))
    return tags


@click.group()
def agent() -> None:
    """The cloudassist agent: runs commands sent through a cloudassist server on this machine."""


def _servers(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> str:
    """Every --server value (each may list several, separated by commas) → `a:8443,b:8443`, checked."""
    found = ident.split_servers(",".join(values))
    for address in found:
        try:
            authority(address)
        except ValueError:
            raise click.BadParameter(f"{address!r} is not HOST:PORT") from None
    if not found:
        raise click.BadParameter("no server address given")
    return ",".join(found)


@agent.command("register")
@click.option(
    "--server",
    "server",
    required=True,
    multiple=True,
    callback=_servers,
    help="HOST:PORT of the server's agent face (HTTPS). Repeat it (or separate addresses with commas) for "
    "servers sharing one database: the agent uses the first that answers and moves to the next when it stops.",
)
@click.option(
    "--activation-code",
    required=True,
    envvar="CLOUDASSIST_ACTIVATION_CODE",
    show_envvar=True,
    help="The ActivationCode of CreateActivation (a secret: prefer the environment variable).",
)
@click.option("--activation-id", required=True, help="The ActivationId of CreateActivation.")
@click.option("--region", "region_id", required=True, help="The activation's region, e.g. cn-hangzhou.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM CA of the server (its DATA_DIR/ca.pem); trusted alone. Default: the system's CAs.",
)
@click.option("--name", default="", help="Instance name (default: the server names it).")
@click.option("--tag", "tags", multiple=True, callback=_tag, metavar="KEY=VALUE", help="A tag (repeatable).")
@_state_dir_option
def register_command(
    server: str,
    activation_code: str,
    activation_id: str,
    region_id: str,
    ca_file: Path | None,
    name: str,
    tags: list[tuple[str, str]],
    state_dir: Path,
) -> None:
    """Make a key pair, register this machine with an activation, and keep the identity."""
    if ident.is_registered(state_dir):
        existing = _load(state_dir)
        raise click.ClickException(
            f"already registered as {existing.instance_id} (state directory {state_dir}); deregister first"
        )
    ident.ensure_state_dir(state_dir)
    pinned = ""
    if ca_file is not None:
        pinned = str((state_dir / ident.CA_FILE).resolve())
        ident.write_atomic(Path(pinned), ca_file.read_bytes(), mode=0o644)
    key = ident.generate()
    machine_id = ident.machine_id(state_dir)
    body = registration_body(
        key=key,
        activation_code=activation_code,
        activation_id=activation_id,
        region_id=region_id,
        machine_id=machine_id,
        name=name,
        tags=tags,
    )
    try:
        instance_id = asyncio.run(register(server, pinned, body))
    except ServerError as exc:
        raise click.ClickException(f"registration refused: {exc}") from None
    except TransportError as exc:
        raise click.ClickException(f"cannot reach {server}: {type(exc).__name__}: {exc}") from None
    ident.save(
        state_dir,
        ident.Identity(
            instance_id=instance_id,
            machine_id=machine_id,
            region_id=region_id,
            server=server,
            ca_file=pinned,
            name=name,
            private_key=key,
        ),
    )
    click.echo(f"registered: instance id {instance_id}")
    click.echo(f"start the agent: cloudassist agent run --state-dir {state_dir}")


@agent.command("run")
@_state_dir_option
@click.option("--log-level", type=click.Choice(serve.LOG_LEVELS), default="info", show_default=True)
@click.option(
    "--max-concurrent",
    type=click.IntRange(*serve.MAX_CONCURRENT),
    default=serve.DEFAULT_MAX_CONCURRENT,
    show_default=True,
    help="Tasks run at once; more wait for a slot.",
)
@click.option(
    "--session-allow-root/--no-session-allow-root",
    default=False,
    envvar=serve.SESSION_ALLOW_ROOT_ENV,
    show_envvar=True,
    help="Allow Session Manager shells as root (uid or gid 0); off by default.",
)
def run_command(state_dir: Path, log_level: str, max_concurrent: int, session_allow_root: bool) -> None:
    """Run the agent in the foreground until SIGTERM or SIGINT.

    On SIGTERM/SIGINT it stops taking tasks, kills running ones (per their TerminationMode), reports them
    ExecutionInterrupted, spends up to 5 s delivering spooled reports, and exits 0; undelivered reports are
    sent at the next start.
    """
    try:
        serve.run(state_dir, log_level, max_concurrent, session_allow_root)
    except serve.Refused as exc:
        raise click.ClickException(str(exc)) from None


@agent.command("deregister")
@_state_dir_option
@click.option("--force", is_flag=True, help="Forget the identity here even if the server cannot be told.")
def deregister_command(state_dir: Path, force: bool) -> None:
    """Tell the server to forget this instance, then delete the identity, key, journal and spool here."""
    identity = _load(state_dir)

    async def call() -> None:
        client = ServerClient(identity)
        try:
            await client.deregister()
        finally:
            await client.aclose()

    try:
        asyncio.run(call())
    except (ServerError, TransportError) as exc:
        if not force:
            raise click.ClickException(f"deregistration failed ({exc}); --force forgets the identity anyway") from None
        click.echo(f"warning: the server was not told ({exc})", err=True)
    ident.forget(state_dir)
    for sub in ("spool", "journal"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)
    click.echo(f"deregistered {identity.instance_id}")


@agent.command("status")
@_state_dir_option
@click.option("--check", is_flag=True, help="Also send a signed request to see that the server accepts us.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(state_dir: Path, check: bool, as_json: bool) -> None:
    """Show the identity, the reports waiting in the spool and the tasks in the journal."""
    identity = _load(state_dir)
    entries = Journal(state_dir / "journal").entries()
    info: dict[str, object] = {
        **identity.public_record(),
        "state_dir": str(state_dir),
        "spooled_reports": len(Spool(state_dir / "spool")),
        "tasks_running_or_interrupted": [e.task_id for e in entries if e.state == "started"],
        "tasks_waiting": [e.task_id for e in entries if e.state == "accepted"],
    }
    if check:

        async def probe() -> str:
            client = ServerClient(identity)
            try:
                await client.check()
                return "ok"
            except (ServerError, TransportError) as exc:
                return f"failed: {exc}"
            finally:
                await client.aclose()

        info["server_check"] = asyncio.run(probe())
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for field, value in info.items():
            click.echo(f"{field}: {value}")

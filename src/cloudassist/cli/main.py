"""`cloudassist`: the server and the tools to manage it. Every flag can also come from CLOUDASSIST_*."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar

import click

from cloudassist import __version__
from cloudassist.cli import options
from cloudassist.settings import load


class LazyGroup(click.Group):
    """Subcommands imported only when used: the agent must not load the server's libraries."""

    LAZY: ClassVar[dict[str, str]] = {
        "keys": "cloudassist.cli.keys:keys",
        "up": "cloudassist.cli.up:up",
        "agent": "cloudassist.agent.cli:agent",
        # the API's client side (cli/client.py): signed calls to any cloudassist server or the real service
        "run": "cloudassist.cli.run:run",
        "stop": "cloudassist.cli.run:stop",
        "results": "cloudassist.cli.listings:results",
        "invocations": "cloudassist.cli.listings:invocations",
        "commands": "cloudassist.cli.listings:commands",
        "instances": "cloudassist.cli.listings:instances",
        "activations": "cloudassist.cli.listings:activations",
        "sessions": "cloudassist.cli.listings:sessions",
        "send-file": "cloudassist.cli.files:send_file",
        "session": "cloudassist.cli.session:session",
        "backup": "cloudassist.cli.backup:backup",
        "restore": "cloudassist.cli.backup:restore",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, _, attr = self.LAZY[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="cloudassist")
def main() -> None:
    """A self-hosted Cloud Assistant speaking the ECS Cloud Assistant API."""


@main.command()
@options.data_dir
@options.listen
@options.db
@options.agent_listen
@click.option(
    "--agent-cert",
    envvar="CLOUDASSIST_AGENT_CERT",
    show_envvar=True,
    help="Your own PEM certificate for the agent face (else one is made in the data directory).",
)
@click.option("--agent-key", envvar="CLOUDASSIST_AGENT_KEY", show_envvar=True, help="The key of --agent-cert.")
@click.option(
    "--agent-name",
    "agent_names",
    multiple=True,
    help="Extra DNS name or IP for the generated agent certificate (repeatable).",
)
@options.log_format
@click.option(
    "--api-cert",
    envvar="CLOUDASSIST_API_CERT",
    show_envvar=True,
    help="A PEM certificate (chain) to serve the API over HTTPS (else plain HTTP).",
)
@click.option("--api-key", envvar="CLOUDASSIST_API_KEY", show_envvar=True, help="The key of --api-cert.")
def server(
    data_dir: Path | None,
    listen: str | None,
    db: str | None,
    agent_listen: str | None,
    agent_cert: str | None,
    agent_key: str | None,
    agent_names: tuple[str, ...],
    log_format: str | None,
    api_cert: str | None,
    api_key: str | None,
) -> None:
    """Serve the ECS Cloud Assistant API and the agent protocol."""
    from cloudassist.preflight import StartupError
    from cloudassist.server import run, serve

    if bool(agent_cert) != bool(agent_key):
        raise click.UsageError("--agent-cert and --agent-key go together")
    if bool(api_cert) != bool(api_key):
        raise click.UsageError("--api-cert and --api-key go together")
    settings = load(
        data_dir=data_dir,
        listen=listen,
        db=db,
        agent_listen=agent_listen,
        agent_cert=agent_cert,
        agent_key=agent_key,
        agent_names=agent_names or None,
        log_format=log_format,
        api_cert=api_cert,
        api_key=api_key,
    )
    configure_logging(settings.log_level, settings.log_format, settings.access_log)
    try:
        run(serve(settings))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


def configure_logging(level: str, fmt: str = "text", access: bool = True) -> None:
    from cloudassist import logs

    logs.configure(level, fmt, access=access)


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)

"""Options shared by several commands; each can also come from its CLOUDASSIST_* variable."""

from __future__ import annotations

from pathlib import Path

import click

data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="CLOUDASSIST_DATA_DIR",
    show_envvar=True,
    help="The server's data directory: database, keys, certificates [default: ./.cloudassist].",
)
listen = click.option(
    "--listen", envvar="CLOUDASSIST_LISTEN", show_envvar=True, help="HOST:PORT of the ECS API [127.0.0.1:8080]."
)
db = click.option(
    "--db",
    envvar="CLOUDASSIST_DB",
    show_envvar=True,
    help="postgresql://… to use PostgreSQL; SQLite in the data directory by default.",
)
agent_listen = click.option(
    "--agent-listen",
    envvar="CLOUDASSIST_AGENT_LISTEN",
    show_envvar=True,
    help="HOST:PORT of the agent protocol over HTTPS [127.0.0.1:8443]; '' turns it off.",
)
log_format = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="CLOUDASSIST_LOG_FORMAT",
    show_envvar=True,
    help="The server's log lines: text, or one JSON object a line [text].",
)

"""What every command that calls the API shares: its options (`--profile`, `--region`, `--endpoint`), the client
they make, and how an API error ends the command (`Code: Message (RequestId)` on stderr, exit status 1).

Exit statuses of the API commands: 0 done; 1 an API error, bad credentials or an unreachable endpoint; 2 a
usage error (click's); 3 `run` (or `results --wait`) saw at least one instance end in a status other than
Success; 130 interrupted (a running task goes on: its InvokeId is printed).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from cloudassist.cli.client import ApiCallError, Client
from cloudassist.cli.profile import ENDPOINT_ENV, ProfileError, resolve

__all__ = ["EXIT_API", "EXIT_FAILED", "EXIT_INTERRUPTED", "api_errors", "api_options", "client", "print_json"]

EXIT_API = 1
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def api_options(command: F) -> F:
    """`--profile`, `--region` and `--endpoint`, kept in the context for `client()`."""

    def keep(name: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
        def store(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
            ctx.meta[f"cloudassist.{name}"] = value
            return value

        return store

    decorators = [
        click.option(
            "--profile",
            expose_value=False,
            callback=keep("profile"),
            help="A profile of ~/.aliyun/config.json (AK mode) [its `current`; ALIBABA_CLOUD_PROFILE].",
        ),
        click.option(
            "--region", expose_value=False, callback=keep("region"), help="Region [the profile's, else cn-hangzhou]."
        ),
        click.option(
            "--endpoint",
            expose_value=False,
            callback=keep("endpoint"),
            help=f"API endpoint, HOST:PORT or http(s)://HOST[:PORT] [${ENDPOINT_ENV}, else 127.0.0.1:8080].",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def client(ctx: click.Context | None = None) -> Client:
    """The API client for this command's options, the config file and the environment."""
    ctx = ctx or click.get_current_context()
    try:
        target = resolve(
            os.environ,
            profile=ctx.meta.get("cloudassist.profile"),
            region=ctx.meta.get("cloudassist.region"),
            endpoint=ctx.meta.get("cloudassist.endpoint"),
        )
    except ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    return Client(target.endpoint, target.credentials)


@contextmanager
def api_errors() -> Iterator[None]:
    """An ApiCallError inside ends the command: `Error: Code: Message (RequestId)` on stderr, exit status 1."""
    try:
        yield
    except ApiCallError as exc:
        raise click.ClickException(str(exc)) from None


def print_json(value: Any) -> None:
    """`value` as indented JSON on stdout (for scripts: `--json`)."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

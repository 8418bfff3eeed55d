"""`cloudassist keys create|list|disable|enable`: access keys and the accounts they belong to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from cloudassist.cli import options
from cloudassist.clock import SystemClock, iso
from cloudassist.services.access import DEFAULT_ACCOUNT, AccessService
from cloudassist.services.context import Context
from cloudassist.settings import Settings, load
from cloudassist.store.store import Store

T = TypeVar("T")

data_dir_option, db_option = options.data_dir, options.db


def _run(settings: Settings, work: Callable[[AccessService], Awaitable[T]]) -> T:
    async def go() -> T:
        from cloudassist.server import secure_data_dir

        secure_data_dir(settings.data_dir)
        store = await Store.open(settings.database_url)
        try:
            return await work(AccessService(Context(store, SystemClock(), settings)))
        finally:
            await store.close()

    return asyncio.run(go())


@click.group()
def keys() -> None:
    """Manage access keys and accounts."""


@keys.command("create")
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True, help="Account the key belongs to.")
@data_dir_option
@db_option
def create(account: str, data_dir: Path | None, db: str | None) -> None:
    """Create an access key (and its account if new); prints the secret once."""
    key = _run(load(data_dir=data_dir, db=db), lambda access: access.create_key(account))
    click.echo(f"AccessKeyId:     {key.access_key_id}")
    click.echo(f"AccessKeySecret: {key.secret}")
    click.echo(f"Account:         {key.account}")


@keys.command("list")
@click.option("--account", default=None, help="Only this account's keys.")
@data_dir_option
@db_option
def list_keys(account: str | None, data_dir: Path | None, db: str | None) -> None:
    """List access keys (never their secrets)."""
    from cloudassist.cli.main import print_table

    found = _run(load(data_dir=data_dir, db=db), lambda access: access.keys(account))
    print_table(
        "Access keys",
        ["AccessKeyId", "Account", "Enabled", "Created"],
        [[k.access_key_id, k.account_name, "yes" if k.enabled else "no", iso(k.creation_time)] for k in found],
    )


def _toggle(enabled: bool) -> Callable[[str, Path | None, str | None], None]:
    def command(access_key_id: str, data_dir: Path | None, db: str | None) -> None:
        changed = _run(load(data_dir=data_dir, db=db), lambda access: access.set_enabled(access_key_id, enabled))
        if not changed:
            raise click.ClickException(f"no access key {access_key_id}")
        click.echo(f"{access_key_id} {'enabled' if enabled else 'disabled'}")

    return command


keys.command("disable", help="Disable an access key: requests signed with it are refused.")(
    db_option(data_dir_option(click.argument("access_key_id")(_toggle(False))))
)
keys.command("enable", help="Enable a disabled access key again.")(
    db_option(data_dir_option(click.argument("access_key_id")(_toggle(True))))
)

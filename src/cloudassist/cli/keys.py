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


def _run(settings: Settings, work: Callable[[AccessService], Awaitable[T]], *, create: bool = False) -> T:
    """Run `work` on the store of `settings`. A data directory (or database) that holds no cloudassist data is
    refused unless `create`: a key made in the wrong place is one the running server would never accept."""

    no_file = _no_sqlite_file(settings)

    async def go() -> T:
        from cloudassist import preflight
        from cloudassist.server import secure_data_dir

        try:
            if create:
                preflight.check_data_dir(settings.data_dir)
            await preflight.check_database(settings)
        except preflight.StartupError as exc:
            raise click.ClickException(str(exc)) from None
        if not create and (where := await _no_data_at(settings, no_file)):
            raise click.ClickException(
                f"{where} holds no cloudassist data: give the server's data directory with --data-dir (and its "
                f"--db) or CLOUDASSIST_DATA_DIR; `cloudassist keys create --create` starts a new one there"
            )
        if create:
            secure_data_dir(settings.data_dir)
        store = await Store.open(settings.database_url)
        try:
            return await work(AccessService(Context(store, SystemClock(), settings)))
        finally:
            await store.close()

    return asyncio.run(go())


def _no_sqlite_file(settings: Settings) -> str:
    """Where the SQLite file would be, if there is none ('' when there is, or the store is not SQLite)."""
    url = settings.database_url
    if not url.startswith("sqlite"):
        return ""
    path = Path(url.split(":///", 1)[-1])
    if path.is_file():
        return ""
    return f"{settings.data_dir if path.parent == settings.data_dir.resolve() else path.parent} (no {path.name})"


async def _no_data_at(settings: Settings, no_file: str) -> str:
    """Where the store would be, if it holds no cloudassist data yet ('' when it does). Creates nothing."""
    url = settings.database_url
    if url.startswith("sqlite"):
        return no_file
    from sqlalchemy import inspect

    from cloudassist.preflight import shown_url
    from cloudassist.store.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
    finally:
        await engine.dispose()
    return "" if found else f"the database {shown_url(settings.db or url)}"


@click.group()
def keys() -> None:
    """Manage access keys and accounts."""


@keys.command("create")
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True, help="Account the key belongs to.")
@click.option(
    "--create",
    "create_store",
    is_flag=True,
    help="Start a new data directory (or database) if the one given holds no cloudassist data yet.",
)
@data_dir_option
@db_option
def create(account: str, create_store: bool, data_dir: Path | None, db: str | None) -> None:
    """Create an access key (and its account if new); prints the secret once."""
    key = _run(load(data_dir=data_dir, db=db), lambda access: access.create_key(account), create=create_store)
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

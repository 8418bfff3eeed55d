"""`cloudassist backup` and `cloudassist restore`: a SQLite data directory copied while its server runs."""

from __future__ import annotations

from pathlib import Path

import click

from cloudassist.cli import options
from cloudassist.settings import load

_PG = "a PostgreSQL database is backed up with pg_dump and restored with pg_restore (docs/deploy.md)"


def _data_dir(data_dir: Path | None, db: str | None) -> Path:
    settings = load(data_dir=data_dir, db=db)
    if settings.db:
        raise click.UsageError(f"backup and restore copy a SQLite data directory; {_PG}")
    return settings.data_dir


@click.command()
@options.data_dir
@options.db
@click.argument("dest", type=click.Path(path_type=Path))
def backup(data_dir: Path | None, db: str | None, dest: Path) -> None:
    """Back up the data directory into DEST (a new directory), consistently, while the server runs."""
    from cloudassist import backup as copier

    try:
        made = copier.take(_data_dir(data_dir, db), dest)
    except copier.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"backed up {copier.DATABASE} ({made.size} bytes, schema revision {made.revision}) and "
        f"{', '.join(made.files) or 'no other file'} into {dest}"
    )


@click.command()
@options.data_dir
@options.db
@click.argument("source", type=click.Path(path_type=Path, exists=True, file_okay=False))
def restore(data_dir: Path | None, db: str | None, source: Path) -> None:
    """Restore the backup in SOURCE into the data directory, which must hold no database yet."""
    from cloudassist import backup as copier

    target = _data_dir(data_dir, db)
    try:
        made = copier.restore(source, target)
    except copier.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"restored {copier.DATABASE} (schema revision {made.revision}) and {', '.join(made.files) or 'no other file'} "
        f"into {target}; start `cloudassist server --data-dir {target}`"
    )

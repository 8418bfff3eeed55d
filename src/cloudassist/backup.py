"""A backup of a SQLite data directory, taken while the server runs, and its restoring into a new one.

The database is copied with SQLite's online backup API in one step: it reads one snapshot (a read
transaction in WAL mode), so the copy is consistent however busily the server writes meanwhile, and the
server's writers are never blocked by it. The data directory's other files (the access key file, the
agent face's CA and certificate) go with it, so that restored agents keep trusting the server.
A PostgreSQL database is backed up with pg_dump instead (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloudassist.store.migrate import HEAD

DATABASE: Final = "cloudassist.db"
#: The data directory's files besides the database: the generated key and the agent face's CA and certificate.
FILES: Final = ("access-key.txt", "ca.pem", "ca-key.pem", "agent-cert.pem", "agent-key.pem")


class BackupError(Exception):
    """Why a backup or a restore cannot be made, in one line that says what to do."""


@dataclass(frozen=True)
class Copy:
    """What a backup or a restore copied: the database's schema revision, its size and the other files."""

    revision: str
    size: int
    files: tuple[str, ...]


def take(data_dir: Path, dest: Path) -> Copy:
    """Back up `data_dir` (a server may be running on it) into the new directory `dest`."""
    source = data_dir / DATABASE
    if not source.is_file():
        raise BackupError(f"{data_dir} holds no {DATABASE}: give the server's data directory with --data-dir")
    _fresh(dest, "the backup's destination")
    return _copy(source, data_dir, dest, any_revision=True)


def restore(backup: Path, data_dir: Path) -> Copy:
    """Restore the backup in `backup` into `data_dir`, which must hold no database yet."""
    source = backup / DATABASE
    if not source.is_file():
        raise BackupError(f"{backup} holds no {DATABASE}: give a directory made by `cloudassist backup`")
    if (data_dir / DATABASE).exists():
        raise BackupError(
            f"{data_dir} already holds a database: restore into a new or empty directory "
            "(stop the server and move the old one away first)"
        )
    _fresh(data_dir, "the data directory", existing=True)
    return _copy(source, backup, data_dir, any_revision=False)


def _fresh(path: Path, what: str, *, existing: bool = False) -> None:
    """Make `path` a directory private to its owner; refuse one that has files, unless `existing` allows them."""
    if path.exists() and not existing and any(path.iterdir()):
        raise BackupError(f"{what} {path} is not empty: give a new directory")
    os.umask(0o077)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _copy(source: Path, source_dir: Path, dest_dir: Path, *, any_revision: bool) -> Copy:
    """The database through SQLite's backup API (checked whole before it is put in place), then the other files.
    Unless `any_revision`, a database of a newer schema than this version's is refused."""
    part = dest_dir / f"{DATABASE}.part"
    part.unlink(missing_ok=True)
    try:
        with contextlib.closing(_connect(source)) as src, contextlib.closing(sqlite3.connect(part)) as dst:
            src.backup(dst)  # every page in one step: one snapshot of the source
            revision = _check(dst, source, any_revision)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.chmod(part, 0o600)
    part.replace(dest_dir / DATABASE)
    copied = []
    for name in FILES:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, dest_dir / name)
            os.chmod(dest_dir / name, 0o600)
            copied.append(name)
    return Copy(revision, (dest_dir / DATABASE).stat().st_size, tuple(copied))


def _connect(path: Path) -> sqlite3.Connection:
    """The source database, never created if missing; waits out the server's writers (up to 30 s)."""
    try:
        return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
    except sqlite3.OperationalError as exc:
        raise BackupError(f"cannot open {path}: {exc}; run as the user that owns the data directory") from None


def _check(db: sqlite3.Connection, source: Path, any_revision: bool) -> str:
    """The copy is whole and a cloudassist database this version can serve; its schema revision."""
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not a cloudassist database: {exc}") from None
    if integrity != "ok":
        raise BackupError(f"the copy of {source} is damaged ({integrity}); the source may be too")
    revision = str(row[0]) if row else ""
    if revision > HEAD and not any_revision:
        raise BackupError(
            f"{source} is at schema revision {revision}, newer than this cloudassist's {HEAD}: "
            "use the cloudassist version that made it"
        )
    return revision

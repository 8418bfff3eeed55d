"""A reserve of disk space beside a SQLite database: a file of `size` bytes, allocated for real, that the store
gives back the moment a write fails because the disk is full, so that results, nonces and everything else go on
being stored while the operator frees space (the "emergency ballast" of CockroachDB). It is made again once the
file system has room for it three times over.

Without it, a full disk turns every signed call into ServiceUnavailable (each must store its nonce) and an
official agent drops an output report after its third 503. With it, the first write that meets the full disk is
refused (the group commit applies its batch's writes again, alone, after the release) and those after it
succeed, for as long as the reserve lasts. One error line says so, with the free space left.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Final

log = logging.getLogger("cloudassist.store")
NAME: Final = "cloudassist.reserve"
#: The reserve is made again only when this many times its size is free (no flapping at the edge).
ROOM_FACTOR: Final = 3
#: On a small file system the reserve is at most this share of it.
MAX_SHARE: Final = 20


class DiskReserve:
    """The reserve file in `folder`: `size` bytes, or a twentieth of the file system if that is less; 0 keeps
    none."""

    def __init__(self, folder: Path, size: int) -> None:
        self.path = folder / NAME
        self.size = min(size, shutil.disk_usage(folder).total // MAX_SHARE) if size > 0 else 0

    def free(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    @property
    def held(self) -> bool:
        return self.size > 0 and self.path.exists()

    def ensure(self) -> bool:
        """Make the reserve if it is missing and there is room for it; True when it is (now) held."""
        if self.size <= 0:
            return False
        if self.path.exists() and self.path.stat().st_size >= self.size:
            return True
        if self.free() < ROOM_FACTOR * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # blocks for real: a sparse file would reserve nothing
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                log.warning("could not make the disk reserve %s: %s", self.path, exc)
            return False
        log.info("disk reserve of %d MiB held at %s", self.size >> 20, self.path)
        return True

    def release(self) -> bool:
        """Give the reserve back (the disk is full); True if there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("the disk is full and the reserve %s could not be removed: %s", self.path, exc)
            return False
        log.error(
            "disk full beside the database: gave back the %d MiB reserve so writes go on; %d MiB free now. "
            "Free space on this file system: the reserve is made again once %d MiB are free",
            self.size >> 20,
            self.free() >> 20,
            (ROOM_FACTOR * self.size) >> 20,
        )
        return True


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error (or what it wraps) says the disk is full: SQLite's SQLITE_FULL or an OS ENOSPC."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False

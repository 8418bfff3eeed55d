"""SendFile on the agent: write a file from the task list's `file` list, atomically, exactly once.

An entry is `{"task": {content, contentType, destination, group, mode, name, overwrite, owner, signature,
taskID, timeout}, "output": {…}}` (agent-protocol §1.10). Results go out as the official agent sends them:
`task/finish?taskId&status=Success|Failed&taskType=sendfile&errorcode=N` for codes up to 4, otherwise
`task/invalid?taskId&taskType=sendfile&param=<key>&value=<…>`, with the official agent's codes and keys.

Unlike the official agent, the write is atomic and never exposes the file with looser rights than asked:
the content goes to a temporary file in the target directory, `.cloudassist-<task id>.tmp` (a leftover of
that name is removed first), that is created readable by its creator only (before umask), given its owner
and group and at most the owner's part of its mode, then filled and fsynced; only then does it get its
final mode (set-id and sticky bits included) and is renamed over the target (or, without `overwrite`,
linked to it, which fails if the name was taken meanwhile); then the directory is fsynced. Owner and group
are looked up before anything is written. The journal makes the write happen at most once per task and
records the temp file's path: a restart in the middle of it removes the temp file and reports the task
interrupted (ExecutionInterrupted) instead of writing again. An entry whose `timeout` is not a number is
reported `invalid` (InvalidFileContent) once, never written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import grp
import hashlib
import logging
import os
import pwd
import re
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudassist.agent.journal import Journal
from cloudassist.domain.files import INVALID_PARAM, AgentCode

log = logging.getLogger("cloudassist.agent.sendfile")
#: The journal's invokeVersion for file tasks (they have none; their `f-` ids never collide with `t-` ones).
JOURNAL_VERSION = 1
DEFAULT_DIR = "/root"
TEMP_PREFIX = ".cloudassist-"
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Put = Callable[..., Any]
A = AgentCode


@dataclass(frozen=True)
class FileOrder:
    """A `file` entry of the task list, read leniently (the official agent's `SendFileTaskInfo`)."""

    task_id: str
    name: str
    destination: str
    content: str  #: Base64
    signature: str  #: MD5 (hex) of `content`
    mode: str = ""
    owner: str = ""
    group: str = ""
    overwrite: bool = False
    content_type: str = ""
    timeout: int = 60
    malformed: str = ""  #: `key=value` of a field that cannot be read: the order is invalid

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> FileOrder:
        """KeyError/TypeError/ValueError if the entry has no usable taskID; other unreadable fields make it
        `malformed`."""
        task = entry["task"]
        task_id = task["taskID"]
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("no taskID")
        overwrite = task.get("overwrite", False)
        if isinstance(overwrite, str):
            overwrite = overwrite.strip().lower() == "true"
        malformed, timeout = "", 60
        try:
            timeout = int(task.get("timeout") or 60)
        except (TypeError, ValueError, OverflowError):
            malformed = f"timeout={task.get('timeout')!r}"
        return cls(
            task_id=task_id,
            name=str(task.get("name") or ""),
            destination=str(task.get("destination") or ""),
            content=str(task.get("content") or ""),
            signature=str(task.get("signature") or ""),
            mode=str(task.get("mode") or ""),
            owner=str(task.get("owner") or ""),
            group=str(task.get("group") or ""),
            overwrite=bool(overwrite),
            content_type=str(task.get("contentType") or ""),
            timeout=timeout,
            malformed=malformed,
        )


def temp_path(order: FileOrder) -> Path | None:
    """Where the order's content is written first (named after the task, so a crash's leftover can be
    found), or None when the order names no usable target."""
    name, directory = order.name, Path(order.destination or DEFAULT_DIR)
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return None
    if not directory.is_absolute() or "\x00" in str(directory):
        return None
    task = order.task_id
    if not _SAFE_ID.fullmatch(task):
        task = hashlib.sha256(task.encode()).hexdigest()[:32]
    return directory / f"{TEMP_PREFIX}{task}.tmp"  # short: the target's name may be 255 bytes already


def discard_temp(path: str | Path) -> bool:
    """Remove a temp file a write cut short left behind (only a name this module makes); True if removed."""
    temp = Path(path)
    if not (temp.name.startswith(TEMP_PREFIX) and temp.name.endswith(".tmp")):
        return False
    try:
        temp.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("cannot remove the leftover %s: %s", temp, exc)
        return False
    log.info("removed %s, left by a write cut short", temp)
    return True


def _ids(owner: str, group: str) -> tuple[int, int] | AgentCode:
    """The uid and gid to give the file (-1 = leave as created), or the code of an unknown name.

    As the official agent: no owner and no group, or root:root, leaves the file to the agent's user;
    otherwise a missing one defaults to root."""
    if (not owner and not group) or (owner == "root" and group == "root" and os.geteuid() != 0):
        return -1, -1
    try:
        uid = pwd.getpwnam(owner or "root").pw_uid
    except KeyError:
        return A.INVALID_UID
    try:
        gid = grp.getgrnam(group or "root").gr_gid
    except KeyError:
        return A.INVALID_GID
    return uid, gid


class _Refused(Exception):
    def __init__(self, code: AgentCode) -> None:
        super().__init__(code.name)
        self.code = code


def open_directory(directory: Path, *, no_follow: bool, task_id: str = "") -> int:
    """A descriptor of `directory` (absolute), opened one component at a time from `/`, each relative to the
    one before (openat), missing ones made on the way (mkdirat). With `no_follow`, no component may be a
    symbolic link (O_NOFOLLOW): a link anywhere in the path, planted before or during the walk, refuses the
    write (InvalidFilePath) instead of redirecting it. Raises _Refused with the result code."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if no_follow else 0)
    fd = os.open("/", flags)
    parts = directory.parts[1:]
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # made meanwhile: opened below, under the same rule
                    os.mkdir(part, 0o777, dir_fd=fd)  # (umask applies, as for mkdir -p)
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:  # (a component made but swapped for a link meanwhile fails above: refused too)
                if no_follow and _is_link(fd, part):
                    log.warning("file task %s: %s has a symbolic link at %s; refused", task_id, directory, part)
                    raise _Refused(A.INVALID_FILE_PATH) from None
                if isinstance(exc, NotADirectoryError):  # a file in the way: at the end, the path is wrong
                    raise _Refused(A.INVALID_FILE_PATH if last else A.CREATE_DIR_FAILED) from None
                raise
            os.close(fd)
            fd = child
    except _Refused:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        log.warning("file task %s: cannot open or create %s: %s", task_id, directory, exc)
        raise _Refused(A.CREATE_DIR_FAILED) from None
    return fd


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def write_file(order: FileOrder, *, no_follow: bool | None = None) -> AgentCode:
    """Write the file the order describes; the official agent's result code.

    `no_follow` (by default: when running as root) refuses a symbolic link anywhere in the target directory's
    path (InvalidFilePath): a root-owned write never goes through a link someone else may have planted. The
    file itself is never written through a link either way (a link in its place is replaced, with `overwrite`)."""
    name = order.name
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return A.INVALID_FILE_PATH
    if not order.content:
        return A.EMPTY_CONTENT
    directory = Path(order.destination or DEFAULT_DIR)
    if not directory.is_absolute() or "\x00" in str(directory):
        return A.INVALID_FILE_PATH
    try:
        data = base64.b64decode(order.content, validate=True)
    except (binascii.Error, ValueError):
        return A.INVALID_CONTENT
    digest = hashlib.md5(order.content.encode("ascii", "replace"), usedforsecurity=False).hexdigest()
    if digest != order.signature.strip().lower():
        return A.INVALID_SIGNATURE
    text = order.mode or "0644"
    if len(text) not in (3, 4) or any(c not in "01234567" for c in text):
        return A.INVALID_FILE_MODE
    mode = int(text, 8)
    ids = _ids(order.owner, order.group)
    if isinstance(ids, AgentCode):
        return ids
    tmp = temp_path(order)
    assert tmp is not None  # the name and the directory were checked above
    try:
        dir_fd = open_directory(directory, no_follow=os.geteuid() == 0 if no_follow is None else no_follow,
                                task_id=order.task_id)
    except _Refused as refused:
        return refused.code
    try:
        existing = _lstat(dir_fd, name)
        if existing is not None and not order.overwrite:
            return A.FILE_ALREADY_EXIST
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            return A.FILE_CREATE_FAIL
        return _write(dir_fd, directory / name, tmp.name, data, mode, ids, order.overwrite)
    finally:
        os.close(dir_fd)


def _write(dir_fd: int, target: Path, tmp: str, data: bytes, mode: int, ids: tuple[int, int],
           overwrite: bool) -> AgentCode:
    """Write `data` to `tmp` and move it to `target`'s name, every name relative to the directory `dir_fd`."""
    name = target.name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)  # a leftover of an earlier attempt
        log.info("removed %s, left by a write cut short", target.parent / tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600 & mode,
                     dir_fd=dir_fd)
    except OSError as exc:
        log.warning("cannot create %s: %s", target.parent / tmp, exc)
        return A.FILE_CREATE_FAIL
    try:
        with os.fdopen(fd, "wb") as handle:
            if ids != (-1, -1):
                try:
                    os.fchown(handle.fileno(), *ids)
                except OSError:
                    return A.CHOWN_ERROR
            try:
                os.fchmod(handle.fileno(), mode & 0o600)  # owner-only while the content is incomplete
            except OSError:
                return A.CHMOD_ERROR
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            try:
                os.fchmod(handle.fileno(), mode)  # after chown, which clears set-id bits, and after the fsync
            except OSError:
                return A.CHMOD_ERROR
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # a link in the way is replaced
        else:
            try:  # fails if the name was taken since we looked
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                return A.FILE_ALREADY_EXIST
    except OSError as exc:
        log.warning("cannot write %s: %s", target, exc)
        return A.FILE_CREATE_FAIL
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
    return A.SUCCESS


def report(order: FileOrder, code: AgentCode) -> tuple[str, dict[str, str]]:
    """The report of a result, as the official agent sends it: (kind, query)."""
    if code.finished:
        status = "Success" if code is A.SUCCESS else "Failed"
        query = {"taskId": order.task_id, "status": status, "taskType": "sendfile", "errorcode": str(int(code))}
        return "finish", query
    value = {
        A.INVALID_FILE_PATH: order.name,
        A.FILE_ALREADY_EXIST: order.name,
        A.INVALID_SIGNATURE: order.signature,
        A.INVALID_FILE_MODE: order.mode,
        A.INVALID_GID: order.group,
        A.INVALID_UID: order.owner,
    }.get(code, "")
    return "invalid", {
        "taskId": order.task_id,
        "taskType": "sendfile",
        "param": INVALID_PARAM.get(code, "InvalidFileContent"),
        "value": value[:255],
    }


def handle(entry: Mapping[str, Any], journal: Journal, put: Put) -> AgentCode | None:
    """Write one `file` entry and spool its report, at most once per task (None: done before)."""
    order = FileOrder.parse(entry)
    if not journal.claim(order.task_id, JOURNAL_VERSION):
        return None
    if order.malformed:  # once: the journal keeps it from being reported again while it stays listed
        log.warning("file task %s: unreadable %s; reported invalid", order.task_id, order.malformed)
        query = {"taskId": order.task_id, "taskType": "sendfile", "param": INVALID_PARAM[A.INVALID_CONTENT],
                 "value": order.malformed[:255]}
        put("invalid", query, b"", final=True)
        journal.done(order.task_id, JOURNAL_VERSION, "invalid")
        return A.INVALID_CONTENT
    temp = temp_path(order)
    # durable BEFORE the file is touched, with the temp file to remove if the agent dies mid-write
    journal.start(order.task_id, JOURNAL_VERSION, time.time(), temp=str(temp or ""))
    try:
        code = write_file(order)
    except Exception:  # whatever went wrong, the server hears of it now rather than at the deadline
        log.exception("file task %s: the write failed", order.task_id)
        code = A.FILE_CREATE_FAIL
    kind, query = report(order, code)
    put(kind, query, b"", final=True)
    journal.done(order.task_id, JOURNAL_VERSION, kind)
    log.info("file task %s: %s/%s -> %s (%d)", order.task_id, order.destination, order.name, kind, int(code))
    return code

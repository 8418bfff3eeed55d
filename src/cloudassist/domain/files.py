"""SendFile: the rules of a file-sending task, its per-instance outcomes and the agent's error codes.

A file task (`f-…`) carries the file inline; each target instance gets one record that goes
Pending → Running (its agent fetched the file) → Success | Failed | Invalid | Error | Timeout | Aborted.
The task's overall status is the roll-up of `domain.statuses` (PartialFailed when some succeeded).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Final

from cloudassist.domain.statuses import InvocationStatus, TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError

MAX_NAME: Final = 255
MAX_DESCRIPTION: Final = 512
MAX_TARGET_DIR: Final = 255
MAX_OWNER: Final = 64
#: Content may be at most this many characters once Base64-encoded (reference §6).
MAX_CONTENT_BASE64: Final = 32 * 1024
MAX_INSTANCES: Final = 50
DEFAULT_TIMEOUT: Final = 60
MIN_TIMEOUT: Final = 10
DEFAULT_MODE: Final = "0644"
DEFAULT_OWNER: Final = "root"
#: File-sending records are kept six weeks (reference §5.7).
RETENTION: Final = timedelta(weeks=6)
_MODE = re.compile(r"[0-7]{3,4}")

S = InvocationStatus
#: The statuses a file record can take (reference §5.5); the task's roll-up adds PartialFailed.
FILE_STATUSES: Final = frozenset({S.PENDING, S.RUNNING, S.SUCCESS, S.FAILED, S.INVALID, S.ABORTED, S.ERROR, S.TIMEOUT})
#: InvocationStatus values DescribeSendFileResults filters by: the overall ones (reference A.12).
TASK_FILTER: Final = frozenset(
    {TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.PARTIAL_FAILED}
)


class ContentType(StrEnum):
    PLAIN_TEXT = "PlainText"
    BASE64 = "Base64"


class FileErrorCode(StrEnum):
    """The per-instance `ErrorCode` values of DescribeSendFileResults (reference §5.5)."""

    NONE = ""
    INSTANCE_NOT_EXISTS = "InstanceNotExists"
    INSTANCE_RELEASED = "InstanceReleased"
    INSTANCE_NOT_RUNNING = "InstanceNotRunning"
    ACCOUNT_NOT_EXISTS = "AccountNotExists"
    CLIENT_NOT_RUNNING = "ClientNotRunning"
    CLIENT_NOT_RESPONSE = "ClientNotResponse"
    CLIENT_IS_UPGRADING = "ClientIsUpgrading"
    CLIENT_NEED_UPGRADE = "ClientNeedUpgrade"
    DELIVERY_TIMEOUT = "DeliveryTimeout"
    FILE_CREATE_FAIL = "FileCreateFail"
    FILE_ALREADY_EXISTS = "FileAlreadyExists"
    FILE_CONTENT_INVALID = "FileContentInvalid"
    FILE_NAME_INVALID = "FileNameInvalid"
    FILE_PATH_INVALID = "FilePathInvalid"
    FILE_AUTHORITY_INVALID = "FileAuthorityInvalid"
    USER_GROUP_NOT_EXISTS = "UserGroupNotExists"


F = FileErrorCode


@dataclass(frozen=True)
class Outcome:
    """How one instance's record ends: its status, ErrorCode and the documented ErrorInfo text."""

    status: InvocationStatus
    code: FileErrorCode = F.NONE
    info: str = ""


SUCCESS: Final = Outcome(S.SUCCESS)
CLIENT_NOT_RUNNING: Final = Outcome(
    S.ABORTED, F.CLIENT_NOT_RUNNING, "the aliyun service is not running on the instance"
)
CLIENT_NOT_RESPONSE: Final = Outcome(
    S.ABORTED, F.CLIENT_NOT_RESPONSE, "the aliyun service in the instance does not response"
)
INSTANCE_RELEASED: Final = Outcome(S.ERROR, F.INSTANCE_RELEASED, "the specified instance has been released")
DELIVERY_TIMEOUT: Final = Outcome(S.TIMEOUT, F.DELIVERY_TIMEOUT, "the command delivery has been timeout")
CREATE_FAILED: Final = Outcome(S.FAILED, F.FILE_CREATE_FAIL, "the file creation is failed due to unknown error")
#: A run the agent was interrupted in (it restarted mid-write and, by its journal, never writes twice).
INTERRUPTED: Final = Outcome(S.ERROR, F.FILE_CREATE_FAIL, "the file creation is failed due to unknown error")


class AgentCode(IntEnum):
    """The official agent's send-file result codes (`taskengine/sendfile.go`), value for value."""

    SUCCESS = 0
    FILE_CREATE_FAIL = 1
    CHOWN_ERROR = 2
    CHMOD_ERROR = 3
    CREATE_DIR_FAILED = 4
    INVALID_FILE_PATH = 10
    FILE_ALREADY_EXIST = 11
    EMPTY_CONTENT = 12
    INVALID_CONTENT = 13
    INVALID_CONTENT_TYPE = 14
    INVALID_FILE_TYPE = 15
    INVALID_SIGNATURE = 16
    INVALID_FILE_MODE = 17
    INVALID_GID = 18
    INVALID_UID = 19

    @property
    def finished(self) -> bool:
        """Codes up to CreateDirFailed are reported by `task/finish`; the rest by `task/invalid`."""
        return self <= AgentCode.CREATE_DIR_FAILED


A = AgentCode
#: The `param` of a `task/invalid?taskType=sendfile` report for each code (the official agent's keys).
INVALID_PARAM: Final[dict[AgentCode, str]] = {
    A.INVALID_FILE_PATH: "FileNameInvalid",
    A.FILE_ALREADY_EXIST: "FileExist",
    A.EMPTY_CONTENT: "EmptyFile",
    A.INVALID_CONTENT: "InvalidFileContent",
    A.INVALID_CONTENT_TYPE: "InvalidContentType",
    A.INVALID_FILE_TYPE: "InvalidFileType",
    A.INVALID_SIGNATURE: "InvalidSignature",
    A.INVALID_FILE_MODE: "InvalidFileMode",
    A.INVALID_GID: "FileGroupNotExist",
    A.INVALID_UID: "FileOwnerNotExist",
}

_FINISH_OUTCOMES: Final[dict[int, Outcome]] = {
    A.FILE_CREATE_FAIL: CREATE_FAILED,
    A.CHOWN_ERROR: Outcome(S.FAILED, F.FILE_AUTHORITY_INVALID, "the authority of file is invalid"),
    A.CHMOD_ERROR: Outcome(S.FAILED, F.FILE_AUTHORITY_INVALID, "the authority of file is invalid"),
    A.CREATE_DIR_FAILED: Outcome(S.FAILED, F.FILE_PATH_INVALID, "File path is invalid"),
}
_CONTENT_INVALID: Final = Outcome(S.INVALID, F.FILE_CONTENT_INVALID, "the content of file is invalid")
_INVALID_OUTCOMES: Final[dict[str, Outcome]] = {
    "filenameinvalid": Outcome(S.INVALID, F.FILE_NAME_INVALID, "File name is invalid"),
    "fileexist": Outcome(S.INVALID, F.FILE_ALREADY_EXISTS, "File already exists"),
    "emptyfile": Outcome(S.INVALID, F.FILE_CONTENT_INVALID, "File content is empty"),
    "invalidfilecontent": _CONTENT_INVALID,
    "invalidcontenttype": _CONTENT_INVALID,
    "invalidfiletype": _CONTENT_INVALID,
    "invalidsignature": _CONTENT_INVALID,
    "invalidfilemode": Outcome(S.INVALID, F.FILE_AUTHORITY_INVALID, "Mode is invalid"),
    "filegroupnotexist": Outcome(S.INVALID, F.USER_GROUP_NOT_EXISTS, "Group not exists"),
    "fileownernotexist": Outcome(S.INVALID, F.ACCOUNT_NOT_EXISTS, "Owner not exists"),
}


def finish_outcome(status: str, error_code: int | None) -> Outcome:
    """A `task/finish?taskType=sendfile&status=…&errorcode=N` report as the record's outcome."""
    if error_code in (None, 0) and status.strip().lower() != "failed":
        return SUCCESS
    return _FINISH_OUTCOMES.get(int(error_code or A.FILE_CREATE_FAIL), CREATE_FAILED)


def invalid_outcome(param: str) -> Outcome:
    """A `task/invalid?taskType=sendfile&param=…` report as the record's outcome."""
    return _INVALID_OUTCOMES.get(param.strip().lower(), _CONTENT_INVALID)


def signature(encoded: str) -> str:
    """The agent's integrity check: the MD5 (hex) of the Base64 content text."""
    return hashlib.md5(encoded.encode("ascii"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class FileSpec:
    """What a SendFile call asks for, checked (`check_spec`) and with its defaults filled in."""

    name: str
    target_dir: str
    content: bytes
    content_type: ContentType = ContentType.PLAIN_TEXT
    description: str = ""
    file_owner: str = DEFAULT_OWNER
    file_group: str = DEFAULT_OWNER
    file_mode: str = DEFAULT_MODE
    overwrite: bool = False
    timeout: int = DEFAULT_TIMEOUT
    resource_group_id: str = ""

    @property
    def encoded(self) -> str:
        return base64.b64encode(self.content).decode("ascii")


def parse_content_type(value: str | None) -> ContentType:
    if not value:
        return ContentType.PLAIN_TEXT
    for member in ContentType:
        if member.value.lower() == value.strip().lower():
            return member
    raise ApiError.of("FileContentType.Invalid")


def decode(content: str, content_type: ContentType) -> bytes:
    """The file's bytes from `Content`; at most 32 KB once Base64-encoded, and Base64 must hold some."""
    if content_type is ContentType.BASE64:
        if len(content.strip()) > MAX_CONTENT_BASE64:
            raise ApiError.of("FileSize.ExceedLimit")
        try:
            raw = base64.b64decode(content.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError.of("FileContent.DecodeError") from None
        if not raw:
            raise ApiError.of("FileContent.DecodeError")  # nothing to decode: no file, not an empty one
    else:
        raw = content.encode("utf-8", "surrogateescape")
    if len(base64.b64encode(raw)) > MAX_CONTENT_BASE64:
        raise ApiError.of("FileSize.ExceedLimit")
    return raw


def effective_timeout(value: int | None) -> int:
    """Timeout: 60 by default; below 10 it is silently raised to 10 (reference §5.5)."""
    if value is None:
        return DEFAULT_TIMEOUT
    return max(value, MIN_TIMEOUT)


def check_spec(spec: FileSpec, max_timeout: int) -> None:
    """The documented limits of SendFile's parameters, with their documented errors (reference §7)."""
    if len(spec.name) > MAX_NAME:
        raise ApiError.of("FileName.ExceedLimit")
    if not spec.name.strip() or "\x00" in spec.name:
        raise ApiError.invalid("Name")
    if len(spec.description) > MAX_DESCRIPTION:
        raise ApiError.of("FileDesc.ExceedLimit")
    target = spec.target_dir
    if len(target) > MAX_TARGET_DIR or "\x00" in target or not (target.startswith("/") or _windows_absolute(target)):
        raise ApiError.of("FileTargetDir.Invalid")
    if not _MODE.fullmatch(spec.file_mode):
        raise ApiError.of("FileMode.Invalid")
    for value, which in ((spec.file_owner, "FileOwner"), (spec.file_group, "FileGroup")):
        if not value or len(value) > MAX_OWNER or not value.isprintable() or any(c in value for c in ":/ "):
            raise ApiError.invalid(which)
    if spec.timeout > max_timeout:
        raise ApiError.of("InvalidTimeout.ExceedLimit")


def _windows_absolute(path: str) -> bool:
    return len(path) >= 3 and path[0].isalpha() and path[1] == ":" and path[2] in "\\/"


@dataclass(frozen=True)
class FileResult:
    """One instance's record of a file task."""

    result_id: int
    invoke_id: str
    instance_id: str
    status: InvocationStatus
    error_code: FileErrorCode
    error_info: str
    creation_time: datetime
    update_time: datetime
    start_time: datetime | None = None
    finish_time: datetime | None = None
    delivered_time: datetime | None = None


@dataclass(frozen=True)
class FileTask:
    """A file-sending task and, when listed, its records and tags."""

    invoke_id: str
    account_id: int
    region_id: str
    spec: FileSpec
    creation_time: datetime
    status: TaskStatus
    results: tuple[FileResult, ...] = ()
    tags: tuple[Tag, ...] = field(default=())

    @property
    def deadline(self) -> timedelta:
        return timedelta(seconds=self.spec.timeout)

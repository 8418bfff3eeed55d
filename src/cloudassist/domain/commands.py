"""Commands: types, content encodings, size limits and the `{{name}}` custom parameters."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from cloudassist.errors import ApiError


class CommandType(StrEnum):
    """What interpreter a command's content is for."""

    RUN_SHELL_SCRIPT = "RunShellScript"  #: /bin/sh on Linux
    RUN_BAT_SCRIPT = "RunBatScript"  #: cmd.exe on Windows
    RUN_POWERSHELL_SCRIPT = "RunPowerShellScript"  #: PowerShell on Windows

    @property
    def os_type(self) -> str:
        return "linux" if self is CommandType.RUN_SHELL_SCRIPT else "windows"


class ContentEncoding(StrEnum):
    PLAIN_TEXT = "PlainText"
    BASE64 = "Base64"


MAX_NAME: Final = 128
MAX_DESCRIPTION: Final = 512
MAX_WORKING_DIR: Final = 200
MAX_USERNAME: Final = 255
MAX_LAUNCHER: Final = 1024
#: CommandContent may be at most this many bytes once Base64-encoded (reference §0 fact 9: accept 24 KB everywhere).
MAX_CONTENT_BASE64: Final = 24 * 1024
MAX_CUSTOM_PARAMETERS: Final = 20
MAX_PARAMETER_NAME: Final = 64
MIN_TIMEOUT: Final = 10
DEFAULT_TIMEOUT: Final = 60


@dataclass(frozen=True)
class Command:
    """A command as stored: its content is kept decoded (raw bytes)."""

    command_id: str
    account_id: int
    region_id: str
    name: str
    description: str
    type: CommandType
    content: bytes
    working_dir: str
    timeout: int
    enable_parameter: bool
    launcher: str
    resource_group_id: str
    creation_time: datetime
    invoke_times: int
    #: False for the hidden command RunCommand makes when KeepCommand is false.
    kept: bool = True

    @property
    def parameter_names(self) -> list[str]:
        return parameter_names(self.content) if self.enable_parameter else []


def parse_encoding(value: str | None, default: ContentEncoding) -> ContentEncoding:
    """A ContentEncoding value, case-insensitive; anything else falls back to `default`, as ECS does."""
    if value:
        for member in ContentEncoding:
            if member.value.lower() == value.strip().lower():
                return member
    return default


def parse_type(value: str, code: str = "InvalidCmdType.NotFound") -> CommandType:
    try:
        return CommandType(value)
    except ValueError:
        raise ApiError.of(code) from None


def decode_content(value: str, encoding: ContentEncoding) -> bytes:
    """The raw bytes of a CommandContent, checked against the size limit."""
    if encoding is ContentEncoding.PLAIN_TEXT:
        raw = value.encode("utf-8", "surrogateescape")
    else:
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError.of("CmdContent.DecodeError") from None
    check_content_size(raw)
    return raw


def check_content_size(raw: bytes) -> None:
    if (size := len(base64.b64encode(raw))) > MAX_CONTENT_BASE64:
        raise ApiError.of("CmdContent.ExceedLimit").because(
            f"CommandContent is {size} bytes in Base64; at most {MAX_CONTENT_BASE64} (24 KB)."
        )


def encode_content(raw: bytes, encoding: ContentEncoding) -> str:
    """Content or output as the response wants it: Base64, or text (invalid UTF-8 replaced)."""
    if encoding is ContentEncoding.BASE64:
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8", "replace")


MAX_RESOURCE_GROUP_ID: Final = 64
_CONTAINER_ID = re.compile(r"^(?:(?:docker|containerd|cri-o)://)?[0-9a-fA-F]{64}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def check_resource_group(value: str | None) -> None:
    if value and (len(value) > MAX_RESOURCE_GROUP_ID or not value.isprintable()):
        raise ApiError.of("InvalidResourceGroup.NotFound")


def check_container(container_id: str | None, container_name: str | None) -> None:
    """ContainerId is 64 hex digits, optionally prefixed docker://, containerd:// or cri-o://."""
    if container_id and not _CONTAINER_ID.match(container_id):
        raise ApiError.of("InvalidContainerId.Malformed")
    if container_name and not _CONTAINER_NAME.match(container_name):
        raise ApiError.of("InvalidContainerName.Malformed")


def check_lengths(
    *,
    name: str | None = None,
    description: str | None = None,
    working_dir: str | None = None,
    launcher: str | None = None,
    username: str | None = None,
) -> None:
    """The documented length limits of a command's text attributes."""
    if name is not None and len(name) > MAX_NAME:
        raise ApiError.of("CmdName.ExceedLimit").because(f"Name is {len(name)} characters; at most {MAX_NAME}.")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ApiError.of("CmdDesc.ExceedLimit").because(
            f"Description is {len(description)} characters; at most {MAX_DESCRIPTION}."
        )
    if working_dir is not None and (len(working_dir) > MAX_WORKING_DIR or "\x00" in working_dir):
        raise ApiError.of("InvalidParameter.WorkingDir")
    if launcher is not None and len(launcher.encode()) > MAX_LAUNCHER:
        raise ApiError.of("InvalidLauncher.LengthLimitExceeded")
    if username is not None and len(username) > MAX_USERNAME:
        raise ApiError.of("Username.ExceedLimit").because(
            f"Username is {len(username)} characters; at most {MAX_USERNAME}."
        )


def check_timeout(timeout: int, maximum: int) -> None:
    if timeout < MIN_TIMEOUT:
        raise ApiError.invalid("Timeout", f"The value must be at least {MIN_TIMEOUT} seconds.")
    if timeout > maximum:
        raise ApiError.of("InvalidTimeout.ExceedLimit").because(f"Timeout {timeout} s; at most {maximum} s.")


_PLACEHOLDER = re.compile(rb"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
BUILT_IN_PREFIX: Final = "acs::"


def parameter_names(content: bytes) -> list[str]:
    """The custom parameter names used in `content`, in order of first use, without built-ins."""
    seen: dict[str, str] = {}
    for match in _PLACEHOLDER.finditer(content):
        name = match.group(1).decode("utf-8", "replace")
        if name.lower().startswith(BUILT_IN_PREFIX):
            continue
        seen.setdefault(name.lower(), name)
    return list(seen.values())


def check_parameter_definitions(content: bytes) -> None:
    """The rules for `{{name}}` placeholders when EnableParameter is true (CreateCommand errors)."""
    names = []
    for match in _PLACEHOLDER.finditer(content):
        name = match.group(1).decode("utf-8", "replace")
        if not name:
            raise ApiError.of("CmdParam.EmptyKey")
        if name.lower().startswith(BUILT_IN_PREFIX):
            continue
        if not _NAME.match(name):
            raise ApiError.of("CmdParam.InvalidParamName")
        if len(name.encode()) > MAX_PARAMETER_NAME:
            raise ApiError.of("CmdParamName.ExceedLimit")
        names.append(name.lower())
    if len(set(names)) > MAX_CUSTOM_PARAMETERS:
        raise ApiError.of("CmdParamCount.ExceedLimit")


MAX_PASSED_PARAMETERS: Final = 10


def check_passed_parameters(parameters: dict[str, object], defined: list[str], enabled: bool) -> dict[str, str]:
    """Validate the `Parameters` of a run against the command's definitions; returns lower-cased keys."""
    if not parameters:
        return {}
    if not enabled:
        raise ApiError.of("Parameter.Disabled")
    if len(parameters) > MAX_PASSED_PARAMETERS:
        raise ApiError.of("ParameterCount.ExceedLimit")
    allowed = {name.lower() for name in defined}
    result: dict[str, str] = {}
    for key, value in parameters.items():
        if not key:
            raise ApiError.of("InvalidParameter.Parameters")
        if len(key) > MAX_PARAMETER_NAME:
            raise ApiError.of("ParameterKey.ExceedLimit")
        if not isinstance(value, str):
            raise ApiError.of("ParameterType.NotSupported")
        if key.lower() in result:
            raise ApiError.of("ParameterKey.Duplicate")
        if key.lower() not in allowed:
            raise ApiError.of("Parameter.NotMatched")
        result[key.lower()] = value
    return result


def render(content: bytes, values: dict[str, str]) -> bytes:
    """Replace custom `{{name}}` placeholders with their values; built-ins stay for the agent to fill."""

    def substitute(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode("utf-8", "replace")
        if name.lower().startswith(BUILT_IN_PREFIX):
            return match.group(0)
        return values.get(name.lower(), "").encode()

    return _PLACEHOLDER.sub(substitute, content)

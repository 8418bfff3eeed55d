"""Session Manager sessions (`s-…`) and their connections: the records, StartTerminalSession's rules, and the
states and closing reasons DescribeTerminalSessions reports.

A session is what StartTerminalSession created: the instances it may reach, a port or a shell, and the
WebSocketUrl's token. Each client websocket opened with that URL is one *connection* (one agent channel):

    Connecting --agent dials--> Connected --either side ends--> Terminated
         \\--------- agent never dials, offline, refused -------> Failed
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cloudassist.errors import ApiError

#: How long a WebSocketUrl may be used after StartTerminalSession (reference §1).
URL_VALIDITY: Final = timedelta(minutes=10)
MAX_INSTANCES: Final = 10
MAX_COMMAND_LINE: Final = 512
MAX_TARGET_SERVER: Final = 128
MAX_PASSWORD_NAME: Final = 255
MAX_USERNAME: Final = 32
#: What the agent passes through `sh -c id <name>` (session-protocol.md §9.13): nothing a shell would read.
_USERNAME: Final = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_TARGET_SERVER: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:_-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
CONNECTION_TYPES: Final = ("Internet", "Intranet")

CONNECTING: Final = "Connecting"
CONNECTED: Final = "Connected"
TERMINATED: Final = "Terminated"
FAILED: Final = "Failed"
OPEN_STATES: Final = (CONNECTING, CONNECTED)

# ClosedReason values: the documented ones, then the relay's own (documented in docs/differences.md)
INSTANCE_NOT_EXISTS: Final = "InstanceNotExists"
DELIVERY_TIMEOUT: Final = "DeliveryTimeout"
AGENT_NOT_ONLINE: Final = "AgentNotOnline"
MESSAGE_FORMAT_INVALID: Final = "MessageFormatInvalid"
AGENT_SOCKET_CLOSED: Final = "AgentSocketClosed"
CLIENT_CLOSED: Final = "ClientClosed"
IDLE_TIMEOUT: Final = "IdleTimeout"
FLOW_EXCEED_LIMIT: Final = "FlowExceedLimit"
SESSION_ENDED: Final = "SessionEnded"
CONNECTION_LIMIT: Final = "ConnectionLimitExceeded"
SERVER_STOPPED: Final = "ServerStopped"


@dataclass(frozen=True)
class SessionSpec:
    """StartTerminalSession's parameters, checked by `check_spec`."""

    instance_ids: tuple[str, ...]
    port_number: int | None = None
    target_server: str = ""
    command_line: str = ""
    username: str = ""
    password_name: str = ""
    connection_type: str = "Internet"

    @property
    def port_forward(self) -> bool:
        return self.port_number is not None


@dataclass(frozen=True)
class TerminalSession:
    session_id: str
    account_id: int
    region_id: str
    spec: SessionSpec
    access_key_id: str
    client_ip: str
    creation_time: datetime
    token_expires: datetime
    token_used_time: datetime | None = None
    ended_time: datetime | None = None


@dataclass(frozen=True)
class Connection:
    """One client websocket of a session and the agent channel serving it."""

    channel_id: str
    session_id: str
    account_id: int
    instance_id: str
    status: str
    client_ip: str
    start_time: datetime
    connected_time: datetime | None = None
    end_time: datetime | None = None
    closed_reason: str = ""
    failed_detail: str = ""
    agent_status: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    #: Whether the connection's transcript was kept (the account's or the server's setting).
    transcript_kept: bool = False

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATES


def check_spec(raw: dict[str, Any]) -> SessionSpec:
    """StartTerminalSession's parameters as a spec, or the documented error of the first rule they break.

    `raw` holds InstanceId (list), PortNumber (int or None), TargetServer, CommandLine, Username,
    PasswordName, ConnectionType (str or None) and EncryptionOptions (dict or None)."""
    instance_ids = tuple(dict.fromkeys(raw["InstanceId"] or ()))
    if not instance_ids:
        raise ApiError.missing("InstanceId")
    if len(instance_ids) > MAX_INSTANCES:
        raise ApiError.of("InstanceIds.ExceedLimit")
    port = raw.get("PortNumber")
    if port is not None and not 1 <= port <= 65535:
        raise ApiError.of("PortNumber.Invalid")
    target = raw.get("TargetServer") or ""
    command = raw.get("CommandLine") or ""
    if command and (port is not None or target):
        raise ApiError.of("InvalidCommandLine.Conflict")
    if target and port is None:
        raise ApiError.of("InvalidTargetServer.MissingPortNumber")
    if len(command) > MAX_COMMAND_LINE:
        raise ApiError.of("InvalidCommandLine.LengthLimitExceeded")
    if len(target) > MAX_TARGET_SERVER:
        raise ApiError.of("InvalidTargetServer.LengthLimitExceeded")
    if target and not _TARGET_SERVER.fullmatch(target):
        raise ApiError.invalid("TargetServer", "It must be a host name or an IP address.")
    if (target or command) and len(instance_ids) > 1:
        raise ApiError.of("InvalidInstanceIds.CountLimitExceeded")
    username = raw.get("Username") or ""
    if len(username) > MAX_USERNAME:
        raise ApiError.of("Username.ExceedLimit")
    if username and not _USERNAME.fullmatch(username):
        raise ApiError.invalid("Username", "It must match ^[a-z_][a-z0-9_.-]{0,31}$.")
    password_name = raw.get("PasswordName") or ""
    if len(password_name) > MAX_PASSWORD_NAME:
        raise ApiError.of("InvalidPasswordName.LengthLimitExceeded")
    connection_type = raw.get("ConnectionType") or "Internet"
    if connection_type not in CONNECTION_TYPES:
        raise ApiError.of("InvalidParameter.ConnectionType")
    encryption = raw.get("EncryptionOptions") or {}
    if encryption.get("Enabled") in (True, "true", "True"):
        raise ApiError.invalid("EncryptionOptions", "Session encryption is not supported by this server.")
    if "\n" in command or "\x00" in command:
        raise ApiError.invalid("CommandLine", "It must be one line.")
    return SessionSpec(instance_ids, port, target, command, username, password_name, connection_type)


def closed_reason_of(errorcode: str) -> tuple[str, str, str]:
    """(Status, ClosedReason, FailedDetail) of a connection whose agent reported `errorcode` on session/status:
    a clean end (Ok, Notified, Timeout) is Terminated by AgentSocketClosed; anything else Failed, with the code."""
    if errorcode in ("Ok", "Notified", "Timeout", ""):
        return TERMINATED, AGENT_SOCKET_CLOSED, ""
    return FAILED, AGENT_SOCKET_CLOSED, errorcode[:255]

"""StartTerminalSession, DescribeTerminalSessions, EndTerminalSession (reference A.18-A.20), and
DescribeUserBusinessBehavior, which the official session CLI calls before every command."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.clock import iso
from cloudassist.domain.paging import encode_token, parse_page
from cloudassist.domain.sessions import Connection, TerminalSession, check_spec
from cloudassist.errors import ApiError
from cloudassist.services.assistant_settings import AssistantSettingsService
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.sessions import SessionService
from cloudassist.store.sessions import SessionFilter

#: DescribeTerminalSessions' MaxResults goes to 100 (reference A.19).
MAX_RESULTS: Final = 100
#: The path of the client websocket on the API port (api/session/client.py).
SESSION_PATH: Final = "/session"


@action(
    "StartTerminalSession",
    Param("InstanceId", "list", required=True),
    Param("PortNumber", "int", error="PortNumber.Invalid"),
    Param("TargetServer"),
    Param("CommandLine"),
    Param("Username"),
    Param("PasswordName"),
    Param("ConnectionType"),
    Param("EncryptionOptions", "json"),
    Param("ClientToken"),
)
async def start_terminal_session(call: Call) -> dict[str, Any]:
    spec = check_spec(call.params)
    started = await SessionService(call.ctx).start(
        call.scope,
        spec,
        access_key_id=call.access_key_id,
        client_ip=call.address,
        idempotency=Idempotency.of("StartTerminalSession", call["ClientToken"], call.params),
    )
    session_id = started.session.session_id
    query = urlencode({"sessionId": session_id, "token": started.token})
    return {
        "SessionId": session_id,
        "SecurityToken": started.token,
        "WebSocketUrl": f"{session_url(call)}?{query}",
    }


def session_url(call: Call) -> str:
    """The client websocket's base URL: the operator's `session_url`, else this API's own host."""
    configured = call.ctx.settings.session_url
    if configured:
        return configured
    host = call.host if call.host and all(c.isalnum() or c in ".-:[]" for c in call.host) else call.ctx.settings.listen
    return f"ws://{host}{SESSION_PATH}"


@action(
    "DescribeTerminalSessions",
    Param("InstanceId"),
    Param("SessionId"),
    Param("NextToken"),
    Param("MaxResults", "int", error="InvalidParameter.MaxResults"),
)
async def describe_terminal_sessions(call: Call) -> dict[str, Any]:
    page = parse_page(None, None, call["NextToken"], call["MaxResults"], paging_status=400, max_size=MAX_RESULTS)
    f = SessionFilter(call.scope.account_id, call.scope.region_id, call["SessionId"], call["InstanceId"])
    found = await SessionService(call.ctx).describe(f, page)
    return {
        "Sessions": {"Session": [session_shape(s, c) for s, c in found.sessions]},
        "NextToken": encode_token(str(found.next_offset)) if found.next_offset is not None else "",
    }


def session_shape(s: TerminalSession, connections: list[Connection]) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "SessionId": s.session_id,
        "CreationTime": iso(s.creation_time),
        "ClientIP": s.client_ip,
        "IdentityType": "Account",
        "PrincipalId": s.access_key_id,
        "Username": s.spec.username,
        "TargetServer": s.spec.target_server,
        "Connections": {"Connection": [connection_shape(c) for c in connections]},
    }
    if s.spec.port_number is not None:
        shape["PortNumber"] = s.spec.port_number
    return shape


def connection_shape(c: Connection) -> dict[str, Any]:
    return {
        "InstanceId": c.instance_id,
        "Status": c.status,
        "StartTime": iso(c.start_time),
        "EndTime": iso(c.end_time),
        "ClosedReason": c.closed_reason,
        "FailedDetail": c.failed_detail,
    }


@action("EndTerminalSession", Param("SessionId", required=True))
async def end_terminal_session(call: Call) -> dict[str, Any]:
    await SessionService(call.ctx).end(call.scope, call["SessionId"])
    return {}


@action("DescribeUserBusinessBehavior", Param("statusKey", required=True))
async def describe_user_business_behavior(call: Call) -> dict[str, Any]:
    """`statusKey=sessionManagerStatus`: `enabled` or `disabled`, the account's Session Manager switch."""
    if call["statusKey"] != "sessionManagerStatus":
        raise ApiError.invalid("statusKey", "Only sessionManagerStatus is known.")
    enabled = await AssistantSettingsService(call.ctx).session_manager_enabled(call.scope.account_id)
    return {"StatusValue": "enabled" if enabled else "disabled"}

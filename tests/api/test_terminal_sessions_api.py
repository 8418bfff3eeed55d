"""StartTerminalSession, DescribeTerminalSessions, EndTerminalSession and DescribeUserBusinessBehavior in-process:
the documented rules with their codes, the URL and its token, ClientToken, and ending a session."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from apiwire import LINUX_1, LINUX_2, REGION, Api, Reply, ServerLog, seed_instances

from cloudassist.api.app import create_app
from cloudassist.services.access import AccessService
from cloudassist.services.context import Context
from cloudassist.services.sessions import Refused, SessionService
from cloudassist.testing import FixedClock, sign_v1


async def test_start_returns_a_url_on_this_server_with_its_token(api: Api) -> None:
    """The WebSocketUrl is ws://<Host>/session?sessionId=…&token=…, the token equal to SecurityToken."""
    body = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    url = urlsplit(body["WebSocketUrl"])
    assert (url.scheme, url.netloc, url.path) == ("ws", "test", "/session")
    assert parse_qs(url.query) == {"sessionId": [body["SessionId"]], "token": [body["SecurityToken"]]}
    assert body["SessionId"].startswith("s-")


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"InstanceId.1": LINUX_1, "PortNumber": "0"}, "PortNumber.Invalid", 400),
        ({"InstanceId.1": LINUX_1, "PortNumber": "x"}, "PortNumber.Invalid", 400),
        ({"InstanceId.1": LINUX_1, "CommandLine": "top", "PortNumber": "22"}, "InvalidCommandLine.Conflict", 403),
        ({"InstanceId.1": LINUX_1, "TargetServer": "db"}, "InvalidTargetServer.MissingPortNumber", 403),
        ({"InstanceId.1": LINUX_1, "CommandLine": "x" * 513}, "InvalidCommandLine.LengthLimitExceeded", 403),
        ({"InstanceId.1": LINUX_1, "PortNumber": "1", "TargetServer": "a" * 129},
         "InvalidTargetServer.LengthLimitExceeded", 403),
        ({"InstanceId.1": LINUX_1, "InstanceId.2": LINUX_2, "CommandLine": "top"},
         "InvalidInstanceIds.CountLimitExceeded", 403),
        ({"InstanceId.1": LINUX_1, "Username": "u" * 33}, "Username.ExceedLimit", 403),
        ({"InstanceId.1": LINUX_1, "Username": "a;reboot"}, "InvalidParameter.Username", 400),
        ({"InstanceId.1": LINUX_1, "PasswordName": "p" * 256}, "InvalidPasswordName.LengthLimitExceeded", 403),
        ({"InstanceId.1": LINUX_1, "ConnectionType": "Satellite"}, "InvalidParameter.ConnectionType", 400),
        ({**{f"InstanceId.{i}": f"mi-{i}" for i in range(1, 12)}}, "InstanceIds.ExceedLimit", 403),
        ({"InstanceId.1": "mi-nowhere"}, "InvalidInstance.NotFound", 404),
        ({"InstanceId.1": LINUX_1, "EncryptionOptions": json.dumps({"Enabled": True})},
         "InvalidParameter.EncryptionOptions", 400),
    ],
)
async def test_start_refuses_what_the_documentation_refuses(api: Api, params: dict[str, str], code: str,
                                                             status: int) -> None:
    """Each documented rule of StartTerminalSession answers its code and status."""
    reply = await api.call("StartTerminalSession", params)
    assert (reply.code, reply.status) == (code, status)


async def test_client_token_returns_the_same_session(api: Api) -> None:
    """The same ClientToken and parameters give the same SessionId; other parameters a mismatch."""
    first = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1, "ClientToken": "tok-1"})
    again = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1, "ClientToken": "tok-1"})
    assert again["SessionId"] == first["SessionId"]
    other = await api.call("StartTerminalSession", {"InstanceId.1": LINUX_2, "ClientToken": "tok-1"})
    assert other.code == "IdempotentParameterMismatch"


async def test_describe_and_end(api: Api) -> None:
    """A started session is listed with its parameters; EndTerminalSession closes its URL; an unknown id is 404."""
    started = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1, "PortNumber": "22"})
    listed = await api.ok("DescribeTerminalSessions", {"SessionId": started["SessionId"]})
    (session,) = listed["Sessions"]["Session"]
    assert session["PortNumber"] == 22
    assert session["Connections"] == {"Connection": []}
    assert session["ClientIP"] == "127.0.0.1"
    await api.ok("EndTerminalSession", {"SessionId": started["SessionId"]})
    with pytest.raises(Refused, match="SessionEnded"):
        await SessionService(api.ctx).open_connection(started["SessionId"], started["SecurityToken"], None, "")
    missing = await api.call("EndTerminalSession", {"SessionId": "s-nothing"})
    assert (missing.code, missing.status) == ("InvalidSessionId.NotFound", 404)
    assert (await api.call("DescribeTerminalSessions", {"MaxResults": "101"})).code == "InvalidParameter.MaxResults"


async def test_session_manager_switch(api: Api) -> None:
    """DescribeUserBusinessBehavior says enabled; once turned off StartTerminalSession is refused as documented."""
    status = await api.ok("DescribeUserBusinessBehavior", {"statusKey": "sessionManagerStatus"})
    assert status["StatusValue"] == "enabled"
    await api.ok("ModifyCloudAssistantSettings", {"SettingType": "SessionManagerConfig",
                                                  "SessionManagerConfig": json.dumps({"SessionManagerEnabled": False})})
    status = await api.ok("DescribeUserBusinessBehavior", {"statusKey": "sessionManagerStatus"})
    assert status["StatusValue"] == "disabled"
    reply = await api.call("StartTerminalSession", {"InstanceId.1": LINUX_1})
    assert (reply.code, reply.status) == ("UserBehavior.SessionManagerDisabled", 403)


async def test_a_url_made_before_the_switch_went_off_is_refused(api: Api) -> None:
    """Turning Session Manager off also refuses the client websocket of a session started before."""
    started = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    await api.ok("ModifyCloudAssistantSettings", {"SettingType": "SessionManagerConfig",
                                                  "SessionManagerConfig": json.dumps({"SessionManagerEnabled": False})})
    with pytest.raises(Refused, match="SessionManagerDisabled"):
        await SessionService(api.ctx).open_connection(started["SessionId"], started["SecurityToken"], None, "")


async def test_token_is_single_use_bound_and_secret(api: Api) -> None:
    """A shell token opens one connection; a wrong token or another session's id is refused."""
    a = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    b = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_2})
    service = SessionService(api.ctx)
    with pytest.raises(Refused, match="InvalidToken"):
        await service.open_connection(a["SessionId"], b["SecurityToken"], None, "")
    with pytest.raises(Refused, match="InvalidToken"):
        await service.open_connection(a["SessionId"], "", None, "")
    opened = await service.open_connection(a["SessionId"], a["SecurityToken"], None, "10.0.0.9")
    assert opened.connection.instance_id == LINUX_1
    with pytest.raises(Refused, match="TokenUsed"):
        await service.open_connection(a["SessionId"], a["SecurityToken"], None, "")
    with pytest.raises(Refused, match="InvalidInstanceId"):
        await service.open_connection(b["SessionId"], b["SecurityToken"], LINUX_1, "")


async def test_token_expires_after_ten_minutes(api: Api, clock: FixedClock) -> None:
    """The WebSocketUrl's token works for 10 minutes; after that it is refused as TokenExpired."""
    started = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    clock.advance(minutes=10, seconds=1)
    with pytest.raises(Refused, match="TokenExpired"):
        await SessionService(api.ctx).open_connection(started["SessionId"], started["SecurityToken"], None, "")


async def test_another_account_never_reaches_the_session(api: Api) -> None:
    """Account bob cannot see, end, or start a session on the default account's sessions and instances."""
    started = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    await AccessService(api.ctx).ensure_key("AKBOB0000000000", "bob-secret", "bob")

    async def as_bob(params: dict[str, str]) -> Reply:
        signed = sign_v1({"Format": "JSON", "RegionId": REGION, **params}, "AKBOB0000000000", "bob-secret",
                         method="POST", timestamp=api.ctx.clock.now())
        return api.check(await api.send(signed), "JSON")

    listed = await as_bob({"Action": "DescribeTerminalSessions", "SessionId": started["SessionId"]})
    assert listed.body["Sessions"] == {"Session": []}
    ended = await as_bob({"Action": "EndTerminalSession", "SessionId": started["SessionId"]})
    assert (ended.status, ended.code) == (404, "InvalidSessionId.NotFound")
    other = await as_bob({"Action": "StartTerminalSession", "InstanceId.1": LINUX_1})
    assert (other.status, other.code) == (404, "InvalidInstance.NotFound")
    mine = await api.ok("DescribeTerminalSessions", {"SessionId": started["SessionId"]})
    assert len(mine["Sessions"]["Session"]) == 1


async def test_sessions_per_region_are_limited(ctx: Context, server_log: ServerLog) -> None:
    """Beyond session_max_per_region live sessions, StartTerminalSession answers SessionCount.ExceedLimit (403)."""
    ctx = replace(ctx, settings=ctx.settings.replace(session_max_per_region=2))
    await seed_instances(ctx)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        api = Api(ctx, client, server_log)
        await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
        await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_2})
        reply = await api.call("StartTerminalSession", {"InstanceId.1": LINUX_1})
    assert (reply.status, reply.code) == (403, "SessionCount.ExceedLimit")


async def test_connections_of_a_gone_server_are_ended_and_old_sessions_forgotten(api: Api, clock: FixedClock) -> None:
    """An open connection vouched for stays open; one no process vouched for in 90 s is ended ServerStopped; a
    session older than 4 weeks is forgotten with its connections."""
    service = SessionService(api.ctx)
    a = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_1})
    b = await api.ok("StartTerminalSession", {"InstanceId.1": LINUX_2})
    kept = await service.open_connection(a["SessionId"], a["SecurityToken"], None, "")
    lost = await service.open_connection(b["SessionId"], b["SecurityToken"], None, "")
    clock.advance(seconds=60)
    await service.vouch([kept.connection.channel_id])
    clock.advance(seconds=61)
    assert await service.sweep() == (1, 0)
    listed = await api.ok("DescribeTerminalSessions", {"SessionId": b["SessionId"]})
    (connection,) = listed["Sessions"]["Session"][0]["Connections"]["Connection"]
    assert (connection["Status"], connection["ClosedReason"]) == ("Terminated", "ServerStopped")
    assert lost.connection.channel_id != kept.connection.channel_id
    clock.advance(weeks=4)
    await service.vouch([kept.connection.channel_id])
    assert (await service.sweep())[1] == 2
    assert (await api.ok("DescribeTerminalSessions"))["Sessions"] == {"Session": []}

"""Session Manager's API through both official SDKs on a live server (both engines): StartTerminalSession,
DescribeTerminalSessions, EndTerminalSession, and DescribeUserBusinessBehavior as the session CLI calls it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeUserBusinessBehaviorRequest import DescribeUserBusinessBehaviorRequest
from aliyunsdkecs.request.v20140526.EndTerminalSessionRequest import EndTerminalSessionRequest
from aliyunsdkecs.request.v20140526.StartTerminalSessionRequest import StartTerminalSessionRequest

from acceptance.sdk import ISO, REGION, Core, Server, fails, unique

pytestmark = pytest.mark.acceptance


def test_start_describe_end_with_tea(tea: EcsClient, server: Server) -> None:
    """The typed models read StartTerminalSession's SessionId, SecurityToken and WebSocketUrl (on this server's API
    port), DescribeTerminalSessions' session with its port, and EndTerminalSession's answer; a second End of the
    same session is accepted, an unknown one is 404."""
    (instance_id,) = server.register()
    started = tea.start_terminal_session(ecs.StartTerminalSessionRequest(
        region_id=REGION, instance_id=[instance_id], port_number=22, client_token=unique("sdk"))).body
    assert started.session_id.startswith("s-")
    url = urlsplit(started.web_socket_url)
    assert (url.scheme, url.netloc, url.path) == ("ws", server.endpoint, "/session")
    assert parse_qs(url.query)["token"] == [started.security_token]
    body = tea.describe_terminal_sessions(ecs.DescribeTerminalSessionsRequest(
        region_id=REGION, session_id=started.session_id)).body
    (session,) = body.sessions.session
    assert (session.session_id, session.port_number, session.client_ip) == (started.session_id, 22, "127.0.0.1")
    assert ISO.match(session.creation_time)
    assert session.connections.connection == []
    assert tea.end_terminal_session(ecs.EndTerminalSessionRequest(
        region_id=REGION, session_id=started.session_id)).status_code == 200
    fails(lambda: tea.end_terminal_session(ecs.EndTerminalSessionRequest(region_id=REGION, session_id="s-none")),
          "InvalidSessionId.NotFound", 404)


def test_start_and_end_with_aliyunsdkcore(core: Core, server: Server) -> None:
    """The older SDK's typed requests: StartTerminalSession with a CommandLine, EndTerminalSession, and the
    session CLI's DescribeUserBusinessBehavior(statusKey=sessionManagerStatus) answering `enabled`."""
    (instance_id,) = server.register()
    request = StartTerminalSessionRequest()
    request.set_InstanceIds([instance_id])
    request.set_CommandLine("top -b")
    started = core.send(request)
    assert set(started) == {"RequestId", "SessionId", "SecurityToken", "WebSocketUrl"}
    end = EndTerminalSessionRequest()
    end.set_SessionId(started["SessionId"])
    assert set(core.send(end)) == {"RequestId"}
    behavior = DescribeUserBusinessBehaviorRequest()
    behavior.set_statusKey("sessionManagerStatus")
    assert core.send(behavior)["StatusValue"] == "enabled"

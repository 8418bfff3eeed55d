"""A bug on either face is answered with a generic 500 in that face's shape and logged in one line: never a
traceback (whoever can send requests could fill the disk with them), never a parameter value."""

from __future__ import annotations

import pytest
from agentwire import AgentFace, http
from apiwire import Api, ServerLog

from cloudassist.api.agent.routes import AgentEndpoints
from cloudassist.api.rpc.endpoint import RpcEndpoint
from cloudassist.services.context import Context

pytestmark = pytest.mark.asyncio


async def test_a_bug_on_the_api_is_an_internal_error_envelope_and_one_log_line(
        api: Api, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception nobody expected while answering an action: 500 InternalError in the ECS error envelope,
    and one ERROR line naming the exception and where it was raised, without its message or the request's
    parameters."""
    async def broken(self: RpcEndpoint, *args: object) -> None:
        raise RuntimeError("broken on purpose\nsecond line")

    monkeypatch.setattr(RpcEndpoint, "dispatch", broken)
    server_log.clear()
    response = await api.send(api.sign({"Action": "DescribeCommands", "RegionId": "cn-hangzhou",
                                        "Name": "secret-value"}))
    assert response.status_code == 500
    assert response.json()["Code"] == "InternalError"
    errors = [line for line in server_log.lines if line.startswith("ERROR")]
    assert len(errors) == 1, server_log.text()
    assert "RuntimeError (at test_internal_errors.py:" in errors[0]
    assert "Traceback" not in server_log.text()
    assert "secret-value" not in server_log.text()
    assert "broken on purpose" not in server_log.text()  # a message may quote a value of the request


async def test_a_bug_on_the_agent_face_is_a_refusal_shaped_500_and_one_log_line(
        ctx: Context, server_log: ServerLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on the agent face: 500 `{code, errCode: InternalError, errMsg}`, one ERROR line."""
    face = AgentFace(ctx, server_log)
    await face.activate()
    instance_id, machine_id = await face.register()

    async def broken(self: AgentEndpoints, *args: object) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(AgentEndpoints, "heartbeat", broken)
    server_log.clear()
    answer = await http(face.app, "GET", "/luban/api/heart-beat", b"", face.sign(instance_id, machine_id))
    assert answer.raised is None
    assert answer.status == 500
    assert answer.json() == {"code": 500, "errCode": "InternalError", "errMsg": "internal error"}
    errors = [line for line in server_log.lines if line.startswith("ERROR")]
    assert len(errors) == 1, server_log.text()
    assert "RuntimeError (at test_internal_errors.py:" in errors[0]
    assert "Traceback" not in server_log.text()

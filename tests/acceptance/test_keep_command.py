"""RunCommand's KeepCommand with a real agent: a command not kept is deleted once its task ends; a kept one stays.

One agent per engine (module-scoped) is registered from a CreateActivation code and runs `python -m cloudassist
agent run`; the tests drive the server through the official SDKs and look at the store only to see that the
command row itself is gone (the API never lists a command it did not keep).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.agents import Agent, current, final, one_agent, wait_for
from acceptance.sdk import REGION, Server, b64, fails, invocation, run
from cloudassist.testing import default_scope

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One registered, connected agent (see acceptance.agents.one_agent)."""
    with one_agent(server, tmp_path_factory.mktemp("keep-agents"), "keep") as one:
        yield one


def stored(server: Server, command_id: str) -> bool:
    """Whether the command's row exists at all (kept or not)."""

    async def look() -> bool:
        scope = await default_scope(server.ctx, REGION)
        async with server.ctx.store.read() as tx:
            return await tx.commands.get(scope.account_id, REGION, command_id, hidden=True) is not None

    return server.loop.run_until_complete(look())


def listed(tea: EcsClient, command_id: str) -> bool:
    body = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id)).body
    return bool(body.commands.command)


def test_a_command_not_kept_is_deleted_when_its_task_ends(tea_v3: EcsClient, server: Server, agent: Agent) -> None:
    """KeepCommand=false (the default): while the task runs the command exists (unlisted); once it ends Success
    the command is deleted: DescribeCommands does not list it, InvokeCommand on it is InvalidCmdId.NotFound;
    the task and its record still show its CommandId, name and content."""
    invoke_id = run(tea_v3, [agent.instance_id], command_content="sleep 2; echo kept-not", name="not-kept")
    task = invocation(tea_v3, invoke_id)
    command_id = task.command_id
    wait_for(lambda: current(tea_v3, invoke_id).invocation_status == "Running", 30, "the run to start")
    assert stored(server, command_id)
    assert not listed(tea_v3, command_id)
    done = final(tea_v3, invoke_id)
    assert (done.invocation_status, done.output, done.command_id) == ("Success", "kept-not\n", command_id)
    assert not stored(server, command_id)
    fails(lambda: tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                                 instance_id=[agent.instance_id])),
          "InvalidCmdId.NotFound", 404)
    after = invocation(tea_v3, invoke_id, content_encoding="Base64")
    assert (after.command_id, after.command_name, after.command_content) == (
        command_id, "not-kept", b64(b"sleep 2; echo kept-not"))


def test_a_kept_command_stays_and_runs_again(tea_v3: EcsClient, server: Server, agent: Agent) -> None:
    """KeepCommand=true: after the task ends the command is listed and InvokeCommand runs it again."""
    invoke_id = run(tea_v3, [agent.instance_id], command_content="echo kept", keep_command=True, name="kept")
    command_id = invocation(tea_v3, invoke_id).command_id
    assert final(tea_v3, invoke_id).invocation_status == "Success"
    assert stored(server, command_id)
    assert listed(tea_v3, command_id)
    again = tea_v3.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                           instance_id=[agent.instance_id])).body.invoke_id
    assert final(tea_v3, again).output == "kept\n"
    assert listed(tea_v3, command_id)


def test_a_stopped_task_deletes_its_command_too(tea_v3: EcsClient, server: Server, agent: Agent) -> None:
    """StopInvocation of a running task not kept: once it is Terminated the command is gone."""
    invoke_id = run(tea_v3, [agent.instance_id], command_content="sleep 60")
    command_id = invocation(tea_v3, invoke_id).command_id
    wait_for(lambda: current(tea_v3, invoke_id).invocation_status == "Running", 30, "the run to start")
    tea_v3.stop_invocation(ecs.StopInvocationRequest(region_id=REGION, invoke_id=invoke_id))
    assert final(tea_v3, invoke_id).invocation_status == "Terminated"
    assert not stored(server, command_id)

"""The command and daily-task quotas through the official SDK, on a server started with small quotas
(`CLOUDASSIST_COMMAND_QUOTA=2`, `CLOUDASSIST_INVOCATION_QUOTA_DAILY=3`) on the same engine as the shared one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from acceptance.agents import engine
from acceptance.sdk import REGION, Server, b64, create, fails, run, running_server, tea_client, unique

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def small(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second live server with small quotas, on a fresh store of the shared server's engine."""
    quotas = {"CLOUDASSIST_COMMAND_QUOTA": "2", "CLOUDASSIST_INVOCATION_QUOTA_DAILY": "3"}
    with running_server(engine(server), tmp_path_factory.mktemp("quota-server"), **quotas) as small:
        yield small
        assert "Traceback" not in small.log(), small.log()


def test_kept_commands_stop_at_the_command_quota(small: Server) -> None:
    """Two kept commands fit; a third CreateCommand, or a RunCommand with KeepCommand=true, is CmdCount.ExceedQuota
    (403); a RunCommand that does not keep its command is not counted; after DeleteCommand there is room again."""
    tea: EcsClient = tea_client(small.endpoint)
    first = create(tea)
    create(tea)
    fails(lambda: create(tea), "CmdCount.ExceedQuota", 403)
    [instance] = small.register()
    fails(lambda: run(tea, [instance], keep_command=True), "CmdCount.ExceedQuota", 403)
    run(tea, [instance])
    tea.delete_command(ecs.DeleteCommandRequest(region_id=REGION, command_id=first))
    assert create(tea, name=unique("again"), command_content=b64(b"true"))


def test_tasks_stop_at_the_daily_quota(small: Server) -> None:
    """Three tasks a day (whatever their instances): with one spent above, two more RunCommand/InvokeCommand
    calls pass and the next is Invocation.ExceedQuota (403) with the documented message; a DryRun is checked but
    not counted, so it is refused too once the quota is spent."""
    tea: EcsClient = tea_client(small.endpoint)
    instances = small.register(2)
    kept = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION)).body.commands.command
    command_id = kept[0].command_id if kept else create(tea)
    spent = tea.describe_invocations(ecs.DescribeInvocationsRequest(region_id=REGION)).body.total_count
    for _ in range(3 - spent):
        run(tea, instances)
    body = fails(lambda: run(tea, instances), "Invocation.ExceedQuota", 403)
    assert body["Message"].startswith("The invocation quota in the current region has been reached for today. "
                                      "The quota is 3 tasks per region per UTC day")
    fails(lambda: tea.invoke_command(ecs.InvokeCommandRequest(region_id=REGION, command_id=command_id,
                                                              instance_id=instances)),
          "Invocation.ExceedQuota", 403)
    fails(lambda: run(tea, instances, repeat_mode="DryRun"), "Invocation.ExceedQuota", 403)

"""The console's pages over the services, in-process on both engines: the fleet's search and filters, running a
command with every option, by id or by tag, errors shown as the API names them, the invocations list's filters
and pages, live progress as server-sent events, saved commands, activations and sending a file."""

from __future__ import annotations

import json
import re
from typing import Any

from consolewire import Browser, browser_of

from cloudassist.console.stream import changes
from cloudassist.domain.invocations import Invocation, RepeatMode
from cloudassist.domain.paging import Page
from cloudassist.services.context import Context
from cloudassist.services.delivery import DeliveryService, Report
from cloudassist.services.invocations import InvocationService
from cloudassist.store.invocations import InvocationFilter
from cloudassist.testing import FixedClock, register_instance
from conftest import AK, B_SECRET, BK, SECRET, Accounts


async def signed_in(ctx: Context, key: str = AK, secret: str = SECRET) -> Browser:
    browser = browser_of(ctx)
    assert (await browser.sign_in(key, secret)).status_code == 303
    return browser


async def invocation(ctx: Context, invoke_id: str) -> Invocation:
    async with ctx.store.read() as tx:
        account = await tx.accounts.find("default")
    assert account is not None
    f = InvocationFilter(account, "cn-hangzhou", ctx.clock.now(), invoke_id=invoke_id)
    [found] = (await InvocationService(ctx).describe_invocations(f, Page(1, 1, False, None))).invocations
    return found


async def test_fleet_search_and_filters(ctx: Context, accounts: Accounts, clock: FixedClock) -> None:
    """The fleet lists the account's instances only; search matches part of a name or id in any case; the tag,
    OS and online filters narrow it."""
    other = await register_instance(ctx, name="db-7", os_type="windows")
    browser = await signed_in(ctx)
    page = (await browser.client.get("/console/instances")).text
    assert accounts.a_instance in page
    assert other in page
    assert accounts.b_instance not in page
    for query, shown, hidden in (
        ("q=WEB", accounts.a_instance, other),
        (f"q={other[3:12]}", other, accounts.a_instance),
        ("tag=env%3Dprod", accounts.a_instance, other),
        ("os=windows", other, accounts.a_instance),
    ):
        page = (await browser.client.get(f"/console/instances?{query}")).text
        assert shown in page, query
        assert hidden not in page, query
    assert "online" in (await browser.client.get("/console/instances?online=yes")).text
    clock.advance(minutes=5)  # no heart-beat since: offline
    page = (await browser.client.get("/console/instances?online=yes")).text
    assert accounts.a_instance not in page
    assert accounts.a_instance in (await browser.client.get("/console/instances?online=no")).text


async def test_run_with_every_option(ctx: Context, accounts: Accounts) -> None:
    """Each RunCommand option of the form reaches the invocation: parameters, user, working directory, timeout,
    a schedule, termination mode, tags, and a kept command."""
    browser = await signed_in(ctx)
    answer = await browser.post(
        "/console/run",
        {
            "type": "RunShellScript",
            "content": "echo {{greeting}}",
            "enable_parameter": "on",
            "name": "greet",
            "parameters": "greeting=hello",
            "instance": accounts.a_instance,
            "username": "nobody",
            "working_dir": "/tmp",
            "timeout": "120",
            "repeat_mode": "Period",
            "frequency": "rate(5m)",
            "termination_mode": "Process",
            "tags": "team=ops",
            "keep_command": "on",
        },
    )
    assert answer.status_code == 303, answer.text
    inv = await invocation(ctx, answer.headers["location"].rsplit("/", 1)[1])
    assert inv.content == b"echo hello"
    assert inv.parameters == {"greeting": "hello"}
    assert (inv.username, inv.working_dir, inv.timeout) == ("nobody", "/tmp", 120)
    assert inv.repeat_mode is RepeatMode.PERIOD
    assert inv.frequency == "rate(5m)"
    assert inv.termination_mode.value == "Process"
    assert [(t.key, t.value) for t in inv.tags] == [("team", "ops")]
    commands = (await browser.client.get("/console/commands")).text
    assert "greet" in commands
    page = (await browser.client.get(answer.headers["location"])).text
    assert "History of the schedule" in page


async def test_run_by_tag_and_errors_named_as_the_api_names_them(ctx: Context, accounts: Accounts) -> None:
    """Instances picked by resource tag are the tagged ones; a bad form is shown again with the API's error code
    and message and a 4xx, with what was typed kept."""
    browser = await signed_in(ctx)
    answer = await browser.post("/console/run", {"content": "id", "target": "tags", "resource_tags": "env=prod"})
    assert answer.status_code == 303
    inv = await invocation(ctx, answer.headers["location"].rsplit("/", 1)[1])
    assert [r.instance_id for r in inv.results] == [accounts.a_instance]
    for form, code in (
        ({"content": "id", "instance": accounts.a_instance, "repeat_mode": "Period"}, "MissingParam.Frequency"),
        ({"content": "id", "instance": accounts.b_instance}, "InvalidInstance.NotFound"),
        ({"content": "id", "instance": accounts.a_instance, "timeout": "soon"}, "InvalidParameter.timeout"),
        ({"content": "id"}, "MissingParam.InstanceId"),
        ({"content": "id", "target": "tags", "resource_tags": "env=none"}, "InvalidResourceTag.InstanceNotFound"),
    ):
        answer = await browser.post("/console/run", form)
        assert 400 <= answer.status_code < 500, form
        assert code in answer.text, (code, answer.text[-2000:])
        assert ">id</textarea>" in answer.text


async def test_invocations_filters_and_pages(ctx: Context, accounts: Accounts) -> None:
    """The list pages by twenty, newest first, and filters by command name and instance."""
    browser = await signed_in(ctx)
    for n in range(22):
        answer = await browser.post(
            "/console/run",
            {"content": f"echo {n}", "name": "odd" if n % 2 else "even", "instance": accounts.a_instance},
        )
        assert answer.status_code == 303
    first = (await browser.client.get("/console/invocations")).text
    assert "page 1 of 2" in first
    assert len(re.findall(r'href="/console/invocations/t-', first)) == 20
    second = (await browser.client.get("/console/invocations?page=2")).text
    assert len(re.findall(r'href="/console/invocations/t-', second)) == 2
    assert "echo 0<" in second
    odd = (await browser.client.get("/console/invocations?command_name=odd")).text
    assert len(re.findall(r'href="/console/invocations/t-', odd)) == 11
    none = (await browser.client.get(f"/console/invocations?instance_id={accounts.b_instance}")).text
    assert "No invocations match" in none


async def test_events_stream_output_then_end(ctx: Context, accounts: Accounts) -> None:
    """The event stream of an invocation sends each instance's status, exit code and output as its agent reports
    them, then `end` once every record has ended."""
    browser = await signed_in(ctx)
    answer = await browser.post("/console/run", {"content": "echo hi", "instance": accounts.a_instance})
    invoke_id = answer.headers["location"].rsplit("/", 1)[1]
    delivery = DeliveryService(ctx)
    await delivery.fetch(accounts.a_instance)
    await delivery.report(accounts.a_instance, Report("running", invoke_id, output=b"hel"))
    await delivery.report(accounts.a_instance, Report("finish", invoke_id, exit_code=3, output=b"lo\n"))
    stream = await browser.client.get(f"/console/invocations/{invoke_id}/events")
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [(m[0], json.loads(m[1])) for m in re.findall(r"event: (\w+)\ndata: (.*)\n", stream.text)]
    names = [name for name, _ in events]
    assert names == ["instance", "task", "end"]
    data = events[0][1]
    assert (data["status"], data["exit_code"], data["append"]) == ("Failed", 3, "hello\n")


def test_changes_send_what_is_new_and_whole_characters() -> None:
    """Output is sent as it grows, a UTF-8 character split between two reports only once whole, and all of it
    again when a schedule's new run replaced it."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from cloudassist.domain.invocations import InvocationResult
    from cloudassist.domain.statuses import ErrorCode, InvocationStatus

    now = datetime(2026, 12, 5, tzinfo=UTC)
    r = InvocationResult(
        1, "t-1", "mi-1", "c-1", InvocationStatus.RUNNING, None, b"", 0, ErrorCode.NONE, now, None, None, now, now, 0
    )
    seen: dict[str, Any] = {}
    assert changes(seen, (r,))[0]["status"] == "Running"
    assert changes(seen, (r,)) == []
    snow = "☃".encode()
    step = changes(seen, (replace(r, output=b"a" + snow[:1]),))
    assert step[0]["append"] == "a"
    step = changes(seen, (replace(r, output=b"a" + snow + b"b"),))
    assert step[0]["append"] == "☃b"
    step = changes(seen, (replace(r, output=b"new run", status=InvocationStatus.SUCCESS, exit_code=0),))
    assert step[0]["reset"] == "new run"
    assert step[0]["status"] == "Success"


async def test_saved_commands_activations_and_files(ctx: Context, accounts: Accounts) -> None:
    """A command saved in the console runs from it (InvokeCommand) and is deleted; an activation made in it shows
    its code once with the register command, and is disabled and deleted; a file sent is listed with its
    instance; account B can delete none of A's."""
    browser = await signed_in(ctx)
    assert (await browser.post("/console/commands", {"name": "uptime", "content": "uptime"})).status_code == 303
    listing = (await browser.client.get("/console/commands")).text
    command_id = re.search(r"/console/run\?command=(c-[\w]+)", listing)
    assert command_id
    form = (await browser.client.get(f"/console/run?command={command_id.group(1)}")).text
    assert "uptime" in form
    answer = await browser.post("/console/run", {"command_id": command_id.group(1), "instance": accounts.a_instance})
    assert answer.status_code == 303
    inv = await invocation(ctx, answer.headers["location"].rsplit("/", 1)[1])
    assert inv.command_id == command_id.group(1)

    created = await browser.post("/console/activations", {"instance_count": "3", "description": "racks"})
    assert created.status_code == 201
    code = re.search(r"CLOUDASSIST_ACTIVATION_CODE='([^']+)'", created.text)
    activation_id = re.search(r"--activation-id (\S+)", created.text)
    assert code
    assert activation_id
    assert "cloudassist-agent register" in created.text
    assert code.group(1) not in (await browser.client.get("/console/activations")).text  # shown once

    b = await signed_in(ctx, BK, B_SECRET)
    assert (await b.post(f"/console/commands/{command_id.group(1)}/delete", {})).status_code == 404
    assert (await b.post(f"/console/activations/{activation_id.group(1)}", {"do": "delete"})).status_code == 404
    assert (await browser.post(f"/console/activations/{activation_id.group(1)}", {"do": "disable"})).status_code == 303
    assert "disabled" in (await browser.client.get("/console/activations")).text
    assert (await browser.post(f"/console/activations/{activation_id.group(1)}", {"do": "delete"})).status_code == 303
    assert (await browser.post(f"/console/commands/{command_id.group(1)}/delete", {})).status_code == 303
    assert "No saved commands" in (await browser.client.get("/console/commands")).text

    sent = await browser.post(
        "/console/files",
        {
            "name": "motd",
            "target_dir": "/tmp",
            "content": "hello",
            "instance": accounts.a_instance,
            "file_mode": "0600",
        },
    )
    assert sent.status_code == 303, sent.text
    files = (await browser.client.get("/console/files")).text
    assert "/tmp/motd" in files
    assert accounts.a_instance in files
    assert "motd" not in (await b.client.get("/console/files")).text


async def test_schedule_history_stop_one_and_deregister(ctx: Context, accounts: Accounts, clock: FixedClock) -> None:
    """A schedule's page lists each ended run with its output; one instance of a task is stopped alone; an
    instance deregistered from the fleet leaves it."""
    browser = await signed_in(ctx)
    answer = await browser.post(
        "/console/run",
        {"content": "date", "instance": accounts.a_instance, "repeat_mode": "Period", "frequency": "rate(5m)"},
    )
    assert answer.status_code == 303
    invoke_id = answer.headers["location"].rsplit("/", 1)[1]
    delivery = DeliveryService(ctx)
    await delivery.fetch(accounts.a_instance)
    for n in (1, 2):
        start = clock.now()
        await delivery.report(accounts.a_instance, Report("running", invoke_id, start=start))
        await delivery.report(
            accounts.a_instance,
            Report("finish", invoke_id, start=start, end=start, exit_code=0, output=f"run number {n}\n".encode()),
        )
        clock.advance(minutes=5)
    page = (await browser.client.get(f"/console/invocations/{invoke_id}")).text
    history = page.split("History of the schedule", 1)[1]
    assert "run number 1" in history
    assert "run number 2" in history

    other = await register_instance(ctx, name="web-2")
    answer = await browser.post("/console/run", {"content": "sleep 100", "instance": [accounts.a_instance, other]})
    invoke_id = answer.headers["location"].rsplit("/", 1)[1]
    stopped = await browser.post(f"/console/invocations/{invoke_id}/stop", {"instance": other})
    assert stopped.status_code == 303
    statuses = {r.instance_id: r.status.value for r in (await invocation(ctx, invoke_id)).results}
    assert statuses == {accounts.a_instance: "Pending", other: "Cancelled"}

    assert (await browser.post(f"/console/instances/{other}/deregister", {})).status_code == 303
    assert other not in (await browser.client.get("/console/instances")).text
    b = await signed_in(ctx, BK, B_SECRET)
    assert (await b.post(f"/console/instances/{accounts.a_instance}/deregister", {})).status_code == 404

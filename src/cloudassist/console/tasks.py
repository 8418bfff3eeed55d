"""Running commands, the list of invocations, and one invocation's page (stop, re-run, a schedule's history)."""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import Response

from cloudassist.console import forms
from cloudassist.console.visit import PATH, Visit, redirect
from cloudassist.domain.invocations import Invocation, RepeatMode
from cloudassist.domain.paging import Page
from cloudassist.domain.statuses import LegacyStatus, TaskStatus
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.instances import InstanceService
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.store.commands import CommandFilter
from cloudassist.store.instances import InstanceFilter
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.results import ResultFilter

PAGE_SIZE: Final = 20
TASK_STATUSES: Final = [s.value for s in TaskStatus]
LEGACY_STATUSES: Final = [s.value for s in LegacyStatus]
#: How many instances the run form offers to tick (more are typed, or picked by tag).
PICKABLE: Final = 50


def page_number(visit: Visit) -> int:
    text = visit.value("page")
    return max(1, min(int(text), 10**6)) if text.isdigit() else 1


def page_count(total: int) -> int:
    """How many pages of PAGE_SIZE hold `total` items (one, for none)."""
    return max(1, -(-total // PAGE_SIZE))


async def run_form(visit: Visit, error: ApiError | None = None, status: int = 200) -> Response:
    """The run form, prefilled from a saved command (`?command=`) or ticked instances (`?instance=`)."""
    found = await InstanceService(visit.ctx).describe_managed_instances(
        InstanceFilter(visit.scope.account_id, visit.scope.region_id), Page(1, PICKABLE, False, None)
    )
    command = None
    command_id = visit.value("command_id") or visit.value("command")
    if command_id:
        commands = await CommandService(visit.ctx).describe_commands(
            CommandFilter(visit.scope.account_id, visit.scope.region_id, command_id=command_id),
            Page(1, 1, False, None),
        )
        command = commands.commands[0][0] if commands.commands else None
    picked = set(visit.values("instance"))
    context: dict[str, Any] = {
        "instances": found.instances,
        "picked": picked,
        # ticked in the fleet but not among the instances offered here: typed in for the operator
        "extra": ",".join(sorted(picked - {m.instance_id for m in found.instances})),
        "command": command,
        "types": forms.COMMAND_TYPES,
        "modes": forms.REPEAT_MODES,
        "form": visit.form if visit.request.method == "POST" else {},
        "now": visit.ctx.clock.now(),
    }
    if error is not None:
        return visit.failed("run.html", error, **context)
    return visit.page("run.html", status, **context)


async def run(visit: Visit) -> Response:
    """RunCommand (or InvokeCommand of a saved command); on to the new invocation's page."""
    service = InvocationService(visit.ctx)
    try:
        options, targets, tags = forms.options(visit), forms.targets(visit), forms.tags(visit, "tags")
        command_id = visit.value("command_id")
        if command_id:
            started = await service.invoke_command(visit.scope, command_id, options, targets, tags, idempotency=None)
        else:
            started = await service.run_command(
                visit.scope,
                forms.command_spec(visit),
                options,
                targets,
                tags,
                keep_command=visit.value("keep_command") == "on",
                idempotency=None,
            )
    except ApiError as error:
        return await run_form(visit, error)
    return redirect(f"{PATH}invocations/{started.invoke_id}")


async def invocations(visit: Visit) -> Response:
    """The list of invocations, newest first, with filters and pages."""
    status = visit.value("status")
    mode = visit.value("repeat_mode")
    f = InvocationFilter(
        account_id=visit.scope.account_id,
        region_id=visit.scope.region_id,
        not_before=visit.ctx.clock.now(),
        invoke_id=visit.value("invoke_id") or None,
        command_name=visit.value("command_name") or None,
        instance_id=visit.value("instance_id") or None,
        statuses=frozenset({status}) if status in TASK_STATUSES else None,
        repeat_modes=frozenset({mode}) if mode in forms.REPEAT_MODES else None,
    )
    number = page_number(visit)
    found = await InvocationService(visit.ctx).describe_invocations(f, Page(number, PAGE_SIZE, False, None))
    pages = page_count(found.total)
    return visit.page(
        "invocations.html",
        invocations=found.invocations,
        total=found.total,
        number=number,
        pages=pages,
        statuses=TASK_STATUSES,
        modes=forms.REPEAT_MODES,
        query=dict(visit.request.query_params),
    )


async def find(visit: Visit, invoke_id: str) -> Invocation | None:
    """The signed-in account's invocation `invoke_id` in its region, with every instance's record."""
    f = InvocationFilter(visit.scope.account_id, visit.scope.region_id, visit.ctx.clock.now(), invoke_id=invoke_id)
    # a page of one in token mode: no count query (the event stream calls this twice a second)
    found = await InvocationService(visit.ctx).describe_invocations(f, Page(1, 1, True, None))
    return found.invocations[0] if found.invocations else None


def not_found(visit: Visit) -> Response:
    return visit.page("missing.html", 404, what="invocation")


async def invocation(visit: Visit) -> Response:
    invoke_id = visit.request.path_params["invoke_id"]
    inv = await find(visit, invoke_id)
    if inv is None:
        return not_found(visit)
    history = None
    number = page_number(visit)
    if inv.repeat_mode in (RepeatMode.PERIOD, RepeatMode.EVERY_REBOOT):
        f = ResultFilter(
            account_id=visit.scope.account_id,
            region_id=visit.scope.region_id,
            not_before=visit.ctx.clock.now(),
            min_seq=0,
            invoke_id=invoke_id,
        )
        history = await InvocationService(visit.ctx).describe_invocation_results(
            f, Page(number, PAGE_SIZE, False, None), include_history=True
        )
    error_code = visit.value("error")
    return visit.page("invocation.html", inv=inv, history=history, number=number, notice=error_code)


async def stop(visit: Visit) -> Response:
    invoke_id = visit.request.path_params["invoke_id"]
    try:
        await InvocationService(visit.ctx).stop_invocation(visit.scope, invoke_id, visit.values("instance"))
    except ApiError as error:
        if error.code == "InvalidInvokeId.NotFound":
            return not_found(visit)
        return redirect(f"{PATH}invocations/{invoke_id}?error={error.code}")
    return redirect(f"{PATH}invocations/{invoke_id}")


async def rerun(visit: Visit) -> Response:
    """A new invocation of the same content, options and instances (a command kept as it was)."""
    inv = await find(visit, visit.request.path_params["invoke_id"])
    if inv is None:
        return not_found(visit)
    spec = CommandSpec(
        name=inv.command_name,
        description=inv.command_description,
        type=inv.command_type,
        content=inv.content,
        working_dir=inv.working_dir,
        timeout=inv.timeout,
        enable_parameter=False,
        launcher=inv.launcher,
        resource_group_id=inv.resource_group_id,
    )
    options = RunOptions(
        repeat_mode=inv.repeat_mode,
        frequency=inv.frequency,
        parameters={},
        timeout=inv.timeout,
        working_dir=inv.working_dir,
        username=inv.username,
        windows_password_name=inv.windows_password_name,
        termination_mode=inv.termination_mode,
        launcher=inv.launcher,
        container_id=inv.container_id,
        container_name=inv.container_name,
        resource_group_id=inv.resource_group_id,
    )
    targets = Targets([r.instance_id for r in inv.results])
    try:
        started = await InvocationService(visit.ctx).run_command(
            visit.scope, spec, options, targets, inv.tags, keep_command=False, idempotency=None
        )
    except ApiError as error:
        return redirect(f"{PATH}invocations/{inv.invoke_id}?error={error.code}")
    return redirect(f"{PATH}invocations/{started.invoke_id}")

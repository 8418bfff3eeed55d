"""Saved commands (list, create, delete, run) and sending files (send, and the files sent with their results)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from cloudassist.console import forms
from cloudassist.console.tasks import PAGE_SIZE, page_count, page_number
from cloudassist.console.visit import PATH, Visit, redirect
from cloudassist.domain.files import (
    DEFAULT_MODE,
    DEFAULT_OWNER,
    FileSpec,
    decode,
    effective_timeout,
    parse_content_type,
)
from cloudassist.domain.paging import Page
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService
from cloudassist.services.files import FileService
from cloudassist.services.instances import InstanceService
from cloudassist.store.commands import CommandFilter
from cloudassist.store.files import FileFilter
from cloudassist.store.instances import InstanceFilter


async def commands(visit: Visit, error: ApiError | None = None) -> Response:
    number = page_number(visit)
    name = visit.value("name") if visit.request.method == "GET" else ""
    f = CommandFilter(visit.scope.account_id, visit.scope.region_id, name=f"*{name}*" if name else None)
    found = await CommandService(visit.ctx).describe_commands(f, Page(number, PAGE_SIZE, False, None))
    context: dict[str, Any] = {
        "commands": found.commands,
        "total": found.total,
        "number": number,
        "pages": page_count(found.total),
        "types": forms.COMMAND_TYPES,
        "form": visit.form,
        "query": dict(visit.request.query_params),
    }
    if error is not None:
        return visit.failed("commands.html", error, **context)
    return visit.page("commands.html", **context)


async def create_command(visit: Visit) -> Response:
    try:
        spec = forms.command_spec(visit)
        if not spec.name:
            raise ApiError.missing("Name")
        await CommandService(visit.ctx).create_command(visit.scope, spec, forms.tags(visit, "tags"), idempotency=None)
    except ApiError as error:
        return await commands(visit, error)
    return redirect(f"{PATH}commands")


async def delete_command(visit: Visit) -> Response:
    try:
        await CommandService(visit.ctx).delete_command(visit.scope, visit.request.path_params["id"])
    except ApiError as error:
        if error.http_status == 404:
            return visit.page("missing.html", 404, what="command")
        return await commands(visit, error)
    return redirect(f"{PATH}commands")


async def files(visit: Visit, error: ApiError | None = None) -> Response:
    number = page_number(visit)
    found = await FileService(visit.ctx).describe(
        FileFilter(visit.scope.account_id, visit.scope.region_id, visit.ctx.clock.now()),
        Page(number, PAGE_SIZE, False, None),
    )
    fleet = await InstanceService(visit.ctx).describe_managed_instances(
        InstanceFilter(visit.scope.account_id, visit.scope.region_id), Page(1, 50, False, None)
    )
    context: dict[str, Any] = {
        "tasks": found.tasks,
        "total": found.total,
        "number": number,
        "pages": page_count(found.total),
        "instances": fleet.instances,
        "form": visit.form,
        "picked": set(visit.values("instance")),
    }
    if error is not None:
        return visit.failed("files.html", error, **context)
    return visit.page("files.html", **context)


async def send_file(visit: Visit) -> Response:
    try:
        instance_ids = forms.targets(visit).instance_ids
        if not instance_ids:
            raise ApiError.of("MissingParam.InstanceId")
        content_type = parse_content_type(visit.value("content_type") or None)
        spec = FileSpec(
            name=visit.value("name"),
            target_dir=visit.value("target_dir"),
            content=decode(visit.form.get("content", [""])[-1], content_type),
            content_type=content_type,
            description=visit.value("description"),
            file_owner=visit.value("file_owner") or DEFAULT_OWNER,
            file_group=visit.value("file_group") or DEFAULT_OWNER,
            file_mode=visit.value("file_mode") or DEFAULT_MODE,
            overwrite=visit.value("overwrite") == "on",
            timeout=effective_timeout(forms.number(visit, "timeout")),
        )
        await FileService(visit.ctx).send_file(visit.scope, spec, instance_ids, (), idempotency=None)
    except ApiError as error:
        return await files(visit, error)
    return redirect(f"{PATH}files")

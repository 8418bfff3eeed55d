"""The fleet (managed instances: online state, OS, agent version, last heart-beat, tags; filters and search) and
activations, with the exact commands that install and register an agent with a new code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import Response

from cloudassist.console import forms
from cloudassist.console.tasks import PAGE_SIZE, page_count, page_number
from cloudassist.console.visit import PATH, Visit, redirect
from cloudassist.domain.paging import Page
from cloudassist.errors import ApiError
from cloudassist.services.activations import ActivationService, ActivationSpec, NewActivation
from cloudassist.services.instances import InstanceService
from cloudassist.store.activations import ActivationFilter
from cloudassist.store.instances import InstanceFilter

OS_TYPES = ("linux", "windows", "freebsd")


async def instances(visit: Visit) -> Response:
    online = visit.value("online")
    os_type = visit.value("os").lower()
    try:
        tags = forms.tags(visit, "tag")
    except ApiError:
        tags = ()
    f = InstanceFilter(
        visit.scope.account_id,
        visit.scope.region_id,
        os_type=os_type if os_type in OS_TYPES else None,
        tags=tags,
        connected={"yes": True, "no": False}.get(online),
        search=visit.value("q") or None,
    )
    number = page_number(visit)
    found = await InstanceService(visit.ctx).describe_managed_instances(f, Page(number, PAGE_SIZE, False, None))
    return visit.page(
        "instances.html",
        instances=found.instances,
        total=found.total,
        number=number,
        pages=page_count(found.total),
        now=visit.ctx.clock.now(),
        os_types=OS_TYPES,
        query=dict(visit.request.query_params),
    )


async def deregister(visit: Visit) -> Response:
    try:
        await InstanceService(visit.ctx).deregister_managed_instance(visit.scope, visit.request.path_params["id"])
    except ApiError:
        return visit.page("missing.html", 404, what="instance")
    return redirect(f"{PATH}instances")


async def activations(visit: Visit, created: NewActivation | None = None, error: ApiError | None = None) -> Response:
    number = page_number(visit)
    found = await ActivationService(visit.ctx).describe_activations(
        ActivationFilter(visit.scope.account_id, visit.scope.region_id), Page(number, PAGE_SIZE, False, None)
    )
    context: dict[str, Any] = {
        "activations": found.activations,
        "total": found.total,
        "number": number,
        "pages": page_count(found.total),
        "created": created,
        "now": visit.ctx.clock.now(),
        "server": agent_address(visit),
        "ca": ca_text(visit),
        "form": {} if created else visit.form,
    }
    if error is not None:
        return visit.failed("activations.html", error, **context)
    return visit.page("activations.html", 201 if created else 200, **context)


async def create_activation(visit: Visit) -> Response:
    try:
        spec = ActivationSpec(
            description=visit.value("description") or None,
            instance_name=visit.value("instance_name") or None,
            instance_count=forms.number(visit, "instance_count"),
            ttl_hours=forms.number(visit, "ttl_hours"),
            ip_address_range=visit.value("ip_address_range") or None,
        )
        created = await ActivationService(visit.ctx).create_activation(visit.scope, spec)
    except ApiError as error:
        return await activations(visit, error=error)
    return await activations(visit, created=created)


async def change_activation(visit: Visit) -> Response:
    service = ActivationService(visit.ctx)
    activation_id = visit.request.path_params["id"]
    try:
        if visit.value("do") == "delete":
            await service.delete_activation(visit.scope, activation_id)
        else:
            await service.disable_activation(visit.scope, activation_id)
    except ApiError as error:
        if error.http_status == 404:
            return visit.page("missing.html", 404, what="activation")
        return await activations(visit, error=error)
    return redirect(f"{PATH}activations")


def agent_address(visit: Visit) -> str:
    """HOST:PORT of the agent face as a machine should be told it: a configured certificate name, else the
    listen address, else the host the browser reached this server by."""
    settings = visit.ctx.settings
    host, _, port = settings.agent_listen.rpartition(":")
    host = host.strip("[]")
    if settings.agent_names:
        host = settings.agent_names[0]
    elif host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard listen address names no host
        host = visit.request.url.hostname or "localhost"
    return f"{host}:{port}" if port else ""


def ca_text(visit: Visit) -> str:
    """The CA certificate agents trust (the generated one; empty with the operator's own certificate)."""
    if visit.ctx.settings.agent_cert:
        return ""
    path = Path(visit.ctx.settings.data_dir) / "ca.pem"
    try:
        return path.read_text()
    except OSError:
        return ""

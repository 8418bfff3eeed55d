"""The agent face's Starlette application, and the loop that keeps deliveries moving."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudassist import logs, metrics
from cloudassist.api.agent.hub import KickHub
from cloudassist.api.agent.routes import AgentEndpoints, refused
from cloudassist.api.agent.tasks import KINDS
from cloudassist.api.session.relay import relay_of
from cloudassist.services.context import Context
from cloudassist.services.delivery import DeliveryService
from cloudassist.services.files import FileService

log = logging.getLogger("cloudassist.agent_face")


def create_agent_app(ctx: Context, hub: KickHub) -> AccessLog:
    ctx, _relay = relay_of(ctx)
    endpoints = AgentEndpoints(ctx, hub)

    async def not_routed(request: Request, exc: Exception) -> Response:
        """A path or method the agent protocol does not have: refused in the agent face's shape."""
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        if status == 405:
            return refused(405, "method not allowed", "MethodNotAllowed")
        return refused(status, "no such path", "NotFound")

    app = Starlette(
        routes=[
            WebSocketRoute("/luban/notify_server", endpoints.websocket),
            WebSocketRoute("/luban/session/backend", endpoints.session_backend),
            Route("/luban/api/{path:path}", endpoints.dispatch, methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_routed, 405: not_routed},
    )
    app.router.redirect_slashes = False  # `/luban/api` is not a path of the protocol: 404, not a redirect
    return AccessLog(app)


#: Routes named as themselves in metrics and access lines; any other path is `other`, a report `v1/task/report`.
ROUTES: Final = frozenset({
    "instance/register", "connection_detect", "heart-beat", "v1/task/list", "v1/task/verified",
    "instance/deregister", "instance/list_instance_state_configurations", "v1/update/update_check", "gshell",
    "v1/session/list", "v1/plugin/list", "v2/plugin/update_check", "v1/plugin/report_status",
    "v1/session/status",
})


class AccessLog:
    """Around the agent face: one access line and the metrics of each HTTP request (route, instance, status, ms)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - began
            path = str(scope["path"]).removeprefix("/luban/api/")
            kind = path.removeprefix("v1/task/") if path.startswith("v1/task/") else ""
            route = path if path in ROUTES else "v1/task/report" if kind in KINDS else "other"
            metrics.AGENT_REQUESTS.labels(route, str(status)).inc()
            metrics.AGENT_SECONDS.labels(route).observe(seconds)
            if kind in KINDS:
                metrics.REPORTS.labels(kind, str(status)).inc()
            instance = scope.get("cloudassist.instance", "-")
            client = (scope.get("client") or ("-",))[0]
            logs.access(
                "agent route=%s%s instance=%s client=%s status=%d ms=%.1f",
                route, f"({kind})" if kind in KINDS else "", instance, client, status, seconds * 1e3,
                kind="agent", route=route, report=kind if kind in KINDS else None, instance=instance,
                client=client, status=status, ms=round(seconds * 1e3, 1),
            )


async def keep_delivering(ctx: Context, hub: KickHub, every: float = 5.0) -> None:
    """End executions whose deadlines passed (the leader only), and kick this server's agents whose work still
    waits: this covers lost kicks, and tasks created by another server process sharing the database when no
    kick channel tells of them."""
    delivery = DeliveryService(ctx)
    files = FileService(ctx)
    while True:
        await asyncio.sleep(every)
        began = time.perf_counter()
        try:
            if ctx.leader.is_leader:  # deadlines are judged once per database
                await delivery.sweep()
                await files.sweep()
            # every server kicks the agents it holds
            hub.kick_local(await delivery.waiting() | await files.waiting())
        except Exception:
            metrics.SWEEPS.labels("failed").inc()
            log.exception("delivery sweep failed; will retry")
        else:
            metrics.SWEEPS.labels("ok").inc()
            metrics.SWEEP_SECONDS.observe(time.perf_counter() - began)

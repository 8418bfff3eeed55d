"""The agent face's Starlette application, and the loop that keeps deliveries moving."""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from cloudassist.api.agent.hub import KickHub
from cloudassist.api.agent.routes import AgentEndpoints, refused
from cloudassist.services.context import Context
from cloudassist.services.delivery import DeliveryService
from cloudassist.services.files import FileService

log = logging.getLogger("cloudassist.agent_face")


def create_agent_app(ctx: Context, hub: KickHub) -> Starlette:
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
            Route("/luban/api/{path:path}", endpoints.dispatch, methods=["GET", "POST"]),
        ],
        exception_handlers={404: not_routed, 405: not_routed},
    )
    app.router.redirect_slashes = False  # `/luban/api` is not a path of the protocol: 404, not a redirect
    return app


async def keep_delivering(ctx: Context, hub: KickHub, every: float = 5.0) -> None:
    """End executions whose deadlines passed (the leader only), and kick this server's agents whose work still
    waits: this covers lost kicks, and tasks created by another server process sharing the database when no
    kick channel tells of them."""
    delivery = DeliveryService(ctx)
    files = FileService(ctx)
    while True:
        await asyncio.sleep(every)
        try:
            if ctx.leader.is_leader:  # deadlines are judged once per database
                await delivery.sweep()
                await files.sweep()
            # every server kicks the agents it holds
            hub.kick_local(await delivery.waiting() | await files.waiting())
        except Exception:
            log.exception("delivery sweep failed; will retry")

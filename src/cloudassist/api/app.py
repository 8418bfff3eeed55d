"""The Starlette application: the ECS RPC endpoint at `/`, and the store's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloudassist import ids
from cloudassist.api.rpc import actions, envelope
from cloudassist.api.rpc.endpoint import RpcEndpoint
from cloudassist.errors import ApiError
from cloudassist.services.access import AccessService
from cloudassist.services.context import Context

log = logging.getLogger("cloudassist.api")
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def create_app(ctx: Context) -> Starlette:
    """The server's ASGI application over an open store."""
    actions.load()
    endpoint = RpcEndpoint(ctx)

    async def rpc(request: Request) -> Response:
        return await endpoint(request)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        error = ApiError(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            404 if status == 404 else status,
        )
        return envelope.error(error, ids.request_id(), ctx.settings.host_id, "JSON")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        janitor = asyncio.create_task(_purge_nonces(AccessService(ctx)))
        try:
            yield
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor

    return Starlette(
        routes=[Route("/", rpc, methods=_METHODS)],
        exception_handlers={404: not_found, 405: not_found},
        lifespan=lifespan,
    )


async def _purge_nonces(access: AccessService, every: float = 60.0) -> None:
    """Forget expired nonces once a minute, so the table holds one signature window of requests."""
    while True:
        await asyncio.sleep(every)
        if not access.ctx.leader.is_leader:  # another server sharing the store purges them
            continue
        try:
            await access.purge_nonces()
        except Exception:
            log.exception("purging nonces failed; will retry")

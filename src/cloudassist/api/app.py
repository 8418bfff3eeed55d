"""The Starlette application: the ECS RPC endpoint at `/`, the health, readiness and metrics probes, and the
store's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from cloudassist import ids, metrics
from cloudassist.api.agent.hub import KickHub
from cloudassist.api.rpc import actions, envelope
from cloudassist.api.rpc.endpoint import RpcEndpoint
from cloudassist.api.session.client import client_websocket
from cloudassist.api.session.relay import relay_of
from cloudassist.console.app import create_console
from cloudassist.errors import ApiError
from cloudassist.services.access import AccessService
from cloudassist.services.context import Context
from cloudassist.store import migrate
from cloudassist.store.counts import STATUS
from cloudassist.store.tables import result_counts

log = logging.getLogger("cloudassist.api")
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def create_app(ctx: Context) -> Starlette:
    """The server's ASGI application over an open store."""
    actions.load()
    ctx, relay = relay_of(ctx)
    endpoint = RpcEndpoint(ctx)

    async def session(ws: WebSocket) -> None:
        await client_websocket(ws, ctx, relay)

    async def rpc(request: Request) -> Response:
        return await endpoint(request)

    probes = Probes(ctx)

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
        routes=[
            Route("/", rpc, methods=_METHODS),
            Route("/healthz", probes.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", probes.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", probes.metrics, methods=["GET"]),
            Mount("/console", app=create_console(ctx)),  # the web console (console/)
            WebSocketRoute("/session", session),
        ],
        exception_handlers={404: not_found, 405: not_found},
        lifespan=lifespan,
    )


class Probes:
    """Unauthenticated and cheap: `/healthz` (the process answers), `/readyz` (the database answers and holds
    the schema this server was built for: 503 with the reason otherwise), `/metrics` (Prometheus text). None
    of them says anything about an account's resources."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(self, _request: Request) -> Response:
        try:
            async with self.ctx.store.read() as tx:
                revision = await tx.conn.scalar(_REVISION)
        except Exception as exc:  # any failure to read is "not ready", with its kind (never its details)
            log.warning("readyz: the database did not answer: %s", type(exc).__name__)
            return PlainTextResponse(f"database unreachable ({type(exc).__name__})\n", status_code=503)
        if revision != migrate.HEAD:
            return PlainTextResponse(
                f"database schema at revision {revision}, this server needs {migrate.HEAD}\n", status_code=503
            )
        return PlainTextResponse("ready\n")

    async def metrics(self, _request: Request) -> Response:
        try:
            async with self.ctx.store.read() as tx:
                rows = (await tx.conn.execute(_BY_STATUS)).all()
            executions = {str(status): int(n) for status, n in rows}
        except Exception:  # the counters still come out; the records' gauge is left out
            log.warning("metrics: could not read the execution counters", exc_info=True)
            executions = {}
        hub = self.ctx.notify
        body = metrics.render(hub.count() if isinstance(hub, KickHub) else None, executions)
        return Response(body, media_type=metrics.CONTENT_TYPE)


_REVISION = text("SELECT version_num FROM alembic_version")
_C = result_counts.c
_BY_STATUS = select(_C.value, func.sum(_C.n)).where(_C.dim == STATUS).group_by(_C.value)


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

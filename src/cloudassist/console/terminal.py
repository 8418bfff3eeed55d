"""A shell on a managed instance in the browser: the page holds xterm.js (served from the package), asks for a
Session Manager session with the signed-in key, and speaks the official client's framing to the relay's
`/session` websocket on this same host, as `cloudassist session` does.

The session is started by a POST (CSRF-checked like every console form) that answers JSON: the session id and
the websocket path with its single-use token, which lasts ten minutes and is bound to that instance. Nothing
of the token is kept by the page after it dials.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from starlette.responses import JSONResponse, Response

from cloudassist.api.rpc.handlers.sessions import SESSION_PATH
from cloudassist.console.visit import HEADERS, Visit
from cloudassist.domain.paging import Page
from cloudassist.domain.sessions import check_spec
from cloudassist.errors import ApiError
from cloudassist.services.instances import InstanceService
from cloudassist.services.sessions import SessionService
from cloudassist.store.instances import InstanceFilter

#: xterm.js adds `<style>` elements for its theme and cell sizes: pages that hold a terminal allow inline
#: styles (never inline scripts).
TERMINAL_HEADERS: Final = {
    **HEADERS,
    "Content-Security-Policy": HEADERS["Content-Security-Policy"] + "; style-src 'self' 'unsafe-inline'",
}


async def page(visit: Visit) -> Response:
    instance_id = visit.request.path_params["id"]
    found = await InstanceService(visit.ctx).describe_managed_instances(
        InstanceFilter(visit.scope.account_id, visit.scope.region_id, instance_ids=(instance_id,)),
        Page(1, 1, False, None),
    )
    if not found.instances:
        return visit.page("missing.html", 404, what="instance")
    response = visit.page(
        "terminal.html",
        instance=found.instances[0],
        online=found.instances[0].online(visit.ctx.clock.now()),
        username=visit.value("user"),
    )
    response.headers.update(TERMINAL_HEADERS)
    return response


async def start(visit: Visit) -> Response:
    """StartTerminalSession for the page, as the signed-in key: `{"session": id, "path": "/session?…"}`, or the
    API's error code and message with its status."""
    try:
        spec = check_spec({"InstanceId": [visit.request.path_params["id"]], "Username": visit.value("user")})
        started = await SessionService(visit.ctx).start(
            visit.scope,
            spec,
            access_key_id=visit.session.access_key_id,
            client_ip=visit.request.client.host if visit.request.client else "",
        )
    except ApiError as error:
        status = error.http_status if 400 <= error.http_status < 500 else 503
        return JSONResponse({"code": error.code, "message": error.message}, status, headers=HEADERS)
    session_id = started.session.session_id
    query = urlencode({"sessionId": session_id, "token": started.token})
    return JSONResponse({"session": session_id, "path": f"{SESSION_PATH}?{query}"}, 201, headers=HEADERS)

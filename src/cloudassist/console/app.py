"""The console's routes, as a Starlette application the API mounts at `/console`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cloudassist.console import fleet, library, sessions, stream, tasks, terminal
from cloudassist.console.signin import SignIn, change_region, sign_out
from cloudassist.console.visit import PATH, Gate, Visit, redirect, refusal
from cloudassist.services.context import Context

GET, POST = ["GET"], ["POST"]


async def home(_visit: Visit) -> Response:
    return redirect(f"{PATH}instances")


def create_console(ctx: Context) -> Starlette:
    """The console over the services of `ctx`."""
    gate = Gate(ctx)
    signin = SignIn(ctx)

    async def failed(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return refusal(status, "not found" if status == 404 else "method not allowed")

    routes = [
        Route("/", gate(home), methods=GET),
        Route("/signin", signin.show, methods=GET),
        Route("/signin", signin.submit, methods=POST),
        Route("/signout", gate(sign_out), methods=POST),
        Route("/region", gate(change_region), methods=POST),
        Route("/instances", gate(fleet.instances), methods=GET),
        Route("/instances/{id}/deregister", gate(fleet.deregister), methods=POST),
        Route("/instances/{id}/terminal", gate(terminal.page), methods=GET),
        Route("/instances/{id}/terminal", gate(terminal.start), methods=POST),
        Route("/sessions", gate(sessions.sessions), methods=GET),
        Route("/sessions/{channel}/transcript", gate(sessions.transcript), methods=GET),
        Route("/sessions/{channel}/transcript.bin", gate(sessions.transcript_bytes), methods=GET),
        Route("/run", gate(tasks.run_form), methods=GET),
        Route("/run", gate(tasks.run), methods=POST),
        Route("/invocations", gate(tasks.invocations), methods=GET),
        Route("/invocations/{invoke_id}", gate(tasks.invocation), methods=GET),
        Route("/invocations/{invoke_id}/events", gate(stream.events, stream=True), methods=GET),
        Route("/invocations/{invoke_id}/stop", gate(tasks.stop), methods=POST),
        Route("/invocations/{invoke_id}/rerun", gate(tasks.rerun), methods=POST),
        Route("/commands", gate(library.commands), methods=GET),
        Route("/commands", gate(library.create_command), methods=POST),
        Route("/commands/{id}/delete", gate(library.delete_command), methods=POST),
        Route("/files", gate(library.files), methods=GET),
        Route("/files", gate(library.send_file), methods=POST),
        Route("/activations", gate(fleet.activations), methods=GET),
        Route("/activations", gate(fleet.create_activation), methods=POST),
        Route("/activations/{id}", gate(fleet.change_activation), methods=POST),
        Mount("/static", app=StaticFiles(packages=[("cloudassist.console", "static")]), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: failed})

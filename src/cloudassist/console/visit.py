"""One request of a signed-in browser: its session and scope, the CSRF check of a form, and the responses.

The session cookie is `HttpOnly`, `SameSite=Strict`, scoped to `/console/`, and `Secure` when the page was
served over TLS (directly, or behind a proxy that says so with `X-Forwarded-Proto`). Every POST carries the
session's CSRF token in a form field and is refused (403) without it; a POST whose `Origin` is another site
is refused too.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from cloudassist.api.failures import log_internal_error
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.services.logins import SessionService, scope_of
from cloudassist.store.logins import ConsoleSession

log = logging.getLogger("cloudassist.console")
COOKIE: Final = "ca_session"
PATH: Final = "/console/"
#: The largest form a page takes (a file sent from the browser is base64 in it).
MAX_FORM_BYTES: Final = 1024 * 1024
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
#: Pages and their scripts come from this server only; nothing is framed, nothing posts elsewhere.
HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A request refused before any page runs: (status, text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def secure(request: Request) -> bool:
    """Whether the browser reached us over TLS (its cookies must then be `Secure`)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict", secure=secure(request)
    )


async def read_form(request: Request) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body, every value of each field, in order."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Refused(415, "forms are sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, "the form is not UTF-8") from None
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value.replace("\x00", ""))
    return form


def same_origin(request: Request) -> bool:
    """A POST's `Origin` (when the browser sends one) names this very host."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


@dataclass
class Visit:
    """A signed-in request: the services' context, the session, its scope, and the form of a POST."""

    ctx: Context
    request: Request
    session: ConsoleSession
    form: dict[str, list[str]] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        return scope_of(self.session)

    def value(self, name: str, default: str = "") -> str:
        """A form field (POST) or query parameter (GET), stripped; `default` when absent."""
        if self.request.method == "POST":
            values = self.form.get(name)
            return values[-1].strip() if values else default
        return self.request.query_params.get(name, default).strip()

    def values(self, name: str) -> list[str]:
        if self.request.method == "POST":
            return [v.strip() for v in self.form.get(name, []) if v.strip()]
        return [v.strip() for v in self.request.query_params.getlist(name) if v.strip()]

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        return render(self.request, template, status, session=self.session, **context)

    def failed(self, template: str, error: ApiError, **context: Any) -> Response:
        """A page shown again with the error the services raised (its code and message, as the API says)."""
        status = error.http_status if 400 <= error.http_status < 500 else 400
        return self.page(template, status, error=error, **context)


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(HEADERS)
    return response


def redirect(url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(HEADERS)
    return response


Page = Callable[[Visit], Awaitable[Response]]


class Gate:
    """Turns a page into an endpoint that runs only for a live session (and, for a POST, a valid CSRF token)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sessions = SessionService(ctx)

    async def session(self, request: Request) -> ConsoleSession | None:
        return await self.sessions.find(request.cookies.get(COOKIE, ""))

    def __call__(self, page: Page, *, stream: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self.session(request)
            if session is None:
                if request.method == "GET" and not stream:
                    return redirect(f"{PATH}signin?next={request.url.path}")
                return refusal(401, "not signed in")
            visit = Visit(self.ctx, request, session)
            if request.method == "POST":
                try:
                    visit.form = await read_form(request)
                    check_csrf(request, visit.form, session.csrf_token)
                except Refused as exc:
                    return refusal(exc.status, exc.text)
            try:
                return await page(visit)
            except Exception as exc:  # a bug: one line in the log, a plain 500, never a traceback to the browser
                log_internal_error(log, f"console {request.method} {request.url.path}", exc)
                return refusal(500, "internal error (logged on the server)")

        return endpoint


def check_csrf(request: Request, form: Mapping[str, list[str]], expected: str) -> None:
    sent = (form.get("csrf") or [""])[-1]
    if not same_origin(request):
        raise Refused(403, "cross-site form refused")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Refused(403, "the form's CSRF token is missing or wrong: reload the page and try again")


def refusal(status: int, text: str) -> Response:
    response = Response(f"{text}\n", status_code=status, media_type="text/plain")
    response.headers.update(HEADERS)
    return response

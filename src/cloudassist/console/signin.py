"""Signing in with an access key (its id and secret) and signing out.

The sign-in form is protected by a double-submit token (a cookie of its own matched by a form field), since no
session exists yet; failures spend the client address's budget of the same kind of throttle the API uses
(edge/throttle.py, `auth_failures_per_minute`), and an address out of budget is refused (429) before the key
is looked at. Signing out deletes the session row: the old cookie is refused from then on, everywhere.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from cloudassist.console.visit import (
    COOKIE,
    PATH,
    Refused,
    Visit,
    log,
    read_form,
    redirect,
    refusal,
    render,
    set_cookie,
)
from cloudassist.edge.throttle import Throttle
from cloudassist.services.context import Context
from cloudassist.services.logins import SessionService

PRE: Final = "ca_signin"
_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def region_error(ctx: Context, region: str) -> str | None:
    """Why `region` cannot be used (None when it can), by the API's rule for RegionId."""
    if not _REGION.match(region) or (ctx.settings.regions and region not in ctx.settings.regions):
        allowed = ", ".join(ctx.settings.regions) or "letters, digits, - and _"
        return f"Unknown region {region[:64]!r} (allowed: {allowed})."
    return None


def default_region(ctx: Context) -> str:
    return ctx.settings.regions[0] if ctx.settings.regions else "cn-hangzhou"


def safe_next(target: str) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target.startswith(PATH) and not target.startswith("//") and "\\" not in target and "\n" not in target:
        return target
    return PATH


class SignIn:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sessions = SessionService(ctx)
        self.throttle = Throttle("console", ctx.settings.auth_failures_per_minute, ctx.settings.auth_throttle_exempt)

    def _form(
        self,
        request: Request,
        status: int = 200,
        error: str = "",
        key_id: str = "",
        region: str = "",
        target: str = PATH,
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(
            request,
            "signin.html",
            status,
            problem=error,
            key_id=key_id,
            pre=token,
            region=region or default_region(self.ctx),
            regions=self.ctx.settings.regions,
            next=safe_next(target),
        )
        set_cookie(response, request, PRE, token, 3600)
        return response

    async def show(self, request: Request) -> Response:
        return self._form(request, target=request.query_params.get("next", PATH))

    async def submit(self, request: Request) -> Response:
        address = request.client.host if request.client else ""
        wait = self.throttle.retry_after(address)
        if wait:
            response = refusal(429, "too many failed sign-ins from this address: try again later")
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        try:
            form = await read_form(request)
        except Refused as exc:
            return refusal(exc.status, exc.text)

        def field(name: str) -> str:
            return (form.get(name) or [""])[-1].strip()

        pre = request.cookies.get(PRE, "")
        if not pre or not hmac.compare_digest(pre.encode(), field("csrf").encode()):
            return refusal(403, "the sign-in form's token is missing or wrong: reload the page and try again")
        key_id, region, target = field("access_key_id"), field("region") or default_region(self.ctx), field("next")
        problem = region_error(self.ctx, region)
        if problem:
            return self._form(request, 400, problem, key_id, default_region(self.ctx), target)
        signed = await self.sessions.sign_in(key_id, field("access_key_secret"), region)
        if signed is None:
            self.throttle.failed(address)
            return self._form(
                request, 401, "Wrong AccessKeyId or AccessKeySecret, or the key is disabled.", key_id, region, target
            )
        token, session = signed
        log.info("console sign-in: account=%s AccessKeyId=%s from %s", session.account_name, key_id, address or "-")
        response = redirect(safe_next(target))
        set_cookie(response, request, COOKIE, token, int((session.expires_at - self.ctx.clock.now()).total_seconds()))
        response.delete_cookie(PRE, path=PATH)
        return response


async def sign_out(visit: Visit) -> Response:
    await SessionService(visit.ctx).sign_out(visit.session)
    log.info("console sign-out: account=%s AccessKeyId=%s", visit.session.account_name, visit.session.access_key_id)
    response = redirect(f"{PATH}signin")
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


async def change_region(visit: Visit) -> Response:
    region = visit.value("region")
    back = safe_next(visit.value("next", PATH))
    if region_error(visit.ctx, region) is None:
        await SessionService(visit.ctx).set_region(visit.session, region)
    return redirect(back)

"""Helpers of the console tests: a browser-like httpx client of the API app (cookies kept per path), signing in
through the form, and reading the CSRF token of a page."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from cloudassist.api.app import create_app
from cloudassist.services.context import Context

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token the page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Browser:
    """One browser: its cookie jar, and the CSRF token of the last page it signed in to."""

    client: httpx.AsyncClient
    csrf: str = ""

    async def sign_in(self, key_id: str, secret: str, region: str = "cn-hangzhou") -> httpx.Response:
        form = await self.client.get("/console/signin")
        answer = await self.client.post(
            "/console/signin",
            data={
                "csrf": csrf_of(form.text),
                "access_key_id": key_id,
                "access_key_secret": secret,
                "region": region,
                "next": "/console/instances",
            },
        )
        if answer.status_code == 303:
            page = await self.client.get("/console/instances")
            self.csrf = csrf_of(page.text)
        return answer

    async def post(self, path: str, data: dict[str, str | list[str]], **kw: object) -> httpx.Response:
        return await self.client.post(path, data={"csrf": self.csrf, **data}, **kw)  # type: ignore[arg-type]


def browser_of(ctx: Context, base_url: str = "http://127.0.0.1:8080") -> Browser:
    transport = httpx.ASGITransport(app=create_app(ctx))
    return Browser(httpx.AsyncClient(transport=transport, base_url=base_url))

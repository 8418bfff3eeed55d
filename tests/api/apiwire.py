"""Helpers of the in-process API tests: signing with the store's clock, sending through httpx to the
ASGI app, the checks every response must pass, and the managed instances seeded into each store."""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.tags import Tag
from cloudassist.services.access import DEFAULT_ACCOUNT, AccessService
from cloudassist.services.context import Context
from cloudassist.testing import sign_v1

AK, SECRET = "testak", "testsecret"
REGION = "cn-hangzhou"
ERROR_KEYS = frozenset({"RequestId", "HostId", "Code", "Message", "Recommend"})
REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"
FORM = "application/x-www-form-urlencoded"

#: Managed instances seeded into every store: two Linux, one Windows; the first Linux one is tagged.
LINUX_1 = "mi-hzfuzzlinux0000000000001"
LINUX_2 = "mi-hzfuzzlinux0000000000002"
WINDOWS = "mi-hzfuzzwindows00000000001"
INSTANCE_TAG = Tag("env", "fuzz")


class ServerLog(logging.Handler):
    """Everything the server logs while a test runs, tracebacks included, to quote in a failure."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)

    def exception(self) -> str:
        """The last exception logged: its `Type: message` line, or the server's one-line `internal error
        answering …: Type (at file:line)` ("" if none)."""
        found = ""
        for line in "\n".join(self.lines).splitlines():
            if "internal error answering" in line:
                found = line
                continue
            head = line.split(":", 1)[0]
            if line[:1].isalpha() and head.replace(".", "").replace("_", "").isalnum() and ":" in line \
                    and (head.endswith(("Error", "Exception")) or "." in head):
                found = line
        return found[:300]

    def clear(self) -> None:
        self.lines.clear()


@dataclass
class Reply:
    """A response, its format, and its body read as the format says."""

    response: httpx.Response
    fmt: str
    body: dict[str, Any]
    root: str  #: the XML root element's name ("" for JSON)

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def code(self) -> str | None:
        value = self.body.get("Code")
        return value if self.status != 200 and isinstance(value, str) else None


#: Errors raised while the request itself is read, before its parameters are known: their envelope is
#: JSON whatever Format the unread parameters ask for.
REFUSED_UNREAD = frozenset({"RequestTooLarge", "UnsupportedHTTPMethod", "InvalidParameter.Encoding"})


def _refused_unread(response: httpx.Response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    code = body.get("Code") if isinstance(body, dict) else None
    return code in REFUSED_UNREAD or (response.status_code == 400 and "NUL characters" in str(body.get("Message")))


def xml_to_dict(element: ET.Element) -> Any:
    """An XML element as nested dicts; repeated children become lists; a leaf is its text ("" if none)."""
    children = list(element)
    if not children:
        return element.text or ""
    result: dict[str, Any] = {}
    for child in children:
        value = xml_to_dict(child)
        if child.tag in result:
            if not isinstance(result[child.tag], list):
                result[child.tag] = [result[child.tag]]
            result[child.tag].append(value)
        else:
            result[child.tag] = value
    return result


class Api:
    """Signed requests to the app in-process, and the envelope every answer must have."""

    def __init__(self, ctx: Context, client: httpx.AsyncClient, log: ServerLog) -> None:
        self.ctx = ctx
        self.client = client
        self.log = log

    def sign(self, params: Mapping[str, str], *, method: str = "POST") -> dict[str, str]:
        """`params` with the v1 common parameters and signature, timed by the server's clock."""
        return sign_v1(params, AK, SECRET, method=method, timestamp=self.ctx.clock.now())

    async def send(self, params: Mapping[str, str], *, method: str = "POST", where: str = "query",
                   body_params: Mapping[str, str] | None = None, path: str = "/") -> httpx.Response:
        """Send already-signed `params`: in the query, or (`where="form"`) as a form body; `body_params`
        are put in a form body in addition to a query."""
        encoded = urlencode(dict(params), quote_via=quote)
        headers: dict[str, str] = {}
        content: bytes | None = None
        url = path
        if where == "form":
            content, headers["content-type"] = encoded.encode(), FORM
        else:
            url = f"{path}?{encoded}" if encoded else path
        if body_params is not None:
            content, headers["content-type"] = urlencode(dict(body_params), quote_via=quote).encode(), FORM
        return await self.client.request(method, url, content=content, headers=headers)

    async def call(self, action: str | None, params: Mapping[str, str] | None = None, *, method: str = "POST",
                   where: str = "query", fmt: str = "JSON", region: str | None = REGION) -> Reply:
        """Sign and send `action` with `params` (RegionId and Format added), and check the envelope."""
        wanted: dict[str, str] = {"Format": fmt}
        if action is not None:
            wanted["Action"] = action
        if region is not None:
            wanted["RegionId"] = region
        wanted.update(params or {})
        response = await self.send(self.sign(wanted, method=method), method=method, where=where)
        return self.check(response, "XML" if fmt.strip().upper() == "XML" else "JSON")

    async def ok(self, action: str, params: Mapping[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        """The body of a call that must succeed."""
        reply = await self.call(action, params, **kw)
        assert reply.status == 200, (reply.body, self.log.text())
        return reply.body

    def check(self, response: httpx.Response, fmt: str) -> Reply:
        """Assert what holds for every response, and return it read: below 500; a body in `fmt` with its
        Content-Type; a RequestId (an upper-case UUID, echoed in x-acs-request-id); and either a success
        (200) or exactly the five keys of the error envelope with a 4xx status."""
        where = f"{response.request.method} {str(response.request.url)[:300]} -> {response.status_code}"
        context = (f"{where}\nserver exception: {self.log.exception() or 'none'}\nbody: {response.text[:2000]}\n"
                   f"server log:\n{self.log.text()}")
        assert response.status_code < 500, context
        if fmt == "XML" and response.headers.get("content-type") == JSON_TYPE and _refused_unread(response):
            fmt = "JSON"  # refused before its parameters (Format among them) were read
        assert response.headers.get("content-type") == (XML_TYPE if fmt == "XML" else JSON_TYPE), context
        root = ""
        if fmt == "XML":
            try:
                element = ET.fromstring(response.content)  # noqa: S314 - our own server's answer
            except ET.ParseError as exc:
                raise AssertionError(f"not well-formed XML ({exc}): {context}") from None
            root = element.tag
            body = xml_to_dict(element)
            assert isinstance(body, dict), context
        else:
            try:
                body = json.loads(response.content)
            except ValueError as exc:
                raise AssertionError(f"not JSON ({exc}): {context}") from None
            assert isinstance(body, dict), context
        request_id = body.get("RequestId")
        assert isinstance(request_id, str), context
        assert REQUEST_ID.match(request_id), context
        assert response.headers.get("x-acs-request-id") == request_id, context
        if response.status_code == 200:
            assert "Code" not in body or "HostId" not in body, context
            assert root == "" or (root.endswith("Response") and root != "Response"), context
        else:
            assert 400 <= response.status_code < 500, context
            assert set(body) == ERROR_KEYS, context
            assert all(isinstance(body[k], str) and body[k] for k in ERROR_KEYS), context
            assert root in ("", "Error"), context
        return Reply(response, fmt, body, root)


async def seed_instances(ctx: Context) -> None:
    """Register the test key and three managed instances in the default account."""
    await AccessService(ctx).ensure_key(AK, SECRET)
    now = ctx.clock.now()
    async with ctx.store.write() as tx:
        account_id = await tx.accounts.find(DEFAULT_ACCOUNT)
        assert account_id is not None
        for instance_id, os_type in ((LINUX_1, "linux"), (LINUX_2, "linux"), (WINDOWS, "windows")):
            await tx.instances.insert(ManagedInstance(
                instance_id=instance_id, account_id=account_id, region_id=REGION, activation_id="",
                instance_name=instance_id, hostname=instance_id, machine_id=instance_id, os_type=os_type,
                os_version="", agent_version="", intranet_ip="", internet_ip="", public_key="",
                resource_group_id="", registration_time=now, last_heartbeat_time=now, last_invoked_time=None,
                invocation_count=0))
        await tx.tags.add(account_id, "managedinstance", LINUX_1, [INSTANCE_TAG])

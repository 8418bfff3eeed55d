"""The ECS RPC endpoint: parse, authenticate, dispatch, serialize — with one error envelope around it.

Every request is authenticated before anything else is looked at. Whatever goes wrong becomes an
`ApiError` in the API's own format; an unexpected exception is logged in one line (without parameters, which
may hold secrets; api/failures.py) and answered as InternalError, never as a traceback.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from cloudassist import ids, logs, metrics
from cloudassist.api.failures import log_internal_error
from cloudassist.api.rpc import envelope, params
from cloudassist.api.rpc.actions import ACTIONS, FAMILY, Call
from cloudassist.api.rpc.signature import SignatureError, read_signed_request, verify
from cloudassist.domain.text import storable
from cloudassist.edge.throttle import Throttle
from cloudassist.errors import ApiError
from cloudassist.services.access import AccessService
from cloudassist.services.context import Context, Scope
from cloudassist.store.accounts import AccessKey

log = logging.getLogger("cloudassist.api")

VERSION = "2014-05-26"
_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class _Logged:
    """What the access-log line of a call says (no parameter values: they may hold secrets)."""

    action: str = ""
    key_id: str = ""
    account: str = ""
    code: str = ""


@dataclass(frozen=True)
class RpcRequest:
    method: str
    params: dict[str, str]
    query_pairs: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    @property
    def format(self) -> str:
        """XML when Format says so (case-insensitive); JSON otherwise."""
        return "XML" if self.params.get("Format", "").strip().upper() == "XML" else "JSON"

    @property
    def v3(self) -> bool:
        return self.headers.get("authorization", "").startswith("ACS3-")

    @property
    def action(self) -> str | None:
        """The Action: a parameter, or under V3 the signed `x-acs-action` header (v1 does not sign it)."""
        return self.params.get("Action") or (self.headers.get("x-acs-action") if self.v3 else None)

    @property
    def version(self) -> str | None:
        return self.params.get("Version") or (self.headers.get("x-acs-version") if self.v3 else None)


async def read_request(request: Request, limit: int) -> RpcRequest:
    """The request's parameters: the query and a form-encoded body, decoded and merged."""
    if request.method not in ("GET", "POST"):
        raise ApiError.of("UnsupportedHTTPMethod")
    raw_query: bytes = request.scope["query_string"]  # what request.url.query holds, without building a URL
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) + len(raw_query) > limit:
            raise ApiError.of("RequestTooLarge")
    if len(raw_query) > limit:
        raise ApiError.of("RequestTooLarge")
    try:
        query = raw_query.decode("utf-8")
        query_pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
        form_pairs: list[tuple[str, str]] = []
        content_type = request.headers.get("content-type", "")
        if body and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form_pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ApiError.invalid("Encoding", "Parameters must be UTF-8.") from None
    merged: dict[str, str] = {}
    for key, value in [*query_pairs, *form_pairs]:
        if not (storable(key) and storable(value)):  # strict UTF-8 leaves only NUL to refuse here
            raise ApiError.invalid(key[:64].replace("\x00", "") or "Parameter", "NUL characters are not allowed.")
        merged[key] = value
    headers = {k.lower(): v for k, v in request.headers.items()}
    return RpcRequest(request.method, merged, query_pairs, headers, body)


class RpcEndpoint:
    """The ASGI endpoint at `/`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.access = AccessService(ctx)
        self.throttle = Throttle("API", ctx.settings.auth_failures_per_minute, ctx.settings.auth_throttle_exempt)

    async def __call__(self, request: Request) -> Response:
        request_id = ids.request_id()
        began = time.perf_counter()
        fmt = "JSON"
        call = _Logged()
        address = request.client.host if request.client else ""
        try:
            rpc = await read_request(request, self.ctx.settings.max_request_bytes)
            fmt = rpc.format
            action, body = await self.dispatch(rpc, call, address)
            response = envelope.success(action, body, request_id, fmt)
        except Throttled as exc:
            call.code = exc.code
            response = envelope.error(exc, request_id, self.ctx.settings.host_id, fmt)
            response.headers["x-acs-retry-after"] = str(exc.retry_after)
        except ApiError as exc:
            call.code = exc.code
            response = envelope.error(exc, request_id, self.ctx.settings.host_id, fmt)
        except ClientDisconnect:  # gone mid-request (or cut off by the read timeout): nobody to answer
            return Response(status_code=499)
        except Exception as exc:  # a bug: one line in the log (never the parameters), a generic envelope
            log_internal_error(log, f"request {request_id}", exc)
            call.code = "InternalError"
            response = envelope.error(ApiError.of("InternalError"), request_id, self.ctx.settings.host_id, fmt)
        ms = (time.perf_counter() - began) * 1e3
        action = call.action if call.action in ACTIONS or call.action in FAMILY else "other"
        code = call.code or "OK"
        metrics.api_call(action, code, ms / 1e3)
        logs.access(
            "api RequestId=%s Action=%s account=%s AccessKeyId=%s code=%s status=%d ms=%.1f",
            request_id, action, call.account or "-", call.key_id or "-", code, response.status_code, ms,
            kind="api", request_id=request_id, action=action, account=call.account, access_key_id=call.key_id,
            code=code, status=response.status_code, ms=round(ms, 1),
        )
        return response

    async def dispatch(
        self, rpc: RpcRequest, call: _Logged | None = None, address: str = ""
    ) -> tuple[str, dict[str, object]]:
        """Authenticate, then run the action. An address that failed to authenticate too often is refused before
        its signature is checked (edge/throttle.py)."""
        if call is not None:  # the name alone: an unknown one is logged as `other`, never echoed
            call.action = str(rpc.action or "")
        wait = self.throttle.retry_after(address)
        if wait:
            raise Throttled(math.ceil(wait))
        try:
            key = await self.authenticate(rpc)
        except ApiError as exc:
            if exc.http_status < 500:  # a refusal; a store that could not answer (503) is no failure of the caller
                self.throttle.failed(address)
            raise
        if call is not None:
            call.key_id, call.account = key.access_key_id, key.account_name
        name = rpc.action
        if not name:
            raise ApiError.of("MissingParameter", name="Action", http_status=400)
        if rpc.version != VERSION:
            raise ApiError.of("InvalidVersion", name=str(rpc.version or ""))
        spec = ACTIONS.get(name)
        if spec is None:
            if name in FAMILY:
                raise ApiError.of("UnsupportedOperation", name=name)
            raise ApiError.of("InvalidAction.NotFound")
        values = params.read(spec.params, rpc.params)
        region = values["RegionId"]
        if not _REGION.match(region) or (self.ctx.settings.regions and region not in self.ctx.settings.regions):
            raise ApiError.of("InvalidRegionId.NotFound")
        call_ = Call(
            self.ctx, Scope(key.account_id, region), values, key.access_key_id, address, rpc.headers.get("host", "")
        )
        body = await spec.handler(call_)
        return name, body

    async def authenticate(self, rpc: RpcRequest) -> AccessKey:
        try:
            signed = read_signed_request(rpc.method, "/", rpc.params, rpc.query_pairs, rpc.headers, rpc.body)
        except SignatureError as exc:
            raise _api_error(exc) from None

        def check(secret: str) -> None:
            try:
                verify(signed, secret)
            except SignatureError as exc:
                raise _api_error(exc) from None

        return await self.access.authenticate(signed.access_key_id, signed.timestamp, signed.nonce, check)


class Throttled(ApiError):
    """Throttling.User, with the seconds after which the address may try again (`x-acs-retry-after`)."""

    def __init__(self, retry_after: int) -> None:
        error = ApiError.of("Throttling.User")
        super().__init__(error.code, error.message, error.http_status)
        self.retry_after = retry_after


def _api_error(exc: SignatureError) -> ApiError:
    """A signature problem as the gateway reports it: 400, except an unknown key (404)."""
    return ApiError(exc.code, exc.message, 404 if exc.code.startswith("InvalidAccessKeyId") else 400)

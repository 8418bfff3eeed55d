"""Wire helpers of the security suite: v1- and V3-signed requests put on real HTTP with httpx, the official
SDK clients pointed at a live server over plain HTTP, and the checks every refusal must pass.

V3 requests are signed with the tea SDK's own signer (`alibabacloud_tea_openapi.utils.Utils.get_authorization`),
so a request this module builds is byte-for-byte what `alibabacloud_ecs20140526` would send, except that we
choose `x-acs-date` and `x-acs-signature-nonce` (to skew the clock or replay a nonce).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from darabonba.request import DaraRequest  # type: ignore[import-untyped]

from cloudassist.clock import iso
from cloudassist.testing import sign_v1

AK, SECRET = "testak", "testsecret"
REGION = "cn-hangzhou"
OTHER_REGION = "cn-shanghai"
VERSION = "2014-05-26"
V3 = "ACS3-HMAC-SHA256"
#: The only keys an error body may have: nothing about any resource.
ERROR_KEYS = frozenset({"RequestId", "HostId", "Code", "Message", "Recommend"})
MISMATCH_PREFIX = "Specified signature is not matched with our calculation. server string to sign is:"
TIMEOUT = 30.0
#: One client for the whole run (a new httpx client per request costs ~150 ms of TLS setup); it ignores
#: proxy variables, so requests to 127.0.0.1 go straight to the server.
HTTP = httpx.Client(timeout=TIMEOUT, trust_env=False)


def now() -> datetime:
    return datetime.now(UTC)


def encode_query(params: Mapping[str, str]) -> str:
    """RFC 3986 query encoding (space as %20), as both SDKs put parameters on the wire."""
    return urlencode(dict(params), quote_via=quote)


# ------------------------------------------------------------------------------------------------ v1

def v1_signed(action: str | None, params: Mapping[str, str], access_key_id: str = AK, secret: str = SECRET,
              **kw: Any) -> dict[str, str]:
    """`params` (+ Action unless None) with the v1 common parameters and a correct HMAC-SHA1 signature."""
    base = dict(params) if action is None else {"Action": action, **params}
    return sign_v1(base, access_key_id, secret, **kw)


def send_params(endpoint: str, params: Mapping[str, str], *, method: str = "POST",
                headers: Mapping[str, str] | None = None, body: bytes | None = None) -> httpx.Response:
    """Send `params` in the query string of `method /` (an empty body unless one is given)."""
    url = f"http://{endpoint}/?{encode_query(params)}" if params else f"http://{endpoint}/"
    return HTTP.request(method, url, headers=dict(headers or {}), content=body)


def send_v1(endpoint: str, action: str, params: Mapping[str, str], access_key_id: str = AK,
            secret: str = SECRET, **kw: Any) -> httpx.Response:
    return send_params(endpoint, v1_signed(action, params, access_key_id, secret, **kw))


# ------------------------------------------------------------------------------------------------ V3

@dataclass
class V3Request:
    """A V3 (ACS3-HMAC-SHA256) request ready to send: query, headers (Authorization included) and body."""

    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    extra_headers: dict[str, str] = field(default_factory=dict)

    def send(self, endpoint: str) -> httpx.Response:
        url = f"http://{endpoint}/?{encode_query(self.query)}" if self.query else f"http://{endpoint}/"
        return HTTP.post(url, headers={**self.headers, **self.extra_headers}, content=self.body)


def v3_signed(endpoint: str, action: str, query: Mapping[str, str], access_key_id: str = AK, secret: str = SECRET,
              *, date: datetime | None = None, nonce: str | None = None, body: bytes = b"",
              content_type: str | None = None, headers: Mapping[str, str] | None = None) -> V3Request:
    """A V3 request for `action` signed by the tea SDK's `Utils.get_authorization`, every header signed
    (`headers` adds more headers, signed too)."""
    payload = hashlib.sha256(body).hexdigest()
    request = DaraRequest()
    request.method = "POST"
    request.pathname = "/"
    request.query = dict(query)
    request.headers = {
        "host": endpoint,
        "x-acs-action": action,
        "x-acs-version": VERSION,
        "x-acs-date": iso(date or now()),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": payload,
        "accept": "application/json",
    }
    if content_type is not None:
        request.headers["content-type"] = content_type
    request.headers.update(headers or {})
    authorization = Utils.get_authorization(request, V3, payload, access_key_id, secret)
    return V3Request(dict(query), {**request.headers, "authorization": authorization}, body)


# ------------------------------------------------------------------------------------------------ SDKs

def acs_client(access_key_id: str = AK, secret: str = SECRET, region: str = REGION) -> AcsClient:
    """aliyunsdkcore's AcsClient (RPC v1 HMAC-SHA1 signing)."""
    return AcsClient(access_key_id, secret, region, auto_retry=False)


def acs_request(endpoint: str, action: str, params: Mapping[str, str]) -> CommonRequest:
    request = CommonRequest(domain=endpoint, version=VERSION, action_name=action)
    request.set_method("POST")
    request.set_protocol_type("http")
    for key, value in params.items():
        request.add_query_param(key, value)
    return request


def acs_call(client: AcsClient, endpoint: str, action: str, params: Mapping[str, str]) -> dict[str, Any]:
    """Call `action` through aliyunsdkcore; the parsed JSON body (raises ServerException on an error)."""
    raw = client.do_action_with_exception(acs_request(endpoint, action, params))
    result: dict[str, Any] = json.loads(raw)
    return result


def acs_error(client: AcsClient, endpoint: str, action: str, params: Mapping[str, str]) -> ServerException:
    """The ServerException aliyunsdkcore raises for a call that must fail."""
    try:
        body = acs_call(client, endpoint, action, params)
    except ServerException as exc:
        return exc
    raise AssertionError(f"{action} {dict(params)} was accepted: {body}")


def tea_client(endpoint: str, access_key_id: str = AK, secret: str = SECRET, region: str = REGION) -> EcsClient:
    """alibabacloud_ecs20140526's Client (V3 ACS3-HMAC-SHA256 signing by default)."""
    return EcsClient(open_api_models.Config(access_key_id=access_key_id, access_key_secret=secret,
                                            endpoint=endpoint, protocol="http", region_id=region))


# ------------------------------------------------------------------------------------------------ checks

def refused(response: httpx.Response, code: str | set[str], status: int) -> dict[str, Any]:
    """Assert `response` is the JSON error `code` (or one of `code`) with HTTP `status`, telling nothing else."""
    assert response.status_code == status, f"HTTP {response.status_code}, want {status}: {response.text}"
    body: dict[str, Any] = response.json()
    codes = {code} if isinstance(code, str) else code
    assert body.get("Code") in codes, f"Code {body.get('Code')!r}, want {sorted(codes)}: {response.text}"
    assert set(body) <= ERROR_KEYS, f"an error body carries more than an error: {sorted(body)}"
    assert body.get("RequestId"), response.text
    return body


def accepted(response: httpx.Response) -> dict[str, Any]:
    """Assert `response` is a 200 success body (no Code) and return it."""
    assert response.status_code == 200, f"HTTP {response.status_code}, want 200: {response.text}"
    body: dict[str, Any] = response.json()
    assert "Code" not in body, response.text
    return body

"""A small ECS RPC client: signed calls (HMAC-SHA1, signature v1) over HTTP, JSON answers, API errors as values.

It talks to the API as any SDK does, so it works against any cloudassist server (and the real service). It
uses the standard library only and imports nothing of the server, so `cloudassist session`, `run` and the
listings start fast and work from a plain install.

    client = Client(Endpoint.parse("127.0.0.1:8080"), credentials)
    client.call("DescribeInvocations", {"InvokeId": "t-..."})        # the answer's JSON object
    for item in client.items("DescribeInvocations", {}, ("Invocations", "Invocation")): ...   # every page
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from cloudassist import __version__
from cloudassist.clock import iso

__all__ = ["ApiCallError", "Client", "Credentials", "Endpoint", "flatten", "sign_v1"]

VERSION = "2014-05-26"
#: Sent as User-Agent: the server's access log and the real service see which client called.
USER_AGENT = f"cloudassist-cli/{__version__}"


class ApiCallError(Exception):
    """A call that did not succeed: the API's own error (Code, Message, RequestId) or a transport failure.

    `str()` is what the CLI prints: `Code: Message (RequestId)`.
    """

    def __init__(self, code: str, message: str, request_id: str = "", status: int = 0) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        suffix = f" ({self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{suffix}"


@dataclass(frozen=True)
class Credentials:
    """An AccessKey pair, the region to call, and where they came from (for messages; never the secret)."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    region_id: str
    source: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where the API answers: `http://127.0.0.1:8080` or `https://ecs.cn-hangzhou.aliyuncs.com`."""

    scheme: str
    netloc: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`host[:port]` (plain HTTP, as the SDKs' `set_endpoint`) or a `http://` / `https://` URL."""
        text = text.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"not an API endpoint: {text!r} (expected HOST[:PORT] or http(s)://HOST[:PORT])")
        return cls(parts.scheme, parts.netloc)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}/"

    @property
    def loopback(self) -> bool:
        """The endpoint is this machine (localhost, 127.0.0.0/8, ::1)."""
        host = urlsplit(self.url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def _pct(text: str) -> str:
    """RFC 3986 encoding of UTF-8: only A-Z a-z 0-9 - _ . ~ stay literal (the signature's percentEncode)."""
    return quote(text, safe="~", encoding="utf-8")


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(params: Mapping[str, object]) -> dict[str, str]:
    """The wire form of `params` (ECS RPC flattening): None is left out, a list becomes `Name.1`, `Name.2`, …, a
    list of mappings `Name.1.Key`, a mapping a JSON string (`Parameters`), a bool `true`/`false`."""
    flat: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            flat[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            for index, item in enumerate(value, 1):
                if isinstance(item, Mapping):
                    flat.update({f"{name}.{index}.{k}": _text(v) for k, v in item.items() if v is not None})
                else:
                    flat[f"{name}.{index}"] = _text(item)
        else:
            flat[name] = _text(value)
    return flat


def sign_v1(
    params: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    method: str = "POST",
    timestamp: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """`params` plus the common parameters of signature v1 and the HMAC-SHA1 `Signature` over all of them."""
    signed = {
        "Format": "JSON",
        "Version": VERSION,
        "AccessKeyId": access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": iso(timestamp or datetime.now(UTC)),
        **params,
    }
    canonical = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in sorted(signed.items()))
    to_sign = f"{method}&{_pct('/')}&{_pct(canonical)}"
    digest = hmac.new((secret + "&").encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha1).digest()
    return {**signed, "Signature": base64.b64encode(digest).decode("ascii")}


def _error_from(status: int, body: bytes) -> ApiCallError:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("Code"):
        return ApiCallError(str(doc["Code"]), str(doc.get("Message", "")), str(doc.get("RequestId", "")), status)
    snippet = body[:200].decode("utf-8", errors="replace").strip()
    return ApiCallError(f"HTTP{status}", snippet or "the endpoint answered with no API error document", "", status)


class Client:
    """Signed RPC calls to one endpoint with one AccessKey, in the credentials' region."""

    def __init__(self, endpoint: Endpoint, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.timeout = timeout
        # the standard proxy variables are honoured (with NO_PROXY), except for a server on this machine
        local = urllib.request.ProxyHandler({}) if endpoint.loopback else urllib.request.ProxyHandler()
        self._opener = urllib.request.build_opener(local)

    def call(self, action: str, params: Mapping[str, object] | None = None) -> dict[str, Any]:
        """Call `action` with `params` (flattened, `RegionId` added unless given); the answer's JSON object.

        Parameters travel in a form body (no limit on the request line); raises ApiCallError on an API error
        or when the endpoint cannot be reached."""
        wire = {"RegionId": self.credentials.region_id, **flatten(params or {}), "Action": action}
        signed = sign_v1(wire, self.credentials.access_key_id, self.credentials.access_key_secret)
        body = "&".join(f"{_pct(k)}={_pct(v)}" for k, v in signed.items()).encode("ascii")
        request = urllib.request.Request(  # noqa: S310 - the scheme is http(s), checked by Endpoint.parse
            self.endpoint.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
                "x-acs-action": action,
                "x-acs-version": VERSION,
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _error_from(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiCallError("EndpointUnreachable", f"cannot reach {self.endpoint.url}: {reason}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _error_from(200, raw) from None
        if not isinstance(answer, dict):
            raise _error_from(200, raw)
        return answer

    def pages(self, action: str, params: Mapping[str, object], *, every: bool = True) -> Iterator[dict[str, Any]]:
        """The answers of `action`, following NextToken while `every` (else the first page only)."""
        token = params.get("NextToken")
        while True:
            answer = self.call(action, {**params, "NextToken": token or None})
            yield answer
            token = next_token(answer)
            if not every or not token:
                return

    def items(
        self, action: str, params: Mapping[str, object], path: Sequence[str], *, every: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The items at `path` (e.g. `("Invocations", "Invocation")`) of every page (or the first)."""
        for answer in self.pages(action, params, every=every):
            yield from dig(answer, path)


def next_token(answer: Mapping[str, Any]) -> str:
    """An answer's NextToken, at its top or in its one wrapper object (DescribeInvocationResults' Invocation)."""
    token = answer.get("NextToken")
    if token is None:
        for value in answer.values():
            if isinstance(value, dict) and "NextToken" in value:
                token = value["NextToken"]
    return str(token or "")


def dig(answer: Mapping[str, Any], path: Sequence[str]) -> list[dict[str, Any]]:
    """The list at `path` in `answer` ([] where a level is missing)."""
    node: Any = answer
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return [item for item in node if isinstance(item, dict)] if isinstance(node, list) else []

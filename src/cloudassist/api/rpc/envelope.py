"""The one place responses are serialized: success bodies and the error envelope, as JSON or XML."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from starlette.responses import Response

from cloudassist.errors import ApiError

JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"


def success(action: str, body: Mapping[str, Any], request_id: str, fmt: str) -> Response:
    """HTTP 200 with `body` plus its RequestId, as `fmt` ("JSON" or "XML") asks."""
    payload = {"RequestId": request_id, **body}
    return _render(f"{action}Response", payload, 200, fmt, request_id)


def error(exc: ApiError, request_id: str, host_id: str, fmt: str) -> Response:
    """The error envelope `{RequestId, HostId, Code, Message, Recommend}` with the error's status."""
    payload = {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": exc.code,
        "Message": exc.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}",
    }
    return _render("Error", payload, exc.http_status, fmt, request_id)


def _render(root: str, payload: Mapping[str, Any], status: int, fmt: str, request_id: str) -> Response:
    headers = {"x-acs-request-id": request_id}
    if fmt == "XML":
        text = '<?xml version="1.0" encoding="UTF-8"?>' + to_xml(root, payload)
        return Response(text.encode(), status, headers=headers, media_type=XML_TYPE)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status, headers=headers, media_type=JSON_TYPE)


def to_xml(name: str, value: Any) -> str:
    """`value` as XML element(s) named `name`. A list repeats the element once per item, which
    gives both the wrapped lists (`<InvocationResults><InvocationResult>…`) and the bare ones."""
    if isinstance(value, list):
        return "".join(to_xml(name, item) for item in value)
    if isinstance(value, Mapping):
        inner = "".join(to_xml(key, item) for key, item in value.items() if item is not None)
        return f"<{name}>{inner}</{name}>"
    text = ("true" if value else "false") if isinstance(value, bool) else escape(_xml_safe(str(value)))
    return f"<{name}>{text}</{name}>"


def _xml_safe(text: str) -> str:
    """Drop the characters XML 1.0 cannot carry at all (control characters other than tab, CR, LF)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 0x20 and ch not in "\ufffe\uffff"))

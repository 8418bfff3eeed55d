"""Tests for RPC v1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256) signature parsing and verification."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import rpc_signature_composer
from darabonba.core import DaraCore  # type: ignore[import-untyped]
from darabonba.request import DaraRequest  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudassist.api.rpc.signature import (
    SignatureError,
    SignedRequest,
    compute_signature,
    read_signed_request,
    verify,
)
from cloudassist.testing import sign_v1

SECRET = "testsecret"
MISMATCH_PREFIX = "Specified signature is not matched with our calculation. server string to sign is:"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

Wire = tuple[str, str, dict[str, str], list[tuple[str, str]], dict[str, str], bytes]


def replay(raw: str, body: bytes = b"") -> Wire:
    """Turn a captured request (request line + header lines) into read_signed_request arguments,
    decoding query and form body the way the server does."""
    request_line, *header_lines = raw.strip("\n").split("\n")
    method, target, _version = request_line.split(" ")
    parts = urlsplit(target)
    query_pairs = parse_qsl(parts.query, keep_blank_values=True)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    params = dict(query_pairs)
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return method, parts.path, params, query_pairs, headers, body


def read(wire: Wire) -> SignedRequest:
    return read_signed_request(*wire)


def error_of(wire: Wire, secret: str | None = None) -> SignatureError:
    """The SignatureError raised by parsing `wire` or, when a secret is given, by parsing and verifying it."""
    with pytest.raises(SignatureError) as info:
        parse_and_verify(wire, secret)
    return info.value


def parse_and_verify(wire: Wire, secret: str | None) -> None:
    request = read(wire)
    if secret is not None:
        verify(request, secret)


def with_param(wire: Wire, name: str, value: str | None) -> Wire:
    """Copy of a v1 wire request with one parameter replaced (or removed when value is None)."""
    method, path, params, pairs, headers, body = wire
    params = {k: v for k, v in params.items() if k != name}
    pairs = [(k, v) for k, v in pairs if k != name]
    if value is not None:
        params[name] = value
        pairs.append((name, value))
    return method, path, params, pairs, headers, body


def with_header(wire: Wire, name: str, value: str | None) -> Wire:
    """Copy of a wire request with one header replaced (or removed when value is None)."""
    method, path, params, pairs, headers, body = wire
    headers = {k: v for k, v in headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return method, path, params, pairs, headers, body


# ---------------------------------------------------------------------------------------------------------
# Reference vectors and captured requests (docs/reference ecs-api.md §3.3, §3.4, §3.9), verbatim.

OFFICIAL_V1_PARAMS = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
    "Signature": "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
}
OFFICIAL_V1_STS = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
    "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)

V3_VECTOR = """\
POST /?RegionId=cn-hangzhou&InvokeId=t-hz0jdfwd9f****&ContentEncoding=PlainText HTTP/1.1
host: ecs.cn-hangzhou.aliyuncs.com
x-acs-action: DescribeInvocationResults
x-acs-version: 2014-05-26
x-acs-date: 2024-01-01T00:00:00Z
x-acs-signature-nonce: 3156853299f313e23d1673dc12e1703d
x-acs-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
Authorization: ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=100b2edbd5e8ff0150078cd45ebf4edcfa10c2a976632cb44758c8c8f99c1eec
"""  # noqa: E501
V3_VECTOR_CANONICAL = """\
POST
/
ContentEncoding=PlainText&InvokeId=t-hz0jdfwd9f%2A%2A%2A%2A&RegionId=cn-hangzhou
host:ecs.cn-hangzhou.aliyuncs.com
x-acs-action:DescribeInvocationResults
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-date:2024-01-01T00:00:00Z
x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d
x-acs-version:2014-05-26

host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""

CORE_RUN_COMMAND = """\
POST /?Type=RunShellScript&CommandContent=echo%20hello%20world%20%26%20%22quoted%22%20~%2A&InstanceId.1=i-abc&InstanceId.2=i-def&Timeout=60&Parameters=%7B%22name%22%3A%20%22Jack%22%7D&EnableParameter=True&Tag.1.Value=v1&Tag.1.Key=k1&ContentEncoding=PlainText&Version=2014-05-26&Action=RunCommand&Format=JSON&RegionId=cn-hangzhou&Timestamp=2026-11-26T20%3A39%3A25Z&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=4ffb16d80ec4864de43bf9bbda61192a&AccessKeyId=testak&Signature=ySgVKt2tsEzyjFq43%2BGhHfpX6bM%3D HTTP/1.1
Host: 127.0.0.1:40957
User-Agent: AlibabaCloud (Linux 6.18.44-fc-v657;x86_64) Python/3.11.7 Core/2.16.1 python-requests/2.18.3
Accept-Encoding: identity
Accept: */*
Connection: keep-alive
x-acs-action: RunCommand
x-acs-version: 2014-05-26
x-sdk-invoke-type: normal
x-sdk-client: python/2.0.0
Content-Length: 0
"""  # noqa: E501
CORE_RUN_COMMAND_STS = "POST&%2F&AccessKeyId%3Dtestak%26Action%3DRunCommand%26CommandContent%3Decho%2520hello%2520world%2520%2526%2520%2522quoted%2522%2520~%252A%26ContentEncoding%3DPlainText%26EnableParameter%3DTrue%26Format%3DJSON%26InstanceId.1%3Di-abc%26InstanceId.2%3Di-def%26Parameters%3D%257B%2522name%2522%253A%2520%2522Jack%2522%257D%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D4ffb16d80ec4864de43bf9bbda61192a%26SignatureType%3D%26SignatureVersion%3D1.0%26Tag.1.Key%3Dk1%26Tag.1.Value%3Dv1%26Timeout%3D60%26Timestamp%3D2026-11-26T20%253A39%253A25Z%26Type%3DRunShellScript%26Version%3D2014-05-26"  # noqa: E501

CORE_DESCRIBE = """\
POST /?InvokeId=t-hz0000000000001&ContentEncoding=PlainText&PageSize=50&IncludeHistory=False&Version=2014-05-26&Action=DescribeInvocationResults&Format=JSON&RegionId=cn-hangzhou&Timestamp=2026-11-26T20%3A39%3A25Z&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0&SignatureNonce=b5b6001c40a6f80df67e3de987791b34&AccessKeyId=testak&Signature=I7ZP54%2BJyX%2BVA0E5iuTIH%2BnOI%2FE%3D HTTP/1.1
Host: 127.0.0.1:40957
User-Agent: AlibabaCloud (Linux 6.18.44-fc-v657;x86_64) Python/3.11.7 Core/2.16.1 python-requests/2.18.3
Accept-Encoding: identity
Accept: */*
Connection: keep-alive
x-acs-action: DescribeInvocationResults
x-acs-version: 2014-05-26
x-sdk-invoke-type: normal
x-sdk-client: python/2.0.0
Content-Length: 0
"""  # noqa: E501
CORE_DESCRIBE_STS = "POST&%2F&AccessKeyId%3Dtestak%26Action%3DDescribeInvocationResults%26ContentEncoding%3DPlainText%26Format%3DJSON%26IncludeHistory%3DFalse%26InvokeId%3Dt-hz0000000000001%26PageSize%3D50%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Db5b6001c40a6f80df67e3de987791b34%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3D2026-11-26T20%253A39%253A25Z%26Version%3D2014-05-26"  # noqa: E501

TEA_V3_RUN_COMMAND = """\
POST /?CommandContent=echo+hello+world+%26+%22quoted%22+~%2A&ContentEncoding=PlainText&EnableParameter=True&InstanceId.1=i-abc&InstanceId.2=i-def&Parameters=%7B%22name%22%3A%22Jack%22%7D&RegionId=cn-hangzhou&Tag.1.Key=k1&Tag.1.Value=v1&Timeout=60&Type=RunShellScript HTTP/1.1
Accept-Encoding: identity
host: 127.0.0.1:40957
x-acs-version: 2014-05-26
x-acs-action: RunCommand
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-date: 2026-11-26T20:39:39Z
x-acs-signature-nonce: 815064e169df47c49bb529be00fb36d3
accept: application/json
x-acs-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider: static_ak
Authorization: ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=4a5427a6ffeb400295e886b0e622f3420803546356402f894d3b0571b5b89a5c
Content-Length: 0
"""  # noqa: E501
TEA_V3_RUN_COMMAND_CANONICAL = """\
POST
/
CommandContent=echo%20hello%20world%20%26%20%22quoted%22%20~%2A&ContentEncoding=PlainText&EnableParameter=True&InstanceId.1=i-abc&InstanceId.2=i-def&Parameters=%7B%22name%22%3A%22Jack%22%7D&RegionId=cn-hangzhou&Tag.1.Key=k1&Tag.1.Value=v1&Timeout=60&Type=RunShellScript
accept:application/json
host:127.0.0.1:40957
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:RunCommand
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2026-11-26T20:39:39Z
x-acs-signature-nonce:815064e169df47c49bb529be00fb36d3
x-acs-version:2014-05-26

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""

TEA_V3_DESCRIBE = """\
POST /?ContentEncoding=PlainText&IncludeHistory=False&InvokeId=t-hz0000000000001&PageSize=50&RegionId=cn-hangzhou HTTP/1.1
Accept-Encoding: identity
host: 127.0.0.1:40957
x-acs-version: 2014-05-26
x-acs-action: DescribeInvocationResults
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-date: 2026-11-26T20:39:40Z
x-acs-signature-nonce: 3ec9e4044156ab2128ee729d3fb787da
accept: application/json
x-acs-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider: static_ak
Authorization: ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=9c5166a2621564fa4398ae3903d422d15fef6b4a0c0f4d6ce0ba9502c6d739b1
Content-Length: 0
"""  # noqa: E501
TEA_V3_DESCRIBE_CANONICAL = """\
POST
/
ContentEncoding=PlainText&IncludeHistory=False&InvokeId=t-hz0000000000001&PageSize=50&RegionId=cn-hangzhou
accept:application/json
host:127.0.0.1:40957
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:DescribeInvocationResults
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2026-11-26T20:39:40Z
x-acs-signature-nonce:3ec9e4044156ab2128ee729d3fb787da
x-acs-version:2014-05-26

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"""

TEA_V2_RUN_COMMAND = """\
POST /?Action=RunCommand&Format=json&Version=2014-05-26&Timestamp=2026-11-26T20%3A39%3A40Z&SignatureNonce=c477dda10f75a8f98c6d0f1688fbef57&CommandContent=ZWNobyBoaQ%3D%3D&InstanceId.1=i-abc&Parameters=%7B%22a%22%3A%22b%22%7D&RegionId=cn-hangzhou&Type=RunShellScript&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testak&Signature=hd%2FGDbhNgQjRS11JOY1zXyJuLIk%3D HTTP/1.1
Accept-Encoding: identity
host: 127.0.0.1:40957
x-acs-version: 2014-05-26
x-acs-action: RunCommand
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-credentials-provider: static_ak
Content-Length: 0
"""  # noqa: E501
TEA_V2_RUN_COMMAND_STS = "POST&%2F&AccessKeyId%3Dtestak%26Action%3DRunCommand%26CommandContent%3DZWNobyBoaQ%253D%253D%26Format%3Djson%26InstanceId.1%3Di-abc%26Parameters%3D%257B%2522a%2522%253A%2522b%2522%257D%26RegionId%3Dcn-hangzhou%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dc477dda10f75a8f98c6d0f1688fbef57%26SignatureVersion%3D1.0%26Timestamp%3D2026-11-26T20%253A39%253A40Z%26Type%3DRunShellScript%26Version%3D2014-05-26"  # noqa: E501

V1_CAPTURES = [
    pytest.param(CORE_RUN_COMMAND, CORE_RUN_COMMAND_STS, "4ffb16d80ec4864de43bf9bbda61192a", id="core-run"),
    pytest.param(CORE_DESCRIBE, CORE_DESCRIBE_STS, "b5b6001c40a6f80df67e3de987791b34", id="core-describe"),
]
V3_CAPTURES = [
    pytest.param(TEA_V3_RUN_COMMAND, TEA_V3_RUN_COMMAND_CANONICAL, "815064e169df47c49bb529be00fb36d3", id="tea-v3-run"),
    pytest.param(TEA_V3_DESCRIBE, TEA_V3_DESCRIBE_CANONICAL, "3ec9e4044156ab2128ee729d3fb787da", id="tea-v3-describe"),
]
ALL_CAPTURES = [
    pytest.param(CORE_RUN_COMMAND, id="core-run"),
    pytest.param(CORE_DESCRIBE, id="core-describe"),
    pytest.param(TEA_V3_RUN_COMMAND, id="tea-v3-run"),
    pytest.param(TEA_V3_DESCRIBE, id="tea-v3-describe"),
    pytest.param(TEA_V2_RUN_COMMAND, id="tea-v2-run"),
]


# ---------------------------------------------------------------------------------------------------------
# Positive: reference vectors and captures.


def test_official_v1_vector() -> None:
    """The documented v1 example (GET, secret testsecret) yields the documented string to sign and
    Signature OLeaidS1JvxuMvnyHOwuJ+uX5qY=, and verify() accepts it."""
    request = read_signed_request("GET", "/", OFFICIAL_V1_PARAMS, list(OFFICIAL_V1_PARAMS.items()), {}, b"")
    assert request.scheme == "v1"
    assert request.access_key_id == "testid"
    assert request.nonce == "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
    assert request.timestamp == datetime(2016, 2, 23, 12, 46, 24, tzinfo=UTC)
    assert request.string_to_sign == OFFICIAL_V1_STS
    assert compute_signature(request, SECRET) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    verify(request, SECRET)


def test_deterministic_v3_vector() -> None:
    """The SDK-computed V3 vector rebuilds the documented CanonicalRequest (sha256 fdc7d467…) and
    Signature=100b2edb…, and verify() accepts it."""
    request = read(replay(V3_VECTOR))
    assert request.scheme == "v3"
    assert request.access_key_id == "testid"
    assert request.nonce == "3156853299f313e23d1673dc12e1703d"
    assert request.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.canonical_request == V3_VECTOR_CANONICAL
    assert request.string_to_sign == (
        "ACS3-HMAC-SHA256\nfdc7d467e8f7e335cee710b204a6b818532b0908370f244f5f7a1bb721efe56d"
    )
    assert compute_signature(request, SECRET) == ("100b2edbd5e8ff0150078cd45ebf4edcfa10c2a976632cb44758c8c8f99c1eec")
    verify(request, SECRET)


@pytest.mark.parametrize(("raw", "sts", "nonce"), V1_CAPTURES)
def test_captured_aliyunsdkcore_requests_verify(raw: str, sts: str, nonce: str) -> None:
    """Requests captured from aliyun-python-sdk-core (%20/%2A encoding, empty SignatureType=) rebuild the
    server-side string to sign recorded in the capture and verify with secret testsecret."""
    request = read(replay(raw))
    assert request.scheme == "v1"
    assert request.access_key_id == "testak"
    assert request.nonce == nonce
    assert request.timestamp == datetime(2026, 11, 26, 20, 39, 25, tzinfo=UTC)
    assert request.string_to_sign == sts
    verify(request, SECRET)


@pytest.mark.parametrize(("raw", "canonical", "nonce"), V3_CAPTURES)
def test_captured_tea_v3_requests_verify(raw: str, canonical: str, nonce: str) -> None:
    """Requests captured from the tea SDK (V3, '+' for space in the query, nine signed headers including
    host:port) rebuild the recorded CanonicalRequest and verify with secret testsecret."""
    request = read(replay(raw))
    assert request.scheme == "v3"
    assert request.access_key_id == "testak"
    assert request.nonce == nonce
    assert request.canonical_request == canonical
    verify(request, SECRET)


def test_captured_tea_v2_request_verifies() -> None:
    """The tea SDK's legacy RPC signing (signature_algorithm='v2': Format=json, no SignatureType) rebuilds
    the recorded string to sign and verifies with secret testsecret."""
    request = read(replay(TEA_V2_RUN_COMMAND))
    assert request.scheme == "v1"
    assert request.nonce == "c477dda10f75a8f98c6d0f1688fbef57"
    assert request.timestamp == datetime(2026, 11, 26, 20, 39, 40, tzinfo=UTC)
    assert request.string_to_sign == TEA_V2_RUN_COMMAND_STS
    verify(request, SECRET)


# ---------------------------------------------------------------------------------------------------------
# Negative: signature mismatches.


@pytest.mark.parametrize("raw", ALL_CAPTURES)
def test_wrong_secret_reports_string_to_sign(raw: str) -> None:
    """A wrong secret gives SignatureDoesNotMatch whose message carries ':' and, after
    'server string to sign is:', exactly the string to sign (what aliyunsdkcore compares via split(':')[1]);
    the secret itself never appears."""
    request = read(replay(raw))
    secret = "not-the-secret-Zq9"
    with pytest.raises(SignatureError) as info:
        verify(request, secret)
    error = info.value
    assert error.code == "SignatureDoesNotMatch"
    assert error.message.startswith(MISMATCH_PREFIX)
    assert error.message.split("server string to sign is:", 1)[1] == request.string_to_sign
    assert error.message.split(":")[1] == request.string_to_sign
    assert secret not in error.message
    assert secret not in str(error)
    assert secret not in repr(request)


@pytest.mark.parametrize(
    ("raw", "name", "value"),
    [
        pytest.param(CORE_RUN_COMMAND, "InstanceId.2", "i-evil", id="v1-changed"),
        pytest.param(CORE_RUN_COMMAND, "InstanceId.3", "i-evil", id="v1-added"),
        pytest.param(CORE_RUN_COMMAND, "SignatureType", None, id="v1-empty-param-dropped"),
        pytest.param(TEA_V2_RUN_COMMAND, "CommandContent", "cm0gLXJmIC8=", id="v2-changed"),
        pytest.param(TEA_V3_RUN_COMMAND, "InstanceId.2", "i-evil", id="v3-changed"),
        pytest.param(TEA_V3_RUN_COMMAND, "Timeout", None, id="v3-removed"),
        pytest.param(TEA_V3_DESCRIBE, "RegionId", "cn-beijing", id="v3-region"),
    ],
)
def test_tampered_parameter_is_rejected(raw: str, name: str, value: str | None) -> None:
    """Changing, adding or removing any signed parameter (even an empty one) breaks the signature."""
    error = error_of(with_param(replay(raw), name, value), SECRET)
    assert error.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("host", "127.0.0.1:40958", id="host-port"),
        pytest.param("x-acs-action", "DeleteCommand", id="action"),
        pytest.param("user-agent", "evil", id="optional-signed-header"),
    ],
)
def test_tampered_signed_header_is_rejected(name: str, value: str) -> None:
    """In V3 every header named in SignedHeaders is covered, including host with its port."""
    error = error_of(with_header(replay(TEA_V3_RUN_COMMAND), name, value), SECRET)
    assert error.code == "SignatureDoesNotMatch"


def test_unsigned_header_change_is_ignored() -> None:
    """Headers not named in SignedHeaders (Accept-Encoding, Content-Length) do not affect V3 verification."""
    wire = with_header(replay(TEA_V3_RUN_COMMAND), "accept-encoding", "gzip")
    verify(read(with_header(wire, "content-length", "0")), SECRET)


def test_tampered_v3_signature_is_rejected() -> None:
    """A V3 Authorization whose Signature hex differs in one digit is rejected."""
    wire = replay(TEA_V3_DESCRIBE)
    auth = wire[4]["authorization"]
    tampered = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    assert error_of(with_header(wire, "authorization", tampered), SECRET).code == "SignatureDoesNotMatch"


def _v3_body_headers(body: bytes, content_type: str | None, *, sign_content_type: bool = True) -> dict[str, str]:
    """The headers of a V3 request (query `RegionId=cn-hangzhou`) signed by the tea SDK's signer with `body`;
    its content-type header (if any) is left out of the signature when `sign_content_type` is false (added
    after signing, as a proxy could)."""
    payload = hashlib.sha256(body).hexdigest()
    sdk_request = DaraRequest()
    sdk_request.method = "POST"
    sdk_request.pathname = "/"
    sdk_request.query = {"RegionId": "cn-hangzhou"}
    sdk_request.headers = {
        "host": "ecs.example.test", "x-acs-action": "RunCommand", "x-acs-version": "2014-05-26",
        "x-acs-date": "2024-01-01T00:00:00Z", "x-acs-signature-nonce": "n1", "x-acs-content-sha256": payload,
    }
    if content_type is not None and sign_content_type:
        sdk_request.headers["content-type"] = content_type
    auth = Utils.get_authorization(sdk_request, "ACS3-HMAC-SHA256", payload, "testak", SECRET)
    headers = {**sdk_request.headers, "authorization": auth}
    if content_type is not None:
        headers["content-type"] = content_type
    return headers


def _v3_with_body(body: bytes, content_type: str | None, *, sign_content_type: bool = True) -> SignedRequest:
    headers = _v3_body_headers(body, content_type, sign_content_type=sign_content_type)
    return read_signed_request("POST", "/", {"RegionId": "cn-hangzhou"}, [("RegionId", "cn-hangzhou")], headers, body)


def test_v3_body_hash_mismatch_is_rejected() -> None:
    """When the body does not hash to x-acs-content-sha256, verify() raises SignatureDoesNotMatch even
    with the right secret, and the message still carries 'server string to sign is:'."""
    headers = _v3_body_headers(b"InstanceId.1=i-abc", "application/x-www-form-urlencoded")
    request = read_signed_request("POST", "/", {}, [("RegionId", "cn-hangzhou")], headers, b"InstanceId.3=i-evil")
    assert not request.content_sha256_matches
    with pytest.raises(SignatureError) as info:
        verify(request, SECRET)
    assert info.value.code == "SignatureDoesNotMatch"
    assert info.value.message == MISMATCH_PREFIX + request.string_to_sign


def test_v3_signed_body_verifies() -> None:
    """A V3 request with a body verifies when x-acs-content-sha256 is the hex SHA-256 of exactly that body
    (the HashedRequestPayload line of the canonical request)."""
    body = b'{"k": "v"}'
    request = _v3_with_body(body, "application/json")
    assert request.canonical_request.endswith("\n" + hashlib.sha256(body).hexdigest())
    verify(request, SECRET)


def test_v3_form_body_with_its_content_type_signed_verifies() -> None:
    """A form body signed as the tea SDK signs one (content-type among the signed headers) verifies."""
    verify(_v3_with_body(b"InstanceId.1=i-abc", "application/x-www-form-urlencoded"), SECRET)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None])
def test_v3_body_without_a_signed_content_type_is_refused(content_type: str | None) -> None:
    """A V3 request with a body whose content-type is not signed (sent unsigned, or not sent at all) is refused
    400 IncompleteSignature, although the body's hash matches: changing the type in transit would otherwise
    drop or add the body's parameters without breaking the signature."""
    with pytest.raises(SignatureError) as info:
        _v3_with_body(b"InstanceId.1=i-abc", content_type, sign_content_type=False)
    assert info.value.code == "IncompleteSignature"


def test_v3_without_a_body_needs_no_content_type() -> None:
    """An empty body needs no content-type (the SDK sets none on a request without a body)."""
    verify(_v3_with_body(b"", None), SECRET)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("SignatureNonce", "n" * 129, "InvalidParameter.SignatureNonce"),
    ("SignatureNonce", "n" * 5000, "InvalidParameter.SignatureNonce"),
    ("AccessKeyId", "k" * 65, "InvalidAccessKeyId.NotFound"),
])
def test_v1_nonce_or_key_id_longer_than_their_columns_is_refused(field: str, value: str, code: str) -> None:
    """A SignatureNonce longer than the 128 characters the nonce table keeps, or an AccessKeyId longer than any
    key's 64, is refused while the request is read, before it reaches the store (PostgreSQL refuses such a
    value with an error, which answered 500)."""
    params = sign_v1({"Action": "DescribeCommands", field: value}, "testak", SECRET)
    with pytest.raises(SignatureError) as info:
        read_signed_request("POST", "/", params, list(params.items()), {}, b"")
    assert info.value.code == code


def test_v3_nonce_longer_than_its_column_is_refused() -> None:
    """The same limit holds for a V3 x-acs-signature-nonce."""
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": "h", "x-acs-action": "DescribeCommands", "x-acs-version": "2014-05-26",
               "x-acs-date": "2024-01-01T00:00:00Z", "x-acs-signature-nonce": "n" * 129,
               "x-acs-content-sha256": payload}
    names = ";".join(sorted(headers))
    headers["authorization"] = f"ACS3-HMAC-SHA256 Credential=testak,SignedHeaders={names},Signature=00"
    with pytest.raises(SignatureError) as info:
        read_signed_request("POST", "/", {}, [], headers, b"")
    assert info.value.code == "InvalidParameter.SignatureNonce"


# ---------------------------------------------------------------------------------------------------------
# Negative: malformed or incomplete v1 requests.

MISSING_V1 = [
    pytest.param(
        "AccessKeyId",
        "MissingParameter.AccessKeyId",
        'The input parameter "AccessKeyId" that is mandatory for processing this request is not supplied.',
        id="AccessKeyId",
    ),
    pytest.param(
        "Signature",
        "MissingParameter.Signature",
        'The input parameter "Signature" that is mandatory for processing this request is not supplied.',
        id="Signature",
    ),
    pytest.param(
        "SignatureNonce",
        "MissingParameter.SignatureNonce",
        'The input parameter "SignatureNonce" that is mandatory for processing this request is not supplied.',
        id="SignatureNonce",
    ),
    pytest.param(
        "Timestamp",
        "IllegalTimestamp",
        'The input parameter "Timestamp" that is mandatory for processing this request is not supplied.',
        id="Timestamp",
    ),
    pytest.param(
        "SignatureMethod",
        "InvalidParamater",
        'The specified parameter "SignatureMethod" is not valid.',
        id="SignatureMethod",
    ),
    pytest.param(
        "SignatureVersion",
        "InvalidParamater",
        'The specified parameter "SignatureVersion" is not valid.',
        id="SignatureVersion",
    ),
]


@pytest.mark.parametrize(("name", "code", "message"), MISSING_V1)
def test_v1_missing_parameter(name: str, code: str, message: str) -> None:
    """Each mandatory v1 auth parameter, when absent, gives its documented code and message."""
    error = error_of(with_param(replay(CORE_DESCRIBE), name, None))
    assert (error.code, error.message) == (code, message)


@pytest.mark.parametrize(("name", "code", "message"), MISSING_V1)
def test_v1_empty_parameter(name: str, code: str, message: str) -> None:
    """An empty value (e.g. `AccessKeyId=`) counts as absent for the mandatory v1 auth parameters."""
    error = error_of(with_param(replay(CORE_DESCRIBE), name, ""))
    assert (error.code, error.message) == (code, message)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("SignatureMethod", "HMAC-SHA256", id="method-sha256"),
        pytest.param("SignatureMethod", "hmac-sha1", id="method-case"),
        pytest.param("SignatureVersion", "2.0", id="version-2"),
    ],
)
def test_v1_unsupported_signature_method_or_version(name: str, value: str) -> None:
    """SignatureMethod other than HMAC-SHA1 / SignatureVersion other than 1.0 is InvalidParamater (sic)."""
    error = error_of(with_param(replay(CORE_DESCRIBE), name, value))
    assert error.code == "InvalidParamater"
    assert error.message == f'The specified parameter "{name}" is not valid.'


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-26 20:39:25Z",
        "2026-11-26T20:39:25",
        "2026-11-26T20:39:25+00:00",
        "2026-11-26T20:39Z",
        "2026-13-26T20:39:25Z",
        "2026-02-30T20:39:25Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T20:39:25.Z",
        "1764189565",
        "2026-11-26T20:39:25z",
        "２０２６-11-26T20:39:25Z",
        " 2026-11-26T20:39:25Z",
    ],
)
def test_v1_malformed_timestamp(value: str) -> None:
    """Anything but YYYY-MM-DDThh:mm:ss[.fff]Z (valid calendar values, ASCII digits) is
    InvalidTimeStamp.Format."""
    error = error_of(with_param(replay(CORE_DESCRIBE), "Timestamp", value))
    assert error.code == "InvalidTimeStamp.Format"
    assert error.message == "Specified time stamp or date value is not well formatted."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T20:39:25.123Z", datetime(2026, 11, 26, 20, 39, 25, 123000, tzinfo=UTC)),
        ("2026-11-26T20:39:25.1234567Z", datetime(2026, 11, 26, 20, 39, 25, 123456, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_v1_timestamp_fractional_seconds_accepted(value: str, expected: datetime) -> None:
    """Fractional seconds are accepted and the timestamp is returned as an aware UTC datetime."""
    request = read(with_param(replay(CORE_DESCRIBE), "Timestamp", value))
    assert request.timestamp == expected
    assert request.timestamp.utcoffset() is not None


def test_v1_without_authorization_ignores_foreign_scheme() -> None:
    """An Authorization header that is not ACS3-* leaves the request on the v1 path."""
    wire = with_header(replay(CORE_DESCRIBE), "authorization", "Bearer abc")
    verify(read(wire), SECRET)


def test_v1_http_method_is_signed() -> None:
    """The real HTTP verb is part of the v1 string to sign: replaying a POST-signed request as GET fails."""
    _method, path, params, pairs, headers, body = replay(CORE_DESCRIBE)
    request = read_signed_request("GET", path, params, pairs, headers, body)
    assert request.string_to_sign.startswith("GET&%2F&")
    with pytest.raises(SignatureError) as info:
        verify(request, SECRET)
    assert info.value.code == "SignatureDoesNotMatch"


def test_v1_form_body_params_are_signed() -> None:
    """aliyunsdkcore signs form-body parameters together with the query (get_signed_url): the merged set
    verifies, and dropping the body parameters from the signed set breaks it."""
    query = {"Action": "RunCommand", "Version": "2014-05-26", "RegionId": "cn-hangzhou"}
    body_params = {"CommandContent": "echo hi & bye *~", "InstanceId.1": "i-abc"}
    url, sdk_sts = rpc_signature_composer.get_signed_url(dict(query), "testak", SECRET, "JSON", "POST", body_params)
    body = urlencode(body_params).encode("ascii")
    raw = f"POST {url} HTTP/1.1\nhost: 127.0.0.1\ncontent-type: application/x-www-form-urlencoded\n"
    wire = replay(raw, body)
    assert wire[2]["CommandContent"] == "echo hi & bye *~"
    request = read(wire)
    assert request.string_to_sign == sdk_sts
    verify(request, SECRET)

    method, path, _merged, pairs, headers, _ = wire
    query_only = dict(pairs)
    with pytest.raises(SignatureError) as info:
        verify(read_signed_request(method, path, query_only, pairs, headers, body), SECRET)
    assert info.value.code == "SignatureDoesNotMatch"


# ---------------------------------------------------------------------------------------------------------
# Negative: malformed or incomplete V3 requests.

INCOMPLETE = ("IncompleteSignature", "The request signature does not conform to Aliyun standards.")


@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SM3", "ACS3-RSA-SHA256", "ACS3-HMAC-SHA256X"])
def test_v3_other_algorithms_are_incomplete(algorithm: str) -> None:
    """ACS3-* algorithms other than ACS3-HMAC-SHA256 are refused with IncompleteSignature."""
    wire = replay(TEA_V3_DESCRIBE)
    auth = wire[4]["authorization"].replace("ACS3-HMAC-SHA256", algorithm, 1)
    error = error_of(with_header(wire, "authorization", auth))
    assert (error.code, error.message) == INCOMPLETE


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param("ACS3-HMAC-SHA256", id="bare"),
        pytest.param("ACS3-HMAC-SHA256 ", id="bare-space"),
        pytest.param("ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host", id="no-signature"),
        pytest.param("ACS3-HMAC-SHA256 Credential=testak,Signature=ab", id="no-signed-headers"),
        pytest.param("ACS3-HMAC-SHA256 SignedHeaders=host,Signature=ab", id="no-credential"),
        pytest.param("ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab", id="empty-credential"),
        pytest.param(
            "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature=ab", id="duplicate-field"
        ),
        pytest.param("ACS3-HMAC-SHA256 Credential=a;SignedHeaders=host;Signature=ab", id="wrong-separator"),
        pytest.param("ACS3-HMAC-SHA256 garbage", id="garbage"),
    ],
)
def test_v3_malformed_authorization(auth: str) -> None:
    """An Authorization header lacking Credential, SignedHeaders or Signature is IncompleteSignature."""
    error = error_of(with_header(replay(TEA_V3_DESCRIBE), "authorization", auth))
    assert (error.code, error.message) == INCOMPLETE


REQUIRED_V3 = ["host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"]


@pytest.mark.parametrize("name", REQUIRED_V3)
def test_v3_required_header_not_signed(name: str) -> None:
    """Each required header must be listed in SignedHeaders, even when it is present on the request."""
    wire = replay(TEA_V3_DESCRIBE)
    auth = wire[4]["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0]
    reduced = ";".join(h for h in signed.split(";") if h != name)
    error = error_of(with_header(wire, "authorization", auth.replace(signed, reduced)))
    assert (error.code, error.message) == INCOMPLETE


@pytest.mark.parametrize("name", REQUIRED_V3)
def test_v3_required_header_absent(name: str) -> None:
    """Each required header must be present on the request."""
    error = error_of(with_header(replay(TEA_V3_DESCRIBE), name, None))
    assert (error.code, error.message) == INCOMPLETE


@pytest.mark.parametrize(
    "signed",
    [
        pytest.param("accept;host;;x-acs-action", id="empty-name"),
        pytest.param("host;host;x-acs-action", id="duplicate"),
        pytest.param("Host;x-acs-action", id="upper-case"),
        pytest.param("x-not-sent;host", id="absent-header"),
    ],
)
def test_v3_bad_signed_headers_list(signed: str) -> None:
    """SignedHeaders with empty, duplicate, upper-case or unsent names is IncompleteSignature."""
    wire = replay(TEA_V3_DESCRIBE)
    auth = wire[4]["authorization"]
    original = auth.split("SignedHeaders=")[1].split(",")[0]
    error = error_of(with_header(wire, "authorization", auth.replace(original, signed + ";" + original)))
    assert (error.code, error.message) == INCOMPLETE


def test_v3_malformed_date() -> None:
    """A malformed x-acs-date is InvalidTimeStamp.Format, as for the v1 Timestamp."""
    error = error_of(with_header(replay(TEA_V3_DESCRIBE), "x-acs-date", "Thu, 26 Nov 2026 20:39:40 GMT"))
    assert error.code == "InvalidTimeStamp.Format"


def test_v3_ignores_v1_query_signature() -> None:
    """A V3 request is judged by its Authorization header only: v1 query parameters do not change the
    scheme, though (being in the query) they are covered by the canonical query."""
    wire = with_param(replay(TEA_V3_DESCRIBE), "Signature", "bogus")
    request = read(wire)
    assert request.scheme == "v3"
    with pytest.raises(SignatureError):
        verify(request, SECRET)


# ---------------------------------------------------------------------------------------------------------
# Property tests against the SDKs' own signing code.

RESERVED_V1 = {
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "AccessKeyId",
    "Format",
    "Action",
    "Version",
}
TRICKY = " *~+&=%/:?#\"'é漢😀\t\n"
text = st.text(st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), max_size=12)
keys = st.text(st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), min_size=1, max_size=8)
safe_keys = st.from_regex(r"[A-Za-z0-9._~-]{1,10}", fullmatch=True)
secrets = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(
    query=st.dictionaries(keys, text, max_size=6),
    body_params=st.dictionaries(keys, text, max_size=4),
    secret=secrets,
)
def test_aliyunsdkcore_signatures_verify(query: dict[str, str], body_params: dict[str, str], secret: str) -> None:
    """For arbitrary parameter names and values (unicode, spaces, '*', '~', '+', '&', '=') aliyunsdkcore's
    get_signed_url, sent as query + form body and decoded by the server, verifies — and our string to
    sign equals the SDK's."""
    query = {k: v for k, v in query.items() if k not in RESERVED_V1}
    body_params = {k: v for k, v in body_params.items() if k not in RESERVED_V1 and k not in query}
    url, sdk_sts = rpc_signature_composer.get_signed_url(dict(query), "testak", secret, "JSON", "POST", body_params)
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    body = urlencode(body_params).encode("ascii")
    params = dict(pairs)
    params.update(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    request = read_signed_request("POST", "/", params, pairs, {"host": "h"}, body)
    assert request.string_to_sign == sdk_sts
    verify(request, secret)
    with pytest.raises(SignatureError):
        verify(request, secret + "x")


@settings(max_examples=150, deadline=None)
@given(query=st.dictionaries(keys, text, max_size=6), secret=secrets)
def test_tea_rpc_v1_signatures_verify(query: dict[str, str], secret: str) -> None:
    """The tea SDK's legacy RPC signer (Utils.get_rpcsignature) over arbitrary parameters, put on the
    wire by darabonba's DaraCore.compose_url ('+' for space), verifies."""
    sdk_request = DaraRequest()
    sdk_request.method = "POST"
    sdk_request.pathname = "/"
    sdk_request.headers = {"host": "127.0.0.1"}
    sdk_request.query = {
        "Action": "RunCommand",
        "Format": "json",
        "Version": "2014-05-26",
        "Timestamp": Utils.get_timestamp(),
        "SignatureNonce": Utils.get_nonce(),
        **{k: v for k, v in query.items() if k not in RESERVED_V1},
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": "testak",
    }
    sdk_request.query["Signature"] = Utils.get_rpcsignature(dict(sdk_request.query), "POST", secret)
    url = DaraCore.compose_url(sdk_request)
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    verify(read_signed_request("POST", "/", dict(pairs), pairs, {"host": "127.0.0.1"}, b""), secret)


@settings(max_examples=150, deadline=None)
@given(
    query=st.dictionaries(safe_keys, text, max_size=6),
    extra_header=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    body=st.binary(max_size=64),
    secret=secrets,
)
def test_tea_v3_signatures_verify(query: dict[str, str], extra_header: str, body: bytes, secret: str) -> None:
    """The tea SDK's own V3 signer (Utils.get_authorization, which signs every header present and strips
    values) over arbitrary query values and bodies, put on the wire by DaraCore.compose_url, verifies."""
    payload = hashlib.sha256(body).hexdigest()
    sdk_request = DaraRequest()
    sdk_request.method = "POST"
    sdk_request.pathname = "/"
    sdk_request.query = query
    sdk_request.headers = {
        "host": "127.0.0.1:8080",
        "x-acs-version": "2014-05-26",
        "x-acs-action": "RunCommand",
        "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
        "x-acs-date": Utils.get_timestamp(),
        "x-acs-signature-nonce": Utils.get_nonce(),
        "accept": "application/json",
        "x-acs-content-sha256": payload,
        "x-acs-extra": extra_header,
    }
    if body:  # the SDK sets (and so signs) a content-type whenever it sends a body
        sdk_request.headers["content-type"] = "application/x-www-form-urlencoded"
    auth = Utils.get_authorization(sdk_request, "ACS3-HMAC-SHA256", payload, "testak", secret)
    url = DaraCore.compose_url(sdk_request)
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    headers = {k.lower(): v for k, v in sdk_request.headers.items()}
    headers["authorization"] = auth
    request = read_signed_request("POST", "/", dict(pairs), pairs, headers, body)
    assert request.access_key_id == "testak"
    verify(request, secret)
    with pytest.raises(SignatureError):
        verify(request, secret + "x")

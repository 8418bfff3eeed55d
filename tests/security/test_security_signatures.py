"""Who may call: wrong secrets, unknown and disabled keys, tampered and incomplete signatures.

Each refusal is checked for its exact Code and HTTP status, and is followed by the correct request,
which must be accepted, so that no refusal here is vacuous (a server refusing everything fails).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.DescribeCommandsRequest import DescribeCommandsRequest
from secwire import (
    AK,
    HTTP,
    MISMATCH_PREFIX,
    REGION,
    SECRET,
    V3,
    V3Request,
    accepted,
    acs_call,
    acs_client,
    acs_error,
    refused,
    send_params,
    tea_client,
    v1_signed,
    v3_signed,
)

from cloudassist.testing import sign_v1
from conftest import Deployment

LIST = {"RegionId": REGION}


def tea_error(call: Callable[[], Any]) -> ClientException:
    try:
        result = call()
    except ClientException as exc:
        return exc
    raise AssertionError(f"accepted: {result.body.to_map()}")


def tea_describe_commands(endpoint: str, access_key_id: str, secret: str) -> Any:
    client = tea_client(endpoint, access_key_id, secret)
    return client.describe_commands(ecs_models.DescribeCommandsRequest(region_id=REGION))


# ------------------------------------------------------------------------------------------------ wrong secret

def test_wrong_secret_v1_is_signature_does_not_match(deployment: Deployment) -> None:
    """A v1 (HMAC-SHA1) request signed with the wrong secret is refused 400 SignatureDoesNotMatch, the message
    being 'server string to sign is:' + exactly the string the client signed (and never the secret);
    the same request signed with the right secret is accepted."""
    params = v1_signed("DescribeCommands", LIST, AK, "not-the-secret")
    body = refused(send_params(deployment.endpoint, params), "SignatureDoesNotMatch", 400)
    assert "server string to sign is:" in body["Message"]
    assert body["Message"].startswith(MISMATCH_PREFIX)
    server_sts = body["Message"][len(MISMATCH_PREFIX):]
    assert server_sts.startswith("POST&%2F&")
    assert "AccessKeyId%3Dtestak" in server_sts
    assert "Action%3DDescribeCommands" in server_sts
    assert SECRET not in body["Message"]
    assert "not-the-secret" not in body["Message"]

    accepted(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST)))


def test_wrong_secret_v1_through_aliyunsdkcore(deployment: Deployment) -> None:
    """aliyunsdkcore (AcsClient) with the wrong secret gets a ServerException of HTTP 400; its code is
    InvalidAccessKeySecret, which the SDK substitutes for SignatureDoesNotMatch only when the server's
    'server string to sign is:' equals its own string to sign. The right secret then works."""
    def request() -> DescribeCommandsRequest:
        typed = DescribeCommandsRequest()  # the typed request keeps its string to sign (CommonRequest does not)
        typed.set_endpoint(deployment.endpoint)
        typed.set_protocol_type("http")
        return typed

    with pytest.raises(ServerException) as info:
        acs_client(AK, "wrong-secret").do_action_with_exception(request())
    assert info.value.get_http_status() == 400
    assert info.value.get_error_code() == "InvalidAccessKeySecret", info.value.get_error_msg()

    body = json.loads(acs_client().do_action_with_exception(request()))
    assert "Commands" in body


def test_wrong_secret_v3_is_signature_does_not_match(deployment: Deployment) -> None:
    """A V3 (ACS3-HMAC-SHA256) request from alibabacloud_ecs20140526 signed with the wrong secret raises
    ClientException SignatureDoesNotMatch, HTTP 400, whose message holds 'server string to sign is:' and
    the V3 string to sign; the same client with the right secret succeeds."""
    exc = tea_error(lambda: tea_describe_commands(deployment.endpoint, AK, "wrong-secret"))
    assert exc.code == "SignatureDoesNotMatch"
    assert exc.status_code == 400
    message = exc.data["Message"]
    assert "server string to sign is:" in message
    assert message[len(MISMATCH_PREFIX):].startswith(V3 + "\n")
    assert "wrong-secret" not in message
    assert SECRET not in message

    raw = v3_signed(deployment.endpoint, "DescribeCommands", LIST, AK, "wrong-secret").send(deployment.endpoint)
    refused(raw, "SignatureDoesNotMatch", 400)

    response = tea_describe_commands(deployment.endpoint, AK, SECRET)
    assert response.status_code == 200
    assert response.body.commands is not None


# ------------------------------------------------------------------------------------------------ unknown key

def test_unknown_access_key_id_is_not_found(deployment: Deployment) -> None:
    """A request signed by an AccessKeyId the server never issued is refused 404 InvalidAccessKeyId.NotFound,
    over raw v1, raw V3, aliyunsdkcore and the tea SDK; the known key is accepted right after."""
    endpoint = deployment.endpoint
    refused(send_params(endpoint, v1_signed("DescribeCommands", LIST, "LTAInobodyhasthiskey0", SECRET)),
            "InvalidAccessKeyId.NotFound", 404)
    refused(v3_signed(endpoint, "DescribeCommands", LIST, "LTAInobodyhasthiskey0", SECRET).send(endpoint),
            "InvalidAccessKeyId.NotFound", 404)

    exc = acs_error(acs_client("LTAInobodyhasthiskey0", SECRET), endpoint, "DescribeCommands", LIST)
    assert (exc.get_error_code(), exc.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)
    tea = tea_error(lambda: tea_describe_commands(endpoint, "LTAInobodyhasthiskey0", SECRET))
    assert (tea.code, tea.status_code) == ("InvalidAccessKeyId.NotFound", 404)

    accepted(send_params(endpoint, v1_signed("DescribeCommands", LIST)))
    accepted(v3_signed(endpoint, "DescribeCommands", LIST).send(endpoint))


# ------------------------------------------------------------------------------------------------ disabled key

def test_disabled_key_is_forbidden_and_enabling_restores_it(deployment: Deployment) -> None:
    """A key disabled with `cloudassist keys disable` is refused 403 Forbidden.AccessKeyDisabled on both
    signature versions and both SDKs, even with a correct signature, while other keys keep working;
    after `cloudassist keys enable` the same key is accepted again."""
    endpoint = deployment.endpoint
    key_id, secret = deployment.create_key("carol")
    accepted(send_params(endpoint, v1_signed("DescribeCommands", LIST, key_id, secret)))
    assert tea_describe_commands(endpoint, key_id, secret).status_code == 200

    out = deployment.cli("keys", "disable", key_id).stdout
    assert "disabled" in out
    try:
        refused(send_params(endpoint, v1_signed("DescribeCommands", LIST, key_id, secret)),
                "Forbidden.AccessKeyDisabled", 403)
        refused(v3_signed(endpoint, "DescribeCommands", LIST, key_id, secret).send(endpoint),
                "Forbidden.AccessKeyDisabled", 403)
        # the other server process sees the same store
        refused(send_params(deployment.secondary.endpoint, v1_signed("DescribeCommands", LIST, key_id, secret)),
                "Forbidden.AccessKeyDisabled", 403)
        exc = acs_error(acs_client(key_id, secret), endpoint, "DescribeCommands", LIST)
        assert (exc.get_error_code(), exc.get_http_status()) == ("Forbidden.AccessKeyDisabled", 403)
        tea = tea_error(lambda: tea_describe_commands(endpoint, key_id, secret))
        assert (tea.code, tea.status_code) == ("Forbidden.AccessKeyDisabled", 403)
        # a state-changing call is refused too
        refused(send_params(endpoint, v1_signed("CreateCommand", {
            **LIST, "Name": "from-disabled-key", "Type": "RunShellScript", "CommandContent": "ZWNobyBoaQ=="},
            key_id, secret)), "Forbidden.AccessKeyDisabled", 403)
        accepted(send_params(endpoint, v1_signed("DescribeCommands", LIST)))  # testak is unaffected
    finally:
        assert "enabled" in deployment.cli("keys", "enable", key_id).stdout

    accepted(send_params(endpoint, v1_signed("DescribeCommands", LIST, key_id, secret)))
    accepted(v3_signed(endpoint, "DescribeCommands", LIST, key_id, secret).send(endpoint))
    assert acs_call(acs_client(key_id, secret), endpoint, "DescribeCommands", LIST)["Commands"] == {"Command": []}
    assert tea_describe_commands(endpoint, key_id, secret).status_code == 200


# ------------------------------------------------------------------------------------------------ tampering

V1_TAMPERING: dict[str, Callable[[dict[str, str]], dict[str, str]]] = {
    "change a business parameter": lambda p: {**p, "PageSize": "50"},
    "change the region": lambda p: {**p, "RegionId": "cn-shanghai"},
    "change the action": lambda p: {**p, "Action": "DeleteCommand"},
    "add a parameter": lambda p: {**p, "Name": "x"},
    "remove a parameter": lambda p: {k: v for k, v in p.items() if k != "PageSize"},
    "change the timestamp": lambda p: {**p, "Timestamp": p["Timestamp"][:-3] + ("00Z" if p["Timestamp"][-3:] != "00Z"
                                                                                 else "01Z")},
    "change the nonce": lambda p: {**p, "SignatureNonce": p["SignatureNonce"][::-1]},
    "empty the SignatureType": lambda p: {**p, "SignatureType": ""},
}


@pytest.mark.parametrize("how", list(V1_TAMPERING))
def test_v1_parameter_changed_after_signing_is_refused(deployment: Deployment, how: str) -> None:
    """Changing, adding or removing any one parameter of a v1-signed request after signing makes it
    400 SignatureDoesNotMatch; the untouched request (same nonce, so the forgery did not use it up) is
    accepted afterwards."""
    original = v1_signed("DescribeCommands", {**LIST, "PageSize": "10"})
    tampered = V1_TAMPERING[how](dict(original))
    assert tampered != original
    refused(send_params(deployment.endpoint, tampered), "SignatureDoesNotMatch", 400)
    accepted(send_params(deployment.endpoint, original))


def test_v1_form_body_added_after_signing_is_refused(deployment: Deployment) -> None:
    """Form-body parameters take part in the v1 signature: a parameter smuggled into an
    application/x-www-form-urlencoded body after signing is 400 SignatureDoesNotMatch."""
    original = v1_signed("DescribeCommands", LIST)
    response = send_params(deployment.endpoint, original, body=b"PageSize=50",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    refused(response, "SignatureDoesNotMatch", 400)
    accepted(send_params(deployment.endpoint, original))


def test_v1_signature_binds_the_action(deployment: Deployment) -> None:
    """A v1 signature covers which operation runs: a v1-signed request with no Action parameter is not
    dispatched to whatever an (unsigned) x-acs-action header names, it is refused 400 MissingParameter;
    the same parameters with a signed Action are accepted."""
    unsigned_action = sign_v1(LIST, AK, SECRET)
    response = send_params(deployment.endpoint, unsigned_action, headers={"x-acs-action": "DescribeCommands"})
    refused(response, {"MissingParameter", "MissingParameter.Action"}, 400)
    accepted(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST)))


V3_TAMPERING: dict[str, Callable[[V3Request], V3Request]] = {
    "change a query value": lambda r: V3Request({**r.query, "RegionId": "cn-shanghai"}, r.headers),
    "add a query parameter": lambda r: V3Request({**r.query, "PageSize": "50"}, r.headers),
    "remove a query parameter": lambda r: V3Request({}, r.headers),
    "add Action to the query": lambda r: V3Request({**r.query, "Action": "DeleteCommand"}, r.headers),
    "change x-acs-action": lambda r: V3Request(r.query, {**r.headers, "x-acs-action": "DeleteCommand"}),
    "change x-acs-version": lambda r: V3Request(r.query, {**r.headers, "x-acs-version": "2016-03-14"}),
    "change x-acs-date": lambda r: V3Request(r.query, {**r.headers, "x-acs-date": _shift_date(r)}),
    "change the nonce": lambda r: V3Request(r.query, {**r.headers, "x-acs-signature-nonce": "0" * 32}),
    "change the host": lambda r: V3Request(r.query, {**r.headers, "host": "ecs.aliyuncs.com"}),
    "change a signed extra header": lambda r: V3Request(r.query, {**r.headers, "accept": "text/xml"}),
    "change the signature": lambda r: V3Request(r.query, {
        **r.headers, "authorization": r.headers["authorization"][:-4] + "0000"
        if not r.headers["authorization"].endswith("0000") else r.headers["authorization"][:-4] + "1111"}),
}


def _shift_date(request: V3Request) -> str:
    date = request.headers["x-acs-date"]
    return date[:-3] + ("00Z" if date[-3:] != "00Z" else "01Z")


@pytest.mark.parametrize("how", list(V3_TAMPERING))
def test_v3_request_changed_after_signing_is_refused(deployment: Deployment, how: str) -> None:
    """Changing any signed part of a V3 request (query, a signed header, the body, the signature) after
    signing makes it 400 SignatureDoesNotMatch; the untouched request is accepted afterwards."""
    original = v3_signed(deployment.endpoint, "DescribeCommands", LIST)
    tampered = V3_TAMPERING[how](original)
    refused(tampered.send(deployment.endpoint), "SignatureDoesNotMatch", 400)
    accepted(original.send(deployment.endpoint))


FORM = "application/x-www-form-urlencoded"


def test_v3_body_with_matching_hash_still_needs_the_signature(deployment: Deployment) -> None:
    """Replacing a V3 request's body together with its x-acs-content-sha256 header still breaks the
    signature (the hash is signed): 400 SignatureDoesNotMatch; changing the body alone, too."""
    original = v3_signed(deployment.endpoint, "DescribeCommands", LIST, body=b"PageSize=10", content_type=FORM)
    body = b"PageSize=50"
    swapped = V3Request(original.query, {**original.headers, "x-acs-content-sha256": hashlib.sha256(body).hexdigest()},
                        body)
    refused(swapped.send(deployment.endpoint), "SignatureDoesNotMatch", 400)
    refused(V3Request(original.query, original.headers, body).send(deployment.endpoint), "SignatureDoesNotMatch", 400)
    accepted(original.send(deployment.endpoint))


V3_UNSIGNED_TYPE: dict[str, Callable[[Deployment], V3Request]] = {
    # a form body signed by its hash, its content-type added after signing: dropping the type in transit would
    # drop the body's parameters without breaking the signature
    "type sent unsigned": lambda d: V3Request(LIST, {**v3_signed(d.endpoint, "DescribeCommands", LIST,
                                                                 body=b"PageSize=10").headers, "content-type": FORM},
                                              b"PageSize=10"),
    "no type at all": lambda d: v3_signed(d.endpoint, "DescribeCommands", LIST, body=b"PageSize=10"),
    "body added to a request signed without one": lambda d: V3Request(
        LIST, {**v3_signed(d.endpoint, "DescribeCommands", LIST).headers, "content-type": FORM}, b"PageSize=50"),
}


@pytest.mark.parametrize("how", list(V3_UNSIGNED_TYPE))
def test_v3_body_without_its_content_type_signed_is_refused(deployment: Deployment, how: str) -> None:
    """A V3 request with a body must list content-type among its signed headers: otherwise 400
    IncompleteSignature (even when the body's hash matches); the same body with its type signed, as the
    official SDK signs it, is accepted."""
    refused(V3_UNSIGNED_TYPE[how](deployment).send(deployment.endpoint), "IncompleteSignature", 400)
    accepted(v3_signed(deployment.endpoint, "DescribeCommands", LIST, body=b"PageSize=10", content_type=FORM)
             .send(deployment.endpoint))


# ------------------------------------------------------------------------------------------------ missing pieces

V1_MISSING = {
    "AccessKeyId": {"MissingParameter.AccessKeyId"},
    "Signature": {"MissingParameter.Signature"},
    "SignatureNonce": {"MissingParameter.SignatureNonce"},
    # the reference (§3.7) gives IllegalTimestamp for a missing Timestamp
    "Timestamp": {"MissingParameter.Timestamp", "IllegalTimestamp"},
    # the reference documents InvalidParamater (sic) for SignatureMethod/SignatureVersion
    "SignatureMethod": {"MissingParameter.SignatureMethod", "InvalidParamater"},
    "SignatureVersion": {"MissingParameter.SignatureVersion", "InvalidParamater"},
}


@pytest.mark.parametrize("piece", list(V1_MISSING))
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_v1_missing_signature_piece(deployment: Deployment, piece: str, how: str) -> None:
    """A v1 request lacking (or sending empty) one of AccessKeyId, Signature, SignatureNonce, Timestamp,
    SignatureMethod, SignatureVersion is refused 400 with that piece's MissingParameter.* code (never a
    500); the complete request is accepted afterwards."""
    complete = v1_signed("DescribeCommands", LIST)
    broken = {k: v for k, v in complete.items() if k != piece} if how == "absent" else {**complete, piece: ""}
    refused(send_params(deployment.endpoint, broken), V1_MISSING[piece], 400)
    accepted(send_params(deployment.endpoint, complete))


def _without(request: V3Request, *names: str) -> V3Request:
    return V3Request(request.query, {k: v for k, v in request.headers.items() if k not in names}, request.body)


def _authorization(request: V3Request, value: str) -> V3Request:
    return V3Request(request.query, {**request.headers, "authorization": value}, request.body)


def _drop_auth_field(request: V3Request, name: str) -> V3Request:
    algorithm, _, rest = request.headers["authorization"].partition(" ")
    kept = ",".join(part for part in rest.split(",") if not part.startswith(name + "="))
    return _authorization(request, f"{algorithm} {kept}")


def _v3_omitting(endpoint: str, header: str) -> V3Request:
    """A V3 request signed WITHOUT `header` (neither sent nor in SignedHeaders)."""
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.request import DaraRequest  # type: ignore[import-untyped]

    full = v3_signed(endpoint, "DescribeCommands", LIST)
    request = DaraRequest()
    request.method, request.pathname, request.query = "POST", "/", dict(full.query)
    request.headers = {k: v for k, v in full.headers.items() if k not in {"authorization", header}}
    payload = full.headers["x-acs-content-sha256"]
    authorization = Utils.get_authorization(request, V3, payload, AK, SECRET)
    return V3Request(full.query, {**request.headers, "authorization": authorization})


V3_INCOMPLETE: dict[str, Callable[[str, V3Request], V3Request]] = {
    "no Signature field": lambda e, r: _drop_auth_field(r, "Signature"),
    "no Credential field": lambda e, r: _drop_auth_field(r, "Credential"),
    "no SignedHeaders field": lambda e, r: _drop_auth_field(r, "SignedHeaders"),
    "algorithm only": lambda e, r: _authorization(r, V3),
    "empty Credential": lambda e, r: _authorization(r, r.headers["authorization"].replace("Credential=testak",
                                                                                         "Credential=")),
    "signed header not sent": lambda e, r: _without(
        v3_signed(e, "DescribeCommands", LIST, headers={"x-sec-probe": "1"}), "x-sec-probe"),
    "x-acs-date neither sent nor signed": lambda e, r: _v3_omitting(e, "x-acs-date"),
    "nonce neither sent nor signed": lambda e, r: _v3_omitting(e, "x-acs-signature-nonce"),
    "content hash neither sent nor signed": lambda e, r: _v3_omitting(e, "x-acs-content-sha256"),
    "host not signed": lambda e, r: _v3_omitting(e, "host"),
    "x-acs-action not signed": lambda e, r: _v3_omitting(e, "x-acs-action"),
    "unknown ACS3 algorithm": lambda e, r: _authorization(r, r.headers["authorization"].replace(
        V3, "ACS3-HMAC-MD5", 1)),
}


@pytest.mark.parametrize("how", list(V3_INCOMPLETE))
def test_v3_incomplete_signature(deployment: Deployment, how: str) -> None:
    """A V3 request whose Authorization lacks a field, or that leaves a required header (host, x-acs-action,
    x-acs-date, x-acs-signature-nonce, x-acs-content-sha256) unsent or unsigned, or names an ACS3 algorithm
    the server does not know, is refused 400 IncompleteSignature (never a 500); a complete one is accepted."""
    endpoint = deployment.endpoint
    broken = V3_INCOMPLETE[how](endpoint, v3_signed(endpoint, "DescribeCommands", LIST))
    refused(broken.send(endpoint), "IncompleteSignature", 400)
    accepted(v3_signed(endpoint, "DescribeCommands", LIST).send(endpoint))


def test_v3_without_authorization_is_missing_access_key(deployment: Deployment) -> None:
    """A V3-shaped request with every x-acs-* header but no Authorization header is refused 400
    MissingParameter.AccessKeyId (it carries no credential at all)."""
    signed = v3_signed(deployment.endpoint, "DescribeCommands", LIST)
    refused(_without(signed, "authorization").send(deployment.endpoint), "MissingParameter.AccessKeyId", 400)
    accepted(signed.send(deployment.endpoint))


# ------------------------------------------------------------------------------------------------ never a 500

def _garbage_cases() -> dict[str, tuple[dict[str, str] | str, dict[str, str], bytes]]:
    """name -> (query params or a raw query string, headers, body) of malformed authentication attempts."""
    good = sign_v1({"Action": "DescribeCommands", **LIST}, AK, SECRET)
    return {
        "nothing at all": ({}, {}, b""),
        "only an Action": ({"Action": "DescribeCommands"}, {}, b""),
        "timestamp not a date": ({**good, "Timestamp": "yesterday"}, {}, b""),
        "timestamp Feb 30": ({**good, "Timestamp": "2026-02-30T00:00:00Z"}, {}, b""),
        "timestamp year 9999": ({**good, "Timestamp": "9999-12-31T23:59:59Z"}, {}, b""),
        "timestamp year 1": ({**good, "Timestamp": "0001-01-01T00:00:00Z"}, {}, b""),
        "SignatureMethod HMAC-SHA256": ({**good, "SignatureMethod": "HMAC-SHA256"}, {}, b""),
        "SignatureVersion 2.0": ({**good, "SignatureVersion": "2.0"}, {}, b""),
        "signature not base64": ({**good, "Signature": "%%%not base64%%%"}, {}, b""),
        "signature non-ascii": ({**good, "Signature": "签名"}, {}, b""),
        "access key 10k long": ({**good, "AccessKeyId": "A" * 10_000}, {}, b""),
        "access key non-ascii": ({**good, "AccessKeyId": "钥匙"}, {}, b""),
        "access key with quote": ({**good, "AccessKeyId": "x' OR '1'='1"}, {}, b""),
        "nonce 10k long": ({**good, "SignatureNonce": "n" * 10_000}, {}, b""),
        "authorization garbage": ({}, {"authorization": "Bearer abc"}, b""),
        "authorization ACS3 without space": ({}, {"authorization": "ACS3-HMAC-SHA256"}, b""),
        "authorization fields without =": (
            {}, {"authorization": "ACS3-HMAC-SHA256 Credential,SignedHeaders,Signature"}, b""),
        "authorization duplicate fields": (
            {}, {"authorization": "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature=x"},
            b""),
        "authorization empty SignedHeaders": (
            {}, {"authorization": "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=,Signature=00"}, b""),
        "signed headers upper-case": (
            {}, {"authorization": "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=Host,Signature=00"}, b""),
        "x-acs-date garbage": ({}, {
            "authorization": "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host;x-acs-action;"
                             "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=00",
            "x-acs-action": "DescribeCommands", "x-acs-version": "2014-05-26", "x-acs-date": "soon",
            "x-acs-signature-nonce": "abc", "x-acs-content-sha256": "00"}, b""),
        "query not utf-8": ("Action=DescribeCommands&RegionId=%FF%FE&AccessKeyId=testak", {}, b""),
        "NUL in a parameter": ({**good, "RegionId": "cn\x00hangzhou"}, {}, b""),
        "form body not utf-8": (good, {"content-type": "application/x-www-form-urlencoded"}, b"PageSize=\xff\xfe"),
    }


GARBAGE = _garbage_cases()


@pytest.mark.parametrize("name", list(GARBAGE))
def test_malformed_authentication_is_a_4xx_error_never_a_500(deployment: Deployment, name: str) -> None:
    """Malformed authentication of every kind (bad timestamps, unknown methods, broken Authorization
    headers, absurd keys, bad encodings) is answered with a 4xx JSON error naming a code, never a 5xx
    and never data; a correct request is accepted right after."""
    params, headers, body = GARBAGE[name]
    if isinstance(params, str):
        response = HTTP.post(f"http://{deployment.endpoint}/?{params}", headers=headers)
    else:
        response = send_params(deployment.endpoint, params, headers=headers, body=body or None)
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text}"
    error = response.json()
    assert error.get("Code"), response.text
    assert error["Code"] != "InternalError", response.text
    assert set(error) <= {"RequestId", "HostId", "Code", "Message", "Recommend"}, response.text
    accepted(send_params(deployment.endpoint, v1_signed("DescribeCommands", LIST)))

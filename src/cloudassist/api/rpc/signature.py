"""Parse and verify Alibaba Cloud RPC request signatures (v1 HMAC-SHA1 and V3 ACS3-HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from cloudassist.domain.text import storable

__all__ = ["SignatureError", "SignedRequest", "read_signed_request", "verify"]

V3_ALGORITHM = "ACS3-HMAC-SHA256"
#: The longest AccessKeyId and SignatureNonce the store keeps (store/tables.py: access_keys, nonces).
MAX_KEY_ID = 64
MAX_NONCE = 128
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

# Headers every V3 request must carry and list in SignedHeaders (the official example's minimal set); a request
# with a body must sign `content-type` too (the SDKs sign every header they set, content-type included).
V3_REQUIRED_SIGNED_HEADERS: tuple[str, ...] = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)

_MISMATCH_PREFIX = "Specified signature is not matched with our calculation. server string to sign is:"
_INCOMPLETE_MESSAGE = "The request signature does not conform to Aliyun standards."
_TIMESTAMP_FORMAT_MESSAGE = "Specified time stamp or date value is not well formatted."
_TIMESTAMP_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?Z"
)


class SignatureError(Exception):
    """An authentication failure carrying the ECS error code and message to return to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """What a request claims about its signer, before the secret is known.

    `string_to_sign` and `canonical_request` are derived from the request alone (no secret); they are what
    the HMAC is computed over. For v1 `canonical_request` is the CanonicalizedQueryString, for V3 the
    CanonicalRequest. `content_sha256_matches` is always True for v1.
    """

    scheme: Literal["v1", "v3"]
    access_key_id: str
    nonce: str
    timestamp: datetime
    string_to_sign: str = field(repr=False)
    canonical_request: str = field(repr=False)
    signature: str = field(repr=False)
    content_sha256_matches: bool = field(default=True, repr=False)


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of the UTF-8 bytes: only A-Z a-z 0-9 - _ . ~ stay literal, space is %20."""
    return quote(value, safe="~", encoding="utf-8")


def parse_timestamp(value: str) -> datetime:
    """Parse `YYYY-MM-DDThh:mm:ssZ` (optionally with fractional seconds) into an aware UTC datetime."""
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise SignatureError("InvalidTimeStamp.Format", _TIMESTAMP_FORMAT_MESSAGE)
    year, month, day = (int(part) for part in match["date"].split("-"))
    micros = int((match["frac"] or "0").ljust(6, "0")[:6])
    try:
        return datetime(year, month, day, int(match["h"]), int(match["m"]), int(match["s"]), micros, tzinfo=UTC)
    except ValueError:
        raise SignatureError("InvalidTimeStamp.Format", _TIMESTAMP_FORMAT_MESSAGE) from None


def _missing(name: str) -> str:
    return f'The input parameter "{name}" that is mandatory for processing this request is not supplied.'


def _incomplete() -> SignatureError:
    return SignatureError("IncompleteSignature", _INCOMPLETE_MESSAGE)


def read_signed_request(
    method: str,
    path: str,
    params: Mapping[str, str],
    query_pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> SignedRequest:
    """Parse the auth parts of a request. `params` = merged decoded query + form body (the v1 signed set),
    `query_pairs` = decoded query pairs only (V3 canonical query), `headers` keys are lower-case."""
    authorization = headers.get("authorization", "").strip()
    algorithm = authorization.split(" ", 1)[0]
    if algorithm == V3_ALGORITHM:
        signed = _read_v3(method, path, query_pairs, headers, body, authorization)
    elif algorithm.startswith("ACS3-"):
        raise _incomplete()
    else:
        signed = _read_v1(method, params)
    return _storable(signed)


def _storable(signed: SignedRequest) -> SignedRequest:
    """`signed`, if its key id and nonce fit the columns that keep them (nonces: 128, keys: 64 characters)."""
    if len(signed.access_key_id) > MAX_KEY_ID or not storable(signed.access_key_id):
        raise SignatureError("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if len(signed.nonce) > MAX_NONCE or not storable(signed.nonce):
        message = 'The specified parameter "SignatureNonce" is not valid.'
        raise SignatureError("InvalidParameter.SignatureNonce", message)
    return signed


def _read_v1(method: str, params: Mapping[str, str]) -> SignedRequest:
    access_key_id = params.get("AccessKeyId", "")
    if not access_key_id:
        raise SignatureError("MissingParameter.AccessKeyId", _missing("AccessKeyId"))
    signature = params.get("Signature", "")
    if not signature:
        raise SignatureError("MissingParameter.Signature", _missing("Signature"))
    if params.get("SignatureMethod") != "HMAC-SHA1":
        raise SignatureError("InvalidParamater", 'The specified parameter "SignatureMethod" is not valid.')
    if params.get("SignatureVersion") != "1.0":
        raise SignatureError("InvalidParamater", 'The specified parameter "SignatureVersion" is not valid.')
    nonce = params.get("SignatureNonce", "")
    if not nonce:
        raise SignatureError("MissingParameter.SignatureNonce", _missing("SignatureNonce"))
    raw_timestamp = params.get("Timestamp", "")
    if not raw_timestamp:
        raise SignatureError("IllegalTimestamp", _missing("Timestamp"))
    timestamp = parse_timestamp(raw_timestamp)

    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(percent_encode(k) + "=" + percent_encode(v) for k, v in items)
    string_to_sign = method + "&" + percent_encode("/") + "&" + percent_encode(canonical)
    return SignedRequest(
        scheme="v1",
        access_key_id=access_key_id,
        nonce=nonce,
        timestamp=timestamp,
        string_to_sign=string_to_sign,
        canonical_request=canonical,
        signature=signature,
    )


def _parse_authorization(authorization: str) -> dict[str, str]:
    _, _, rest = authorization.partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise _incomplete()
        fields[key] = value.strip()
    for key in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(key):
            raise _incomplete()
    return fields


def _read_v3(
    method: str,
    path: str,
    query_pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    authorization: str,
) -> SignedRequest:
    fields = _parse_authorization(authorization)
    signed_headers = fields["SignedHeaders"]
    names = signed_headers.split(";")
    if len(set(names)) != len(names) or any(not n or n != n.lower() or n not in headers for n in names):
        raise _incomplete()
    for required in V3_REQUIRED_SIGNED_HEADERS:
        if required not in names or not headers[required].strip():
            raise _incomplete()
    if body and "content-type" not in names:
        # the body is hashed, but its content type decides whether it is read at all (a form body's parameters
        # are dropped if the type is changed in transit): a body is taken only with its type signed
        raise _incomplete()

    timestamp = parse_timestamp(headers["x-acs-date"].strip())
    nonce = headers["x-acs-signature-nonce"].strip()
    claimed_payload_hash = headers["x-acs-content-sha256"].strip()
    body_ok = hmac.compare_digest(
        claimed_payload_hash.lower().encode("utf-8"), hashlib.sha256(body).hexdigest().encode("ascii")
    )

    canonical_query = "&".join(percent_encode(k) + "=" + percent_encode(v) for k, v in sorted(query_pairs))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    canonical_request = "\n".join(
        [method, path or "/", canonical_query, canonical_headers, signed_headers, claimed_payload_hash]
    )
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return SignedRequest(
        scheme="v3",
        access_key_id=fields["Credential"],
        nonce=nonce,
        timestamp=timestamp,
        string_to_sign=f"{V3_ALGORITHM}\n{digest}",
        canonical_request=canonical_request,
        signature=fields["Signature"],
        content_sha256_matches=body_ok,
    )


def compute_signature(request: SignedRequest, secret: str) -> str:
    """The signature the client should have sent, given the AccessKey secret."""
    message = request.string_to_sign.encode("utf-8")
    if request.scheme == "v1":
        mac = hmac.new((secret + "&").encode("utf-8"), message, hashlib.sha1).digest()
        return base64.b64encode(mac).decode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(request: SignedRequest, secret: str) -> None:
    """Check the claimed signature (and, for V3, the body hash) with the AccessKey secret.

    Raise SignatureError('SignatureDoesNotMatch', 'Specified signature is not matched with our calculation.
    server string to sign is:' + string_to_sign) on mismatch. The secret never appears in the message.
    """
    expected = compute_signature(request, secret).encode("ascii")
    signature_ok = hmac.compare_digest(expected, request.signature.encode("utf-8"))
    if not (signature_ok and request.content_sha256_matches):
        raise SignatureError("SignatureDoesNotMatch", _MISMATCH_PREFIX + request.string_to_sign)

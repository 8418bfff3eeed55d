"""Who is calling: a registered instance proves itself by signing every request with its key.

The official agent sends `X-Acs-Instance-Id`, `X-Acs-Timestamp` (ms), `X-Acs-Request-Id` and
`X-Acs-Signature` = base64(RSA-PKCS#1 v1.5 over MD5(instance id + machine id + timestamp + request
id)). We verify it against the public key given at registration, refuse timestamps outside the
window and refuse a request id seen before: nothing is trusted from headers alone.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from cloudassist.domain.instances import ManagedInstance
from cloudassist.services.context import Context


class AgentAuthError(Exception):
    """A request from an agent that cannot be trusted; the message says why (never a secret)."""


async def authenticate(ctx: Context, headers: Mapping[str, str]) -> ManagedInstance:
    """The registered instance that signed these headers, or AgentAuthError."""
    instance_id = headers.get("x-acs-instance-id", "")
    timestamp = headers.get("x-acs-timestamp", "")
    request_id = headers.get("x-acs-request-id", "")
    signature = headers.get("x-acs-signature", "")
    if not (instance_id and timestamp and request_id and signature):
        raise AgentAuthError("unsigned request")
    if len(request_id) > 128 or len(instance_id) > 64:
        raise AgentAuthError("malformed signing headers")
    try:
        when = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
        sig = base64.b64decode(signature, validate=True)
    except (ValueError, OverflowError, binascii.Error):
        raise AgentAuthError("malformed signing headers") from None
    window = timedelta(seconds=ctx.settings.signature_window_seconds)
    now = ctx.clock.now()
    if abs(now - when) > window:
        raise AgentAuthError("timestamp outside the allowed window")
    async with ctx.store.read() as tx:
        instance = await tx.instances.get(instance_id)
    if instance is None:
        raise AgentAuthError("unknown or deregistered instance")
    key = serialization.load_pem_public_key(instance.public_key.encode())
    if not isinstance(key, RSAPublicKey):
        raise AgentAuthError("instance key is not RSA")
    message = (instance_id + instance.machine_id + timestamp + request_id).encode()
    try:
        key.verify(sig, message, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the agent protocol's choice
    except InvalidSignature:
        raise AgentAuthError("signature does not verify") from None
    async with ctx.store.write() as tx:
        fresh = await tx.nonces.claim(f"agent:{instance_id}", request_id, when + window)
    if not fresh:
        raise AgentAuthError("request id already used")
    return instance

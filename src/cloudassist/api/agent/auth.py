"""Who is calling: a registered instance proves itself by signing every request with its key.

The official agent sends `X-Acs-Instance-Id`, `X-Acs-Timestamp` (ms), `X-Acs-Request-Id` and
`X-Acs-Signature` = base64(RSA-PKCS#1 v1.5 over MD5(instance id + machine id + timestamp + request
id)). We verify it against the public key given at registration, refuse timestamps outside the
window and refuse a request id seen before: nothing is trusted from headers alone.

Checking costs no transaction of its own. An instance's key and machine id never change, so they are
kept in memory once read; what can change (the instance deregistered, the request id spent by this or
another server process) is decided by `claim`, which runs in the same transaction as the request's own
work, so a request is acknowledged only if its claim committed with it.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.text import storable
from cloudassist.services.context import Context
from cloudassist.store.store import Tx

#: Instances whose keys are kept in memory (an LRU): a fleet's worth, ~1 KB each.
CACHED_KEYS: Final = 50_000


class AgentAuthError(Exception):
    """A request from an agent that cannot be trusted; the message says why (never a secret)."""


@dataclass(frozen=True)
class Signer:
    """What never changes about a registered instance: who it is and the key it signs with."""

    instance_id: str
    machine_id: str
    key: RSAPublicKey


@dataclass(frozen=True)
class Signed:
    """A request whose signature verified; `claim` decides whether it may act."""

    instance_id: str
    request_id: str
    expires_at: datetime


class AgentAuth:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._signers: OrderedDict[str, Signer] = OrderedDict()

    async def verify(self, headers: Mapping[str, str]) -> Signed:
        """The signed request's identity, or AgentAuthError; the request id is not spent yet (see `claim`)."""
        instance_id = headers.get("x-acs-instance-id", "")
        timestamp = headers.get("x-acs-timestamp", "")
        request_id = headers.get("x-acs-request-id", "")
        signature = headers.get("x-acs-signature", "")
        if not (instance_id and timestamp and request_id and signature):
            raise AgentAuthError("unsigned request")
        if len(request_id) > 128 or len(instance_id) > 64 or not (storable(request_id) and storable(instance_id)):
            raise AgentAuthError("malformed signing headers")  # (no id column could hold them)
        try:
            when = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
            sig = base64.b64decode(signature, validate=True)
        except (ValueError, OverflowError, OSError, binascii.Error):
            raise AgentAuthError("malformed signing headers") from None
        window = timedelta(seconds=self.ctx.settings.signature_window_seconds)
        if abs(self.ctx.clock.now() - when) > window:
            raise AgentAuthError("timestamp outside the allowed window")
        signer = await self._signer(instance_id)
        message = (instance_id + signer.machine_id + timestamp + request_id).encode()
        try:
            signer.key.verify(sig, message, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the agent protocol's
        except InvalidSignature:
            raise AgentAuthError("signature does not verify") from None
        return Signed(instance_id, request_id, when + window)

    async def _signer(self, instance_id: str) -> Signer:
        signer = self._signers.get(instance_id)
        if signer is not None:
            self._signers.move_to_end(instance_id)
            return signer
        async with self.ctx.store.read() as tx:
            instance = await tx.instances.get(instance_id)
        if instance is None:
            raise AgentAuthError("unknown or deregistered instance")
        key = serialization.load_pem_public_key(instance.public_key.encode())
        if not isinstance(key, RSAPublicKey):
            raise AgentAuthError("instance key is not RSA")
        signer = Signer(instance_id, instance.machine_id, key)
        self._signers[instance_id] = signer
        if len(self._signers) > CACHED_KEYS:
            self._signers.popitem(last=False)
        return signer

    @staticmethod
    async def claim(tx: Tx, signed: Signed) -> ManagedInstance | str:
        """Spend the request id and load the instance, in the request's own transaction: the instance, or why
        the request may not act (a replay; an instance deregistered since it was last seen)."""
        if not await tx.nonces.claim(f"agent:{signed.instance_id}", signed.request_id, signed.expires_at):
            return "request id already used"
        instance = await tx.instances.get(signed.instance_id)
        if instance is None:
            return "unknown or deregistered instance"
        return instance

"""ClientToken: the same token with the same parameters gets the first answer; other parameters an error."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudassist.errors import ApiError
from cloudassist.store.store import Tx


@dataclass(frozen=True)
class Idempotency:
    """A ClientToken and the fingerprint of the request that carried it."""

    action: str
    token: str
    fingerprint: str

    @staticmethod
    def of(action: str, token: str | None, params: dict[str, Any]) -> Idempotency | None:
        """The request's token (None without one); ASCII and at most 64 characters, as documented."""
        if not token:
            return None
        if len(token) > 64 or not token.isascii():
            raise ApiError.of("InvalidClientToken.Malformed")
        canonical = json.dumps({k: v for k, v in params.items() if k != "ClientToken"}, sort_keys=True, default=str)
        return Idempotency(action, token, hashlib.sha256(canonical.encode()).hexdigest())

    async def claim(self, tx: Tx, account_id: int, now: datetime) -> dict[str, str] | None:
        """Claim the token within `tx`: None if this is its first use (do the work, then `record`);
        otherwise the answer the first request got. Another request with different parameters under
        the same token is IdempotentParameterMismatch. A concurrent duplicate waits for the first
        to commit (the claim is a row insert), so two never both do the work."""
        if await tx.tokens.remember(account_id, self.action, self.token, self.fingerprint, "", now):
            return None
        earlier = await tx.tokens.find(account_id, self.action, self.token)
        if earlier is None:
            return None
        if earlier[0] != self.fingerprint:
            raise ApiError.of("IdempotentParameterMismatch")
        try:
            answer = json.loads(earlier[1])
        except ValueError:
            return None
        return {str(k): str(v) for k, v in answer.items()} if isinstance(answer, dict) else None

    async def record(self, tx: Tx, account_id: int, answer: dict[str, str]) -> None:
        """Keep the answer of the request that claimed the token, for its retries."""
        await tx.tokens.record(account_id, self.action, self.token, json.dumps(answer))

"""Accounts, access keys, and authenticating a signed request against them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudassist import ids
from cloudassist.errors import ApiError
from cloudassist.services.context import Context
from cloudassist.store.accounts import AccessKey

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret: str
    account: str

    def __repr__(self) -> str:
        return f"NewKey({self.access_key_id!r}, account={self.account!r})"


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def authenticate(
        self, access_key_id: str, timestamp: datetime, nonce: str, check_signature: Callable[[str], None]
    ) -> AccessKey:
        """The key that signed a request, after checking it exists, is enabled, is fresh, matches the
        signature (`check_signature(secret)` raises ApiError if not) and has not been replayed."""
        window = timedelta(seconds=self.ctx.settings.signature_window_seconds)
        now = self.ctx.clock.now()
        # one transaction: look the key up, check it, and spend the nonce only for a good signature
        async with self.ctx.store.write() as tx:
            key = await tx.accounts.key(access_key_id)
            if key is None:
                raise ApiError.of("InvalidAccessKeyId.NotFound")
            if not key.enabled:
                raise ApiError.of("Forbidden.AccessKeyDisabled")
            if abs(now - timestamp) > window:
                raise ApiError.of("InvalidTimeStamp.Expired")
            check_signature(key.secret)
            if not await tx.nonces.claim(key.access_key_id, nonce, timestamp + window):
                raise ApiError.of("SignatureNonceUsed")
        return key

    async def purge_nonces(self) -> int:
        async with self.ctx.store.write() as tx:
            return await tx.nonces.purge(self.ctx.clock.now())

    async def create_key(
        self, account: str = DEFAULT_ACCOUNT, access_key_id: str | None = None, secret: str | None = None
    ) -> NewKey:
        """A new key for `account` (created if needed); with an id and secret given, that key."""
        key_id, key_secret = access_key_id or ids.access_key_id(), secret or ids.access_key_secret()
        async with self.ctx.store.write() as tx:
            account_id = await tx.accounts.ensure(account, self.ctx.clock.now())
            await tx.accounts.add_key(account_id, key_id, key_secret, self.ctx.clock.now())
        return NewKey(key_id, key_secret, account)

    async def ensure_key(self, access_key_id: str, secret: str, account: str = DEFAULT_ACCOUNT) -> bool:
        """Make sure this exact key exists and is enabled; True if it had to be created or changed."""
        async with self.ctx.store.write() as tx:
            existing = await tx.accounts.key(access_key_id)
            if existing is not None and existing.secret != secret:
                raise ValueError(f"access key {access_key_id} exists with another secret")
            if existing is not None:
                if not existing.enabled:
                    await tx.accounts.set_key_enabled(access_key_id, True)
                return not existing.enabled
            account_id = await tx.accounts.ensure(account, self.ctx.clock.now())
            await tx.accounts.add_key(account_id, access_key_id, secret, self.ctx.clock.now())
            return True

    async def keys(self, account: str | None = None) -> list[AccessKey]:
        async with self.ctx.store.read() as tx:
            account_id = None if account is None else await tx.accounts.find(account)
            if account is not None and account_id is None:
                return []
            return await tx.accounts.keys(account_id)

    async def has_keys(self) -> bool:
        async with self.ctx.store.read() as tx:
            return await tx.accounts.count_keys() > 0

    async def set_enabled(self, access_key_id: str, enabled: bool) -> bool:
        async with self.ctx.store.write() as tx:
            return await tx.accounts.set_key_enabled(access_key_id, enabled)

"""Accounts, access keys, and authenticating a signed request against them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from cloudassist import ids
from cloudassist.errors import ApiError
from cloudassist.services.context import Context
from cloudassist.store.accounts import AccessKey
from cloudassist.store.store import Tx

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret: str
    account: str

    def __repr__(self) -> str:
        return f"NewKey({self.access_key_id!r}, account={self.account!r})"


#: Access keys kept in memory (an LRU): a key's secret and account never change, only whether it is enabled.
CACHED_KEYS: Final = 10_000


class AccessService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._keys: OrderedDict[str, AccessKey] = OrderedDict()

    async def authenticate(
        self, access_key_id: str, timestamp: datetime, nonce: str, check_signature: Callable[[str], None]
    ) -> AccessKey:
        """The key that signed a request, after checking it exists, is enabled, is fresh, matches the
        signature (`check_signature(secret)` raises ApiError if not) and has not been replayed.

        The secret is checked against the key kept in memory; whether the key is still enabled (a key may be
        disabled by any process sharing the store, `cloudassist keys disable`) and the spending of the nonce
        are decided in one transaction shared with other requests (group commit), so no request takes a
        write transaction of its own to be authenticated, and a disabled key is refused at once everywhere.
        """
        window = timedelta(seconds=self.ctx.settings.signature_window_seconds)
        now = self.ctx.clock.now()
        key = await self._key(access_key_id)
        if not key.enabled:  # as last seen: it may have been enabled again since
            key = await self._key(access_key_id, fresh=True)
            if not key.enabled:
                raise ApiError.of("Forbidden.AccessKeyDisabled")
        if abs(now - timestamp) > window:
            raise ApiError.of("InvalidTimeStamp.Expired")
        check_signature(key.secret)

        async def claim(tx: Tx) -> tuple[bool, bool]:
            if not await tx.accounts.key_enabled(access_key_id):
                return False, False
            return True, await tx.nonces.claim(access_key_id, nonce, timestamp + window)

        enabled, fresh = await self.ctx.store.batch(claim)
        if not enabled:
            self._keys[access_key_id] = replace(key, enabled=False)
            raise ApiError.of("Forbidden.AccessKeyDisabled")
        if not fresh:
            raise ApiError.of("SignatureNonceUsed")
        return key

    async def _key(self, access_key_id: str, *, fresh: bool = False) -> AccessKey:
        key = None if fresh else self._keys.get(access_key_id)
        if key is None:
            async with self.ctx.store.read() as tx:
                key = await tx.accounts.key(access_key_id)
            if key is None:
                raise ApiError.of("InvalidAccessKeyId.NotFound")
            self._keys[access_key_id] = key
            if len(self._keys) > CACHED_KEYS:
                self._keys.popitem(last=False)
        self._keys.move_to_end(access_key_id)
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

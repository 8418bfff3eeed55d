"""Signing in to the web console with an access key, and the server-side sessions that follow.

A session is a random token (the cookie) whose SHA-256 is a row of the store: signing out deletes the row, so
the cookie is refused at once by every server sharing the store; a session of a key disabled since is refused
too. The token itself is never stored, logged or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from cloudassist.services.context import Context, Scope
from cloudassist.store.logins import ConsoleSession


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def sign_in(self, access_key_id: str, secret: str, region_id: str) -> tuple[str, ConsoleSession] | None:
        """A new session for the key, if it exists, is enabled and `secret` is its secret: (token, session)."""
        async with self.ctx.store.read() as tx:
            key = await tx.accounts.key(access_key_id[:64])
        # compared in constant time, and against a dummy when there is no such key, so timing tells nothing
        expected = key.secret if key is not None else secrets.token_hex(16)
        if not hmac.compare_digest(expected.encode(), secret.encode("utf-8", "replace")):
            return None
        if key is None or not key.enabled:
            return None
        token = secrets.token_urlsafe(32)
        now = self.ctx.clock.now()
        session = ConsoleSession(
            token_hash=token_hash(token),
            account_id=key.account_id,
            account_name=key.account_name,
            access_key_id=key.access_key_id,
            csrf_token=secrets.token_urlsafe(32),
            region_id=region_id,
            expires_at=now + timedelta(hours=self.ctx.settings.console_session_hours),
        )
        async with self.ctx.store.write() as tx:
            await tx.logins.purge(now)
            await tx.logins.add(session, now)
        return token, session

    async def find(self, token: str) -> ConsoleSession | None:
        """The live session of a cookie's token; None when it was signed out, expired or its key disabled."""
        if not token or len(token) > 128:
            return None
        async with self.ctx.store.read() as tx:
            return await tx.logins.live(token_hash(token), self.ctx.clock.now())

    async def set_region(self, session: ConsoleSession, region_id: str) -> None:
        async with self.ctx.store.write() as tx:
            await tx.logins.set_region(session.token_hash, region_id)

    async def sign_out(self, session: ConsoleSession) -> None:
        async with self.ctx.store.write() as tx:
            await tx.logins.remove(session.token_hash)


def scope_of(session: ConsoleSession) -> Scope:
    """What a session may see: its account, in the region it looks at."""
    return Scope(session.account_id, session.region_id)

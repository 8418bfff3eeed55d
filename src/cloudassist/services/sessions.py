"""StartTerminalSession, DescribeTerminalSessions, EndTerminalSession, and the session records the relay keeps.

The WebSocketUrl's token is a secret shown once: only its SHA-256 is stored, with its expiry (10 minutes).
It is bound to its session (the URL names both, both must match) and through it to the session's instances
and account. A shell session's token opens one connection; a port-forward session's token opens one per local
TCP connection while it is valid, because the official CLI dials the same URL for each (session-protocol.md §7).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final

from cloudassist import ids
from cloudassist.domain import sessions as rules
from cloudassist.domain.paging import Page, offset_slice
from cloudassist.domain.sessions import Connection, SessionSpec, TerminalSession
from cloudassist.errors import ApiError
from cloudassist.services.assistant_settings import AssistantSettingsService
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.sessions import SessionFilter
from cloudassist.store.store import Tx

#: Session records are kept (and listed) for 4 weeks (reference §5.7).
RETENTION: Final = timedelta(weeks=4)
#: An open connection whose server process has not vouched for it this long is ended (its process is gone).
LOST_AFTER: Final = timedelta(seconds=90)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def session_id(region_id: str) -> str:
    """A new SessionId, `s-` plus a region hint and 20 characters (`s-hz023od0x9****`)."""
    return "s-" + ids.command_id(region_id)[2:]


def channel_id() -> str:
    """A new channel id: 32 URL-safe characters at most, never reused (session-protocol.md §9.4)."""
    return "ch-" + secrets.token_hex(14)


@dataclass(frozen=True)
class StartedSession:
    session: TerminalSession
    token: str

    def __repr__(self) -> str:  # the token is a secret: never in a log line or a traceback
        return f"StartedSession({self.session.session_id!r})"


@dataclass(frozen=True)
class SessionPage:
    sessions: list[tuple[TerminalSession, list[Connection]]]
    total: int
    next_offset: int | None


class Refused(Exception):
    """A client's websocket that may not open: the reason is said to the client (never a secret)."""


@dataclass(frozen=True)
class Opened:
    """A client connection admitted by `open_connection`: its record and its session."""

    session: TerminalSession
    connection: Connection


class SessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def check_enabled(self, account_id: int) -> None:
        """UserBehavior.SessionManagerDisabled when the account turned Session Manager off
        (ModifyCloudAssistantSettings SessionManagerConfig)."""
        if not await AssistantSettingsService(self.ctx).session_manager_enabled(account_id):
            raise ApiError.of("UserBehavior.SessionManagerDisabled")

    async def start(
        self,
        scope: Scope,
        spec: SessionSpec,
        *,
        access_key_id: str,
        client_ip: str,
        idempotency: Idempotency | None = None,
    ) -> StartedSession:
        await self.check_enabled(scope.account_id)
        now = self.ctx.clock.now()
        token = secrets.token_urlsafe(32)
        async with self.ctx.store.write() as tx:
            if idempotency is not None:
                earlier = await idempotency.claim(tx, scope.account_id, now)
                if earlier is not None and "SessionId" in earlier:
                    found = await tx.sessions.get(earlier["SessionId"], scope.account_id, scope.region_id)
                    if found is not None:  # the first token cannot be recovered: the retry gets a new one
                        await tx.sessions.set_token(found.session_id, hash_token(token))
                        return StartedSession(found, token)
            await self._check_instances(tx, scope, spec.instance_ids)
            live = await tx.sessions.count_live(scope.account_id, scope.region_id, now)
            if live >= self.ctx.settings.session_max_per_region:
                raise ApiError.of("SessionCount.ExceedLimit")
            session = TerminalSession(
                session_id=session_id(scope.region_id),
                account_id=scope.account_id,
                region_id=scope.region_id,
                spec=spec,
                access_key_id=access_key_id,
                client_ip=client_ip[:64],
                creation_time=now,
                token_expires=now + rules.URL_VALIDITY,
            )
            await tx.sessions.insert(session, hash_token(token))
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"SessionId": session.session_id})
        return StartedSession(session, token)

    @staticmethod
    async def _check_instances(tx: Tx, scope: Scope, instance_ids: Sequence[str]) -> None:
        found = await tx.instances.get_many(scope.account_id, scope.region_id, instance_ids)
        missing = [i for i in instance_ids if i not in found]
        if missing:
            raise ApiError.of("InvalidInstance.NotFound").because(f"No instance {missing[0]} here.")

    async def describe(self, f: SessionFilter, page: Page) -> SessionPage:
        since = self.ctx.clock.now() - RETENTION
        async with self.ctx.store.read() as tx:
            got = await offset_slice(
                page, lambda start, n: tx.sessions.list(f, start, n, since), lambda: tx.sessions.count(f, since)
            )
            connections = await tx.sessions.connections([s.session_id for s in got.rows])
        return SessionPage([(s, connections[s.session_id]) for s in got.rows], got.total, got.next_start)

    async def end(self, scope: Scope, session_id_: str) -> list[Connection]:
        """Close the session for good: its URL stops working and its open connections end (the relay is told)."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            session = await tx.sessions.get(session_id_, scope.account_id, scope.region_id)
            if session is None:
                raise ApiError.of("InvalidSessionId.NotFound")
            await tx.sessions.end(session_id_, now)
            closing = await tx.sessions.open_connections(session_id_)
            for c in closing:
                await tx.sessions.finish(c.channel_id, rules.TERMINATED, rules.SESSION_ENDED, "", now)
        self.ctx.sessions.ended([(c.channel_id, c.instance_id) for c in closing], rules.SESSION_ENDED)
        return closing

    # the relay's side

    async def open_connection(self, session_id_: str, token: str, instance_id: str | None, client_ip: str) -> Opened:
        """Admit a client websocket that presents `token` for `session_id_` (and names one of its instances when
        it has several): a new Connecting record with a fresh channel. Refused says why it may not."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            session = await tx.sessions.by_token(session_id_, hash_token(token)) if token else None
            if session is None or not hmac.compare_digest(session.session_id, session_id_):
                raise Refused("InvalidToken")
            if session.ended_time is not None:
                raise Refused("SessionEnded")
            if now >= session.token_expires:
                raise Refused("TokenExpired")
            instances = session.spec.instance_ids
            target = instance_id or (instances[0] if len(instances) == 1 else "")
            if target not in instances:
                raise Refused("InstanceIdRequired" if not instance_id else "InvalidInstanceId")
            if not (await AssistantSettingsService.get_in(tx, session.account_id)).session_manager_enabled:
                raise Refused("SessionManagerDisabled")
            if not session.spec.port_forward and not await tx.sessions.spend_token(session.session_id, now):
                raise Refused("TokenUsed")
            if session.spec.port_forward and session.token_used_time is None:
                await tx.sessions.spend_token(session.session_id, now)
            if await tx.sessions.count_open(target) >= self.ctx.settings.session_max_per_instance:
                raise Refused(rules.CONNECTION_LIMIT)
            connection = Connection(
                channel_id=channel_id(),
                session_id=session.session_id,
                account_id=session.account_id,
                instance_id=target,
                status=rules.CONNECTING,
                client_ip=client_ip[:64],
                start_time=now,
            )
            await tx.sessions.add_connection(connection)
        return Opened(session, connection)

    async def channel(self, channel_id_: str, instance_id: str) -> tuple[TerminalSession, Connection] | None:
        """The open connection `channel_id_` when it is served by `instance_id` (the agent asking), else None."""
        async with self.ctx.store.read() as tx:
            connection = await tx.sessions.connection(channel_id_)
            if connection is None or connection.instance_id != instance_id or not connection.open:
                return None
            session = await tx.sessions.get(connection.session_id)
        if session is None or session.ended_time is not None:
            return None
        return session, connection

    async def agent_connected(self, channel_id_: str) -> bool:
        async with self.ctx.store.write() as tx:
            return await tx.sessions.connected(channel_id_, self.ctx.clock.now())

    async def agent_reported(self, channel_id_: str, instance_id: str, errorcode: str) -> bool:
        """The agent's v1/session/status for a channel of its own; False when it is not (or no longer) open."""
        if await self.channel(channel_id_, instance_id) is None:
            return False
        async with self.ctx.store.write() as tx:
            return await tx.sessions.agent_reported(channel_id_, errorcode)

    async def finish(
        self,
        connection: Connection,
        status: str,
        reason: str,
        detail: str = "",
        *,
        bytes_in: int = 0,
        bytes_out: int = 0,
        transcript: bytes | None = None,
        truncated: bool = False,
    ) -> Connection | None:
        """End an open connection with its audit figures; the record as ended, or None if it had ended already."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            audit: dict[str, object] = {"bytes_in": bytes_in, "bytes_out": bytes_out, "transcript_truncated": truncated}
            if transcript is not None:
                audit["transcript"] = transcript
            if not await tx.sessions.finish(connection.channel_id, status, reason, detail, now, **audit):
                # ended already (EndTerminalSession): keep the figures and transcript all the same
                await tx.sessions.audit(connection.channel_id, **audit)
                return None
        return replace(
            connection,
            status=status,
            closed_reason=reason,
            failed_detail=detail,
            end_time=now,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
        )

    async def vouch(self, channel_ids: Sequence[str]) -> None:
        """This process still holds these connections' client websockets."""
        async with self.ctx.store.write() as tx:
            await tx.sessions.seen(channel_ids, self.ctx.clock.now())

    async def sweep(self) -> tuple[int, int]:
        """End open connections whose server process is gone (ServerStopped) and forget sessions past retention;
        how many of each. Run by the leader."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            lost = await tx.sessions.lost(now - LOST_AFTER)
            for channel in lost:
                await tx.sessions.finish(channel, rules.TERMINATED, rules.SERVER_STOPPED, "", now)
            forgotten = await tx.sessions.forget_before(now - RETENTION)
        return len(lost), forgotten

    async def keeps_transcripts(self, account_id: int) -> bool:
        """Whether this connection's transcript is kept: the server's setting, or the account's session delivery."""
        if self.ctx.settings.session_transcripts:
            return True
        return (await AssistantSettingsService(self.ctx).get(account_id)).session_transcript_enabled

    async def transcript(self, account_id: int, channel_id_: str) -> tuple[bytes, bool] | None:
        async with self.ctx.store.read() as tx:
            connection = await tx.sessions.connection(channel_id_)
            if connection is None or connection.account_id != account_id:
                return None
            return await tx.sessions.transcript(channel_id_)

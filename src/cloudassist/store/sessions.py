"""Session Manager records: rows of `terminal_sessions` and `terminal_connections` become
`domain.sessions.TerminalSession` and `Connection` here."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, or_, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.sessions import OPEN_STATES, Connection, SessionSpec, TerminalSession
from cloudassist.store._base import Repository
from cloudassist.store.tables import terminal_connections, terminal_sessions

S = terminal_sessions.c
C = terminal_connections.c


@dataclass(frozen=True)
class SessionFilter:
    account_id: int
    region_id: str
    session_id: str | None = None
    instance_id: str | None = None


class TerminalSessions(Repository):
    async def insert(self, s: TerminalSession, token_hash: str) -> None:
        await self.conn.execute(
            terminal_sessions.insert().values(
                session_id=s.session_id,
                account_id=s.account_id,
                region_id=s.region_id,
                instance_ids=" ".join(s.spec.instance_ids),
                port_number=s.spec.port_number,
                target_server=s.spec.target_server,
                command_line=s.spec.command_line,
                username=s.spec.username,
                password_name=s.spec.password_name,
                connection_type=s.spec.connection_type,
                access_key_id=s.access_key_id,
                client_ip=s.client_ip,
                creation_time=s.creation_time,
                token_hash=token_hash,
                token_expires=s.token_expires,
            )
        )

    async def get(
        self, session_id: str, account_id: int | None = None, region_id: str | None = None
    ) -> TerminalSession | None:
        stmt = select(terminal_sessions).where(S.session_id == session_id)
        if account_id is not None:
            stmt = stmt.where(S.account_id == account_id)
        if region_id is not None:
            stmt = stmt.where(S.region_id == region_id)
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _session(row)

    async def by_token(self, session_id: str, token_hash: str) -> TerminalSession | None:
        """The session whose URL carries this token (both must match)."""
        stmt = select(terminal_sessions).where(S.session_id == session_id, S.token_hash == token_hash)
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _session(row)

    async def spend_token(self, session_id: str, now: datetime) -> bool:
        """Mark the token used; False when it was used already (by this or another server)."""
        stmt = (
            update(terminal_sessions)
            .where(S.session_id == session_id, S.token_used_time.is_(None))
            .values(token_used_time=now)
        )
        return bool((await self.conn.execute(stmt)).rowcount)

    async def set_token(self, session_id: str, token_hash: str) -> None:
        await self.conn.execute(
            update(terminal_sessions).where(S.session_id == session_id).values(token_hash=token_hash)
        )

    async def end(self, session_id: str, now: datetime) -> None:
        await self.conn.execute(
            update(terminal_sessions).where(S.session_id == session_id, S.ended_time.is_(None)).values(ended_time=now)
        )

    async def count_live(self, account_id: int, region_id: str, now: datetime) -> int:
        """Sessions of the account in the region not ended: usable URLs, or with a connection still open."""
        has_open = select(C.channel_id).where(C.session_id == S.session_id, C.status.in_(OPEN_STATES)).exists()
        stmt = select(func.count()).where(
            S.account_id == account_id,
            S.region_id == region_id,
            S.ended_time.is_(None),
            or_(S.token_expires > now, has_open),
        )
        return int(await self.conn.scalar(stmt) or 0)

    def _where(self, f: SessionFilter) -> list[ColumnElement[bool]]:
        where = [S.account_id == f.account_id, S.region_id == f.region_id]
        if f.session_id:
            where.append(S.session_id == f.session_id)
        if f.instance_id:
            # the instance among the space-separated ids, or a connection to it
            where.append(
                or_(
                    (" " + S.instance_ids + " ").contains(f" {f.instance_id} "),
                    select(C.channel_id).where(C.session_id == S.session_id, C.instance_id == f.instance_id).exists(),
                )
            )
        return where

    async def list(self, f: SessionFilter, offset: int, limit: int, since: datetime) -> list[TerminalSession]:
        stmt = (
            select(terminal_sessions)
            .where(*self._where(f), S.creation_time >= since)
            .order_by(S.creation_time.desc(), S.session_id)
            .offset(offset)
            .limit(limit)
        )
        return [_session(row) for row in await self.conn.execute(stmt)]

    async def count(self, f: SessionFilter, since: datetime) -> int:
        stmt = select(func.count()).where(*self._where(f), S.creation_time >= since)
        return int(await self.conn.scalar(stmt) or 0)

    # connections

    async def add_connection(self, c: Connection) -> None:
        await self.conn.execute(
            terminal_connections.insert().values(
                channel_id=c.channel_id,
                session_id=c.session_id,
                account_id=c.account_id,
                instance_id=c.instance_id,
                status=c.status,
                client_ip=c.client_ip,
                start_time=c.start_time,
                seen_time=c.start_time,
                closed_reason="",
                failed_detail="",
                agent_status="",
                bytes_in=0,
                bytes_out=0,
                transcript_truncated=False,
            )
        )

    async def connection(self, channel_id: str) -> Connection | None:
        row = (await self.conn.execute(select(*_CONNECTION).where(C.channel_id == channel_id))).first()
        return None if row is None else _connection(row)

    async def connections(self, session_ids: Sequence[str]) -> dict[str, builtins.list[Connection]]:
        found: dict[str, builtins.list[Connection]] = {s: [] for s in session_ids}
        if session_ids:
            stmt = select(*_CONNECTION).where(C.session_id.in_(list(session_ids))).order_by(C.start_time, C.channel_id)
            for row in await self.conn.execute(stmt):
                found[row.session_id].append(_connection(row))
        return found

    async def open_connections(self, session_id: str) -> builtins.list[Connection]:
        stmt = select(*_CONNECTION).where(C.session_id == session_id, C.status.in_(OPEN_STATES))
        return [_connection(row) for row in await self.conn.execute(stmt)]

    async def count_open(self, instance_id: str) -> int:
        stmt = select(func.count()).where(C.instance_id == instance_id, C.status.in_(OPEN_STATES))
        return int(await self.conn.scalar(stmt) or 0)

    async def connected(self, channel_id: str, now: datetime) -> bool:
        """Connecting -> Connected (a re-dial of a Connected channel keeps it so); False once it has ended."""
        stmt = (
            update(terminal_connections)
            .where(C.channel_id == channel_id, C.status.in_(OPEN_STATES))
            .values(status="Connected", connected_time=func.coalesce(C.connected_time, now))
        )
        return bool((await self.conn.execute(stmt)).rowcount)

    async def agent_reported(self, channel_id: str, errorcode: str) -> bool:
        stmt = (
            update(terminal_connections)
            .where(C.channel_id == channel_id, C.status.in_(OPEN_STATES))
            .values(agent_status=errorcode[:64])
        )
        return bool((await self.conn.execute(stmt)).rowcount)

    async def finish(self, channel_id: str, status: str, reason: str, detail: str, now: datetime, **audit: Any) -> bool:
        """End an open connection (the first ending wins); `audit` sets bytes_in, bytes_out, transcript…"""
        stmt = (
            update(terminal_connections)
            .where(C.channel_id == channel_id, C.status.in_(OPEN_STATES))
            .values(status=status, closed_reason=reason, failed_detail=detail[:255], end_time=now, **audit)
        )
        return bool((await self.conn.execute(stmt)).rowcount)

    async def seen(self, channel_ids: Sequence[str], now: datetime) -> None:
        """These open connections are still held by a live server process."""
        if channel_ids:
            stmt = (
                update(terminal_connections)
                .where(C.channel_id.in_(list(channel_ids)), C.status.in_(OPEN_STATES))
                .values(seen_time=now)
            )
            await self.conn.execute(stmt)

    async def lost(self, before: datetime, limit: int = 500) -> builtins.list[str]:
        """Open connections no process has vouched for since `before`."""
        stmt = (
            select(C.channel_id)
            .where(C.status.in_(OPEN_STATES), C.seen_time < before)
            .order_by(C.seen_time)
            .limit(limit)
        )
        return [row.channel_id for row in await self.conn.execute(stmt)]

    async def forget_before(self, before: datetime) -> int:
        """Delete sessions created before `before` (retention) with their connections; how many sessions."""
        old = select(S.session_id).where(S.creation_time < before).limit(500).scalar_subquery()
        doomed = [row[0] for row in await self.conn.execute(select(S.session_id).where(S.session_id.in_(old)))]
        if doomed:
            await self.conn.execute(delete(terminal_connections).where(C.session_id.in_(doomed)))
            await self.conn.execute(delete(terminal_sessions).where(S.session_id.in_(doomed)))
        return len(doomed)

    async def audit(self, channel_id: str, **audit: Any) -> None:
        """Set the audit figures (bytes, transcript) of a connection, ended or not."""
        await self.conn.execute(update(terminal_connections).where(C.channel_id == channel_id).values(**audit))

    async def transcript(self, channel_id: str) -> tuple[bytes, bool] | None:
        """The kept transcript of a connection and whether it was cut at the cap (None when none was kept)."""
        row = (
            await self.conn.execute(select(C.transcript, C.transcript_truncated).where(C.channel_id == channel_id))
        ).first()
        if row is None or row.transcript is None:
            return None
        return bytes(row.transcript), bool(row.transcript_truncated)


#: Every column but the transcript itself, which only `transcript` reads; whether one was kept is a flag.
_CONNECTION = [
    *(c for c in terminal_connections.c if c.name != "transcript"),
    C.transcript.is_not(None).label("transcript_kept"),
]


def _session(row: Row[Any]) -> TerminalSession:
    spec = SessionSpec(
        instance_ids=tuple(row.instance_ids.split()),
        port_number=row.port_number,
        target_server=row.target_server,
        command_line=row.command_line,
        username=row.username,
        password_name=row.password_name,
        connection_type=row.connection_type,
    )
    return TerminalSession(
        session_id=row.session_id,
        account_id=row.account_id,
        region_id=row.region_id,
        spec=spec,
        access_key_id=row.access_key_id,
        client_ip=row.client_ip,
        creation_time=utc(row.creation_time),
        token_expires=utc(row.token_expires),
        token_used_time=utc_or_none(row.token_used_time),
        ended_time=utc_or_none(row.ended_time),
    )


def _connection(row: Row[Any]) -> Connection:
    return Connection(
        channel_id=row.channel_id,
        session_id=row.session_id,
        account_id=row.account_id,
        instance_id=row.instance_id,
        status=row.status,
        client_ip=row.client_ip,
        start_time=utc(row.start_time),
        connected_time=utc_or_none(row.connected_time),
        end_time=utc_or_none(row.end_time),
        closed_reason=row.closed_reason,
        failed_detail=row.failed_detail,
        agent_status=row.agent_status,
        bytes_in=row.bytes_in,
        bytes_out=row.bytes_out,
        transcript_kept=bool(row.transcript_kept),
    )

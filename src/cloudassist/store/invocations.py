"""Invocations (tasks): rows of `invocations` become `domain.invocations.Invocation` here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, bindparam, func, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import Invocation, RepeatMode, TerminationMode
from cloudassist.domain.statuses import TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository
from cloudassist.store.tables import invocation_results, invocations
from cloudassist.store.tags import tagged_with


@dataclass(frozen=True)
class InvocationFilter:
    account_id: int
    region_id: str
    not_before: datetime
    invoke_id: str | None = None
    command_id: str | None = None
    command_type: str | None = None
    command_name: str | None = None
    instance_id: str | None = None
    statuses: frozenset[str] | None = None
    invoke_statuses: frozenset[str] | None = None
    repeat_modes: frozenset[str] | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()
    before_seq: int | None = None
    #: DescribeInvocations' Timed: True selects recurring tasks still to run; False everything else.
    timed: bool | None = None


#: The repeat modes that run again by themselves, and the roll-ups of such a task that is not over yet.
TIMED_MODES: Final = (RepeatMode.PERIOD.value, RepeatMode.NEXT_REBOOT_ONLY.value, RepeatMode.EVERY_REBOOT.value)
TIMED_STATUSES: Final = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value, TaskStatus.SCHEDULED.value)


#: The agent face's statements, built once (see results.py).
_INSERT = invocations.insert()
_BY_ID = select(invocations).where(invocations.c.invoke_id == bindparam("b_invoke_id"))
_SET_STATUS = (
    update(invocations)
    .where(invocations.c.invoke_id == bindparam("b_invoke_id"))
    .values(status=bindparam("b_status"), invoke_status=bindparam("b_invoke_status"))
)


class Invocations(Repository):
    async def insert(
        self, inv: Invocation, *, seq: int, status: TaskStatus, invoke_status: str
    ) -> None:
        await self.conn.execute(
            _INSERT,
            dict(
                invoke_id=inv.invoke_id,
                account_id=inv.account_id,
                region_id=inv.region_id,
                command_id=inv.command_id,
                command_name=inv.command_name,
                command_type=inv.command_type.value,
                command_description=inv.command_description,
                content=inv.content,
                enable_parameter=inv.enable_parameter,
                parameters=json.dumps(inv.parameters),
                repeat_mode=inv.repeat_mode.value,
                frequency=inv.frequency,
                timeout=inv.timeout,
                working_dir=inv.working_dir,
                username=inv.username,
                windows_password_name=inv.windows_password_name,
                termination_mode=inv.termination_mode.value,
                launcher=inv.launcher,
                container_id=inv.container_id,
                container_name=inv.container_name,
                resource_group_id=inv.resource_group_id,
                creation_time=inv.creation_time,
                stop_time=inv.stop_time,
                seq=seq,
                status=status.value,
                invoke_status=invoke_status,
            )
        )

    async def get(self, account_id: int, region_id: str, invoke_id: str, *, lock: bool = False) -> Invocation | None:
        """The account's invocation in the region; with `lock`, its row stays locked until the transaction
        ends (PostgreSQL; SQLite's writers hold the write lock), so calls that change the task take turns."""
        stmt = select(invocations).where(
            invocations.c.invoke_id == invoke_id,
            invocations.c.account_id == account_id,
            invocations.c.region_id == region_id,
        )
        if lock and self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _invocation(row)

    async def lock(self, invoke_ids: Iterable[str]) -> None:
        """Lock these tasks' rows until the transaction ends, in invoke-id order (PostgreSQL; SQLite's writers
        hold the write lock). Every path that changes a task's records takes its task's lock first — the
        agent's fetches and reports, the sweeper, StopInvocation, ModifyInvocationAttribute — so two of them
        never wait for each other's rows in opposite orders."""
        ids = sorted(set(invoke_ids))
        if ids and self.dialect == "postgresql":
            stmt = select(invocations.c.invoke_id).where(invocations.c.invoke_id.in_(ids))
            await self.conn.execute(stmt.order_by(invocations.c.invoke_id).with_for_update())

    async def by_id(self, invoke_id: str) -> Invocation | None:
        """An invocation by id alone: for the agent face, whose instance fixes account and region."""
        row = (await self.conn.execute(_BY_ID, {"b_invoke_id": invoke_id})).first()
        return None if row is None else _invocation(row)

    async def by_ids(self, invoke_ids: Sequence[str]) -> dict[str, Invocation]:
        """Invocations by id alone (the primary key), for the agent face and the sweeper."""
        if not invoke_ids:
            return {}
        if len(invoke_ids) == 1:  # an agent's usual fetch: one task, by the statement built once
            found = await self.by_id(invoke_ids[0])
            return {} if found is None else {found.invoke_id: found}
        rows = await self.conn.execute(select(invocations).where(invocations.c.invoke_id.in_(list(invoke_ids))))
        return {row.invoke_id: _invocation(row) for row in rows}

    async def get_many(self, account_id: int, region_id: str, invoke_ids: Sequence[str]) -> dict[str, Invocation]:
        """The account's invocations in the region among `invoke_ids`.

        Looked up by primary key alone, then checked here: with `account_id = ?` in the SQL, SQLite
        without statistics walks the account's index instead of the key.
        """
        found = await self.by_ids(invoke_ids)
        return {k: v for k, v in found.items() if v.account_id == account_id and v.region_id == region_id}

    def _where(self, f: InvocationFilter) -> list[ColumnElement[bool]]:
        c = invocations.c
        where = [c.account_id == f.account_id, c.region_id == f.region_id, c.creation_time >= f.not_before]
        for column, value in (
            (c.invoke_id, f.invoke_id),
            (c.command_id, f.command_id),
            (c.command_type, f.command_type),
            (c.command_name, f.command_name),
            (c.resource_group_id, f.resource_group_id),
        ):
            if value:
                where.append(column == value)
        for column, values in (
            (c.status, f.statuses),
            (c.invoke_status, f.invoke_statuses),
            (c.repeat_mode, f.repeat_modes),
        ):
            if values is not None:
                where.append(column.in_(sorted(values)))
        if f.instance_id:
            where.append(
                c.invoke_id.in_(
                    select(invocation_results.c.invoke_id).where(
                        invocation_results.c.account_id == f.account_id,
                        invocation_results.c.region_id == f.region_id,
                        invocation_results.c.instance_id == f.instance_id,
                    )
                )
            )
        if f.before_seq is not None:
            where.append(c.seq < f.before_seq)
        if f.timed is not None:
            timed = c.repeat_mode.in_(TIMED_MODES) & c.status.in_(TIMED_STATUSES)
            where.append(timed if f.timed else ~timed)
        where += tagged_with(f.account_id, "invocation", c.invoke_id, f.tags)
        return where

    async def list(self, f: InvocationFilter, offset: int, limit: int) -> list[tuple[int, Invocation]]:
        """(seq, invocation) pairs, newest first."""
        stmt = select(invocations).where(*self._where(f)).order_by(invocations.c.seq.desc()).offset(offset).limit(limit)
        return [(int(row.seq), _invocation(row)) for row in await self.conn.execute(stmt)]

    async def count(self, f: InvocationFilter) -> int:
        return int(await self.conn.scalar(select(func.count()).select_from(invocations).where(*self._where(f))) or 0)

    async def set_status(self, invoke_id: str, status: TaskStatus, invoke_status: str) -> None:
        await self.conn.execute(
            _SET_STATUS, {"b_invoke_id": invoke_id, "b_status": status.value, "b_invoke_status": invoke_status}
        )

    async def modify(
        self,
        invoke_id: str,
        *,
        command_id: str,
        content: bytes,
        parameters: dict[str, str],
        enable_parameter: bool,
        frequency: str,
    ) -> None:
        """ModifyInvocationAttribute's changes to a task."""
        await self.conn.execute(
            update(invocations)
            .where(invocations.c.invoke_id == invoke_id)
            .values(
                command_id=command_id,
                content=content,
                parameters=json.dumps(parameters),
                enable_parameter=enable_parameter,
                frequency=frequency,
            )
        )

    async def set_stop_time(self, invoke_id: str, when: datetime) -> None:
        await self.conn.execute(
            update(invocations)
            .where(invocations.c.invoke_id == invoke_id, invocations.c.stop_time.is_(None))
            .values(stop_time=when)
        )


def _invocation(row: Row[Any]) -> Invocation:
    r = row._mapping
    return Invocation(
        invoke_id=r["invoke_id"],
        account_id=int(r["account_id"]),
        region_id=r["region_id"],
        command_id=r["command_id"],
        command_name=r["command_name"],
        command_type=CommandType(r["command_type"]),
        command_description=r["command_description"],
        content=bytes(r["content"]),
        parameters=json.loads(r["parameters"]),
        repeat_mode=RepeatMode(r["repeat_mode"]),
        frequency=r["frequency"],
        timeout=int(r["timeout"]),
        working_dir=r["working_dir"],
        username=r["username"],
        windows_password_name=r["windows_password_name"],
        termination_mode=TerminationMode(r["termination_mode"]),
        launcher=r["launcher"],
        container_id=r["container_id"],
        container_name=r["container_name"],
        resource_group_id=r["resource_group_id"],
        creation_time=utc(r["creation_time"]),
        stop_time=utc_or_none(r["stop_time"]),
        enable_parameter=bool(r["enable_parameter"]),
    )

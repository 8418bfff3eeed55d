"""Commands: rows of `commands` become `domain.commands.Command` here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, delete, func, select, update

from cloudassist.clock import utc
from cloudassist.domain.commands import Command, CommandType
from cloudassist.domain.tags import Tag
from cloudassist.store._base import LOCK_KEPT_COMMANDS, Repository
from cloudassist.store.tables import commands
from cloudassist.store.tags import tagged_with


@dataclass(frozen=True)
class CommandFilter:
    account_id: int
    region_id: str
    command_id: str | None = None
    type: str | None = None
    name: str | None = None
    description: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()


def _like(pattern: str) -> str:
    """The API's `*` wildcard as a LIKE pattern; without a `*` the match is exact."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


#: RunCommand's statements, built once (see results.py).
_INSERT = commands.insert()
_COUNT_INVOCATION = (
    update(commands)
    .where(commands.c.command_id == bindparam("b_command_id"))
    .values(invoke_times=commands.c.invoke_times + 1)
)


class Commands(Repository):
    async def insert(self, command: Command) -> None:
        await self.conn.execute(_INSERT, _row(command))

    async def get(self, account_id: int, region_id: str, command_id: str, *, hidden: bool = False) -> Command | None:
        stmt = select(commands).where(
            commands.c.command_id == command_id, commands.c.account_id == account_id, commands.c.region_id == region_id
        )
        if not hidden:
            stmt = stmt.where(commands.c.kept.is_(True))
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _command(row)

    def _where(self, f: CommandFilter) -> list[ColumnElement[bool]]:
        where = [commands.c.account_id == f.account_id, commands.c.region_id == f.region_id, commands.c.kept.is_(True)]
        if f.command_id:
            where.append(commands.c.command_id == f.command_id)
        if f.type:
            where.append(commands.c.type == f.type)
        if f.name:
            where.append(commands.c.name.like(_like(f.name), escape="\\"))
        if f.description:
            where.append(commands.c.description.like(_like(f.description), escape="\\"))
        if f.resource_group_id:
            where.append(commands.c.resource_group_id == f.resource_group_id)
        where += tagged_with(f.account_id, "command", commands.c.command_id, f.tags)
        return where

    async def list(self, f: CommandFilter, offset: int, limit: int) -> list[Command]:
        stmt = (
            select(commands)
            .where(*self._where(f))
            .order_by(commands.c.creation_time.desc(), commands.c.command_id.desc())
            .offset(offset)
            .limit(limit)
        )
        return [_command(row) for row in await self.conn.execute(stmt)]

    async def count(self, f: CommandFilter) -> int:
        return int(await self.conn.scalar(select(func.count()).select_from(commands).where(*self._where(f))) or 0)

    async def count_kept(self, account_id: int, region_id: str) -> int:
        return await self.count(CommandFilter(account_id, region_id))

    async def lock_kept(self, account_id: int, region_id: str) -> None:
        """Hold the account's kept commands in the region until the transaction ends: another transaction
        that counts them (to add one within the quota) waits until this one has committed its own."""
        await self.serialise(LOCK_KEPT_COMMANDS, f"{account_id}/{region_id}")

    async def update(self, command_id: str, **values: Any) -> None:
        await self.conn.execute(update(commands).where(commands.c.command_id == command_id).values(**values))

    async def count_invocation(self, command_id: str) -> None:
        await self.conn.execute(_COUNT_INVOCATION, {"b_command_id": command_id})

    async def delete(self, command_id: str) -> None:
        await self.conn.execute(delete(commands).where(commands.c.command_id == command_id))


def _row(c: Command) -> dict[str, Any]:
    return {
        "command_id": c.command_id,
        "account_id": c.account_id,
        "region_id": c.region_id,
        "name": c.name,
        "description": c.description,
        "type": c.type.value,
        "content": c.content,
        "working_dir": c.working_dir,
        "timeout": c.timeout,
        "enable_parameter": c.enable_parameter,
        "launcher": c.launcher,
        "resource_group_id": c.resource_group_id,
        "creation_time": c.creation_time,
        "invoke_times": c.invoke_times,
        "kept": c.kept,
    }


def _command(row: Row[Any]) -> Command:
    r = row._mapping
    return Command(
        command_id=r["command_id"],
        account_id=int(r["account_id"]),
        region_id=r["region_id"],
        name=r["name"],
        description=r["description"],
        type=CommandType(r["type"]),
        content=bytes(r["content"]),
        working_dir=r["working_dir"],
        timeout=int(r["timeout"]),
        enable_parameter=bool(r["enable_parameter"]),
        launcher=r["launcher"],
        resource_group_id=r["resource_group_id"],
        creation_time=utc(r["creation_time"]),
        invoke_times=int(r["invoke_times"]),
        kept=bool(r["kept"]),
    )

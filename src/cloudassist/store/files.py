"""File-sending tasks and their per-instance records: rows of `file_tasks`/`file_results` ↔ domain.files."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, insert, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.files import ContentType, FileErrorCode, FileResult, FileSpec, FileTask
from cloudassist.domain.statuses import InvocationStatus, TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository, one_of
from cloudassist.store.tables import file_results, file_tasks
from cloudassist.store.tags import tagged_with

#: The tag resource type of file tasks: they are "invocations" to the tag API, as command tasks are.
TAG_TYPE = "invocation"


@dataclass(frozen=True)
class FileFilter:
    account_id: int
    region_id: str
    not_before: datetime
    invoke_id: str | None = None
    instance_id: str | None = None
    name: str | None = None
    statuses: frozenset[str] | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()
    before_seq: int | None = None


@dataclass(frozen=True)
class Overdue:
    """A record the sweeper looks at, with what it needs of its task."""

    result: FileResult
    timeout: int


#: The agent face's statements, built once (see results.py).
_WAITING = select(file_results.c.instance_id).where(
    file_results.c.status == InvocationStatus.PENDING.value, file_results.c.delivered_time.is_(None)
)
_WAITING_ONE = _WAITING.where(file_results.c.instance_id == bindparam("instance_id")).limit(1)


@functools.cache
def _for_instance(statuses: tuple[str, ...]) -> Any:
    return (
        select(file_results)
        .where(one_of(file_results.c.status, statuses), file_results.c.instance_id == bindparam("instance_id"))
        .order_by(file_results.c.result_id)
    )


class Files(Repository):
    async def insert(self, task: FileTask, instance_ids: Sequence[str], *, seq: int) -> None:
        """The task and one Pending record per instance."""
        s = task.spec
        await self.conn.execute(
            file_tasks.insert().values(
                invoke_id=task.invoke_id,
                account_id=task.account_id,
                region_id=task.region_id,
                name=s.name,
                description=s.description,
                target_dir=s.target_dir,
                content=s.content,
                content_type=s.content_type.value,
                file_owner=s.file_owner,
                file_group=s.file_group,
                file_mode=s.file_mode,
                overwrite=s.overwrite,
                timeout=s.timeout,
                resource_group_id=s.resource_group_id,
                creation_time=task.creation_time,
                seq=seq,
                status=task.status.value,
            )
        )
        rows = [
            {
                "invoke_id": task.invoke_id,
                "account_id": task.account_id,
                "region_id": task.region_id,
                "instance_id": instance_id,
                "status": InvocationStatus.PENDING.value,
                "error_code": "",
                "error_info": "",
                "creation_time": task.creation_time,
                "update_time": task.creation_time,
            }
            for instance_id in instance_ids
        ]
        if rows:
            await self.conn.execute(insert(file_results), rows)

    async def by_ids(self, invoke_ids: Iterable[str]) -> dict[str, FileTask]:
        """Tasks by id alone (the agent face and the sweeper, whose instance fixes account and region)."""
        wanted = list(set(invoke_ids))
        if not wanted:
            return {}
        rows = await self.conn.execute(select(file_tasks).where(file_tasks.c.invoke_id.in_(wanted)))
        return {row.invoke_id: _task(row) for row in rows}

    def _where(self, f: FileFilter) -> list[ColumnElement[bool]]:
        c = file_tasks.c
        where = [c.account_id == f.account_id, c.region_id == f.region_id, c.creation_time >= f.not_before]
        for column, value in ((c.invoke_id, f.invoke_id), (c.name, f.name), (c.resource_group_id, f.resource_group_id)):
            if value:
                where.append(column == value)
        if f.statuses is not None:
            where.append(c.status.in_(sorted(f.statuses)))
        if f.instance_id:
            where.append(
                c.invoke_id.in_(
                    select(file_results.c.invoke_id).where(
                        file_results.c.account_id == f.account_id,
                        file_results.c.region_id == f.region_id,
                        file_results.c.instance_id == f.instance_id,
                    )
                )
            )
        if f.before_seq is not None:
            where.append(c.seq < f.before_seq)
        where += tagged_with(f.account_id, TAG_TYPE, c.invoke_id, f.tags)
        return where

    async def page(self, f: FileFilter, offset: int, limit: int) -> list[tuple[int, FileTask]]:
        """(seq, task) pairs, newest first."""
        stmt = select(file_tasks).where(*self._where(f)).order_by(file_tasks.c.seq.desc()).offset(offset).limit(limit)
        return [(int(row.seq), _task(row)) for row in await self.conn.execute(stmt)]

    async def count(self, f: FileFilter) -> int:
        return int(await self.conn.scalar(select(func.count()).select_from(file_tasks).where(*self._where(f))) or 0)

    async def results_of(self, invoke_ids: Sequence[str]) -> dict[str, list[FileResult]]:
        """Each task's records, in the order of its instances."""
        found: dict[str, list[FileResult]] = defaultdict(list)
        if invoke_ids:
            rows = await self.conn.execute(
                select(file_results)
                .where(file_results.c.invoke_id.in_(list(invoke_ids)))
                .order_by(file_results.c.result_id)
            )
            for row in rows:
                found[row.invoke_id].append(_result(row))
        return {i: found.get(i, []) for i in invoke_ids}

    async def for_instance(self, instance_id: str, statuses: Iterable[InvocationStatus]) -> list[FileResult]:
        stmt = _for_instance(tuple(s.value for s in statuses))
        return [_result(row) for row in await self.conn.execute(stmt, {"instance_id": instance_id})]

    async def current(self, invoke_id: str, instance_id: str) -> FileResult | None:
        row = (
            await self.conn.execute(
                select(file_results).where(
                    file_results.c.invoke_id == invoke_id, file_results.c.instance_id == instance_id
                )
            )
        ).first()
        return None if row is None else _result(row)

    async def update(self, result_id: int, *, expect: InvocationStatus | None = None, **values: Any) -> bool:
        """Change a record; with `expect`, only if it is still in that status. Whether it changed."""
        stmt = update(file_results).where(file_results.c.result_id == result_id)
        if expect is not None:
            stmt = stmt.where(file_results.c.status == expect.value)
        return bool((await self.conn.execute(stmt.values(**values))).rowcount)

    async def set_status(self, invoke_id: str, status: TaskStatus) -> None:
        await self.conn.execute(
            update(file_tasks).where(file_tasks.c.invoke_id == invoke_id).values(status=status.value)
        )

    async def waiting_instances(self, instance_id: str | None = None) -> set[str]:
        """Instances with a file not fetched yet."""
        if instance_id is not None:
            return {row.instance_id for row in await self.conn.execute(_WAITING_ONE, {"instance_id": instance_id})}
        return {row.instance_id for row in await self.conn.execute(_WAITING.distinct())}

    async def open_results(self) -> list[Overdue]:
        """Every record still Pending or Running, with its task's Timeout (the sweeper judges them)."""
        rows = await self.conn.execute(
            select(file_results, file_tasks.c.timeout)
            .join(file_tasks, file_tasks.c.invoke_id == file_results.c.invoke_id)
            .where(file_results.c.status.in_([InvocationStatus.PENDING.value, InvocationStatus.RUNNING.value]))
        )
        return [Overdue(_result(row), int(row.timeout)) for row in rows]


def _task(row: Row[Any]) -> FileTask:
    r = row._mapping
    return FileTask(
        invoke_id=r["invoke_id"],
        account_id=int(r["account_id"]),
        region_id=r["region_id"],
        spec=FileSpec(
            name=r["name"],
            target_dir=r["target_dir"],
            content=bytes(r["content"]),
            content_type=ContentType(r["content_type"]),
            description=r["description"],
            file_owner=r["file_owner"],
            file_group=r["file_group"],
            file_mode=r["file_mode"],
            overwrite=bool(r["overwrite"]),
            timeout=int(r["timeout"]),
            resource_group_id=r["resource_group_id"],
        ),
        creation_time=utc(r["creation_time"]),
        status=TaskStatus(r["status"]),
    )


def _result(row: Row[Any]) -> FileResult:
    r = row._mapping
    return FileResult(
        result_id=int(r["result_id"]),
        invoke_id=r["invoke_id"],
        instance_id=r["instance_id"],
        status=InvocationStatus(r["status"]),
        error_code=FileErrorCode(r["error_code"]),
        error_info=r["error_info"],
        creation_time=utc(r["creation_time"]),
        update_time=utc(r["update_time"]),
        start_time=utc_or_none(r["start_time"]),
        finish_time=utc_or_none(r["finish_time"]),
        delivered_time=utc_or_none(r["delivered_time"]),
    )

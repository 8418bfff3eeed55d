"""Tags on commands, invocations, activations and managed instances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Executable, Select, Table, and_, delete, insert, or_, select, tuple_

from cloudassist.domain.tags import KeyPattern, Tag, TagQuery
from cloudassist.store._base import LOCK_TAGS, Repository
from cloudassist.store.tables import activations, commands, file_tasks, invocations, managed_instances, tags

T = tags.c


@dataclass(frozen=True)
class Taggable:
    """Where the resources of one ResourceType live, and which of their rows count as existing."""

    table: Table
    id_column: str
    #: a boolean column that must be true (kept commands) or false (live managed instances), if any
    flag: tuple[str, bool] | None = None

    @property
    def id(self) -> Column[str]:
        return self.table.c[self.id_column]

    def live(self, account_id: int, region_id: str) -> list[ColumnElement[bool]]:
        where = [self.table.c.account_id == account_id, self.table.c.region_id == region_id]
        if self.flag is not None:
            where.append(self.table.c[self.flag[0]].is_(self.flag[1]))
        return where


#: ResourceType → its tables (`invocation`: command tasks and SendFile tasks alike, as in ECS). An
#: unkept command (RunCommand KeepCommand=false) and a deregistered instance do not exist for the API,
#: so they cannot be tagged or listed either.
TAGGABLE: dict[str, tuple[Taggable, ...]] = {
    "command": (Taggable(commands, "command_id", ("kept", True)),),
    "invocation": (Taggable(invocations, "invoke_id"), Taggable(file_tasks, "invoke_id")),
    "activation": (Taggable(activations, "activation_id"),),
    "managedinstance": (Taggable(managed_instances, "instance_id", ("deregistered", False)),),
}


@dataclass(frozen=True)
class TagListing:
    """What ListTagResources selects, and where its page starts (after `after`: (ResourceId, TagKey))."""

    account_id: int
    region_id: str
    resource_type: str
    resource_ids: Sequence[str] = ()
    tags: Sequence[TagQuery] = ()
    key_patterns: Sequence[KeyPattern] = ()
    after: tuple[str, str] | None = None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Tags(Repository):
    async def add(self, account_id: int, resource_type: str, resource_id: str, items: Iterable[Tag]) -> None:
        rows = [
            {
                "account_id": account_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "tag_key": t.key,
                "tag_value": t.value,
            }
            for t in items
        ]
        if rows:
            await self.conn.execute(insert(tags), rows)

    async def of(self, resource_type: str, resource_ids: Sequence[str]) -> dict[str, tuple[Tag, ...]]:
        """The tags of each resource, sorted by key."""
        found: dict[str, list[Tag]] = defaultdict(list)
        if resource_ids:
            rows = await self.conn.execute(
                select(tags.c.resource_id, tags.c.tag_key, tags.c.tag_value).where(
                    tags.c.resource_type == resource_type, tags.c.resource_id.in_(list(resource_ids))
                )
            )
            for row in rows:
                found[row.resource_id].append(Tag(row.tag_key, row.tag_value))
        return {rid: tuple(sorted(found.get(rid, ()))) for rid in resource_ids}

    async def existing(
        self, account_id: int, region_id: str, resource_type: str, resource_ids: Sequence[str]
    ) -> set[str]:
        """Those of `resource_ids` that are the account's resources of that type in the region."""
        found: set[str] = set()
        for kind in TAGGABLE[resource_type]:
            rows = await self.conn.execute(
                select(kind.id).where(kind.id.in_(list(resource_ids)), *kind.live(account_id, region_id))
            )
            found.update(row[0] for row in rows)
        return found

    async def lock(self, resource_type: str, resource_ids: Sequence[str]) -> None:
        """Hold the tags of these resources until the transaction ends: another transaction that reads them
        to change them (TagResources' 20-tag check) waits until this one has committed. Call it before reading."""
        for resource_id in sorted(set(resource_ids)):  # one order for every caller: no two wait for each other
            await self.serialise(LOCK_TAGS, f"{resource_type}/{resource_id}")

    async def put(self, account_id: int, resource_type: str, resource_id: str, items: Sequence[Tag]) -> None:
        """Set these tags on the resource: a key it has already takes the new value (an upsert, so a key
        another transaction has just added is overwritten, never a primary-key conflict)."""
        values = {t.key: t.value for t in items}  # a key given twice: the last value
        if not values:
            return
        rows = [
            {
                "account_id": account_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "tag_key": key,
                "tag_value": value,
            }
            for key, value in values.items()
        ]
        key = [T.resource_type, T.resource_id, T.tag_key]
        if self.dialect == "postgresql":  # each dialect's module is imported only when used
            from sqlalchemy.dialects import postgresql

            pg = postgresql.insert(tags).values(rows)
            upsert: Executable = pg.on_conflict_do_update(
                index_elements=key, set_={"tag_value": pg.excluded.tag_value, "account_id": pg.excluded.account_id}
            )
        else:
            from sqlalchemy.dialects import sqlite

            lite = sqlite.insert(tags).values(rows)
            upsert = lite.on_conflict_do_update(
                index_elements=key, set_={"tag_value": lite.excluded.tag_value, "account_id": lite.excluded.account_id}
            )
        await self.conn.execute(upsert)

    async def remove(self, resource_type: str, resource_id: str, keys: Sequence[str] | None) -> int:
        """Remove the tags with these keys (every tag when `keys` is None); how many were removed."""
        stmt = delete(tags).where(T.resource_type == resource_type, T.resource_id == resource_id)
        if keys is not None:
            if not keys:
                return 0
            stmt = stmt.where(T.tag_key.in_(list(keys)))
        return int((await self.conn.execute(stmt)).rowcount)

    async def listing(self, f: TagListing, limit: int) -> list[tuple[str, Tag]]:
        """(ResourceId, Tag) rows of ListTagResources in (ResourceId, TagKey) order, after `f.after`."""
        mine = [T.account_id == f.account_id, T.resource_type == f.resource_type]
        live = [
            T.resource_id.in_(select(k.id).where(*k.live(f.account_id, f.region_id))) for k in TAGGABLE[f.resource_type]
        ]
        where = [*mine, or_(*live)]
        if f.resource_ids:
            where.append(T.resource_id.in_(list(f.resource_ids)))
        for query in f.tags:
            match = [*mine, T.tag_key == query.key]
            if query.value is not None:
                match.append(T.tag_value == query.value)
            where.append(T.resource_id.in_(select(T.resource_id).where(*match)))
        for pattern in f.key_patterns:
            found = _matching(T.tag_key, pattern)
            if pattern.values:
                found = and_(found, or_(*(_matching(T.tag_value, v) for v in pattern.value_patterns)))
            where.append(T.resource_id.in_(select(T.resource_id).where(*mine, found)))
        if f.after is not None:
            where.append(tuple_(T.resource_id, T.tag_key) > tuple_(*f.after))
        stmt = select(T.resource_id, T.tag_key, T.tag_value).where(*where)
        rows = await self.conn.execute(stmt.order_by(T.resource_id, T.tag_key).limit(limit))
        return [(row.resource_id, Tag(row.tag_key, row.tag_value)) for row in rows]

    async def remove_all(self, resource_type: str, resource_id: str) -> None:
        await self.conn.execute(
            delete(tags).where(tags.c.resource_type == resource_type, tags.c.resource_id == resource_id)
        )


def _matching(column: ColumnElement[str], pattern: KeyPattern) -> ColumnElement[bool]:
    """`column` matches `pattern` exactly, by prefix (`env*`) or by infix (`*env*`)."""
    if pattern.infix:
        return column.like(f"%{_like(pattern.core)}%", escape="\\")
    if pattern.prefix:
        return column.like(f"{_like(pattern.core)}%", escape="\\")
    return column == pattern.core


def tagged_with(
    account_id: int,
    resource_type: str,
    column: ColumnElement[str],
    wanted: Sequence[Tag],
    member: Callable[[ColumnElement[str], Select[Any]], ColumnElement[bool]] = lambda c, q: c.in_(q),
) -> list[ColumnElement[bool]]:
    """Conditions selecting the resources (by `column`) that carry every tag in `wanted`: `member(column,
    query)` of each tag's query (by default `column IN (query)`)."""
    return [
        member(
            column,
            select(tags.c.resource_id).where(
                tags.c.account_id == account_id,
                tags.c.resource_type == resource_type,
                tags.c.tag_key == tag.key,
                tags.c.tag_value == tag.value,
            )
        )
        for tag in wanted
    ]

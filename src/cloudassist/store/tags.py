"""Tags on commands, invocations, activations and managed instances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, delete, insert, select

from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository
from cloudassist.store.tables import tags


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

    async def remove_all(self, resource_type: str, resource_id: str) -> None:
        await self.conn.execute(
            delete(tags).where(tags.c.resource_type == resource_type, tags.c.resource_id == resource_id)
        )


def tagged_with(
    account_id: int, resource_type: str, column: ColumnElement[str], wanted: Sequence[Tag]
) -> list[ColumnElement[bool]]:
    """Conditions selecting the resources (by `column`) that carry every tag in `wanted`."""
    return [
        column.in_(
            select(tags.c.resource_id).where(
                tags.c.account_id == account_id,
                tags.c.resource_type == resource_type,
                tags.c.tag_key == tag.key,
                tags.c.tag_value == tag.value,
            )
        )
        for tag in wanted
    ]

"""TagResources, UntagResources and ListTagResources on commands, invocations, activations and instances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloudassist.domain.tags import KeyPattern, Tag, TagQuery, merged
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.store.store import Tx
from cloudassist.store.tags import TagListing

#: ListTagResources answers this many rows a page unless MaxResults says otherwise (ECS: 50).
DEFAULT_PAGE: int = 50
MAX_PAGE: int = 1000


@dataclass(frozen=True)
class TagPage:
    rows: list[tuple[str, Tag]]
    #: (ResourceId, TagKey) of the last row when another page follows
    next_after: tuple[str, str] | None


class TagService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _require(self, tx: Tx, scope: Scope, resource_type: str, resource_ids: Sequence[str]) -> None:
        """Every id must be one of the caller's resources of that type in the region (another account's,
        or another region's, is not found: its existence is not revealed)."""
        found = await tx.tags.existing(scope.account_id, scope.region_id, resource_type, resource_ids)
        missing = [i for i in resource_ids if i not in found]
        if missing:
            raise ApiError.of(
                "InvalidResourceId.NotFound", f"The specified ResourceIds are not found in our records: {missing[0]}."
            )

    async def tag_resources(
        self, scope: Scope, resource_type: str, resource_ids: Sequence[str], items: Sequence[Tag]
    ) -> None:
        """Add the tags to every resource, all or none: a key it has takes the new value; ≤ 20 tags each.
        Concurrent calls on one resource take turns (its tags are locked before they are counted)."""
        async with self.ctx.store.write() as tx:
            await tx.tags.lock(resource_type, resource_ids)
            await self._require(tx, scope, resource_type, resource_ids)
            current = {}
            for resource_id in resource_ids:
                tags = (await tx.tags.of(resource_type, [resource_id]))[resource_id]
                current[resource_id] = {t.key: t.value for t in tags}
                merged(current[resource_id], tuple(items))  # refuses a resource that would pass 20
            for resource_id in resource_ids:
                await tx.tags.put(scope.account_id, resource_type, resource_id, items)

    async def untag_resources(
        self, scope: Scope, resource_type: str, resource_ids: Sequence[str], keys: Sequence[str], *, every: bool
    ) -> None:
        """Remove the tags with `keys` from every resource; with no keys and `every`, all their tags.
        A key a resource does not carry is skipped."""
        async with self.ctx.store.write() as tx:
            await self._require(tx, scope, resource_type, resource_ids)
            for resource_id in resource_ids:
                await tx.tags.remove(resource_type, resource_id, None if every and not keys else keys)

    async def list_tag_resources(
        self,
        scope: Scope,
        resource_type: str,
        resource_ids: Sequence[str],
        queries: Sequence[TagQuery],
        patterns: Sequence[KeyPattern],
        *,
        after: tuple[str, str] | None,
        size: int,
    ) -> TagPage:
        f = TagListing(scope.account_id, scope.region_id, resource_type, resource_ids, queries, patterns, after)
        async with self.ctx.store.read() as tx:
            rows = await tx.tags.listing(f, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        return TagPage(rows, (rows[-1][0], rows[-1][1].key) if more and rows else None)

"""Quota counters: tasks created per account, region and UTC day."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from cloudassist.store._base import Repository
from cloudassist.store.tables import daily_invocations

D = daily_invocations.c


class Quotas(Repository):
    async def take_invocation(self, account_id: int, region_id: str, day: str, limit: int) -> bool:
        """Count one more task of the day, unless `limit` were passed; False when the quota is used up.

        The counter row is updated in the caller's transaction, so a call that fails later gives its
        unit back, and concurrent calls queue on the row (PostgreSQL) or the write lock (SQLite)."""
        await self.insert_or_skip(
            daily_invocations, {"account_id": account_id, "region_id": region_id, "day": day, "count": 0}
        )
        result = await self.conn.execute(
            update(daily_invocations)
            .where(D.account_id == account_id, D.region_id == region_id, D.day == day, D.count < limit)
            .values(count=D.count + 1)
        )
        return bool(result.rowcount)

    async def invocations_on(self, account_id: int, region_id: str, day: str) -> int:
        value = await self.conn.scalar(
            select(D.count).where(D.account_id == account_id, D.region_id == region_id, D.day == day)
        )
        return int(value or 0)

    async def forget_days_before(self, day: str) -> int:
        """Drop the counters of days before `day` (the retention job)."""
        return int((await self.conn.execute(delete(daily_invocations).where(D.day < day))).rowcount)

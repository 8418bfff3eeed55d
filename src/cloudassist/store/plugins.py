"""The plug-ins agents report, per instance (`plugin_statuses`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from cloudassist.clock import utc
from cloudassist.domain.plugins import PluginStatus
from cloudassist.store._base import Repository
from cloudassist.store.tables import plugin_statuses

P = plugin_statuses.c


class Plugins(Repository):
    async def report(self, instance_id: str, name: str, version: str, status: str, now: datetime) -> None:
        """Record one plug-in's state as its agent reports it: the first report's time stays, the last moves."""
        inserted = await self.insert_or_skip(
            plugin_statuses,
            {
                "instance_id": instance_id,
                "plugin_name": name,
                "plugin_version": version,
                "status": status,
                "first_heartbeat_time": now,
                "last_heartbeat_time": now,
            },
        )
        if not inserted:
            await self.conn.execute(
                update(plugin_statuses)
                .where(P.instance_id == instance_id, P.plugin_name == name)
                .values(plugin_version=version, status=status, last_heartbeat_time=now)
            )

    async def of(self, instance_ids: Sequence[str], name: str | None = None) -> dict[str, list[PluginStatus]]:
        """The plug-ins of these instances (only `name` when given), each instance's by name."""
        stmt = select(plugin_statuses).where(P.instance_id.in_(list(instance_ids)))
        if name is not None:
            stmt = stmt.where(P.plugin_name == name)
        found: dict[str, list[PluginStatus]] = {i: [] for i in instance_ids}
        for row in await self.conn.execute(stmt.order_by(P.instance_id, P.plugin_name)):
            found[row.instance_id].append(
                PluginStatus(
                    row.plugin_name,
                    row.plugin_version,
                    row.status,
                    utc(row.first_heartbeat_time),
                    utc(row.last_heartbeat_time),
                )
            )
        return found

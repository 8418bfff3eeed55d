"""Managed instances: rows of `managed_instances` become `domain.instances.ManagedInstance` here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, select, update

from cloudassist.clock import utc, utc_or_none
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository
from cloudassist.store.tables import invocation_results, managed_instances
from cloudassist.store.tags import tagged_with

M = managed_instances.c
#: The agent face's statements, built once (see results.py).
_GET = select(managed_instances).where(M.instance_id == bindparam("b_instance_id"), M.deregistered.is_(False))
_UPDATE = update(managed_instances).where(M.instance_id == bindparam("b_instance_id"))
_DISCONNECTED = _UPDATE.where(M.last_heartbeat_time <= bindparam("b_seen", type_=M.last_heartbeat_time.type)).values(
    disconnected_time=bindparam("b_now", type_=M.disconnected_time.type)
)
_COUNT_INVOCATION = _UPDATE.values(
    invocation_count=M.invocation_count + 1, last_invoked_time=bindparam("b_when", type_=M.last_invoked_time.type)
)


@dataclass(frozen=True)
class InstanceFilter:
    account_id: int
    region_id: str
    instance_ids: Sequence[str] = ()
    instance_name: str | None = None
    activation_id: str | None = None
    os_type: str | None = None
    instance_ip: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()
    machine_id: str | None = None
    #: With `online_since`: only instances whose last heart-beat is (True) or is not (False) that recent.
    connected: bool | None = None
    online_since: datetime | None = None


class Instances(Repository):
    async def insert(self, m: ManagedInstance) -> None:
        await self.conn.execute(
            managed_instances.insert().values(
                instance_id=m.instance_id,
                account_id=m.account_id,
                region_id=m.region_id,
                activation_id=m.activation_id,
                instance_name=m.instance_name,
                hostname=m.hostname,
                machine_id=m.machine_id,
                os_type=m.os_type,
                os_version=m.os_version,
                agent_version=m.agent_version,
                intranet_ip=m.intranet_ip,
                internet_ip=m.internet_ip,
                public_key=m.public_key,
                resource_group_id=m.resource_group_id,
                registration_time=m.registration_time,
                last_heartbeat_time=m.last_heartbeat_time,
                last_invoked_time=m.last_invoked_time,
                invocation_count=m.invocation_count,
                deregistered=False,
            )
        )

    def _where(self, f: InstanceFilter) -> list[ColumnElement[bool]]:
        where = [M.account_id == f.account_id, M.region_id == f.region_id, M.deregistered.is_(False)]
        if f.instance_ids:
            where.append(M.instance_id.in_(list(f.instance_ids)))
        for column, value in (
            (M.instance_name, f.instance_name),
            (M.activation_id, f.activation_id),
            (M.resource_group_id, f.resource_group_id),
            (M.machine_id, f.machine_id),
        ):
            if value:
                where.append(column == value)
        if f.connected is not None and f.online_since is not None:
            online = (
                M.last_heartbeat_time.is_not(None)
                & (M.last_heartbeat_time >= f.online_since)
                & (M.disconnected_time.is_(None) | (M.disconnected_time < M.last_heartbeat_time))
            )
            where.append(online if f.connected else ~online)
        if f.os_type:
            where.append(func.lower(M.os_type) == f.os_type.lower())
        if f.instance_ip:
            where.append((M.intranet_ip == f.instance_ip) | (M.internet_ip == f.instance_ip))
        return where + tagged_with(f.account_id, "managedinstance", M.instance_id, f.tags)

    async def list(self, f: InstanceFilter, offset: int, limit: int) -> list[ManagedInstance]:
        stmt = (
            select(managed_instances)
            .where(*self._where(f))
            .order_by(M.registration_time.desc(), M.instance_id)
            .offset(offset)
            .limit(limit)
        )
        return [_instance(row) for row in await self.conn.execute(stmt)]

    async def count(self, f: InstanceFilter) -> int:
        return int(
            await self.conn.scalar(select(func.count()).select_from(managed_instances).where(*self._where(f))) or 0
        )

    async def get_many(
        self, account_id: int, region_id: str, instance_ids: Sequence[str]
    ) -> dict[str, ManagedInstance]:
        found = await self.list(InstanceFilter(account_id, region_id, instance_ids=instance_ids), 0, len(instance_ids))
        return {m.instance_id: m for m in found}

    async def os_types(self, account_id: int, region_id: str, instance_ids: Sequence[str]) -> dict[str, str]:
        """The OS type of each of these registered instances of the account in the region (RunCommand's check)."""
        stmt = select(M.instance_id, M.os_type).where(
            M.instance_id.in_(list(instance_ids)), M.account_id == account_id, M.region_id == region_id,
            M.deregistered.is_(False),
        )
        return {row.instance_id: row.os_type for row in await self.conn.execute(stmt)}

    async def get_in(
        self, account_id: int, region_id: str, instance_id: str, *, include_deregistered: bool = False
    ) -> ManagedInstance | None:
        """One instance of an account in a region; deregistered ones only when asked for."""
        stmt = select(managed_instances).where(
            M.instance_id == instance_id, M.account_id == account_id, M.region_id == region_id
        )
        if not include_deregistered:
            stmt = stmt.where(M.deregistered.is_(False))
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _instance(row)

    async def get(self, instance_id: str) -> ManagedInstance | None:
        row = (await self.conn.execute(_GET, {"b_instance_id": instance_id})).first()
        return None if row is None else _instance(row)

    async def by_ids(self, instance_ids: Iterable[str]) -> dict[str, ManagedInstance]:
        """Registered instances by id alone (the sweeper's view of many agents at once)."""
        wanted = sorted(set(instance_ids))
        found: dict[str, ManagedInstance] = {}
        for first in range(0, len(wanted), 500):
            stmt = select(managed_instances).where(
                M.instance_id.in_(wanted[first : first + 500]), M.deregistered.is_(False)
            )
            found.update((row.instance_id, _instance(row)) for row in await self.conn.execute(stmt))
        return found

    async def update(self, instance_id: str, **values: Any) -> None:
        await self.conn.execute(_UPDATE, {**values, "b_instance_id": instance_id})

    async def disconnected(self, instance_id: str, seen: datetime, now: datetime) -> None:
        """The instance's websocket closed at `now`: offline, unless it showed life (a heart-beat, a websocket
        opened on another server) after `seen`, the last this server saw of it."""
        await self.conn.execute(_DISCONNECTED, {"b_instance_id": instance_id, "b_seen": seen, "b_now": now})

    async def active_task_counts(self, instance_ids: Sequence[str]) -> dict[str, int]:
        """How many executions are running on each instance."""
        if not instance_ids:
            return {}
        stmt = (
            select(invocation_results.c.instance_id, func.count())
            .where(
                invocation_results.c.instance_id.in_(list(instance_ids)),
                invocation_results.c.status.in_(["Running", "Stopping"]),
            )
            .group_by(invocation_results.c.instance_id)
        )
        counts = {row[0]: int(row[1]) for row in await self.conn.execute(stmt)}
        return {i: counts.get(i, 0) for i in instance_ids}

    async def count_invocation(self, instance_id: str, when: datetime) -> None:
        """One more execution ended on the instance (InvocationCount, LastInvokedTime)."""
        await self.conn.execute(_COUNT_INVOCATION, {"b_instance_id": instance_id, "b_when": when})


def _instance(row: Row[Any]) -> ManagedInstance:
    r = row._mapping
    return ManagedInstance(
        instance_id=r["instance_id"],
        account_id=int(r["account_id"]),
        region_id=r["region_id"],
        activation_id=r["activation_id"],
        instance_name=r["instance_name"],
        hostname=r["hostname"],
        machine_id=r["machine_id"],
        os_type=r["os_type"],
        os_version=r["os_version"],
        agent_version=r["agent_version"],
        intranet_ip=r["intranet_ip"],
        internet_ip=r["internet_ip"],
        public_key=r["public_key"],
        resource_group_id=r["resource_group_id"],
        registration_time=utc(r["registration_time"]),
        last_heartbeat_time=utc_or_none(r["last_heartbeat_time"]),
        last_invoked_time=utc_or_none(r["last_invoked_time"]),
        invocation_count=int(r["invocation_count"]),
        disconnected_time=utc_or_none(r["disconnected_time"]),
    )

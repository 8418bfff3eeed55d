"""Activation codes: rows of `activations` become `domain.activations.Activation` here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, select, update

from cloudassist.clock import utc
from cloudassist.domain.activations import Activation
from cloudassist.domain.tags import Tag
from cloudassist.store._base import Repository
from cloudassist.store.tables import activations
from cloudassist.store.tags import tagged_with

A = activations.c


@dataclass(frozen=True)
class ActivationFilter:
    account_id: int
    region_id: str
    activation_id: str | None = None
    instance_name: str | None = None
    resource_group_id: str | None = None
    tags: Sequence[Tag] = ()


class Activations(Repository):
    async def insert(self, a: Activation) -> None:
        await self.conn.execute(
            activations.insert().values(
                activation_id=a.activation_id,
                account_id=a.account_id,
                region_id=a.region_id,
                code_hash=a.code_hash,
                description=a.description,
                instance_name=a.instance_name,
                instance_count=a.instance_count,
                registered_count=a.registered_count,
                deregistered_count=a.deregistered_count,
                ip_address_range=a.ip_address_range,
                time_to_live_in_hours=a.time_to_live_in_hours,
                resource_group_id=a.resource_group_id,
                creation_time=a.creation_time,
                disabled=a.disabled,
            )
        )

    async def get(
        self, activation_id: str, account_id: int | None = None, region_id: str | None = None, *, lock: bool = False
    ) -> Activation | None:
        stmt = select(activations).where(A.activation_id == activation_id)
        if account_id is not None:
            stmt = stmt.where(A.account_id == account_id)
        if region_id is not None:
            stmt = stmt.where(A.region_id == region_id)
        if lock and self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return None if row is None else _activation(row)

    def _where(self, f: ActivationFilter) -> list[ColumnElement[bool]]:
        where = [A.account_id == f.account_id, A.region_id == f.region_id]
        for column, value in (
            (A.activation_id, f.activation_id),
            (A.instance_name, f.instance_name),
            (A.resource_group_id, f.resource_group_id),
        ):
            if value:
                where.append(column == value)
        return where + tagged_with(f.account_id, "activation", A.activation_id, f.tags)

    async def list(self, f: ActivationFilter, offset: int, limit: int) -> list[Activation]:
        stmt = (
            select(activations)
            .where(*self._where(f))
            .order_by(A.creation_time.desc(), A.activation_id)
            .offset(offset)
            .limit(limit)
        )
        return [_activation(row) for row in await self.conn.execute(stmt)]

    async def count(self, f: ActivationFilter) -> int:
        return int(await self.conn.scalar(select(func.count()).select_from(activations).where(*self._where(f))) or 0)

    async def count_all(self, account_id: int, region_id: str) -> int:
        return await self.count(ActivationFilter(account_id, region_id))

    async def update(self, activation_id: str, **values: Any) -> None:
        await self.conn.execute(update(activations).where(A.activation_id == activation_id).values(**values))

    async def change_counts(self, activation_id: str, registered: int = 0, deregistered: int = 0) -> None:
        await self.conn.execute(
            update(activations)
            .where(A.activation_id == activation_id)
            .values(
                registered_count=A.registered_count + registered, deregistered_count=A.deregistered_count + deregistered
            )
        )

    async def delete(self, activation_id: str) -> None:
        await self.conn.execute(delete(activations).where(A.activation_id == activation_id))


def _activation(row: Row[Any]) -> Activation:
    r = row._mapping
    return Activation(
        activation_id=r["activation_id"],
        account_id=int(r["account_id"]),
        region_id=r["region_id"],
        code_hash=r["code_hash"],
        description=r["description"],
        instance_name=r["instance_name"],
        instance_count=int(r["instance_count"]),
        registered_count=int(r["registered_count"]),
        deregistered_count=int(r["deregistered_count"]),
        ip_address_range=r["ip_address_range"],
        time_to_live_in_hours=int(r["time_to_live_in_hours"]),
        resource_group_id=r["resource_group_id"],
        creation_time=utc(r["creation_time"]),
        disabled=bool(r["disabled"]),
    )

"""Accounts and their access keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select, update

from cloudassist.clock import utc
from cloudassist.store._base import Repository
from cloudassist.store.tables import access_keys, accounts


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account_id: int
    account_name: str
    secret: str
    enabled: bool
    creation_time: datetime

    def __repr__(self) -> str:  # never show the secret, not even in a traceback
        return f"AccessKey({self.access_key_id!r}, account={self.account_name!r}, enabled={self.enabled})"


_KEY_ENABLED = select(access_keys.c.enabled).where(access_keys.c.access_key_id == bindparam("b_key_id"))
_ALLOCATE = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("b_account_id"))
    .values(result_seq=accounts.c.result_seq + bindparam("b_count", type_=accounts.c.result_seq.type))
    .returning(accounts.c.result_seq)
)
_ALLOCATE_TASK = (
    update(accounts)
    .where(accounts.c.account_id == bindparam("b_account_id"))
    .values(task_seq=accounts.c.task_seq + 1)
    .returning(accounts.c.task_seq)
)
_CURRENT_SEQ = select(accounts.c.result_seq).where(accounts.c.account_id == bindparam("b_account_id"))


class Accounts(Repository):
    """Accounts, their access keys and their sequence of execution records."""

    async def ensure(self, name: str, now: datetime) -> int:
        """The id of the account called `name`, created if it does not exist."""
        await self.insert_or_skip(accounts, {"name": name, "creation_time": now, "result_seq": 0, "task_seq": 0})
        account_id = await self.conn.scalar(select(accounts.c.account_id).where(accounts.c.name == name))
        assert account_id is not None
        return int(account_id)

    async def find(self, name: str) -> int | None:
        value = await self.conn.scalar(select(accounts.c.account_id).where(accounts.c.name == name))
        return None if value is None else int(value)

    async def names(self) -> dict[int, str]:
        rows = await self.conn.execute(select(accounts.c.account_id, accounts.c.name))
        return {int(r.account_id): r.name for r in rows}

    async def allocate_seq(self, account_id: int, count: int) -> int:
        """Reserve `count` consecutive execution-record numbers; returns the last one."""
        return int((await self.conn.execute(_ALLOCATE, {"b_account_id": account_id, "b_count": count})).scalar_one())

    async def allocate_task_seq(self, account_id: int) -> int:
        """Reserve the next task number of the account."""
        return int((await self.conn.execute(_ALLOCATE_TASK, {"b_account_id": account_id})).scalar_one())

    async def current_seq(self, account_id: int) -> int:
        value = await self.conn.scalar(_CURRENT_SEQ, {"b_account_id": account_id})
        return int(value or 0)

    async def add_key(self, account_id: int, access_key_id: str, secret: str, now: datetime) -> bool:
        """Store a key; False if that AccessKeyId exists already."""
        return await self.insert_or_skip(
            access_keys,
            {
                "access_key_id": access_key_id,
                "account_id": account_id,
                "secret": secret,
                "enabled": True,
                "creation_time": now,
            },
        )

    async def key(self, access_key_id: str) -> AccessKey | None:
        row = (await self.conn.execute(self._keys().where(access_keys.c.access_key_id == access_key_id))).first()
        return None if row is None else _key(row)

    async def key_enabled(self, access_key_id: str) -> bool | None:
        """Whether the key is enabled now; None if there is no such key."""
        value = await self.conn.scalar(_KEY_ENABLED, {"b_key_id": access_key_id})
        return None if value is None else bool(value)

    async def keys(self, account_id: int | None = None) -> list[AccessKey]:
        stmt = self._keys().order_by(accounts.c.name, access_keys.c.creation_time)
        if account_id is not None:
            stmt = stmt.where(access_keys.c.account_id == account_id)
        return [_key(row) for row in await self.conn.execute(stmt)]

    async def set_key_enabled(self, access_key_id: str, enabled: bool) -> bool:
        result = await self.conn.execute(
            update(access_keys).where(access_keys.c.access_key_id == access_key_id).values(enabled=enabled)
        )
        return bool(result.rowcount)

    async def count_keys(self) -> int:
        return int(await self.conn.scalar(select(func.count()).select_from(access_keys)) or 0)

    @staticmethod
    def _keys() -> Select[Any]:
        return select(access_keys, accounts.c.name.label("account_name")).join(
            accounts, accounts.c.account_id == access_keys.c.account_id
        )


def _key(row: Row[Any]) -> AccessKey:
    r = row._mapping
    return AccessKey(
        r["access_key_id"],
        int(r["account_id"]),
        r["account_name"],
        r["secret"],
        bool(r["enabled"]),
        utc(r["creation_time"]),
    )

"""Fixtures of the console tests: two accounts with a key each (A: testak, B: made like an operator makes one),
and a managed Linux instance in each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cloudassist.services.access import AccessService
from cloudassist.services.context import Context
from cloudassist.testing import register_instance

AK, SECRET = "testak", "testsecret"
BK, B_SECRET = "bkey", "bsecret"


@dataclass(frozen=True)
class Accounts:
    a_instance: str
    b_instance: str


@pytest.fixture
async def accounts(ctx: Context) -> Accounts:
    access = AccessService(ctx)
    await access.ensure_key(AK, SECRET)
    await access.create_key("B", BK, B_SECRET)
    return Accounts(
        await register_instance(ctx, name="web-1", tags={"env": "prod"}),
        await register_instance(ctx, account="B", name="b-1"),
    )

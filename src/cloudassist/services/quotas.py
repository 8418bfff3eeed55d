"""Quotas per region: kept commands (CmdCount.ExceedQuota) and tasks per UTC day (Invocation.ExceedQuota)."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.store.quotas import Quotas
from cloudassist.store.store import Tx


def utc_day(now: datetime) -> str:
    """The quota day of `now`: days are counted in UTC, from 00:00:00Z."""
    return now.astimezone(UTC).strftime("%Y-%m-%d")


async def take_invocation(ctx: Context, tx: Tx, scope: Scope, *, dry_run: bool = False) -> None:
    """Count a new task against the region's daily quota within `tx`; refuse it when the quota is used up.
    A DryRun is checked against the quota but not counted. A quota of 0 means no limit."""
    limit = ctx.settings.invocation_quota_daily
    if limit <= 0:
        return
    day = utc_day(ctx.clock.now())
    counters = Quotas(tx.conn)
    if dry_run:
        allowed = await counters.invocations_on(scope.account_id, scope.region_id, day) < limit
    else:
        allowed = await counters.take_invocation(scope.account_id, scope.region_id, day, limit)
    if not allowed:
        raise ApiError.of("Invocation.ExceedQuota").because(
            f"The quota is {limit} tasks per region per UTC day (CLOUDASSIST_INVOCATION_QUOTA_DAILY); "
            f"{scope.region_id} has used it on {day}."
        )


async def check_commands(ctx: Context, tx: Tx, account_id: int, region_id: str) -> None:
    """Refuse one more kept command when the region holds `command_quota` already (0: no limit).

    The count is taken under the region's kept-commands lock, held until `tx` ends, so concurrent
    creators are counted one after another: the caller must insert its command within `tx`."""
    quota = ctx.settings.command_quota
    if quota <= 0:
        return
    await tx.commands.lock_kept(account_id, region_id)
    if (held := await tx.commands.count_kept(account_id, region_id)) >= quota:
        raise ApiError.of("CmdCount.ExceedQuota").because(
            f"The quota is {quota} commands per region (CLOUDASSIST_COMMAND_QUOTA); {region_id} holds {held}: "
            f"delete some (DeleteCommand) first."
        )

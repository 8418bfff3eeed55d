"""The seed's retention: records older than two weeks, or beyond the newest 100,000, are not returned."""

from __future__ import annotations

import dataclasses

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.paging import parse_page
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.store.results import ResultFilter
from cloudassist.testing import FixedClock, default_scope, register_instance

SPEC = CommandSpec(name="n", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo hi", working_dir="",
                   timeout=60, enable_parameter=False, launcher="", resource_group_id="")
OPTIONS = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                     username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                     launcher=None, container_id="", container_name="", resource_group_id="")


async def _results(ctx: Context, scope: Scope) -> tuple[int, list[str]]:
    page = parse_page(1, 50, None, None, paging_status=403)
    found = await InvocationService(ctx).describe_invocation_results(
        ResultFilter(scope.account_id, scope.region_id, not_before=ctx.clock.now(), min_seq=0), page)
    return found.total, [r.invoke_id for r, _ in found.results]


async def _setup(ctx: Context) -> tuple[Scope, str]:
    instance = await register_instance(ctx)
    return await default_scope(ctx), instance


async def test_only_the_newest_records_up_to_the_retention_count_are_returned(ctx: Context) -> None:
    """With the count set to 3, five one-instance runs leave the three newest visible, newest first."""
    ctx = dataclasses.replace(ctx, settings=ctx.settings.replace(retention_count=3))
    scope, instance = await _setup(ctx)
    service = InvocationService(ctx)
    started = [await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False,
                                         idempotency=None) for _ in range(5)]
    total, ids = await _results(ctx, scope)
    assert total == 3
    assert ids == [s.invoke_id for s in reversed(started)][:3]


async def test_records_older_than_the_retention_window_are_not_returned(ctx: Context, clock: FixedClock) -> None:
    """A record is returned for 14 days after its creation and not a moment later (the seed: two weeks)."""
    scope, instance = await _setup(ctx)
    service = InvocationService(ctx)
    first = await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False,
                                      idempotency=None)
    clock.advance(days=13, hours=23)
    second = await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False,
                                       idempotency=None)
    assert (await _results(ctx, scope))[1] == [second.invoke_id, first.invoke_id]
    clock.advance(hours=1, seconds=1)
    assert await _results(ctx, scope) == (1, [second.invoke_id])
    clock.advance(days=14)
    assert await _results(ctx, scope) == (0, [])

"""ActivationService: CreateActivation, DescribeActivations, DisableActivation, DeleteActivation."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cloudassist.domain.paging import Page, encode_token
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.activations import (
    MAX_ACTIVATIONS_PER_REGION,
    ActivationService,
    ActivationSpec,
)
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.instances import InstanceService
from cloudassist.store.activations import ActivationFilter
from cloudassist.store.tables import activations
from cloudassist.testing import FixedClock, register_instance

REGION = "cn-hangzhou"
FIRST = Page(1, 50, False, None)


async def scope_of(ctx: Context, account: str = "default", region: str = REGION) -> Scope:
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure(account, ctx.clock.now()), region)


async def listed(ctx: Context, scope: Scope, page: Page = FIRST, **filters: Any) -> list[str]:
    found = await ActivationService(ctx).describe_activations(
        ActivationFilter(scope.account_id, scope.region_id, **filters), page)
    return [a.activation_id for a in found.activations]


async def test_create_returns_the_code_once_and_stores_only_its_sha256(ctx: Context) -> None:
    """CreateActivation answers the code, and the database holds its SHA-256, never the code itself."""
    scope = await scope_of(ctx)
    created = await ActivationService(ctx).create_activation(scope, ActivationSpec(description="lab"))
    assert created.code.startswith("a-")
    assert len(created.code) > 40
    assert created.code not in repr(created)
    async with ctx.store.read() as tx:
        row = (await tx.conn.execute(select(activations))).one()._mapping
    assert row["code_hash"] == hashlib.sha256(created.code.encode()).hexdigest()
    assert all(created.code not in str(value) for value in row.values())


async def test_create_applies_the_documented_defaults(ctx: Context) -> None:
    """Without InstanceCount or TimeToLiveInHours a code admits 10 instances for 4 hours, enabled, unused."""
    scope = await scope_of(ctx)
    created = await ActivationService(ctx).create_activation(scope, ActivationSpec())
    a = created.activation
    assert (a.instance_count, a.time_to_live_in_hours, a.registered_count, a.deregistered_count) == (10, 4, 0, 0)
    assert not a.disabled
    assert a.creation_time == ctx.clock.now()
    assert a.activation_id == a.activation_id.upper()
    assert len(a.activation_id) == 36


LIMITS = [
    (ActivationSpec(instance_name="a" * 51), "InstanceName.ExceedLimit"),
    (ActivationSpec(instance_name="1abc"), "InstanceName.InvalidPattern"),
    (ActivationSpec(instance_name="ab\n"), "InstanceName.InvalidPattern"),
    (ActivationSpec(description="d" * 101), "ActivationDesc.ExceedLimit"),
    (ActivationSpec(instance_count=0), "ActivationLimitation.Invalid"),
    (ActivationSpec(instance_count=1001), "ActivationLimitation.Invalid"),
    (ActivationSpec(ttl_hours=0), "ActivationTTL.ExceedLimit"),
    (ActivationSpec(ttl_hours=2**62), "ActivationTTL.ExceedLimit"),
    (ActivationSpec(ip_address_range="10.0.0.0/33"), "AddressRange.InvalidPattern"),
    (ActivationSpec(ip_address_range="10.0.0.1," * 200), "AddressRange.InvalidPattern"),
    (ActivationSpec(resource_group_id="r" * 65), "InvalidParameter.ResourceGroupId"),
]


async def test_create_refuses_values_out_of_the_documented_limits(ctx: Context) -> None:
    """Each documented limit of CreateActivation is a 400 with its own code, and nothing is stored."""
    scope = await scope_of(ctx)
    for spec, code in LIMITS:
        with pytest.raises(ApiError) as caught:
            await ActivationService(ctx).create_activation(scope, spec)
        assert (caught.value.code, caught.value.http_status) == (code, 400), spec
    assert await listed(ctx, scope) == []
    edge = ActivationSpec(instance_name="a" * 50, description="d" * 100, instance_count=1000,
                          ip_address_range="10.0.0.0/8,2001:db8::/32")
    assert (await ActivationService(ctx).create_activation(scope, edge)).activation.instance_count == 1000


async def test_an_account_keeps_at_most_5000_codes_per_region(ctx: Context) -> None:
    """The 5001st code of a region is ActivationCount.ExceedLimit; another region or a deletion makes room."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    first = await service.create_activation(scope, ActivationSpec())
    rows = [{
        "activation_id": f"BULK-{i}", "account_id": scope.account_id, "region_id": REGION, "code_hash": "x",
        "description": "", "instance_name": "", "instance_count": 1, "registered_count": 0,
        "deregistered_count": 0, "ip_address_range": "", "time_to_live_in_hours": 4, "resource_group_id": "",
        "creation_time": ctx.clock.now(), "disabled": False,
    } for i in range(MAX_ACTIVATIONS_PER_REGION - 1)]
    async with ctx.store.write() as tx:
        await tx.conn.execute(activations.insert(), rows)
    with pytest.raises(ApiError) as caught:
        await service.create_activation(scope, ActivationSpec())
    assert (caught.value.code, caught.value.http_status) == ("ActivationCount.ExceedLimit", 400)
    await service.create_activation(Scope(scope.account_id, "cn-beijing"), ActivationSpec())
    await service.delete_activation(scope, first.activation.activation_id)
    await service.create_activation(scope, ActivationSpec())


async def test_describe_filters_pages_newest_first_and_returns_tags(ctx: Context, clock: FixedClock) -> None:
    """DescribeActivations filters by id, name prefix, resource group and tags, newest first, in pages."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    made = []
    for i in range(5):
        clock.advance(seconds=1)
        spec = ActivationSpec(instance_name=f"web{i % 2}", resource_group_id="rg-1" if i == 4 else None)
        made.append((await service.create_activation(scope, spec, [Tag("env", "prod" if i < 2 else "dev")]))
                    .activation.activation_id)
    assert await listed(ctx, scope) == made[::-1]
    assert await listed(ctx, scope, activation_id=made[2]) == [made[2]]
    assert await listed(ctx, scope, instance_name="web1") == [made[3], made[1]]
    assert await listed(ctx, scope, resource_group_id="rg-1") == [made[4]]
    assert await listed(ctx, scope, tags=[Tag("env", "prod")]) == [made[1], made[0]]
    page = await service.describe_activations(ActivationFilter(scope.account_id, REGION), Page(2, 2, False, None))
    assert [a.activation_id for a in page.activations] == [made[2], made[1]]
    assert page.total == 5
    tagged = await service.describe_activations(ActivationFilter(scope.account_id, REGION, activation_id=made[0]),
                                                FIRST)
    assert tagged.activations[0].tags == (Tag("env", "prod"),)


async def test_describe_pages_with_tokens_until_the_last(ctx: Context, clock: FixedClock) -> None:
    """NextToken/MaxResults walk every code exactly once; a forged token is InvalidParameter.NextToken."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    for _ in range(5):
        clock.advance(seconds=1)
        await service.create_activation(scope, ActivationSpec())
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await service.describe_activations(ActivationFilter(scope.account_id, REGION),
                                                  Page(1, 2, True, after))
        seen += [a.activation_id for a in page.activations]
        if page.next_offset is None:
            break
        after = str(page.next_offset)
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(ApiError) as caught:
        await service.describe_activations(ActivationFilter(scope.account_id, REGION), Page(1, 2, True, "x-1"))
    assert caught.value.code == "InvalidParameter.NextToken"
    assert encode_token("2")  # the handler wraps offsets the same way


async def test_disable_marks_the_code_and_is_idempotent(ctx: Context) -> None:
    """DisableActivation sets Disabled (seen by DescribeActivations); disabling again changes nothing."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    created = await service.create_activation(scope, ActivationSpec())
    assert (await service.disable_activation(scope, created.activation.activation_id)).disabled
    assert (await service.disable_activation(scope, created.activation.activation_id)).disabled
    page = await service.describe_activations(ActivationFilter(scope.account_id, REGION), FIRST)
    assert page.activations[0].disabled


async def test_unknown_activation_ids_are_404(ctx: Context) -> None:
    """Disabling or deleting an id that does not exist is InvalidActivationId.NotFound, HTTP 404."""
    scope = await scope_of(ctx)
    for call in (ActivationService(ctx).disable_activation, ActivationService(ctx).delete_activation):
        with pytest.raises(ApiError) as caught:
            await call(scope, "00000000-0000-0000-0000-000000000000")
        assert (caught.value.code, caught.value.http_status) == ("InvalidActivationId.NotFound", 404)


async def test_delete_refuses_a_code_with_registered_instances(ctx: Context) -> None:
    """A code with a registered instance cannot be deleted (403); once it is deregistered, it can."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx, tags={"k": "v"})
    async with ctx.store.read() as tx:
        instance = await tx.instances.get(instance_id)
    assert instance is not None
    service = ActivationService(ctx)
    with pytest.raises(ApiError) as caught:
        await service.delete_activation(scope, instance.activation_id)
    assert (caught.value.code, caught.value.http_status) == ("InvalidOperation.ActivationInUse", 403)
    await InstanceService(ctx).deregister_managed_instance(scope, instance_id)
    deleted = await service.delete_activation(scope, instance.activation_id)
    assert (deleted.registered_count, deleted.deregistered_count) == (1, 1)
    assert await listed(ctx, scope) == []


async def test_delete_removes_the_code_and_its_tags(ctx: Context) -> None:
    """An unused code is deleted together with its tags and is then unknown."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    created = await service.create_activation(scope, ActivationSpec(), [Tag("team", "qa")])
    activation_id = created.activation.activation_id
    assert (await service.delete_activation(scope, activation_id)).activation_id == activation_id
    async with ctx.store.read() as tx:
        assert (await tx.tags.of("activation", [activation_id]))[activation_id] == ()
    with pytest.raises(ApiError):
        await service.delete_activation(scope, activation_id)


async def test_accounts_and_regions_never_see_each_others_codes(ctx: Context) -> None:
    """Account B (or A in another region) neither lists nor disables nor deletes account A's codes."""
    a, b = await scope_of(ctx, "alice"), await scope_of(ctx, "bob")
    service = ActivationService(ctx)
    created = await service.create_activation(a, ActivationSpec())
    activation_id = created.activation.activation_id
    for other in (b, Scope(a.account_id, "cn-beijing")):
        assert await listed(ctx, other) == []
        assert await listed(ctx, other, activation_id=activation_id) == []
        for call in (service.disable_activation, service.delete_activation):
            with pytest.raises(ApiError) as caught:
                await call(other, activation_id)
            assert caught.value.code == "InvalidActivationId.NotFound"
    assert await listed(ctx, a) == [activation_id]


async def test_a_retried_client_token_answers_the_same_activation_with_a_fresh_code(ctx: Context) -> None:
    """Same ClientToken and parameters: same ActivationId, one stored code, and only the newest code works;
    same token with other parameters: IdempotentParameterMismatch."""
    scope = await scope_of(ctx)
    service = ActivationService(ctx)
    params = {"RegionId": REGION, "InstanceCount": 2}
    first = await service.create_activation(scope, ActivationSpec(instance_count=2),
                                            idempotency=Idempotency.of("CreateActivation", "tok-1", params))
    again = await service.create_activation(scope, ActivationSpec(instance_count=2),
                                            idempotency=Idempotency.of("CreateActivation", "tok-1", params))
    assert again.activation.activation_id == first.activation.activation_id
    assert again.code != first.code
    assert len(await listed(ctx, scope)) == 1
    async with ctx.store.read() as tx:
        stored = await tx.activations.get(first.activation.activation_id)
    assert stored is not None
    assert stored.code_hash == hashlib.sha256(again.code.encode()).hexdigest()
    with pytest.raises(ApiError) as caught:
        await service.create_activation(scope, ActivationSpec(instance_count=3), idempotency=Idempotency.of(
            "CreateActivation", "tok-1", {**params, "InstanceCount": 3}))
    assert (caught.value.code, caught.value.http_status) == ("IdempotentParameterMismatch", 403)


async def test_codes_expire_after_their_time_to_live(ctx: Context) -> None:
    """Activation.expired turns true one instant after CreationTime + TimeToLiveInHours."""
    scope = await scope_of(ctx)
    created = await ActivationService(ctx).create_activation(scope, ActivationSpec(ttl_hours=1))
    start = created.activation.creation_time
    assert not created.activation.expired(start + timedelta(hours=1))
    assert created.activation.expired(start + timedelta(hours=1, seconds=1))

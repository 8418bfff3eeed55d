"""InstanceService: registration, heart-beats and the managed-instance actions."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cloudassist.domain.commands import CommandType
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.paging import Page
from cloudassist.domain.statuses import InvocationStatus
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.activations import ActivationService, ActivationSpec, NewActivation
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.instances import InstanceService, os_family
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.store.instances import InstanceFilter
from cloudassist.testing import FixedClock, register_instance

REGION = "cn-hangzhou"
FIRST = Page(1, 50, False, None)


def _pem(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.fixture(scope="module")
def agent_key() -> bytes:
    """An RSA-2048 public key as PEM, like the one the agent makes."""
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())


async def scope_of(ctx: Context, account: str = "default", region: str = REGION) -> Scope:
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure(account, ctx.clock.now()), region)


async def activation(ctx: Context, scope: Scope, **spec: Any) -> NewActivation:
    return await ActivationService(ctx).create_activation(scope, ActivationSpec(**spec))


async def register(ctx: Context, created: NewActivation, key: bytes, **overrides: Any) -> ManagedInstance:
    """Register as the agent does: the public key as base64 of its PEM."""
    fields: dict[str, Any] = {
        "activation_code": created.code, "activation_id": created.activation.activation_id, "region_id": REGION,
        "machine_id": "3d1219c7c4c5404aaa1f6d2a48adfda4", "instance_name": None, "hostname": "vm",
        "intranet_ip": "10.0.0.5", "os_type": "linux", "os_version": "Linux_#1 SMP", "agent_version": "2.2.3.578",
        "public_key": base64.b64encode(key).decode(), "tags": (), "remote_ip": "203.0.113.7",
    }
    return await InstanceService(ctx).register(**{**fields, **overrides})


async def refusal(ctx: Context, created: NewActivation, key: bytes, **overrides: Any) -> tuple[str, int]:
    with pytest.raises(ApiError) as caught:
        await register(ctx, created, key, **overrides)
    return caught.value.code, caught.value.http_status


async def ids_of(ctx: Context, scope: Scope, **filters: Any) -> list[str]:
    found = await InstanceService(ctx).describe_managed_instances(
        InstanceFilter(scope.account_id, scope.region_id, **filters), FIRST)
    return [m.instance_id for m in found.instances]


async def statuses(ctx: Context, scope: Scope, instance_ids: list[str], os_type: str | None = None) -> list[Any]:
    found = await InstanceService(ctx).describe_cloud_assistant_status(scope, instance_ids, os_type, FIRST)
    return found.instances


# -- registration --------------------------------------------------------------------------------------------


async def test_register_creates_an_instance_in_the_codes_account_and_counts_it(ctx: Context, agent_key: bytes) -> None:
    """A registration makes an `mi-` instance of the code's account, region and resource group, keeps the
    key as PEM, the tags, the caller's address as InternetIp, and adds one to RegisteredCount."""
    scope = await scope_of(ctx)
    created = await activation(ctx, scope, resource_group_id="rg-7")
    instance = await register(ctx, created, agent_key, tags=[Tag("env", "test")])
    assert instance.instance_id.startswith("mi-")
    assert len(instance.instance_id) == 25
    assert (instance.account_id, instance.region_id, instance.resource_group_id) == (scope.account_id, REGION, "rg-7")
    assert (instance.internet_ip, instance.intranet_ip, instance.os_type) == ("203.0.113.7", "10.0.0.5", "linux")
    assert instance.public_key == agent_key.decode()
    assert instance.last_heartbeat_time is None
    async with ctx.store.read() as tx:
        stored = await tx.instances.get(instance.instance_id)
        counted = await tx.activations.get(created.activation.activation_id)
        tags = await tx.tags.of("managedinstance", [instance.instance_id])
    assert stored is not None
    assert stored.public_key == agent_key.decode()
    assert stored.machine_id == instance.machine_id
    assert counted is not None
    assert counted.registered_count == 1
    assert tags[instance.instance_id] == (Tag("env", "test"),)


async def test_register_accepts_a_plain_pem_key_and_the_agents_nil_address(ctx: Context, agent_key: bytes) -> None:
    """The key may come as PEM text; an IntranetIp of `<nil>` (host without a NIC) is stored as empty."""
    created = await activation(ctx, await scope_of(ctx))
    instance = await register(ctx, created, agent_key, public_key=agent_key.decode(), intranet_ip="<nil>")
    assert instance.intranet_ip == ""
    assert instance.public_key == agent_key.decode()


async def test_default_names_are_the_prefix_and_a_zero_padded_number(ctx: Context, agent_key: bytes) -> None:
    """Unnamed instances are called `<InstanceName>-<n>`, padded to InstanceCount's digits; without a prefix
    the hostname is used; a name the agent gives wins."""
    scope = await scope_of(ctx)
    ten = await activation(ctx, scope, instance_name="web", instance_count=10)
    thousand = await activation(ctx, scope, instance_name="db", instance_count=1000)
    bare = await activation(ctx, scope)
    assert (await register(ctx, ten, agent_key)).instance_name == "web-01"
    assert (await register(ctx, ten, agent_key)).instance_name == "web-02"
    assert (await register(ctx, thousand, agent_key)).instance_name == "db-0001"
    assert (await register(ctx, bare, agent_key, hostname="box7")).instance_name == "box7"
    assert (await register(ctx, ten, agent_key, instance_name="chosen")).instance_name == "chosen"


async def test_register_refuses_an_unknown_activation_or_a_wrong_code(ctx: Context, agent_key: bytes) -> None:
    """An unknown ActivationId (or one of another region) is 404; a wrong code is 403 Mismatch."""
    created = await activation(ctx, await scope_of(ctx))
    assert await refusal(ctx, created, agent_key, activation_id="NOPE") == ("InvalidActivationId.NotFound", 404)
    assert await refusal(ctx, created, agent_key, region_id="cn-beijing") == ("InvalidActivationId.NotFound", 404)
    assert await refusal(ctx, created, agent_key, activation_code=created.code + "x") == (
        "InvalidActivationCode.Mismatch", 403)


async def test_register_refuses_a_disabled_code_but_tells_only_the_codes_holder(ctx: Context, agent_key: bytes) -> None:
    """A disabled code is InvalidActivation.Disabled; with a wrong code the answer stays Mismatch."""
    scope = await scope_of(ctx)
    created = await activation(ctx, scope)
    await ActivationService(ctx).disable_activation(scope, created.activation.activation_id)
    assert await refusal(ctx, created, agent_key) == ("InvalidActivation.Disabled", 403)
    assert await refusal(ctx, created, agent_key, activation_code="a-wrong") == ("InvalidActivationCode.Mismatch", 403)


async def test_register_refuses_an_expired_code(ctx: Context, clock: FixedClock, agent_key: bytes) -> None:
    """A code works until CreationTime + TimeToLiveInHours and is InvalidActivation.Expired after it."""
    created = await activation(ctx, await scope_of(ctx), ttl_hours=2)
    clock.advance(hours=2)
    await register(ctx, created, agent_key)
    clock.advance(seconds=1)
    assert await refusal(ctx, created, agent_key) == ("InvalidActivation.Expired", 403)


async def test_register_stops_at_the_instance_count(ctx: Context, agent_key: bytes) -> None:
    """InstanceCount registrations succeed; the next is CountExhausted, even after a deregistration."""
    scope = await scope_of(ctx)
    created = await activation(ctx, scope, instance_count=2)
    first = await register(ctx, created, agent_key)
    await register(ctx, created, agent_key)
    assert await refusal(ctx, created, agent_key) == ("InvalidActivation.CountExhausted", 403)
    await InstanceService(ctx).deregister_managed_instance(scope, first.instance_id)
    assert await refusal(ctx, created, agent_key) == ("InvalidActivation.CountExhausted", 403)


async def test_register_admits_only_addresses_in_the_ip_address_range(ctx: Context, agent_key: bytes) -> None:
    """With an IpAddressRange, only callers inside one of its blocks may register (v4 and v6)."""
    created = await activation(ctx, await scope_of(ctx), ip_address_range="192.168.0.0/16, 2001:db8::/32")
    await register(ctx, created, agent_key, remote_ip="192.168.4.2")
    await register(ctx, created, agent_key, remote_ip="2001:db8::1")
    for remote in ("10.0.0.1", "", "not-an-ip"):
        assert await refusal(ctx, created, agent_key, remote_ip=remote) == ("InvalidActivation.IpAddressDenied", 403)


async def test_register_refuses_keys_that_are_not_rsa_2048_or_more(ctx: Context, agent_key: bytes) -> None:
    """Garbage, an EC key and an RSA-1024 key are InvalidPublicKey.Malformed (400); nothing is counted."""
    scope = await scope_of(ctx)
    created = await activation(ctx, scope)
    small = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())  # noqa: S505
    curve = _pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    for key in ("", "not base64!", base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nxx").decode(),
                base64.b64encode(small).decode(), curve.decode(), "x" * 20_000):
        assert await refusal(ctx, created, agent_key, public_key=key) == ("InvalidPublicKey.Malformed", 400)
    async with ctx.store.read() as tx:
        counted = await tx.activations.get(created.activation.activation_id)
    assert counted is not None
    assert counted.registered_count == 0


async def test_register_refuses_malformed_agent_fields(ctx: Context, agent_key: bytes) -> None:
    """Unsupported OS types, bad names, missing or oversized fields and NUL characters are 400s."""
    created = await activation(ctx, await scope_of(ctx))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"os_type": "darwin"}, "InvalidParameter.OsType"),
        ({"instance_name": "9lives"}, "InvalidInstanceName.Malformed"),
        ({"machine_id": ""}, "MissingParameter.MachineId"),
        ({"activation_code": ""}, "MissingParameter.ActivationCode"),
        ({"os_version": "v" * 256}, "InvalidParameter.OsVersion"),
        ({"hostname": "vm\x00"}, "InvalidParameter.Hostname"),
        ({"hostname": "\ud800"}, "InvalidParameter.Hostname"),
        ({"tags": [Tag("aliyun:x", "v")]}, "InvalidTagKey.Malformed"),
    ]
    for overrides, code in cases:
        assert await refusal(ctx, created, agent_key, **overrides) == (code, 400), overrides


async def test_os_types_are_stored_as_documented(ctx: Context, agent_key: bytes) -> None:
    """OsType is kept as linux, windows or FreeBSD whatever its case; the status reports Linux/Windows/FreeBSD."""
    created = await activation(ctx, await scope_of(ctx))
    kinds = [await register(ctx, created, agent_key, os_type=t) for t in ("LINUX", "Windows", "freebsd")]
    assert [m.os_type for m in kinds] == ["linux", "windows", "FreeBSD"]
    assert [os_family(m) for m in kinds] == ["Linux", "Windows", "FreeBSD"]


# -- heart-beats and status -----------------------------------------------------------------------------------


async def test_heartbeat_makes_an_instance_connected_for_two_minutes(ctx: Context, clock: FixedClock) -> None:
    """After a heart-beat, Connected and CloudAssistantStatus are true for 2 minutes, then false; a new beat
    (with a new agent version) turns them true again."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx)
    assert await ids_of(ctx, scope, connected=True) == [instance_id]
    [status] = await statuses(ctx, scope, [instance_id])
    assert status.online(clock.now())
    assert status.last_heartbeat_time == clock.now()
    clock.advance(minutes=2)
    assert await ids_of(ctx, scope, connected=True) == [instance_id]
    clock.advance(seconds=1)
    assert await ids_of(ctx, scope, connected=True) == []
    assert await ids_of(ctx, scope, connected=False) == [instance_id]
    [status] = await statuses(ctx, scope, [instance_id])
    assert not status.online(clock.now())
    beat = await InstanceService(ctx).heartbeat(instance_id, clock.now(), "2.2.4.1")
    assert beat.agent_version == "2.2.4.1"
    [status] = await statuses(ctx, scope, [instance_id])
    assert status.online(clock.now())
    assert status.agent_version == "2.2.4.1"


async def test_a_registered_instance_that_never_beat_is_not_connected(ctx: Context, agent_key: bytes) -> None:
    """Until its first heart-beat an instance is listed as not connected."""
    scope = await scope_of(ctx)
    instance = await register(ctx, await activation(ctx, scope), agent_key)
    assert await ids_of(ctx, scope, connected=False) == [instance.instance_id]
    assert await ids_of(ctx, scope, connected=True) == []


async def test_heartbeat_of_an_unknown_or_deregistered_instance_is_refused(ctx: Context) -> None:
    """Heart-beats are accepted only from registered instances: otherwise InvalidInstance.NotFound."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx)
    await InstanceService(ctx).deregister_managed_instance(scope, instance_id)
    for unknown in (instance_id, "mi-nothere"):
        with pytest.raises(ApiError) as caught:
            await InstanceService(ctx).heartbeat(unknown, ctx.clock.now())
        assert caught.value.code == "InvalidInstance.NotFound"


async def test_status_limits_ids_and_reports_unknown_ones(ctx: Context) -> None:
    """More than 100 InstanceIds is InstanceIds.ExceedLimit (403); an unknown one is InvalidInstance.NotFound
    (404); a repeated one is answered once; OSType filters."""
    scope = await scope_of(ctx)
    linux = await register_instance(ctx)
    windows = await register_instance(ctx, os_type="windows")
    with pytest.raises(ApiError) as caught:
        await statuses(ctx, scope, [f"mi-{i}" for i in range(101)])
    assert (caught.value.code, caught.value.http_status) == ("InstanceIds.ExceedLimit", 403)
    with pytest.raises(ApiError) as caught:
        await statuses(ctx, scope, [linux, "mi-unknown"])
    assert (caught.value.code, caught.value.http_status) == ("InvalidInstance.NotFound", 404)
    assert [m.instance_id for m in await statuses(ctx, scope, [windows, linux, linux])] == [windows, linux]
    assert [m.instance_id for m in await statuses(ctx, scope, [windows, linux], "Linux")] == [linux]
    assert [m.instance_id for m in await statuses(ctx, scope, [], "windows")] == [windows]
    assert {m.instance_id for m in await statuses(ctx, scope, [])} == {windows, linux}
    with pytest.raises(ApiError) as caught:
        await statuses(ctx, scope, [], "Solaris")
    assert caught.value.code == "InvalidParameter.OSType"


async def test_status_counts_running_tasks(ctx: Context) -> None:
    """ActiveTaskCount is the number of the instance's executions that are Running or Stopping."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx)
    spec = CommandSpec(name="n", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo", working_dir="",
                       timeout=60, enable_parameter=False, launcher="", resource_group_id="")
    options = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                         username="", windows_password_name="", termination_mode=TerminationMode.PROCESS,
                         launcher=None, container_id="", container_name="", resource_group_id="")
    invocations = InvocationService(ctx)
    started = [await invocations.run_command(scope, spec, options, Targets([instance_id]), (), keep_command=False,
                                             idempotency=None) for _ in range(3)]
    assert (await statuses(ctx, scope, [instance_id]))[0].active_task_count == 0
    async with ctx.store.write() as tx:
        for task, status in zip(started[:2], (InvocationStatus.RUNNING, InvocationStatus.STOPPING), strict=True):
            [result] = (await tx.results.of_invocations([task.invoke_id]))[task.invoke_id]
            await tx.results.update(result.result_id, status=status.value)
    assert (await statuses(ctx, scope, [instance_id]))[0].active_task_count == 2


# -- DescribeManagedInstances, ModifyManagedInstance, DeregisterManagedInstance --------------------------------


async def test_describe_filters_by_every_documented_field(ctx: Context, clock: FixedClock, agent_key: bytes) -> None:
    """InstanceId.N, InstanceName, ActivationId, InstanceIp (either address), OsType, ResourceGroupId, Tag.N and
    MachineId each narrow DescribeManagedInstances."""
    scope = await scope_of(ctx)
    one, two = await activation(ctx, scope, resource_group_id="rg-1"), await activation(ctx, scope)
    a = await register(ctx, one, agent_key, instance_name="alpha", tags=[Tag("env", "prod")], machine_id="m-a")
    clock.advance(seconds=1)
    b = await register(ctx, two, agent_key, os_type="windows", intranet_ip="10.9.9.9", remote_ip="198.51.100.1")
    assert await ids_of(ctx, scope) == [b.instance_id, a.instance_id]
    assert await ids_of(ctx, scope, instance_ids=[a.instance_id, "mi-none"]) == [a.instance_id]
    assert await ids_of(ctx, scope, instance_name="alpha") == [a.instance_id]
    assert await ids_of(ctx, scope, activation_id=two.activation.activation_id) == [b.instance_id]
    assert await ids_of(ctx, scope, instance_ip="10.9.9.9") == [b.instance_id]
    assert await ids_of(ctx, scope, instance_ip="198.51.100.1") == [b.instance_id]
    assert await ids_of(ctx, scope, os_type="windows") == [b.instance_id]
    assert await ids_of(ctx, scope, resource_group_id="rg-1") == [a.instance_id]
    assert await ids_of(ctx, scope, tags=[Tag("env", "prod")]) == [a.instance_id]
    assert await ids_of(ctx, scope, machine_id="m-a") == [a.instance_id]
    found = await InstanceService(ctx).describe_managed_instances(InstanceFilter(scope.account_id, REGION), FIRST)
    assert found.total == 2
    assert found.instances[1].tags == (Tag("env", "prod"),)


async def test_describe_pages_by_number_and_by_token(ctx: Context, clock: FixedClock) -> None:
    """PageNumber/PageSize give TotalCount; NextToken/MaxResults walk every instance once."""
    scope = await scope_of(ctx)
    made = []
    for _ in range(5):
        clock.advance(seconds=1)
        made.append(await register_instance(ctx))
    service = InstanceService(ctx)
    f = InstanceFilter(scope.account_id, REGION)
    page = await service.describe_managed_instances(f, Page(3, 2, False, None))
    assert [m.instance_id for m in page.instances] == [made[0]]
    assert page.total == 5
    assert page.next_offset is None
    seen: list[str] = []
    after: str | None = None
    while True:
        found = await service.describe_managed_instances(f, Page(1, 2, True, after))
        seen += [m.instance_id for m in found.instances]
        if found.next_offset is None:
            break
        after = str(found.next_offset)
    assert seen == made[::-1]


async def test_modify_renames_and_validates_the_name(ctx: Context) -> None:
    """ModifyManagedInstance changes InstanceName; names breaking the 2-128, letter-first rule are
    InvalidInstanceName.Malformed (400); an unknown instance is InvalidInstanceId.NotFound (404)."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx)
    service = InstanceService(ctx)
    renamed = await service.modify_managed_instance(scope, instance_id, "db-primary:1")
    assert renamed.instance_name == "db-primary:1"
    assert await ids_of(ctx, scope, instance_name="db-primary:1") == [instance_id]
    for bad in ("a", "1abc", "-abc", "http://x", "a" * 129, "ab\n", "ab cd"):
        with pytest.raises(ApiError) as caught:
            await service.modify_managed_instance(scope, instance_id, bad)
        assert (caught.value.code, caught.value.http_status) == ("InvalidInstanceName.Malformed", 400), bad
    assert (await service.modify_managed_instance(scope, instance_id, "a" * 128)).instance_name == "a" * 128
    with pytest.raises(ApiError) as caught:
        await service.modify_managed_instance(scope, "mi-unknown", "fine")
    assert (caught.value.code, caught.value.http_status) == ("InvalidInstanceId.NotFound", 404)


async def test_deregister_removes_the_instance_and_counts_it(ctx: Context) -> None:
    """A deregistered instance leaves every listing and the status call, its activation's DeregisteredCount
    grows by one (RegisteredCount stays), and deregistering it again is InvalidInstanceId.NotFound."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx, tags={"k": "v"})
    service = InstanceService(ctx)
    gone = await service.deregister_managed_instance(scope, instance_id)
    assert gone.instance_id == instance_id
    assert await ids_of(ctx, scope) == []
    async with ctx.store.read() as tx:
        counted = await tx.activations.get(gone.activation_id)
        tags = await tx.tags.of("managedinstance", [instance_id])
    assert counted is not None
    assert (counted.registered_count, counted.deregistered_count) == (1, 1)
    assert tags[instance_id] == ()
    with pytest.raises(ApiError) as caught:
        await statuses(ctx, scope, [instance_id])
    assert caught.value.code == "InvalidInstance.NotFound"
    with pytest.raises(ApiError) as caught:
        await service.deregister_managed_instance(scope, instance_id)
    assert (caught.value.code, caught.value.http_status) == ("InvalidInstanceId.NotFound", 404)


async def test_deregister_with_a_client_token_answers_a_retry_the_same(ctx: Context) -> None:
    """A retried DeregisterManagedInstance with its ClientToken gets the same Instance back, counted once."""
    scope = await scope_of(ctx)
    instance_id = await register_instance(ctx)
    service = InstanceService(ctx)
    idem = Idempotency.of("DeregisterManagedInstance", "tok", {"InstanceId": instance_id})
    first = await service.deregister_managed_instance(scope, instance_id, idempotency=idem)
    again = await service.deregister_managed_instance(scope, instance_id, idempotency=idem)
    assert again.instance_id == first.instance_id
    assert again.instance_name == first.instance_name
    async with ctx.store.read() as tx:
        counted = await tx.activations.get(first.activation_id)
    assert counted is not None
    assert counted.deregistered_count == 1


async def test_account_b_never_sees_account_a_instances(ctx: Context) -> None:
    """Account B's scope lists none of A's instances, cannot query their status, rename or deregister them;
    neither can A's own scope in another region."""
    a, b = await scope_of(ctx, "alice"), await scope_of(ctx, "bob")
    instance_id = await register_instance(ctx, account="alice")
    mine = await register_instance(ctx, account="bob")
    service = InstanceService(ctx)
    for other in (b, Scope(a.account_id, "cn-beijing")):
        assert instance_id not in await ids_of(ctx, other)
        assert await ids_of(ctx, other, instance_ids=[instance_id]) == []
        assert instance_id not in [m.instance_id for m in await statuses(ctx, other, [])]
        with pytest.raises(ApiError) as caught:
            await statuses(ctx, other, [instance_id])
        assert caught.value.code == "InvalidInstance.NotFound"
        for attempt in (service.modify_managed_instance(other, instance_id, "stolen"),
                        service.deregister_managed_instance(other, instance_id)):
            with pytest.raises(ApiError) as caught:
                await attempt
            assert caught.value.code == "InvalidInstanceId.NotFound"
    assert await ids_of(ctx, a) == [instance_id]
    assert await ids_of(ctx, b) == [mine]


async def test_register_instance_helper_gives_a_connected_instance(ctx: Context) -> None:
    """testing.register_instance creates the account, a code and a connected instance with the given name,
    OS and tags, reusing its code across calls."""
    instance_id = await register_instance(ctx, account="fresh", os_type="windows", name="helper-1",
                                          tags={"role": "web"})
    second = await register_instance(ctx, account="fresh")
    scope = await scope_of(ctx, "fresh")
    found = await InstanceService(ctx).describe_managed_instances(
        InstanceFilter(scope.account_id, REGION, instance_ids=[instance_id]), FIRST)
    [m] = found.instances
    assert (m.instance_name, m.os_type, m.tags) == ("helper-1", "windows", (Tag("role", "web"),))
    assert m.online(ctx.clock.now())
    assert set(await ids_of(ctx, scope)) == {instance_id, second}

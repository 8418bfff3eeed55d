"""FileService on both engines: SendFile, delivery to agents, their reports, deadlines and DescribeSendFileResults."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from cloudassist.domain.files import FileErrorCode, FileSpec
from cloudassist.domain.paging import parse_page
from cloudassist.domain.statuses import InvocationStatus, TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.services.files import FileReport, FileService
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.instances import InstanceService
from cloudassist.store.files import FileFilter
from cloudassist.testing import FixedClock, register_instance

S = InvocationStatus
SPEC = FileSpec(name="app.conf", target_dir="/etc/app", content=b"x=1\n")


class Recorder:
    def __init__(self) -> None:
        self.kicked: list[str] = []

    def kick(self, instance_ids: Iterable[str]) -> None:
        self.kicked.extend(instance_ids)


async def scope_of(ctx: Context, account: str = "default", region: str = "cn-hangzhou") -> Scope:
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure(account, ctx.clock.now()), region)


async def records(ctx: Context, invoke_id: str) -> dict[str, tuple[InvocationStatus, FileErrorCode, str]]:
    async with ctx.store.read() as tx:
        found = (await tx.files.results_of([invoke_id]))[invoke_id]
    return {r.instance_id: (r.status, r.error_code, r.error_info) for r in found}


async def task_status(ctx: Context, invoke_id: str) -> TaskStatus:
    async with ctx.store.read() as tx:
        return (await tx.files.by_ids([invoke_id]))[invoke_id].status


def page(**kw: object) -> object:
    values: dict[str, object] = {"page_number": None, "page_size": None, "next_token": None, "max_results": None}
    values.update(kw)
    return parse_page(paging_status=400, **values)  # type: ignore[arg-type]


def everything(scope: Scope, ctx: Context, **kw: object) -> FileFilter:
    return FileFilter(scope.account_id, scope.region_id, ctx.clock.now(), **kw)  # type: ignore[arg-type]


async def test_send_file_makes_a_pending_record_per_instance_and_kicks_their_agents(ctx: Context) -> None:
    recorder = Recorder()
    ctx = replace(ctx, notify=recorder)
    a, b = await register_instance(ctx), await register_instance(ctx)
    invoke_id = await FileService(ctx).send_file(await scope_of(ctx), SPEC, [a, b, a], (), idempotency=None)
    assert invoke_id.startswith("f-")
    assert len(invoke_id) == 24
    pending = (S.PENDING, FileErrorCode.NONE, "")
    assert await records(ctx, invoke_id) == {a: pending, b: pending}
    assert await task_status(ctx, invoke_id) is TaskStatus.PENDING
    assert sorted(recorder.kicked) == sorted([a, b])
    assert await FileService(ctx).waiting(a) == {a}


@pytest.mark.parametrize(
    ("instances", "code"),
    [([], "MissingParam.InstanceId"), (["mi-nope"], "InvalidInstance.NotFound"),
     ([f"mi-{i}" for i in range(51)], "InstanceIds.ExceedLimit")],
)
async def test_instances_are_checked_as_run_command_checks_them(ctx: Context, instances: list[str], code: str) -> None:
    with pytest.raises(ApiError) as caught:
        await FileService(ctx).send_file(await scope_of(ctx), SPEC, instances, (), idempotency=None)
    assert caught.value.code == code


async def test_an_instance_of_another_account_or_region_is_not_found(ctx: Context) -> None:
    theirs = await register_instance(ctx, account="other")
    elsewhere = await register_instance(ctx, region_id="cn-beijing")
    for target in (theirs, elsewhere):
        with pytest.raises(ApiError) as caught:
            await FileService(ctx).send_file(await scope_of(ctx), SPEC, [target], (), idempotency=None)
        assert caught.value.code == "InvalidInstance.NotFound"


async def test_a_fetch_delivers_the_file_running_until_the_agent_reports_success(ctx: Context,
                                                                                  clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [instance], (), idempotency=None)
    [first] = await service.fetch(instance)
    assert first.task.invoke_id == invoke_id
    assert first.task.spec == SPEC
    assert first.result.status is S.RUNNING
    assert first.result.start_time == clock.now()
    assert await task_status(ctx, invoke_id) is TaskStatus.RUNNING
    assert await service.waiting(instance) == set()
    clock.advance(seconds=1)
    [again] = await service.fetch(instance)  # still listed: not reported yet
    assert again.result.start_time == first.result.start_time
    assert await service.report(instance, FileReport("finish", invoke_id, "Success", 0))
    assert await records(ctx, invoke_id) == {instance: (S.SUCCESS, FileErrorCode.NONE, "")}
    assert await task_status(ctx, invoke_id) is TaskStatus.SUCCESS
    assert await service.fetch(instance) == []
    # a late, contradicting report of an ended record is acknowledged and ignored
    assert await service.report(instance, FileReport("invalid", invoke_id, param="FileExist"))
    assert (await records(ctx, invoke_id))[instance][0] is S.SUCCESS


async def test_one_success_and_one_file_exists_make_the_task_partial_failed(ctx: Context) -> None:
    a, b = await register_instance(ctx), await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [a, b], (), idempotency=None)
    await service.fetch(a)
    await service.fetch(b)
    await service.report(a, FileReport("finish", invoke_id, "Success", 0))
    await service.report(b, FileReport("invalid", invoke_id, param="FileExist"))
    assert (await records(ctx, invoke_id))[b] == (S.INVALID, FileErrorCode.FILE_ALREADY_EXISTS, "File already exists")
    assert await task_status(ctx, invoke_id) is TaskStatus.PARTIAL_FAILED


async def test_a_report_naming_another_instances_record_changes_nothing(ctx: Context) -> None:
    a, b = await register_instance(ctx), await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [a], (), idempotency=None)
    assert not await service.report(b, FileReport("finish", invoke_id, "Success", 0))
    assert (await records(ctx, invoke_id))[a][0] is S.PENDING


async def test_an_interrupted_write_reported_as_error_is_error(ctx: Context) -> None:
    instance = await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [instance], (), idempotency=None)
    await service.fetch(instance)
    await service.report(instance, FileReport("error", invoke_id))
    assert (await records(ctx, invoke_id))[instance][:2] == (S.ERROR, FileErrorCode.FILE_CREATE_FAIL)
    assert await task_status(ctx, invoke_id) is TaskStatus.FAILED


async def test_a_file_nobody_fetches_is_aborted_client_not_running(ctx: Context, clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [instance], (), idempotency=None)
    clock.advance(seconds=59)
    assert await service.sweep() == 0
    clock.advance(minutes=2)
    assert await service.sweep() == 1
    assert await records(ctx, invoke_id) == {
        instance: (S.ABORTED, FileErrorCode.CLIENT_NOT_RUNNING, "the aliyun service is not running on the instance")
    }
    assert await task_status(ctx, invoke_id) is TaskStatus.FAILED


async def test_a_beating_agent_that_never_fetches_is_client_not_response(ctx: Context, clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service = FileService(ctx)
    invoke_id = await service.send_file(await scope_of(ctx), SPEC, [instance], (), idempotency=None)
    clock.advance(seconds=61)
    await InstanceService(ctx).heartbeat(instance, clock.now())
    assert await service.sweep() == 1
    assert (await records(ctx, invoke_id))[instance][:2] == (S.ABORTED, FileErrorCode.CLIENT_NOT_RESPONSE)


async def test_a_fetched_file_never_reported_times_out_after_timeout_and_grace(ctx: Context,
                                                                                clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service = FileService(ctx)
    short = replace(SPEC, timeout=30)
    invoke_id = await service.send_file(await scope_of(ctx), short, [instance], (), idempotency=None)
    await service.fetch(instance)
    clock.advance(seconds=30 + ctx.settings.grace_seconds)
    assert await service.sweep() == 0
    clock.advance(seconds=1)
    assert await service.sweep() == 1
    assert await records(ctx, invoke_id) == {
        instance: (S.TIMEOUT, FileErrorCode.DELIVERY_TIMEOUT, "the command delivery has been timeout")
    }
    assert await service.sweep() == 0


async def test_a_file_for_an_instance_deregistered_meanwhile_ends_instance_released(ctx: Context,
                                                                                    clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service, scope = FileService(ctx), await scope_of(ctx)
    invoke_id = await service.send_file(scope, SPEC, [instance], (), idempotency=None)
    await InstanceService(ctx).deregister_managed_instance(scope, instance)
    clock.advance(seconds=61)
    assert await service.sweep() == 1
    assert await records(ctx, invoke_id) == {
        instance: (S.ERROR, FileErrorCode.INSTANCE_RELEASED, "the specified instance has been released")
    }


async def test_the_same_client_token_returns_the_same_task_and_other_parameters_are_refused(ctx: Context) -> None:
    instance = await register_instance(ctx)
    service, scope = FileService(ctx), await scope_of(ctx)
    params = {"Name": "app.conf", "InstanceId": [instance]}
    first = await service.send_file(scope, SPEC, [instance], (), idempotency=Idempotency.of("SendFile", "tok", params))
    again = await service.send_file(scope, SPEC, [instance], (), idempotency=Idempotency.of("SendFile", "tok", params))
    assert first == again
    async with ctx.store.read() as tx:
        assert await tx.files.count(everything(scope, ctx)) == 1
    with pytest.raises(ApiError) as caught:
        await service.send_file(scope, SPEC, [instance], (),
                                idempotency=Idempotency.of("SendFile", "tok", {**params, "Name": "other"}))
    assert caught.value.code == "IdempotentParameterMismatch"


async def test_describe_filters_pages_and_keeps_accounts_and_regions_apart(ctx: Context, clock: FixedClock) -> None:
    service = FileService(ctx)
    scope = await scope_of(ctx)
    a, b = await register_instance(ctx), await register_instance(ctx)
    made = []
    for n in range(5):
        clock.advance(seconds=1)
        made.append(await service.send_file(scope, replace(SPEC, name=f"f{n}"), [a] if n % 2 else [a, b],
                                            [Tag("team", "blue" if n < 2 else "red")], idempotency=None))
    other_scope = await scope_of(ctx, "other")
    theirs = await register_instance(ctx, account="other")
    await service.send_file(other_scope, SPEC, [theirs], (), idempotency=None)

    listed = await service.describe(everything(scope, ctx), page())
    assert [t.invoke_id for t in listed.tasks] == made[::-1]
    assert listed.total == 5
    assert [r.instance_id for r in listed.tasks[0].results] == [a, b]
    assert listed.tasks[0].tags == (Tag("team", "red"),)
    assert [t.invoke_id for t in (await service.describe(everything(scope, ctx, name="f1"), page())).tasks] == [made[1]]
    by_instance = await service.describe(everything(scope, ctx, instance_id=b), page())
    assert [t.invoke_id for t in by_instance.tasks] == [made[4], made[2], made[0]]
    tagged = await service.describe(everything(scope, ctx, tags=[Tag("team", "blue")]), page())
    assert [t.invoke_id for t in tagged.tasks] == [made[1], made[0]]
    assert (await service.describe(everything(scope, ctx, invoke_id=made[3]), page())).total == 1
    assert (await service.describe(everything(other_scope, ctx), page())).total == 1
    elsewhere = Scope(scope.account_id, "cn-beijing")
    assert (await service.describe(everything(elsewhere, ctx), page())).tasks == []

    await service.fetch(a)
    await service.report(a, FileReport("finish", made[1], "Success", 0))
    done = await service.describe(everything(scope, ctx, statuses=frozenset({"Success"})), page())
    assert [t.invoke_id for t in done.tasks] == [made[1]]

    first = await service.describe(everything(scope, ctx), page(max_results=2))
    assert [t.invoke_id for t in first.tasks] == [made[4], made[3]]
    assert first.next_seq is not None
    from cloudassist.domain.paging import encode_token

    token = encode_token(str(first.next_seq))
    second = await service.describe(everything(scope, ctx), page(max_results=2, next_token=token))
    assert [t.invoke_id for t in second.tasks] == [made[2], made[1]]
    numbered = await service.describe(everything(scope, ctx), page(page_number=3, page_size=2))
    assert [t.invoke_id for t in numbered.tasks] == [made[0]]
    assert numbered.total == 5


async def test_records_older_than_six_weeks_are_no_longer_listed(ctx: Context, clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    service, scope = FileService(ctx), await scope_of(ctx)
    await service.send_file(scope, SPEC, [instance], (), idempotency=None)
    clock.advance(weeks=6, seconds=-1)
    assert (await service.describe(everything(scope, ctx), page())).total == 1
    clock.advance(seconds=2)
    assert (await service.describe(everything(scope, ctx), page())).total == 0

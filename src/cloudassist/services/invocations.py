"""RunCommand, InvokeCommand, DescribeInvocations, DescribeInvocationResults and StopInvocation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cloudassist import ids
from cloudassist.domain import commands as rules
from cloudassist.domain.commands import Command
from cloudassist.domain.invocations import Invocation, InvocationResult, RepeatMode, TerminationMode
from cloudassist.domain.paging import Page
from cloudassist.domain.schedules import MAX_FREQUENCY, check_frequency
from cloudassist.domain.statuses import InvocationStatus, legacy_roll_up, roll_up
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.instances import InstanceFilter
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.results import NewResult, ResultFilter
from cloudassist.store.store import Tx


@dataclass(frozen=True)
class RunOptions:
    """How a task runs: what InvokeCommand may override of its command, and the task's own settings."""

    repeat_mode: RepeatMode
    frequency: str
    parameters: dict[str, Any]
    timeout: int | None
    working_dir: str | None
    username: str
    windows_password_name: str
    termination_mode: TerminationMode
    launcher: str | None
    container_id: str
    container_name: str
    resource_group_id: str


@dataclass(frozen=True)
class Targets:
    instance_ids: Sequence[str] = ()
    resource_tags: Sequence[Tag] = ()


@dataclass(frozen=True)
class Started:
    invoke_id: str
    command_id: str
    #: The instances that have new work (empty for a DryRun or a repeated ClientToken).
    instance_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultPage:
    results: list[tuple[InvocationResult, Invocation]]
    total: int
    next_seq: int | None


@dataclass(frozen=True)
class InvocationPage:
    invocations: list[Invocation]
    total: int
    next_seq: int | None
    tags: dict[str, tuple[Tag, ...]] = field(default_factory=dict)


class InvocationService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.commands = CommandService(ctx)

    async def run_command(
        self,
        scope: Scope,
        spec: CommandSpec,
        options: RunOptions,
        targets: Targets,
        tags: Sequence[Tag],
        *,
        keep_command: bool,
        idempotency: Idempotency | None,
    ) -> Started:
        command = self.commands.build(scope, spec, kept=keep_command)
        self._check_options(options)

        async def create(tx: Tx) -> Started:
            await self.commands.insert(tx, command, ())
            return await self._start(tx, scope, command, options, targets, tags)

        return await self._idempotent(scope, idempotency, create)

    async def invoke_command(
        self,
        scope: Scope,
        command_id: str,
        options: RunOptions,
        targets: Targets,
        tags: Sequence[Tag],
        *,
        idempotency: Idempotency | None,
    ) -> Started:
        self._check_options(options)

        async def create(tx: Tx) -> Started:
            command = await tx.commands.get(scope.account_id, scope.region_id, command_id)
            if command is None:
                raise ApiError.of("InvalidCmdId.NotFound")
            return await self._start(tx, scope, command, options, targets, tags)

        return await self._idempotent(scope, idempotency, create)

    def _check_options(self, options: RunOptions) -> None:
        rules.check_lengths(working_dir=options.working_dir, launcher=options.launcher, username=options.username)
        if len(options.windows_password_name) > 255:
            raise ApiError.of("WindowsPasswordName.ExceedLimit")
        if options.timeout is not None:
            rules.check_timeout(options.timeout, self.ctx.settings.max_timeout_seconds)
        rules.check_resource_group(options.resource_group_id)
        rules.check_container(options.container_id, options.container_name)
        if len(options.frequency) > MAX_FREQUENCY:
            raise ApiError.of("InvalidParam.Frequency")

    async def _idempotent(self, scope: Scope, idem: Idempotency | None, create: Callable[[Tx], Any]) -> Started:
        """Run `create` once per ClientToken: a retry with the same parameters gets the first answer."""
        async with self.ctx.store.write() as tx:
            earlier = None if idem is None else await idem.claim(tx, scope.account_id, self.ctx.clock.now())
            if earlier is not None:
                return Started(earlier["InvokeId"], earlier["CommandId"])
            started: Started = await create(tx)
            if idem is not None:
                await idem.record(
                    tx, scope.account_id, {"InvokeId": started.invoke_id, "CommandId": started.command_id}
                )
        self.ctx.notify.kick(started.instance_ids)
        return started

    async def _start(
        self, tx: Tx, scope: Scope, command: Command, options: RunOptions, targets: Targets, tags: Sequence[Tag]
    ) -> Started:
        instance_ids = await self._resolve_targets(tx, scope, targets)
        instances = await tx.instances.get_many(scope.account_id, scope.region_id, instance_ids)
        missing = [i for i in instance_ids if i not in instances]
        if missing:
            raise ApiError.of("InvalidInstance.NotFound", f"The specified instance does not exist: {missing[0]}.")
        wrong_os = [m for m in instances.values() if m.os_family.lower() != command.type.os_type]
        if wrong_os:
            raise ApiError.of("InvalidInstance.NotMatch")
        values = rules.check_passed_parameters(options.parameters, command.parameter_names, command.enable_parameter)
        content = rules.render(command.content, values) if command.enable_parameter else command.content
        rules.check_content_size(content)
        now = self.ctx.clock.now()
        invocation = Invocation(
            invoke_id=ids.invoke_id(scope.region_id),
            account_id=scope.account_id,
            region_id=scope.region_id,
            command_id=command.command_id,
            command_name=command.name,
            command_type=command.type,
            command_description=command.description,
            content=content,
            parameters=values,
            repeat_mode=options.repeat_mode,
            frequency=options.frequency,
            timeout=options.timeout if options.timeout is not None else command.timeout,
            working_dir=options.working_dir if options.working_dir is not None else command.working_dir,
            username=options.username,
            windows_password_name=options.windows_password_name,
            termination_mode=options.termination_mode,
            launcher=options.launcher if options.launcher is not None else command.launcher,
            container_id=options.container_id,
            container_name=options.container_name,
            resource_group_id=options.resource_group_id,
            creation_time=now,
            stop_time=None,
            enable_parameter=command.enable_parameter,
        )
        if invocation.repeat_mode is RepeatMode.PERIOD:
            check_frequency(invocation.frequency, invocation.timeout, now)
        if options.repeat_mode is RepeatMode.DRY_RUN:
            return Started(invocation.invoke_id, command.command_id)  # checked everything; nothing runs
        # reboot tasks wait for the instance's next start; everything else waits for its agent
        first = (
            InvocationStatus.SCHEDULED
            if options.repeat_mode in (RepeatMode.NEXT_REBOOT_ONLY, RepeatMode.EVERY_REBOOT)
            else InvocationStatus.PENDING
        )
        pending = [NewResult(i, first) for i in instance_ids]
        # the task takes the account's next task number; each execution record the next record number
        first_result = await tx.accounts.allocate_seq(scope.account_id, len(pending)) - len(pending) + 1
        statuses = [r.status for r in pending]
        task = roll_up(statuses)
        await tx.invocations.insert(
            invocation,
            seq=await tx.accounts.allocate_task_seq(scope.account_id),
            status=task,
            invoke_status=legacy_roll_up(task, statuses).value,
            client_token=None,
        )
        await tx.results.insert(
            account_id=scope.account_id,
            region_id=scope.region_id,
            invoke_id=invocation.invoke_id,
            command_id=command.command_id,
            first_seq=first_result,
            items=pending,
            now=now,
        )
        await tx.tags.add(scope.account_id, "invocation", invocation.invoke_id, tags)
        await tx.commands.count_invocation(command.command_id)
        return Started(invocation.invoke_id, command.command_id, tuple(instance_ids))

    async def _resolve_targets(self, tx: Tx, scope: Scope, targets: Targets) -> list[str]:
        limit = self.ctx.settings.max_instances_per_call
        if targets.instance_ids and targets.resource_tags:
            raise ApiError.of("InvalidResourceTag.ConflictWithInstanceIds")
        if targets.resource_tags:
            found = await tx.instances.list(
                InstanceFilter(scope.account_id, scope.region_id, tags=targets.resource_tags), 0, limit + 1
            )
            if not found:
                raise ApiError.of("InvalidResourceTag.InstanceNotFound")
            if len(found) > limit:
                raise ApiError.of("InstanceIds.ExceedLimit")
            return sorted(m.instance_id for m in found)
        unique = list(dict.fromkeys(targets.instance_ids))
        if not unique:
            raise ApiError.of("MissingParam.InstanceId")
        if len(unique) > limit:
            raise ApiError.of("InstanceIds.ExceedLimit")
        return unique

    async def describe_invocation_results(self, f: ResultFilter, page: Page) -> ResultPage:
        """A page of execution records, newest first, within the retention window."""
        now = self.ctx.clock.now()
        async with self.ctx.store.read() as tx:
            newest = await tx.accounts.current_seq(f.account_id)
            window = ResultFilter(
                **{
                    **f.__dict__,
                    "not_before": self.ctx.retention_start(now),
                    "min_seq": newest - self.ctx.settings.retention_count,
                    "before_seq": page.position,
                }
            )
            rows = await tx.results.list(window, page.offset if not page.token_mode else 0, page.size + 1)
            total = -1 if page.token_mode else await tx.results.count(window)
            invocations = await tx.invocations.get_many(f.account_id, f.region_id, list({r.invoke_id for _, r in rows}))
            tags = await tx.tags.of("invocation", list(invocations))
        more = len(rows) > page.size
        rows = rows[: page.size]
        with_tags = {k: _replace_tags(v, tags[k]) for k, v in invocations.items()}
        return ResultPage([(r, with_tags[r.invoke_id]) for _, r in rows], total, rows[-1][0] if more else None)

    async def describe_invocations(self, f: InvocationFilter, page: Page) -> InvocationPage:
        now = self.ctx.clock.now()
        async with self.ctx.store.read() as tx:
            window = InvocationFilter(
                **{**f.__dict__, "not_before": self.ctx.retention_start(now), "before_seq": page.position}
            )
            rows = await tx.invocations.list(window, page.offset if not page.token_mode else 0, page.size + 1)
            total = -1 if page.token_mode else await tx.invocations.count(window)
            more = len(rows) > page.size
            rows = rows[: page.size]
            results = await tx.results.of_invocations([inv.invoke_id for _, inv in rows])
            tags = await tx.tags.of("invocation", [inv.invoke_id for _, inv in rows])
        found = [_replace(inv, tags[inv.invoke_id], results[inv.invoke_id]) for _, inv in rows]
        return InvocationPage(found, total, rows[-1][0] if more else None)

    async def stop_invocation(self, scope: Scope, invoke_id: str, instance_ids: Sequence[str]) -> None:
        """Cancel what has not started; ask agents to stop what is running (Stopping → Terminated)."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            invocation = await tx.invocations.get(scope.account_id, scope.region_id, invoke_id)
            if invocation is None:
                raise ApiError.of("InvalidInvokeId.NotFound")
            results = (await tx.results.of_invocations([invoke_id]))[invoke_id]
            present = {r.instance_id for r in results}
            unknown = [i for i in instance_ids if i not in present]
            if unknown:
                raise ApiError.of("InvalidInstanceId.NotFound")
            chosen = set(instance_ids) or present
            told: set[str] = set()
            for result in results:
                if result.instance_id not in chosen or result.status.terminal:
                    continue
                told.add(result.instance_id)
                delivered = result.delivered_time is not None
                if result.status in (InvocationStatus.PENDING, InvocationStatus.SCHEDULED) and not delivered:
                    await tx.results.update(
                        result.result_id, status=InvocationStatus.CANCELLED.value, stop_time=now, update_time=now
                    )
                else:  # running, or handed to the agent already: it must be told to stop
                    await tx.results.update(
                        result.result_id, status=InvocationStatus.STOPPING.value, stop_time=now, update_time=now
                    )
            await tx.invocations.set_stop_time(invoke_id, now)
            await self.refresh_status(tx, invoke_id)
        self.ctx.notify.kick(told)

    @staticmethod
    async def refresh_status(tx: Tx, invoke_id: str) -> None:
        """Recompute a task's roll-up from its results and store it with its legacy twin."""
        statuses = [r.status for r in (await tx.results.of_invocations([invoke_id]))[invoke_id]]
        task = roll_up(statuses)
        await tx.invocations.set_status(invoke_id, task, legacy_roll_up(task, statuses).value)


def _replace(inv: Invocation, tags: tuple[Tag, ...], results: Sequence[InvocationResult]) -> Invocation:
    return replace(inv, tags=tags, results=tuple(results))


def _replace_tags(inv: Invocation, tags: tuple[Tag, ...]) -> Invocation:
    return _replace(inv, tags, inv.results)

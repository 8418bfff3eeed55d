"""RunCommand, InvokeCommand, DescribeInvocations, DescribeInvocationResults and StopInvocation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cloudassist import ids
from cloudassist.domain import commands as rules
from cloudassist.domain.commands import Command, CommandType
from cloudassist.domain.instances import os_family
from cloudassist.domain.invocations import Invocation, InvocationResult, RepeatMode, TerminationMode
from cloudassist.domain.paging import Page
from cloudassist.domain.schedules import MAX_FREQUENCY, check_frequency
from cloudassist.domain.statuses import InvocationStatus, TaskStatus, legacy_roll_up, roll_up
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services import quotas
from cloudassist.services.commands import TASK_ENDED, CommandService, CommandSpec
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
            raise ApiError.of("InvalidParam.Frequency").because(_frequency_too_long(options.frequency))

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
        await self._check_instances(tx, scope, instance_ids, command.type)
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
        await quotas.take_invocation(self.ctx, tx, scope, dry_run=options.repeat_mode is RepeatMode.DRY_RUN)
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

    @staticmethod
    async def _check_instances(tx: Tx, scope: Scope, instance_ids: Sequence[str], command_type: CommandType) -> None:
        """Every instance exists in the scope and runs the OS the command type is for."""
        os_types = await tx.instances.os_types(scope.account_id, scope.region_id, instance_ids)
        missing = [i for i in instance_ids if i not in os_types]
        if missing:
            raise ApiError.of("InvalidInstance.NotFound", f"The specified instance does not exist: {missing[0]}.")
        wrong_os = [t for t in os_types.values() if os_family(t).lower() != command_type.os_type]
        if wrong_os:
            raise ApiError.of("InvalidInstance.NotMatch")

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
                raise ApiError.of("InstanceIds.ExceedLimit").because(
                    f"ResourceTag selects more than {limit} instances; at most {limit} per call."
                )
            return sorted(m.instance_id for m in found)
        unique = list(dict.fromkeys(targets.instance_ids))
        if not unique:
            raise ApiError.of("MissingParam.InstanceId")
        if len(unique) > limit:
            raise ApiError.of("InstanceIds.ExceedLimit").because(
                f"{len(unique)} instances given; at most {limit} per call."
            )
        return unique

    async def describe_invocation_results(
        self, f: ResultFilter, page: Page, *, include_history: bool = False
    ) -> ResultPage:
        """A page of execution records, newest first, within the retention window.

        Without `include_history` only the latest state per instance; with it (the filter names a task)
        also every ended run of a recurring task, all in one order, paged and retained as one set.
        """
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
            offset = page.offset if not page.token_mode else 0
            if include_history:
                rows = await tx.history.list_with_current(window, offset, page.size + 1)
                total = -1 if page.token_mode else await tx.history.count_with_current(window)
            else:  # the count first: a page at or past the end reads nothing, a deep one reads from the oldest end
                total = -1 if page.token_mode else await tx.results.count(window)
                rows = await tx.results.list(window, offset, page.size + 1, total=None if total < 0 else total)
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
            # locked first: a ModifyInvocationAttribute adding records waits, or is waited for
            invocation = await tx.invocations.get(scope.account_id, scope.region_id, invoke_id, lock=True)
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

    async def modify_invocation_attribute(
        self, scope: Scope, invoke_id: str, change: Modification, *, idempotency: Idempotency | None
    ) -> str:
        """ModifyInvocationAttribute: change a recurring task's content, parameters or schedule, or add
        instances to it; returns its CommandId (a new command's when the content changed).

        Every record of the task gets the next invoke version; a scheduled task's agents fetch it again
        (any fetch lists it) and replace the schedule they keep; reboot tasks are fetched afresh at the
        next boot anyway. Added instances get new records, like InvokeCommand's.
        """
        now = self.ctx.clock.now()
        with modify_errors():
            if change.frequency is not None and len(change.frequency) > MAX_FREQUENCY:
                raise ApiError.of("InvalidParam.Frequency").because(_frequency_too_long(change.frequency))
        async with self.ctx.store.write() as tx:
            earlier = None if idempotency is None else await idempotency.claim(tx, scope.account_id, now)
            if earlier is not None:
                return earlier["CommandId"]
            # locked before its records are read: concurrent modifies and StopInvocation take turns
            inv = await tx.invocations.get(scope.account_id, scope.region_id, invoke_id, lock=True)
            if inv is None:
                raise ApiError.of("InvalidInvokeId.NotFound", "The specified parameter InvokeId does not exist.")
            if not inv.repeat_mode.timed:
                raise ApiError.of("InvalidOperation.RepeatModeUnsupported")
            results = (await tx.results.of_invocations([invoke_id]))[invoke_id]
            if roll_up(r.status for r in results) not in MODIFIABLE:
                raise ApiError.of("InvalidOperation.InvokeAlreadyFinished")
            with modify_errors():
                command_id = await self._modify_task(tx, scope, inv, change)
                await tx.results.modified(
                    invoke_id, command_id=command_id, redeliver=inv.repeat_mode is RepeatMode.PERIOD, now=now
                )
                added = await self._add_instances(tx, scope, inv, command_id, results, change.instance_ids)
            await self.refresh_status(tx, invoke_id)
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"CommandId": command_id})
        self.ctx.notify.kick([r.instance_id for r in results if not r.status.terminal] + added)
        return command_id

    async def _modify_task(self, tx: Tx, scope: Scope, inv: Invocation, change: Modification) -> str:
        """Store the task's new content, parameters and schedule; its CommandId afterwards."""
        original = await tx.commands.get(scope.account_id, scope.region_id, inv.command_id, hidden=True)
        command_id, template = inv.command_id, None if original is None else original.content
        new_content = change.content is not None and change.content != template
        # EnableParameter describes new content; without new content, false means "parameters unchanged" (A.10)
        if new_content and change.enable_parameter is not None:
            enabled = change.enable_parameter
        else:
            enabled = inv.enable_parameter or bool(change.enable_parameter)
        if new_content and change.content is not None:
            spec = CommandSpec(
                name=inv.command_name if original is None else original.name,
                description=inv.command_description,
                type=inv.command_type,
                content=change.content,
                working_dir=inv.working_dir if original is None else original.working_dir,
                timeout=inv.timeout if original is None else original.timeout,
                enable_parameter=enabled,
                launcher=inv.launcher if original is None else original.launcher,
                resource_group_id=inv.resource_group_id if original is None else original.resource_group_id,
            )
            # the new command is kept only if the task's was (InvokeCommand, or RunCommand with KeepCommand)
            command = self.commands.build(scope, spec, kept=original is not None and original.kept)
            await self.commands.insert(tx, command, ())
            await tx.commands.count_invocation(command.command_id)
            if original is not None and not original.kept:  # the hidden command the task no longer uses
                await tx.commands.delete(original.command_id)
            command_id, template = command.command_id, command.content
        content, values = inv.content, inv.parameters
        if command_id != inv.command_id or change.parameters is not None or enabled != inv.enable_parameter:
            if template is None:  # the task's command is gone: there is nothing to fill the parameters into
                raise ApiError.of("InvalidCommandId.NotFound")
            names = rules.parameter_names(template) if enabled else []
            if change.parameters is not None:
                values = rules.check_passed_parameters(change.parameters, names, enabled)
            else:
                values = {k: v for k, v in inv.parameters.items() if k in {n.lower() for n in names}}
            content = rules.render(template, values) if enabled else template
            rules.check_content_size(content)
        frequency = inv.frequency
        if change.frequency and inv.repeat_mode is RepeatMode.PERIOD:  # it means nothing to reboot tasks
            check_frequency(change.frequency, inv.timeout, self.ctx.clock.now())
            frequency = change.frequency
        await tx.invocations.modify(
            inv.invoke_id,
            command_id=command_id,
            content=content,
            parameters=values,
            enable_parameter=enabled,
            frequency=frequency,
        )
        return command_id

    async def _add_instances(
        self,
        tx: Tx,
        scope: Scope,
        inv: Invocation,
        command_id: str,
        results: Sequence[InvocationResult],
        instance_ids: Sequence[str],
    ) -> list[str]:
        """New records for the instances not yet in the task, checked as InvokeCommand checks them."""
        if not instance_ids:
            return []
        wanted = await self._resolve_targets(tx, scope, Targets(instance_ids))
        present = {r.instance_id for r in results}
        added = [i for i in wanted if i not in present]
        if not added:
            return []
        if len(present) + len(added) > self.ctx.settings.max_instances_per_call:
            raise ApiError.of("InstanceIds.ExceedLimit")
        await self._check_instances(tx, scope, added, inv.command_type)
        reboot = inv.repeat_mode in (RepeatMode.NEXT_REBOOT_ONLY, RepeatMode.EVERY_REBOOT)
        first = InvocationStatus.SCHEDULED if reboot else InvocationStatus.PENDING
        first_seq = await tx.accounts.allocate_seq(scope.account_id, len(added)) - len(added) + 1
        await tx.results.insert(
            account_id=scope.account_id,
            region_id=scope.region_id,
            invoke_id=inv.invoke_id,
            command_id=command_id,
            first_seq=first_seq,
            items=[NewResult(i, first) for i in added],
            now=self.ctx.clock.now(),
            invoke_version=max((r.invoke_version for r in results), default=0) + 1,
        )
        return added

    @staticmethod
    async def refresh_status(tx: Tx, invoke_id: str) -> None:
        """Recompute a task's roll-up and store it with its legacy twin, once, just before the transaction
        commits (a batch that changes many records of one task computes its roll-up once)."""
        tx.defer(("roll-up", invoke_id), lambda t: InvocationService._roll_up(t, invoke_id))

    @staticmethod
    async def _roll_up(tx: Tx, invoke_id: str) -> None:
        # the roll-up depends only on which statuses occur, read from an index: no record is loaded
        statuses = await tx.results.statuses_of(invoke_id)
        task = roll_up(statuses)
        await tx.invocations.set_status(invoke_id, task, legacy_roll_up(task, statuses).value)
        if task in TASK_ENDED:  # a command RunCommand did not keep goes with the end of its task
            await CommandService.forget_ended(tx, invoke_id)


@dataclass(frozen=True)
class Modification:
    """What ModifyInvocationAttribute changes; None (or nothing) leaves that attribute as it is."""

    content: bytes | None = None
    parameters: dict[str, Any] | None = None
    enable_parameter: bool | None = None
    frequency: str | None = None
    instance_ids: Sequence[str] = ()


#: A task may be modified while its roll-up is one of these (reference §5.2).
MODIFIABLE: Final = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.SCHEDULED, TaskStatus.STOPPING})

#: The code RunCommand/InvokeCommand/CreateCommand raise → ModifyInvocationAttribute's code for the same fault
#: (reference §7): the checks are shared, the names differ.
MODIFY_CODES: Final = {
    "CmdContent.DecodeError": "InvalidCommandContent.DecodeError",
    "CmdContent.ExceedLimit": "InvalidCommandContent.LengthLimitExceeded",
    "CmdParam.EmptyKey": "InvalidParameters.KeyEmpty",
    "CmdParam.InvalidParamName": "InvalidParameters.KeyMalformed",
    "CmdParamName.ExceedLimit": "InvalidParameters.KeyLengthLimitExceeded",
    "CmdParamCount.ExceedLimit": "InvalidParameters.CountLimitExceeded",
    "CmdCount.ExceedQuota": "CommandLimitExceeded",
    "Parameter.Disabled": "InvalidParameters.KeyNotMatch",
    "InvalidParameter.Parameters": "InvalidParameters.KeyEmpty",
    "ParameterCount.ExceedLimit": "InvalidParameters.CountLimitExceeded",
    "ParameterKey.ExceedLimit": "InvalidParameters.KeyLengthLimitExceeded",
    "ParameterType.NotSupported": "InvalidParameters.ValueTypeUnsupported",
    "ParameterKey.Duplicate": "InvalidParameters.KeyDuplicate",
    "Parameter.NotMatched": "InvalidParameters.KeyNotMatch",
    "InvalidInstance.NotFound": "InvalidInstanceId.NotFound",
    "InvalidInstance.NotMatch": "InvalidInstanceId.OSTypeUnsupported",
    "InstanceIds.ExceedLimit": "InvalidInstanceId.CountLimitExceeded",
    "InvalidParam.Frequency": "InvalidParameter.Frequency",
}


@contextmanager
def modify_errors() -> Iterator[None]:
    """Raise the shared checks' errors under ModifyInvocationAttribute's codes."""
    try:
        yield
    except ApiError as exc:
        code = MODIFY_CODES.get(exc.code)
        if code is None:
            raise
        error = ApiError.of(code)
        raise (error.because(exc.detail) if exc.detail else error) from exc


def _frequency_too_long(frequency: str) -> str:
    return f"Frequency is {len(frequency)} characters long; at most {MAX_FREQUENCY}."


def _replace(inv: Invocation, tags: tuple[Tag, ...], results: Sequence[InvocationResult]) -> Invocation:
    return replace(inv, tags=tags, results=tuple(results))


def _replace_tags(inv: Invocation, tags: tuple[Tag, ...]) -> Invocation:
    return _replace(inv, tags, inv.results)

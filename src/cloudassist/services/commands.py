"""CreateCommand, DescribeCommands, ModifyCommand and DeleteCommand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cloudassist import ids
from cloudassist.domain import commands as rules
from cloudassist.domain.commands import Command, CommandType
from cloudassist.domain.paging import Page, offset_slice
from cloudassist.domain.statuses import TaskStatus
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services import quotas
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.commands import CommandFilter
from cloudassist.store.store import Tx

#: Task roll-ups after which nothing runs any more: a command RunCommand did not keep is deleted then.
TASK_ENDED: Final = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.PARTIAL_FAILED})


@dataclass(frozen=True)
class CommandSpec:
    """A command as a caller describes it, already decoded and validated for shape."""

    name: str
    description: str
    type: CommandType
    content: bytes
    working_dir: str
    timeout: int
    enable_parameter: bool
    launcher: str
    resource_group_id: str


@dataclass(frozen=True)
class CommandPage:
    commands: list[tuple[Command, tuple[Tag, ...]]]
    total: int
    next_offset: int | None


class CommandService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, spec: CommandSpec) -> None:
        """Every documented rule a new command must satisfy."""
        rules.check_lengths(
            name=spec.name, description=spec.description, working_dir=spec.working_dir, launcher=spec.launcher
        )
        rules.check_timeout(spec.timeout, self.ctx.settings.max_timeout_seconds)
        rules.check_resource_group(spec.resource_group_id)
        rules.check_content_size(spec.content)
        if spec.enable_parameter:
            rules.check_parameter_definitions(spec.content)

    def build(self, scope: Scope, spec: CommandSpec, *, kept: bool) -> Command:
        """A new command from a checked spec (not yet stored)."""
        self.check(spec)
        return Command(
            command_id=ids.command_id(scope.region_id),
            account_id=scope.account_id,
            region_id=scope.region_id,
            name=spec.name,
            description=spec.description,
            type=spec.type,
            content=spec.content,
            working_dir=spec.working_dir,
            timeout=spec.timeout,
            enable_parameter=spec.enable_parameter,
            launcher=spec.launcher,
            resource_group_id=spec.resource_group_id,
            creation_time=self.ctx.clock.now(),
            invoke_times=0,
            kept=kept,
        )

    async def insert(self, tx: Tx, command: Command, tags: Sequence[Tag]) -> None:
        """Store a command within `tx`, holding to the account's command quota (kept commands only: one
        that RunCommand does not keep is deleted when its task ends and does not count)."""
        if command.kept:
            await quotas.check_commands(self.ctx, tx, command.account_id, command.region_id)
        await tx.commands.insert(command)
        await tx.tags.add(command.account_id, "command", command.command_id, tags)

    async def create_command(
        self, scope: Scope, spec: CommandSpec, tags: Sequence[Tag], *, idempotency: Idempotency | None = None
    ) -> str:
        """Create a kept command; its CommandId. A retry with the same ClientToken and parameters gets the
        first call's CommandId (and creates nothing)."""
        command = self.build(scope, spec, kept=True)
        async with self.ctx.store.write() as tx:
            now = command.creation_time
            earlier = None if idempotency is None else await idempotency.claim(tx, scope.account_id, now)
            if earlier is not None and earlier.get("CommandId"):
                return earlier["CommandId"]
            await self.insert(tx, command, tags)
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"CommandId": command.command_id})
        return command.command_id

    @staticmethod
    async def forget_ended(tx: Tx, invoke_id: str) -> bool:
        """The task `invoke_id` has ended: delete its command if RunCommand did not keep it."""
        invocation = await tx.invocations.by_id(invoke_id)
        if invocation is None:
            return False
        return await CommandService.forget_unkept(
            tx, invocation.account_id, invocation.region_id, invocation.command_id
        )

    @staticmethod
    async def forget_unkept(tx: Tx, account_id: int, region_id: str, command_id: str) -> bool:
        """Delete a command RunCommand created with KeepCommand=false, now that its task has ended (reference
        §5.7). Its task keeps its own copy of name, type and content, so the records still show them."""
        command = await tx.commands.get(account_id, region_id, command_id, hidden=True)
        if command is None or command.kept:
            return False
        await tx.tags.remove_all("command", command_id)
        await tx.commands.delete(command_id)
        return True

    async def describe_commands(self, f: CommandFilter, page: Page) -> CommandPage:
        async with self.ctx.store.read() as tx:
            got = await offset_slice(page, lambda start, n: tx.commands.list(f, start, n), lambda: tx.commands.count(f))
            tags = await tx.tags.of("command", [c.command_id for c in got.rows])
        return CommandPage([(c, tags[c.command_id]) for c in got.rows], got.total, got.next_start)

    async def modify_command(
        self,
        scope: Scope,
        command_id: str,
        *,
        name: str | None,
        description: str | None,
        working_dir: str | None,
        timeout: int | None,  # noqa: ASYNC109 - the command's Timeout attribute, not a deadline of this call
        launcher: str | None,
    ) -> None:
        rules.check_lengths(name=name, description=description, working_dir=working_dir, launcher=launcher)
        if timeout is not None:
            rules.check_timeout(timeout, self.ctx.settings.max_timeout_seconds)
        changes = {
            k: v
            for k, v in (
                ("name", name),
                ("description", description),
                ("working_dir", working_dir),
                ("timeout", timeout),
                ("launcher", launcher),
            )
            if v is not None
        }
        async with self.ctx.store.write() as tx:
            if await tx.commands.get(scope.account_id, scope.region_id, command_id) is None:
                raise ApiError.of("InvalidCmdId.NotFound")
            if changes:
                await tx.commands.update(command_id, **changes)

    async def delete_command(self, scope: Scope, command_id: str) -> None:
        """Delete a command. Its invocations keep their own copy of the content and stay queryable."""
        async with self.ctx.store.write() as tx:
            if await tx.commands.get(scope.account_id, scope.region_id, command_id) is None:
                raise ApiError.of("InvalidCmdId.NotFound")
            await tx.tags.remove_all("command", command_id)
            await tx.commands.delete(command_id)

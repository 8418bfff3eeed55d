"""CreateCommand, DescribeCommands, ModifyCommand and DeleteCommand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloudassist import ids
from cloudassist.domain import commands as rules
from cloudassist.domain.commands import Command, CommandType
from cloudassist.domain.paging import Page, offset_slice
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.store.commands import CommandFilter
from cloudassist.store.store import Tx


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
        """Store a command within `tx`, holding to the account's command quota."""
        quota = self.ctx.settings.command_quota
        if command.kept and await tx.commands.count_kept(command.account_id, command.region_id) >= quota:
            raise ApiError.of("CmdCount.ExceedQuota")
        await tx.commands.insert(command)
        await tx.tags.add(command.account_id, "command", command.command_id, tags)

    async def create_command(self, scope: Scope, spec: CommandSpec, tags: Sequence[Tag]) -> Command:
        command = self.build(scope, spec, kept=True)
        async with self.ctx.store.write() as tx:
            await self.insert(tx, command, tags)
        return command

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

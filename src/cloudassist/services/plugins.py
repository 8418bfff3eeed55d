"""Plug-ins: what agents report of them (`/luban/api/v1/plugin/report_status`), and ListPluginStatus.

ListPluginStatus pages over instances: the named ones (in the order named) or, with a Name and no instance, every
instance of the account in the region; each with its plug-ins (only the one named, `NotInstalled` when its agent
never reported it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.paging import Page, Slice, offset_slice
from cloudassist.domain.plugins import MAX_NAME, NOT_INSTALLED, PluginStatus, Reported
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.store.instances import InstanceFilter
from cloudassist.store.store import Tx

#: InstanceId.N of ListPluginStatus: N is 1 to 50 (reference A.17).
MAX_INSTANCES: Final = 50


@dataclass(frozen=True)
class InstancePlugins:
    instance_id: str
    plugins: list[PluginStatus]


class PluginService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def report_in(self, tx: Tx, instance: ManagedInstance, reported: Sequence[Reported]) -> None:
        """Record the plug-ins of one agent report, at the server's time."""
        now = self.ctx.clock.now()
        for plugin in reported:
            await tx.plugins.report(instance.instance_id, plugin.name, plugin.version, plugin.status, now)

    async def list_plugin_status(
        self, scope: Scope, instance_ids: Sequence[str], name: str | None, page: Page
    ) -> Slice[InstancePlugins]:
        unique = list(dict.fromkeys(instance_ids))
        if name is not None and len(name) > MAX_NAME:
            raise ApiError.invalid("Name", f"Name of {len(name)} characters; at most {MAX_NAME}.")
        if len(unique) > MAX_INSTANCES:
            raise ApiError.of("InstanceIds.ExceedLimit").because(f"{len(unique)} instances; at most {MAX_INSTANCES}.")
        if name is None and not unique:
            raise ApiError.of("MissingParam.InstanceId").because("Without Name, name one instance.")
        if name is None and len(unique) > 1:
            raise ApiError.of("InstanceIds.ExceedLimit").because(f"{len(unique)} instances; without Name, one.")
        async with self.ctx.store.read() as tx:
            if unique:
                by_id = await tx.instances.get_many(scope.account_id, scope.region_id, unique)
                missing = [i for i in unique if i not in by_id]
                if missing:
                    raise ApiError.of("InvalidInstance.NotFound").because(f"No instance {missing[0]} here.")
                rows = unique[page.start : page.start + page.size + 1]
                total = -1 if page.token_mode else len(unique)
                more = len(rows) > page.size
                got = Slice(rows[: page.size], total, page.start + page.size if more else None)
            else:
                f = InstanceFilter(scope.account_id, scope.region_id)

                async def ids(start: int, n: int) -> list[str]:
                    return [m.instance_id for m in await tx.instances.list(f, start, n)]

                got = await offset_slice(page, ids, lambda: tx.instances.count(f))
            plugins = await tx.plugins.of(got.rows, name)
        listed = [InstancePlugins(i, plugins[i] or _not_installed(name)) for i in got.rows]
        return Slice(listed, got.total, got.next_start)


def _not_installed(name: str | None) -> list[PluginStatus]:
    return [] if name is None else [PluginStatus(name, "", NOT_INSTALLED, None, None)]

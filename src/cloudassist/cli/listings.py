"""The listings: `invocations`, `results`, `commands`, `instances`, `activations` — tables on a terminal,
tab-separated lines on a pipe, `--json` for scripts; filters named after the API's; `--all` follows NextToken."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from cloudassist.cli.client import dig, next_token
from cloudassist.cli.connection import EXIT_FAILED, api_errors, api_options, client, print_json
from cloudassist.cli.render import cell, decoded, print_outputs, show, summary
from cloudassist.cli.run import RESULTS_PATH, interrupted, pairs, wait

__all__ = ["activations", "commands", "instances", "invocations", "results", "sessions"]

F = TypeVar("F", bound=Callable[..., Any])
Row = Callable[[Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Listing:
    """What a listing's shared options asked for: tags to filter by, and which pages in which form."""

    tags: list[dict[str, str]] | None
    max_results: int
    token: str | None
    every: bool
    as_json: bool

    @classmethod
    def current(cls) -> Listing:
        """The options of the command being run."""
        meta = click.get_current_context().meta
        tags = pairs(meta.get("listing.tags", ()), "--tag") or None
        return cls(
            tags,
            meta["listing.max_results"],
            meta["listing.next_token"],
            meta["listing.every"],
            meta["listing.as_json"],
        )


def _keep(ctx: click.Context, param: click.Parameter, value: object) -> object:
    ctx.meta[f"listing.{param.name}"] = value
    return value


def _shared(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """An option kept in the context for `Listing.current()` rather than passed to the command."""
    return click.option(*decls, expose_value=False, callback=_keep, **attrs)


def listing_options(noun: str, *, tags: bool = True) -> Callable[[F], F]:
    """`--tag` (where the operation takes tags), `--max-results`, `--next-token`, `--all`, `--json` and the API
    options (`Listing.current()`)."""

    def decorate(command: F) -> F:
        tag = _shared("--tag", "tags", multiple=True, metavar="KEY=VALUE", help=f"{noun} with this tag (repeatable).")
        decorators: list[Callable[[F], F]] = [tag] if tags else []
        decorators += [
            _shared("--max-results", type=click.IntRange(1, 50), default=50, show_default=True, help="Per page."),
            _shared("--next-token", help="Start at this page (the NextToken a listing printed)."),
            _shared("--all", "every", is_flag=True, help="Follow NextToken to the last page."),
            _shared("--json", "as_json", is_flag=True, help="The items as a JSON array, as the API returns them."),
        ]
        for decorator in reversed(decorators):
            command = decorator(command)
        return api_options(command)

    return decorate


def _fetch(action: str, params: Mapping[str, object], path: Sequence[str], paging: Listing) -> tuple[list[Any], str]:
    api = client()
    found: list[Any] = []
    token = ""
    with api_errors():
        query = {**params, "Tag": paging.tags, "MaxResults": paging.max_results, "NextToken": paging.token}
        for answer in api.pages(action, query, every=paging.every):
            found.extend(dig(answer, path))
            token = next_token(answer)
    return found, token


def _emit(
    items: list[Any],
    token: str,
    paging: Listing,
    title: str,
    columns: Sequence[str],
    row: Row,
    status_column: int = -1,
) -> None:
    if paging.as_json:
        print_json(items)
    else:
        show(title, columns, [row(item) for item in items], status_column)
    _more(token)


def _more(token: str) -> None:
    """Where the next page starts, when there is one."""
    if token:
        click.echo(f"more: --next-token {token} (or --all)", err=True)


@click.command()
@click.option("--invoke-id", help="InvokeId.")
@click.option("--command-id", help="CommandId.")
@click.option("--command-name", help="CommandName.")
@click.option("-i", "--instance", help="Tasks that ran on this instance (InstanceId).")
@click.option("--status", help="InvokeStatus: Running, Finished, Failed, Stopped, … (the API's values).")
@click.option("--type", "command_type", help="CommandType: RunShellScript, …")
@click.option("--repeat-mode", help="RepeatMode: Once, Period, NextRebootOnly, EveryReboot.")
@click.option("--timed/--not-timed", default=None, help="Only tasks that will (or will not) run again.")
@listing_options("Tasks")
def invocations(
    invoke_id: str | None,
    command_id: str | None,
    command_name: str | None,
    instance: str | None,
    status: str | None,
    command_type: str | None,
    repeat_mode: str | None,
    timed: bool | None,
) -> None:
    """List tasks (DescribeInvocations), newest first."""
    paging = Listing.current()
    params = {
        "InvokeId": invoke_id,
        "CommandId": command_id,
        "CommandName": command_name,
        "ContentEncoding": "PlainText",
        "InstanceId": instance,
        "InvokeStatus": status,
        "CommandType": command_type,
        "RepeatMode": repeat_mode,
        "Timed": timed,
    }
    items, token = _fetch("DescribeInvocations", params, ("Invocations", "Invocation"), paging)

    def row(item: Mapping[str, Any]) -> list[str]:
        hosts = dig(item, ("InvokeInstances", "InvokeInstance"))
        return [
            cell(item.get("InvokeId")),
            cell(item.get("InvocationStatus")),
            cell(item.get("CommandName")),
            cell(item.get("CommandType")),
            str(len(hosts)),
            cell(item.get("RepeatMode")),
            cell(item.get("CreationTime")),
        ]

    columns = ["InvokeId", "Status", "Command", "Type", "Instances", "RepeatMode", "Created"]
    _emit(items, token, paging, "Invocations", columns, row, status_column=1)


@click.command()
@click.argument("invoke_id", required=False)
@click.option("-i", "--instance", help="Executions on this instance (InstanceId).")
@click.option("--command-id", help="CommandId.")
@click.option("--status", help="InvokeRecordStatus: Running, Finished, Failed, PartialFailed, Stopped, …")
@click.option("--include-history", is_flag=True, help="Every run of a scheduled task, not only the latest.")
@click.option("--full", is_flag=True, help="Print each execution's whole output instead of a table.")
@click.option("--wait", "wait_for", is_flag=True, help="Wait until every execution ended (exit 3 if one failed).")
@listing_options("Tasks")
def results(
    invoke_id: str | None,
    instance: str | None,
    command_id: str | None,
    status: str | None,
    include_history: bool,
    full: bool,
    wait_for: bool,
) -> None:
    """List executions, per instance, with exit codes and output (DescribeInvocationResults).

    \b
      cloudassist results t-0123 --full          # every instance's output
      cloudassist results t-0123 --wait          # after `run --no-wait`
    """
    paging = Listing.current()
    if wait_for:
        if not invoke_id:
            raise click.UsageError("--wait needs an INVOKE_ID")
        try:
            with api_errors():
                wait(client(), invoke_id, live=False, interval=1.0)
        except KeyboardInterrupt:
            interrupted(invoke_id)
    params = {
        "InvokeId": invoke_id,
        "InstanceId": instance,
        "CommandId": command_id,
        "InvokeRecordStatus": status,
        "IncludeHistory": True if include_history else None,
        "ContentEncoding": "Base64",
    }
    items, token = _fetch("DescribeInvocationResults", params, RESULTS_PATH, paging)
    for item in items:
        item["Output"] = decoded(item.get("Output"))
    if full and not paging.as_json:
        print_outputs(items)
        click.echo(summary(items), err=True)
    else:

        def row(item: Mapping[str, Any]) -> list[str]:
            lines = str(item.get("Output") or "").rstrip("\n").splitlines()
            return [
                cell(item.get("InvokeId")),
                cell(item.get("InstanceId")),
                cell(item.get("InvocationStatus")),
                cell(item.get("ExitCode")),
                cell(item.get("StartTime")),
                cell(item.get("FinishedTime")),
                cell(item.get("ErrorCode")) or (lines[-1][:80] if lines else ""),
            ]

        columns = ["InvokeId", "Instance", "Status", "Exit", "Started", "Finished", "Output (last line) / error"]
        _emit(items, token, paging, "Invocation results", columns, row, status_column=2)
    if wait_for and any(item.get("InvocationStatus") != "Success" for item in items):
        sys.exit(EXIT_FAILED)


@click.command()
@click.option("--command-id", help="CommandId.")
@click.option("--name", help="Name.")
@click.option("--type", "command_type", help="Type: RunShellScript, …")
@click.option("--provider", help="Public commands of this provider (Provider).")
@listing_options("Commands")
def commands(
    command_id: str | None,
    name: str | None,
    command_type: str | None,
    provider: str | None,
) -> None:
    """List saved commands (DescribeCommands)."""
    paging = Listing.current()
    params = {
        "CommandId": command_id,
        "Name": name,
        "Type": command_type,
        "Provider": provider,
        "ContentEncoding": "PlainText",
    }
    items, token = _fetch("DescribeCommands", params, ("Commands", "Command"), paging)

    def row(item: Mapping[str, Any]) -> list[str]:
        names = item.get("ParameterNames") or {}
        return [
            cell(item.get("CommandId")),
            cell(item.get("Name")),
            cell(item.get("Type")),
            cell(item.get("Timeout")),
            cell(item.get("WorkingDir")),
            ",".join(names.get("ParameterName", [])) if isinstance(names, dict) else "",
            cell(item.get("InvokeTimes")),
            cell(item.get("CreationTime")),
        ]

    columns = ["CommandId", "Name", "Type", "Timeout", "WorkingDir", "Parameters", "Runs", "Created"]
    _emit(items, token, paging, "Commands", columns, row)


@click.command()
@click.option("-i", "--instance", "instance_ids", multiple=True, metavar="ID", help="InstanceId (repeatable).")
@click.option("--name", help="InstanceName.")
@click.option("--ip", help="InstanceIp: an internal or public address.")
@click.option("--activation-id", help="Registered with this ActivationId.")
@click.option("--os-type", help="OsType: linux, windows, freebsd.")
@click.option("--connected/--disconnected", default=None, help="Only instances whose agent is (not) connected.")
@listing_options("Instances")
def instances(
    instance_ids: tuple[str, ...],
    name: str | None,
    ip: str | None,
    activation_id: str | None,
    os_type: str | None,
    connected: bool | None,
) -> None:
    """List managed instances (DescribeManagedInstances) with their agents' last heart-beat
    (DescribeCloudAssistantStatus)."""
    paging = Listing.current()
    params = {
        "InstanceId": list(instance_ids) or None,
        "InstanceName": name,
        "InstanceIp": ip,
        "ActivationId": activation_id,
        "OsType": os_type,
        "Connected": connected,
    }
    items, token = _fetch("DescribeManagedInstances", params, ("Instances",), paging)
    beats = {} if paging.as_json else _heartbeats([str(item.get("InstanceId")) for item in items])

    def row(item: Mapping[str, Any]) -> list[str]:
        return [
            cell(item.get("InstanceId")),
            cell(item.get("InstanceName")),
            cell(item.get("Hostname")),
            cell(item.get("OsType")),
            cell(item.get("IntranetIp")),
            cell(item.get("AgentVersion")),
            "online" if item.get("Connected") else "offline",
            beats.get(str(item.get("InstanceId")), ""),
            cell(item.get("Tags")),
        ]

    columns = ["InstanceId", "Name", "Hostname", "OS", "IP", "Agent", "State", "Last heart-beat", "Tags"]
    _emit(items, token, paging, "Managed instances", columns, row)


def _heartbeats(ids: list[str]) -> dict[str, str]:
    """LastHeartbeatTime by instance, from DescribeCloudAssistantStatus (50 instances a call)."""
    api = client()
    found: dict[str, str] = {}
    path = ("InstanceCloudAssistantStatusSet", "InstanceCloudAssistantStatus")
    with api_errors():
        for start in range(0, len(ids), 50):
            chunk = ids[start : start + 50]
            for status in api.items("DescribeCloudAssistantStatus", {"InstanceId": chunk, "MaxResults": 50}, path):
                found[str(status.get("InstanceId"))] = cell(status.get("LastHeartbeatTime"))
    return found


@click.command()
@click.option("--activation-id", help="ActivationId.")
@click.option("--instance-name", help="InstanceName: the name prefix the activation gives.")
@listing_options("Activations")
def activations(
    activation_id: str | None,
    instance_name: str | None,
) -> None:
    """List activation codes and how many machines used them (DescribeActivations)."""
    paging = Listing.current()
    params = {"ActivationId": activation_id, "InstanceName": instance_name}
    items, token = _fetch("DescribeActivations", params, ("ActivationList",), paging)

    def row(item: Mapping[str, Any]) -> list[str]:
        return [
            cell(item.get("ActivationId")),
            cell(item.get("Description")),
            cell(item.get("InstanceName")),
            f"{cell(item.get('RegisteredCount'))}/{cell(item.get('InstanceCount'))}",
            cell(item.get("DeregisteredCount")),
            cell(item.get("TimeToLiveInHours")),
            cell(item.get("IpAddressRange")),
            "disabled" if item.get("Disabled") else "",
            cell(item.get("CreationTime")),
        ]

    columns = ["ActivationId", "Description", "Name prefix", "Used", "Deregistered", "TTL (h)", "IPs", "", "Created"]
    _emit(items, token, paging, "Activations", columns, row)


@click.command()
@click.option("-i", "--instance", help="Sessions on this instance (InstanceId).")
@click.option("--session-id", help="SessionId.")
@listing_options("Sessions", tags=False)
def sessions(instance: str | None, session_id: str | None) -> None:
    """List Session Manager sessions: who started each (AccessKeyId, address, user), and per instance how the
    connection went and how it ended (DescribeTerminalSessions). Newest first.

    \b
      cloudassist sessions -i mi-0123            # who opened a shell there, and how it ended
    """
    paging = Listing.current()
    params = {"InstanceId": instance, "SessionId": session_id}
    items, token = _fetch("DescribeTerminalSessions", params, ("Sessions", "Session"), paging)
    if paging.as_json:
        print_json(items)
    else:
        rows = []
        for item in items:
            head = [cell(item.get("SessionId")), cell(item.get("CreationTime")), cell(item.get("PrincipalId")),
                    cell(item.get("ClientIP")), cell(item.get("Username")) or "(default)"]
            target = f"port {item['PortNumber']}" if item.get("PortNumber") else "shell"
            for connection in dig(item, ("Connections", "Connection")) or [{}]:
                rows.append([*head, target, cell(connection.get("InstanceId")), cell(connection.get("Status")),
                             cell(connection.get("EndTime")), cell(connection.get("ClosedReason"))])
        columns = ["SessionId", "Created", "AccessKeyId", "Client", "User", "Kind", "Instance", "Status", "Ended",
                   "How it ended"]
        show("Sessions", columns, rows, 7)
    _more(token)

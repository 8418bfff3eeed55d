"""How the API commands show what they got: rich tables on a terminal, tab-separated lines elsewhere, and the
executions of a task with their output."""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cloudassist.domain.statuses import TERMINAL

__all__ = ["cell", "decoded", "make_table", "print_outputs", "show", "summary"]

#: Colours of per-instance statuses in tables.
_STYLE = {"Success": "green", "Running": "cyan", "Pending": "yellow", "Scheduled": "blue", "Stopping": "yellow"}


def cell(value: Any) -> str:
    """A field as table text: "" for missing, `true`/`false`, tags as `k=v,…`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "Tag" in value:
        value = value["Tag"]
    if isinstance(value, list):
        return ",".join(f"{t.get('TagKey', '')}={t.get('TagValue', '')}" for t in value if isinstance(t, dict))
    return str(value)


def status_style(status: str) -> str:
    if status in _STYLE:
        return _STYLE[status]
    return "red" if status in TERMINAL else ""


def make_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], status_column: int = -1) -> Table:
    """A rich table; the cells of `status_column` (if any) coloured by status."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        styled = list(row)
        if 0 <= status_column < len(styled) and status_style(styled[status_column]):
            styled[status_column] = f"[{status_style(styled[status_column])}]{styled[status_column]}[/]"
        table.add_row(*styled)
    return table


def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], status_column: int = -1) -> None:
    """A table on a terminal; on a pipe, a header line and one tab-separated line a row (for `cut`, `awk`)."""
    if sys.stdout.isatty():
        Console().print(make_table(title, columns, rows, status_column))
        return
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join(value.replace("\t", " ").replace("\n", " ") for value in row))


def decoded(text: str | None) -> str:
    """A Base64 `Output` as text (bytes that are not UTF-8 replaced); "" for none."""
    if not text:
        return ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
    return raw.decode("utf-8", errors="replace")


def headline(result: Mapping[str, Any]) -> str:
    """`mi-…  Success  exit 0` (plus the error code and what was dropped, when there are)."""
    parts = [str(result.get("InstanceId", "")), str(result.get("InvocationStatus", ""))]
    if result.get("ExitCode") is not None and result.get("InvocationStatus") in TERMINAL:
        parts.append(f"exit {result['ExitCode']}")
    if result.get("ErrorCode"):
        parts.append(f"{result['ErrorCode']}: {result.get('ErrorInfo', '')}")
    if result.get("Dropped"):
        parts.append(f"({result['Dropped']} bytes of output dropped)")
    return "  ".join(parts)


def print_outputs(results: Iterable[Mapping[str, Any]]) -> None:
    """Each execution's headline, then its output (already decoded by the caller)."""
    for result in results:
        click.secho(f"── {headline(result)}", bold=True)
        output = str(result.get("Output") or "")
        if output:
            click.echo(output, nl=not output.endswith("\n"))


def summary(results: Sequence[Mapping[str, Any]]) -> str:
    """`3 instances: 2 Success, 1 Failed`."""
    counts: dict[str, int] = {}
    for result in results:
        status = str(result.get("InvocationStatus", ""))
        counts[status] = counts.get(status, 0) + 1
    noun = "instance" if len(results) == 1 else "instances"
    return f"{len(results)} {noun}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

"""`cloudassist send-file`: SendFile to instances, waiting for every delivery (DescribeSendFileResults)."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any

import click

from cloudassist.cli.client import Client, dig
from cloudassist.cli.connection import EXIT_FAILED, api_errors, api_options, client, print_json
from cloudassist.cli.render import show, summary
from cloudassist.cli.run import pairs, tags_option
from cloudassist.domain.statuses import TERMINAL

__all__ = ["send_file"]


def deliveries(api: Client, invoke_id: str) -> list[dict[str, Any]]:
    """The per-instance records of one SendFile task."""
    answer = api.call("DescribeSendFileResults", {"InvokeId": invoke_id, "MaxResults": 50})
    found: list[dict[str, Any]] = []
    for task in dig(answer, ("Invocations", "Invocation")):
        found.extend(dig(task, ("InvokeInstances", "InvokeInstance")))
    return found


@click.command("send-file")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target_dir")
@click.option("-i", "--instance", "instances", multiple=True, required=True, metavar="ID", help="Repeatable.")
@click.option("--name", help="File name on the instances [the source's name].")
@click.option("--mode", "file_mode", help="FileMode, e.g. 0644.")
@click.option("--owner", "file_owner", help="FileOwner [root].")
@click.option("--group", "file_group", help="FileGroup [root].")
@click.option("--overwrite", is_flag=True, help="Replace a file of that name.")
@click.option("--timeout", type=click.IntRange(min=1), help="Seconds [API: 60].")
@click.option("--description", help="Description of the task.")
@tags_option("--task-tag", "task_tags", "Tag the task (repeatable).")
@click.option("--no-wait", is_flag=True, help="Print the InvokeId and return at once.")
@click.option("--json", "as_json", is_flag=True, help="The per-instance records as JSON.")
@api_options
def send_file(
    source: Path,
    target_dir: str,
    instances: tuple[str, ...],
    name: str | None,
    file_mode: str | None,
    file_owner: str | None,
    file_group: str | None,
    overwrite: bool,
    timeout: int | None,
    description: str | None,
    task_tags: tuple[str, ...],
    no_wait: bool,
    as_json: bool,
) -> None:
    """Send SOURCE (at most 32 KB once Base64-encoded) into TARGET_DIR on instances (SendFile).

    Exit status: 0 every instance has the file; 3 a delivery failed; 1 the API refused the call.
    """
    request: dict[str, object] = {
        "Content": base64.b64encode(source.read_bytes()).decode("ascii"),
        "ContentType": "Base64",
        "Name": name or source.name,
        "TargetDir": target_dir,
        "InstanceId": list(instances),
        "FileMode": file_mode,
        "FileOwner": file_owner,
        "FileGroup": file_group,
        "Overwrite": True if overwrite else None,
        "Timeout": timeout,
        "Description": description,
        "Tag": pairs(task_tags, "--task-tag") or None,
    }
    api = client()
    with api_errors():
        invoke_id = str(api.call("SendFile", request).get("InvokeId", ""))
        if no_wait:
            click.echo(invoke_id)
            return
        pause = 0.25
        while not (found := deliveries(api, invoke_id)) or any(
            r.get("InvocationStatus") not in TERMINAL for r in found
        ):
            time.sleep(pause)
            pause = min(1.0, pause * 2)
    if as_json:
        print_json({"InvokeId": invoke_id, "InvokeInstances": found})
    else:
        columns = ["Instance", "Status", "Error", "Finished"]
        rows = [
            [str(r.get(k) or "") for k in ("InstanceId", "InvocationStatus", "ErrorInfo", "FinishTime")] for r in found
        ]
        show(f"{invoke_id}  {source.name} → {target_dir}", columns, rows, status_column=1)
        click.echo(summary(found), err=True)
    if any(r.get("InvocationStatus") != "Success" for r in found):
        sys.exit(EXIT_FAILED)

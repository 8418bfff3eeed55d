"""`cloudassist run`: RunCommand on instances or tags, a live per-instance table while it runs, the output at the
end, and an exit status that says whether every instance succeeded; `cloudassist stop`: StopInvocation."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn

import click
from rich.console import Console
from rich.live import Live

from cloudassist.cli.client import Client
from cloudassist.cli.connection import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    api_errors,
    api_options,
    client,
    print_json,
)
from cloudassist.cli.render import decoded, headline, make_table, print_outputs, summary
from cloudassist.domain.statuses import TERMINAL

__all__ = ["fetch_results", "pairs", "run", "stop", "tags_option", "wait"]

#: Short names for --type, besides the API's own.
TYPES = {
    "shell": "RunShellScript",
    "python": "RunPythonScript",
    "perl": "RunPerlScript",
    "bat": "RunBatScript",
    "powershell": "RunPowerShellScript",
}
RESULTS_PATH = ("Invocation", "InvocationResults", "InvocationResult")
_OUTPUT_TAIL = 60


def pairs(values: Sequence[str], what: str) -> list[dict[str, str]]:
    """`k=v` strings as `[{"Key": k, "Value": v}]` (a value may be empty: `k=`)."""
    found = []
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=what)
        found.append({"Key": key, "Value": text})
    return found


def tags_option(flag: str, dest: str, text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(flag, dest, multiple=True, metavar="KEY=VALUE", help=text)


def fetch_results(api: Client, invoke_id: str, **filters: object) -> list[dict[str, Any]]:
    """Every execution of a task (all pages), its Output decoded to text."""
    params = {"InvokeId": invoke_id, "ContentEncoding": "Base64", "MaxResults": 50, **filters}
    results = list(api.items("DescribeInvocationResults", params, RESULTS_PATH))
    for result in results:
        result["Output"] = decoded(result.get("Output"))
    return results


def _elapsed(result: dict[str, Any]) -> str:
    start, end = str(result.get("StartTime") or ""), str(result.get("FinishedTime") or "")
    return f"{start[11:19]}–{end[11:19]}" if start and end else start[11:19]


def _row(result: dict[str, Any]) -> list[str]:
    status = str(result.get("InvocationStatus", ""))
    exit_code = str(result.get("ExitCode", "")) if status in TERMINAL else ""
    lines = str(result.get("Output") or "").rstrip("\n").splitlines()
    last = lines[-1] if lines else ""
    tail = last if len(last) <= _OUTPUT_TAIL else "…" + last[-_OUTPUT_TAIL:]
    error = str(result.get("ErrorCode") or "")
    return [str(result.get("InstanceId", "")), status, exit_code, _elapsed(result), tail or error]


def _table(invoke_id: str, results: list[dict[str, Any]]) -> Any:
    done = sum(1 for r in results if r.get("InvocationStatus") in TERMINAL)
    title = f"{invoke_id}  {done}/{len(results)} done"
    columns = ["Instance", "Status", "Exit", "Time (UTC)", "Output (last line) / error"]
    return make_table(title, columns, [_row(r) for r in results], status_column=1)


def _finished(results: list[dict[str, Any]]) -> bool:
    return bool(results) and all(r.get("InvocationStatus") in TERMINAL for r in results)


def wait(api: Client, invoke_id: str, *, live: bool, interval: float) -> list[dict[str, Any]]:
    """Poll the task's executions until every one is terminal: a live table on the terminal (`live`), else a line
    on stderr per instance each time its status changes. Polls quickly at first, then every `interval` s."""
    pause = min(0.1, interval)
    if live:
        with Live(_table(invoke_id, []), console=Console(), refresh_per_second=8, transient=False) as board:
            while True:
                results = fetch_results(api, invoke_id)
                board.update(_table(invoke_id, results))
                if _finished(results):
                    return results
                time.sleep(pause)
                pause = min(interval, pause * 2)
    seen: dict[str, str] = {}
    while True:
        results = fetch_results(api, invoke_id)
        for result in results:
            instance, status = str(result.get("InstanceId", "")), str(result.get("InvocationStatus", ""))
            if seen.get(instance) != status:
                seen[instance] = status
                click.echo(headline(result), err=True)
        if _finished(results):
            return results
        time.sleep(pause)
        pause = min(interval, pause * 2)


def _content(command: tuple[str, ...], script: IO[bytes] | None) -> bytes:
    if script is not None and command:
        raise click.UsageError("give the command either as arguments or with --file, not both")
    if script is not None:
        return script.read()
    if not command:
        raise click.UsageError("no command: give it as arguments (after --) or with --file PATH (- for stdin)")
    return " ".join(command).encode("utf-8")


def interrupted(invoke_id: str) -> NoReturn:
    """Ctrl-C: exit status 130 and what became of the task, which goes on (or may have started, when RunCommand
    had not answered yet)."""
    if invoke_id:
        click.echo(f"\ninterrupted; {invoke_id} goes on (`cloudassist stop {invoke_id}` stops it)", err=True)
    else:
        click.echo(
            "\ninterrupted before RunCommand answered; the task may have started (`cloudassist invocations` "
            "lists the tasks)",
            err=True,
        )
    sys.exit(EXIT_INTERRUPTED)


@click.command(context_settings={"show_default": True})
@click.argument("command", nargs=-1)
@click.option("-i", "--instance", "instances", multiple=True, metavar="ID", help="Instance to run on (repeatable).")
@tags_option("--tag", "tags", "Run on the instances with this tag (repeatable; ResourceTag).")
@click.option("-f", "--file", "script", type=click.File("rb"), help="Read the command from a file (- for stdin).")
@click.option(
    "-t",
    "--type",
    "kind",
    default="RunShellScript",
    help="RunShellScript, RunPythonScript, RunPerlScript, RunBatScript, RunPowerShellScript, or shell|python|"
    "perl|bat|powershell.",
)
@click.option("--timeout", type=click.IntRange(min=1), help="Seconds before the command is stopped [API: 60].")
@click.option("--workdir", "working_dir", help="Working directory on the instance.")
@click.option("--user", "username", help="User to run as [root].")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A {{NAME}} value (repeatable).")
@click.option(
    "--enable-parameter", is_flag=True, help="Substitute {{…}} (built-ins such as {{ACS::InstanceId}}) without -p."
)
@click.option(
    "--repeat-mode",
    type=click.Choice(["Once", "Period", "NextRebootOnly", "EveryReboot", "DryRun"]),
    help="When to run [Once; Period with --frequency].",
)
@click.option("--frequency", help="Schedule of a Period task: rate(5m), at(...), or a cron expression.")
@click.option("--name", help="Name of the command.")
@click.option("--description", help="Description of the command.")
@click.option("--keep-command", is_flag=True, help="Keep the command for InvokeCommand afterwards.")
@click.option("--termination-mode", type=click.Choice(["Process", "ProcessTree"]), help="What a stop kills.")
@click.option("--client-token", help="Idempotency token: a retry with the same token starts nothing new.")
@tags_option("--task-tag", "task_tags", "Tag the task itself (repeatable; Tag).")
@click.option("--no-wait", is_flag=True, help="Print the InvokeId and return at once.")
@click.option(
    "-o",
    "--output",
    "mode",
    type=click.Choice(["text", "json", "none"]),
    default="text",
    help="At the end: each instance's output; the results as JSON; or nothing (the exit status says it).",
)
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, help="Seconds between polls.")
@api_options
def run(
    command: tuple[str, ...],
    instances: tuple[str, ...],
    tags: tuple[str, ...],
    script: IO[bytes] | None,
    kind: str,
    timeout: int | None,
    working_dir: str | None,
    username: str | None,
    params: tuple[str, ...],
    enable_parameter: bool,
    repeat_mode: str | None,
    frequency: str | None,
    name: str | None,
    description: str | None,
    keep_command: bool,
    termination_mode: str | None,
    client_token: str | None,
    task_tags: tuple[str, ...],
    no_wait: bool,
    mode: str,
    interval: float,
) -> None:
    """Run COMMAND on instances (-i) or on every instance with a tag (--tag), and show its progress and output.

    \b
      cloudassist run -i mi-0123 -i mi-4567 -- uname -a
      cloudassist run --tag env=prod -f deploy.sh --timeout 600 -p version=1.2
      echo 'df -h' | cloudassist run -i mi-0123 -f -

    Exit status: 0 every instance succeeded; 3 at least one did not (Failed, Timeout, Error, Invalid, Aborted,
    Cancelled, Terminated); 1 the API refused the call; 2 bad usage; 130 interrupted (the task goes on).
    A scheduled task (--frequency, or a repeat mode other than Once) is not waited for: its InvokeId is printed.
    """
    if not instances and not tags:
        raise click.UsageError("say where to run: -i/--instance ID or --tag KEY=VALUE")
    content = _content(command, script)
    values = {p["Key"]: p["Value"] for p in pairs(params, "--param")}
    if frequency and repeat_mode is None:
        repeat_mode = "Period"
    request: dict[str, object] = {
        "Type": TYPES.get(kind.lower(), kind),
        "CommandContent": base64.b64encode(content).decode("ascii"),
        "ContentEncoding": "Base64",
        "InstanceId": list(instances) or None,
        "ResourceTag": pairs(tags, "--tag") or None,
        "Timeout": timeout,
        "WorkingDir": working_dir,
        "Username": username,
        "Parameters": values or None,
        "EnableParameter": True if values or enable_parameter else None,
        "RepeatMode": repeat_mode,
        "Frequency": frequency,
        "Name": name,
        "Description": description,
        "KeepCommand": True if keep_command else None,
        "TerminationMode": termination_mode,
        "ClientToken": client_token,
        "Tag": pairs(task_tags, "--task-tag") or None,
    }
    api = client()
    invoke_id = ""
    try:
        with api_errors():
            answer = api.call("RunCommand", request)
            invoke_id = str(answer.get("InvokeId", ""))
            if no_wait or repeat_mode not in (None, "Once"):
                if mode == "json":
                    print_json({"InvokeId": invoke_id, "CommandId": answer.get("CommandId")})
                else:
                    click.echo(invoke_id)
                return
            results = wait(api, invoke_id, live=mode == "text" and sys.stdout.isatty(), interval=interval)
    except KeyboardInterrupt:
        interrupted(invoke_id)
    if mode == "json":
        print_json({"InvokeId": invoke_id, "InvocationResults": results})
    elif mode == "text":
        print_outputs(results)
        click.echo(f"{summary(results)}  ({invoke_id})", err=True)
    if any(r.get("InvocationStatus") != "Success" for r in results):
        sys.exit(EXIT_FAILED)


@click.command()
@click.argument("invoke_id")
@click.option("-i", "--instance", "instances", multiple=True, metavar="ID", help="Stop on these instances only.")
@api_options
def stop(invoke_id: str, instances: tuple[str, ...]) -> None:
    """Stop a running or scheduled task (StopInvocation), on every instance or on those given."""
    with api_errors():
        answer = client().call("StopInvocation", {"InvokeId": invoke_id, "InstanceId": list(instances) or None})
    click.echo(f"stopping {invoke_id} ({answer.get('RequestId', '')})")

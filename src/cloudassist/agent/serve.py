"""Running the agent in this process: `run()`, and `main()`, which `python -m cloudassist.agent` runs.

`agent run` stays resident, so what it imports stays in its memory: click and the `cloudassist` command
line cost about 1.3 MB for a command line read once. `main()` reads a plain `run [--state-dir D]
[--log-level L] [--max-concurrent N]` itself and runs the agent without loading click; anything else (another
command, --help, a value click would refuse, an option it does not know) goes to the click command
(agent/cli.py), so that help, messages and exit statuses are click's, as before. The systemd unit
(deploy/) and `cloudassist up` start the agent this way; `cloudassist agent run` does the same through
click.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cloudassist.agent import identity as ident
from cloudassist.agent.runner import Agent, AgentBusy, unwritable
from cloudassist.agent.transport import limit_tls_read_buffer

STATE_DIR_ENV = "CLOUDASSIST_AGENT_STATE_DIR"
SESSION_ALLOW_ROOT_ENV = "CLOUDASSIST_AGENT_SESSION_ALLOW_ROOT"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_CONCURRENT = (1, 1000)  #: the range --max-concurrent accepts
DEFAULT_MAX_CONCURRENT = 10


class Refused(Exception):
    """The agent cannot run here: not registered, an unusable identity, or another agent on the state directory."""


#: While the state directory cannot be written: seconds between checks, and between log lines saying so.
WRITABLE_CHECK_SECONDS = 10.0
WRITABLE_LOG_SECONDS = 600.0


async def _writable(state_dir: Path, stop: asyncio.Event) -> bool:
    """Wait until the agent can write its state directory (it journals every task before running it): say why
    not, once at first and then every WRITABLE_LOG_SECONDS, rather than exiting into a restart loop. False if
    asked to stop meanwhile."""
    logged = -math.inf
    while (problem := unwritable(state_dir)) is not None:
        now = time.monotonic()
        if now - logged >= WRITABLE_LOG_SECONDS:
            logging.getLogger("cloudassist.agent").error(
                "state directory %s cannot be written (%s): no task can be journaled, so none is taken; "
                "checking again every %.0f s", state_dir, problem, WRITABLE_CHECK_SECONDS)
            logged = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WRITABLE_CHECK_SECONDS)
        if stop.is_set():
            return False
    if logged > -math.inf:
        logging.getLogger("cloudassist.agent").info("state directory %s can be written again; starting", state_dir)
    return True


async def _serve(identity: ident.Identity, state_dir: Path, max_concurrent: int, allow_root: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not await _writable(state_dir, stop):
        return
    agent = Agent(identity, state_dir, max_concurrent=max_concurrent, session_allow_root=allow_root)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    await agent.run()


def run(
    state_dir: Path,
    log_level: str = "info",
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    session_allow_root: bool | None = None,
) -> None:
    """Run the agent of `state_dir` until SIGTERM or SIGINT (see `agent run --help`); Refused if it cannot.
    `session_allow_root` None: SESSION_ALLOW_ROOT_ENV decides (Session Manager shells as root, off by default)."""
    if session_allow_root is None:
        session_allow_root = os.environ.get(SESSION_ALLOW_ROOT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    try:
        identity = ident.load(state_dir)
    except ident.IdentityError as exc:
        raise Refused(str(exc)) from None
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_tls_read_buffer()
    try:
        asyncio.run(_serve(identity, state_dir, max_concurrent, session_allow_root))
    except AgentBusy as exc:
        raise Refused(str(exc)) from None


def plain_run(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Path, str, int] | None:
    """(state directory, log level, max concurrent) when `argv` is `run` with only its three options (each as
    `--name value` or `--name=value`, the last one given counting) and values the click command takes as they
    are; None for anything else, which the click command is to handle."""
    if not argv or argv[0] != "run":
        return None
    values: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name not in ("--state-dir", "--log-level", "--max-concurrent"):
            return None
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        values[name] = value
    state_dir = Path(values.get("--state-dir") or environ.get(STATE_DIR_ENV) or ident.DEFAULT_STATE_DIR)
    log_level = values.get("--log-level", "info")
    count = values.get("--max-concurrent", str(DEFAULT_MAX_CONCURRENT))
    low, high = MAX_CONCURRENT
    if (state_dir.exists() and not state_dir.is_dir()) or log_level not in LOG_LEVELS or not count.isdigit():
        return None
    if not low <= int(count) <= high:
        return None
    return state_dir, log_level, int(count)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m cloudassist.agent …`: a plain `run` here, anything else through the click command."""
    args = list(sys.argv[1:] if argv is None else argv)
    found = plain_run(args, os.environ)
    if found is None:
        from cloudassist.agent.cli import agent

        agent.main(args, prog_name="python -m cloudassist.agent")  # exits
    try:
        run(*found)
    except Refused as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)

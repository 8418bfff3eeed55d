"""The agent's main loop: heart-beats, the kick websocket, task fetching, running tasks and reporting them.

Work is learned by pulling the task list: at startup, on every `kick_vm…`, on every (re)connection of the
websocket, and after every heart-beat that says `newTasks` (so a lost kick costs one heart-beat at most).
A task seen twice runs once (in memory while it runs, through the journal across restarts). Every report
goes through the durable spool, in order.

Decisions:
* only `repeat: Once` tasks run for now; scheduled modes are logged and left alone (nothing reported);
* at most `max_concurrent` tasks run at once; more wait in memory for a slot (accepted in the journal);
* output is streamed as head chunks (<= 2048 B a tick; the tick is `output.interval`, >= 1 s); empty
  "still running" posts go once a minute and only while the spool is empty: liveness comes from the
  heart-beats, and an outage must not fill the spool with empty posts;
* on `request_stop()` (SIGTERM/SIGINT) the agent stops fetching, kills running tasks (per their
  TerminationMode) and reports them `error?errCode=ExecutionInterrupted` (never lose a result, never
  pretend the user stopped it), tries for `shutdown_grace` seconds to flush the spool, and returns;
  what is left is sent at the next start. Tasks still waiting for a slot report nothing: the journal
  forgets them at the next start and the server sends them again if they are still wanted;
* at startup, runs the journal shows started but never finished are reported ExecutionInterrupted, never
  run again; a leftover process of such a run (same pid and start time) is killed first.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudassist.agent import proctree
from cloudassist.agent.client import RunOrder, ServerClient, heartbeat_interval, ms, parse_kick, truncate
from cloudassist.agent.executor import Execution, Outcome, TaskSpec, live_shell_pids, remove_stale_script_dirs
from cloudassist.agent.identity import Identity, cold_start
from cloudassist.agent.journal import Journal
from cloudassist.agent.output import OutputBuffer
from cloudassist.agent.spool import Backoff, Spool, SpoolSender

log = logging.getLogger("cloudassist.agent")
CHUNK_BYTES = 2048
KEEPALIVE_SECONDS = 60.0
REAP_SECONDS, IDLE_REAP_SECONDS = 2.0, 30.0
Key = tuple[str, int]


def private_dir(path: Path) -> Path:
    """`path` as a directory only we own and only we may change (others may traverse it, 0711).

    It lives in a shared temporary directory, so someone else may have made it first: then a fresh,
    randomly named one is used instead of trusting theirs.
    """
    try:
        path.mkdir(mode=0o711, exist_ok=True)
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022:
            path.chmod(0o711)
            return path
    except OSError:
        pass
    fresh = Path(tempfile.mkdtemp(prefix=f"{path.name}-"))
    fresh.chmod(0o711)
    return fresh


@dataclass(eq=False)
class Run:
    """One accepted task on this agent."""

    task_id: str
    version: int
    spec: TaskSpec
    buffer: OutputBuffer
    interval: float
    future: asyncio.Task[None] | None = None
    execution: Execution | None = None
    start: float | None = None  #: time.time() the process was seen started
    sent: int = 0  #: output bytes spooled so far: the outputOffset of the next report
    lost: int = 0  #: output bytes of chunks a full spool refused (added to `dropped`)
    stop_requested: bool = False  #: the server asked for a stop
    interrupted: bool = False  #: the agent is shutting down

    def query(self, **extra: object) -> dict[str, str]:
        q = {"taskId": self.task_id, "invokeVersion": str(self.version)}
        if self.start is not None:
            q["start"] = ms(self.start)
        q.update({k: str(v) for k, v in extra.items()})
        return q


class AgentBusy(Exception):
    """Another agent process holds this state directory."""


class Agent:
    """One registered agent, serving until `request_stop()`."""

    def __init__(
        self,
        identity: Identity,
        state_dir: Path,
        *,
        client: ServerClient | None = None,
        max_concurrent: int = 10,
        shutdown_grace: float = 5.0,
    ) -> None:
        self.identity = identity
        self.state_dir = state_dir
        #: Script files of this agent's runs (each run gets a private directory inside it); per agent, so
        #: that several agents on one machine never clear each other's.
        self.script_dir = private_dir(Path(tempfile.gettempdir()) / f"cloudassist-agent-{identity.instance_id}")
        self.client = client or ServerClient(identity)
        self.journal = Journal(state_dir / "journal")
        self.spool = Spool(state_dir / "spool")
        self.sender = SpoolSender(self.spool, self.client.report)
        self.shutdown_grace = shutdown_grace
        self.cold_start = False
        self._slots = asyncio.Semaphore(max_concurrent)
        self._runs: dict[Key, Run] = {}
        self._stop = asyncio.Event()
        self._fetch = asyncio.Event()
        self._fetch_task: str | None = None
        self._skipped: set[Key] = set()
        self._stops_sent: set[Key] = set()
        self._last_activity = 0.0

    def request_stop(self) -> None:
        """Shut down (call from the event loop's thread, e.g. from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until request_stop(), then shut down as the module docstring says. AgentBusy if another
        agent process uses the same state directory."""
        lock = os.open(self.state_dir / "agent.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AgentBusy(f"another agent is running with state directory {self.state_dir}") from None
            await self._serve()
        finally:
            os.close(lock)
            await self.client.aclose()

    async def _serve(self) -> None:
        proctree.become_subreaper()
        self.cold_start = cold_start(self.state_dir)
        self._recover()
        log.info(
            "agent %s serving %s (cold start: %s, %d report(s) spooled)",
            self.identity.instance_id,
            self.identity.server,
            self.cold_start,
            len(self.spool),
        )
        self._fetch.set()  # reason=startup
        loops = [
            asyncio.create_task(c) for c in (self._heartbeats(), self._websocket(), self._fetcher(), self._reaper())
        ]
        sender = asyncio.create_task(self.sender.run())
        await self._stop.wait()
        log.info("stopping: %d task(s) to interrupt", len(self._runs))
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        runs = list(self._runs.values())
        for run in runs:
            run.interrupted = True
            if run.execution is not None:
                run.execution.stop()
            elif run.future is not None:
                run.future.cancel()
        await asyncio.gather(*(r.future for r in runs if r.future is not None), return_exceptions=True)
        if not await self.sender.flush(self.shutdown_grace):
            log.warning("%d report(s) left in the spool; they are sent at the next start", len(self.spool))
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    def _recover(self) -> None:
        """Report runs a previous agent process never finished; forget accepted runs that never started."""
        self.journal.discard_partial_writes()
        self.spool.discard_partial_writes()
        for entry in self.journal.interrupted():
            if (pid := entry.leftover_pid()) is not None:
                log.warning("killing leftover process %d of interrupted task %s", pid, entry.task_id)
                proctree.kill_tree(pid, marker=entry.marker)
            self.spool.put("error", entry.interrupted_report(time.time()), b"", final=True)
            self.journal.done(entry.task_id, entry.invoke_version, "error")
            log.warning("task %s (v%d) was interrupted by an agent restart", *entry.key)
        self.journal.forget_unstarted()
        self.journal.prune()
        remove_stale_script_dirs(self.script_dir)

    def request_fetch(self, task_id: str | None = None) -> None:
        """Fetch the task list soon; requests coalesce (a task id is passed only when it is the only one)."""
        self._fetch_task = task_id if not self._fetch.is_set() else None
        self._fetch.set()

    async def _heartbeats(self) -> None:
        first, failures = True, Backoff(5.0, 55.0)
        while True:
            try:
                reply = await self.client.heart_beat(first=first, cold_start=self.cold_start)
            except Exception as exc:
                delay = failures.next()
                log.info("heart-beat failed (%s: %s); again in %.0f s", type(exc).__name__, exc, delay)
            else:
                first = False
                failures.reset()
                self.sender.retry_now()
                if reply.get("newTasks") is True:
                    self.request_fetch()
                delay = heartbeat_interval(reply.get("nextInterval"))
            await asyncio.sleep(delay)

    async def _websocket(self) -> None:
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                async with await self.client.notify_socket() as ws:
                    log.info("kick channel connected")
                    backoff.reset()
                    self.sender.retry_now()
                    self.request_fetch()  # kicks sent while we were away are lost: look for ourselves
                    async for message in ws:
                        if isinstance(message, str):
                            await ws.send(self.on_kick(message))
            except Exception as exc:
                log.info("kick channel lost (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(backoff.next())

    def on_kick(self, message: str) -> str:
        """Handle one websocket text message; the reply to send back."""
        reply, fetch, task_id = parse_kick(message)
        if fetch:
            self.request_fetch(task_id)
        return reply

    async def _fetcher(self) -> None:
        reason = "startup"
        while True:
            await self._fetch.wait()
            self._fetch.clear()
            task_id, self._fetch_task = self._fetch_task, None
            for attempt in range(3):
                try:
                    reply = await self.client.task_list(
                        reason, task_id, cold_start=self.cold_start if reason == "startup" else None
                    )
                except Exception as exc:
                    log.info("task list failed (%s: %s)", type(exc).__name__, exc)
                    if attempt < 2:
                        await asyncio.sleep(2)
                    continue
                reason = "kickoff"
                self.sender.retry_now()
                try:
                    self.dispatch(reply)
                except Exception:  # a full disk, say: keep the agent alive; the list comes again
                    log.exception("could not act on the task list")
                break

    async def _reaper(self) -> None:
        """Reap orphans reparented to us (a subreaper). A zombie is reaped only when seen on two passes, so a
        shell that asyncio is about to wait for is never taken from it."""
        seen: set[int] = set()
        while True:
            busy = self._runs or seen or time.monotonic() - self._last_activity < 60
            await asyncio.sleep(REAP_SECONDS if busy else IDLE_REAP_SECONDS)
            me = os.getpid()
            try:
                zombies = {p.pid for p in proctree.table().values() if p.ppid == me and p.state == "Z"}
                proctree.reap_orphans(set(live_shell_pids()) | (zombies - seen))
            except OSError as exc:
                log.warning("reaping failed: %s", exc)
                zombies = set()
            seen = zombies

    def dispatch(self, reply: dict[str, Any]) -> None:
        """Act on a task list: its stop entries first, then its run entries."""
        for entry in reply.get("stop") or []:
            try:
                task = entry["task"]
                self._stop_task(str(task["taskID"]), int(task.get("invokeVersion", 1)))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("malformed stop entry (%s): %.300r", exc, entry)
        for entry in reply.get("run") or []:
            try:
                self._accept(RunOrder.parse(entry))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("malformed run entry (%s): %.300r", exc, entry)

    def _accept(self, order: RunOrder) -> None:
        key = order.key
        if key in self._runs or key in self._skipped:
            return
        if order.repeat != "Once":
            self._skipped.add(key)
            log.warning("task %s: repeat mode %s is not supported yet; not run", key[0], order.repeat)
            return
        if not self.journal.accept(*key):
            return  # ran, or was reported, already: never twice
        try:
            content = order.content()
        except ValueError as exc:
            self._final_error(key, "InvalidCommandContent", str(exc))
            return
        spec = TaskSpec(
            task_id=order.task_id,
            command_type=order.command_type,
            content=content,
            timeout=order.timeout,
            working_dir=order.working_dir,
            username=order.username,
            termination_mode=order.termination_mode,
            script_dir=self.script_dir,
        )
        half = order.log_quota // 2
        run = Run(key[0], key[1], spec, OutputBuffer(head=half, tail=order.log_quota - half), order.interval)
        self._runs[key] = run
        self._last_activity = time.monotonic()
        run.future = asyncio.create_task(self._execute(run))
        log.info("task %s (v%d) accepted", *key)

    def _put(self, kind: str, query: dict[str, str], body: bytes, *, final: bool) -> bool:
        spooled = self.spool.put(kind, query, body, final=final) is not None
        self.sender.notify()
        return spooled

    def _final_error(self, key: Key, code: str, desc: str) -> None:
        query = {"taskId": key[0], "invokeVersion": str(key[1]), "errCode": code, "errDesc": truncate(desc)}
        self._put("error", query, b"", final=True)
        self.journal.done(*key, "error")

    def _cancelled(self, run: Run) -> None:
        """A run stopped by the server before it started: `stopped` without a start (the server: Cancelled)."""
        self._put("stopped", run.query(end=ms(time.time()), exitcode=0, dropped=0, result="killed"), b"", final=True)
        self.journal.done(run.task_id, run.version, "stopped")

    async def _execute(self, run: Run) -> None:
        key = (run.task_id, run.version)
        try:
            async with self._slots:
                if run.stop_requested:
                    self._cancelled(run)
                    return
                self.journal.start(*key, time.time())  # durable BEFORE the process exists
                run.execution = Execution(run.spec, run.buffer)
                outcome = await self._stream(run, asyncio.ensure_future(run.execution.run()))
                self._report(run, outcome)
        except asyncio.CancelledError:
            if run.execution is not None:
                raise
            if run.stop_requested and not run.interrupted:
                self._cancelled(run)
        except Exception:
            log.exception("task %s failed in the agent", run.task_id)
            try:
                self._final_error(key, "ExecutionException", "the agent failed while running the task")
            except OSError:
                log.exception("task %s: its error report cannot be spooled either", run.task_id)
        finally:
            self._last_activity = time.monotonic()
            self._runs.pop(key, None)

    def _started(self, run: Run, when: float) -> None:
        """The process exists: journal its pid and post the empty "started" report."""
        run.start = when
        pid = run.execution.pid if run.execution is not None else None
        if pid is not None:
            info = proctree.stat(pid)
            marker = run.execution.marker if run.execution is not None else ""
            self.journal.set_process(run.task_id, run.version, pid, info.starttime if info else None, marker)
        self._put("running", run.query(outputOffset=0), b"", final=False)

    def _chunk(self, run: Run, data: bytes) -> None:
        if self._put("running", run.query(outputOffset=run.sent), data, final=False):
            run.sent += len(data)
        else:
            run.lost += len(data)

    async def _stream(self, run: Run, future: asyncio.Future[Outcome]) -> Outcome:
        """Wait for the run, posting "started" and then head chunks every tick; its Outcome."""
        loop = asyncio.get_running_loop()
        last_post = tick = loop.time()
        while not future.done():
            if run.start is None and run.execution is not None and run.execution.started:
                self._started(run, time.time())
                tick = last_post = loop.time()
            wait = 0.02 if run.start is None else max(0.0, tick + run.interval - loop.time())
            await asyncio.wait({future}, timeout=wait)
            if run.start is None or future.done() or loop.time() < tick + run.interval:
                continue
            tick = loop.time()
            chunk = run.buffer.take_head_chunk(CHUNK_BYTES)
            if chunk or (tick - last_post >= KEEPALIVE_SECONDS and not len(self.spool)):
                self._chunk(run, chunk)
                last_post = tick
        outcome = future.result()
        if run.start is None and outcome.started_at is not None:
            self._started(run, outcome.started_at)  # it ended before we saw it start
        return outcome

    def _report(self, run: Run, outcome: Outcome) -> None:
        """Spool the one final report of a run, then mark it done in the journal."""
        dropped = outcome.dropped + run.lost
        extra: dict[str, object]
        if outcome.kind == "stopped" and run.interrupted:
            kind, extra = (
                "error",
                {"errCode": "ExecutionInterrupted", "errDesc": "the agent was shut down while the task ran"},
            )
        elif outcome.kind == "stopped":
            kind, extra = "stopped", {"exitcode": outcome.exit_code, "dropped": dropped, "result": "killed"}
        elif outcome.kind in ("finished", "timeout"):
            kind = "finish" if outcome.kind == "finished" else "timeout"
            extra = {"exitCode": outcome.exit_code, "dropped": dropped}
        elif outcome.kind == "invalid":
            kind, extra = "invalid", {"param": outcome.invalid_param, "value": truncate(outcome.error)}
        else:
            kind, extra = "error", {"errCode": "ExecutionException", "errDesc": truncate(outcome.error)}
        query = run.query(end=ms(outcome.ended_at), outputOffset=run.sent, **extra)
        self._put(kind, query, outcome.output, final=True)
        self.journal.done(run.task_id, run.version, kind, outcome.ended_at)
        log.info("task %s (v%d) ended: %s, exit code %d", run.task_id, run.version, kind, outcome.exit_code)

    def _stop_task(self, task_id: str, version: int) -> None:
        """A `stop` entry: stop the run here, or (stop is idempotent) confirm one we do not have."""
        run = self._runs.get((task_id, version)) or next((r for r in self._runs.values() if r.task_id == task_id), None)
        if run is not None:
            run.stop_requested = True
            if run.execution is not None:
                run.execution.stop()
            elif run.future is not None:
                run.future.cancel()
            return
        if (task_id, version) in self._stops_sent:
            return
        self._stops_sent.add((task_id, version))
        if self.journal.accept(task_id, version):  # never seen here: it must not start later either
            self.journal.done(task_id, version, "stopped")
        self._put(
            "stopped",
            {
                "taskId": task_id,
                "invokeVersion": str(version),
                "end": ms(time.time()),
                "exitcode": "0",
                "dropped": "0",
                "result": "killed",
            },
            b"",
            final=True,
        )

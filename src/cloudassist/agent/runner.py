"""The agent's main loop: heart-beats, the kick websocket, task fetching, running tasks and reporting them.

Work is learned by pulling the task list: at startup, on every `kick_vm…`, on every (re)connection of the
websocket, and after every heart-beat that says `newTasks` (so a lost kick costs one heart-beat at most).
A task seen twice runs once (in memory while it runs, through the journal across restarts). Every report
goes through the durable spool, in order.

Decisions:
* `Once` and the reboot modes run once when listed: `NextRebootOnly` like Once (the journal keeps it
  from running twice); `EveryReboot` once per agent process (the server lists it only on the start-up
  fetch of a cold start, so once per boot), journaled like a scheduled run;
* `Period`, `Rate` and `At` tasks are schedules (scheduler.py) that live in memory and are re-learned from
  every start-up fetch: each tick runs the task without streaming output and reports `running` then
  `finish|timeout|error` with `currentTime` (Period: also `offset` and `timeZone`), as the official
  agent (Part 2 §4.4). A run is journaled in `schedules/` (one entry per task version, rewritten per
  run), so a run cut short by an agent restart is reported ExecutionInterrupted, never lost. No next
  run → `stopped?result=completed`; an expression that cannot be read → `invalid?param=cron`
  (`InvalidCronExpression`, `InvalidRateExpression`, `InvalidAtExpression`), an `at()` that passed
  before it ever ran here → `AtExpressionExpired`. A stop cancels the schedule (and stops its run);
  a higher `invokeVersion` replaces it (and a higher one that is invalid or expired ends it); the same
  version again changes nothing; a run whose outcome ends the task on the server (`invalid`: a missing
  working directory or user) ends its schedule too;
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
  run again; a leftover process of such a run (same pid and start time) is killed first. One whose final
  report is in the spool already (the agent died between spooling it and journaling it) is only marked done.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudassist.agent import keys, proctree
from cloudassist.agent.client import (
    RunOrder,
    ServerClient,
    _time_zone,
    _zone_name,
    heartbeat_interval,
    ms,
    parse_kick,
    truncate,
)
from cloudassist.agent.executor import Execution, Outcome, TaskSpec, live_shell_pids, remove_stale_script_dirs
from cloudassist.agent.identity import Identity, cold_start
from cloudassist.agent.journal import Entry, Journal
from cloudassist.agent.output import OutputBuffer
from cloudassist.agent.scheduler import SCHEDULED_MODES, Schedule, Scheduler, local_zone
from cloudassist.agent.spool import Backoff, Item, Spool, SpoolSender

if TYPE_CHECKING:
    from cloudassist.agent.session import Sessions

log = logging.getLogger("cloudassist.agent")
CHUNK_BYTES = 2048
KEEPALIVE_SECONDS = 60.0
REAP_SECONDS, IDLE_REAP_SECONDS = 2.0, 30.0
Key = tuple[str, int]
#: `invalid?param=cron&value=…` of an expression this agent cannot read, by `repeat`.
BAD_EXPRESSION = {"Period": "InvalidCronExpression", "Rate": "InvalidRateExpression", "At": "InvalidAtExpression"}
#: Outcomes (schedule journal) after which a listed schedule version is not scheduled again.
SCHEDULE_ENDED = frozenset({"completed", "invalid", "stopped"})
#: How many task versions `Recent` remembers (stops confirmed, entries skipped): a bound, not a working set.
RECENT_LIMIT = 4096


class Recent:
    """A set that forgets its oldest members beyond `limit` (an LRU: a member seen again is refreshed)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = RECENT_LIMIT if limit is None else limit
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, item: Hashable) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        if item in self._items:
            self._items.move_to_end(item)
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


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
    journal: Journal | None = None  #: where this run is journaled (None: the agent's one-time journal)
    schedule: str = ""  #: Period | Rate | At for a run of a schedule: no streaming, wall-clock params
    end: float | None = None
    began: bool = False  #: `_execute` took its first step (a task cancelled before that never runs it)
    of: Schedule | None = None  #: the schedule that fired this run: told its start and end as it ends

    def query(self, **extra: object) -> dict[str, str]:
        q = {"taskId": self.task_id, "invokeVersion": str(self.version)}
        if self.start is not None:
            q["start"] = ms(self.start)
        q.update({k: str(v) for k, v in extra.items()})
        return q

    def clock(self, now: float) -> dict[str, object]:
        """`currentTime` (and for Period `offset`, `timeZone`) of a scheduled run's reports (Part 2 §4.4)."""
        if not self.schedule:
            return {}
        params: dict[str, object] = {"currentTime": ms(now)}
        if self.schedule == "Period":
            params.update(offset=time.localtime(now).tm_gmtoff, timeZone=_time_zone())
        return params


def _reported(entry: Entry, finals: list[Item]) -> bool:
    """Whether a final report of the journaled run `entry` is in the spool: one of its task version whose
    `start` is not before the run was journaled started (a run's start is taken after that); for a file
    task (written at most once, its reports carry neither version nor start) any report of its task id."""
    from cloudassist.agent.sendfile import JOURNAL_VERSION  # file tasks are rare: loaded when needed

    started = int((entry.started_at or entry.accepted_at) * 1000)
    for item in finals:
        query = item.query
        if query.get("taskId") != entry.task_id:
            continue
        if query.get("taskType") == "sendfile" and entry.invoke_version == JOURNAL_VERSION:
            return True
        if query.get("invokeVersion") == str(entry.invoke_version):
            start = query.get("start", "")
            if start.isdigit() and int(start) >= started:
                return True
    return False


#: The state directory's subdirectories the agent writes (besides the directory itself: its lock).
STATE_SUBDIRS = ("journal", "schedules", "spool")


def unwritable(state_dir: Path) -> str | None:
    """Why the agent cannot write its state directory (read-only, not ours, full), or None if it can: a small
    file is written, synced and removed in it and each subdirectory (made if missing)."""
    for directory in (state_dir, *(state_dir / sub for sub in STATE_SUBDIRS)):
        probe = directory / f".probe-{os.getpid()}.tmp"  # a crash's leftover is removed as a partial write
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as exc:
            return f"{directory}: {exc.strerror or exc}"
    return None


def _entries(reply: dict[str, Any], key: str) -> list[Any]:
    """The `key` list of a task list reply ([] if absent; logged and [] if it is not a list)."""
    found = reply.get(key)
    if found is None:
        return []
    if not isinstance(found, list):
        log.error("task list: %r is not a list (%.300r); ignored", key, found)
        return []
    return found


def _task_id(entry: object) -> str:
    """An entry's taskID, for a log line."""
    task = entry.get("task") if isinstance(entry, dict) else None
    return str(task.get("taskID", "?")) if isinstance(task, dict) else "?"


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
        session_allow_root: bool = False,
    ) -> None:
        self.identity = identity
        self.state_dir = state_dir
        #: Script files of this agent's runs (each run gets a private directory inside it); per agent, so
        #: that several agents on one machine never clear each other's.
        self.script_dir = private_dir(Path(tempfile.gettempdir()) / f"cloudassist-agent-{identity.instance_id}")
        self.client = client or ServerClient(identity)
        self.journal = Journal(state_dir / "journal")
        #: Runs of schedules and of EveryReboot tasks: one entry per task version, rewritten per run.
        self.schedule_journal = Journal(state_dir / "schedules")
        zone_name, started = _zone_name(), time.localtime()  # the zone as it is now, made when first needed
        self.scheduler = Scheduler(self._fire, self._completed, zone_of=lambda: local_zone(zone_name, started))
        self._scheduled: dict[Key, RunOrder] = {}
        self._contents: dict[Key, bytes] = {}
        self._boot_runs: set[Key] = set()
        self.spool = Spool(state_dir / "spool")
        self.sender = SpoolSender(self.spool, self.client.report)
        self.shutdown_grace = shutdown_grace
        self.cold_start = False
        self._slots = asyncio.Semaphore(max_concurrent)
        self._runs: dict[Key, Run] = {}
        self._stop = asyncio.Event()
        self._fetch = asyncio.Event()
        self._fetch_task: str | None = None
        self._refetch: asyncio.TimerHandle | None = None
        self._undone: list[tuple[Journal, Key, str, float]] = []  #: done marks to write when the disk lets us
        self._journal_backoff = Backoff(2.0, 60.0)
        self._skipped = Recent()
        self._stops_sent = Recent()
        self._last_activity = 0.0
        self.session_allow_root = session_allow_root
        self._sessions: Sessions | None = None  #: made (and agent/session.py loaded) by the first session kick

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
        log.info("signing requests with %s", keys.backend(self.identity.private_key))
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
        await self.scheduler.close()
        runs = list(self._runs.values())
        for run in runs:
            run.interrupted = True
            if run.execution is not None:
                run.execution.stop()
            elif run.future is not None:
                run.future.cancel()
        await asyncio.gather(*(r.future for r in runs if r.future is not None), return_exceptions=True)
        if self._sessions is not None:
            await self._sessions.close()
        if not await self.sender.flush(self.shutdown_grace):
            log.warning("%d report(s) left in the spool; they are sent at the next start", len(self.spool))
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    def _recover(self) -> None:
        """Report runs a previous agent process never finished; forget accepted runs that never started."""
        self.journal.discard_partial_writes()
        self.spool.discard_partial_writes()
        self.schedule_journal.discard_partial_writes()
        spooled = [i for i in self.spool.items() if i.final]
        for journal in (self.journal, self.schedule_journal):
            for entry in journal.interrupted():
                if entry.temp:  # a file task's temp file a crash left behind
                    from cloudassist.agent.sendfile import discard_temp

                    discard_temp(entry.temp)
                if _reported(entry, spooled):  # died between spooling the final report and journaling it
                    journal.done(entry.task_id, entry.invoke_version, "spooled")
                    continue
                if (pid := entry.leftover_pid()) is not None:
                    log.warning("killing leftover process %d of interrupted task %s", pid, entry.task_id)
                    proctree.kill_tree(pid, marker=entry.marker)
                self.spool.put("error", entry.interrupted_report(time.time()), b"", final=True)
                journal.done(entry.task_id, entry.invoke_version, "error")
                log.warning("task %s (v%d) was interrupted by an agent restart", *entry.key)
            journal.forget_unstarted()
            journal.prune()
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
                    log.info("kick channel connected (%s)", self.client.server)
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
        words = message.split(" ")
        if len(words) == 4 and words[:2] == ["kick_vm", "session"] and words[2] in ("start", "stop"):
            if self._sessions is None:
                from cloudassist.agent.session import Rules, Sessions  # loaded when the first session comes

                self._sessions = Sessions(self.client, Rules(allow_root=self.session_allow_root))
            self._sessions.kick(words[2], words[3])
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
            busy = self._runs or seen or self._undone or time.monotonic() - self._last_activity < 60
            await asyncio.sleep(REAP_SECONDS if busy else IDLE_REAP_SECONDS)
            self._retry_undone()
            me = os.getpid()
            try:
                zombies = {p.pid for p in proctree.table().values() if p.ppid == me and p.state == "Z"}
                sessions = self._sessions.pids() if self._sessions is not None else set()
                proctree.reap_orphans(set(live_shell_pids()) | sessions | (zombies - seen))
            except OSError as exc:
                log.warning("reaping failed: %s", exc)
                zombies = set()
            seen = zombies

    def dispatch(self, reply: dict[str, Any]) -> None:
        """Act on a task list: its stop entries first, then its run entries. A list that is not a list, or
        an entry that cannot be read, is logged and skipped; the entries after it are still taken."""
        for entry in _entries(reply, "stop"):
            try:
                task = entry["task"]
                self._stop_task(str(task["taskID"]), int(task.get("invokeVersion", 1)))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("malformed stop entry (%s): %.300r", exc, entry)
        for entry in _entries(reply, "file"):  # SendFile: written here and now, at most once (agent/sendfile.py)
            from cloudassist.agent import sendfile  # loaded with the first file task

            try:
                sendfile.handle(entry, self.journal, self._put)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("malformed file entry (%s): %.300r", exc, entry)
            except OSError as exc:  # the journal cannot be written: not taken; listed again later
                self._unjournaled(_task_id(entry), exc)
        for entry in _entries(reply, "run"):
            try:
                self._accept(RunOrder.parse(entry))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("malformed run entry (%s): %.300r", exc, entry)
            except OSError as exc:
                self._unjournaled(_task_id(entry), exc)

    def _accept(self, order: RunOrder) -> None:
        key = order.key
        if key in self._runs or key in self._skipped:
            return
        if order.repeat in SCHEDULED_MODES:
            self._schedule(order)
            return
        journal = self.journal
        if order.repeat == "EveryReboot":
            if key in self._boot_runs:
                return  # once per agent process: the server lists it on a cold start's first fetch only
            self._boot_runs.add(key)
            journal = self.schedule_journal
        elif order.repeat not in ("Once", "NextRebootOnly"):
            self._skipped.add(key)
            log.warning("task %s: repeat mode %s is not supported; not run", key[0], order.repeat)
            return
        elif not self.journal.claim(*key):
            return  # ran, or was reported, already: never twice
        try:
            content = order.content()
        except ValueError as exc:
            self._final_error(key, "InvalidCommandContent", str(exc), journal)
            return
        run = self._new_run(order, content, journal)
        self._start(run)
        log.info("task %s (v%d) accepted", *key)

    def _unjournaled(self, task_id: str, exc: OSError) -> None:
        """A task whose journal entry could not be written: it does not start (nor is it reported: the server
        keeps it Pending and lists it again); the task list is fetched again after a back-off."""
        log.warning("task %s: cannot journal it (%s); not started, the task list is fetched again later", task_id, exc)
        self._refetch_later()

    def _refetch_later(self) -> None:
        """Fetch the task list again after the journal back-off (2 s doubling to 60 s), once per wait."""
        if self._refetch is not None:
            return
        delay = self._journal_backoff.next()

        def fetch() -> None:
            self._refetch = None
            self.request_fetch()

        self._refetch = asyncio.get_running_loop().call_later(delay, fetch)

    def _mark_done(self, journal: Journal, key: Key, outcome: str, ended_at: float | None = None) -> None:
        """Journal a run done; a failed write is logged and left: its final report is spooled (or held in
        memory), and the `started` entry a restart finds is matched to that report or reported interrupted."""
        ended = ended_at if ended_at is not None else time.time()
        try:
            journal.done(*key, outcome, ended)
        except OSError as exc:
            log.error("task %s (v%d): cannot journal it done (%s); tried again later", key[0], key[1], exc)
            self._undone.append((journal, key, outcome, ended))

    def _retry_undone(self) -> None:
        """Journal the runs done whose marks could not be written, oldest first, while writes succeed."""
        while self._undone:
            journal, key, outcome, ended = self._undone[0]
            try:
                journal.done(*key, outcome, ended)
            except OSError:
                return
            self._undone.pop(0)

    def _start(self, run: Run) -> None:
        """Register `run` and start its `_execute` task."""
        self._runs[(run.task_id, run.version)] = run
        self._last_activity = time.monotonic()
        run.future = asyncio.create_task(self._execute(run))
        run.future.add_done_callback(lambda future: self._ended(run, future))

    def _ended(self, run: Run, future: asyncio.Task[None]) -> None:
        """A run's task is over. One cancelled before its first step never ran `_execute` (nor its `finally`):
        forget it here and, if the server stopped it, report it cancelled."""
        if not future.cancelled() or run.began:
            return
        key = (run.task_id, run.version)
        if self._runs.get(key) is run:
            del self._runs[key]
        self._last_activity = time.monotonic()
        if run.stop_requested and not run.interrupted:
            try:
                self._cancelled(run)
            except OSError:
                log.exception("task %s: its cancellation cannot be spooled", run.task_id)

    def _new_run(self, order: RunOrder, content: bytes, journal: Journal, schedule: str = "") -> Run:
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
        buffer = OutputBuffer(head=half, tail=order.log_quota - half)
        return Run(
            order.task_id, order.invoke_version, spec, buffer, order.interval, journal=journal, schedule=schedule
        )

    def _journal(self, run: Run) -> Journal:
        return run.journal if run.journal is not None else self.journal

    def _schedule(self, order: RunOrder) -> None:
        """A Period/Rate/At entry: (re)start its schedule unless this version is scheduled or ended."""
        key = order.key
        current = self.scheduler.get(order.task_id)
        if current is not None and current.version >= order.invoke_version:
            return  # every start-up fetch lists schedules again
        entry = self.schedule_journal.get(*key)
        created = datetime.fromtimestamp(order.created or time.time(), UTC)
        if entry is not None and entry.state == "done" and entry.outcome in SCHEDULE_ENDED:
            self._drop_schedule(current)  # a newer version ended already: the older one must not run on
            return  # its end is reported (or in the spool) already
        created = datetime.fromtimestamp(order.created or time.time(), UTC)
        from cloudassist.domain.schedules import next_run  # loaded once a task has a schedule

        try:
            content = order.content()
        except ValueError as exc:
            self._drop_schedule(current)  # the server ends the task: the older version must not run on
            self._final_error(key, "InvalidCommandContent", str(exc), self.schedule_journal, outcome="invalid")
            return
        try:
            upcoming = next_run(order.cron, after=datetime.now(UTC), created=created, local_zone=self.scheduler.zone)
        except ValueError as exc:
            log.warning("task %s: cannot read schedule %r (%s)", order.task_id, order.cron, exc)
            self._drop_schedule(current)
            self._invalid_schedule(key, BAD_EXPRESSION.get(order.repeat, "InvalidCronExpression"))
            return
        if upcoming is None and order.repeat == "At" and (entry is None or entry.started_at is None):
            self._drop_schedule(current)
            self._invalid_schedule(key, "AtExpressionExpired")
            return
        self._scheduled[key] = order
        self._contents[key] = content
        if current is not None:
            self._scheduled.pop(current.key, None)
            self._contents.pop(current.key, None)
        self.scheduler.add(Schedule(order.task_id, order.invoke_version, order.repeat, order.cron, created))
        log.info("task %s (v%d) scheduled: %s %s, next run %s", *key, order.repeat, order.cron, upcoming)

    def _drop_schedule(self, schedule: Schedule | None) -> None:
        """Stop firing `schedule` (if it is still the scheduled one) and forget its order; a run of it going
        on is left to end and be reported."""
        if schedule is None:
            return
        if self.scheduler.get(schedule.task_id) is schedule:
            self.scheduler.cancel(schedule.task_id)
        self._scheduled.pop(schedule.key, None)
        self._contents.pop(schedule.key, None)
        log.info("task %s (v%d): schedule ended", *schedule.key)

    def _invalid_schedule(self, key: Key, code: str) -> None:
        query = {"taskId": key[0], "invokeVersion": str(key[1]), "param": "cron", "value": code}
        self._put("invalid", query, b"", final=True)
        self._mark_done(self.schedule_journal, key, "invalid")

    async def _fire(self, schedule: Schedule, tick: float) -> None:
        """One tick of a schedule: run the task and wait for its end (its reports are spooled)."""
        order, content = self._scheduled.get(schedule.key), self._contents.get(schedule.key)
        if order is None or content is None or self._stop.is_set():
            return
        if any(r.task_id == schedule.task_id for r in self._runs.values()):
            log.info("task %s: a run is still going; tick skipped", schedule.task_id)
            return
        run = self._new_run(order, content, self.schedule_journal, schedule.repeat)
        run.of = schedule
        self._start(run)
        log.info("task %s (v%d) fired (tick %s)", *schedule.key, ms(tick))
        assert run.future is not None
        await asyncio.wait({run.future})  # a cancelled schedule does not cancel its run
        entry = self.schedule_journal.get(*schedule.key)
        if entry is not None and entry.state == "done" and entry.outcome in SCHEDULE_ENDED:
            self._drop_schedule(schedule)  # e.g. `invalid` (no such working directory): the server ended it

    def _completed(self, schedule: Schedule) -> None:
        """The schedule has no next run: `stopped?result=completed` (the server ends the execution)."""
        extra: dict[str, object] = {"end": ms(schedule.last_end or time.time()), "exitcode": 0, "dropped": 0}
        query = {"taskId": schedule.task_id, "invokeVersion": str(schedule.version)}
        if schedule.last_start is not None:
            query["start"] = ms(schedule.last_start)
        query.update({k: str(v) for k, v in extra.items()}, result="completed")
        self._put("stopped", query, b"", final=True)
        self._mark_done(self.schedule_journal, schedule.key, "completed")
        self._scheduled.pop(schedule.key, None)
        self._contents.pop(schedule.key, None)
        log.info("task %s (v%d): no next run; schedule completed", *schedule.key)

    def _put(self, kind: str, query: dict[str, str], body: bytes, *, final: bool) -> bool:
        spooled = self.spool.put(kind, query, body, final=final) is not None
        self.sender.notify()
        return spooled

    def _final_error(
        self, key: Key, code: str, desc: str, journal: Journal | None = None, outcome: str = "error"
    ) -> None:
        query = {"taskId": key[0], "invokeVersion": str(key[1]), "errCode": code, "errDesc": truncate(desc)}
        self._put("error", query, b"", final=True)
        self._mark_done(journal or self.journal, key, outcome)

    def _cancelled(self, run: Run) -> None:
        """A run stopped by the server before it started: `stopped` without a start (the server: Cancelled)."""
        self._put("stopped", run.query(end=ms(time.time()), exitcode=0, dropped=0, result="killed"), b"", final=True)
        self._mark_done(self._journal(run), (run.task_id, run.version), "stopped")

    async def _execute(self, run: Run) -> None:
        run.began = True
        key = (run.task_id, run.version)
        try:
            async with self._slots:
                if run.stop_requested:
                    self._cancelled(run)
                    return
                try:
                    self._journal(run).start(*key, time.time())  # durable BEFORE the process exists
                except OSError as exc:
                    self._unjournaled(run.task_id, exc)  # nothing ran: it stays `accepted`, to be claimed again
                    return
                self._journal_backoff.reset()
                self._retry_undone()  # the disk takes writes again
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
                self._final_error(key, "ExecutionException", "the agent failed while running the task", run.journal)
            except OSError:
                log.exception("task %s: its error report cannot be spooled either", run.task_id)
        finally:
            self._last_activity = time.monotonic()
            if run.of is not None and run.start is not None:  # before the run is gone from `_runs`
                run.of.last_start, run.of.last_end = run.start, run.end
            self._runs.pop(key, None)

    def _started(self, run: Run, when: float) -> None:
        """The process exists: journal its pid and post the empty "started" report."""
        run.start = when
        pid = run.execution.pid if run.execution is not None else None
        if pid is not None:
            info = proctree.stat(pid)
            marker = run.execution.marker if run.execution is not None else ""
            try:
                self._journal(run).set_process(run.task_id, run.version, pid, info.starttime if info else None, marker)
            except OSError as exc:  # the run goes on; after a crash its leftovers are not recognised by pid
                log.error("task %s: cannot journal its process (%s)", run.task_id, exc)
        self._put("running", run.query(outputOffset=0, **run.clock(when)), b"", final=False)

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
            if run.start is not None and run.schedule:  # scheduled runs do not stream output (§1.8)
                await asyncio.wait({future})
                continue
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
        run.end = outcome.ended_at
        query = run.query(end=ms(outcome.ended_at), outputOffset=run.sent, **extra, **run.clock(outcome.ended_at))
        self._put(kind, query, outcome.output, final=True)
        self._mark_done(self._journal(run), (run.task_id, run.version), kind, outcome.ended_at)
        log.info("task %s (v%d) ended: %s, exit code %d", run.task_id, run.version, kind, outcome.exit_code)

    def _stop_task(self, task_id: str, version: int) -> None:
        """A `stop` entry: stop the run here, or (stop is idempotent) confirm one we do not have. A scheduled
        task's schedule is cancelled: its run going on is stopped (and reported `stopped`), else `stopped`
        carries the last run's start and end (Part 2 §4.4)."""
        schedule = self.scheduler.cancel(task_id)
        if schedule is not None:
            self._scheduled.pop(schedule.key, None)
            self._contents.pop(schedule.key, None)
        run = self._runs.get((task_id, version)) or next((r for r in self._runs.values() if r.task_id == task_id), None)
        if run is None and schedule is not None and (task_id, version) not in self._stops_sent:
            self._stops_sent.add((task_id, version))
            query = {"taskId": task_id, "invokeVersion": str(version)}
            if schedule.last_start is not None:
                query["start"] = ms(schedule.last_start)
            end = schedule.last_end if schedule.last_end is not None else time.time()
            query.update(end=ms(end), exitcode="0", dropped="0", result="killed")
            self._put("stopped", query, b"", final=True)
            self._mark_done(self.schedule_journal, schedule.key, "stopped")
            log.info("task %s (v%d): schedule stopped", *schedule.key)
            return
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
        try:
            if self.journal.accept(task_id, version):  # never seen here: it must not start later either
                self.journal.done(task_id, version, "stopped")
        except OSError as exc:  # the server stops listing it in `run` once it hears `stopped`
            log.error("task %s (v%d): cannot journal its stop (%s)", task_id, version, exc)
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

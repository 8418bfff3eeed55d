"""An invocation's progress as server-sent events, while it runs.

Agents report output while a command runs (`task/running` posts, every second or so, each appended to the
execution record's output: services/delivery.py), so the record in the store is the truth whichever server took
the report. This stream reads the invocation every `INTERVAL` seconds and sends what changed: an `instance` event
per execution record with its status, exit code and times, and the output that arrived since the last event
(`append`), or all of it (`reset`) when a schedule's new run replaced it; a `task` event with the roll-up; and
`end` once every record has ended (the browser then stops listening). A schedule is streamed until the browser
leaves, for at most `LIFETIME` seconds a connection (EventSource reconnects by itself). The session is checked
again every few seconds: signing out ends the stream.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.responses import Response, StreamingResponse

from cloudassist.clock import iso
from cloudassist.console.tasks import find, not_found
from cloudassist.console.visit import HEADERS, Visit
from cloudassist.domain.invocations import Invocation, InvocationResult
from cloudassist.services.logins import SessionService

INTERVAL: Final = 0.5
LIFETIME: Final = 600.0
#: The session is looked up again every this many intervals.
RECHECK: Final = 10


@dataclass
class _Seen:
    """What the browser has been sent of one execution record."""

    output: bytes = b""
    state: dict[str, Any] = field(default_factory=dict)
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


def _state(r: InvocationResult) -> dict[str, Any]:
    return {
        "instance": r.instance_id,
        "status": r.status.value,
        "exit_code": r.exit_code,
        "error_code": r.error_code.value,
        "error_info": r.error_code.info,
        "start": iso(r.start_time),
        "finish": iso(r.finished_time),
        "repeats": r.repeats,
        "dropped": r.dropped,
    }


def changes(seen: dict[str, _Seen], results: tuple[InvocationResult, ...]) -> list[dict[str, Any]]:
    """The `instance` events that bring the browser from `seen` to `results` (and `seen` along with it)."""
    events = []
    for r in results:
        mine = seen.setdefault(r.instance_id, _Seen())
        state = _state(r)
        event: dict[str, Any] = {}
        if r.output.startswith(mine.output):
            text = mine.decoder.decode(r.output[len(mine.output) :], final=r.status.terminal)
            if text:
                event["append"] = text
        else:  # a schedule's new run: its output replaced the previous run's
            mine.decoder.reset()
            event["reset"] = mine.decoder.decode(r.output, final=r.status.terminal)
        mine.output = r.output
        if event or state != mine.state:
            mine.state = state
            events.append({**state, **event})
    return events


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(visit: Visit) -> Response:
    invoke_id = visit.request.path_params["invoke_id"]
    first = await find(visit, invoke_id)
    if first is None:
        return not_found(visit)
    sessions = SessionService(visit.ctx)
    token = visit.request.cookies.get("ca_session", "")

    async def stream() -> AsyncIterator[bytes]:
        seen: dict[str, _Seen] = {}
        inv: Invocation | None = first
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LIFETIME
        ticks, told = 0, ""
        yield b"retry: 2000\n\n"
        while inv is not None:
            for data in changes(seen, inv.results):
                yield _event("instance", data)
            if inv.status.value != told:
                told = inv.status.value
                yield _event("task", {"status": told})
            if all(r.status.terminal for r in inv.results):
                yield _event("end", {"status": inv.status.value})
                return
            if loop.time() > deadline:
                return
            await asyncio.sleep(INTERVAL)
            ticks += 1
            if ticks % RECHECK == 0 and await sessions.find(token) is None:
                yield _event("signedout", {})
                return
            inv = await find(visit, invoke_id)

    headers = {**HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

"""Session Manager's audit in the console: every session of the account (who started it with which key, from
where, when, each connection's state, how long, how it ended, bytes each way) and the transcripts kept when
the settings ask for them, replayed in a terminal or downloaded as the raw bytes the terminal showed."""

from __future__ import annotations

from starlette.responses import Response

from cloudassist.console.tasks import PAGE_SIZE, page_count, page_number
from cloudassist.console.terminal import TERMINAL_HEADERS
from cloudassist.console.visit import HEADERS, Visit, refusal
from cloudassist.domain.paging import Page
from cloudassist.services.sessions import SessionService
from cloudassist.store.sessions import SessionFilter


async def sessions(visit: Visit) -> Response:
    number = page_number(visit)
    f = SessionFilter(visit.scope.account_id, visit.scope.region_id, instance_id=visit.value("instance_id") or None)
    found = await SessionService(visit.ctx).describe(f, Page(number, PAGE_SIZE, False, None))
    return visit.page(
        "sessions.html",
        sessions=found.sessions,
        total=found.total,
        number=number,
        pages=page_count(found.total),
        query=dict(visit.request.query_params),
    )


async def transcript(visit: Visit) -> Response:
    """A page that replays one connection's transcript in a read-only terminal."""
    channel = visit.request.path_params["channel"]
    kept = await SessionService(visit.ctx).transcript(visit.scope.account_id, channel)
    if kept is None:
        return visit.page("missing.html", 404, what="transcript")
    response = visit.page("transcript.html", channel=channel, size=len(kept[0]), truncated=kept[1])
    response.headers.update(TERMINAL_HEADERS)
    return response


async def transcript_bytes(visit: Visit) -> Response:
    """The transcript as it was recorded (terminal control sequences included), as a download."""
    channel = visit.request.path_params["channel"]
    kept = await SessionService(visit.ctx).transcript(visit.scope.account_id, channel)
    if kept is None:
        return refusal(404, "no transcript was kept for this connection")
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{channel}.typescript"'}
    if kept[1]:
        headers["X-Transcript-Truncated"] = "true"
    return Response(kept[0], media_type="application/octet-stream", headers=headers)

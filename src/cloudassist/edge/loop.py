"""The event loop's exception handler: accept() out of descriptors or memory is counted, not traced.

asyncio's own loop reports every failed accept() (EMFILE, ENFILE, ENOBUFS, ENOMEM) through the loop's
exception handler with a traceback, once per try, many times a second while the condition lasts (issue 8
saw 126 MB of log in 25 s). uvloop closes such connections itself (libuv keeps a spare descriptor for
that), but reports what it cannot handle the same way. Here they become one line per interval with a
count; everything else goes to the default handler as before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any, Final

from cloudassist.edge.tally import Tally

log = logging.getLogger("cloudassist.edge")

#: accept()'s errors that say "out of a resource": the condition lasts, and so would its log lines.
EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def count_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> Tally:
    """Install the handler on `loop`; the tally it counts into."""
    tally = Tally(log, "accept() failed, out of file descriptors or memory (connections dropped)", interval=interval)
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in EXHAUSTED:
            tally.note()
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    return tally

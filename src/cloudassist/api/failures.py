"""How both faces log an exception nobody expected: one line, never a traceback.

A request that fails unexpectedly is answered with a generic 500 in the face's own shape. Whoever can send
requests could otherwise fill the disk with ~3 KB tracebacks. The line names the exception's type and where
it was raised (the innermost frame of our code, and the innermost frame of all when that is elsewhere, e.g. in
the database driver), which is what an operator needs to report it. The exception's message is left out: it
may quote a value of the request (`int()` of a parameter, a database error about a value), and a value may
be a secret.
"""

from __future__ import annotations

import logging
import traceback


def log_internal_error(log: logging.Logger, what: str, exc: BaseException) -> None:
    """One ERROR line about `exc`, raised while answering `what` (a request id, a path)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/cloudassist/" in f.filename]
    places = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in (ours[-1:] + frames[-1:]) if f]
    where = " < ".join(dict.fromkeys(reversed(places))) or "?"
    log.error("internal error answering %s: %s (at %s)", what, type(exc).__name__, where)

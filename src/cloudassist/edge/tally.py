"""Events that can come by the thousand a second (a refused connection, a failed signature) are counted
and logged at most once per interval, with the count and the addresses seen most: an operator can alert
on the line, and an attacker cannot fill the disk with it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Final

#: Distinct keys (addresses) remembered per interval; more are counted in the total only.
MAX_KEYS: Final = 1000
#: Keys named in a line.
SHOWN: Final = 3


class Tally:
    """Counts one kind of event. The first event after a quiet interval is logged at once; those that follow
    within the interval are logged together when it ends: `<what>: 1234 in the last 10 s (most: …)`."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.what = what
        self.level = level
        self.interval = interval
        self.clock = clock
        self.total = 0
        self._count = 0
        self._keys: Counter[str] = Counter()
        self._last = -interval
        self._flush: asyncio.TimerHandle | None = None

    def note(self, key: str = "") -> None:
        """One event (from `key`, an address, when there is one)."""
        self.total += 1
        self._count += 1
        if key and (key in self._keys or len(self._keys) < MAX_KEYS):
            self._keys[key] += 1
        if self._flush is not None:
            return
        wait = self._last + self.interval - self.clock()
        if wait <= 0:
            self.emit()
        else:
            self._flush = asyncio.get_running_loop().call_later(wait, self.emit)

    def emit(self) -> None:
        """Log what was counted since the last line (nothing if nothing was)."""
        self._flush = None
        if not self._count:
            return
        most = ", ".join(f"{key} x{n}" for key, n in self._keys.most_common(SHOWN))
        more = f" ({len(self._keys)} addresses; most: {most})" if most else ""
        self.log.log(self.level, "%s: %d in the last %g s%s", self.what, self._count, self.interval, more)
        self._count = 0
        self._keys.clear()
        self._last = self.clock()

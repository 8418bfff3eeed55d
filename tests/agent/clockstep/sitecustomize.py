"""TEST-ONLY clock step for an agent process (tests/agent/test_faults.py puts this directory on PYTHONPATH).

`time.time()` and `time.time_ns()` return the real time plus the number of seconds written in the file named
by CLOUDASSIST_TEST_CLOCK_OFFSET_FILE (read on every call): the test "steps the wall clock" by writing it.
The monotonic clock is left alone, as a real clock step leaves it.
"""

from __future__ import annotations

import os
import sys
import time

_FILE = os.environ.get("CLOUDASSIST_TEST_CLOCK_OFFSET_FILE", "")
if _FILE:
    _real_time, _real_time_ns = time.time, time.time_ns

    def _offset() -> float:
        try:
            with open(_FILE) as handle:
                return float(handle.read().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    def _time() -> float:
        return _real_time() + _offset()

    def _time_ns() -> int:
        return _real_time_ns() + int(_offset() * 1e9)

    time.time = _time
    time.time_ns = _time_ns
    print("clock offset hook installed (tests only)", file=sys.stderr, flush=True)

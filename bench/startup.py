"""How long `cloudassist server` takes to listen on both ports on an empty store (SQLite, first start).

Each run is a fresh data directory, so it includes creating the schema, the access key and the agent
face's CA and certificate.

    .venv/bin/python bench/startup.py [--runs 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cloudassist.testing import LiveServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            server = LiveServer(Path(tmp))
            started = time.monotonic()
            server.start()
            times.append(time.monotonic() - started)
            server.stop()
    print("fresh store, spawn to both ports accepting (s):", " ".join(f"{t:.3f}" for t in times))
    print(f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()

"""How long a line a command prints takes to show in the console's invocation page, and how fast the pages load.

    .venv/bin/python bench/console_latency.py [--lines 8] [--gap 1.5]

Starts `cloudassist server` (SQLite, temporary directory) and a real `cloudassist agent`, opens the console in
headless Chromium (Debian's `chromium`), runs a command that prints a timestamp every `--gap` seconds, and polls
the page's output every 20 ms: for each line, the time from the command printing it to the page showing it.
Then loads each main page 20 times and prints the median time to its `load` event. Bounded; stops by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from acceptance.agents import agents  # noqa: E402
from acceptance.browser import chromium  # noqa: E402
from cloudassist.testing import LiveServer, wait_for  # noqa: E402

AK, SECRET = "bench-key", "bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=8)
    parser.add_argument("--gap", type=float, default=1.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, agents(Path(tmp) / "agents") as made, chromium() as browser:
        live = LiveServer(Path(tmp) / "server", access_key_id=AK, secret=SECRET).start()
        try:
            activation = live.api(Action="CreateActivation", InstanceCount="1")
            agent = made.new("a").register(live, activation["ActivationId"], activation["ActivationCode"]).start()
            wait_for(agent.connected, 60, "the agent to connect")
            page = browser.new_context(base_url=f"http://{live.endpoint}").new_page()
            page.set_default_timeout(60_000)
            page.goto("/console/signin")
            page.fill("input[name=access_key_id]", AK)
            page.fill("input[name=access_key_secret]", SECRET)
            page.click("#signin")
            page.goto(f"/console/run?instance={agent.instance_id}")
            script = f"for i in $(seq {args.lines}); do date +%s.%N; sleep {args.gap}; done"
            page.fill("textarea[name=content]", script)
            page.fill("input[name=timeout]", "600")
            page.click("#run")
            output = page.locator("[data-field=output]")
            delays: list[float] = []
            deadline = time.time() + args.lines * args.gap + 60
            while len(delays) < args.lines and time.time() < deadline:
                lines = output.inner_text().split()
                now = time.time()
                for line in lines[len(delays) :]:
                    delays.append(now - float(line))
                time.sleep(0.02)
            print(f"output lines shown: {len(delays)} of {args.lines}")
            print(
                f"printed → shown in the page: median {statistics.median(delays):.2f} s, "
                f"max {max(delays):.2f} s, min {min(delays):.2f} s"
            )
            for path in ("/console/instances", "/console/invocations", "/console/run", "/console/activations"):
                times = []
                for _ in range(20):
                    began = time.perf_counter()
                    page.goto(path, wait_until="load")
                    times.append(time.perf_counter() - began)
                print(f"{path}: median {statistics.median(times) * 1e3:.0f} ms to load (20 loads)")
        finally:
            live.stop()


if __name__ == "__main__":
    main()

"""The idle footprint of `cloudassist agent run`: RSS and CPU after it has settled, read from /proc.

Starts a real server (LiveServer), registers one agent through an activation made with the API,
lets it idle for --seconds (default 90, covering a heart-beat), then prints VmRSS, RssAnon,
RssFile, threads and the CPU seconds it used, next to the official agent's figures from
agent-protocol.md Part 2 §6 (~24 MB RSS, 0.09-0.16 s CPU after ~100 s idle).

    .venv/bin/python bench/agent_footprint.py [--seconds 90]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cloudassist.testing import LiveServer, signed_query

REGION = "cn-hangzhou"


def status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp) / "server").start()
        agent = None
        try:
            query = signed_query({"Action": "CreateActivation", "RegionId": REGION, "InstanceCount": "1"},
                                 server.access_key_id, server.secret)
            made = httpx.post(f"http://{server.endpoint}/?{query}").json()
            state = Path(tmp) / "agent"
            subprocess.run([sys.executable, "-m", "cloudassist.agent", "register", "--server", server.agent_endpoint,
                            "--activation-id", made["ActivationId"], "--region", REGION,
                            "--ca-file", str(server.data_dir / "ca.pem"), "--state-dir", str(state)],
                           env={**os.environ, "CLOUDASSIST_ACTIVATION_CODE": made["ActivationCode"]}, check=True,
                           capture_output=True)
            agent = subprocess.Popen([sys.executable, "-m", "cloudassist.agent", "run", "--state-dir", str(state)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(args.seconds)
            info = status(agent.pid)
            print(f"cloudassist agent after {args.seconds:.0f} s idle (one heart-beat, kick socket open):")
            print(f"  VmRSS {info['VmRSS']}  RssAnon {info['RssAnon']}  RssFile {info['RssFile']}  "
                  f"VmHWM {info['VmHWM']}  threads {info['Threads']}")
            print(f"  CPU used since start: {cpu_seconds(agent.pid):.2f} s (includes start-up and imports)")
            print("official agent 2.2.3.578 (agent-protocol.md Part 2 §6): VmRSS ~22.7-25.0 MB "
                  "(4-7 MB anonymous), 0.09-0.16 s CPU after ~100 s")
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(10)
            server.stop()


if __name__ == "__main__":
    main()

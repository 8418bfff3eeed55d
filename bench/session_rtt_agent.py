"""Keystroke round trip of a Session Manager shell with our agent and a real PTY (bench/session_rtt.py measures the
relay alone, with a replayed agent): client → relay → agent → PTY echo → agent →
relay → client.

Starts a real server (LiveServer, SQLite), registers and runs one `cloudassist agent` process, calls
StartTerminalSession and dials the WebSocketUrl in the official client's framing (cloudassist session's own
code, `cli/session.py`). It then types one character at a time into the shell's line and times each until its
echo comes back (the PTY echoes it; nothing runs per key), clearing the line with ^U every 40 keys. Prints
p50/p90/p99/max in milliseconds, and a short transcript of the same session (echo, stty size after a resize).

    .venv/bin/python bench/session_rtt_agent.py [--keys 300] [--username USER]

USER must exist and not be root (default: a throwaway user made with useradd and removed after, when run as
root; else your own user, the agent then running as you).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cloudassist.cli.client import Client, Credentials, Endpoint
from cloudassist.cli.session import Channel, dial
from cloudassist.domain import frames
from cloudassist.domain.frames import MessageType
from cloudassist.testing import LiveServer

REGION = "cn-hangzhou"


def start_agent(server: LiveServer, home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["CLOUDASSIST_AGENT_RUNTIME_DIR"] = str(home)
    made = server.api(Action="CreateActivation", InstanceCount="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudassist.agent",
            "register",
            "--server",
            server.agent_endpoint,
            "--activation-id",
            made["ActivationId"],
            "--region",
            REGION,
            "--ca-file",
            str(server.data_dir / "ca.pem"),
            "--state-dir",
            str(home / "state"),
        ],
        env={**env, "CLOUDASSIST_ACTIVATION_CODE": made["ActivationCode"]},
        check=True,
        capture_output=True,
        text=True,
    )
    instance_id = done.stdout.split("instance id ", 1)[1].split()[0]
    log = open(home / "agent.log", "wb")  # noqa: SIM115 - open while the agent runs
    process = subprocess.Popen(
        [sys.executable, "-m", "cloudassist.agent", "run", "--state-dir", str(home / "state")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while "kick channel connected" not in (home / "agent.log").read_text(errors="replace"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"the agent did not connect:\n{(home / 'agent.log').read_text(errors='replace')}")
        time.sleep(0.1)
    return instance_id, process


async def output_until(channel: Channel, needle: bytes, seen: bytearray) -> None:
    async with asyncio.timeout(30):
        while needle not in seen:
            frame = await channel.recv()
            if frame.type is MessageType.OUTPUT:
                seen += frame.payload


async def measure(url: str, keys: int) -> tuple[list[float], bytes]:
    channel = await dial(url, None)
    transcript = bytearray()
    await output_until(channel, b"$ ", transcript)
    await channel.send(MessageType.SET_SIZE, frames.Size(30, 90).to_client())
    await channel.send(MessageType.INPUT, b"echo hello-$((6*7)); stty size\r")
    await output_until(channel, b"30 90", transcript)
    await output_until(channel, b"$ ", transcript[transcript.rindex(b"30 90") :])
    shown = bytes(transcript)
    times: list[float] = []
    for index in range(keys):
        if index and index % 40 == 0:
            await channel.send(MessageType.INPUT, b"\x15")  # ^U: clear the line
            await asyncio.sleep(0.05)
        seen = bytearray()
        key = b"abcdefghij"[index % 10 : index % 10 + 1]
        began = time.perf_counter()
        await channel.send(MessageType.INPUT, key)
        await output_until(channel, key, seen)
        times.append((time.perf_counter() - began) * 1000)
    await channel.send(MessageType.INPUT, b"\x15exit\r")
    await channel.socket.close()
    return times, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--username", default="")
    args = parser.parse_args()
    made_user = ""
    username = args.username
    if not username:
        if os.geteuid() == 0:
            made_user = username = f"rtt{uuid.uuid4().hex[:8]}"
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", username], check=True)
        else:
            username = getpass.getuser()
    agent = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = LiveServer(Path(tmp) / "server").start()
            try:
                instance_id, agent = start_agent(server, Path(tmp))
                client = Client(
                    Endpoint.parse(server.endpoint), Credentials(server.access_key_id, server.secret, REGION)
                )
                url = client.call("StartTerminalSession", {"InstanceId": [instance_id], "Username": username})[
                    "WebSocketUrl"
                ]
                times, transcript = asyncio.run(measure(url, args.keys))
            finally:
                if agent is not None:
                    agent.terminate()
                    agent.wait(30)
                server.stop()
    finally:
        if made_user:
            subprocess.run(["userdel", "-r", made_user], check=False, capture_output=True)
    cuts = statistics.quantiles(times, n=100)
    print(
        f"keystroke round trip, {len(times)} keys (client -> relay -> agent -> PTY echo -> agent -> relay -> client):"
    )
    print(f"  p50 {cuts[49]:.2f} ms   p90 {cuts[89]:.2f} ms   p99 {cuts[98]:.2f} ms   max {max(times):.2f} ms")
    print("transcript:")
    print(transcript.decode(errors="replace").replace("\r\n", "\n").replace("\r", ""))


if __name__ == "__main__":
    main()

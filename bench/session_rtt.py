"""Keystroke round trip through the Session Manager relay: client -> relay -> agent -> relay -> client.

A client speaking the official CLI's framing sends one input byte; a peer speaking the official agent's side
(kick, v1/session/list, data websocket in agent framing) echoes it as output at once, and the client times
the echo. One server on SQLite, or (`--two-servers`) the client on one server process and the agent on
another, sharing a PostgreSQL database (the frames then cross through LISTEN/NOTIFY). The agent's own pacing
(40 ms between output frames) and PTY are not in this figure: it is the relay's share.

    .venv/bin/python bench/session_rtt.py [--two-servers] [--keys 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "conformance"))

from luban import Agent, Ecs, acknowledged, create_activation
from sessionwire import (
    accept_session_kick,
    agent_frame,
    client_frame,
    open_client,
    open_data_socket,
    read_agent_frame,
    recv_client,
)

from cloudassist.testing import LiveServer, pg_database


def measure(front: LiveServer, back: LiveServer, keys: int) -> list[float]:
    api, agent = Ecs(front.endpoint), Agent(back)
    activation = create_activation(api, 1)
    acknowledged(agent.register(activation.activation_id, activation.code))
    acknowledged(agent.heartbeat())
    started = api("StartTerminalSession", {"InstanceId.1": agent.instance_id})
    times: list[float] = []
    with agent.websocket() as notify, open_client(started["WebSocketUrl"]) as client:
        channel = accept_session_kick(notify)
        with open_data_socket(agent, channel) as data:
            data.send(agent_frame(1, b"$ ", channel, 0))
            recv_client(client)
            for seq in range(keys):
                began = time.perf_counter()
                client.send(client_frame(0, b"k", seq))
                raw = data.recv(timeout=10)
                assert isinstance(raw, bytes)
                _kind, payload = read_agent_frame(raw)
                data.send(agent_frame(1, payload, channel, seq + 1))
                assert recv_client(client) == (1, b"k")
                times.append((time.perf_counter() - began) * 1e3)
    agent.close()
    api.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--two-servers", action="store_true")
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        del os.environ[name]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        db = stack.enter_context(pg_database("rtt")) if args.two_servers else ""
        front = LiveServer(Path(tmp) / "front", db=db).start()
        stack.callback(front.stop)
        back = front
        if args.two_servers:
            back = LiveServer(Path(tmp) / "back", db=db).start()
            stack.callback(back.stop)
        times = measure(front, back, args.keys)
    times.sort()
    where = "two servers, PostgreSQL LISTEN/NOTIFY" if args.two_servers else "one server, SQLite"
    print(
        f"keystroke round trip through the relay ({where}), {len(times)} keys: "
        f"median {statistics.median(times):.2f} ms, p90 {times[int(len(times) * 0.9)]:.2f} ms, "
        f"max {times[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()

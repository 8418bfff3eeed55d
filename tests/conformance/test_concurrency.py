"""§1.5: the agent runs up to 10 tasks at once (10 pool workers), each streaming its output from its own goroutine,
while heart-beats and metrics go out on their own timers. Running posts are sent once and never retried, so a
report refused under load is output lost for good."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from luban import Agent, Ecs, acknowledged


def test_ten_tasks_streaming_at_once_are_all_acknowledged_and_recorded(agent: Agent, api: Ecs) -> None:
    """Ten tasks fetched together and reported concurrently (started, three chunks, finish, each task in its own
    thread as the agent's workers do), with a heart-beat and metrics in between: every post is acknowledged and
    every result holds exactly its own output in order."""
    invoke_ids = [api.run_command(agent.instance_id, f"for i in 1 2 3; do echo {n}-$i; done") for n in range(10)]
    listing = agent.tasks("startup")
    entries = {e["task"]["taskID"]: e for e in listing["run"]}
    assert set(entries) == set(invoke_ids), listing

    def work(n: int) -> list[httpx.Response]:
        run = agent.execution(entries[invoke_ids[n]])
        replies = [agent.running(run)]
        replies += [agent.running(run, f"{n}-{i}\n".encode()) for i in (1, 2)]
        replies.append(agent.finish(run, 0, f"{n}-3\n".encode()))
        return replies

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(work, n) for n in range(10)]
        side = [pool.submit(agent.heartbeat), pool.submit(agent.metrics, "agent.kdump", "AGENT", {"status": "OFF"})]
        replies = [r for f in futures for r in f.result()] + [f.result() for f in side]
    failures = [f"{r.request.url.path} -> {r.status_code} {r.text[:120]}" for r in replies if r.status_code != 200]
    assert not failures, failures
    for reply in replies:
        acknowledged(reply)

    for n, invoke_id in enumerate(invoke_ids):
        result = api.result(invoke_id)
        assert result["InvocationStatus"] == "Success", result
        assert result["Output"] == f"{n}-1\n{n}-2\n{n}-3\n", result

"""What the server counts and times, for Prometheus at `GET /metrics` on the API port.

Counted as it happens (a few microseconds per request: one counter and one histogram child, cached):
API calls by action and code with their latency, agent requests by route and status with theirs, task
reports taken in, database transactions' time, sweeper and retention passes. Read when scraped: the agents
connected to this process, and the execution records by status from the `result_counts` counters (one
small grouped read, never a count of the records themselves).

Label values come from fixed sets (known actions, routes and report kinds); error codes are kept as they
are up to `MAX_CODES` distinct ones, after which new ones are counted as `other`, so no client can grow
the series without bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY: Final = CollectorRegistry(auto_describe=False)
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
MAX_CODES: Final = 300

#: Latency buckets (seconds): from a cached read (~1 ms) to a slow batch on a loaded database.
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

API_CALLS: Final = Counter(
    "cloudassist_api_requests", "ECS API calls answered, by Action and Code (OK for success).",
    ["action", "code"], registry=REGISTRY,
)
API_SECONDS: Final = Histogram(
    "cloudassist_api_request_seconds", "Time to answer an ECS API call, by Action.",
    ["action"], buckets=_BUCKETS, registry=REGISTRY,
)
AGENT_REQUESTS: Final = Counter(
    "cloudassist_agent_requests", "Agent protocol requests answered, by route and HTTP status.",
    ["route", "status"], registry=REGISTRY,
)
AGENT_SECONDS: Final = Histogram(
    "cloudassist_agent_request_seconds", "Time to answer an agent protocol request, by route.",
    ["route"], buckets=_BUCKETS, registry=REGISTRY,
)
REPORTS: Final = Counter(
    "cloudassist_agent_reports", "Task reports taken in from agents, by kind (running, finished, …) and HTTP status.",
    ["kind", "status"], registry=REGISTRY,
)
DB_SECONDS: Final = Histogram(
    "cloudassist_db_transaction_seconds", "Time a database transaction was open, by kind (read or write).",
    ["kind"], buckets=_BUCKETS, registry=REGISTRY,
)
SWEEPS: Final = Counter(
    "cloudassist_sweeper_runs", "Passes of the delivery sweeper (deadlines, kicks), by outcome (ok or failed).",
    ["outcome"], registry=REGISTRY,
)
SWEEP_SECONDS: Final = Histogram(
    "cloudassist_sweeper_run_seconds", "Time of a delivery sweeper pass.", buckets=_BUCKETS, registry=REGISTRY,
)
RETENTION_RUNS: Final = Counter(
    "cloudassist_retention_runs", "Passes of the retention job, by outcome (ok or failed).",
    ["outcome"], registry=REGISTRY,
)
RETENTION_DELETED: Final = Counter(
    "cloudassist_retention_deleted", "Rows the retention job deleted, by what (records, tasks, commands, tokens).",
    ["what"], registry=REGISTRY,
)

_api_calls: dict[tuple[str, str], Any] = {}
_api_seconds: dict[str, Any] = {}
_codes: set[str] = set()


def api_call(action: str, code: str, seconds: float) -> None:
    """Count one answered API call (`action` already one of a fixed set)."""
    counted = _api_calls.get((action, code))
    if counted is None:
        if code not in _codes and len(_codes) >= MAX_CODES:
            code = "other"
        _codes.add(code)
        counted = _api_calls[(action, code)] = API_CALLS.labels(action, code)
    counted.inc()
    timed = _api_seconds.get(action)
    if timed is None:
        timed = _api_seconds[action] = API_SECONDS.labels(action)
    timed.observe(seconds)


_db_seconds: Final = {kind: DB_SECONDS.labels(kind) for kind in ("read", "write")}


@contextmanager
def db_time(kind: str) -> Iterator[None]:
    """Time a transaction of `kind` (read or write) into DB_SECONDS, however it ends."""
    began = time.perf_counter()
    try:
        yield
    finally:
        _db_seconds[kind].observe(time.perf_counter() - began)


def render(connected_agents: int | None, executions: dict[str, int]) -> bytes:
    """The exposition text: the counters above, and the gauges read at scrape time."""
    scraped = CollectorRegistry(auto_describe=False)

    class _Now:
        def collect(self) -> Iterator[GaugeMetricFamily]:
            if connected_agents is not None:
                yield GaugeMetricFamily(
                    "cloudassist_agents_connected", "Agents holding a kick websocket to this server process.",
                    value=connected_agents,
                )
            by_status = GaugeMetricFamily(
                "cloudassist_executions", "Execution records kept, by InvocationStatus (all accounts and regions).",
                labels=["status"],
            )
            for status, n in sorted(executions.items()):
                by_status.add_metric([status], n)
            yield by_status

    scraped.register(_Now())
    return bytes(generate_latest(REGISTRY)) + bytes(generate_latest(scraped))

"""Every setting of the server in one table, read once into a frozen Settings.

Each setting can be given as an environment variable `CLOUDASSIST_<NAME>`; the command line's flags
override the environment. `docs/settings.md` is checked against this table by the test suite.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final


def _regions(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"expected true or false, got {text!r}")
    return value in ("1", "true", "yes", "on")


def _rate(text: str) -> int:
    """A pacing rate for agents: 0, or at least 16384 bit/s (smaller ones crash the official agent)."""
    value = int(text)
    if value != 0 and not 16384 <= value < 2**32:
        raise ValueError(f"expected 0 or 16384..4294967295 bit/s, got {value}")
    return value


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    cast: Callable[[str], Any]
    help: str

    @property
    def env(self) -> str:
        return f"CLOUDASSIST_{self.name.upper()}"


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting(
        "data_dir", Path(".cloudassist"), Path, "Directory for the SQLite database, generated keys and certificates."
    ),
    Setting("listen", "127.0.0.1:8080", str, "HOST:PORT the ECS API listens on."),
    Setting("db", "", str, "Database URL (postgresql://… or sqlite:///…); empty means SQLite in the data directory."),
    Setting(
        "disk_reserve_mb",
        64,
        int,
        "Disk space (MiB) kept in reserve beside a SQLite database (at most a twentieth of its file system) and given"
        " back when a write meets a full disk, so results go on being stored while space is freed; 0 keeps none.",
    ),
    Setting("host_id", "ecs.aliyuncs.com", str, "The HostId reported in error bodies."),
    Setting("regions", (), _regions, "Comma-separated region ids to accept; empty accepts any well-formed RegionId."),
    Setting(
        "signature_window_seconds",
        900,
        int,
        "How far a request's Timestamp (or x-acs-date) may be from the server's clock; nonces are kept as long.",
    ),
    Setting(
        "retention_days", 14, int, "Execution records older than this are no longer returned (the seed: two weeks)."
    ),
    Setting(
        "retention_count",
        100_000,
        int,
        "Only the newest this many execution records of an account are returned (the seed: 100,000).",
    ),
    Setting(
        "paging_error_status",
        403,
        int,
        "HTTP status of InvalidParam.PageNumber/PageSize: 403 as the seed says; current Alibaba docs say 400.",
    ),
    Setting("output_limit_bytes", 24 * 1024, int, "Output kept per execution; the rest is counted in Dropped."),
    Setting("max_instances_per_call", 100, int, "Instances one RunCommand or InvokeCommand may target."),
    Setting("max_timeout_seconds", 86_400, int, "The largest Timeout a command may ask for."),
    Setting("max_request_bytes", 256 * 1024, int, "Largest request (query string plus body) accepted."),
    Setting(
        "command_quota",
        50_000,
        int,
        "Commands an account may keep per region (CmdCount.ExceedQuota; the docs' adjustable range is 500-50,000); "
        "0 means no limit.",
    ),
    Setting(
        "invocation_quota_daily",
        5_000,
        int,
        "Tasks (RunCommand/InvokeCommand) an account may start per region per UTC day (Invocation.ExceedQuota; "
        "the docs: 5,000); 0 means no limit.",
    ),
    Setting(
        "retention_interval_seconds",
        60,
        int,
        "How often (seconds) the retention job deletes execution records outside the retention window and "
        "count; 0 turns it off.",
    ),
    Setting(
        "retention_batch_size",
        1000,
        int,
        "Rows the retention job deletes per transaction (each batch holds the write lock only briefly).",
    ),
    Setting("client_token_hours", 24, int, "How long a ClientToken's answer is kept for retries."),
    Setting("log_level", "info", str, "Log level of the server: debug, info, warning or error."),
    Setting("log_format", "text", str, "Log format of the server: text, or json (one object a line)."),
    Setting(
        "access_log",
        True,
        _flag,
        "One log line per API call and per agent request (logger cloudassist.access, level info); false drops them.",
    ),
    Setting("agent_listen", "127.0.0.1:8443", str, "HOST:PORT of the agent protocol (HTTPS); empty turns it off."),
    Setting("agent_names", (), _regions, "Extra DNS names or IPs for the generated agent-face certificate."),
    Setting("agent_cert", "", str, "PEM certificate (chain) for the agent face instead of the generated one."),
    Setting("agent_key", "", str, "PEM private key of --agent-cert."),
    Setting(
        "agent_keep_alive_seconds",
        75,
        int,
        "How long the agent face keeps an idle HTTPS connection open: longer than a heart-beat interval (55-65 s), "
        "so beating agents reuse their connection instead of paying a TLS handshake each time.",
    ),
    Setting(
        "read_timeout_seconds",
        10,
        int,
        "How long a connection, on either face, may take to finish its TLS handshake and to send a whole request "
        "(headers and body) once it is accepted or begins one; slower connections are closed.",
    ),
    Setting(
        "max_connections",
        1000,
        int,
        "Connections the API may hold at once; cut to fit the open-file limit. When full, the connection idle "
        "the longest is closed to make room.",
    ),
    Setting(
        "agent_max_connections",
        0,
        int,
        "Connections (HTTPS and websockets) the agent face may hold at once; 0: what the open-file limit leaves "
        "after the API and a reserve. When full, the connection idle the longest is closed to make room.",
    ),
    Setting(
        "agent_ping_seconds",
        30,
        int,
        "How often the server pings an agent's websocket; one that does not answer within as long is closed "
        "and its agent marked offline. 0 turns pings off.",
    ),
    Setting(
        "auth_failures_per_minute",
        30,
        int,
        "Failed authentications or registrations a source address (an IPv6 /64) may make per minute, on each "
        "face, before its requests are refused for a while; 0 turns the limit off.",
    ),
    Setting(
        "auth_throttle_exempt",
        ("127.0.0.0/8", "::1"),
        _regions,
        "Comma-separated addresses or networks never refused for failed authentications (a proxy on this host "
        "makes every client 127.0.0.1: one attacker would lock everyone out); empty exempts none.",
    ),
    Setting(
        "delivery_timeout_seconds",
        60,
        int,
        "A task not fetched and started by its agent within this is Aborted (the docs: one minute).",
    ),
    Setting(
        "grace_seconds", 60, int, "How long past Timeout a running task may go unreported before the server ends it."
    ),
    Setting(
        "console_session_hours",
        12,
        int,
        "How long a sign-in to the web console (/console/) lasts; signing out ends it at once.",
    ),
    Setting(
        "session_url",
        "",
        str,
        "The WebSocketUrl base StartTerminalSession returns (e.g. wss://ca.example.com/session, behind a TLS proxy);"
        " empty: ws://<the API request's Host>/session.",
    ),
    Setting("session_idle_seconds", 180, int, "A session connection with no data either way for this long is closed."),
    Setting(
        "session_start_seconds", 60, int, "How long a session connection waits for the agent to dial before it fails."
    ),
    Setting(
        "session_redial_seconds",
        20,
        int,
        "How long a connection waits for the agent to re-dial after its data socket dropped without a status report.",
    ),
    Setting(
        "session_max_per_region", 1000, int, "Open sessions an account may hold per region (SessionCount.ExceedLimit)."
    ),
    Setting("session_max_per_instance", 20, int, "Open session connections one instance may serve at once."),
    Setting(
        "session_agent_flow_limit",
        0,
        _rate,
        "The flowLimit (bit/s) sent to agents: 0 for the agent's own pacing (about 200 kbit/s), else at least 16384.",
    ),
    Setting(
        "session_max_input_bps",
        1_638_400,
        int,
        "A client sending faster than this (bit/s, averaged over a few seconds) has its connection closed"
        " with FlowExceedLimit.",
    ),
    Setting(
        "session_transcripts",
        False,
        _flag,
        "Keep every session's transcript (what the terminal showed); an account's SessionManagerDelivery"
        " keeps its own.",
    ),
    Setting(
        "session_transcript_max_bytes", 1_048_576, int, "The largest transcript kept per connection; the rest is cut."
    ),
    Setting("api_cert", "", str, "PEM certificate (chain) to serve the API over HTTPS; empty serves plain HTTP."),
    Setting("api_key", "", str, "PEM private key of --api-cert."),
)


@dataclass(frozen=True)
class Settings:
    """The server's configuration, frozen once read."""

    data_dir: Path = Path(".cloudassist")
    listen: str = "127.0.0.1:8080"
    db: str = ""
    disk_reserve_mb: int = 64
    host_id: str = "ecs.aliyuncs.com"
    regions: tuple[str, ...] = ()
    signature_window_seconds: int = 900
    retention_days: int = 14
    retention_count: int = 100_000
    paging_error_status: int = 403
    output_limit_bytes: int = 24 * 1024
    max_instances_per_call: int = 100
    max_timeout_seconds: int = 86_400
    max_request_bytes: int = 256 * 1024
    command_quota: int = 50_000
    invocation_quota_daily: int = 5_000
    retention_interval_seconds: int = 60
    retention_batch_size: int = 1000
    client_token_hours: int = 24
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = True
    agent_listen: str = "127.0.0.1:8443"
    agent_names: tuple[str, ...] = ()
    agent_cert: str = ""
    agent_key: str = ""
    agent_keep_alive_seconds: int = 75
    read_timeout_seconds: int = 10
    max_connections: int = 1000
    agent_max_connections: int = 0
    agent_ping_seconds: int = 30
    auth_failures_per_minute: int = 30
    auth_throttle_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1")
    delivery_timeout_seconds: int = 60
    grace_seconds: int = 60
    console_session_hours: int = 12
    session_url: str = ""
    session_idle_seconds: int = 180
    session_start_seconds: int = 60
    session_redial_seconds: int = 20
    session_max_per_region: int = 1000
    session_max_per_instance: int = 20
    session_agent_flow_limit: int = 0
    session_max_input_bps: int = 1_638_400
    session_transcripts: bool = False
    session_transcript_max_bytes: int = 1_048_576
    api_cert: str = ""
    api_key: str = ""

    @property
    def database_url(self) -> str:
        """The SQLAlchemy async URL of the store."""
        return database_url(self.db, self.data_dir)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def database_url(db: str, data_dir: Path) -> str:
    """Turn a user's `--db` value into an async SQLAlchemy URL."""
    if not db:
        return f"sqlite+aiosqlite:///{(data_dir / 'cloudassist.db').resolve()}"
    for prefix, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if db.startswith(prefix):
            return driver + db[len(prefix) :]
    return db


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `CLOUDASSIST_*` variables, then `overrides` (values that are None are skipped)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env in env:
            try:
                values[setting.name] = setting.cast(env[setting.env])
            except ValueError as exc:
                raise ValueError(f"{setting.env}: {exc}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)

"""What every service is given: the store, the clock and the settings; and the caller's scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from cloudassist.clock import Clock
from cloudassist.settings import Settings
from cloudassist.store.store import Store


class Notifier(Protocol):
    """Told when instances have new work (or work to stop), so agents can be kicked to fetch it."""

    def kick(self, instance_ids: Iterable[str]) -> None: ...


class NoNotifier:
    """No agents to tell (tools, tests of the API alone); heart-beats and the sweeper still deliver."""

    def kick(self, instance_ids: Iterable[str]) -> None:
        return None


class SessionSignals(Protocol):
    """Told when session connections were ended by a call (EndTerminalSession), so the relay holding their
    sockets closes them (services/sessions.py; api/session/relay.py implements it)."""

    def ended(self, channels: Iterable[tuple[str, str]], reason: str) -> None: ...


class NoSessionSignals:
    """No relay in this process (tools, tests of the API alone)."""

    def ended(self, channels: Iterable[tuple[str, str]], reason: str) -> None:
        return None


class Leader(Protocol):
    """Whether this process runs the jobs that must run once per database (store/leader.py)."""

    @property
    def is_leader(self) -> bool: ...


class SoleServer:
    """The only server there is (tools, tests): it leads."""

    @property
    def is_leader(self) -> bool:
        return True


@dataclass(frozen=True)
class Context:
    store: Store
    clock: Clock
    settings: Settings
    notify: Notifier = field(default_factory=NoNotifier)
    leader: Leader = field(default_factory=SoleServer)
    sessions: SessionSignals = field(default_factory=NoSessionSignals)

    def retention_start(self, now: datetime) -> datetime:
        """Execution records created before this are no longer returned."""
        return now - timedelta(days=self.settings.retention_days)


@dataclass(frozen=True)
class Scope:
    """Whose resources a call may see: one account, in one region."""

    account_id: int
    region_id: str

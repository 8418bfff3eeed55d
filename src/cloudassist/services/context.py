"""What every service is given: the store, the clock and the settings; and the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudassist.clock import Clock
from cloudassist.settings import Settings
from cloudassist.store.store import Store


@dataclass(frozen=True)
class Context:
    store: Store
    clock: Clock
    settings: Settings

    def retention_start(self, now: datetime) -> datetime:
        """Execution records created before this are no longer returned."""
        return now - timedelta(days=self.settings.retention_days)


@dataclass(frozen=True)
class Scope:
    """Whose resources a call may see: one account, in one region."""

    account_id: int
    region_id: str

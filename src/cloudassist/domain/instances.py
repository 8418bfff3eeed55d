"""Managed instances (`mi-…`): machines registered through an activation code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cloudassist.domain.tags import Tag

#: An agent is online when its last heart-beat is at most this old (reference §5.6).
ONLINE_WINDOW: Final = timedelta(minutes=2)


@dataclass(frozen=True)
class ManagedInstance:
    instance_id: str
    account_id: int
    region_id: str
    activation_id: str
    instance_name: str
    hostname: str
    machine_id: str
    os_type: str
    os_version: str
    agent_version: str
    intranet_ip: str
    internet_ip: str
    public_key: str
    resource_group_id: str
    registration_time: datetime
    last_heartbeat_time: datetime | None
    last_invoked_time: datetime | None
    invocation_count: int
    active_task_count: int = 0
    tags: tuple[Tag, ...] = ()
    #: When its websocket closed with no sign of life since (services/instances.py `disconnected`).
    disconnected_time: datetime | None = None

    def online(self, now: datetime) -> bool:
        """Whether the agent has sent a heart-beat within the last two minutes, and its websocket has not closed
        since (an agent that keeps no websocket is judged by its heart-beats alone)."""
        beat = self.last_heartbeat_time
        if beat is None or now - beat > ONLINE_WINDOW:
            return False
        return self.disconnected_time is None or self.disconnected_time < beat

    @property
    def os_family(self) -> str:
        """`Linux`, `Windows` or `FreeBSD`, as OSType is reported."""
        return os_family(self.os_type)


def os_family(os_type: str) -> str:
    """The family of an instance's OS type: `Linux`, `Windows` or `FreeBSD`, as OSType is reported."""
    lowered = os_type.lower()
    if lowered.startswith("win"):
        return "Windows"
    if lowered.startswith("freebsd"):
        return "FreeBSD"
    return "Linux"

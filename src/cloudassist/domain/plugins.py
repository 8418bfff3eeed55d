"""Cloud Assistant plug-ins as ListPluginStatus shows them (reference A.17), and how the agent's reports read.

The official agent posts `{"os", "arch", "plugin": [{"pluginId", "name", "status", "version", "uptime"}]}` to
`/luban/api/v1/plugin/report_status` (its plug-in manager, every 5 and 15 minutes and after a change); its
statuses are the plug-in manager's words, mapped here to the API's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cloudassist.domain.text import storable

#: The agent's status words → the API's PluginStatus.
AGENT_STATUSES: Final = {
    "ONCE_INSTALLED": "Installed",
    "PERSIST_RUNNING": "Running",
    "PERSIST_FAIL": "Crashed",
    "PERSIST_UNKNOWN": "Unknown",
    "REMOVED": "Removed",
    # the API's own words, as our agent (or a newer official one) may send them
    "Installed": "Installed",
    "Running": "Running",
    "Stopped": "Stopped",
    "Crashed": "Crashed",
    "Removed": "Removed",
    "Unknown": "Unknown",
}
#: What ListPluginStatus shows for a plug-in an instance never reported.
NOT_INSTALLED: Final = "NotInstalled"
#: The official agent truncates names and versions to these (its PLUGIN_NAME_MAXLEN/PLUGIN_VERSION_MAXLEN);
#: ListPluginStatus takes a Name of up to 255 characters.
MAX_NAME: Final = 255
MAX_VERSION: Final = 64
#: Plug-ins taken from one report; an agent with more is not an agent we know.
MAX_PER_REPORT: Final = 100


@dataclass(frozen=True)
class PluginStatus:
    name: str
    version: str
    status: str
    first_heartbeat_time: datetime | None
    last_heartbeat_time: datetime | None


@dataclass(frozen=True)
class Reported:
    """One plug-in of a report, read."""

    name: str
    version: str
    status: str


class BadReport(ValueError):
    """A plug-in report that is not one (the agent face answers it 400)."""


def read_report(body: Any) -> list[Reported]:
    """The plug-ins of a report body (parsed JSON). Unknown status words read as Unknown; an item with no name,
    or a body of another shape, is a BadReport."""
    if not isinstance(body, dict) or not isinstance(body.get("plugin") or [], list):
        raise BadReport("the body is not a plug-in report")
    items = body.get("plugin") or []
    if len(items) > MAX_PER_REPORT:
        raise BadReport(f"more than {MAX_PER_REPORT} plug-ins in one report")
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise BadReport("a plug-in is an object")
        name, version, status = item.get("name"), item.get("version") or "", item.get("status") or ""
        if not (isinstance(name, str) and isinstance(version, str) and isinstance(status, str)):
            raise BadReport("a plug-in's name, version and status are texts")
        if not name or not all(storable(t) for t in (name, version, status)):
            raise BadReport("a plug-in needs a name")
        found.append(Reported(name[:MAX_NAME], version[:MAX_VERSION], AGENT_STATUSES.get(status, "Unknown")))
    return found

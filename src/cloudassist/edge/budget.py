"""How many connections each face may hold: what the open-file limit allows, less a reserve.

Every connection is a file descriptor, and so are the database's connections, SQLite's files, the log
and the listening sockets. A face that may hold more connections than the process may open stops
accepting anyone (accept() fails with EMFILE) and takes the other face with it; so the faces' caps are
cut from the limit, and what is left over is kept for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: What a face may hold when the operator did not say.
DEFAULT_API: Final = 1000
#: Descriptors kept for the database, files and logs: a sixteenth of the limit, at least this many.
MIN_RESERVE: Final = 64


@dataclass(frozen=True)
class Budget:
    """The connections each face may hold, out of `open_files`."""

    open_files: int
    api: int
    agent: int

    @classmethod
    def of(cls, open_files: int, api: int = 0, agent: int = 0, *, agent_face: bool = True) -> Budget:
        """Caps for both faces within `open_files`. `api` and `agent` are what the operator asked (0: the
        defaults): the API face DEFAULT_API, the agent face everything else. Either is cut down to fit:
        the API face to a quarter of what may be spent when the agent face is on, the agent face to the rest."""
        reserve = max(MIN_RESERVE, open_files // 16)
        spendable = max(2, open_files - reserve)
        api_room = spendable // 4 if agent_face else spendable
        api_cap = max(1, min(api or DEFAULT_API, api_room))
        agent_room = max(1, spendable - api_cap)
        agent_cap = min(agent or agent_room, agent_room) if agent_face else 0
        return cls(open_files, api_cap, agent_cap)

    def describe(self) -> str:
        return (
            f"open files allowed: {self.open_files}; connections: API {self.api}, agent face {self.agent} "
            f"(a connected agent holds one or two; the rest is kept for the database and files)"
        )

"""What a starting agent loads: nothing of the server's stack, none of the libraries it dropped for its footprint,
and the parts for file and scheduled tasks only once such a task comes (bench/agent_footprint.py has the sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: `cloudassist agent run` up to the point where the agent serves: the CLI resolves the command, the identity
#: is made, the Agent (with its ServerClient, journal, spool and scheduler) is built. Prints sys.modules.
_START = """
import json, sys
from pathlib import Path
from cloudassist.cli.main import main
main.get_command(None, "agent")
from cloudassist.agent import identity as ident
from cloudassist.agent.runner import Agent
key = ident.generate()
identity = ident.Identity("mi-x", "0" * 32, "cn-test", "127.0.0.1:9", "", "", key)
agent = Agent(identity, Path(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""

SERVER = ("sqlalchemy", "starlette", "uvicorn", "alembic", "asyncpg", "aiosqlite", "cloudassist.api",
          "cloudassist.services", "cloudassist.store", "cloudassist.server")
DROPPED = ("cryptography", "httpx", "httpcore", "anyio", "websockets", "pyasn1")
LATER = ("cloudassist.agent.sendfile", "cloudassist.domain.files", "cloudassist.domain.schedules",
         "cloudassist.domain.cron", "zoneinfo", "cloudassist.agent.session", "cloudassist.agent.terminal",
         "cloudassist.agent.portforward", "cloudassist.domain.frames")


def test_a_starting_agent_loads_no_server_code_and_no_heavy_library(tmp_path: Path) -> None:
    """The modules loaded by a starting agent include none of the server's, none of cryptography, httpx,
    websockets (or their dependencies), and not yet the file-task, schedule and Session Manager code (nor
    the zone database, TZ being unset)."""
    env = {k: v for k, v in os.environ.items() if k != "TZ"}
    done = subprocess.run([sys.executable, "-c", _START, str(tmp_path)], capture_output=True, text=True, env=env,
                          check=True, timeout=120)
    loaded = json.loads(done.stdout)
    assert "cloudassist.agent.runner" in loaded
    assert [m for m in loaded if m.startswith(SERVER)] == []
    assert [m for m in loaded if m.split(".")[0] in DROPPED] == []
    assert [m for m in loaded if m.startswith(LATER)] == []

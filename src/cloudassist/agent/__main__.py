"""`python -m cloudassist.agent run|register|…`: the agent without the server's command line (and `run`
without click: agent/serve.py)."""

from __future__ import annotations

from cloudassist.agent.serve import main

main()

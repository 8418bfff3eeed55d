"""`python -m cloudassist.agent run|register|…`: the agent without the server's command line."""

from __future__ import annotations

from cloudassist.agent.cli import agent

agent()

"""`python -m cloudassist` runs the command line."""

from __future__ import annotations

from cloudassist.cli.main import main

main()

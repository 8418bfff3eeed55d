"""The fleet tier: a thousand simulated official agents (bench/fleet.py) against one live server per engine.

The simulator is the project's own benchmark driver, imported from bench/; it is a black-box client of the
agent face (real activations, real RSA-2048 keys, TLS, websockets, signed requests, real `/bin/sh` runs).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

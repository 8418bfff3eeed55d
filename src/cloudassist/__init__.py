"""cloudassist: a self-hosted Cloud Assistant that speaks the ECS Cloud Assistant API."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

"""Generated documentation stays in step with the code."""

from __future__ import annotations

from cloudassist import docs
from cloudassist.settings import SETTINGS


def test_generated_pages_are_current() -> None:
    """docs/api-coverage.md and docs/settings.md equal what the registry and settings table generate."""
    for name, render in docs.PAGES.items():
        assert (docs.DOCS / name).read_text() == render(), f"run python -m cloudassist.docs ({name})"


def test_every_setting_is_documented_with_its_variable() -> None:
    """Each setting's CLOUDASSIST_* variable appears in docs/settings.md."""
    page = (docs.DOCS / "settings.md").read_text()
    assert all(f"`{s.env}`" in page for s in SETTINGS)

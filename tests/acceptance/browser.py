"""A real headless Chromium for the console's end-to-end tests and screenshots: Debian's `chromium`, driven by
Playwright for Python (never `playwright install`: no browser is downloaded). Missing, it is a failure that
says how to install it, never a skip."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("CLOUDASSIST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on the way out."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        raise AssertionError(
            f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` as root (scripts/setup does it in test mode), "
            "or point CLOUDASSIST_CHROMIUM at one"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()

"""A real headless Chromium for the console's end-to-end tests and screenshots: Debian's `chromium`, driven by
Playwright for Python (never `playwright install`: no browser is downloaded). Missing, it is a failure that
says how to install it, never a skip."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator

from playwright.sync_api import Browser, Page, expect, sync_playwright

from acceptance.agents import Agent
from acceptance.sdk import AK, SECRET, Server
from cloudassist.testing import wait_for

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


#: Generous: the machine is shared, and an agent reports running output about once a second.
WAIT_MS = 60_000


@contextlib.contextmanager
def console_page(server: Server) -> Iterator[Page]:
    """A fresh browser page on the server's console; on the way out, no request of it went anywhere but this
    server."""
    base = f"http://{server.endpoint}"
    with chromium() as browser:
        context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
        seen: list[str] = []
        context.on("request", lambda request: seen.append(request.url))
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions: a loaded CI machine is slow
        yield page
        context.close()
    foreign = [url for url in seen if not url.startswith(base + "/")]
    assert not foreign, foreign


def sign_in(page: Page, access_key_id: str = AK, secret: str = SECRET) -> None:
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    page.fill("input[name=access_key_id]", access_key_id)
    page.fill("input[name=access_key_secret]", secret)
    page.click("#signin")
    expect(page.locator("h1")).to_contain_text("Fleet")


def register_from_console(page: Page, server: Server, agent: Agent) -> Agent:
    """Create an activation in the console and register a real agent with the id and code its commands show."""
    page.click("text=Activations")
    page.fill("input[name=instance_count]", "1")
    page.fill("input[name=description]", "browser test")
    page.click("#create")
    install = page.locator("#install").inner_text()
    code = re.search(r"CLOUDASSIST_ACTIVATION_CODE='([^']+)'", install)
    activation = re.search(r"--activation-id (\S+)", install)
    assert code, install
    assert activation, install
    assert f"--server {server.live.agent_endpoint}" in install
    assert "BEGIN CERTIFICATE" in install
    agent.register(server.live, activation.group(1), code.group(1)).start()
    wait_for(agent.connected, 60, f"agent {agent.instance_id} to connect")
    return agent

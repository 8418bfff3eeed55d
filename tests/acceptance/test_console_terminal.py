"""The console's terminal end to end, in a real headless Chromium: xterm.js served by the server opens a Session
Manager shell on a real `cloudassist agent` (a throwaway user's login shell on a real PTY), keystrokes go
through the relay and back, a window resize reaches `stty`, Ctrl-C interrupts, `exit 3` ends the session with
its status; the sessions page audits it and replays its transcript. The test has an account of its own, which
keeps transcripts (its SessionManagerDelivery is on), so no other test's sessions are recorded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from acceptance.agents import agents
from acceptance.browser import console_page, register_from_console, sign_in
from acceptance.sdk import Core, Server, unique
from cloudassist.services.access import AccessService
from users import throwaway_user

pytestmark = pytest.mark.acceptance


@pytest.fixture
def user() -> Iterator[str]:
    with throwaway_user() as name:
        yield name


def screen(page: Page) -> str:
    """What the terminal shows now (xterm.js's DOM renderer: one element a row)."""
    return page.locator("#terminal .xterm-rows").inner_text()


def typed(page: Page, line: str) -> None:
    page.locator("#terminal").click()
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def test_a_browser_terminal_runs_a_shell_resizes_interrupts_and_is_audited(
    server: Server, tmp_path: Path, user: str
) -> None:
    key = server.loop.run_until_complete(AccessService(server.ctx).create_key(unique("terminal")))
    Core(server.endpoint, key.access_key_id, key.secret).call(
        "ModifyCloudAssistantSettings",
        {
            "SettingType": "SessionManagerDelivery",
            "SlsDeliveryConfig": json.dumps({"Enabled": True, "ProjectName": "audit", "LogstoreName": "sessions"}),
        },
    )
    with console_page(server) as page, agents(tmp_path) as made:
        sign_in(page, key.access_key_id, key.secret)
        agent = register_from_console(page, server, made.new("terminal"))
        page.goto(f"/console/instances?q={agent.instance_id}")
        page.click(f"tr[data-instance={agent.instance_id}] a.terminal-link")
        expect(page).to_have_url(re.compile(rf"/console/instances/{agent.instance_id}/terminal"))

        # another user's shell: the form reopens the page with a new session for it
        page.fill("input[name=user]", user)
        page.click("#terminal-open")
        state = page.locator("#terminal-state")
        expect(state).to_have_attribute("data-state", "open")
        expect(page.locator("#terminal .xterm-rows")).to_contain_text("$")
        typed(page, "echo hello-$((6*7)) $(id -un)")
        expect(page.locator("#terminal .xterm-rows")).to_contain_text(f"hello-42 {user}")

        # the page fits the terminal to the window; a narrower window is a resize the shell sees
        typed(page, "stty size | sed 's/^/size=/'")
        expect(page.locator("#terminal .xterm-rows")).to_contain_text(re.compile(r"size=\d+ \d+"))
        wide = int(re.findall(r"size=\d+ (\d+)", screen(page))[-1])
        page.set_viewport_size({"width": 700, "height": 600})
        typed(page, "clear; stty size | sed 's/^/now=/'")
        expect(page.locator("#terminal .xterm-rows")).to_contain_text(re.compile(r"now=\d+ \d+"))
        narrow = int(re.findall(r"now=\d+ (\d+)", screen(page))[-1])
        assert 10 < narrow < wide, (narrow, wide)

        # Ctrl-C reaches the remote foreground job, and the shell lives on
        typed(page, "sleep 60")
        page.wait_for_timeout(1000)
        page.keyboard.press("Control+C")
        typed(page, "echo after-$((1+1))")
        expect(page.locator("#terminal .xterm-rows")).to_contain_text("after-2", timeout=30_000)

        typed(page, "exit 3")
        expect(state).to_have_attribute("data-state", "closed")
        expect(state).to_contain_text("exit status 3")
        session_id = page.locator("#terminal").get_attribute("data-session")
        assert session_id

        # the audit: who, from where, how it ended, and the transcript replayed in a terminal
        page.click("text=Sessions")
        row = page.locator(f"#sessions tr[data-session={session_id}]")
        expect(row).to_contain_text(key.access_key_id)
        expect(row).to_contain_text(f"as {user}")
        expect(row).to_contain_text(agent.instance_id)
        expect(row).to_contain_text("Terminated")
        channel = row.get_attribute("data-channel")
        row.locator("text=transcript").click()
        expect(page.locator("#replay")).to_have_attribute("data-state", "replayed")
        expect(page.locator("#replay .xterm-rows")).to_contain_text("after-2")  # what the screen showed after `clear`
        raw = page.request.get(page.locator("a[download]").get_attribute("href") or "")
        assert raw.status == 200
        assert f"hello-42 {user}".encode() in raw.body()
        assert b"after-2" in raw.body()

    # the other account sees neither the session nor its transcript
    with console_page(server) as other:
        sign_in(other)
        assert other.request.get(f"/console/sessions/{channel}/transcript.bin").status == 404
        other.goto("/console/sessions")
        expect(other.locator(f"#sessions tr[data-session={session_id}]")).to_have_count(0)

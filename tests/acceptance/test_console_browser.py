"""The web console end to end, in a real headless Chromium against a live server and a real agent: sign in, see
the fleet, register an agent with the commands an activation shows, run a command and watch its output arrive
while it runs, stop a running one, sign out. Every request the pages make goes to the server itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from acceptance.agents import agents
from acceptance.browser import console_page, register_from_console, sign_in
from acceptance.sdk import AK, SECRET, Server
from cloudassist.testing import wait_for


@pytest.fixture
def page(server: Server) -> Iterator[Page]:
    with console_page(server) as page:
        yield page


def run(page: Page, instance_id: str, script: str) -> str:
    """Run `script` on the instance through the run form; the new invocation's id (its page is open)."""
    page.goto("/console/run")
    page.fill("textarea[name=content]", script)
    page.check(f"input[name=instance][value={instance_id}]")
    page.fill("input[name=timeout]", "300")
    page.click("#run")
    expect(page).to_have_url(re.compile(r"/console/invocations/t-"))
    return page.url.rsplit("/", 1)[1]


def test_sign_in_run_watch_stop_sign_out(server: Server, page: Page, tmp_path: Path) -> None:
    """The operator's round trip, in the browser alone (no SDK call anywhere)."""
    sign_in(page)
    with agents(tmp_path) as made:
        agent = register_from_console(page, server, made.new("console"))
        page.goto(f"/console/instances?q={agent.instance_id}")
        row = page.locator(f"tr[data-instance={agent.instance_id}]")
        expect(row.locator(".state")).to_have_text("online")

        # output streams while the command runs: the first line shows before the last is written (20 s apart, so a
        # loaded machine that shows a line several seconds late still sees it while the command runs)
        run(page, agent.instance_id, "echo first-line; sleep 20; echo last-line")
        result = page.locator(f"section.result[data-instance={agent.instance_id}]")
        output = result.locator("[data-field=output]")
        expect(output).to_contain_text("first-line")
        assert "last-line" not in output.inner_text()
        expect(result.locator("[data-field=status]")).to_have_text("Running")
        expect(output).to_contain_text("last-line")
        expect(result.locator("[data-field=status]")).to_have_text("Success")
        expect(result.locator("[data-field=exit_code]")).to_have_text("0")
        expect(page.locator("#task-status")).to_have_text("Success")
        expect(page.locator("#results")).to_have_attribute("data-state", "end")

        # stop a running one: its agent kills it, the record ends Terminated
        run(page, agent.instance_id, "echo started; sleep 300; echo never")
        expect(result.locator("[data-field=output]")).to_contain_text("started")
        page.click("#stop")
        expect(result.locator("[data-field=status]")).to_have_text("Terminated")
        expect(page.locator("#task-status")).to_have_text("Stopped")
        assert "never" not in result.locator("[data-field=output]").inner_text()

        # the list, filtered to this test's instance (the server is shared with the other acceptance tests)
        page.click("text=Invocations")
        page.fill("input[name=instance_id]", agent.instance_id)
        page.press("input[name=instance_id]", "Enter")
        expect(page.locator("#invocations tbody tr")).to_have_count(2)

        # a file picked from disk is sent (Base64, read by the page's script) and written by the agent
        picked = tmp_path / "settings.ini"
        picked.write_bytes(b"[main]\nanswer = 42\n\xe2\x98\x83\n")
        target = tmp_path / "sent"
        page.goto("/console/files")
        page.set_input_files("#file-pick", str(picked))
        expect(page.locator("input[name=name]")).to_have_value("settings.ini")
        page.fill("input[name=target_dir]", str(target))
        page.check(f"input[name=instance][value={agent.instance_id}]")
        page.click("#send-file button[type=submit]")
        wait_for(lambda: (target / "settings.ini").exists(), 60, "the file to be written")
        assert (target / "settings.ini").read_bytes() == picked.read_bytes()

        token = next(c["value"] for c in page.context.cookies() if c["name"] == "ca_session")
        page.click("#signout")
        expect(page).to_have_url(re.compile(r"/console/signin"))
        page.goto("/console/instances")
        expect(page).to_have_url(re.compile(r"/console/signin"))
    log = server.log()
    assert f"console sign-in: account=default AccessKeyId={AK}" in log
    assert token not in log
    assert SECRET not in log

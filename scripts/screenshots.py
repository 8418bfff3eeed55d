"""Screenshots of the web console's main pages into docs/console/*.png, taken from a live server with a real agent.

    .venv/bin/python scripts/screenshots.py [--out docs/console]

Starts `cloudassist server` on SQLite in a temporary directory, signs in with headless Chromium (Debian's
`chromium`, as the browser tests use it), registers a real `cloudassist agent` with an activation made in the
console, runs a few commands, saves one, sends a file, and photographs each page. Everything is stopped on the
way out. Not a test: run it by hand after changing a page.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import Page, expect  # noqa: E402

from acceptance.agents import agents  # noqa: E402
from acceptance.browser import chromium  # noqa: E402
from cloudassist.testing import LiveServer, wait_for  # noqa: E402
from users import throwaway_user  # noqa: E402

AK, SECRET = "demo-key", "demo-secret"


def shoot(page: Page, out: Path, name: str) -> None:
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"wrote {out / name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, agents(Path(tmp) / "agents") as made, chromium() as browser:
        live = LiveServer(Path(tmp) / "server", access_key_id=AK, secret=SECRET).start()
        try:
            page = browser.new_context(base_url=f"http://{live.endpoint}", viewport={"width": 1280, "height": 800})
            page = page.new_page()
            page.set_default_timeout(60_000)
            page.goto("/console/")
            page.fill("input[name=access_key_id]", AK)
            shoot(page, out, "signin")
            page.fill("input[name=access_key_secret]", SECRET)
            page.click("#signin")

            page.goto("/console/activations")
            page.fill("input[name=instance_count]", "10")
            page.fill("input[name=description]", "web servers")
            page.click("#create")
            install = page.locator("#install").inner_text()
            code = re.search(r"CLOUDASSIST_ACTIVATION_CODE='([^']+)'", install)
            activation = re.search(r"--activation-id (\S+)", install)
            assert code is not None
            assert activation is not None
            shoot(page, out, "activations")
            agent = made.new("web-1").register(live, activation.group(1), code.group(1)).start()
            wait_for(agent.connected, 60, "the agent to connect")
            live.api(
                Action="TagResources",
                ResourceType="managedinstance",
                **{
                    "ResourceId.1": agent.instance_id,
                    "Tag.1.Key": "env",
                    "Tag.1.Value": "prod",
                    "Tag.2.Key": "role",
                    "Tag.2.Value": "web",
                },
            )
            page.goto("/console/instances")
            shoot(page, out, "fleet")

            page.goto(f"/console/run?instance={agent.instance_id}")
            page.fill("textarea[name=content]", 'uname -a\nfor i in 1 2 3 4 5 6; do echo "step $i of 6"; sleep 1; done')
            page.fill("input[name=name]", "rolling check")
            page.fill("input[name=timeout]", "120")
            shoot(page, out, "run")
            page.click("#run")
            result = page.locator(f"section.result[data-instance={agent.instance_id}] [data-field=output]")
            expect(result).to_contain_text("step 2 of 6")
            shoot(page, out, "invocation-live")
            expect(page.locator("#results")).to_have_attribute("data-state", "end")
            shoot(page, out, "invocation")

            page.goto("/console/commands")
            page.fill("input[name=name]", "disk usage")
            page.fill("textarea[name=content]", "df -h {{mount}}")
            page.check("input[name=enable_parameter]")
            page.click("#save-command")
            page.goto("/console/invocations")
            shoot(page, out, "invocations")
            page.goto("/console/commands")
            shoot(page, out, "commands")

            page.goto("/console/files")
            page.fill("input[name=name]", "motd")
            page.fill("input[name=target_dir]", str(Path(tmp) / "files"))
            page.fill("textarea[name=content]", "Welcome to web-1\n")
            page.check(f"input[name=instance][value={agent.instance_id}]")
            page.click("#send-file button[type=submit]")
            page.wait_for_timeout(3000)
            page.goto("/console/files")
            shoot(page, out, "files")

            with throwaway_user() as user:  # a session as root is refused by the agent
                page.goto(f"/console/instances/{agent.instance_id}/terminal?user={user}")
                expect(page.locator("#terminal-state")).to_have_attribute("data-state", "open")
                page.locator("#terminal").click()
                for line in ("id", "uname -sr", "df -h / | tail -1", "ls /etc | head -4", "sleep 30"):
                    page.keyboard.type(line)
                    page.keyboard.press("Enter")
                    page.wait_for_timeout(800)  # typed ahead, a line would be echoed into the last one's output
                page.keyboard.press("Control+C")
                page.wait_for_timeout(500)
                shoot(page, out, "terminal")
                page.keyboard.type("exit 0")
                page.keyboard.press("Enter")
                expect(page.locator("#terminal-state")).to_have_attribute("data-state", "closed")
                page.goto("/console/sessions")
                shoot(page, out, "sessions")
        finally:
            live.stop()


if __name__ == "__main__":
    main()

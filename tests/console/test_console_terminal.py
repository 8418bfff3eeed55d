"""The console's terminal and session audit, without a browser: starting a session needs the CSRF token and an
instance of the signed-in account, answers the API's error when Session Manager is off, hands out a token that
works once; the audit and transcripts of one account are 404 to another. In-process, on both engines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consolewire import Browser, browser_of

import cloudassist.console
from cloudassist.domain.sessions import CLIENT_CLOSED, TERMINATED
from cloudassist.services.assistant_settings import AssistantSettingsService
from cloudassist.services.context import Context
from cloudassist.services.sessions import Refused, SessionService
from conftest import AK, B_SECRET, BK, SECRET, Accounts


async def signed_in(ctx: Context, key: str = AK, secret: str = SECRET) -> Browser:
    browser = browser_of(ctx)
    assert (await browser.sign_in(key, secret)).status_code == 303
    return browser


async def test_a_terminal_session_is_started_with_the_csrf_token_for_ones_own_instance(
    ctx: Context, accounts: Accounts
) -> None:
    """The POST answers the session and the relay's path with a token bound to that instance, recorded as the
    signed-in key's; without the CSRF token, or for another account's instance, nothing is started."""
    a = await signed_in(ctx)
    start = f"/console/instances/{accounts.a_instance}/terminal"
    assert (await a.client.post(start, data={"csrf": "forged"})).status_code == 403
    refused = await a.post(f"/console/instances/{accounts.b_instance}/terminal", {})
    assert refused.status_code == 404
    assert refused.json()["code"] == "InvalidInstance.NotFound"
    answer = await a.post(start, {"user": "deploy"})
    assert answer.status_code == 201, answer.text
    started = answer.json()
    path = urlsplit(started["path"])
    assert path.path == "/session"
    query = parse_qs(path.query)
    assert query["sessionId"] == [started["session"]]
    service = SessionService(ctx)
    opened = await service.open_connection(started["session"], query["token"][0], None, "127.0.0.1")
    assert opened.session.access_key_id == AK
    assert opened.session.spec.username == "deploy"
    assert opened.connection.instance_id == accounts.a_instance
    with pytest.raises(Refused):  # a shell session's token works once
        await service.open_connection(started["session"], query["token"][0], None, "127.0.0.1")


async def test_a_bad_user_name_and_a_disabled_session_manager_get_the_apis_errors(
    ctx: Context, accounts: Accounts
) -> None:
    """The page shows what StartTerminalSession would answer: the parameter's error for a user name no agent
    accepts, UserBehavior.SessionManagerDisabled (403) once the account turned Session Manager off."""
    a = await signed_in(ctx)
    start = f"/console/instances/{accounts.a_instance}/terminal"
    bad = await a.post(start, {"user": "Root;rm"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "InvalidParameter.Username"
    async with ctx.store.read() as tx:
        key = await tx.accounts.key(AK)
    assert key is not None
    off = {"SessionManagerConfig": {"SessionManagerEnabled": False}}
    await AssistantSettingsService(ctx).modify(key.account_id, "SessionManagerConfig", off)
    disabled = await a.post(start, {})
    assert disabled.status_code == 403
    assert disabled.json()["code"] == "UserBehavior.SessionManagerDisabled"


async def test_one_accounts_sessions_and_transcripts_are_404_to_another(ctx: Context, accounts: Accounts) -> None:
    """A's ended session with a kept transcript: A's audit lists it and serves the transcript (page and bytes);
    B's audit does not list it, and both transcript addresses are 404 to B."""
    a = await signed_in(ctx)
    started = (await a.post(f"/console/instances/{accounts.a_instance}/terminal", {})).json()
    token = parse_qs(urlsplit(started["path"]).query)["token"][0]
    service = SessionService(ctx)
    opened = await service.open_connection(started["session"], token, None, "127.0.0.1")
    channel = opened.connection.channel_id
    await service.finish(
        opened.connection,
        TERMINATED,
        CLIENT_CLOSED,
        "",
        bytes_in=5,
        bytes_out=11,
        transcript=b"$ id\r\nuid=0\r\n",
        truncated=False,
    )
    listing = await a.client.get("/console/sessions")
    assert started["session"] in listing.text
    assert f"/console/sessions/{channel}/transcript" in listing.text
    assert (await a.client.get(f"/console/sessions/{channel}/transcript")).status_code == 200
    raw = await a.client.get(f"/console/sessions/{channel}/transcript.bin")
    assert raw.status_code == 200
    assert raw.content == b"$ id\r\nuid=0\r\n"
    assert raw.headers["content-disposition"] == f'attachment; filename="{channel}.typescript"'

    b = await signed_in(ctx, BK, B_SECRET)
    assert started["session"] not in (await b.client.get("/console/sessions")).text
    assert (await b.client.get(f"/console/sessions/{channel}/transcript")).status_code == 404
    assert (await b.client.get(f"/console/sessions/{channel}/transcript.bin")).status_code == 404


def test_the_vendored_terminal_is_the_one_recorded() -> None:
    """xterm.js and its fit add-on are served from the package as scripts/vendor-xterm fetched them from npm:
    each file's SHA-256 is the one VERSIONS records (a hand edit or a partial upgrade fails here)."""
    folder = Path(cloudassist.console.__file__).parent / "static" / "xterm"
    recorded = {}
    for line in (folder / "VERSIONS").read_text().splitlines():
        if line and not line.startswith(("#", "@")):
            digest, name = line.split()
            recorded[name] = digest
    assert set(recorded) == {"xterm.js", "addon-fit.js", "xterm.css", "LICENSE"}
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name

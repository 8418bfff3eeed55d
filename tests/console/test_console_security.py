"""The console's security, without a browser: cookie flags, CSRF, rate-limited sign-in, sign-out that really
ends the session, and one account never reaching another's invocation. In-process, on both engines."""

from __future__ import annotations

from dataclasses import replace

from consolewire import browser_of, csrf_of

from cloudassist.services.access import AccessService
from cloudassist.services.context import Context
from cloudassist.testing import FixedClock
from conftest import AK, B_SECRET, BK, SECRET, Accounts


async def _run(ctx: Context, key: str, secret: str, instance: str) -> str:
    """Sign in with `key` and run `echo hi` on `instance`; the new InvokeId."""
    browser = browser_of(ctx)
    assert (await browser.sign_in(key, secret)).status_code == 303
    answer = await browser.post("/console/run", {"type": "RunShellScript", "content": "echo hi", "instance": instance})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[1]


async def test_session_cookie_is_httponly_strict_and_scoped(ctx: Context, accounts: Accounts) -> None:
    """Signing in sets the session cookie HttpOnly, SameSite=Strict, on /console/ only, and not Secure over
    plain HTTP; the secret appears nowhere in the answer."""
    browser = browser_of(ctx)
    answer = await browser.sign_in(AK, SECRET)
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ca_session="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console/" in flags
    assert "secure" not in flags
    assert SECRET not in cookie


async def test_session_cookie_is_secure_over_tls(ctx: Context, accounts: Accounts) -> None:
    """Served over HTTPS (or behind a proxy saying X-Forwarded-Proto: https), the cookie is also Secure."""
    answer = await browser_of(ctx, "https://console.example").sign_in(AK, SECRET)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("ca_session="))
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]
    proxied = await browser_of(ctx).client.get("/console/signin", headers={"x-forwarded-proto": "https"})
    assert "secure" in [part.strip().lower() for part in proxied.headers["set-cookie"].split(";")]


async def test_wrong_secret_is_refused_and_rate_limited(ctx: Context, accounts: Accounts) -> None:
    """A wrong secret (or an unknown key) gets the form again with a 401 and no session; once the address has
    spent its budget of failures, even the right secret is refused with 429 and a Retry-After."""
    limited = replace(ctx, settings=ctx.settings.replace(auth_failures_per_minute=3, auth_throttle_exempt=()))
    browser = browser_of(limited)
    for key, secret in ((AK, "wrong"), ("nosuchkey", SECRET), (BK, SECRET)):
        answer = await browser.sign_in(key, secret)
        assert answer.status_code == 401
        assert "Wrong AccessKeyId or AccessKeySecret" in answer.text
        assert "ca_session" not in browser.client.cookies
    answer = await browser.sign_in(AK, SECRET)
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1


async def test_disabled_key_cannot_sign_in_and_its_sessions_end(ctx: Context, accounts: Accounts) -> None:
    """A disabled key cannot sign in, and a session opened with it before is refused from then on."""
    browser = browser_of(ctx)
    assert (await browser.sign_in(BK, B_SECRET)).status_code == 303
    await AccessService(ctx).set_enabled(BK, False)
    answer = await browser.client.get("/console/instances")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/signin")
    assert (await browser_of(ctx).sign_in(BK, B_SECRET)).status_code == 401


async def test_forms_without_the_csrf_token_are_refused(ctx: Context, accounts: Accounts) -> None:
    """Every POST needs the session's CSRF token: missing, wrong or from another session, it is a 403 and
    nothing runs; a form posted from another origin is refused even with the token; so is a sign-in form
    without its own token."""
    browser, other = browser_of(ctx), browser_of(ctx)
    await browser.sign_in(AK, SECRET)
    await other.sign_in(AK, SECRET)
    run = {"type": "RunShellScript", "content": "echo hi", "instance": accounts.a_instance}
    for token in ("", "forged", other.csrf):
        answer = await browser.client.post("/console/run", data={**run, "csrf": token})
        assert answer.status_code == 403, token
    answer = await browser.post("/console/run", run, headers={"origin": "https://evil.example"})
    assert answer.status_code == 403
    listing = await browser.client.get("/console/invocations")
    assert "No invocations match" in listing.text
    answer = await browser_of(ctx).client.post(
        "/console/signin", data={"access_key_id": AK, "access_key_secret": SECRET, "csrf": "x"}
    )
    assert answer.status_code == 403
    assert (await browser.post("/console/run", run)).status_code == 303  # the token itself works


async def test_another_accounts_invocation_is_404(ctx: Context, accounts: Accounts) -> None:
    """Account B sees nothing of account A's invocation: its page, its event stream, stop and re-run are all
    404, and B's listing does not show it; A itself sees it."""
    invoke_id = await _run(ctx, AK, SECRET, accounts.a_instance)
    b = browser_of(ctx)
    await b.sign_in(BK, B_SECRET)
    base = f"/console/invocations/{invoke_id}"
    assert (await b.client.get(base)).status_code == 404
    assert (await b.client.get(f"{base}/events")).status_code == 404
    assert (await b.post(f"{base}/stop", {})).status_code == 404
    assert (await b.post(f"{base}/rerun", {})).status_code == 404
    assert invoke_id not in (await b.client.get("/console/invocations")).text
    assert accounts.a_instance not in (await b.client.get("/console/instances")).text
    a = browser_of(ctx)
    await a.sign_in(AK, SECRET)
    page = await a.client.get(base)
    assert page.status_code == 200
    assert accounts.a_instance in page.text


async def test_signed_out_cookie_is_refused(ctx: Context, accounts: Accounts) -> None:
    """After signing out, the old cookie (replayed by hand) opens nothing: pages redirect to the sign-in form,
    the event stream and forms answer 401."""
    invoke_id = await _run(ctx, AK, SECRET, accounts.a_instance)
    browser = browser_of(ctx)
    await browser.sign_in(AK, SECRET)
    token = browser.client.cookies["ca_session"]
    answer = await browser.post("/console/signout", {})
    assert answer.status_code == 303
    replay = browser_of(ctx)
    replay.client.cookies.set("ca_session", token, path="/console/")
    page = await replay.client.get("/console/instances")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/signin")
    assert (await replay.client.get(f"/console/invocations/{invoke_id}/events")).status_code == 401
    answer = await replay.client.post("/console/run", data={"csrf": browser.csrf, "content": "id"})
    assert answer.status_code == 401


async def test_pages_forbid_framing_and_foreign_scripts(ctx: Context, accounts: Accounts) -> None:
    """Every page says: scripts and styles from this server only, never framed, never cached."""
    browser = browser_of(ctx)
    await browser.sign_in(AK, SECRET)
    for path in ("/console/signin", "/console/instances", "/console/run", "/console/activations"):
        answer = await browser.client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["cache-control"] == "no-store"
        csrf_of(answer.text)


async def test_the_rpc_endpoint_answers_as_before(ctx: Context, accounts: Accounts) -> None:
    """Mounting the console changes nothing at `/`: an unsigned call is still the API's own error envelope."""
    answer = await browser_of(ctx).client.get("/?Action=DescribeInvocations&RegionId=cn-hangzhou")
    assert answer.status_code == 400
    assert answer.json()["Code"] == "MissingParameter.AccessKeyId"


async def test_sign_in_goes_only_to_console_pages(ctx: Context, accounts: Accounts) -> None:
    """After signing in the browser is sent to the page it asked for, and never to another site; an unknown
    region is refused at sign-in."""
    for target, expected in (
        ("/console/invocations", "/console/invocations"),
        ("//evil.example/x", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/other", "/console/"),
    ):
        browser = browser_of(ctx)
        form = await browser.client.get(f"/console/signin?next={target}")
        answer = await browser.client.post(
            "/console/signin",
            data={"csrf": csrf_of(form.text), "access_key_id": AK, "access_key_secret": SECRET, "next": target},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == expected
    limited = replace(ctx, settings=ctx.settings.replace(regions=("cn-hangzhou",)))
    answer = await browser_of(limited).sign_in(AK, SECRET, region="us-west-1")
    assert answer.status_code == 400
    assert "Unknown region" in answer.text


async def test_sessions_expire_and_follow_their_region(ctx: Context, accounts: Accounts, clock: FixedClock) -> None:
    """A session shows the region it looks at (changed with a form), and ends after console_session_hours."""
    browser = browser_of(ctx)
    await browser.sign_in(AK, SECRET)
    assert accounts.a_instance in (await browser.client.get("/console/instances")).text
    assert (
        await browser.post("/console/region", {"region": "cn-beijing", "next": "/console/instances"})
    ).status_code == 303
    assert accounts.a_instance not in (await browser.client.get("/console/instances")).text
    clock.advance(hours=ctx.settings.console_session_hours, seconds=1)
    answer = await browser.client.get("/console/instances")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/signin")

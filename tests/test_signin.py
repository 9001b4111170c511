"""Signing in to the web pages, in headless Chromium against the real service (and the real ``serve`` for the
first-start link): a token typed once becomes a server-side session; the single-use link works once; signing
out, an expired or idle session, a revoked token and a form without its CSRF token are all refused; no token,
code or session id ever shows in a URL, a page or the access log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import aiohttp
import pytest

from surveybot import tokens
from surveybot.clock import iso, utcnow
from surveybot.db import open_db
from surveybot.signing import token_hash
from surveybot.web import sessions
from tests import dashboard_field as field
from tests.mailsink import free_port
from tests.service import running, settings_for


@pytest.fixture
async def service(tmp_path):
    async with field.served(settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")) as served:
        yield served


async def new_page(browser, locale: str = "en-GB"):
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def session_rows(db) -> list[tuple]:
    return db.execute("SELECT id_hash, token_id, csrf FROM web_sessions").fetchall()


async def test_a_token_typed_once_becomes_a_session_until_signed_out(service, browser):
    db, base, token = service["db"], service["base"], service["tokens"]["coordinator"]
    context, page = await new_page(browser)
    response = await page.goto(f"{base}/waves/{field.SLUG}")
    assert page.url == f"{base}/login?next=/waves/{field.SLUG}"  # not signed in: asked to, then brought back
    assert response.status == 200 and await page.get_attribute("#token", "type") == "password"
    await page.fill("#token", token)
    async with page.expect_navigation():
        await page.click("#sign-in")
    assert page.url == f"{base}/waves/{field.SLUG}"
    assert await page.inner_text("h1") == "City diplomacy 2026"

    (cookie,) = await context.cookies()
    assert cookie["name"] == "surveybot_session" and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["secure"]  # the base URL is https
    assert 11 * 3600 < cookie["expires"] - time.time() <= 12 * 3600
    # only hashes are stored; neither the token nor the session id is in the page, its URL or the database
    ((id_hash, token_id, csrf),) = session_rows(db)
    assert id_hash == token_hash(cookie["value"]) and cookie["value"] not in json.dumps(session_rows(db))
    html = await page.content()
    assert token not in html and cookie["value"] not in html and token not in page.url
    assert token_id == tokens.check(db, token)["id"]
    assert await page.get_attribute("#sign-out-form input[name=csrf]", "value") == csrf

    # the session carries on: /, /waves and the wave page open without asking again
    await page.goto(base + "/")
    assert page.url == f"{base}/waves"
    async with page.expect_navigation():
        await page.click("#sign-out")
    assert page.url == f"{base}/login"
    assert session_rows(db) == [] and await context.cookies() == []
    await page.goto(f"{base}/waves")
    assert page.url.startswith(f"{base}/login")
    await context.close()


async def test_a_wrong_or_revoked_token_is_refused(service, browser):
    db, base = service["db"], service["base"]
    revoked_id, revoked = tokens.create(db, "coordinator", None, utcnow())
    tokens.revoke(db, revoked_id, utcnow())
    context, page = await new_page(browser)
    for attempt in ("sbt_not-a-real-token", "garbage", revoked):
        await page.goto(f"{base}/login")
        await page.fill("#token", attempt)
        async with page.expect_navigation() as navigation:
            await page.click("#sign-in")
        assert (await navigation.value).status == 401
        assert "not valid" in await page.inner_text("#error")
        assert await context.cookies() == [] and session_rows(db) == []
        assert attempt not in await page.content()  # the typed token is not shown back
    await context.close()


async def test_expired_idle_and_revoked_sessions_go_back_to_sign_in(service, browser):
    db, base = service["db"], service["base"]
    context, page = await new_page(browser)
    wave_url = f"{base}/waves/{field.SLUG}"
    for spoil in (
        "UPDATE web_sessions SET expires_at = ?",  # past its 12 hours
        "UPDATE web_sessions SET last_seen_at = ?",  # two hours without a request
        "UPDATE api_tokens SET revoked_at = ? WHERE role = 'coordinator'",
    ):
        db.execute("UPDATE api_tokens SET revoked_at = NULL")
        db.conn.commit()
        await field.sign_in(page, base, service["tokens"]["coordinator"])
        await page.goto(wave_url)
        assert page.url == wave_url
        db.execute(spoil, [iso(utcnow() - sessions.IDLE - timedelta(seconds=1))])
        db.conn.commit()
        await page.goto(wave_url)
        assert page.url.startswith(f"{base}/login"), spoil
    await context.close()


async def test_a_form_without_its_csrf_token_is_refused(service, browser):
    db, base = service["db"], service["base"]
    db.execute("UPDATE waves SET state = 'open'")
    db.conn.commit()
    context, page = await new_page(browser)
    await field.sign_in(page, base, service["tokens"]["coordinator"])
    await page.goto(f"{base}/waves/{field.SLUG}")
    # the page's own forms carry the token; a forged post (no token, or a wrong one) is refused
    for body in ("", "csrf=wrong"):
        status = await page.evaluate(
            """async ([url, body]) => (await fetch(url, {method: "POST", body: body,
                 headers: {"Content-Type": "application/x-www-form-urlencoded"}})).status""",
            [f"{base}/waves/{field.SLUG}/pause", body],
        )
        assert status == 403
    assert db.execute("SELECT paused FROM waves").fetchone() == (0,)
    logout = await page.evaluate("async (url) => (await fetch(url, {method: 'POST'})).status", f"{base}/logout")
    assert logout == 403 and len(session_rows(db)) == 1  # still signed in
    # through the page and its confirmation step, with the token: paused
    await page.click("#action-pause")
    assert "Pause wave city?" in await page.inner_text("#question")
    assert db.execute("SELECT paused FROM waves").fetchone() == (0,)  # asking changes nothing
    async with page.expect_navigation():
        await page.click("#confirm")
    assert db.execute("SELECT paused FROM waves").fetchone() == (1,)
    assert await page.inner_text("#notice") == "Wave paused."
    await context.close()


async def test_roles_reach_only_their_pages(service, browser):
    base = service["base"]
    context, page = await new_page(browser)
    await field.sign_in(page, base, service["tokens"]["researcher"])
    assert page.url == f"{base}/interviews"
    response = await page.goto(f"{base}/waves")
    assert response.status == 403 and "does not open this page" in await page.inner_text("#message")
    await context.close()
    context, page = await new_page(browser)
    await field.sign_in(page, base, service["tokens"]["metropolis"])
    assert page.url == f"{base}/waves"
    response = await page.goto(f"{base}/waves/{field.SLUG}/pause")
    assert response.status == 403
    await context.close()


async def test_the_session_cookie_is_secure_only_on_https(tmp_path):
    for base_url, secure in (("https://survey.example.org", True), ("http://127.0.0.1:8080", False)):
        folder = tmp_path / ("s" if secure else "p")
        folder.mkdir()
        settings = settings_for(folder, f"maildir://{folder / 'mail'}", SURVEYBOT_BASE_URL=base_url)
        db = open_db(settings.db_path)
        _, token = tokens.create(db, "coordinator", None, utcnow())
        db.close()
        async with running(settings) as (_, base), aiohttp.ClientSession() as session:
            async with session.post(f"{base}/login", data={"token": token}, allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"] == "/waves"
                cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert ("Secure" in cookie) is secure, cookie


async def test_sign_in_goes_back_only_to_a_page_of_this_site(service):
    async with aiohttp.ClientSession() as session:
        for target, landing in (
            ("/waves/city?lang=es", "/waves/city?lang=es"),
            ("//evil.example.org/", "/waves"),
            ("https://evil.example.org/", "/waves"),
            ("/\\evil.example.org", "/waves"),
            ("/caf\u00e9", "/waves"),
        ):
            async with session.post(
                f"{service['base']}/login",
                allow_redirects=False,
                data={"token": service["tokens"]["coordinator"], "next": target},
            ) as answer:
                assert (answer.status, answer.headers["Location"]) == (303, landing), target


def test_token_create_ties_a_researcher_token_to_an_email(run_cli):
    made = json.loads(
        run_cli(
            "token", "create", "--role", "researcher", "--email", " Marta@Lab.example.org ", "--json", check=True
        ).stdout
    )
    assert made["email"] == "marta@lab.example.org" and made["token"].startswith("sbt_")
    listed = json.loads(run_cli("token", "list", "--json", check=True).stdout)["tokens"]
    assert [(t["role"], t["email"]) for t in listed] == [("researcher", "marta@lab.example.org")]
    wrong_role = run_cli("token", "create", "--role", "coordinator", "--email", "a@b.example.org")
    assert wrong_role.returncode == 1 and "only a researcher's token takes --email" in wrong_role.stderr
    bad = run_cli("token", "create", "--role", "researcher", "--email", "not-an-address")
    assert bad.returncode == 1 and "--email 'not-an-address'" in bad.stderr


# --- the first start of serve ---------------------------------------------------------------------------


def _serve(tmp_path, port: int, *, base_url: bool = True) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SURVEYBOT_")}
    env.update(SURVEYBOT_DB=str(tmp_path / "surveybot.db"), SURVEYBOT_MAIL_URL=f"maildir://{tmp_path / 'mail'}")
    if base_url:
        env["SURVEYBOT_BASE_URL"] = f"http://127.0.0.1:{port}"
    return subprocess.Popen(
        [sys.executable, "-m", "surveybot", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(server: subprocess.Popen) -> str:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
    try:
        output, _ = server.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    return output


def _read_link(server: subprocess.Popen) -> str:
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        seen.append(line)
        if "Sign in" in line:
            return re.search(r"(http://\S+/login/\S+)", line).group(1)
        if "Running" in line or server.poll() is not None:
            break
    raise AssertionError("no sign-in link printed:\n" + "".join(seen))


def _wait_healthy(port: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("serve did not become healthy")


async def test_first_start_prints_a_single_use_sign_in_link(tmp_path, browser):
    port = free_port()
    server = _serve(tmp_path, port)
    try:
        link = _read_link(server)
        _wait_healthy(port)
        code = link.rsplit("/", 1)[1]
        context, page = await new_page(browser)
        response = await page.goto(link)
        assert response.status == 200 and page.url == f"http://127.0.0.1:{port}/waves"  # a clean URL
        assert "Waves" in await page.inner_text("h1") and code not in await page.content()
        await context.close()
        context, page = await new_page(browser)  # the same link again, as if forwarded: refused
        response = await page.goto(link)
        assert response.status == 410 and "used already or has expired" in await page.inner_text("#error")
        assert await context.cookies() == []
        await context.close()
    finally:
        output = _stop(server)
    db = open_db(tmp_path / "surveybot.db")
    try:
        made = db.execute("SELECT role, label FROM api_tokens").fetchall()
        codes = db.execute("SELECT code_hash, used_at IS NOT NULL, expires_at > created_at FROM login_codes").fetchall()
    finally:
        db.close()
    assert made == [("coordinator", sessions.FIRST_START_LABEL)]
    assert codes == [(token_hash(code), 1, 1)]  # only the code's hash is kept
    # the access log masks the code; it is printed once, in the sign-in line
    assert output.count(code) == 0 and '"/login/***"' in output, output
    # a later start (its coordinator has signed in) prints no link
    server = _serve(tmp_path, port)
    try:
        _wait_healthy(port)
    finally:
        output = _stop(server)
    assert "/login/" not in output and "Sign in" not in output


def test_without_a_base_url_the_sign_in_link_points_at_the_port_serve_listens_on(tmp_path):
    """SURVEYBOT_BASE_URL left at its default (port 8080) and serve started on another port: the link printed
    leads to this server, and serve says that the links in e-mail need the setting."""
    port = free_port()
    server = _serve(tmp_path, port, base_url=False)
    try:
        link = _read_link(server)
        note = server.stdout.readline()  # printed next (read here: what readline buffered, communicate misses)
        _wait_healthy(port)
        import urllib.request
        from http.cookiejar import CookieJar

        browser_like = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with browser_like.open(link) as answer:  # follows the redirect to the waves page, signed in
            assert answer.status == 200 and answer.url == f"http://127.0.0.1:{port}/waves"
    finally:
        _stop(server)
    assert link.startswith(f"http://127.0.0.1:{port}/login/")
    assert note.startswith("Note: SURVEYBOT_BASE_URL is not set, so links in e-mail"), note


def test_an_unused_first_start_link_is_issued_again_and_expires(tmp_path):
    db = open_db(tmp_path / "surveybot.db")
    try:
        now = utcnow()
        first = sessions.first_start_code(db, now)
        second = sessions.first_start_code(db, now)  # never used: the next start gets a new link
        assert first and second and first != second
        assert db.execute("SELECT count(*) FROM api_tokens").fetchone() == (1,)
        assert sessions.redeem_code(db, first, now + sessions.CODE_LIFETIME + timedelta(seconds=1)) is None
        token_id = sessions.redeem_code(db, second, now + timedelta(minutes=14))
        assert token_id is not None and sessions.redeem_code(db, second, now + timedelta(minutes=14)) is None
        assert sessions.first_start_code(db, now) is None  # signed in once: no more links
    finally:
        db.close()

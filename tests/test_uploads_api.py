"""Partner uploads over HTTP (auth matrix, report, limits), tokens from the CLI, and the unsubscribe link."""

from __future__ import annotations

import io
import json

import aiohttp
import pytest

from surveybot.signing import service_secret
from surveybot.suppressions import unsubscribe_token
from tests.service import running, settings_for, upload_service_db

CSV = (
    "Full name,E-mail,City,Country,Preferred language\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,es\n"
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,en\n"
    "Nobody,not-an-address,Nowhere,Nowhere,en\n"
    "Ana Again,ANA@bogota.example.org,Bogotá,Colombia,es\n"
).encode()


@pytest.fixture
async def service(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    db, made = upload_service_db(settings)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        yield {"db": db, "base": base, "session": session, "tokens": made}


async def upload(
    service, network: str, token: str | None, body: bytes = CSV, query: str = "", content_type: str = "text/csv"
):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{service['base']}/api/networks/{network}/contacts{query}"
    async with service["session"].post(url, data=io.BytesIO(body), headers=headers) as response:
        return response.status, await response.json(), response.headers


@pytest.mark.parametrize(
    "who, network, status",
    [
        (None, "Metropolis", 401),
        ("sbt_wrong-token-that-does-not-exist", "Metropolis", 401),
        ("garbage", "Metropolis", 401),
        ("revoked", "Metropolis", 401),
        ("eurocities", "Metropolis", 403),
        ("researcher", "Metropolis", 403),
        ("metropolis", "Metropolis", 200),
        ("metropolis", "metropolis", 200),
        ("coordinator", "Metropolis", 200),
    ],
)
async def test_upload_auth_matrix(service, who, network, status):
    token = service["tokens"].get(who, who)
    got, body, headers = await upload(service, network, token)
    assert got == status, body
    count = service["db"].execute("SELECT count(*) FROM contacts").fetchone()[0]
    if status == 200:
        assert count == 3
    else:
        assert "error" in body and count == 1
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_upload_report_is_the_cli_report(service):
    status, report, _ = await upload(
        service, "Metropolis", service["tokens"]["metropolis"], query="?filename=metropolis-2026.csv"
    )
    assert status == 200
    assert {k: report[k] for k in ("rows", "imported", "updated", "duplicates", "conflicts", "rejected")} == {
        "rows": 4,
        "imported": 2,
        "updated": 0,
        "duplicates": 1,
        "conflicts": 1,
        "rejected": 1,
    }
    assert report["errors"] == [
        {
            "row": 4,
            "field": "email",
            "message": "'not-an-address' is not a valid e-mail address: An email address must have an @-sign.",
        }
    ]
    assert report["file"] == "metropolis-2026.csv" and report["network"] == "Metropolis"
    source, filename = service["db"].execute("SELECT source, filename FROM uploads ORDER BY id DESC").fetchone()
    assert (source, filename) == ("web", "metropolis-2026.csv")


async def test_multipart_upload_and_dry_run(service):
    form = aiohttp.FormData()
    form.add_field("file", CSV, filename="from-form.csv", content_type="text/csv")
    headers = {"Authorization": f"Bearer {service['tokens']['coordinator']}"}
    url = f"{service['base']}/api/networks/CityNet/contacts?dry_run=1"
    async with service["session"].post(url, data=form, headers=headers) as response:
        report = await response.json()
    assert response.status == 200 and report["dry_run"] is True and report["imported"] == 2
    assert service["db"].execute("SELECT count(*) FROM contacts").fetchone()[0] == 1


async def test_refused_files_and_limits(service):
    token = service["tokens"]["metropolis"]
    status, body, _ = await upload(service, "Metropolis", token, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert status == 422 and "PNG" in body["error"]
    status, body, _ = await upload(service, "Metropolis", token, b"name,city\nAna,Lima\n")
    assert status == 422 and "no e-mail column" in body["error"] and "'name'" in body["error"]
    status, body, _ = await upload(service, "Metropolis", token, b"")
    assert status == 422 and "empty" in body["error"]
    big = b"email\n" + b"x@example.org\n" * (51 * 1024 * 1024 // 14)
    status, body, _ = await upload(service, "Metropolis", token, big)
    assert status == 413 and "larger than" in body["error"]
    assert service["db"].execute("SELECT count(*) FROM contacts").fetchone()[0] == 1


async def test_a_broken_multipart_form_is_refused_with_a_clear_error(service):
    status, body, _ = await upload(
        service,
        "Metropolis",
        service["tokens"]["metropolis"],
        body=b"--x\r\nno colon in this header\r\n\r\nemail\r\n--x--\r\n",
        content_type="multipart/form-data; boundary=x",
    )
    assert (status, body) == (400, {"error": "the multipart form could not be read"})
    _, listed, _ = await upload(service, "Metropolis", service["tokens"]["metropolis"], body=CSV)
    assert listed["imported"] == 2  # the service goes on working


async def test_a_network_reads_only_its_own_contacts(service):
    await upload(service, "Metropolis", service["tokens"]["metropolis"])
    session, base = service["session"], service["base"]
    own = {"Authorization": f"Bearer {service['tokens']['metropolis']}"}
    async with session.get(f"{base}/api/networks/Metropolis/contacts", headers=own) as response:
        emails = sorted(c["email"] for c in (await response.json())["contacts"])
    assert emails == ["ana@bogota.example.org", "joe@leeds.example.org"]
    async with session.get(f"{base}/api/networks/Eurocities/contacts", headers=own) as response:
        assert response.status == 403
    async with session.get(f"{base}/api/networks/Eurocities/contacts") as response:
        assert response.status == 401


async def test_unsubscribe_link_one_click_and_page(service):
    db, session, base = service["db"], service["session"], service["base"]
    secret = service_secret(db, None)
    eve_id = db.execute("SELECT id FROM contacts WHERE email = 'eve@lyon.example.org'").fetchone()[0]
    token = unsubscribe_token(secret, eve_id, 1)
    async with session.get(f"{base}/unsubscribe/{token}") as response:
        page = await response.text()
    assert response.status == 200 and "eve@lyon.example.org" in page and "Darse de baja" in page
    assert "Unsubscribe" in page and response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert db.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0  # a GET changes nothing
    async with session.post(
        f"{base}/unsubscribe/{token}",
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert response.status == 200 and (await response.json()) == {"status": "unsubscribed"}
    assert db.execute("SELECT email, kind FROM suppressions").fetchall() == [("eve@lyon.example.org", "opt_out")]
    for forged in (token[:-3] + "abc", "1.1.x", "../../etc/passwd"):
        async with session.get(f"{base}/unsubscribe/{forged}") as response:
            assert response.status == 404
        async with session.post(f"{base}/unsubscribe/{forged}", data=b"List-Unsubscribe=One-Click") as response:
            assert response.status == 404 and "error" in await response.json()


def test_token_commands(run_cli):
    made = json.loads(
        run_cli("token", "create", "--role", "network", "--network", "CityNet", "--json", check=True).stdout
    )
    assert made["token"].startswith("sbt_") and len(made["token"]) > 40
    listed = run_cli("token", "list", "--json", check=True).stdout
    assert made["token"] not in listed and json.loads(listed)["tokens"][0]["network"] == "CityNet"
    bad = run_cli("token", "create", "--role", "network")
    assert bad.returncode == 1 and "needs --network" in bad.stderr
    run_cli("token", "revoke", str(made["id"]), check=True)
    assert json.loads(run_cli("token", "list", "--json", check=True).stdout)["tokens"][0]["revoked_at"]
    missing = run_cli("token", "revoke", "999")
    assert missing.returncode == 1 and "no token 999" in missing.stderr


async def test_access_log_is_one_json_line_without_secrets_or_bodies(tmp_path, caplog):
    import logging

    from aiohttp import web

    from surveybot.web.app import AccessLogger, create_app

    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    runner = web.AppRunner(create_app(settings), access_log_class=AccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        with caplog.at_level(logging.INFO, logger="surveybot.access"):
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"{base}/webhooks/qualtrics/w/SECRET-IN-URL-123", data={"QID1": "ANSWER-TEXT-456"}
                ) as response:
                    assert response.status == 401
                async with session.get(f"{base}/unsubscribe/1.1.SIGNATURE789") as response:
                    assert response.status == 404
    finally:
        await runner.cleanup()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "surveybot.access"]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/webhooks/qualtrics/w/***", 401),
        ("GET", "/unsubscribe/***", 404),
    ]
    logged = caplog.text
    assert "SECRET-IN-URL-123" not in logged and "ANSWER-TEXT-456" not in logged and "SIGNATURE789" not in logged

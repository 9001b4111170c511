"""The pages people open (``/upload``, ``/unsubscribe/{token}``) driven in headless Chromium against the
real service: forms filled and files chosen as a person would, the report read off the page, the database
checked behind it."""

from __future__ import annotations

import pytest

from surveybot.signing import service_secret
from surveybot.suppressions import unsubscribe_token
from tests.browser import chromium
from tests.service import running, settings_for, upload_service_db

XSS = "<img src=x onerror=alert(1)>"

# 5 data rows (rows 2-6): three good, one bad e-mail (row 5), one duplicate of Ana (row 6, same values).
GOOD_CSV = (
    "name,email,city,country,region,language\n"
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es\n"
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en\n"
    "Kim Lee,kim@seoul.example.org,Seoul,Korea,Asia,en\n"
    "Nobody,not-an-address,Nowhere,Nowhere,Nowhere,en\n"
    "Ana Pérez,ANA@bogota.example.org,Bogotá,Colombia,Latin America,es\n"
)
COUNT_KEYS = ("rows", "imported", "updated", "duplicates", "conflicts", "rejected")


@pytest.fixture
async def service(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    db, made = upload_service_db(settings)
    try:
        async with running(settings) as (app, base):
            yield {"db": db, "base": base, "tokens": made, "tmp": tmp_path}
    finally:
        db.close()


@pytest.fixture
async def page():
    async with chromium() as browser:
        context = await browser.new_context(locale="es-ES")
        page = await context.new_page()
        page.dialogs = []  # any alert() that fires is recorded (and dismissed) here

        async def on_dialog(dialog):
            page.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        page.set_default_timeout(10_000)
        yield page
        await context.close()


def write_csv(service, name: str, text: str | bytes) -> str:
    path = service["tmp"] / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


async def submit_upload(
    page, service, *, token: str, file: str | None, network: str | None = None, dry_run: bool = False, goto: bool = True
) -> int:
    """Fill the form like a person and submit it; returns the HTTP status of the page that comes back."""
    if goto:
        response = await page.goto(f"{service['base']}/upload")
        assert response.status == 200
    await page.fill("#token", token)
    if network is not None:
        await page.fill("#network", network)
    if dry_run:
        await page.check("#dry_run")
    if file is not None:
        await page.set_input_files("#file", file)
    else:  # let the browser send the form without a file, as an old or scripted browser could
        await page.eval_on_selector("#upload", "form => form.noValidate = true")
    async with page.expect_navigation() as navigation:
        await page.click("#submit")
    response = await navigation.value
    return response.status


async def counts_on(page) -> dict:
    return {key: int(await page.text_content(f"#counts td[data-key={key}]")) for key in COUNT_KEYS}


async def assert_form_usable(page):
    for selector in ("#upload", "#token", "#network", "#dry_run", "#file", "#submit"):
        assert await page.locator(selector).count() == 1, selector
    assert await page.is_enabled("#submit") and await page.is_editable("#token")


def contact_count(db) -> int:
    return db.execute("SELECT count(*) FROM contacts").fetchone()[0]


# --- the form -------------------------------------------------------------------------------------------


async def test_upload_form_is_bilingual_and_complete(service, page):
    response = await page.goto(f"{service['base']}/upload")
    assert response.status == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    text = await page.inner_text("body")
    assert "Subir lista de contactos" in text and "Clave de acceso" in text  # Spanish
    assert "Upload a contact list" in text and "Access token" in text  # English
    assert await page.title() == "Subir contactos / Upload contacts"
    assert await page.get_attribute("#token", "type") == "password"
    assert await page.get_attribute("#network", "type") == "text"
    assert await page.get_attribute("#dry_run", "type") == "checkbox"
    assert await page.get_attribute("#file", "type") == "file"
    assert not await page.is_checked("#dry_run")
    await assert_form_usable(page)
    assert await page.locator("#error").count() == 0 and await page.locator("#report").count() == 0


# --- a real upload --------------------------------------------------------------------------------------


async def test_upload_imports_and_shows_the_report(service, page):
    db = service["db"]
    file = write_csv(service, "metropolis-2026.csv", GOOD_CSV)
    status = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file)
    assert status == 200
    assert await counts_on(page) == {
        "rows": 5,
        "imported": 3,
        "updated": 0,
        "duplicates": 1,
        "conflicts": 0,
        "rejected": 1,
    }
    report = await page.inner_text("#report")
    assert "Importado / Imported" in report and "metropolis-2026.csv" in report and "Metropolis" in report
    rows = await page.locator("#errors tr").all_inner_texts()
    assert len(rows) == 2  # header + the one rejected row
    cells = [await c.inner_text() for c in await page.locator("#errors tr").nth(1).locator("td").all()]
    assert cells[0] == "5" and cells[1] == "email" and "not-an-address" in cells[2]
    assert await page.locator("#conflicts").count() == 0
    assert await page.locator("#error").count() == 0
    await assert_form_usable(page)

    emails = [r[0] for r in db.execute("SELECT email FROM contacts ORDER BY email")]
    assert emails == [
        "ana@bogota.example.org",
        "eve@lyon.example.org",
        "joe@leeds.example.org",
        "kim@seoul.example.org",
    ]
    assert db.execute(
        "SELECT name, city, language FROM contacts WHERE email = 'ana@bogota.example.org'"
    ).fetchone() == ("Ana Pérez", "Bogotá", "es")
    source, filename, network = db.execute("SELECT source, filename, network FROM uploads ORDER BY id DESC").fetchone()
    assert (source, filename, network) == ("web", "metropolis-2026.csv", "Metropolis")
    listed = {
        r[0]
        for r in db.execute(
            "SELECT c.email FROM contact_sources s JOIN contacts c ON c.id = s.contact_id "
            "WHERE s.network = 'Metropolis'"
        )
    }
    assert listed == {"ana@bogota.example.org", "joe@leeds.example.org", "kim@seoul.example.org"}

    shot = service["tmp"] / "report.png"
    await page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")


async def test_upload_again_counts_duplicates_not_new(service, page):
    file = write_csv(service, "list.csv", GOOD_CSV)
    assert await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file) == 200
    # the report page keeps the form: upload the same file again from it
    assert await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file, goto=False) == 200
    assert await counts_on(page) == {
        "rows": 5,
        "imported": 0,
        "updated": 0,
        "duplicates": 4,
        "conflicts": 0,
        "rejected": 1,
    }
    assert contact_count(service["db"]) == 4


async def test_dry_run_shows_the_report_and_stores_nothing(service, page):
    db = service["db"]
    uploads_before = db.execute("SELECT count(*) FROM uploads").fetchone()[0]
    file = write_csv(service, "check.csv", GOOD_CSV)
    status = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file, dry_run=True)
    assert status == 200
    assert await counts_on(page) == {
        "rows": 5,
        "imported": 3,
        "updated": 0,
        "duplicates": 1,
        "conflicts": 0,
        "rejected": 1,
    }
    assert "Comprobado, sin guardar nada / Checked, nothing saved" in await page.inner_text("#report")
    assert contact_count(db) == 1
    assert db.execute("SELECT count(*) FROM uploads").fetchone()[0] == uploads_before
    assert db.execute("SELECT count(*) FROM contact_sources WHERE network = 'Metropolis'").fetchone()[0] == 0


async def test_coordinator_names_the_network(service, page):
    db = service["db"]
    file = write_csv(service, "citynet.csv", GOOD_CSV)
    status = await submit_upload(page, service, token=service["tokens"]["coordinator"], file=file, network="CityNet")
    assert status == 200
    assert await page.input_value("#network") == "CityNet"
    assert "CityNet" in await page.inner_text("#report")
    assert (await counts_on(page))["imported"] == 3
    assert (
        db.execute("SELECT count(DISTINCT contact_id) FROM contact_sources WHERE network = 'CityNet'").fetchone()[0]
        == 3
    )


async def test_coordinator_without_a_network_is_refused(service, page):
    file = write_csv(service, "nowhere.csv", GOOD_CSV)
    status = await submit_upload(page, service, token=service["tokens"]["coordinator"], file=file)
    assert status in (400, 422)
    assert await page.get_attribute("#error", "role") == "alert"
    assert "network" in (await page.inner_text("#error")).lower()
    await assert_form_usable(page)
    assert contact_count(service["db"]) == 1


# --- escaping -------------------------------------------------------------------------------------------


async def test_values_from_the_file_are_shown_as_text(service, page):
    # Ana is known first, so a different name for her in the hostile file is a conflict
    file = write_csv(service, "first.csv", "name,email\nAna Pérez,ana@bogota.example.org\n")
    assert await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file) == 200
    hostile = write_csv(
        service, f"{XSS}.csv", f"name,email,city\n{XSS},ana@bogota.example.org,{XSS}\nSomeone,{XSS},Lima\n"
    )
    assert await submit_upload(page, service, token=service["tokens"]["metropolis"], file=hostile) == 200
    assert await counts_on(page) == {
        "rows": 2,
        "imported": 0,
        "updated": 1,
        "duplicates": 0,
        "conflicts": 1,
        "rejected": 1,
    }
    errors = await page.inner_text("#errors")
    conflicts = await page.inner_text("#conflicts")
    assert XSS in errors  # the rejected address, as text
    assert XSS in conflicts and "Ana Pérez" in conflicts  # the proposed name, as text
    assert XSS in await page.inner_text("#report")  # the file name, as text
    assert await page.locator("img").count() == 0
    await page.wait_for_timeout(200)
    assert page.dialogs == []
    # the stored name was kept; the city it filled is stored as given, to be escaped wherever it is shown
    assert service["db"].execute(
        "SELECT name, city FROM contacts WHERE email = 'ana@bogota.example.org'"
    ).fetchone() == ("Ana Pérez", XSS)


# --- refusals -------------------------------------------------------------------------------------------


async def expect_refusal(page, status: int, got: int, *words: str):
    assert got == status
    error = page.locator("#error")
    assert await error.count() == 1 and await error.get_attribute("role") == "alert"
    text = await error.inner_text()
    for word in words:
        assert word in text, (word, text)
    assert await page.locator("#report").count() == 0
    await assert_form_usable(page)


@pytest.mark.parametrize("who", ["sbt_not-a-real-token", "garbage", "revoked"])
async def test_invalid_or_revoked_token_gets_401(service, page, who):
    file = write_csv(service, "list.csv", GOOD_CSV)
    got = await submit_upload(page, service, token=service["tokens"].get(who, who), file=file)
    await expect_refusal(page, 401, got, "La clave de acceso no es válida", "The access token is not valid")
    assert contact_count(service["db"]) == 1


async def test_researcher_token_gets_403(service, page):
    file = write_csv(service, "list.csv", GOOD_CSV)
    got = await submit_upload(page, service, token=service["tokens"]["researcher"], file=file, network="Metropolis")
    await expect_refusal(page, 403, got, "This token is not for that network")
    assert contact_count(service["db"]) == 1


async def test_token_of_another_network_gets_403(service, page):
    """A Eurocities token with the network field naming Metropolis: refused, and nothing stored anywhere
    (not in Metropolis, and not silently in Eurocities either)."""
    db = service["db"]
    file = write_csv(service, "list.csv", GOOD_CSV)
    got = await submit_upload(page, service, token=service["tokens"]["eurocities"], file=file, network="Metropolis")
    landed = db.execute(
        "SELECT s.network, count(*) FROM contact_sources s JOIN uploads u ON u.id = s.upload_id "
        "WHERE u.source = 'web' GROUP BY s.network"
    ).fetchall()
    shown = await page.inner_text("#report") if await page.locator("#report").count() else ""
    assert landed == [], f"HTTP {got}; the upload was stored under {landed}; the page says: {shown!r}"
    await expect_refusal(page, 403, got, "Esta clave no sirve para esa red", "This token is not for that network")
    assert contact_count(db) == 1


async def test_network_token_with_its_own_network_in_any_case(service, page):
    file = write_csv(service, "list.csv", GOOD_CSV)
    got = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file, network="metropolis")
    assert got == 200 and (await counts_on(page))["imported"] == 3
    assert service["db"].execute("SELECT DISTINCT network FROM uploads WHERE source = 'web'").fetchall() == [
        ("Metropolis",)
    ]


async def test_no_file_gets_400(service, page):
    got = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=None)
    await expect_refusal(page, 400, got, "Elija un archivo CSV", "Choose a CSV file")


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, ("File refused", "PNG")),
        ("no-email.csv", b"name,city\nAna,Lima\n", ("File refused", "no e-mail column")),
    ],
)
async def test_refused_file_gets_422_and_the_form_stays(service, page, name, content, words):
    file = write_csv(service, name, content)
    got = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=file, network="Metropolis")
    await expect_refusal(page, 422, got, "Archivo rechazado", *words)
    assert await page.input_value("#network") == "Metropolis"
    assert contact_count(service["db"]) == 1
    # the page still works: choose a good file and upload from it
    good = write_csv(service, "good.csv", GOOD_CSV)
    assert await submit_upload(page, service, token=service["tokens"]["metropolis"], file=good, goto=False) == 200
    assert (await counts_on(page))["imported"] == 3


async def test_too_large_file_gets_413_and_the_form_stays(service, page):
    big = service["tmp"] / "big.csv"
    big.write_bytes(b"email\n" + b"x@example.org\n" * (51 * 1024 * 1024 // 14))
    got = await submit_upload(page, service, token=service["tokens"]["metropolis"], file=str(big))
    await expect_refusal(page, 413, got, "El archivo supera 50 MB", "The file is larger than 50 MB")
    assert contact_count(service["db"]) == 1


# --- unsubscribe ----------------------------------------------------------------------------------------


async def test_unsubscribe_confirm_flow(service, page):
    db = service["db"]
    eve_id = db.execute("SELECT id FROM contacts WHERE email = 'eve@lyon.example.org'").fetchone()[0]
    token = unsubscribe_token(service_secret(db, None), eve_id, 3)
    response = await page.goto(f"{service['base']}/unsubscribe/{token}")
    assert response.status == 200
    text = await page.inner_text("body")
    assert "eve@lyon.example.org" in text
    assert "¿Desea dejar de recibir correos" in text and "Do you want to stop receiving e-mail" in text
    assert await page.locator("#done").count() == 0
    assert db.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0  # showing changes nothing
    async with page.expect_navigation() as navigation:
        await page.click("#confirm")
    assert (await navigation.value).status == 200
    done = await page.inner_text("#done")
    assert "eve@lyon.example.org" in done
    assert "You are unsubscribed" in await page.inner_text("body")
    assert db.execute("SELECT email, kind FROM suppressions").fetchall() == [("eve@lyon.example.org", "opt_out")]


async def test_unsubscribe_forged_or_garbage_token_is_invalid(service, page):
    db = service["db"]
    eve_id = db.execute("SELECT id FROM contacts WHERE email = 'eve@lyon.example.org'").fetchone()[0]
    good = unsubscribe_token(service_secret(db, None), eve_id, 3)
    forged = [
        unsubscribe_token("not-the-secret", eve_id, 3),
        good[:-3] + "abc",
        f"{eve_id + 1}.3.{good.split('.')[2]}",
        "garbage",
        "1.1.x",
    ]
    for token in forged:
        response = await page.goto(f"{service['base']}/unsubscribe/{token}")
        assert response.status == 404, token
        assert await page.locator("#invalid").count() == 1
        text = await page.inner_text("body")
        assert "Enlace no válido" in text and "Invalid link" in text
        assert await page.locator("#confirm").count() == 0
        assert "eve@lyon.example.org" not in text
    assert db.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0

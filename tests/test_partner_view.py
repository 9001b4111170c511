"""A partner network's own view in headless Chromium, after a wave driven through the real pipeline: only its
contacts (never another network's, never an answer), their delivery problems to fix, its own uploads; who
answered only while the wave shares it (``wave set`` through the real CLI), small counts hidden otherwise."""

from __future__ import annotations

import json

import aiohttp
import pytest

from surveybot import plan, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.signing import service_secret
from surveybot.suppressions import suppress
from tests import dashboard_field as field
from tests.service import import_rows, running, settings_for, wave_create_args

METROPOLIS_ONLY = (
    "ana@bogota.example.org",
    "luis@bogota.example.org",
    "joe@leeds.example.org",
    "kim@seoul.example.org",
    field.GONE,
)
EUROCITIES_ONLY = ("eve@lyon.example.org", "olga@riga.example.org")


@pytest.fixture
async def service(tmp_path, mail_sink):
    async with field.served(settings_for(tmp_path, mail_sink.url), mail_sink) as served:
        yield served


async def network_page(service, browser, network: str):
    context = await browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await field.sign_in(page, service["base"], service["tokens"][network])
    return context, page


async def funnel_on(page) -> dict[str, str]:
    keys = ("invited", "sent", "bounced", "delivered", "completed", "opted_out")
    return {key: await page.inner_text(f"#funnel [data-key={key}] .value") for key in keys}


async def row_of(page, table: str, group: str) -> dict[str, str]:
    row = page.locator(f"table#{table} tr[data-group='{group}']")
    return {key: await row.locator(f"td[data-key={key}]").inner_text() for key in ("cases", "I", "R", "UO", "rr1")}


async def assert_nothing_of_others(page, others: tuple[str, ...], other_network: str) -> None:
    html = await page.content()
    for email in others:
        assert email not in html, email
    assert other_network not in html
    assert "Twinning" not in html  # an answer


async def test_a_network_sees_its_own_contacts_only_and_no_answers(service, browser):
    context, page = await network_page(service, browser, "metropolis")
    base = service["base"]
    assert page.url == f"{base}/waves"
    row = page.locator("#waves tr[data-wave=city]")
    assert [
        await row.locator(f"td[data-key={k}]").inner_text() for k in ("invited", "delivered", "completed", "rr1")
    ] == ["6", "5", "<5", "—"]
    uploads = await page.eval_on_selector_all(
        "#uploads tr[data-upload] td:first-child", "cells => cells.map(c => c.firstChild.textContent)"
    )
    assert uploads == ["metropolis.csv"]  # not Eurocities' file
    await assert_nothing_of_others(page, EUROCITIES_ONLY, "Eurocities")

    await page.click("#waves a[href='/waves/city']")
    assert page.url == f"{base}/waves/city"
    # six of its contacts were invited (Sam is listed by both networks); three finished: fewer than 5
    assert await funnel_on(page) == {
        "invited": "6",
        "sent": "6",
        "bounced": "1",
        "delivered": "5",
        "completed": "<5",
        "opted_out": "0",
    }
    assert await row_of(page, "overall", "Overall") == {"cases": "6", "I": "<5", "R": "<5", "UO": "—", "rr1": "—"}
    assert await page.eval_on_selector_all("#by_network tr[data-group]", "rows => rows.map(r => r.dataset.group)") == [
        "Metropolis"
    ]
    problems = await page.eval_on_selector_all(
        "#problems tr[data-email]", "rows => rows.map(r => [r.dataset.email, r.dataset.problem])"
    )
    assert problems == [[field.GONE, "bounced"]]
    assert "Bo Gone" in await page.inner_text("#problems") and "5.1.1" in await page.inner_text("#problems")
    assert await page.locator("#answered").count() == 0
    assert "does not share who answered" in await page.inner_text("#sharing")
    await assert_nothing_of_others(page, EUROCITIES_ONLY, "Eurocities")
    field.DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(field.DOCS / "partner-view.png"), full_page=True)
    await context.close()

    context, page = await network_page(service, browser, "eurocities")
    await page.goto(f"{base}/waves/city")
    assert await funnel_on(page) == {
        "invited": "3",
        "sent": "3",
        "bounced": "0",
        "delivered": "3",
        "completed": "<5",
        "opted_out": "1",
    }
    problems = await page.eval_on_selector_all(
        "#problems tr[data-email]", "rows => rows.map(r => [r.dataset.email, r.dataset.problem])"
    )
    assert problems == [["olga@riga.example.org", "opted_out"]]
    await assert_nothing_of_others(page, METROPOLIS_ONLY, "Metropolis")
    await context.close()


async def test_who_answered_shows_only_while_the_wave_shares_it(service, browser, run_cli):
    base = service["base"]
    context, page = await network_page(service, browser, "metropolis")
    await page.goto(f"{base}/waves/city")
    assert await page.locator("#answered").count() == 0

    shared = run_cli("wave", "set", "city", "--share-status-with-networks", check=True)
    assert "partner networks see which of their contacts answered" in shared.stdout
    await page.goto(f"{base}/waves/city")
    answered = await page.eval_on_selector_all(
        "#answered tr[data-email]", "rows => rows.map(r => [r.dataset.email, r.dataset.answered])"
    )
    assert sorted(answered) == sorted(
        [
            ["ana@bogota.example.org", "1"],
            ["luis@bogota.example.org", "1"],
            ["sam@porto.example.org", "1"],
            ["joe@leeds.example.org", "0"],
            ["kim@seoul.example.org", "0"],
            [field.GONE, "0"],
        ]
    )
    assert field.XSS in await page.inner_text("#answered tr[data-email='joe@leeds.example.org']")  # as text
    assert await page.locator("script").count() == 1
    assert (await funnel_on(page))["completed"] == "3"
    assert await row_of(page, "overall", "Overall") == {"cases": "6", "I": "3", "R": "1", "UO": "2", "rr1": "50.0%"}
    await assert_nothing_of_others(page, EUROCITIES_ONLY, "Eurocities")
    await page.goto(f"{base}/waves")
    assert await page.inner_text("#waves tr[data-wave=city] td[data-key=completed]") == "3"

    run_cli("wave", "set", "city", "--no-share-status-with-networks", check=True)
    await page.goto(f"{base}/waves/city")  # at once, not after the figures kept for a moment
    assert await page.locator("#answered").count() == 0
    assert (await funnel_on(page))["completed"] == "<5"
    await page.goto(f"{base}/waves")
    assert await page.inner_text("#waves tr[data-wave=city] td[data-key=completed]") == "<5"
    await context.close()


async def test_a_wave_without_the_networks_contacts_is_not_there(service, browser):
    db = service["db"]
    import_rows(
        service["settings"],
        ["Rosa Andes,rosa@quito.example.org,Quito,Ecuador,Latin America,es"],
        network="Andes",
        name="andes.csv",
    )
    for slug, network in (("andes-only", "Andes"), ("euro-only", "Eurocities")):
        waves.create_wave(
            db,
            waves.WaveSpec(
                slug=slug,
                title="A regional wave",
                platform="signed",
                survey_id="S3",
                survey_url="https://survey.example.org/s3",
                networks=(network,),
            ),
            utcnow(),
        )
        waves.launch(db, slug, utcnow())
    plan.run_due(db, service_secret(db, None), utcnow())
    context, page = await network_page(service, browser, "metropolis")
    assert await page.locator("#waves tr[data-wave=andes-only]").count() == 0
    response = await page.goto(f"{service['base']}/waves/andes-only")
    assert response.status == 404
    # a Eurocities wave holds Sam, whom Metropolis listed too: Metropolis sees Sam's part only
    await page.goto(f"{service['base']}/waves/euro-only")
    assert (await funnel_on(page))["invited"] == "1"
    await assert_nothing_of_others(page, EUROCITIES_ONLY, "Eurocities")
    await context.close()


async def test_a_networks_uploads_show_their_reports(service, browser):
    body = "name,email\nNew Person,new@porto.example.org\nBroken,not-an-address\n"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{service['base']}/api/networks/Metropolis/contacts?filename=second.csv",
            data=body.encode(),
            headers={"Authorization": f"Bearer {service['tokens']['metropolis']}", "Content-Type": "text/csv"},
        ) as answer:
            assert answer.status == 200 and (await answer.json())["rejected"] == 1
    context, page = await network_page(service, browser, "metropolis")
    newest = page.locator("#uploads tr[data-upload]").first
    assert "second.csv" in await newest.inner_text()
    assert [await newest.locator(f"td[data-key={k}]").inner_text() for k in ("rows", "imported", "rejected")] == [
        "2",
        "1",
        "1",
    ]
    await page.click("#uploads details summary")
    rejected = await page.inner_text("#uploads details table")
    assert "3" in rejected and "email" in rejected and "not-an-address" in rejected
    await context.close()


def test_share_status_on_create_and_wave_set_from_the_command_line(tmp_path, run_cli):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    field.import_networks(settings)
    run_cli(*wave_create_args("w2"), "--share-status-with-networks", check=True)
    run_cli(*wave_create_args("w3"), check=True)

    def sharing() -> dict:
        db = open_db(settings.db_path)
        try:
            return dict(db.execute("SELECT slug, share_status_with_networks FROM waves").fetchall())
        finally:
            db.close()

    assert sharing() == {"w2": 1, "w3": 0}
    run_cli("wave", "set", "w2", "--no-share-status-with-networks", check=True)
    run_cli("wave", "set", "w3", "--share-status-with-networks", check=True)
    assert sharing() == {"w2": 0, "w3": 1}
    nothing = run_cli("wave", "set", "w2")
    assert nothing.returncode == 2 and "name a setting to change" in nothing.stderr
    missing = run_cli("wave", "set", "nope", "--share-status-with-networks")
    assert missing.returncode == 1 and "no wave named 'nope'" in missing.stderr
    assert json.loads(run_cli("wave", "list", "--json", check=True).stdout)["waves"][0]["slug"] == "w2"


async def test_a_long_list_of_problems_comes_in_pages(tmp_path, browser):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    import_rows(
        settings,
        [f"Officer {n},officer{n:03}@town{n}.example.org,Town {n},Chile,Latin America,es" for n in range(130)],
        network="Andes",
        name="andes.csv",
    )
    db = open_db(settings.db_path)
    waves.create_wave(
        db,
        waves.WaveSpec(
            slug="andes", title="Andes", platform="signed", survey_id="S", survey_url="https://survey.example.org/s"
        ),
        utcnow(),
    )
    waves.launch(db, "andes", utcnow())
    plan.run_due(db, service_secret(db, None), utcnow())
    for n in range(105):
        suppress(db, f"officer{n:03}@town{n}.example.org", "bounce", "550 5.1.1 unknown", utcnow())
    from surveybot import tokens

    token = tokens.create(db, "network", "Andes", utcnow())[1]
    try:
        async with running(settings) as (_, base):
            context = await browser.new_context(locale="en-GB")
            page = await context.new_page()
            await field.sign_in(page, base, token)
            await page.goto(f"{base}/waves/andes")
            assert await page.locator("#problems tr[data-email]").count() == 100
            assert "Showing 1–100 of 105." in await page.inner_text("#problems")
            async with page.expect_navigation():
                await page.click("#next-page")
            emails = await page.eval_on_selector_all(
                "#problems tr[data-email]", "rows => rows.map(r => r.dataset.email)"
            )
            assert emails == [f"officer{n:03}@town{n}.example.org" for n in range(100, 105)]
            assert await page.locator("#next-page").count() == 0 and await page.locator("#previous-page").count() == 1
            await context.close()
    finally:
        db.close()

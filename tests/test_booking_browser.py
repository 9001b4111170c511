"""The booking page in headless Chromium, in both languages: book, move to another time, cancel; times in the
visitor's own time zone with JavaScript, and in the respondent's zone without it."""

from __future__ import annotations

import pytest

from surveybot.db import open_db
from surveybot.interviews import queue
from surveybot.signing import service_secret
from tests import interview_field as f
from tests.service import running, settings_for, wait_until


@pytest.fixture
async def service(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    f.write_contacts(settings)
    db = open_db(settings.db_path)
    ids = f.opt_in_everyone(db)
    slot_ids = f.publish(db, f.in_three_days_at(14), 3)
    f.invite_all(db, settings)
    secret = service_secret(db, None)
    try:
        async with running(settings) as (app, base):
            links = {email: f"{base}/interview/{queue.booking_token(secret, iid)}" for email, iid in ids.items()}
            yield {"db": db, "ids": ids, "slots": slot_ids, "links": links}
    finally:
        db.close()


async def open_page(browser, *, timezone_id: str, locale: str, javascript: bool = True):
    context = await browser.new_context(timezone_id=timezone_id, locale=locale, java_script_enabled=javascript)
    return await context.new_page()


@pytest.mark.parametrize(
    "email, locale, words",
    [
        (
            "ana@bogota.example.org",
            "es-CO",
            {
                "book": "Reservar este horario",
                "booked": "Su entrevista está reservada",
                "move": "Cambiar a este horario",
                "cancel": "Cancelar la entrevista",
                "cancelled": "Su entrevista está cancelada",
                "zone": "su zona horaria",
            },
        ),
        (
            "joe@leeds.example.org",
            "en-GB",
            {
                "book": "Book this time",
                "booked": "Your interview is booked",
                "move": "Move to this time",
                "cancel": "Cancel the interview",
                "cancelled": "Your interview is cancelled",
                "zone": "your time zone",
            },
        ),
    ],
)
async def test_book_move_and_cancel_in_the_respondents_language(service, browser, email, locale, words):
    db, iid = service["db"], service["ids"][email]
    page = await open_page(browser, timezone_id="Asia/Tokyo", locale=locale)
    await page.goto(service["links"][email])
    assert await page.locator("html").get_attribute("lang") == locale[:2]
    # With JavaScript the times are the visitor's own (Tokyo: 14:00 UTC is 23:00 there) and the note says so.
    assert words["zone"] in await page.locator("[data-zone-note]").inner_text()
    assert "Asia/Tokyo" in await page.locator("[data-zone-note]").inner_text()
    assert "23:00" in await page.locator("time[data-local]").first.inner_text()
    await page.locator("#first-slot").check()
    await page.get_by_role("button", name=words["book"]).click()
    await page.wait_for_selector("#current")
    assert words["booked"] in await page.locator("#current").inner_text()
    assert queue.get(db, iid)["slot_id"] == service["slots"][0]

    # Move: the booked time is no longer offered; choose the last one.
    offered = await page.locator("input[name=slot]").evaluate_all("els => els.map(e => Number(e.value))")
    assert service["slots"][0] not in offered and service["slots"][2] in offered
    await page.locator(f"input[name=slot][value='{service['slots'][2]}']").check()
    await page.get_by_role("button", name=words["move"]).click()
    await page.wait_for_selector("#notice")
    assert "00:00" in await page.locator("#current time").inner_text()  # 15:00 UTC in Tokyo
    row = queue.get(db, iid)
    assert (row["slot_id"], row["sequence"]) == (service["slots"][2], 2)

    await page.get_by_role("button", name=words["cancel"]).click()
    await page.wait_for_selector("#notice")
    assert words["cancelled"] in await page.locator("#notice").inner_text()
    assert await page.locator("#current").count() == 0
    assert queue.get(db, iid)["state"] == "cancelled"
    await page.context.close()


async def test_without_javascript_times_are_in_the_respondents_zone_and_the_language_can_be_switched(service, browser):
    page = await open_page(browser, timezone_id="Asia/Tokyo", locale="es-CO", javascript=False)
    await page.goto(service["links"]["ana@bogota.example.org"])
    first = await page.locator("time[data-local]").first.inner_text()
    assert "09:00" in first and "Colombia" in first  # 14:00 UTC in Bogotá, her zone, written by the server
    assert "America/Bogota" in await page.locator("[data-zone-note]").inner_text()
    await page.click("#other-language")
    assert "Your follow-up interview" in await page.locator("h1").inner_text()
    await page.locator("#first-slot").check()
    await page.click("#book")
    await wait_until(
        lambda: queue.get(service["db"], service["ids"]["ana@bogota.example.org"])["state"] == "booked",
        what="the booking",
    )
    assert "Your interview is booked" in await page.locator("#current").inner_text()
    await page.context.close()


async def test_a_slot_taken_meanwhile_and_a_forged_link_get_clear_messages(service, browser):
    ana = await open_page(browser, timezone_id="America/Bogota", locale="es-CO")
    joe = await open_page(browser, timezone_id="Europe/London", locale="en-GB")
    await ana.goto(service["links"]["ana@bogota.example.org"])
    await joe.goto(service["links"]["joe@leeds.example.org"])
    await ana.locator("#first-slot").check()
    await joe.locator("#first-slot").check()
    await ana.click("#book")
    await ana.wait_for_selector("#current")
    await joe.click("#book")
    await joe.wait_for_selector("#notice")
    assert "just been taken" in await joe.locator("#notice").inner_text()
    assert await joe.locator("#current").count() == 0
    offered = await joe.locator("input[name=slot]").evaluate_all("els => els.map(e => Number(e.value))")
    assert offered == service["slots"][1:]
    # Declining from the page: no more e-mail about it.
    await joe.click("#decline")
    await joe.wait_for_selector("#notice")
    assert "will not write to you about the interview again" in await joe.locator("#notice").inner_text()
    assert queue.get(service["db"], service["ids"]["joe@leeds.example.org"])["state"] == "declined"
    forged = service["links"]["joe@leeds.example.org"][:-3] + "xyz"
    response = await joe.goto(forged)
    assert response.status == 404 and "not valid" in await joe.locator("#notice").inner_text()
    for page in (ana, joe):
        await page.context.close()

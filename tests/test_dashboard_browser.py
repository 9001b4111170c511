"""The coordinator's dashboard in headless Chromium, after a wave driven through the real pipeline (contacts,
the service sending to a real SMTP server, signed webhooks, a one-click unsubscribe): its figures against the
database and the report's JSON in English and Spanish, hostile names shown as text, the actions and their
confirmation step, the page following new responses by itself, and the researchers' own interviews."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from surveybot import waves
from surveybot.clock import parse_stored, utcnow
from surveybot.db import open_db
from surveybot.interviews import booking
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from surveybot.web.dashboard_text import percent
from tests import dashboard_field as field
from tests import interview_field
from tests.service import running, settings_for, wait_until

DOCS = field.DOCS
FUNNEL = (
    "invited",
    "sent",
    "bounced",
    "delivered",
    "completed",
    "opted_out",
    "partial_discarded",
    "duplicates",
    "unmatched",
    "failed",
)
RATES = ("rr1", "rr2", "coop1", "ref1", "con1")


@pytest.fixture
async def service(tmp_path, mail_sink):
    async with field.served(settings_for(tmp_path, mail_sink.url), mail_sink) as served:
        yield served


async def coordinator_page(service, browser, *, javascript: bool = True):
    context = await browser.new_context(
        locale="en-GB", java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.dialogs = []

    async def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    await field.sign_in(page, service["base"], service["tokens"]["coordinator"])
    return context, page


def from_database(db) -> dict:
    """The funnel counted straight from the tables, independently of the code under test."""
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    bounced = "SELECT email FROM suppressions WHERE kind = 'bounce'"
    return {
        "invited": one("SELECT count(*) FROM recipients"),
        "sent": one(
            "SELECT count(DISTINCT contact_id) FROM outbox WHERE kind = 'invitation' AND (state = 'sent' "
            f"OR to_email IN ({bounced}))"
        ),
        "bounced": one(
            f"SELECT count(*) FROM recipients r JOIN contacts c ON c.id = r.contact_id WHERE c.email IN ({bounced})"
        ),
        "completed": one("SELECT count(DISTINCT contact_id) FROM responses WHERE status = 'complete'"),
        "opted_out": one("SELECT count(*) FROM suppressions WHERE kind = 'opt_out'"),
        "partial_discarded": one("SELECT count(*) FROM partial_audit"),
        "duplicates": one("SELECT count(*) FROM responses WHERE duplicate != ''"),
        "unmatched": one("SELECT count(*) FROM responses WHERE status = 'unmatched'"),
        "failed": one("SELECT count(*) FROM outbox WHERE state = 'failed'"),
    }


async def funnel_on(page) -> dict[str, str]:
    return {key: await page.inner_text(f"#funnel [data-key={key}] .value") for key in FUNNEL}


async def rates_row(page, table: str, group: str) -> dict[str, str]:
    row = page.locator(f"table#{table} tr[data-group='{group}']")
    return {key: await row.locator(f"td[data-key={key}]").inner_text() for key in (*RATES, "I", "P", "R", "UO")}


async def report_json(service) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{service['base']}/api/waves/{field.SLUG}/report",
            headers={"Authorization": f"Bearer {service['tokens']['coordinator']}"},
        ) as answer:
            assert answer.status == 200
            return await answer.json()


async def test_the_dashboard_shows_the_databases_figures_in_both_languages(service, browser):
    db = service["db"]
    context, page = await coordinator_page(service, browser)
    await page.goto(f"{service['base']}/waves/{field.SLUG}")
    counted = from_database(db)
    counted["delivered"] = counted["sent"] - counted["bounced"]
    assert counted == {
        "invited": 8,
        "sent": 8,
        "bounced": 1,
        "delivered": 7,
        "completed": 4,
        "opted_out": 1,
        "partial_discarded": 1,
        "duplicates": 1,
        "unmatched": 1,
        "failed": 1,
    }
    assert await funnel_on(page) == {key: str(value) for key, value in counted.items()}
    # the same figures as 'wave status'
    status = wave_status(db, waves.get_wave(db, field.SLUG), service_secret(db, None), "https://survey.example.org")
    assert (
        status["invited"],
        status["completed"],
        status["bounced"],
        status["opted_out"],
        status["partial_discarded"],
        status["duplicate_responses"],
        status["unmatched_responses"],
    ) == (8, 4, 1, 1, 1, 1, 1)

    # rates: the report's JSON, overall and by group (a contact of both networks counts in both)
    report = await report_json(service)
    assert (report["rr1"], report["coop1"], report["dispositions"]["R"]) == (0.5, 4 / 6, 2)
    for table, group, figures in [
        ("overall", "Overall", report),
        *[("by_network", name, report["by_network"][name]) for name in ("Metropolis", "Eurocities")],
        *[("by_country", name, figures) for name, figures in report["by_country"].items()],
    ]:
        shown = await rates_row(page, table, group)
        assert shown == {
            **{r: percent(figures[r], "en") for r in RATES},
            **{c: str(figures["dispositions"][c]) for c in ("I", "P", "R", "UO")},
        }, (table, group)
    assert (await rates_row(page, "overall", "Overall"))["coop1"] == "66.7%"

    # completions per day, in the wave's zone (America/Bogota), with the reminder days marked
    today = datetime.now(ZoneInfo("America/Bogota")).date().isoformat()
    days = await page.eval_on_selector_all(
        "#per-day g.day", "gs => gs.map(g => [g.dataset.day, +g.dataset.count, g.dataset.reminder === '1'])"
    )
    assert len(days) == 15 and sum(count for _, count, _ in days) == 4
    assert [count for day, count, _ in days if day == today] == [4]
    plan = waves.steps(db, waves.get_wave(db, field.SLUG)["id"])
    reminder_days = {
        parse_stored(s["due_at"]).astimezone(ZoneInfo("America/Bogota")).date().isoformat()
        for s in plan
        if s["kind"] in ("reminder", "final_reminder")
    }
    assert {day for day, _, reminder in days if reminder} == reminder_days and len(reminder_days) == 2

    # schedule, outbox, partial audit, unmatched, interview queue
    assert await page.eval_on_selector_all(
        "#schedule tr[data-step]", "rows => rows.map(r => [r.dataset.step, r.dataset.state])"
    ) == [["invitation", "done"], ["reminder", "pending"], ["final_reminder", "pending"], ["close", "pending"]]
    assert await page.inner_text("#outbox tr[data-kind=invitation] td[data-key=sent]") == "7"
    assert await page.inner_text("#outbox tr[data-kind=invitation] td[data-key=failed]") == "1"
    assert "550 5.1.1 No such user" in await page.inner_text("#failed-reasons")
    assert await page.locator("#action-retry").count() == 0  # the only failure bounced: nothing to retry
    partial = await page.inner_text("#partials tr[data-response=R3]")
    assert field.XSS in partial and "40 %" in partial and "not finished" in partial
    assert await page.locator("#unmatched tr[data-unmatched]").count() == 1
    assert "Ana Pérez" in await page.inner_text("#interview-queue")
    # a contact named <script>…</script> is text: no script ran, no element was made of it
    assert page.dialogs == [] and await page.locator("script").count() == 1  # live.js only
    html = await page.content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and service["tokens"]["coordinator"] not in html

    if os.environ.get("SURVEYBOT_SCREENSHOTS"):  # refreshes the README's picture; a plain run leaves docs/ alone
        DOCS.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS / "dashboard.png"), full_page=True)
    else:
        assert await page.screenshot(full_page=True)  # the page renders whole

    # in Spanish, through the switch: the same figures, Spanish words and numbers
    async with page.expect_navigation():
        await page.click("#lang-es")
    assert await page.get_attribute("html", "lang") == "es"
    assert "Embudo" in await page.inner_text("#funnel") and "Entregados" in await page.inner_text("#funnel")
    assert await funnel_on(page) == {key: str(value) for key, value in counted.items()}
    overall = await rates_row(page, "overall", "Total")
    assert overall["rr1"] == percent(0.5, "es") == "50,0\u00a0%" and overall["coop1"] == "66,7\u00a0%"
    await page.goto(f"{service['base']}/waves/{field.SLUG}")  # the session remembers the language
    assert "Tasas de respuesta" in await page.inner_text("#rates")
    await context.close()


async def test_the_wave_list_shows_state_dates_and_headline_rates(service, browser):
    db = service["db"]
    waves.create_wave(db, field.long_wave_spec("later"), utcnow())
    context, page = await coordinator_page(service, browser)
    assert page.url == f"{service['base']}/waves"
    report = await report_json(service)
    row = page.locator("tr[data-wave=city]")
    assert await row.locator("td[data-key=state]").inner_text() == "open"
    keys = ("invited", "sent", "completed", "rr1", "rr2")
    assert [await row.locator(f"td[data-key={k}]").inner_text() for k in keys] == [
        "8",
        "7",
        "4",
        percent(report["rr1"], "en"),
        percent(report["rr2"], "en"),
    ]
    draft = page.locator("tr[data-wave=later]")
    assert await draft.locator("td[data-key=state]").inner_text() == "draft"
    assert await draft.locator("td[data-key=rr1]").inner_text() == "—"
    await context.close()


async def test_the_page_follows_a_new_response_within_five_seconds(service, browser):
    db = service["db"]
    context, page = await coordinator_page(service, browser)
    await page.goto(f"{service['base']}/waves/{field.SLUG}")
    assert await page.inner_text("#funnel [data-key=completed] .value") == "4"
    await page.evaluate("window.sameDocument = true")
    async with aiohttp.ClientSession() as session:
        outcome = await field.post_response(
            session, service["base"], db, response_id="R7", email="kim@seoul.example.org"
        )
    assert outcome["status"] == "complete"
    started = time.monotonic()
    while await page.inner_text("#funnel [data-key=completed] .value") != "5":
        assert time.monotonic() - started < 5, "the page did not show the new response within 5 s"
        await asyncio.sleep(0.1)
    assert await page.evaluate("window.sameDocument") is True  # updated in place, not reloaded
    today = datetime.now(ZoneInfo("America/Bogota")).date().isoformat()
    assert await page.get_attribute(f"#per-day g.day[data-day='{today}']", "data-count") == "5"
    await context.close()


async def test_actions_ask_first_and_work_without_javascript(service, browser):
    db = service["db"]
    context, page = await coordinator_page(service, browser, javascript=False)
    base = service["base"]
    await page.goto(f"{base}/waves/{field.SLUG}")
    await page.click("#action-pause")
    await page.click("#cancel")  # changing one's mind changes nothing
    assert waves.get_wave(db, field.SLUG)["paused"] == 0
    for action, check in (
        ("pause", lambda w: w["paused"] == 1),
        ("resume", lambda w: w["paused"] == 0),
        ("close", lambda w: w["state"] == "closed"),
    ):
        await page.click(f"#action-{action}")
        assert page.url == f"{base}/waves/{field.SLUG}/{action}"
        async with page.expect_navigation():
            await page.click("#confirm")
        assert check(waves.get_wave(db, field.SLUG)), action
        assert await page.locator("#notice").count() == 1
    assert await page.inner_text("#state") == "closed"
    assert await page.locator("#action-close").count() == 0
    assert db.execute("SELECT count(*) FROM wave_steps WHERE state = 'pending'").fetchone() == (0,)
    await context.close()


async def test_retry_sends_failed_messages_again_only_to_those_still_due(service, browser):
    """Three invitations failed for a reason that is not a bounce: one recipient has since finished, one opted
    out; a retry queues only the third, and the service delivers it."""
    db, sink, base = service["db"], service["sink"], service["base"]
    ids = field.contact_ids(db)
    kim, eve, joe = ids["kim@seoul.example.org"], ids["eve@lyon.example.org"], ids["joe@leeds.example.org"]
    db.execute("INSERT INTO suppressions (email, kind, created_at) VALUES ('joe@leeds.example.org', 'opt_out', '2026')")
    db.execute(
        "UPDATE outbox SET state = 'failed', last_error = '554 5.7.1 policy' WHERE kind = 'invitation' "
        "AND contact_id IN (?, ?, ?)",
        [kim, eve, joe],
    )
    db.conn.commit()
    context, page = await coordinator_page(service, browser)
    await page.goto(f"{base}/waves/{field.SLUG}")
    assert "(1)" in await page.inner_text("#action-retry")
    await page.click("#action-retry")
    assert "1 failed messages" in await page.inner_text("#question")
    before = len(sink.to("kim@seoul.example.org"))
    async with page.expect_navigation():
        await page.click("#confirm")
    assert await page.inner_text("#notice") == "1 messages queued again."
    await wait_until(lambda: len(sink.to("kim@seoul.example.org")) == before + 1, what="the retried invitation")
    states = dict(
        db.execute(
            "SELECT contact_id, state FROM outbox WHERE kind = 'invitation' AND contact_id IN (?, ?, ?)",
            [kim, eve, joe],
        ).fetchall()
    )
    assert states == {kim: "sent", eve: "failed", joe: "failed"}
    await context.close()


async def test_a_coordinator_assigns_an_unmatched_response(service, browser):
    db, sink = service["db"], service["sink"]
    context, page = await coordinator_page(service, browser)
    wave_url = f"{service['base']}/waves/{field.SLUG}"
    # an address that is nobody's, or of a contact not invited, is refused with a reason; nothing changes
    for email, reason in (("nobody@example.org", "no contact nobody@example.org"),):
        await page.goto(wave_url)
        await page.fill("#unmatched input[name=email]", email)
        async with page.expect_navigation() as navigation:
            await page.click("#unmatched button")
        assert (await navigation.value).status == 400 and reason in await page.inner_text("#message")
    assert db.execute("SELECT status FROM responses WHERE response_id = 'R6'").fetchone() == ("unmatched",)
    await page.goto(wave_url)
    await page.fill("#unmatched input[name=email]", "KIM@seoul.example.org")
    async with page.expect_navigation():
        await page.click("#unmatched button")
    assert "a complete response" in await page.inner_text("#notice")
    assert await page.locator("#unmatched tr[data-unmatched]").count() == 0
    assert await page.inner_text("#funnel [data-key=completed] .value") == "5"
    assert db.execute(
        "SELECT c.email, r.status FROM responses r JOIN contacts c ON c.id = r.contact_id WHERE r.response_id = 'R6'"
    ).fetchone() == ("kim@seoul.example.org", "complete")
    await wait_until(
        lambda: any("Thank" in str(m.message["Subject"]) for m in sink.to("kim@seoul.example.org")),
        what="Kim's thank-you",
    )
    await context.close()


async def test_researchers_see_their_own_interviews_coordinators_all(tmp_path, browser):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    interview_field.write_contacts(settings)
    db = open_db(settings.db_path)
    ids = interview_field.opt_in_everyone(db)
    start = interview_field.in_three_days_at(15)
    (mine,) = interview_field.publish(db, start, 1)
    (theirs,) = interview_field.publish(db, start, 1, researcher="ola@lab.example.org")
    interview_field.invite_all(db, settings)
    booking.book(db, ids["joe@leeds.example.org"], mine, utcnow())
    booking.book(db, ids["ana@bogota.example.org"], theirs, utcnow())
    from surveybot import tokens

    now = utcnow()
    marta = tokens.create(db, "researcher", None, now, email=interview_field.RESEARCHER)[1]
    older = tokens.create(db, "researcher", None, now)[1]  # made before tokens named their researcher
    coordinator = tokens.create(db, "coordinator", None, now)[1]
    try:
        async with running(settings) as (_, base), aiohttp.ClientSession() as session:
            for token, expected in (
                (marta, {interview_field.RESEARCHER}),
                (older, {interview_field.RESEARCHER, "ola@lab.example.org"}),
                (coordinator, {interview_field.RESEARCHER, "ola@lab.example.org"}),
            ):
                async with session.get(f"{base}/api/interviews", headers={"Authorization": f"Bearer {token}"}) as r:
                    assert {i["researcher"] for i in (await r.json())["interviews"]} == expected
                context = await browser.new_context()
                page = await context.new_page()
                await field.sign_in(page, base, token)
                await page.goto(f"{base}/interviews")
                shown = set(
                    await page.eval_on_selector_all(
                        "#interviews td[data-key=researcher]", "cells => cells.map(c => c.firstChild.textContent)"
                    )
                )
                assert shown == expected
                await context.close()
    finally:
        db.close()


async def test_replies_and_recipients_without_a_time_zone_show_on_the_wave(service, browser):
    from surveybot.mailbox.store import record_reply

    db = service["db"]
    ids = field.contact_ids(db)
    wave_id = db.execute("SELECT id FROM waves WHERE slug = ?", [field.SLUG]).fetchone()[0]
    record_reply(
        db,
        "reply-1",
        "reply",
        {
            "wave_id": wave_id,
            "contact_id": ids["eve@lyon.example.org"],
            "sender": "eve@lyon.example.org",
            "subject": f"I moved {field.XSS}",
            "excerpt": f"Please write to my successor.\n{field.XSS}",
        },
        utcnow(),
    )
    for n in range(2):
        record_reply(
            db, f"auto-{n}", "auto_reply", {"wave_id": wave_id, "contact_id": ids["kim@seoul.example.org"]}, utcnow()
        )
    db.execute("UPDATE contacts SET city = '', country = 'Atlantis' WHERE email = 'sam@porto.example.org'")
    db.conn.commit()
    context, page = await coordinator_page(service, browser)
    await page.goto(f"{service['base']}/waves/{field.SLUG}")
    replies = page.locator("#replies")
    assert await replies.locator("tr[data-reply]").count() == 1
    assert field.XSS in await replies.inner_text()  # shown as text, never run
    assert await page.locator("#replies script").count() == 0
    assert "2 automatic (out-of-office) replies" in await replies.inner_text()
    assert "Recipients without a time zone of their own (no timezone column, known city or one-zone country): 1." in (
        await page.inner_text("#without-zone")
    )
    await context.close()


async def test_how_responses_come_in_and_what_could_not_be_fetched_show_on_the_wave(service, browser):
    from surveybot import inbox, pull
    from surveybot.platforms import FetchNeeded

    db = service["db"]
    wave = waves.get_wave(db, field.SLUG)
    need = FetchNeeded("qualtrics", "SV_x", "R_lost1", "completed")
    inbox.add(db, wave["id"], need, utcnow())
    (row_id,) = db.execute("SELECT id FROM webhook_inbox WHERE response_id = 'R_lost1'").fetchone()
    inbox.finish(db, row_id, "failed", f"Qualtrics knows no such response (404) {field.XSS}", utcnow())
    context, page = await coordinator_page(service, browser)
    await page.goto(f"{service['base']}/waves/{field.SLUG}")
    intake = page.locator("#intake")
    assert "The survey platform sends each response as it is recorded (webhook)." in await intake.inner_text()
    assert await page.locator("#pull-error").count() == 0
    failed = await page.inner_text("#intake-failed")
    assert (
        failed == f"Responses that could not be fetched: 1. “surveybot responses retry {field.SLUG}” tries them again."
    )
    assert f"R_lost1: Qualtrics knows no such response (404) {field.XSS}" in await intake.inner_text()
    assert await page.locator("#intake script").count() == 0

    pull.note_enrolled(db, wave["id"], 0)
    db.execute(
        "UPDATE wave_pulls SET refused = 1, last_error = ?, last_done_at = ? WHERE wave_id = ?",
        [f"Qualtrics refused the API token (401); check QUALTRICS_API_TOKEN {field.XSS}", "2026-11-20T10:00:00+00:00",
         wave["id"]],
    )  # fmt: skip
    db.conn.commit()
    await page.reload()
    async with page.expect_navigation():
        await page.click("#lang-es")
    error = await page.inner_text("#pull-error")
    assert error.startswith(
        "Faltan las credenciales o la plataforma las rechazó (se reintenta cada hora): Qualtrics refused"
    )
    assert field.XSS in error and await page.locator("#intake script").count() == 0
    assert "Última descarga:" in await page.inner_text("#intake")
    await context.close()

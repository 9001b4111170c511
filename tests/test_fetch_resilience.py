"""No complete lost to an API hiccup: a response not readable yet, a quota spent for the day, a failure that
the platform's next delivery or ``responses retry`` recovers, a refused token."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import aiohttp
import pytest

from surveybot import waves
from surveybot.clock import iso, utcnow
from surveybot.db import open_db
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests import fake_platforms
from tests.service import import_rows, qualtrics_notification, qualtrics_wave, running, settings_for, wait_until

pytestmark = pytest.mark.faults  # a fault test that lives beside its feature: -m faults runs it too

ANA, JOE = "ana@bogota.example.org", "joe@leeds.example.org"


@pytest.fixture
async def qualtrics_field(tmp_path, mail_sink):
    fake = fake_platforms.FakePlatform()
    runner = await fake_platforms.start(fake)
    settings = settings_for(
        tmp_path,
        mail_sink.url,
        **fake.qualtrics_settings(),
        SURVEYBOT_FETCH_GRACE="4s",
    )
    import_rows(settings, [f"Ana Pérez,{ANA},Bogotá,Colombia,Latin America,es", f"Joe Bloggs,{JOE},Leeds,UK,Europe,en"])
    db = open_db(settings.db_path)
    qualtrics_wave(db)
    secret = service_secret(db, None)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 2, what="the invitations")
        wave = waves.get_wave(db, "city")
        tokens = {
            email: survey_token(secret, wave["id"], cid) for cid, email in db.execute("SELECT id, email FROM contacts")
        }

        async def notify(response_id: str) -> int:
            async with session.post(
                webhook_url(base, secret, wave), data=qualtrics_notification(response_id)
            ) as answer:
                return answer.status

        yield {
            "db": db,
            "fake": fake,
            "tokens": tokens,
            "notify": notify,
            "wave": wave,
            "secret": secret,
            "settings": settings,
        }
    await runner.cleanup()


def status(field) -> dict:
    db = field["db"]
    return wave_status(db, waves.get_wave(db, "city"), field["secret"], "https://survey.example.org")


async def test_a_response_not_readable_yet_is_recorded_when_it_is(qualtrics_field):
    f = qualtrics_field
    f["fake"].add_qualtrics("R_late", finished=True, token=f["tokens"][ANA], answers={"QID1": 1})
    f["fake"].failures["R_late"] = [404]  # Qualtrics answers 404 a moment after the event
    assert await f["notify"]("R_late") == 200
    await wait_until(
        lambda: f["db"].execute("SELECT count(*) FROM responses").fetchone()[0] == 1,
        timeout=15,
        what="the response, once readable",
    )
    assert status(f)["completed"] == 1 and status(f)["intake_failed"] == 0


async def test_a_failure_is_reported_and_recovered_by_redelivery_and_by_responses_retry(qualtrics_field, run_cli):
    f = qualtrics_field
    # never readable within the grace: given up, and reported with the reason
    assert await f["notify"]("R_gone") == 200
    await wait_until(lambda: status(f)["intake_failed"] == 1, timeout=15, what="the failure reported")
    assert "404" in status(f)["intake_errors"][0]["error"]
    # the platform delivers the same notification again, and the response exists now: recorded
    f["fake"].add_qualtrics("R_gone", finished=True, token=f["tokens"][ANA], answers={"QID1": 1})
    assert await f["notify"]("R_gone") == 200
    await wait_until(lambda: status(f)["completed"] == 1, timeout=10, what="recovered by the re-delivery")
    assert status(f)["intake_failed"] == 0
    # another one fails; the coordinator asks for a retry once the platform has it
    assert await f["notify"]("R_joe") == 200
    await wait_until(lambda: status(f)["intake_failed"] == 1, timeout=15, what="the second failure")
    f["fake"].add_qualtrics("R_joe", finished=True, token=f["tokens"][JOE], answers={"QID1": 2})
    env = {"SURVEYBOT_DB": str(f["settings"].db_path)}
    result = await asyncio.to_thread(run_cli, "responses", "retry", "city", extra_env=env)
    assert result.returncode == 0 and "Queued 1 response" in result.stdout
    await wait_until(lambda: status(f)["completed"] == 2, timeout=10, what="recovered by responses retry")
    assert f["db"].execute("SELECT count(*) FROM responses").fetchone()[0] == 2  # each once


async def test_a_refused_token_waits_without_hammering_and_says_so_once(qualtrics_field, caplog):
    f = qualtrics_field
    f["fake"].add_qualtrics("R_a", finished=True, token=f["tokens"][ANA], answers={"QID1": 1})
    f["fake"].add_qualtrics("R_b", finished=True, token=f["tokens"][JOE], answers={"QID1": 1})
    f["fake"].failures["R_a"] = [401] * 50
    f["fake"].failures["R_b"] = [401] * 50
    with caplog.at_level(logging.ERROR, logger="surveybot.inbox"):
        for response_id in ("R_a", "R_b"):
            assert await f["notify"](response_id) == 200
        await asyncio.sleep(3)
    calls = sum(1 for _, path, _ in f["fake"].requests if path.endswith(("/R_a", "/R_b")))
    assert calls <= 6  # a refused token is not hammered
    said = [r for r in caplog.records if "token" in r.getMessage()]
    assert len(said) == 1 and "QUALTRICS_API_TOKEN" in said[0].getMessage()
    assert status(f)["intake_failed"] == 0  # waiting, not lost


async def test_a_surveymonkey_quota_spent_for_14_hours_loses_no_complete(tmp_path, mail_sink):
    """SurveyMonkey's 429 has no Retry-After; its day quota headers say 14 hours. Nothing is asked for meanwhile;
    when the quota is back every complete is recorded, once."""
    from tests.test_webhooks_platforms import complete_body, field_for, sm_id, surveymonkey_body

    async with field_for("surveymonkey", tmp_path, mail_sink) as sm:
        sm.fake.surveymonkey_day_reset = 14 * 3600
        ids = [sm_id(40 + n) for n in range(3)]
        for number, rid in enumerate(ids):
            complete_body(sm, rid, sorted(sm.tokens)[number])
            sm.fake.failures[rid] = [429]
            assert (await sm.surveymonkey(surveymonkey_body(rid)))[0] == 200
        await wait_until(
            lambda: sm.count("SELECT count(*) FROM webhook_inbox WHERE last_error != ''") == 3,
            what="each asked for once",
        )
        due = [row[0] for row in sm.db.execute("SELECT due_at FROM webhook_inbox")]
        assert all(d >= iso(utcnow() + timedelta(hours=13, minutes=59)) for d in due)  # waits for the reset
        await asyncio.sleep(1)
        assert len(sm.fake.requests) == 3 and sm.count("SELECT count(*) FROM webhook_inbox WHERE state = 'failed'") == 0
        # fourteen hours later (the rows fall due), the quota is back
        sm.db.execute("UPDATE webhook_inbox SET due_at = ?", [iso(utcnow())])
        sm.db.conn.commit()
        await wait_until(
            lambda: sm.count("SELECT count(*) FROM responses") == 3, timeout=15, what="every complete recorded"
        )
        assert len(sm.fake.requests) == 6


async def test_missing_credentials_are_said_once_shown_in_status_and_nothing_is_lost(tmp_path, mail_sink, caplog):
    """A Qualtrics wave whose service has no API token: its notifications are kept and tried again, the
    coordinator is told once in the log and in wave status why, and once the token is set they are recorded."""
    fake = fake_platforms.FakePlatform()
    runner = await fake_platforms.start(fake)
    settings = settings_for(tmp_path, mail_sink.url)  # no QUALTRICS_* settings
    import_rows(settings, [f"Ana Pérez,{ANA},Bogotá,Colombia,Latin America,es"])
    db = open_db(settings.db_path)
    qualtrics_wave(db)
    secret = service_secret(db, None)
    field = {"db": db, "secret": secret}
    try:
        with caplog.at_level(logging.ERROR, logger="surveybot.inbox"):
            async with running(settings) as (_, base), aiohttp.ClientSession() as session:
                await wait_until(lambda: len(mail_sink.received) == 1, what="the invitation")
                wave = waves.get_wave(db, "city")
                (contact_id,) = db.execute("SELECT id FROM contacts").fetchone()
                fake.add_qualtrics("R_1", finished=True, token=survey_token(secret, wave["id"], contact_id))
                for response_id in ("R_1", "R_2"):
                    async with session.post(
                        webhook_url(base, secret, wave), data=qualtrics_notification(response_id)
                    ) as answer:
                        assert answer.status == 200
                await wait_until(lambda: status(field)["intake_retrying"] == 2, what="both waiting, with a reason")
                await asyncio.sleep(1)  # several tries
        shown = status(field)
        assert "QUALTRICS_API_TOKEN" in shown["intake_retry_error"] and shown["intake_failed"] == 0
        said = [r.getMessage() for r in caplog.records if "QUALTRICS_API_TOKEN" in r.getMessage()]
        assert said == [
            "wave city: QUALTRICS_BASE_URL and QUALTRICS_API_TOKEN are needed to fetch responses; "
            "its responses wait until the credentials work"
        ]
        # the token is set and the service started again: what waited is recorded
        fixed = settings_for(tmp_path, mail_sink.url, **fake.qualtrics_settings())
        db.execute("UPDATE webhook_inbox SET due_at = ?", [iso(utcnow())])  # not the backoff's next try
        db.conn.commit()
        async with running(fixed):
            await wait_until(lambda: status(field)["completed"] == 1, timeout=15, what="the response, fetched")
    finally:
        await runner.cleanup()

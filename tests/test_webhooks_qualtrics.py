"""Qualtrics webhooks against the real server over HTTP, with a local stand-in for the Qualtrics API."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from surveybot import waves
from surveybot.db import open_db
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests import fake_platforms
from tests.service import import_rows, qualtrics_notification, qualtrics_wave, running, settings_for, wait_until

CONTACTS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Luis Gómez,luis@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,",
]


@dataclass
class Field:
    db: object
    wave: dict
    url: str  # the wave's webhook URL on the running server
    base: str
    fake: fake_platforms.FakePlatform
    tokens: dict
    settings: object
    session: aiohttp.ClientSession

    async def notify(self, response_id: str, topic: str = "surveyengine.completedResponse.SV_city", **extra):
        form = {**qualtrics_notification(response_id, topic=topic), **extra}
        async with self.session.post(self.url, data=form) as response:
            return response.status, await response.json()

    def count(self, sql: str, *params) -> int:
        return self.db.execute(sql, params).fetchone()[0]


@pytest.fixture
async def field(tmp_path, mail_sink):
    fake = fake_platforms.FakePlatform()
    runner = await fake_platforms.start(fake)
    settings = settings_for(
        tmp_path,
        mail_sink.url,
        **fake.qualtrics_settings(),
        SURVEYBOT_FETCH_GRACE="1s",
    )
    import_rows(settings, CONTACTS)
    db = open_db(settings.db_path)
    qualtrics_wave(
        db, reminders=(timedelta(seconds=4),), interview_question="QID9", interview_yes="1", required=("QID1",)
    )
    secret = service_secret(db, None)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 4, what="the invitations")
        wave = waves.get_wave(db, "city")
        tokens = {
            email: survey_token(secret, wave["id"], cid) for cid, email in db.execute("SELECT id, email FROM contacts")
        }
        url = webhook_url(base, secret, wave)
        yield Field(db, wave, url, base, fake, tokens, settings, session)
    await runner.cleanup()


async def test_complete_response_is_kept_thanked_and_stops_reminders_within_a_second(field, mail_sink):
    field.fake.add_qualtrics(
        "R_ana1",
        finished=True,
        token=field.tokens["ana@bogota.example.org"],
        answers={"QID1": 3, "QID2_TEXT": "Hermanamientos y redes", "QID9": 1},
    )
    sent = time.monotonic()
    assert await field.notify("R_ana1") == (200, {"status": "queued"})
    await wait_until(
        lambda: field.count("SELECT count(*) FROM recipients WHERE completed_at IS NOT NULL") == 1,
        timeout=1.0,
        what="completion within a second",
    )
    assert time.monotonic() - sent < 1.0
    await wait_until(lambda: len(mail_sink.to("ana@bogota.example.org")) == 2, what="the thank-you")
    thanks = mail_sink.to("ana@bogota.example.org")[1]
    assert str(thanks.message["Subject"]).startswith("Gracias")
    await asyncio.sleep(4.5)  # the reminder falls due: everyone but Ana
    reminded = {
        r.rcpt_tos[0] for r in mail_sink.received if str(r.message["Subject"]).startswith(("Reminder", "Recordatorio"))
    }
    assert reminded == {"luis@bogota.example.org", "joe@leeds.example.org", "pat@lima.example.org"}
    row = field.db.execute("SELECT status, duplicate, answers FROM responses").fetchone()
    assert row[0] == "complete" and row[1] == "" and '"Hermanamientos y redes"' in row[2]
    assert "203.0.113.9" not in row[2] and "locationLatitude" not in row[2]  # metadata not kept as answers
    status = wave_status(field.db, waves.get_wave(field.db, "city"), service_secret(field.db, None), "x")
    assert (status["completed"], status["interview_queue"], status["partial_discarded"]) == (1, 1, 0)


async def test_partial_response_leaves_only_an_audit_line(field, tmp_path):
    field.fake.add_qualtrics(
        "R_joe1",
        finished=False,
        progress=45,
        token=field.tokens["joe@leeds.example.org"],
        answers={"QID1": 2, "QID2_TEXT": "PARTIAL-ANSWER-never-stored-7731"},
    )
    field.fake.add_qualtrics(
        "R_pat1",
        finished=True,
        token=field.tokens["pat@lima.example.org"],
        answers={"QID1": 1, "QID2_TEXT": "COMPLETE-ANSWER-kept-5520"},
    )
    assert (await field.notify("R_joe1", topic="surveyengine.partialResponse.SV_city"))[0] == 200
    assert (await field.notify("R_pat1"))[0] == 200
    await wait_until(
        lambda: field.count("SELECT count(*) FROM webhook_inbox WHERE state = 'done'") == 2, what="both processed"
    )
    audit = field.db.execute("SELECT response_id, progress, reason FROM partial_audit").fetchall()
    assert audit == [("R_joe1", 45, "not finished")]
    assert field.count("SELECT count(*) FROM responses") == 1
    field.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [p for p in Path(tmp_path).glob("surveybot.db*")]
    contents = b"".join(p.read_bytes() for p in files)
    assert b"COMPLETE-ANSWER-kept-5520" in contents  # the search can find what is there
    assert b"PARTIAL-ANSWER-never-stored-7731" not in contents
    status = wave_status(field.db, waves.get_wave(field.db, "city"), service_secret(field.db, None), "x")
    assert status["partial_discarded"] == 1 and status["completed"] == 1


async def test_missing_required_answer_counts_as_partial(field):
    field.fake.add_qualtrics(
        "R_luis1", finished=True, token=field.tokens["luis@bogota.example.org"], answers={"QID2_TEXT": "no QID1"}
    )
    await field.notify("R_luis1")
    await wait_until(lambda: field.count("SELECT count(*) FROM partial_audit") == 1, what="the audit line")
    assert field.db.execute("SELECT reason FROM partial_audit").fetchone()[0] == "unanswered required: QID1"
    assert field.count("SELECT count(*) FROM recipients WHERE completed_at IS NOT NULL") == 0


async def test_retried_and_out_of_order_deliveries_change_nothing(field):
    field.fake.add_qualtrics("R_ana1", finished=True, token=field.tokens["ana@bogota.example.org"], answers={"QID1": 3})
    first = await field.notify("R_ana1")
    again = await field.notify("R_ana1")
    assert first == (200, {"status": "queued"}) and again == (200, {"status": "already queued"})
    await wait_until(lambda: field.count("SELECT count(*) FROM responses") == 1, what="the response")
    # a late "partial" event for the same response, after it completed
    late = await field.notify("R_ana1", topic="surveyengine.partialResponse.SV_city")
    assert late[0] == 200
    await wait_until(
        lambda: field.count("SELECT count(*) FROM webhook_inbox WHERE state = 'done'") == 2,
        what="the late event processed",
    )
    assert field.count("SELECT count(*) FROM responses") == 1
    assert field.count("SELECT count(*) FROM partial_audit") == 0
    assert sum(1 for method, path, _ in field.fake.requests if path.endswith("/R_ana1")) == 2


async def test_duplicate_contact_duplicate_city_and_unmatched_are_kept_and_flagged(field, mail_sink):
    field.fake.add_qualtrics("R_a1", finished=True, token=field.tokens["ana@bogota.example.org"], answers={"QID1": 1})
    field.fake.add_qualtrics("R_a2", finished=True, token=field.tokens["ana@bogota.example.org"], answers={"QID1": 2})
    field.fake.add_qualtrics("R_l1", finished=True, token=field.tokens["luis@bogota.example.org"], answers={"QID1": 3})
    field.fake.add_qualtrics("R_x1", finished=True, token="not-a-token-of-this-wave", answers={"QID1": 4})
    field.fake.add_qualtrics("R_x2", finished=True, token=None, answers={"QID1": 5})
    for response_id in ("R_a1", "R_a2", "R_l1", "R_x1", "R_x2"):
        await field.notify(response_id)
        await wait_until(
            lambda: (
                field.count("SELECT count(*) FROM webhook_inbox WHERE state != 'pending'")
                == field.count("SELECT count(*) FROM webhook_inbox")
            ),
            what="processing in order",
        )
    rows = dict((r[0], (r[1], r[2])) for r in field.db.execute("SELECT response_id, status, duplicate FROM responses"))
    assert rows == {
        "R_a1": ("complete", ""),
        "R_a2": ("complete", "contact"),
        "R_l1": ("complete", "city"),
        "R_x1": ("unmatched", ""),
        "R_x2": ("unmatched", ""),
    }
    await wait_until(lambda: len(mail_sink.to("ana@bogota.example.org")) == 2, what="one thank-you for Ana")
    await asyncio.sleep(0.5)
    assert len(mail_sink.to("ana@bogota.example.org")) == 2  # the duplicate does not thank twice


async def test_forged_id_unknown_response_and_api_errors(field):
    # a ResponseID Qualtrics does not know: nothing is created
    assert (await field.notify("R_forged"))[0] == 200
    await wait_until(
        lambda: field.count("SELECT count(*) FROM webhook_inbox WHERE state = 'failed'") == 1,
        what="the unknown response given up",
    )
    assert field.count("SELECT count(*) FROM responses") == 0
    # 429 with Retry-After, then a 500, then the response
    field.fake.add_qualtrics("R_slow", finished=True, token=field.tokens["joe@leeds.example.org"], answers={"QID1": 1})
    field.fake.failures["R_slow"] = [429, 500]
    await field.notify("R_slow")
    await wait_until(lambda: field.count("SELECT count(*) FROM responses") == 1, timeout=20, what="after retries")
    times = [t for _, path, t in field.fake.requests if path.endswith("/R_slow")]
    assert len(times) == 3 and times[1] - times[0] >= 0.9  # waited for Retry-After: 1


@pytest.mark.parametrize(
    "mutate, status",
    [
        (lambda url: url[:-4] + "AAAA", 401),  # forged secret
        (lambda url: url.replace("/city/", "/nowave/"), 401),
        (lambda url: url.replace("/qualtrics/", "/typeform/"), 401),  # right secret, wrong platform
        (lambda url: url.replace("/qualtrics/", "/nosuch/"), 404),
    ],
)
async def test_wrong_urls_are_refused(field, mutate, status):
    async with field.session.post(
        mutate(field.url), data={"Topic": "t", "SurveyID": "SV_city", "ResponseID": "R_1"}
    ) as response:
        assert response.status == status
        assert "error" in await response.json()
    assert field.count("SELECT count(*) FROM webhook_inbox") == 0


@pytest.mark.parametrize(
    "body, headers, status",
    [
        (b"\x00\xff\xfe garbage \x89PNG", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b'{"Topic": "x"}', {"Content-Type": "application/json"}, 415),
        (b"Topic=x&SurveyID=SV_city", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b"Topic=x&SurveyID=SV_other&ResponseID=R_1", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b"Topic=x&SurveyID=SV_city&ResponseID=../../etc", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b"Topic=" + b"x" * (2 * 1024 * 1024), {"Content-Type": "application/x-www-form-urlencoded"}, 413),
        (b"", {}, 415),
    ],
)
async def test_malformed_notifications_are_refused_cleanly(field, body, headers, status):
    async with field.session.post(field.url, data=io.BytesIO(body), headers=headers) as response:
        assert response.status == status
        assert "error" in await response.json()
    assert field.count("SELECT count(*) FROM webhook_inbox") == 0
    async with field.session.get(f"{field.base}/healthz") as health:
        assert health.status == 200


async def test_subscribe_registers_the_webhook_with_qualtrics(field, tmp_path, run_cli):
    env = {
        "SURVEYBOT_DB": str(field.settings.db_path),
        "QUALTRICS_BASE_URL": field.fake.url,
        "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_TOKEN,
        "SURVEYBOT_BASE_URL": "https://survey.example.org",
    }
    result = await asyncio.to_thread(run_cli, "wave", "subscribe", "city", extra_env=env)
    assert result.returncode == 0, result.stderr
    assert "SUB_1" in result.stdout and "SUB_2" in result.stdout
    assert [s["topics"] for s in field.fake.subscriptions] == [
        "surveyengine.completedResponse.SV_city",
        "surveyengine.partialResponse.SV_city",
    ]
    assert all(
        s["publicationUrl"].startswith("https://survey.example.org/webhooks/qualtrics/city/")
        for s in field.fake.subscriptions
    )
    again = await asyncio.to_thread(run_cli, "wave", "subscribe", "city", extra_env=env)
    assert again.returncode == 0 and "already" in again.stdout and len(field.fake.subscriptions) == 2
    wrong = await asyncio.to_thread(
        run_cli, "wave", "subscribe", "city", extra_env={**env, "QUALTRICS_API_TOKEN": "bad"}
    )
    assert wrong.returncode == 1 and "QUALTRICS_API_TOKEN" in wrong.stderr
    researcher = await asyncio.to_thread(
        run_cli,
        "wave",
        "subscribe",
        "city",
        extra_env={**env, "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_NOT_ADMIN},
    )
    assert researcher.returncode == 1 and "brand administrator" in researcher.stderr
    removed = await asyncio.to_thread(run_cli, "wave", "unsubscribe", "city", extra_env=env)
    assert removed.returncode == 0 and "Removed 2 subscriptions" in removed.stdout
    assert field.fake.subscriptions == []


async def test_export_escapes_formulas(field, run_cli):
    field.fake.add_qualtrics(
        "R_f",
        finished=True,
        token=field.tokens["joe@leeds.example.org"],
        answers={"QID1": 1, "QID2_TEXT": '=HYPERLINK("http://evil.example","x")'},
    )
    await field.notify("R_f")
    await wait_until(lambda: field.count("SELECT count(*) FROM responses") == 1, what="the response")
    result = await asyncio.to_thread(
        run_cli, "responses", "export", "city", extra_env={"SURVEYBOT_DB": str(field.settings.db_path)}
    )
    assert result.returncode == 0, result.stderr
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["email"] == "joe@leeds.example.org" and rows[0]["QID1"] == "1"
    assert rows[0]["QID2_TEXT"] == '\'=HYPERLINK("http://evil.example","x")'

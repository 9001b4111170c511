"""LimeSurvey waves end to end: created only on a survey whose links can work, participants enrolled at launch,
responses pulled by the running service — complete, partial, a partial finished between two pulls — and
LimeSurvey's in-band refusals read as such. The real CLI and service, a real SQLite file and SMTP sink, and a
local RemoteControl stand-in (tests/fake_limesurvey.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from surveybot import plan, pull, recipients, responses, waves
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.db import Database, open_db
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests import fake_limesurvey
from tests.fake_limesurvey import FakeLimeSurvey, Survey
from tests.respondents import ANA, CONTACTS, JOE, PAT, finished
from tests.service import import_rows, running, settings_for, wait_until

SURVEY = 482913
SECRET_ANSWER = "PARTIAL-ANSWER-never-stored-5521"


@dataclass
class Field:
    fake: FakeLimeSurvey
    settings: Settings
    env: dict[str, str]
    db: Database
    tmp_path: Path

    def token(self, email: str) -> str:
        """The token LimeSurvey holds for this person (and writes on their response)."""
        wave = waves.get_wave(self.db, "city")
        (contact_id,) = self.db.execute("SELECT id FROM contacts WHERE email = ?", [email]).fetchone()
        return recipients.limesurvey_token(
            recipients.survey_token(service_secret(self.db, None), wave["id"], contact_id)
        )

    def respond(self, email: str, answers: dict[str, str], *, submitted: bool = True) -> int:
        return self.fake.respond(SURVEY, self.token(email), answers, submitted=submitted)

    def completed(self) -> set[str]:
        return finished(self.db)

    def status(self) -> dict[str, Any]:
        return wave_status(self.db, waves.get_wave(self.db, "city"), service_secret(self.db, None), "http://x")

    async def cli(self, run_cli, *args: str, **env: str):
        return await asyncio.to_thread(run_cli, *args, extra_env={**self.env, **env})


@pytest.fixture
async def field(tmp_path, mail_sink):
    fake = FakeLimeSurvey(surveys={SURVEY: Survey()})
    runner = await fake_limesurvey.start(fake)
    env = {
        "LIMESURVEY_URL": fake.url,
        "LIMESURVEY_USER": fake_limesurvey.USER,
        "LIMESURVEY_PASSWORD": fake_limesurvey.PASSWORD,
        "SURVEYBOT_MAIL_URL": mail_sink.url,
    }
    settings = settings_for(tmp_path, mail_sink.url, **{**env, "SURVEYBOT_POLL_EVERY": "1s"})
    import_rows(settings, CONTACTS)
    db = open_db(settings.db_path)
    try:
        yield Field(fake, settings, env, db, tmp_path)
    finally:
        db.close()
        await runner.cleanup()


def create_args(*more: str) -> list[str]:
    return ["wave", "create", "city", "--title", "City diplomacy 2026", "--platform", "limesurvey",
            "--survey-id", str(SURVEY), "--survey-url", f"https://survey.example.org/index.php/{SURVEY}",
            *more]  # fmt: skip


async def test_a_survey_whose_links_cannot_work_is_refused_at_create_saying_why(field, run_cli):
    field.fake.surveys[SURVEY].anonymized = "Y"
    field.fake.surveys[SURVEY].participant_table = False
    refused = await field.cli(run_cli, *create_args())
    assert refused.returncode != 0
    assert "anonymized responses" in refused.stderr and "no participant table" in refused.stderr
    assert field.db.execute("SELECT count(*) FROM waves").fetchone()[0] == 0
    wrong = await field.cli(run_cli, *create_args(), LIMESURVEY_PASSWORD="guess")
    assert "LimeSurvey refused the login (Invalid user name or password)" in wrong.stderr
    webhook = await field.cli(run_cli, *create_args("--intake", "webhook"))
    assert "limesurvey sends no webhooks: its responses are pulled (--intake poll)" in webhook.stderr
    typeform = await field.cli(
        run_cli, "wave", "create", "tf", "--title", "T", "--platform", "typeform", "--survey-id", "abc",
        "--survey-url", "https://lab.typeform.com/to/abc", "--intake", "poll",
    )  # fmt: skip
    assert typeform.returncode != 0 and "typeform responses cannot be pulled" in typeform.stderr
    assert field.fake.sessions == set(), "every session key was released"


async def test_launch_enrols_everyone_with_their_own_token_before_a_link_goes_out(field, run_cli, mail_sink):
    created = await field.cli(run_cli, *create_args("--in-progress-timeout", "3d"))
    assert created.returncode == 0, created.stderr
    assert "Responses are pulled every 5m by 'surveybot serve' until 3d after the close." in created.stdout
    wave = waves.get_wave(field.db, "city")
    assert (wave["intake"], wave["in_progress_timeout"]) == ("poll", 3 * 86400)
    shown = json.loads((await field.cli(run_cli, "wave", "status", "city", "--json")).stdout)
    assert (shown["intake"], shown["webhook_url"]) == ("poll", ""), "no webhook URL that could not work"
    assert (
        "Webhook URL: none (limesurvey sends no webhooks; its responses are pulled)"
        in (await field.cli(run_cli, "wave", "status", "city")).stdout
    )
    field.fake.surveys[SURVEY].participants.append(  # enrolled by hand earlier: not added twice
        {"tid": "1", "token": field.token(PAT), "firstname": "Pat", "lastname": "Doe", "email": PAT, "language": ""}
    )
    launched = await field.cli(run_cli, "wave", "launch", "city", "--yes")
    assert launched.returncode == 0, launched.stderr
    assert "LimeSurvey: 2 participants added, 1 were there already." in launched.stdout
    held = {p["email"]: p["token"] for p in field.fake.surveys[SURVEY].participants}
    assert held == {email: field.token(email) for email in (ANA, JOE, PAT)}
    async with running(field.settings):
        await wait_until(lambda: len(mail_sink.received) == 3, what="the invitations")
    for received in mail_sink.received:
        links = [w for w in received.message.get_body(("plain",)).get_content().split() if "index.php" in w]
        queries = [parse_qs(urlsplit(link).query) for link in links]
        who = received.rcpt_tos[0]
        assert {q["token"][0] for q in queries} == {held[who]}, "the link carries the token LimeSurvey holds"
        # a language each; no preference (Pat): a bilingual message with a link in each language
        assert {q["lang"][0] for q in queries} == {ANA: {"es"}, JOE: {"en"}, PAT: {"en", "es"}}[who]


async def test_a_launch_limesurvey_refuses_leaves_the_wave_a_draft(field, run_cli):
    assert (await field.cli(run_cli, *create_args())).returncode == 0
    field.fake.surveys[SURVEY].participant_table = False  # deleted after the wave was created
    launched = await field.cli(run_cli, "wave", "launch", "city", "--yes")
    assert launched.returncode != 0
    assert "not launched: survey 482913 has no participant table, so the personal links cannot work" in launched.stderr
    assert waves.get_wave(field.db, "city")["state"] == "draft"


async def test_poll_mode_records_each_complete_once_even_one_finished_between_two_pulls(field, mail_sink):
    waves.create_wave(
        field.db,
        waves.WaveSpec(slug="city", title="City diplomacy 2026", platform="limesurvey", survey_id=str(SURVEY),
                       survey_url="https://survey.example.org/s", reminders=(timedelta(seconds=6),),
                       close_after=timedelta(minutes=10), required=("Q1",), interview_question="INTERVIEW",
                       interview_yes="Y"),
        utcnow(),
    )  # fmt: skip
    waves.launch(field.db, "city", utcnow())
    ana = field.respond(ANA, {"Q1": "Hermanamientos", "INTERVIEW": "Y"})
    joe = field.respond(JOE, {"Q1": "Redes"}, submitted=False)
    field.respond(PAT, {"Q1": SECRET_ANSWER}, submitted=False)
    async with running(field.settings):
        await wait_until(lambda: field.completed() == {ANA}, what="Ana's complete, pulled")
        assert {p["email"] for p in field.fake.surveys[SURVEY].participants} == {ANA, JOE, PAT}, (
            "recipients added at the invitations are enrolled by the service"
        )
        assert field.status()["partial_discarded"] == 2
        field.fake.submit(SURVEY, joe, {"Q1": "Redes y ciudades"})  # Joe comes back and finishes
        await wait_until(lambda: field.completed() == {ANA, JOE}, what="Joe's response, finished later")
        await asyncio.sleep(6)  # the reminder falls due
        await wait_until(lambda: any("Recordatorio" in str(r.message["Subject"]) for r in mail_sink.received),
                         what="the reminder")  # fmt: skip
        await asyncio.sleep(0.5)
    reminded = {r.rcpt_tos[0] for r in mail_sink.received if "ecordatorio" in str(r.message["Subject"])}
    assert reminded == {PAT}
    status = field.status()
    assert (status["responses"], status["completed"], status["partial_discarded"]) == (2, 2, 1)
    assert status["interview_queue"] == 1
    rows = dict(field.db.execute("SELECT response_id, answers FROM responses").fetchall())
    assert set(rows) == {str(ana), str(joe)}
    assert json.loads(rows[str(joe)])["Q1"] == "Redes y ciudades"
    assert SECRET_ANSWER.encode() not in (field.tmp_path / "surveybot.db").read_bytes()
    assert field.fake.sessions == set()


async def test_limesurvey_refusals_in_band_are_said_and_the_pull_goes_on_after(field, run_cli):
    assert (await field.cli(run_cli, *create_args())).returncode == 0
    assert (await field.cli(run_cli, "wave", "launch", "city", "--yes")).returncode == 0
    field.fake.surveys[SURVEY].active = "N"  # not activated yet: "No Data", nothing to record, not an error
    quiet = await field.cli(run_cli, "wave", "sync", "city", "--json")
    assert json.loads(quiet.stdout)["error"] == "" and json.loads(quiet.stdout)["read"] == 0
    field.fake.surveys[SURVEY].active = "Y"
    from surveybot import plan

    plan.run_due(field.db, service_secret(field.db, None), utcnow())
    field.respond(ANA, {"Q1": "Sí"})
    refused = await field.cli(run_cli, "wave", "sync", "city", LIMESURVEY_PASSWORD="expired")
    assert refused.returncode == 1
    assert "LimeSurvey refused the login (Invalid user name or password)" in refused.stderr
    field.fake.statuses["export_responses"] = ["Invalid session key"]
    stale = await field.cli(run_cli, "wave", "sync", "city")
    assert stale.returncode == 1 and "LimeSurvey refused the session key" in stale.stderr
    fine = await field.cli(run_cli, "wave", "sync", "city")
    assert fine.returncode == 0 and "Pulled city: 1 complete." in fine.stdout
    assert field.completed() == {ANA}
    assert field.fake.sessions == set(), "every session key was released, whatever happened"


async def test_a_refused_limesurvey_login_is_said_once_by_the_service_and_not_hammered(field, caplog):
    waves.create_wave(
        field.db,
        waves.WaveSpec(slug="city", title="City diplomacy 2026", platform="limesurvey", survey_id=str(SURVEY),
                       survey_url="https://survey.example.org/s", reminders=(), close_after=timedelta(minutes=10)),
        utcnow(),
    )  # fmt: skip
    waves.launch(field.db, "city", utcnow())
    settings = settings_for(
        field.tmp_path, f"maildir://{field.tmp_path / 'mail'}", **{**field.env, "LIMESURVEY_PASSWORD": "expired"},
        SURVEYBOT_POLL_EVERY="1s",
    )  # fmt: skip
    caplog.set_level(logging.INFO, "surveybot.pull")
    async with running(settings):
        await wait_until(lambda: (field.status()["pull"] or {}).get("refused"), what="the refusal in the status")
        await asyncio.sleep(3)  # three polling periods
    logins = field.fake.called("get_session_key")
    assert len(logins) == 1, "a refused login is tried again only hourly"
    errors = [r.getMessage() for r in caplog.records if r.name == "surveybot.pull" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "LimeSurvey refused the login (Invalid user name or password)" in errors[0]
    assert "LIMESURVEY_PASSWORD" in field.status()["pull"]["last_error"]


def two_waves(field: Field) -> tuple[int, str]:
    """Waves 'city' (on SURVEY) and 'metro' (on another survey), launched and their invitations queued (which
    makes everyone a recipient); (metro's survey, Joe's token there)."""
    other = SURVEY + 1
    field.fake.surveys[other] = Survey()
    for slug, survey in (("city", SURVEY), ("metro", other)):
        waves.create_wave(
            field.db,
            waves.WaveSpec(slug=slug, title="City diplomacy 2026", platform="limesurvey", survey_id=str(survey),
                           survey_url="https://survey.example.org/s", reminders=(), close_after=timedelta(minutes=10)),
            utcnow(),
        )  # fmt: skip
        waves.launch(field.db, slug, utcnow())
    plan.run_due(field.db, service_secret(field.db, None), utcnow())
    metro = waves.get_wave(field.db, "metro")
    (joe_id,) = field.db.execute("SELECT id FROM contacts WHERE email = ?", [JOE]).fetchone()
    return other, recipients.limesurvey_token(
        recipients.survey_token(service_secret(field.db, None), metro["id"], joe_id)
    )


def completed_in(field: Field, slug: str) -> set[str]:
    wave = waves.get_wave(field.db, slug)
    rows = field.db.execute(
        "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id "
        "WHERE r.wave_id = ? AND r.completed_at IS NOT NULL",
        [wave["id"]],
    )
    return {email for (email,) in rows}


async def test_two_surveys_that_both_number_their_responses_from_one_keep_both(field, run_cli):
    """LimeSurvey numbers each survey's responses 1, 2, 3 …: response 1 of one wave is not a repeat of the
    other wave's response 1."""
    other, joe_token = two_waves(field)
    assert field.respond(ANA, {"Q1": "Hermanamientos"}) == 1
    assert field.fake.respond(other, joe_token, {"Q1": "Redes"}) == 1
    for slug in ("city", "metro"):
        synced = await field.cli(run_cli, "wave", "sync", slug, "--json")
        assert json.loads(synced.stdout)["outcomes"] == {"complete": 1}, synced.stdout
    assert (completed_in(field, "city"), completed_in(field, "metro")) == ({ANA}, {JOE})


async def test_a_wave_whose_export_takes_long_holds_back_no_other_wave(field):
    """Two LimeSurvey waves pulled by one service: while the server is still building one survey's export,
    the other wave's completes are pulled and recorded at the usual pace; the slow one comes in once ready."""
    other, joe_token = two_waves(field)
    field.respond(ANA, {"Q1": "Hermanamientos"})
    field.fake.respond(other, joe_token, {"Q1": "Redes"})
    slow = field.fake.held[SURVEY] = asyncio.Event()
    try:
        async with running(field.settings):
            await wait_until(lambda: completed_in(field, "metro") == {JOE}, what="the quick wave's complete")
            field.fake.respond(other, joe_token, {"Q1": "again"})  # and later ones, pull after pull
            await wait_until(lambda: len(field.fake.called("export_responses")) >= 4, what="several pulls")
            assert completed_in(field, "city") == set(), "the slow export is still being built"
            slow.set()
            await wait_until(lambda: completed_in(field, "city") == {ANA}, what="the slow wave's complete, once ready")
    finally:
        slow.set()  # whatever happened, the stand-in answers, so nothing waits on it


async def test_stopping_does_not_wait_for_an_export_still_being_built(field):
    """serve stops within seconds while LimeSurvey is still building an export: the pull is abandoned (what it
    recorded stays; the next start pulls again) rather than held until the network timeout."""
    other, joe_token = two_waves(field)
    field.fake.respond(other, joe_token, {"Q1": "Redes"})
    slow = field.fake.held[SURVEY] = asyncio.Event()
    try:
        async with running(field.settings):
            await wait_until(lambda: completed_in(field, "metro") == {JOE}, what="the quick wave's complete")
            await wait_until(lambda: len(field.fake.called("export_responses")) >= 2, what="the slow export asked")
            stopping = asyncio.get_running_loop().time()
        took = asyncio.get_running_loop().time() - stopping
    finally:
        slow.set()
    assert took < pull.STOP_GRACE_S + 3, f"the stop took {took:.1f} s"
    assert field.db.execute("SELECT count(*) FROM responses").fetchone()[0] == 1


async def test_a_fault_in_one_waves_responses_fails_that_wave_and_not_the_others(field, monkeypatch, caplog):
    """Whatever goes wrong recording one wave's responses (here, a fault injected into recording for wave
    'city'), that wave's pull fails with the reason in wave status, and the other wave is pulled as usual."""
    other, joe_token = two_waves(field)
    field.respond(ANA, {"Q1": "Hermanamientos"})
    field.fake.respond(other, joe_token, {"Q1": "Redes"})
    record = responses.record

    def faulty(db, wave, event, now):
        if wave["slug"] == "city":
            raise KeyError("a field the data does not have")
        return record(db, wave, event, now)

    monkeypatch.setattr(responses, "record", faulty)
    async with running(field.settings):
        await wait_until(lambda: completed_in(field, "metro") == {JOE}, what="the other wave's complete")
        await wait_until(lambda: (pull.state(field.db, waves.get_wave(field.db, "city")["id"]) or {}).get("last_error"),
                         what="the failure noted")  # fmt: skip
        field.fake.respond(other, joe_token, {"Q1": "again"})
        await wait_until(lambda: field.db.execute("SELECT count(*) FROM responses").fetchone()[0] == 2,
                         what="the other wave still pulled")  # fmt: skip
    error = pull.state(field.db, waves.get_wave(field.db, "city")["id"])["last_error"]
    assert error == "internal error while pulling: KeyError: 'a field the data does not have'"
    assert "restarting" not in caplog.text

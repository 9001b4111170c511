"""Qualtrics responses pulled with the export API (poll mode, ``wave sync``, the daily safety net), end to end:
the real service and CLI, a real SQLite file, a real SMTP sink, and a local stand-in for Qualtrics' export
lifecycle (tests/fake_qualtrics_export.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from surveybot import plan, pull, waves
from surveybot.clock import parse_stored, utcnow
from surveybot.config import Settings
from surveybot.db import Database, open_db
from surveybot.platforms import qualtrics_export
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests import fake_platforms
from tests.fake_qualtrics_export import QualtricsExports
from tests.respondents import ANA, CONTACTS, JOE, PAT, finished
from tests.service import import_rows, qualtrics_wave, running, settings_for, wait_until

SECRET_ANSWER = "PARTIAL-ANSWER-never-stored-4410"


@dataclass
class Field:
    fake: fake_platforms.FakePlatform
    exports: QualtricsExports
    settings: Settings
    db: Database
    tmp_path: Path

    def token(self, email: str, slug: str = "city") -> str:
        wave = waves.get_wave(self.db, slug)
        (contact_id,) = self.db.execute("SELECT id FROM contacts WHERE email = ?", [email]).fetchone()
        return survey_token(service_secret(self.db, None), wave["id"], contact_id)

    def respond(self, response_id: str, email: str, *, finished: bool = True, **answers: Any) -> None:
        self.fake.add_qualtrics(
            response_id, finished=finished, token=self.token(email), answers=answers or {"QID1": 2, "QID9": 1}
        )

    def count(self, sql: str, *params: Any) -> int:
        return int(self.db.execute(sql, params).fetchone()[0])

    def completed(self) -> set[str]:
        return finished(self.db)

    def status(self, slug: str = "city") -> dict[str, Any]:
        return wave_status(self.db, waves.get_wave(self.db, slug), service_secret(self.db, None), "http://x")

    def exports_started(self) -> list[dict[str, Any]]:
        return self.exports.bodies


@pytest.fixture
async def field(tmp_path, mail_sink):
    fake = fake_platforms.FakePlatform()
    exports = QualtricsExports(fake)
    runner = await fake_platforms.start(fake, exports.routes)
    settings = settings_for(
        tmp_path,
        mail_sink.url,
        **fake.qualtrics_settings(),
        SURVEYBOT_POLL_EVERY="1s",
    )
    import_rows(settings, CONTACTS)
    db = open_db(settings.db_path)
    try:
        yield Field(fake, exports, settings, db, tmp_path)
    finally:
        db.close()
        await runner.cleanup()


def reminded(mail_sink) -> set[str]:
    return {
        r.rcpt_tos[0] for r in mail_sink.received if str(r.message["Subject"]).startswith(("Reminder", "Recordatorio"))
    }


async def test_poll_mode_keeps_completes_throws_out_partials_and_stops_reminders(field, mail_sink):
    qualtrics_wave(
        field.db, intake="poll", reminders=(timedelta(seconds=5),), interview_question="QID9", interview_yes="1"
    )
    field.respond("R_ana1", ANA, QID1=3, QID2_TEXT="Hermanamientos", QID9=1)
    field.respond("R_joe1", JOE, finished=False, QID1=1, QID2_TEXT=SECRET_ANSWER)
    async with running(field.settings):
        await wait_until(lambda: field.completed() == {ANA}, what="Ana's complete, pulled")
        await wait_until(lambda: field.status()["partial_discarded"] == 1, what="Joe's partial, thrown out")
        # Ana edits her response afterwards: it comes back in the next export and changes nothing
        wave_id = waves.get_wave(field.db, "city")["id"]
        before = pull.state(field.db, wave_id)["last_done_at"]
        field.fake.qualtrics["R_ana1"]["QID2_TEXT"] = "EDITED-later"
        await wait_until(
            lambda: any(row.get("responseId") == "R_ana1" for job in list(field.exports.jobs.values())[1:]
                        for row in job.rows), what="the edited response in a later export")  # fmt: skip
        await wait_until(lambda: pull.state(field.db, wave_id)["last_done_at"] != before, what="that pull done")
        await wait_until(lambda: len(mail_sink.to(ANA)) == 2, what="Ana's thank-you")
        await wait_until(lambda: reminded(mail_sink) == {JOE, PAT}, timeout=15, what="the reminders")
        await asyncio.sleep(0.5)  # nothing more follows
    assert reminded(mail_sink) == {JOE, PAT}, "whoever finished gets no reminder"
    (answers,) = field.db.execute("SELECT answers FROM responses").fetchone()
    assert json.loads(answers)["QID2_TEXT"] == "Hermanamientos", "an edited complete keeps its first answers"
    status = field.status()
    assert (status["responses"], status["completed"], status["partial_discarded"]) == (1, 1, 1)
    assert status["interview_queue"] == 1 and status["intake"] == "poll"
    assert status["pull"]["last_error"] == "" and status["pull"]["recorded"] == 2
    assert SECRET_ANSWER.encode() not in (field.tmp_path / "surveybot.db").read_bytes()
    # the first export asks for a continuation token; each later one passes the one it got
    first, second, *_ = field.exports_started()
    assert first == {"format": "ndjson", "compress": True, "allowContinuation": True}
    assert second["continuationToken"] in field.exports.tokens


async def test_a_switch_from_webhook_to_poll_mid_field_counts_nothing_twice(field, mail_sink):
    qualtrics_wave(field.db)
    field.respond("R_ana1", ANA)
    async with running(field.settings) as (_, base), aiohttp.ClientSession() as http:
        wave = waves.get_wave(field.db, "city")
        url = webhook_url(base, service_secret(field.db, None), wave)
        form = {"Topic": "surveyengine.completedResponse.SV_city", "SurveyID": "SV_city", "ResponseID": "R_ana1"}
        async with http.post(url, data=form) as answer:
            assert answer.status == 200
        await wait_until(lambda: field.completed() == {ANA}, what="Ana's complete, by webhook")
        await wait_until(lambda: pull.state(field.db, wave["id"]) is not None, what="the puller to see the wave")
        await asyncio.sleep(1.5)  # a polling period more
        assert field.exports_started() == [], "a wave taking webhooks is not pulled until its daily safety net"
        assert wave["id"] not in {w["id"] for w in pull.due(field.db, utcnow() + timedelta(hours=23))}
        next_at = pull.state(field.db, wave["id"])["next_at"]
        assert timedelta(hours=23) < parse_stored(next_at) - utcnow() <= timedelta(days=1)
        field.respond("R_joe1", JOE)  # Joe's webhook never comes
        waves.set_intake(field.db, "city", "poll")
        await wait_until(lambda: field.completed() == {ANA, JOE}, what="Joe's complete, pulled")
        await wait_until(lambda: len(field.exports_started()) >= 2, what="a second pull")
    status = field.status()
    assert (status["responses"], status["completed"], status["duplicate_responses"]) == (2, 2, 0)
    assert field.count("SELECT count(*) FROM responses WHERE response_id = 'R_ana1'") == 1


async def test_429_500_and_a_failed_export_are_tried_again_until_every_complete_is_in(field, caplog):
    qualtrics_wave(field.db, intake="poll")
    field.respond("R_ana1", ANA)
    field.respond("R_pat1", PAT)
    field.fake.failures["export"] = [429, 500]
    field.exports.fail_next = 1  # the third export is built and fails (HTTP 200, status failed)
    field.fake.failures["file"] = [503]  # the fourth cannot be downloaded
    caplog.set_level(logging.WARNING, "surveybot.pull")
    async with running(field.settings):
        await wait_until(lambda: field.completed() == {ANA, PAT}, timeout=20, what="both completes, once it recovers")
    assert field.count("SELECT count(*) FROM responses") == 2
    assert field.fake.failures == {"export": [], "file": []} and field.exports.fail_next == 0
    said = [r.getMessage() for r in caplog.records if r.name == "surveybot.pull"]
    assert any("Qualtrics answered 429" in line for line in said)
    assert any("could not build the export" in line for line in said)
    assert any("Qualtrics answered 503" in line for line in said)
    assert field.status()["pull"]["last_error"] == ""


async def test_a_refused_token_is_said_once_and_not_hammered(field, caplog):
    field.settings = settings_for(
        field.tmp_path,
        "maildir://" + str(field.tmp_path / "mail"),
        QUALTRICS_BASE_URL=field.fake.url,
        QUALTRICS_API_TOKEN="a-token-that-was-revoked",
        SURVEYBOT_POLL_EVERY="1s",
    )
    qualtrics_wave(field.db, intake="poll")
    field.respond("R_ana1", ANA)
    caplog.set_level(logging.INFO, "surveybot.pull")
    async with running(field.settings):
        await wait_until(lambda: (field.status()["pull"] or {}).get("refused"), what="the refusal in the status")
        await asyncio.sleep(3)  # three polling periods
        state = pull.state(field.db, waves.get_wave(field.db, "city")["id"])
    posts = [path for method, path, _ in field.fake.requests if method == "POST" and "export" in path]
    assert len(posts) == 1, "a refused token is asked again only hourly"
    assert timedelta(minutes=59) < parse_stored(state["next_at"]) - utcnow() <= timedelta(hours=1)
    errors = [r for r in caplog.records if r.name == "surveybot.pull" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "QUALTRICS_API_TOKEN" in errors[0].getMessage()
    assert "QUALTRICS_API_TOKEN" in field.status()["pull"]["last_error"]
    assert field.completed() == set()


async def test_wave_sync_pulls_now_whatever_the_intake_and_says_what_came(field, run_cli):
    qualtrics_wave(field.db)  # taking webhooks, none came
    plan.run_due(field.db, service_secret(field.db, None), utcnow())  # the invitations: the recipients
    field.respond("R_ana1", ANA)
    field.respond("R_joe1", JOE, finished=False)
    env = {"QUALTRICS_BASE_URL": field.fake.url, "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_TOKEN}
    first = await asyncio.to_thread(run_cli, "wave", "sync", "city", "--json", extra_env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "wave": "city",
        "read": 2,
        "outcomes": {"complete": 1, "partial": 1},
        "error": "",
        "refused": False,
    }
    field.respond("R_pat1", PAT)
    again = await asyncio.to_thread(run_cli, "wave", "sync", "city", extra_env=env)
    assert again.returncode == 0, again.stderr
    assert "Pulled city: 1 complete." in again.stdout, "only what is new since the last pull is read"
    assert field.completed() == {ANA, PAT}
    refused = await asyncio.to_thread(
        run_cli, "wave", "sync", "city", extra_env={**env, "QUALTRICS_API_TOKEN": "wrong"}
    )
    assert refused.returncode == 1
    assert "Error: pulling city's responses failed: Qualtrics refused the API token (401)" in refused.stderr
    shown = await asyncio.to_thread(run_cli, "wave", "status", "city")
    assert "Responses: by webhook; pulled once a day as a safety net" in shown.stdout
    assert (
        "The last pull: credentials missing or refused (tried again hourly): Qualtrics refused the API token"
        in shown.stdout
    )


async def test_an_interrupted_pull_repeats_from_its_last_stored_batch_and_never_skips(field):
    """450 responses come in three batches; the service dies after the first is recorded. The next pull starts
    from the stored (old) continuation token: the first batch is read again and counted once."""
    qualtrics_wave(field.db, intake="poll", launch=False)
    wave = waves.launch(field.db, "city", utcnow())
    for n in range(450):
        field.fake.add_qualtrics(f"R_{n:04d}", finished=True, token=None, answers={"QID1": n})

    class Died(BaseException):  # as the process dying would: nothing in the pull catches it
        pass

    def die_after_first(result: pull.PullResult) -> None:
        raise Died

    async with aiohttp.ClientSession() as http:
        with pytest.raises(Died):
            await pull.pull_wave(field.db, field.settings, http, wave, on_batch=die_after_first)
        assert field.count("SELECT count(*) FROM responses") == 200
        assert pull.state(field.db, wave["id"])["cursor"] is None, "the new token is stored only with the last batch"
        result = await pull.pull_wave(field.db, field.settings, http, wave)
        assert result.outcomes == {"repeat": 200, "unmatched": 250} and result.batches == 3
        assert pull.state(field.db, wave["id"])["cursor"] in field.exports.tokens
        third = await pull.pull_wave(field.db, field.settings, http, wave)
    assert third.outcomes == {} and third.error == ""
    assert field.count("SELECT count(DISTINCT response_id) FROM responses") == 450
    assert field.count("SELECT count(*) FROM responses") == 450


async def test_an_export_of_ten_thousand_responses_is_recorded_two_hundred_at_a_time(field):
    qualtrics_wave(field.db, intake="poll", launch=False)
    wave = waves.launch(field.db, "city", utcnow())
    for n in range(10_000):
        field.fake.add_qualtrics(f"R_{n:05d}", finished=n % 10 != 0, token=None, answers={"QID1": n})
    sizes = []
    async with aiohttp.ClientSession() as http:
        result = await pull.pull_wave(
            field.db, field.settings, http, wave, on_batch=lambda r: sizes.append(sum(r.outcomes.values()))
        )
    assert result.error == "" and result.outcomes == {"unmatched": 9_000, "partial": 1_000}
    assert sizes == list(range(200, 10_001, 200)), "recorded 200 at a time, each batch in its own transaction"


def test_an_export_file_is_read_zipped_or_not_and_a_bad_line_is_skipped_with_a_warning(caplog):
    lines = [
        json.dumps({"responseId": "R_a", "values": {"finished": 1, "QID1": 1}}),
        "{not json",
        json.dumps({"values": {"_recordId": "R_b", "finished": 0, "QID1": 2}}),  # the id only among the values
        json.dumps({"responseId": "R_c"}),  # no values
        "",
    ]
    plain = "\n".join(lines).encode()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("City diplomacy 2026.ndjson", plain)
    for data in (plain, zipped.getvalue()):
        with tempfile.TemporaryFile() as spool:
            spool.write(data)
            spool.seek(0)
            caplog.clear()
            events = list(qualtrics_export._events(spool))
        assert [(e.response_id, e.finished) for e in events] == [("R_a", True), ("R_b", False)]
        warned = [r.getMessage() for r in caplog.records]
        assert warned == [
            "Qualtrics export line 2 is not JSON; skipped",
            "Qualtrics export line 4 holds no response (responseId and values); skipped",
        ]


def test_wave_set_intake_switches_and_refuses_what_the_platform_cannot_do(field, run_cli):
    qualtrics_wave(field.db, launch=False)
    signed = run_cli("wave", "create", "tf", "--title", "T", "--platform", "typeform", "--survey-id", "abc",
                     "--survey-url", "https://lab.typeform.com/to/abc")  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    switched = run_cli("wave", "set", "city", "--intake", "poll")
    assert (
        switched.returncode == 0 and "Wave city: responses are pulled every 5m by 'surveybot serve'." in switched.stdout
    )
    shown = json.loads(run_cli("wave", "status", "city", "--json").stdout)
    assert (shown["intake"], shown["pull"]) == ("poll", None)
    assert "Responses: pulled every 5m by 'surveybot serve'\n" in run_cli("wave", "status", "city").stdout
    back = run_cli("wave", "set", "city", "--intake", "webhook")
    assert "responses are taken from webhooks (and pulled once a day in case one never came)" in back.stdout
    refused = run_cli("wave", "set", "tf", "--intake", "poll")
    assert refused.returncode != 0 and "typeform responses cannot be pulled" in refused.stderr
    assert waves.get_wave(field.db, "tf")["intake"] == "webhook"
    nothing = run_cli("wave", "set", "city")
    assert nothing.returncode == 2 and "name a setting to change: --intake" in nothing.stderr
    not_pullable = run_cli("wave", "sync", "tf")
    assert not_pullable.returncode != 0 and "typeform, whose responses cannot be pulled" in not_pullable.stderr


async def test_pulls_go_on_after_the_close_until_the_in_progress_timeout_and_daily_for_webhook_waves(field):
    """Which waves the service pulls when: a poll wave every period while open and until its in-progress timeout
    has passed after the close (responses still open at the close are recorded only then); a webhook wave once a
    day; a draft never."""
    poll_wave = qualtrics_wave(field.db, "poll", intake="poll", in_progress_timeout=timedelta(days=2))
    hook_wave = qualtrics_wave(field.db, "hook")
    qualtrics_wave(field.db, "draft", intake="poll", launch=False)
    now = utcnow()
    plan.run_due(field.db, service_secret(field.db, None), now)  # both open

    def due(at) -> set[str]:
        return {wave["slug"] for wave in pull.due(field.db, at)}

    assert due(now) == {"poll"}, "a webhook wave waits a day for its first safety-net pull"
    async with aiohttp.ClientSession() as http:
        await pull.pull_wave(field.db, field.settings, http, poll_wave, clock=lambda: now)
        assert due(now + timedelta(seconds=0.5)) == set() and due(now + timedelta(seconds=1)) == {"poll"}
        assert due(now + timedelta(days=1, seconds=1)) == {"poll", "hook"}
        await pull.pull_wave(field.db, field.settings, http, hook_wave, clock=lambda: now + timedelta(days=1))
    assert due(now + timedelta(days=1, hours=23)) == {"poll"}, "then a day until the next"
    waves.close(field.db, "poll", now)
    assert due(now + timedelta(days=1, hours=23)) == {"poll"}, "closed, but within its in-progress timeout"
    assert due(now + timedelta(days=2, seconds=1)) == {"hook"}, "past it: no response can still be recorded"


async def test_a_damaged_export_file_fails_that_pull_only_and_the_next_one_reads_it(field, caplog):
    qualtrics_wave(field.db, intake="poll", launch=False)
    wave = waves.launch(field.db, "city", utcnow())
    for n in range(300):
        field.fake.add_qualtrics(f"R_{n:04d}", finished=True, token=None, answers={"QID1": "Twinning " * 20})
    field.exports.damage_next = 1
    async with aiohttp.ClientSession() as http:
        first = await pull.pull_wave(field.db, field.settings, http, wave)
        assert "the Qualtrics export file is damaged" in first.error and not first.refused
        state = pull.state(field.db, wave["id"])
        assert state["cursor"] is None and parse_stored(state["next_at"]) > utcnow(), "tried again, not in a loop"
        second = await pull.pull_wave(field.db, field.settings, http, wave)
    assert second.error == "" and sum(second.outcomes.values()) == 300
    assert field.count("SELECT count(DISTINCT response_id) FROM responses") == 300


async def test_a_continuation_token_qualtrics_no_longer_takes_means_one_full_export_not_none_ever(field, caplog):
    qualtrics_wave(field.db, intake="poll", launch=False)
    wave = waves.launch(field.db, "city", utcnow())
    field.fake.add_qualtrics("R_1", finished=True, token=None, answers={"QID1": 1})
    async with aiohttp.ClientSession() as http:
        await pull.pull_wave(field.db, field.settings, http, wave)
        field.db.execute("UPDATE wave_pulls SET cursor = 'a-token-from-last-year' WHERE wave_id = ?", [wave["id"]])
        field.db.conn.commit()
        field.fake.add_qualtrics("R_2", finished=True, token=None, answers={"QID1": 2})
        again = await pull.pull_wave(field.db, field.settings, http, wave)
    assert again.error == "" and again.outcomes == {"repeat": 1, "unmatched": 1}
    assert pull.state(field.db, wave["id"])["cursor"] in field.exports.tokens
    assert "refused the stored continuation token" in caplog.text


def test_a_huge_in_progress_timeout_stored_earlier_does_not_stop_the_pulls(field):
    """A timeout written before durations were bounded (here a million years) is read as the longest one: the
    date computed from it cannot overflow, so deciding which waves to pull goes on for every wave."""
    qualtrics_wave(field.db, intake="poll")
    field.db.execute("UPDATE waves SET in_progress_timeout = ?, state = 'closed', closed_at = closes_at", [10**14])
    field.db.conn.commit()
    assert [wave["slug"] for wave in pull.due(field.db, utcnow())] == ["city"]

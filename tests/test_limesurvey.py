"""The LimeSurvey RemoteControl client against a local JSON-RPC stand-in (tests/fake_limesurvey.py).

The wave lives in a real SQLite file with real recipients; what is pulled is recorded with the real
``responses.record``, so a token that does not survive LimeSurvey's round trip shows up as a response tied to
nobody.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from surveybot import plan, recipients, responses
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.db import Database, open_db
from surveybot.platforms import ApiError, ResponseEvent, limesurvey
from surveybot.signing import service_secret
from tests import fake_limesurvey
from tests.fake_limesurvey import FakeLimeSurvey, Survey
from tests.service import import_rows, settings_for, signed_wave

SURVEY = 482913
CONTACTS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,",
]


@dataclass
class Field:
    fake: FakeLimeSurvey
    settings: Settings
    db: Database
    wave: dict[str, Any]
    http: aiohttp.ClientSession
    tokens: dict[str, str]  # e-mail → the token LimeSurvey holds for them

    async def pull(self, cursor: str | None) -> tuple[list[ResponseEvent], str | None]:
        events: list[ResponseEvent] = []
        batches = 0
        stored = cursor
        async for batch, after in limesurvey.pull(self.http, self.settings, self.wave, cursor):
            events += batch
            batches += 1
            stored = after  # what the caller stores once the batch is recorded
        assert batches >= 1, "a pull hands back at least one batch, if only to store its cursor"
        return events, stored

    def record(self, events: list[ResponseEvent]) -> list[str]:
        return [responses.record(self.db, self.wave, event, utcnow()) for event in events]

    def done(self) -> set[str]:
        return {
            r[0]
            for r in self.db.execute(
                "SELECT c.email FROM recipients r JOIN contacts c ON c.id = r.contact_id "
                "WHERE r.wave_id = ? AND r.completed_at IS NOT NULL",
                [self.wave["id"]],
            )
        }


def lime_settings(tmp_path: Path, url: str, **extra: str) -> Settings:
    values = {"LIMESURVEY_URL": url, "LIMESURVEY_USER": fake_limesurvey.USER}
    values["LIMESURVEY_PASSWORD"] = fake_limesurvey.PASSWORD
    return settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}", **{**values, **extra})


@pytest.fixture
async def field(tmp_path):
    fake = FakeLimeSurvey(surveys={SURVEY: Survey(questions=QUESTIONS)})
    runner = await fake_limesurvey.start(fake)
    settings = lime_settings(tmp_path, fake.url)
    import_rows(settings, CONTACTS)
    db = open_db(settings.db_path)
    # the wave row is a signed one (the client reads only its id and survey); its invitation step makes the
    # recipients
    wave = {**signed_wave(db, "city", required=("Q1",)), "platform": "limesurvey", "survey_id": str(SURVEY)}
    secret = service_secret(db, None)
    plan.run_due(db, secret, utcnow())
    tokens = {
        email: recipients.limesurvey_token(recipients.survey_token(secret, wave["id"], cid))
        for cid, email in db.execute("SELECT id, email FROM contacts")
    }
    try:
        async with aiohttp.ClientSession() as http:
            yield Field(fake, settings, db, wave, http, tokens)
    finally:
        db.close()
        await runner.cleanup()


QUESTIONS = [
    {"qid": "11", "parent_qid": "0", "gid": "1", "type": "T", "title": "Q1", "question": "¿Qué redes?"},
    {"qid": "12", "parent_qid": "0", "gid": "1", "type": "Y", "title": "INTERVIEW", "question": "¿Entrevista?"},
    {"qid": "13", "parent_qid": "0", "gid": "1", "type": "M", "title": "Q3", "question": "Temas"},
    {"qid": "14", "parent_qid": "13", "gid": "1", "type": "M", "title": "SQ001", "question": "Clima"},
]


# --- check_survey ------------------------------------------------------------------------------------------


async def test_check_survey_passes_a_usable_survey_and_names_each_problem(field):
    check = limesurvey.check_survey
    assert await check(field.http, field.settings, str(SURVEY)) == []

    field.fake.surveys[SURVEY].anonymized = "Y"
    (problem,) = await check(field.http, field.settings, str(SURVEY))
    assert "anonymized responses" in problem and "Anonymized responses' to off" in problem
    field.fake.surveys[SURVEY].anonymized = "N"

    field.fake.surveys[SURVEY].participant_table = False
    for wording in ("No survey participants table", "Error: No survey participant list", "Error: No token table"):
        field.fake.no_table_status = wording
        (problem,) = await check(field.http, field.settings, str(SURVEY))
        assert "no participant table" in problem and "initialise" in problem, wording
    field.fake.surveys[SURVEY].participant_table = True

    (problem,) = await check(field.http, field.settings, "999999")
    assert problem == "LimeSurvey has no survey 999999: check --survey-id (the number in the survey's URL)"
    (problem,) = await check(field.http, field.settings, "SV_abc")
    assert "is a number" in problem

    wrong = lime_settings(field.settings.db_path.parent, field.fake.url, LIMESURVEY_PASSWORD="not-it")
    (problem,) = await check(field.http, wrong, str(SURVEY))
    assert "Invalid user name or password" in problem and "LIMESURVEY_USER and LIMESURVEY_PASSWORD" in problem
    assert "not-it" not in problem

    field.fake.rpc_enabled = False
    (problem,) = await check(field.http, field.settings, str(SURVEY))
    assert "enable JSON-RPC" in problem
    field.fake.rpc_enabled = True
    # every session key it was given, it gave back
    assert field.fake.sessions == set() and len(field.fake.released) == 6


# --- enrol -------------------------------------------------------------------------------------------------


async def test_enrol_adds_each_recipient_once_with_its_own_token(field):
    assert await limesurvey.enrol(field.http, field.settings, field.db, field.wave) == 3
    participants = field.fake.surveys[SURVEY].participants
    assert {p["email"]: p["token"] for p in participants} == field.tokens  # kept as sent, nothing stripped
    assert all(len(t) <= 35 and t.isalnum() for t in field.tokens.values())
    ana = next(p for p in participants if p["email"] == "ana@bogota.example.org")
    assert (ana["firstname"], ana["lastname"], ana["language"]) == ("Ana", "Pérez", "es")
    assert [call[2] for call in field.fake.called("add_participants")] == [False]  # bCreateToken false

    # again: nothing added twice, and no error
    assert await limesurvey.enrol(field.http, field.settings, field.db, field.wave) == 0
    assert len(participants) == 3 and len(field.fake.called("add_participants")) == 1
    assert field.fake.sessions == set()


async def test_enrol_names_the_participants_limesurvey_refused_and_keeps_the_others(field):
    field.fake.token_length = 20  # a participant table whose token column is too short for our tokens
    with pytest.raises(limesurvey.EnrolIncomplete) as refused:
        await limesurvey.enrol(field.http, field.settings, field.db, field.wave)
    assert refused.value.added == 0 and len(refused.value.rejected) == 3
    assert "LimeSurvey refused 3 participants: ana@bogota.example.org (token: Access code is too long" in str(
        refused.value
    )
    assert field.fake.sessions == set()


async def test_enrol_without_a_participant_table_says_so(field):
    field.fake.surveys[SURVEY].participant_table = False
    with pytest.raises(ApiError, match="survey 482913 has no participant table, so the personal links cannot work"):
        await limesurvey.enrol(field.http, field.settings, field.db, field.wave)


# --- pull --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapped", [False, True], ids=["flat rows", "rows under their id"])
async def test_pull_complete_partial_and_a_response_finished_later(field, wrapped):
    fake, survey = field.fake, field.fake.surveys[SURVEY]
    fake.wrapped = wrapped
    ana, joe, pat = field.tokens.values()
    fake.respond(SURVEY, ana, {"Q1": "Eurocities", "INTERVIEW": "Y", "Q3[SQ001]": "Y"})
    fake.respond(SURVEY, joe, {"Q1": ""}, submitted=False)  # Joe stops on the first page
    fake.respond(SURVEY, pat, {"Q1": "UCLG", "Q3[SQ001]": ""})

    events, cursor = await field.pull(None)
    assert [(e.response_id, e.finished) for e in events] == [("1", True), ("2", False), ("3", True)]
    first = events[0]
    assert first.platform == "limesurvey" and first.answers == {"Q1": "Eurocities", "INTERVIEW": "Y", "Q3[SQ001]": "Y"}
    assert first.recorded_at == "2026-11-25 10:00:00" and first.embedded == {"language": "es"}
    assert "ipaddr" not in str(events)  # what LimeSurvey records about the respondent's machine is not kept
    assert field.record(events) == ["complete", "partial", "complete"]
    assert field.done() == {"ana@bogota.example.org", "pat@lima.example.org"}
    assert json.loads(cursor) == {"after": 3, "open": [2]}

    # Joe finishes his response (same id), and a fourth response arrives
    fake.submit(SURVEY, 2, {"Q1": "Mercociudades"})
    fake.respond(SURVEY, None, {"Q1": "sin enlace"})
    events, cursor = await field.pull(cursor)
    assert [(e.response_id, e.finished) for e in events] == [("2", True), ("4", True)]
    assert field.record(events) == ["complete", "unmatched"]
    assert field.done() == {"ana@bogota.example.org", "pat@lima.example.org", "joe@leeds.example.org"}
    assert json.loads(cursor) == {"after": 4, "open": []}
    # the unfinished id was read back on its own, then everything above the last id seen
    assert [params[6:8] for params in fake.called("export_responses")][-2:] == [[2, 2], [4, None]]

    # nothing new: LimeSurvey exports one empty record for an empty range, which is no response
    events, cursor = await field.pull(cursor)
    assert events == [] and json.loads(cursor) == {"after": 4, "open": []}
    assert len(survey.responses) == 4 and fake.sessions == set()


async def test_each_batch_carries_the_cursor_to_resume_from_after_it(field):
    """401 responses go in batches of EVENT_BATCH (200), each with the cursor a pull resumes from after it; the
    unfinished ones (2 and 401) stay watched."""
    ana, joe, pat = field.tokens.values()
    first = [(ana, True), (joe, False), (pat, True)]
    for token, submitted in first + [(None, True)] * 397 + [(None, False)]:
        field.fake.respond(SURVEY, token, {"Q1": "x"}, submitted=submitted)
    batches = [
        ([e.response_id for e in batch], json.loads(cursor))
        async for batch, cursor in limesurvey.pull(field.http, field.settings, field.wave, None)
    ]
    assert limesurvey.EVENT_BATCH == 200
    assert batches == [
        ([str(n) for n in range(1, 201)], {"after": 200, "open": [2]}),
        ([str(n) for n in range(201, 401)], {"after": 400, "open": [2]}),
        (["401"], {"after": 401, "open": [2, 401]}),
    ]
    # stopped after the first batch was recorded: the next pull starts where that batch's cursor says
    events, _ = await field.pull(json.dumps(batches[0][1]))
    assert [e.response_id for e in events] == ["2", *(str(n) for n in range(201, 402))]


async def test_pull_reads_in_band_answers_as_what_they_mean(field):
    fake = field.fake
    # an active survey without responses, and one not activated yet: no data, not an error
    events, cursor = await field.pull(None)
    assert events == [] and json.loads(cursor) == {"after": 0, "open": []}
    fake.surveys[SURVEY].active = "N"
    assert (await field.pull(cursor))[0] == []
    fake.surveys[SURVEY].active = "Y"
    fake.respond(SURVEY, None, {"Q1": "x"})

    fake.statuses["export_responses"] = ["Invalid session key"]
    with pytest.raises(ApiError, match="refused the session key") as refused:
        await field.pull(cursor)
    assert refused.value.refused and "LIMESURVEY_URL" in str(refused.value)

    fake.statuses["export_responses"] = ["No permission"]
    with pytest.raises(ApiError, match="LIMESURVEY_USER may not export the responses of survey 482913"):
        await field.pull(cursor)
    assert fake.sessions == set() and len(fake.released) == 4  # released after every failure too

    events, _ = await field.pull(cursor)  # and the next pull simply works
    assert [e.response_id for e in events] == ["1"]


async def test_a_wrong_password_is_one_clear_error(field):
    wrong = lime_settings(field.settings.db_path.parent, field.fake.url, LIMESURVEY_PASSWORD="guess")
    with pytest.raises(ApiError) as refused:
        async for _ in limesurvey.pull(field.http, wrong, field.wave, None):
            pass
    message = str(refused.value)
    assert message == (
        "LimeSurvey refused the login (Invalid user name or password): check LIMESURVEY_USER and LIMESURVEY_PASSWORD"
    )
    assert refused.value.refused and "guess" not in message
    assert [name for name, _ in field.fake.calls] == ["get_session_key"]  # nothing else tried


async def test_questions_are_listed_as_their_export_codes(field):
    codes = await limesurvey.question_codes(field.http, field.settings, str(SURVEY))
    assert codes == {"Q1", "INTERVIEW", "Q3", "Q3[SQ001]"}


# --- personal links ----------------------------------------------------------------------------------------


def test_a_limesurvey_link_carries_a_token_limesurvey_keeps_and_the_language(field):
    secret = service_secret(field.db, None)
    cid = field.db.execute("SELECT id FROM contacts WHERE email = 'ana@bogota.example.org'").fetchone()[0]
    token = recipients.survey_token(secret, field.wave["id"], cid)
    wave = {**field.wave, "survey_url": "https://lime.example.org/index.php/482913?newtest=Y", "survey_url_es": ""}
    links = recipients.survey_links(wave, token)
    for language in ("en", "es"):
        query = parse_qs(urlsplit(links[language]).query)
        assert query == {"newtest": ["Y"], "token": [field.tokens["ana@bogota.example.org"]], "lang": [language]}
    held = query["token"][0]
    assert len(held) <= 35 and held.isalnum()
    # the token a response carries back finds its recipient
    assert recipients.by_token(field.db, recipients.from_limesurvey_token(held))["contact_id"] == cid


async def test_an_unfinished_response_is_not_forgotten_while_limesurvey_answers_no_data(field):
    fake = field.fake
    for n in range(3):
        fake.respond(SURVEY, field.tokens["ana@bogota.example.org"], {"Q1": f"draft {n}"}, submitted=n != 1)
    events, cursor = await field.pull(None)
    assert json.loads(cursor) == {"after": 3, "open": [2]}
    fake.surveys[SURVEY].active = "N"  # for a while LimeSurvey answers "No Data"
    events, cursor = await field.pull(cursor)
    assert events == [] and json.loads(cursor) == {"after": 3, "open": [2]}, "response 2 is still asked for"
    fake.surveys[SURVEY].active = "Y"
    fake.submit(SURVEY, 2, {"Q1": "Twinning"})
    events, cursor = await field.pull(cursor)
    assert [(e.response_id, e.finished) for e in events] == [("2", True)]
    assert json.loads(cursor) == {"after": 3, "open": []}

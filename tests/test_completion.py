"""Whoever finished is done: the completion rule and the counts a coordinator reports from."""

from __future__ import annotations

from datetime import timedelta

import aiohttp

from surveybot import plan, responses, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.platforms import ResponseEvent
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests.service import import_rows, running, settings_for, signed_delivery, signed_wave, wait_until

COUNT_KEYS = (
    "responses",
    "duplicate_contact",
    "completed",
    "cities_responded",
    "duplicate_city",
    "duplicate_responses",
)


def counts(db, slug: str = "city") -> tuple[int, ...]:
    status = wave_status(db, waves.get_wave(db, slug), service_secret(db, None), "https://survey.example.org")
    return tuple(status[k] for k in COUNT_KEYS)


def subjects_to(sink, address: str) -> list[str]:
    return sorted(str(r.message["Subject"]).split(":")[0] for r in sink.to(address))


async def test_two_officers_of_one_city_both_finish_and_both_are_done(tmp_path, mail_sink):
    """The second officer of Bogotá is flagged as a city duplicate, yet is thanked and never reminded."""
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(
        settings,
        [
            "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,en",
            "Luis Gómez,luis@bogota.example.org,Bogotá ,colombia,Latin America,en",
            "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
        ],
    )
    db = open_db(settings.db_path)
    signed_wave(db, "city", reminders=(timedelta(seconds=4),), close_after=timedelta(seconds=8))
    secret = service_secret(db, None)
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 3, what="three invitations")
        wave = waves.get_wave(db, "city")
        ids = dict(db.execute("SELECT email, id FROM contacts").fetchall())
        for number, email in enumerate(("ana@bogota.example.org", "luis@bogota.example.org")):
            token = survey_token(secret, wave["id"], ids[email])
            body, headers = signed_delivery(secret, wave, token, f"resp-{number}", message_id=f"msg_{number}")
            async with session.post(webhook_url(base, secret, wave), data=body, headers=headers) as answer:
                assert answer.status == 200
                assert (await answer.json())["status"] == ("complete", "duplicate")[number]
        await wait_until(lambda: waves.get_wave(db, "city")["state"] == "closed", timeout=20, what="the close")

    assert subjects_to(mail_sink, "ana@bogota.example.org") == ["Invitation", "Thank you"]
    assert subjects_to(mail_sink, "luis@bogota.example.org") == ["Invitation", "Thank you"]
    assert subjects_to(mail_sink, "joe@leeds.example.org") == ["Invitation", "Reminder"]
    flags = dict(db.execute("SELECT response_id, duplicate FROM responses").fetchall())
    assert flags == {"resp-0": "", "resp-1": "city"}
    # 2 responses from 2 people of 1 city: one city answered twice
    assert counts(db) == (2, 0, 2, 1, 1, 1)


def _wave_of_100(tmp_path):
    """100 officers in 97 cities: Bogotá has three, Lima two (the rest one each)."""
    rows = [
        f"Officer {n},officer{n}@city{n}.example.org,City {n},Country {n % 20},Region {n % 4},en" for n in range(95)
    ]
    rows += [f"Bogota {n},bogota{n}@bogota.example.org,Bogotá,Colombia,Latin America,es" for n in range(3)]
    rows += [f"Lima {n},lima{n}@lima.example.org,Lima,Peru,Latin America,es" for n in range(2)]
    return _launched_wave(tmp_path, rows)


def _launched_wave(tmp_path, rows: list[str]):
    """A launched wave of these contacts, invitations queued; returns (db, wave, token by e-mail)."""
    settings = settings_for(tmp_path, "maildir://" + str(tmp_path / "mail"))
    import_rows(settings, rows)
    db = open_db(settings.db_path)
    signed_wave(db, "city")
    secret = service_secret(db, None)
    plan.run_due(db, secret, utcnow())
    wave = waves.get_wave(db, "city")
    tokens = {
        email: survey_token(secret, wave["id"], cid) for cid, email in db.execute("SELECT id, email FROM contacts")
    }
    return db, wave, tokens


def _complete(db, wave, response_id: str, token: str | None) -> str:
    event = ResponseEvent(
        platform="signed", response_id=response_id, finished=True, token=token, answers={"q1": "Twinning"}
    )
    return responses.record(db, wave, event, utcnow())


async def test_two_waves_on_one_survey_each_keep_only_their_own_respondents(tmp_path, mail_sink):
    """A pilot and a main wave share one survey, so the platform tells both about every response: each response
    is its own wave's (its link says which), recorded there, and left alone by the other wave, whatever the
    order the deliveries come in — not lost to whichever wave heard first, nor kept as an unmatched stranger."""
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(
        settings,
        [
            "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,en",
            "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
        ],
    )
    db = open_db(settings.db_path)
    pilot = signed_wave(db, "pilot", reminders=(), close_after=timedelta(hours=1))
    main = signed_wave(db, "main", reminders=(), close_after=timedelta(hours=1))
    secret = service_secret(db, None)
    ids = dict(db.execute("SELECT email, id FROM contacts").fetchall())
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 4, what="both waves' invitations")
        ana = survey_token(secret, pilot["id"], ids["ana@bogota.example.org"])
        joe = survey_token(secret, main["id"], ids["joe@leeds.example.org"])
        # Ana's response reaches the main wave first; Joe's reaches his own wave first
        for wave, token, response_id, expected in (
            (main, ana, "R_1", "other_wave"),
            (pilot, ana, "R_1", "complete"),
            (main, joe, "R_2", "complete"),
            (pilot, joe, "R_2", "repeat"),  # (the message was read already, by its own wave)
        ):
            # one message fanned out to both endpoints with one webhook-id, as a Standard Webhooks sender does
            body, headers = signed_delivery(secret, wave, token, response_id, message_id=f"msg_{response_id}")
            async with session.post(webhook_url(base, secret, wave), data=body, headers=headers) as answer:
                assert answer.status == 200
                assert (await answer.json())["status"] == expected
    recorded = db.execute("SELECT w.slug, r.response_id, r.status FROM responses r JOIN waves w ON w.id = r.wave_id")
    assert sorted(recorded.fetchall()) == [("main", "R_2", "complete"), ("pilot", "R_1", "complete")]
    for slug in ("pilot", "main"):
        status = wave_status(db, waves.get_wave(db, slug), secret, "https://survey.example.org")
        assert (status["completed"], status["unmatched_responses"]) == (1, 0), slug


def test_49_complete_from_47_cities_counts_as_the_study_reports_them(tmp_path):
    db, wave, tokens = _wave_of_100(tmp_path)
    finishers = [f"officer{n}@city{n}.example.org" for n in range(45)]
    finishers += [
        "bogota0@bogota.example.org",
        "bogota1@bogota.example.org",
        "lima0@lima.example.org",
        "lima1@lima.example.org",
    ]
    outcomes = [_complete(db, wave, f"R{n}", tokens[email]) for n, email in enumerate(finishers)]
    assert outcomes.count("complete") == 47 and outcomes.count("duplicate") == 2
    assert counts(db) == (49, 0, 49, 47, 2, 2)
    # every one of the 49 is done: no reminder is queued for them, each has a thank-you
    done = db.execute("SELECT count(*) FROM recipients WHERE completed_at IS NOT NULL").fetchone()[0]
    thanks = db.execute("SELECT count(*) FROM outbox WHERE kind = 'thank_you'").fetchone()[0]
    assert (done, thanks) == (49, 49)
    # a city duplicate recorded before it was marked done still counts as a person who finished
    db.execute(
        "UPDATE recipients SET completed_at = NULL WHERE contact_id = "
        "(SELECT id FROM contacts WHERE email = 'bogota1@bogota.example.org')"
    )
    assert counts(db) == (49, 0, 49, 47, 2, 2)

    # a second complete response of the same person is kept and flagged, never counted as a second person
    assert _complete(db, wave, "R-again", tokens["lima1@lima.example.org"]) == "duplicate"
    assert counts(db) == (50, 1, 49, 47, 2, 3)
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'thank_you'").fetchone()[0] == 49
    # a retried delivery changes nothing; an unmatched response is counted apart
    assert _complete(db, wave, "R-again", tokens["lima1@lima.example.org"]) == "repeat"
    assert _complete(db, wave, "R-stranger", "no-such-token") == "unmatched"
    status = wave_status(db, wave, service_secret(db, None), "https://survey.example.org")
    assert (status["responses"], status["completed"], status["unmatched_responses"]) == (50, 49, 1)


def test_wave_status_shows_the_counts_to_a_person_too(tmp_path, run_cli):
    """`wave status` without --json prints every count the coordinator reports from."""
    db, wave, tokens = _wave_of_100(tmp_path)
    finishers = [f"officer{n}@city{n}.example.org" for n in range(45)]
    finishers += [
        "bogota0@bogota.example.org",
        "bogota1@bogota.example.org",
        "lima0@lima.example.org",
        "lima1@lima.example.org",
        "lima1@lima.example.org",
    ]
    for n, email in enumerate(finishers):
        _complete(db, wave, f"R{n}", tokens[email])
    db.close()
    output = run_cli("wave", "status", "city", check=True).stdout
    shown = {
        line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
        for line in output.splitlines()
        if line.startswith("  ")
    }
    assert {
        label: shown.get(label)
        for label in (
            "responses",
            "duplicate contact",
            "completed",
            "cities responded",
            "duplicate city",
            "duplicate responses",
        )
    } == {
        "responses": "50",
        "duplicate contact": "1",
        "completed": "49",
        "cities responded": "47",
        "duplicate city": "2",
        "duplicate responses": "3",
    }


def test_one_city_in_any_case_or_script_is_one_city(tmp_path):
    """Zürich and ZÜRICH, São Paulo and SÃO PAULO: case and surrounding spaces never make a second city."""
    db, wave, tokens = _launched_wave(
        tmp_path,
        [
            "Anna,anna@zurich.example.org,Zürich,Switzerland,Europe,en",
            "Beat,beat@zurich.example.org,ZÜRICH,SWITZERLAND,Europe,en",
            "Carla,carla@sp.example.org,São Paulo,Brasil,Latin America,es",
            "Davi,davi@sp.example.org,SÃO PAULO,brasil,Latin America,es",
            "Eve,eve@nowhere.example.org,,Brasil,Latin America,es",
            "Finn,finn@nowhere.example.org,,Brasil,Latin America,es",
        ],
    )
    outcomes = [_complete(db, wave, f"R{n}", token) for n, token in enumerate(tokens.values())]
    assert outcomes == ["complete", "duplicate", "complete", "duplicate", "complete", "complete"]
    # a blank city is no city: neither counted as one nor a duplicate of another blank one
    assert counts(db) == (6, 0, 6, 2, 2, 2)


def test_a_partial_audit_line_names_its_recipient_and_keeps_no_answer(tmp_path):
    db, wave, tokens = _wave_of_100(tmp_path)
    event = ResponseEvent(
        platform="signed",
        response_id="P1",
        finished=False,
        token=tokens["lima0@lima.example.org"],
        answers={"q1": "Secret-answer-text"},
        progress=60,
    )
    assert responses.record(db, wave, event, utcnow()) == "partial"
    stranger = ResponseEvent(platform="signed", response_id="P2", finished=False, token="forged", progress=10)
    assert responses.record(db, wave, stranger, utcnow()) == "partial"
    lima0 = db.execute("SELECT id FROM contacts WHERE email = 'lima0@lima.example.org'").fetchone()[0]
    lines = db.execute("SELECT response_id, contact_id, progress FROM partial_audit ORDER BY response_id").fetchall()
    assert [tuple(line) for line in lines] == [("P1", lima0, 60), ("P2", None, 10)]
    # partials per person: a second abandoned attempt counts, one later finished under the same id does not
    again = ResponseEvent(
        platform="signed", response_id="P3", finished=False, token=tokens["lima0@lima.example.org"], progress=20
    )
    assert responses.record(db, wave, again, utcnow()) == "partial"
    officer = ResponseEvent(
        platform="signed", response_id="P4", finished=False, token=tokens["officer1@city1.example.org"], progress=90
    )
    assert responses.record(db, wave, officer, utcnow()) == "partial"
    assert _complete(db, wave, "P4", tokens["officer1@city1.example.org"]) == "complete"
    assert responses.partials_by_contact(db, wave["id"]) == {lima0: 2}
    db.close()
    assert b"Secret-answer-text" not in (tmp_path / "surveybot.db").read_bytes()
    wal = tmp_path / "surveybot.db-wal"
    assert not wal.exists() or b"Secret-answer-text" not in wal.read_bytes()


DANGEROUS = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "\n=1",
    " =1",
    '\u00a0=HYPERLINK("x")',
    "\u3000=1",
    '\uff1dHYPERLINK("x")',
    "\uff0b1",
    "\uff0d1",
    "\uff20SUM(A1)",
    "\x0b=1",
]


def test_every_spreadsheet_leading_character_is_neutralised_in_the_export(tmp_path, run_cli):
    """Answers that a spreadsheet could run as formulas come out of `responses export` as text."""
    import csv

    db, wave, tokens = _wave_of_100(tmp_path)
    answers = {f"q{n}": value for n, value in enumerate(DANGEROUS)} | {"plain": "Hermanamientos", "number": 3}
    event = ResponseEvent(
        platform="signed",
        response_id="R-formulas",
        finished=True,
        token=tokens["officer1@city1.example.org"],
        answers=answers,
    )
    assert responses.record(db, wave, event, utcnow()) == "complete"
    db.close()
    run_cli("responses", "export", "city", "--output", str(tmp_path / "export.csv"), check=True)
    with open(tmp_path / "export.csv", newline="", encoding="utf-8") as exported:
        [row] = list(csv.DictReader(exported))
    for n, value in enumerate(DANGEROUS):
        assert row[f"q{n}"] == "'" + value, (n, row[f"q{n}"])
    assert (row["plain"], row["number"]) == ("Hermanamientos", "3")

"""The Spanish side complete: the title and the sender in Spanish, a cue at the top of a bilingual message,
and the closing moment as date, time and time zone."""

from __future__ import annotations

import email
import email.policy
import mailbox
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from surveybot import waves
from surveybot.clock import parse_stored, utcnow
from surveybot.db import open_db
from tests.service import running, settings_for, wait_until

CONTACTS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es,America/Bogota",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en,Europe/London",
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,,",
]


def received(folder) -> dict[str, email.message.EmailMessage]:
    messages = [
        email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in mailbox.Maildir(str(folder))
    ]
    return {m["To"].addresses[0].addr_spec: m for m in messages}


async def test_spanish_mail_has_the_spanish_title_sender_and_the_closing_moment_in_the_readers_zone(tmp_path):
    folder = tmp_path / "mail"
    settings = settings_for(
        tmp_path, "maildir://" + str(folder), SURVEYBOT_FROM_ES="Laboratorio de Diplomacia Urbana <lab@example.org>"
    )
    (tmp_path / "list.csv").write_text(
        "name,email,city,country,region,language,timezone\n" + "\n".join(CONTACTS) + "\n", encoding="utf-8"
    )
    db = open_db(settings.db_path)
    from surveybot.contacts.importer import import_contacts

    import_contacts(db, tmp_path / "list.csv", "Metropolis")
    waves.create_wave(
        db,
        waves.WaveSpec(
            slug="w",
            title="City diplomacy 2026",
            title_es="Diplomacia urbana 2026",
            platform="signed",
            survey_id="S1",
            survey_url="https://survey.example.org/s",
            reminders=(),
        ),
        utcnow(),
    )
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(
            lambda: (folder / "new").exists() and len(list((folder / "new").iterdir())) == 3, what="three invitations"
        )
    closes = parse_stored(waves.get_wave(db, "w")["closes_at"])
    mail = received(folder)

    ana = mail["ana@bogota.example.org"]
    assert str(ana["Subject"]) == "Invitación: Diplomacia urbana 2026"
    assert ana["From"].addresses[0].display_name == "Laboratorio de Diplomacia Urbana"
    text = ana.get_body(("plain",)).get_content()
    bogota = closes.astimezone(ZoneInfo("America/Bogota"))
    assert f"a las {bogota:%H:%M} (hora de Colombia)" in text
    assert "Laboratorio de Diplomacia Urbana" in text  # the signature too

    joe = mail["joe@leeds.example.org"]
    assert str(joe["Subject"]) == "Invitation: City diplomacy 2026"
    assert joe["From"].addresses[0].display_name == "City Diplomacy Lab"
    london = closes.astimezone(ZoneInfo("Europe/London"))
    assert f"at {london:%H:%M} (" in joe.get_body(("plain",)).get_content()

    pat = mail["pat@lima.example.org"]  # no preference: one message, Spanish first, saying English follows
    lines = pat.get_body(("plain",)).get_content().splitlines()
    assert "la versión en inglés sigue más abajo" in lines[0]
    assert "the English version follows below" in lines[1]
    html = pat.get_body(("html",)).get_content()
    html = html[html.index("<body") :]
    assert html.index("sigue más abajo") < html.index("Estimado/a") < html.index("Dear ")
    lima = closes.astimezone(ZoneInfo("America/Lima"))  # no zone in the list: the city's
    assert f"{lima:%H:%M} (" in pat.get_body(("plain",)).get_content()


def test_close_at_end_of_day_closes_at_23_59_local(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text("name,email\nAna,ana@bogota.example.org\n", encoding="utf-8")
    run_cli("contacts", "import", "list.csv", "--network", "Metropolis", check=True)
    env = {"TZ": "America/Bogota"}
    run_cli(
        "wave",
        "create",
        "w",
        "--title",
        "T",
        "--title-es",
        "T es",
        "--platform",
        "signed",
        "--survey-id",
        "S",
        "--survey-url",
        "https://survey.example.org/s",
        "--close-after",
        "2w",
        "--close-at-end-of-day",
        extra_env=env,
        check=True,
    )
    run_cli("wave", "launch", "w", "--yes", extra_env=env, check=True)
    db = open_db(tmp_path / "surveybot.db")
    wave = waves.get_wave(db, "w")
    closes = parse_stored(wave["closes_at"]).astimezone(ZoneInfo("America/Bogota"))
    launched = parse_stored(wave["launched_at"]).astimezone(ZoneInfo("America/Bogota"))
    assert (closes.hour, closes.minute) == (23, 59)
    assert closes.date() == (launched + timedelta(days=14)).date()
    assert wave["title_es"] == "T es"
    preview = run_cli(
        "wave", "preview", "w", "--kind", "invitation", "--language", "es", extra_env=env, check=True
    ).stdout
    assert "T es" in preview and "a las" in preview
    assert datetime.now(UTC) < closes

"""A running service with respondents who opted in to an interview and a researcher's slots: shared by the
interview tests (HTTP and browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

from icalendar import Calendar

from surveybot import plan, responses, waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.interviews import queue, slots
from surveybot.platforms import ResponseEvent
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from tests.service import signed_wave

RESPONDENTS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es,America/Bogota",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en,Europe/London",
    "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,,America/Lima",
]
HEADER = "name,email,city,country,region,language,timezone\n"
RESEARCHER = "marta@lab.example.org"
MEETING = "https://meet.example.org/city-diplomacy"


def write_contacts(settings) -> None:
    from surveybot.contacts.importer import import_contacts

    path = settings.db_path.parent / "respondents.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in RESPONDENTS), encoding="utf-8")
    db = open_db(settings.db_path)
    import_contacts(db, path, "Metropolis")
    db.close()


def opt_in_everyone(db, slug: str = "city") -> dict:
    """Launch a wave and record a complete response with an interview opt-in for every contact; returns
    {email: interview id}."""
    signed_wave(db, slug, interview_question="Q9", interview_yes="1", launch=False)
    wave = waves.launch(db, slug, utcnow())
    secret = service_secret(db, None)
    plan.run_due(db, secret, utcnow())  # the survey invitations: their recipients carry the tokens
    db.execute("UPDATE outbox SET state = 'sent' WHERE kind = 'invitation'")  # as if sent long ago
    for (contact_id,) in db.execute("SELECT id FROM contacts").fetchall():
        event = ResponseEvent(
            platform="signed",
            response_id=f"r-{contact_id}",
            finished=True,
            token=survey_token(secret, wave["id"], contact_id),
            answers={"Q1": "x", "Q9": "1"},
        )
        assert responses.record(db, wave, event, utcnow()) == "complete"
    db.execute("UPDATE outbox SET state = 'sent' WHERE kind = 'thank_you'")
    db.conn.commit()
    return {
        email: iid
        for iid, email in db.execute(
            "SELECT q.id, c.email FROM interview_queue q JOIN contacts c ON c.id = q.contact_id"
        )
    }


def publish(db, start: datetime, count: int, researcher: str = RESEARCHER) -> list[int]:
    windows = slots.split(start, start + timedelta(minutes=30 * count), timedelta(minutes=30))
    return slots.add(db, researcher, windows, "Europe/Madrid", MEETING, utcnow())["ids"]


def in_three_days_at(hour: int) -> datetime:
    day = (utcnow() + timedelta(days=3)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def invite_all(db, settings, wave: str = "city", nudge: float = 3600, expire: float = 86400) -> list[int]:
    return queue.invite(db, waves.get_wave(db, wave)["id"], utcnow(), nudge_after=nudge, expire_after=expire)


@dataclass
class Mail:
    to: str
    subject: str
    text: str
    html: str
    languages: str
    ics: Calendar | None
    method: str | None


def read(raw: bytes) -> Mail:
    message = message_from_bytes(raw, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    ics, method = None, None
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            ics, method = Calendar.from_ical(part.get_payload(decode=True)), part.get_param("method")
    return Mail(str(message["To"]), str(message["Subject"]), text, html, str(message["Content-Language"]), ics, method)


def booking_link(text: str) -> str:
    return re.search(r"https://survey\.example\.org/interview/[\w.\-]+", text).group(0)


def event(mail: Mail):
    return mail.ics.walk("VEVENT")[0]

"""Headers that cannot break: whatever a name, a title or a sender holds, the message is well formed and people
read exactly what was written."""

from __future__ import annotations

import email
import email.policy
import random
import re
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import pytest

from surveybot.db import open_db
from surveybot.mail.message import build_message, one_line
from surveybot.mail.render import Rendered
from tests.service import import_rows, running, settings_for, signed_wave, wait_until

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# what names and titles are made of, including what has broken mail before: CR/LF, quotes and backslashes,
# RFC 5322 specials, lone surrogates, NUL, bidi overrides, combining accents, astral characters, and text
# that a reader would take for an RFC 2047 encoded word
PIECES = [
    *"abcXYZ019 .,;:<>()[]@\\\"'=?_-\t\r\n",
    "é",
    "ß",
    "ñ",
    "\u0301",
    "😀",
    "日",
    "\u202e",
    "\x00",
    "\x7f",
    "\x85",
    "\u2028",
    "\ud800",
    "\udfff",
    "\ufeff",
    "\u00a0",
    "=?utf-8?b?SGk=?=",
    "=?iso-8859-1?q?Hi?=",
]
FIXED = [
    "",
    " ",
    "Ana\r\nBcc: everyone@example.org",
    "=?utf-8?b?QWRtaW4=?=",
    '"quoted\\',
    'José "Pepe" <x@y>',
    "a,b;c:d",
    "x" * 997,
    "x " * 600,
    "ß" * 900,
    "😀" * 300,
    "ä" * 5 + "x" * 1000,
    "\u202eevil",
    "(comment)",
]


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def read(raw: str) -> str:
    """A header value as RFC 2047 says a reader shows it (white space between encoded words is no text)."""
    return str(make_header(decode_header(raw.replace("\r\n", ""))))


def shown_name(raw_to: str) -> str:
    """The display name of ``Name <address>``: a quoted string unquoted, encoded words decoded."""
    if "<" not in raw_to:
        return ""
    unfolded = raw_to.replace("\r\n", "").rsplit(" <", 1)[0]
    if unfolded.startswith('"'):
        return re.sub(r"\\(.)", r"\1", unfolded[1:-1])
    return read(unfolded)


def cases() -> list[tuple[str, str]]:
    rng = random.Random(20260601)  # fixed: the same thousand cases on every run
    made = [(text, text) for text in FIXED]
    for _ in range(1000):
        made.append(tuple("".join(rng.choice(PIECES) for _ in range(rng.choice([3, 30, 300, 1000]))) for _ in range(2)))
    return made


def test_no_name_or_subject_can_break_a_message_or_change_what_people_read():
    for name, subject in cases():
        message = build_message(
            Rendered(subject, "text", "<p>html</p>", ("en",)),
            now=NOW,
            sender="Équipe d’enquête <team@example.org>",
            to_email="ana@example.org",
            to_name=name,
            reply_to="Replies <replies@example.org>",
            unsubscribe_url="https://survey.example.org/unsubscribe/t",
        )
        lines = header_lines(message.data)
        assert max(map(len, lines)) <= 998, (name, subject)
        for line in lines:  # RFC 5322 2.1.1: 78 where a space allows folding
            assert len(line) <= 78 or b" " not in line.split(b": ", 1)[-1].strip(), (name, subject, line)
        assert message.data.split(b"\r\n\r\n", 1)[0].isascii()
        parsed = email.message_from_bytes(message.data, policy=email.policy.compat32)
        assert [key for key, _ in parsed.items()] == [
            "From",
            "To",
            "Reply-To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Language",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "MIME-Version",
            "Content-Type",
        ], (name, subject)
        assert read(parsed["Subject"]) == one_line(subject), (name, subject)
        assert shown_name(parsed["To"]) == one_line(name), (name, subject)
        assert read(parsed["To"]).endswith("<ana@example.org>") or not one_line(name)
        assert shown_name(parsed["From"]) == "Équipe d’enquête"


@pytest.mark.parametrize(
    "domain, shown",
    [("example.org", "example.org"), ("münchen.de", "xn--mnchen-3ya.de")],
    ids=["ascii-domain", "international-domain"],
)
async def test_a_sender_name_in_any_script_signs_the_message_as_written(tmp_path, mail_sink, domain, shown):
    """The team's name from SURVEYBOT_FROM signs every message and heads its From line as written (never
    as ``=?utf-8?…?=``); an international sender or reply domain goes out as punycode."""
    settings = settings_for(
        tmp_path,
        mail_sink.url,
        SURVEYBOT_FROM=f"Équipe d’enquête <team@{domain}>",
        SURVEYBOT_REPLY_TO=f"Réponses <replies@{domain}>",
    )
    import_rows(settings, ["Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en"])
    db = open_db(settings.db_path)
    signed_wave(db, reminders=(), close_after=timedelta(hours=1))
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 1, what="the invitation")
    [received] = mail_sink.received
    assert received.mail_from == f"team@{shown}"
    raw = email.message_from_bytes(received.raw, policy=email.policy.compat32)
    assert read(raw["From"]) == f"Équipe d’enquête <team@{shown}>"
    assert read(raw["Reply-To"]) == f"Réponses <replies@{shown}>"
    assert f"mailto:replies@{shown}" in raw["List-Unsubscribe"]
    text = received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Thank you,\nÉquipe d’enquête\n" in text and "=?" not in text


def test_a_sender_address_that_needs_smtputf8_is_refused_at_start_in_one_line(run_cli):
    result = run_cli("contacts", "list", extra_env={"SURVEYBOT_FROM": "Équipe <équipe@example.org>"})
    assert result.returncode != 0
    assert "SURVEYBOT_FROM" in result.stderr and "SMTPUTF8" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_name_or_title_that_looks_encoded_reaches_people_as_written(tmp_path, mail_sink):
    """``=?utf-8?b?QWRtaW4=?=`` in a name or title is text: written as is, a mail reader would decode it and
    show "Admin" (or anything its author chose) instead."""
    settings = settings_for(tmp_path, mail_sink.url)
    name = "=?utf-8?b?QWRtaW4=?= Bloggs"
    title = "Survey =?utf-8?q?You_have_won?="
    import_rows(settings, [f"{name},joe@leeds.example.org,Leeds,UK,Europe,en"])
    db = open_db(settings.db_path)
    signed_wave(db, title=title, reminders=(), close_after=timedelta(hours=1))
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 1, what="the invitation")
    [received] = mail_sink.received
    raw = email.message_from_bytes(received.raw, policy=email.policy.compat32)
    assert shown_name(raw["To"]) == name
    assert read(raw["Subject"]) == f"Invitation: {title}"

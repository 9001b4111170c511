"""What each message says: time left and closing date as of sending, per language; unsubscribe tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from surveybot.db import open_db
from surveybot.mail.compose import closing_date, time_left
from surveybot.mail.render import KINDS, Renderer
from surveybot.suppressions import is_suppressed, unsubscribe, unsubscribe_token
from tests.service import import_rows, settings_for


@pytest.mark.parametrize(
    "delta, en, es",
    [
        (timedelta(days=5, hours=2), "5 days", "5 días"),
        (timedelta(days=1), "1 day", "1 día"),
        (timedelta(days=13, hours=23), "14 days", "14 días"),
        (timedelta(hours=5), "5 hours", "5 horas"),
        (timedelta(seconds=30), "30 seconds", "30 segundos"),
        (timedelta(seconds=-5), "0 seconds", "0 segundos"),
    ],
)
def test_time_left_in_each_language(delta, en, es):
    assert time_left(delta, "en") == en
    assert time_left(delta, "es") == es


def test_closing_date_is_in_the_contacts_time_zone():
    closes = datetime(2026, 6, 17, 2, 0, tzinfo=UTC)
    assert closing_date(closes, "", "en") == "17 June"
    assert closing_date(closes, "", "es") == "17 de junio"
    assert closing_date(closes, "America/Bogota", "en") == "16 June"  # still the evening before there


def test_every_builtin_template_renders_in_both_languages_and_bilingually():
    renderer = Renderer()
    variables = {
        "name": "Ana",
        "city": "Bogotá",
        "country": "Colombia",
        "email": "a@x.org",
        "wave_title": "T",
        "survey_link": "https://s.example.org/?token=abc&x=<b>",
        "survey_links": {},
        "closes_on": "17 June",
        "closes_time": "10:04 (UTC)",
        "time_left": "5 days",
        "unsubscribe_url": "https://u.example.org/u/1",
        "team": "Lab",
        "language": "en",
    }
    context = {"en": variables, "es": {**variables, "language": "es"}}
    for kind in KINDS:
        for language in ("en", "es", ""):
            rendered = renderer.render(kind, language, context)
            assert rendered.subject and "\n" not in rendered.subject
            assert "https://u.example.org/u/1" in rendered.text
            assert "&amp;x=&lt;b&gt;" in rendered.html or kind == "thank_you"  # links escaped in HTML
            assert "<b>" not in rendered.html
        assert renderer.render(kind, "", context).languages == ("es", "en")


def test_unsubscribe_token_suppresses_and_a_forged_one_does_nothing(tmp_path):
    settings = settings_for(tmp_path, "maildir://" + str(tmp_path / "mail"))
    import_rows(settings, ["Ana,ana@bogota.example.org,Bogotá,Colombia,Latin America,es"])
    db = open_db(settings.db_path)
    secret = "s" * 40
    token = unsubscribe_token(secret, 1, 7)
    assert unsubscribe(db, secret, token[:-2] + "xx") is None
    assert unsubscribe(db, secret, "2" + token[1:]) is None  # another contact's id, same signature
    assert unsubscribe(db, "t" * 40, token) is None  # signed with another secret
    assert unsubscribe(db, secret, "garbage") is None
    assert not is_suppressed(db, "ana@bogota.example.org")
    assert unsubscribe(db, secret, token) == "ana@bogota.example.org"
    assert db.execute("SELECT kind, reason FROM suppressions").fetchone() == ("opt_out", "unsubscribe link (wave 7)")


def test_serialised_message_parses_back_exactly():
    from email import message_from_bytes, policy
    from email.header import decode_header, make_header

    from surveybot.mail.message import build_message
    from surveybot.mail.render import Rendered

    name = "Nguyễn Thị Lan — Oficina de Relaciones Internacionales de la Alcaldía de Bogotá D.C. 🌍"
    text = "Línea uno con acentos: áéíóú ñ ü\n" + "x" * 200 + "\n= signo igual =3D\n.\nfin"
    html = '<p>Más información: <a href="https://s.example.org/?a=1&amp;b=2">aquí</a></p>' * 5
    subject = "Invitación: Encuesta de diplomacia de ciudades 2026 / Invitation: City diplomacy survey 2026"
    outgoing = build_message(
        Rendered(subject, text, html, ("es", "en")),
        sender="Laboratorio Ñandú <lab@example.org>",
        to_email="lan@hanoi.example.org",
        to_name=name,
        now=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        unsubscribe_url="https://survey.example.org/unsubscribe/1.2.abc",
        reply_to="Lab <reply@example.org>",
    )
    assert all(len(line) <= 998 for line in outgoing.data.split(b"\r\n"))
    assert b"\n" not in outgoing.data.replace(b"\r\n", b"")
    message = message_from_bytes(outgoing.data, policy=policy.default)
    # decoded as RFC 2047 says (CPython's modern address parser adds spaces between encoded words)
    raw_to = message_from_bytes(outgoing.data)["To"]
    assert str(make_header(decode_header(raw_to))) == f"{name} <lan@hanoi.example.org>"
    assert str(message["From"]) == "Laboratorio Ñandú <lab@example.org>"
    assert str(message["Subject"]).strip() == subject
    assert message["Message-ID"] == outgoing.message_id
    assert message["Content-Language"] == "es, en"
    assert message.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == text
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html
    assert (outgoing.sender, outgoing.recipient) == ("lab@example.org", "lan@hanoi.example.org")

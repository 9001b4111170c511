"""The send path renders a wave's templates once and fills in each contact's values: every message must be
exactly the text a full Jinja2 render of the same context gives, escaping included."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy

import pytest

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.contacts import store
from surveybot.db import open_db
from surveybot.mail.compose import Composer
from surveybot.mail.message import build_message
from surveybot.mail.render import KINDS, Rendered
from surveybot.signing import service_secret
from tests.service import import_rows, settings_for

ROWS = [
    '"O\'Brien <b>&amp; ""Bob""",ob@dublin.example.org,Dublin,Ireland,Europe,en',
    "José Núñez,jose@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Zoë 李 {curly} =?x?=,zoe@lima.example.org,Lima,Peru,Latin America,",
    ",nobody@atlantis.example.org,,,Europe,en",  # no name, no city: the templates' other branches
    "Ann & <i>Co</i>,ann@leeds.example.org,Leeds <Town>,UK,Europe,es",
]


def composer_for(tmp_path, **extra: str) -> tuple[Composer, dict, list[dict]]:
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}", **extra)
    import_rows(settings, ROWS)
    db = open_db(settings.db_path)
    spec = waves.WaveSpec(
        slug="w",
        title='City diplomacy <2026> & "you"',
        title_es="Diplomacia urbana 2026",
        platform="qualtrics",
        survey_id="SV_1",
        survey_url="https://lab.qualtrics.com/jfe/form/SV_1?src=mail&x=1",
        survey_url_es="https://lab.qualtrics.com/jfe/form/SV_1?lang=es",
        reminders=(timedelta(days=7), timedelta(days=12)),
        close_after=timedelta(days=14),
        timezone="Asia/Tokyo",  # the wave's zone differs from the recipients'
    )
    waves.create_wave(db, spec, utcnow())
    wave = waves.launch(db, "w", utcnow())
    composer = Composer(db, settings, service_secret(db, settings.secret))
    contacts = list(store.contacts_by_id(db, [i for (i,) in db.execute("SELECT id FROM contacts")]).values())
    assert len(contacts) == len(ROWS)
    return composer, wave, contacts


def test_every_message_is_byte_identical_to_a_full_render(tmp_path):
    composer, wave, contacts = composer_for(tmp_path)
    now = utcnow() + timedelta(days=3, hours=5)
    checked = 0
    for kind in KINDS:
        for contact in contacts:
            for language in (contact["language"], "en", "es", ""):
                context = composer.context(wave, contact, now)
                fast = composer.prepared.render(kind, language, context)
                full = composer.renderer.render(kind, language, composer.context(wave, contact, now))
                assert fast == full, (kind, language, contact["email"])
                checked += 1
    assert checked == len(KINDS) * len(contacts) * 4
    # the shapes were prepared, not rendered in full each time
    assert 0 < len(composer.prepared._shapes) < checked
    assert all(shape is not None for shape in composer.prepared._shapes.values())


def test_the_sent_message_carries_the_full_render_and_escapes_names_in_html(tmp_path):
    composer, wave, contacts = composer_for(tmp_path)
    now = utcnow()
    obrien = next(c for c in contacts if c["email"] == "ob@dublin.example.org")
    sent = message_from_bytes(composer.message("reminder", wave, obrien, now, key="k").data, policy=policy.default)
    full = composer.renderer.render("reminder", "en", composer.context(wave, obrien, now))
    # (a blank line separates the text part from the next boundary, hence the last "\n")
    assert sent.get_body(("plain",)).get_content().replace("\r\n", "\n") == full.text + "\n"
    html = sent.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html == full.html
    assert "O&#39;Brien &lt;b&gt;&amp;amp; &#34;Bob&#34;" in html and "<b>" not in html
    assert "(Irish Time)" in sent.get_body(("plain",)).get_content()  # in their zone, not the wave's (Tokyo)


def test_a_template_that_changes_a_value_is_rendered_in_full(tmp_path):
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "invitation.en.txt.j2").write_text(
        "Subject: Hello {{ name|upper }}\n\n{% if city == 'Dublin' %}Dia dhuit{% endif %} {{ name[:3] }}|"
        "{{ survey_link|replace('https', 'http') }}|{{ time_left }}\n",
        encoding="utf-8",
    )
    composer, wave, contacts = composer_for(tmp_path, SURVEYBOT_TEMPLATES=str(overrides))
    now = utcnow()
    for contact in contacts:
        context = composer.context(wave, contact, now)
        assert composer.prepared.render("invitation", "en", context) == composer.renderer.render(
            "invitation", "en", context
        )
    obrien = next(c for c in contacts if c["email"] == "ob@dublin.example.org")
    text = composer.prepared.render("invitation", "en", composer.context(wave, obrien, now)).text
    assert text.startswith("Dia dhuit O'B|http://")


@pytest.mark.parametrize(
    "body",
    [
        "x" * 75 + "\n" + "x" * 76 + "\n" + "x" * 77 + "\n" + "x" * 200,
        "trailing space \nand tab\t\n.\nFrom the start\n",
        "é" * 40 + "=" * 30 + "\n" + "😀" * 30 + " ",
        "",
        "\n\n",
        "a\r\nb\rc",
    ],
)
def test_bodies_decode_back_to_exactly_the_text(body):
    rendered = Rendered("Subject", body, "<p>" + body + "</p>", ("en",))
    data = build_message(rendered, sender="Lab <lab@example.org>", to_email="a@x.org", to_name="A", now=utcnow()).data
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    # in wire form, as the transport sends it without rewriting: CRLF line endings only, ending with one
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r") and data.endswith(b"\r\n")
    parsed = message_from_bytes(data, policy=policy.default)
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    # (a blank line separates the text part from the next boundary, hence the last "\n")
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == expected + "\n"
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n") == "<p>" + expected + "</p>"

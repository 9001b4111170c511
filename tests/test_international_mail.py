"""International addresses and headers that cannot break: one odd address never stops the others."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
from datetime import timedelta
from email.header import decode_header, make_header

import pytest

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.mail.message import build_message
from surveybot.mail.render import Rendered
from surveybot.mail.transports import PermanentFailure, open_transport
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests.mailsink import MailSink
from tests.service import import_rows, running, settings_for, signed_wave, wait_until, wave_create_args

CONTACTS = [
    "José Núñez,josé@example.org,Sevilla,Spain,Europe,es",
    "Uwe Müller,uwe@münchen.de,München,Germany,Europe,en",
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
]
ASCII = ("ana@bogota.example.org", "joe@leeds.example.org")


def launch(settings):
    report = import_rows(settings, CONTACTS)
    db = open_db(settings.db_path)
    signed_wave(db, reminders=(), close_after=timedelta(hours=1))
    return db, report


def outbox_states(db) -> dict[str, tuple[str, str]]:
    return {to: (state, error) for to, state, error in db.execute("SELECT to_email, state, last_error FROM outbox")}


def test_the_import_flags_an_address_that_needs_smtputf8_and_merges_both_spellings_of_a_domain(tmp_path):
    settings = settings_for(tmp_path, "maildir://" + str(tmp_path / "mail"))
    report = import_rows(settings, [*CONTACTS, "Uwe Müller,uwe@xn--mnchen-3ya.de,München,Germany,Europe,en"])
    assert (report.imported, report.duplicates, report.rejected) == (4, 1, 0)
    [warning] = [w for w in report.warnings if w["field"] == "email"]
    assert warning["row"] == 2 and "SMTPUTF8" in warning["message"]


@pytest.mark.parametrize("smtputf8", [False, True], ids=["relay-without-smtputf8", "relay-with-smtputf8"])
async def test_international_addresses_over_smtp_never_stop_the_others(tmp_path, smtputf8):
    sink = MailSink(smtputf8=smtputf8).start()
    try:
        settings = settings_for(tmp_path, sink.url)
        db, _ = launch(settings)
        expected = 4 if smtputf8 else 3
        async with running(settings) as (_, base):
            await wait_until(lambda: len(sink.received) == expected, what=f"{expected} invitations")
            await wait_until(
                lambda: all(state in ("sent", "failed") for state, _ in outbox_states(db).values()),
                what="every message settled",
            )
            import aiohttp

            async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as health:
                assert health.status == 200
        states = outbox_states(db)
        for address in ASCII:
            assert states[address][0] == "sent" and len(sink.to(address)) == 1
        # the international domain travels as punycode, in the envelope and in the To header
        [uwe] = sink.to("uwe@xn--mnchen-3ya.de")
        assert states["uwe@münchen.de"][0] == "sent"
        assert "uwe@xn--mnchen-3ya.de" in str(uwe.message["To"])
        if smtputf8:
            [jose] = sink.to("josé@example.org")
            assert "josé@example.org" in str(jose.message["To"]) and states["josé@example.org"][0] == "sent"
        else:
            state, error = states["josé@example.org"]
            assert state == "failed" and "SMTPUTF8" in error and "josé@example.org" in error
        status = wave_status(db, waves.get_wave(db, "w"), service_secret(db, None), base)
        assert (status["sent"], status["failed"]) == ((4, 0) if smtputf8 else (3, 1))
    finally:
        sink.stop()


async def test_international_addresses_are_written_to_a_maildir(tmp_path):
    folder = tmp_path / "mail"
    settings = settings_for(tmp_path, "maildir://" + str(folder))
    db, _ = launch(settings)
    async with running(settings):
        await wait_until(
            lambda: len(list((folder / "new").iterdir())) == 4 if (folder / "new").exists() else False,
            what="four messages in the Maildir",
        )
    to = sorted(
        str(email.message_from_bytes(m.as_bytes(), policy=email.policy.default)["To"])
        for m in mailbox.Maildir(str(folder))
    )
    assert any("josé@example.org" in t for t in to) and any("uwe@xn--mnchen-3ya.de" in t for t in to)
    assert {state for state, _ in outbox_states(db).values()} == {"sent"}


async def test_long_names_and_titles_fold_within_the_line_limits(tmp_path, mail_sink):
    """A 199-character name without a space and a 200-character title reach the relay with every header line
    within 998 octets (78 where a space allows) and read back exactly."""
    settings = settings_for(tmp_path, mail_sink.url)
    long_name = "N" * 199
    spaced_name = " ".join(["Officer"] * 24)  # 191 characters with spaces
    title = ("International affairs of cities " * 7)[:200].strip()
    import_rows(
        settings,
        [
            f"{long_name},long@example.org,Leeds,UK,Europe,en",
            f"{spaced_name},spaced@example.org,Leeds,UK,Europe,en",
            f"Ñandú {'Ö' * 150},n@example.org,Lima,Peru,Latin America,es",
        ],
    )
    db = open_db(settings.db_path)
    signed_wave(db, title=title, reminders=())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 3, what="three invitations")
    assert {state for state, _ in outbox_states(db).values()} == {"sent"}
    for received in mail_sink.received:
        head = received.raw.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        for line in head.split(b"\r\n"):
            if len(line) > 78:  # only an unbreakable run may be longer
                assert b" " not in line.split(b": ", 1)[-1].strip(), line
        message = email.message_from_bytes(received.raw, policy=email.policy.default)
        assert title in str(message["Subject"])
    # read as RFC 2047 says (white space between encoded words is not part of the text)
    names = set()
    for received in mail_sink.received:
        raw_to = email.message_from_bytes(received.raw, policy=email.policy.compat32)["To"]
        names.add(str(make_header(decode_header(raw_to.replace("\r\n", "")))).rsplit(" <", 1)[0])
    assert names == {long_name, spaced_name, f"Ñandú {'Ö' * 150}"}


def test_too_long_names_and_titles_are_refused_at_input_with_their_limit(tmp_path, run_cli):
    (tmp_path / "list.csv").write_text("name,email\n" + "N" * 201 + ",n@example.org\nAna,ana@example.org\n")
    result = run_cli("contacts", "import", "list.csv", "--network", "Metropolis", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == 1 and report["errors"][0]["row"] == 2
    assert report["errors"][0]["field"] == "name" and "at most 200" in report["errors"][0]["message"]
    created = run_cli(
        *wave_create_args("w", title="T" * 201),
    )
    assert created.returncode == 1 and "at most 200" in created.stderr


async def test_an_address_the_wire_cannot_carry_fails_alone_and_the_next_message_goes_at_once(tmp_path, mail_sink):
    """A stored address whose domain has no ASCII form (from an older version's import, say) fails with the
    reason before any SMTP command, so the connection is clean for the next message: refused halfway
    through the envelope, it would make the relay answer the next MAIL FROM with "503 nested MAIL"."""
    settings = settings_for(tmp_path, mail_sink.url)
    transport = open_transport(settings.mail, connections=1)
    rendered = Rendered("Invitation", "text", "<p>html</p>", ("en",))
    try:
        with pytest.raises(PermanentFailure, match="ana@bad_домен"):
            await transport.send(
                build_message(
                    rendered, sender=settings.sender, to_email="ana@bad_домен.org", to_name="Ana", now=utcnow()
                )
            )
        await transport.send(
            build_message(
                rendered, sender=settings.sender, to_email="joe@leeds.example.org", to_name="Joe", now=utcnow()
            )
        )
    finally:
        await transport.close()
    assert [r.rcpt_tos for r in mail_sink.received] == [["joe@leeds.example.org"]]


def test_local_parts_are_measured_as_sent_and_refused_over_64_octets_with_the_rule(tmp_path, run_cli):
    """RFC 5321 4.5.3.1.1: at most 64 octets before the @. An accent typed as a combining mark is stored (and
    sent) composed, so it is measured composed."""
    decomposed = "e\u0301" * 30  # 90 octets as typed, 60 composed
    (tmp_path / "list.csv").write_text(f"name,email\nLong,{'x' * 65}@example.org\nAccents,{decomposed}@example.org\n")
    result = run_cli("contacts", "import", "list.csv", "--network", "Metropolis", "--json")
    report = json.loads(result.stdout)
    assert (report["imported"], report["rejected"]) == (1, 1)
    [error] = report["errors"]
    assert error["row"] == 2 and error["field"] == "email"
    assert "65 characters long; at most 64" in error["message"] and "RFC 5321" in error["message"]
    listed = json.loads(run_cli("contacts", "list", "--json").stdout)["contacts"]
    assert [c["email"] for c in listed] == ["é" * 30 + "@example.org"]


def test_an_address_argument_that_is_not_utf8_is_refused_with_the_reason(run_cli):
    refused = run_cli("contacts", "suppress", os.fsdecode(b"\xff@example.org"))
    assert refused.returncode == 1 and "not a valid e-mail address" in refused.stderr
    assert "Traceback" not in refused.stderr

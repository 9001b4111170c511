"""A whole wave, run in seconds, delivered to a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from surveybot import recipients, waves
from surveybot.clock import utcnow
from surveybot.db import open_db, transaction
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from surveybot.suppressions import suppress
from tests.service import import_rows, running, settings_for, wait_until

SUBJECTS = {
    "Invitation": "invitation",
    "Invitación": "invitation",
    "Reminder": "reminder",
    "Recordatorio": "reminder",
    "Last days": "final_reminder",
    "Últimos días": "final_reminder",
    "Thank you": "thank_you",
    "Gracias": "thank_you",
}


def kind_of(received) -> str:
    prefix = str(received.message["Subject"]).split(":")[0]
    return SUBJECTS[prefix]


def kinds_to(sink, address: str) -> list[str]:
    return sorted(kind_of(r) for r in sink.to(address))


def make_wave(settings, slug="w", reminders=(2, 4), close=6, **extra):
    db = open_db(settings.db_path)
    spec = waves.WaveSpec(
        slug=slug,
        title="City diplomacy 2026",
        platform="qualtrics",
        survey_id="SV_1",
        survey_url="https://lab.qualtrics.com/jfe/form/SV_1",
        reminders=tuple(timedelta(seconds=s) for s in reminders),
        close_after=timedelta(seconds=close),
        **extra,
    )
    waves.create_wave(db, spec, utcnow())
    return db


async def test_whole_wave_language_reminders_completion_and_close(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(
        settings,
        [
            "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
            "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
            "Pat Doe,pat@lima.example.org,Lima,Peru,Latin America,",
            "Sam Gone,sam@oslo.example.org,Oslo,Norway,Europe,en",
            "Dana Done,dana@quito.example.org,Quito,Ecuador,Latin America,en",
        ],
    )
    db = make_wave(settings)
    suppress(db, "sam@oslo.example.org", "opt_out")
    waves.launch(db, "w", utcnow())
    wave = waves.get_wave(db, "w")
    async with running(settings) as (app, _):
        await wait_until(lambda: len(mail_sink.received) == 4, what="four invitations")
        with transaction(db):
            dana = db.execute("SELECT id FROM contacts WHERE email = 'dana@quito.example.org'").fetchone()[0]
            assert recipients.mark_completed(db, wave["id"], dana, utcnow())
        await wait_until(lambda: waves.get_wave(db, "w")["state"] == "closed", timeout=15, what="the close")
        await asyncio.sleep(1.0)  # nothing may follow the close
        status = wave_status(db, waves.get_wave(db, "w"), service_secret(db, None), settings.base_url)

    assert kinds_to(mail_sink, "ana@bogota.example.org") == ["final_reminder", "invitation", "reminder"]
    assert kinds_to(mail_sink, "joe@leeds.example.org") == ["final_reminder", "invitation", "reminder"]
    assert kinds_to(mail_sink, "pat@lima.example.org") == ["final_reminder", "invitation", "reminder"]
    assert kinds_to(mail_sink, "dana@quito.example.org") == ["invitation", "thank_you"]
    assert mail_sink.to("sam@oslo.example.org") == []
    assert len(mail_sink.received) == 11

    [ana] = [r for r in mail_sink.to("ana@bogota.example.org") if kind_of(r) == "invitation"]
    assert ana.message["Content-Language"] == "es"
    assert "La encuesta cierra en" in ana.message.get_body(("plain",)).get_content()
    [joe] = [r for r in mail_sink.to("joe@leeds.example.org") if kind_of(r) == "invitation"]
    assert joe.message["Content-Language"] == "en"
    [pat] = [r for r in mail_sink.to("pat@lima.example.org") if kind_of(r) == "invitation"]
    assert pat.message["Content-Language"] == "es, en"
    text = pat.message.get_body(("plain",)).get_content()
    links = [word for word in text.split() if word.startswith("https://lab.qualtrics.com")]
    assert {parse_qs(urlsplit(u).query)["Q_Language"][0] for u in links} == {"ES", "EN"}
    assert "The survey closes in" in text and "La encuesta cierra en" in text

    # the same personal link in invitation and reminder, and it finds the recipient
    reminder = next(r for r in mail_sink.to("joe@leeds.example.org") if kind_of(r) == "reminder")

    def token(r):
        words = r.message.get_body(("plain",)).get_content().split()
        return parse_qs(urlsplit(next(w for w in words if w.startswith("https://lab"))).query)["token"][0]

    assert token(joe) == token(reminder)
    joe_id = db.execute("SELECT id FROM contacts WHERE email = 'joe@leeds.example.org'").fetchone()[0]
    assert recipients.by_token(db, token(joe))["contact_id"] == joe_id
    assert recipients.by_token(db, token(joe)[:-1] + "x") is None

    assert status["state"] == "closed"
    assert (status["invited"], status["sent"], status["completed"], status["opted_out"]) == (4, 11, 1, 0)
    assert status["next_step"] is None


async def test_message_headers_and_header_injection(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_REPLY_TO="Lab <reply@example.org>")
    evil = '"Eve\r\nBcc: victim@example.org\r\nX-Evil: 1",eve@example.org,Évry,France,Europe,en'
    import_rows(settings, [evil, "José Núñez,jose@cali.example.org,Cali,Colombia,Latin America,es"])
    db = make_wave(settings, reminders=(), close=60)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 2, what="two invitations")
    [eve] = mail_sink.to("eve@example.org")
    assert eve.rcpt_tos == ["eve@example.org"]
    assert eve.message["Bcc"] is None and eve.message["X-Evil"] is None
    assert "\n" not in str(eve.message["To"]) and "\r" not in str(eve.message["To"])
    headers = eve.raw.split(b"\r\n\r\n")[0]
    assert b"\r\nBcc:" not in headers and b"\r\nX-Evil:" not in headers
    assert "Dear Eve Bcc: victim@example.org X-Evil: 1," in eve.message.get_body(("plain",)).get_content()
    assert str(eve.message["To"]).endswith("<eve@example.org>")
    [jose] = mail_sink.to("jose@cali.example.org")
    assert b"=?utf-8?" in jose.raw.split(b"\r\n\r\n")[0]  # RFC 2047 in the headers
    assert str(jose.message["To"]) == "José Núñez <jose@cali.example.org>"
    for received in (eve, jose):
        m = received.message
        assert m.get_content_type() == "multipart/alternative"
        assert m["Message-ID"] and m["Date"]
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert m["List-Unsubscribe"].strip().startswith("<https://survey.example.org/unsubscribe/")
        assert "<mailto:reply@example.org?subject=unsubscribe>" in m["List-Unsubscribe"]
        assert m["Reply-To"] == "Lab <reply@example.org>"
    assert eve.message["Message-ID"] != jose.message["Message-ID"]
    html = eve.message.get_body(("html",)).get_content()
    assert "Évry" in html and "<script" not in html


async def test_restart_mid_wave_loses_nothing_and_repeats_nothing(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(20)])
    db = make_wave(settings, reminders=(3,), close=30)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 20, what="twenty invitations")
    # down while the reminder falls due
    await asyncio.sleep(3.5)
    assert len(mail_sink.received) == 20
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 40, what="twenty reminders after the restart")
        await asyncio.sleep(1.0)
    assert len(mail_sink.received) == 40
    for i in range(20):
        assert kinds_to(mail_sink, f"officer{i}@city{i}.example.org") == ["invitation", "reminder"]


async def test_crash_while_sending_is_resent_and_counted(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(6)])
    db = make_wave(settings, reminders=(), close=60)
    waves.launch(db, "w", utcnow())
    from surveybot import plan

    plan.run_due(db, service_secret(db, None), utcnow())
    with transaction(db):  # what a crash leaves behind: two messages claimed but never marked
        db.execute(
            "UPDATE outbox SET state = 'sending', attempts = 1 WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 2)"
        )
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 6, what="all six, the interrupted two included")
        await asyncio.sleep(0.5)
    assert len(mail_sink.received) == 6
    status = wave_status(db, waves.get_wave(db, "w"), service_secret(db, None), settings.base_url)
    assert status["sent"] == 6 and status["resent_after_crash"] == 2


async def test_smtp_down_then_up_delivers_everything(tmp_path):
    from tests.mailsink import MailSink

    sink = MailSink()  # port reserved, server not started: connection refused
    settings = settings_for(tmp_path, sink.url)
    import_rows(settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(5)])
    db = make_wave(settings, reminders=(), close=120)
    waves.launch(db, "w", utcnow())
    try:
        async with running(settings):
            await wait_until(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE attempts >= 2").fetchone()[0] == 5,
                what="retries while the server is down",
            )
            assert db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0] == 5
            sink.start()
            await wait_until(lambda: len(sink.received) == 5, timeout=20, what="delivery once the server is up")
    finally:
        sink.stop()
    assert sorted(r.rcpt_tos[0] for r in sink.received) == sorted(f"officer{i}@city{i}.example.org" for i in range(5))
    assert db.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0] == 5


async def test_temporary_refusal_is_retried_permanent_bounce_suppresses(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(
        settings,
        [
            "Gone,gone@city.example.org,A,X,Europe,en",
            "Here,here@city.example.org,B,X,Europe,en",
            "Full,full@city.example.org,C,X,Europe,en",
        ],
    )
    mail_sink.handler.refuse_rcpt["gone@city.example.org"] = "550 5.1.1 <gone@city.example.org>: no such user"
    mail_sink.handler.refuse_rcpt["full@city.example.org"] = "552 5.2.2 Mailbox full"
    db = make_wave(settings, reminders=(2,), close=5)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: waves.get_wave(db, "w")["state"] == "closed", timeout=15, what="the close")
    assert kinds_to(mail_sink, "here@city.example.org") == ["invitation", "reminder"]
    assert mail_sink.to("gone@city.example.org") == []
    kinds = dict(db.execute("SELECT email, kind FROM suppressions").fetchall())
    assert kinds == {"gone@city.example.org": "bounce"}  # 5.2.2 is not a bad address: not suppressed
    failed = db.execute(
        "SELECT to_email, kind, last_error FROM outbox WHERE state = 'failed' ORDER BY to_email"
    ).fetchall()
    assert [(f[0], f[1]) for f in failed] == [
        ("full@city.example.org", "invitation"),
        ("full@city.example.org", "reminder"),
        ("gone@city.example.org", "invitation"),
    ]
    assert "5.1.1" in failed[2][2]
    status = wave_status(db, waves.get_wave(db, "w"), service_secret(db, None), settings.base_url)
    assert (status["bounced"], status["failed"], status["sent"]) == (1, 3, 2)


async def test_temporary_4xx_is_retried_until_accepted(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(settings, ["One,one@city.example.org,A,X,Europe,en"])
    mail_sink.handler.refuse_data = "451 4.3.0 Try again later"
    db = make_wave(settings, reminders=(), close=60)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: db.execute("SELECT attempts FROM outbox").fetchone()[0] >= 2, what="a retry")
        assert mail_sink.received == []
        mail_sink.handler.refuse_data = None
        await wait_until(lambda: len(mail_sink.received) == 1, timeout=15, what="the retried message")
    assert db.execute("SELECT state FROM outbox").fetchone()[0] == "sent"


async def test_pause_holds_and_close_cancels(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(settings, ["One,one@city.example.org,A,X,Europe,en"])
    db = make_wave(settings, reminders=(1, 2), close=8)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 1, what="the invitation")
        waves.set_paused(db, "w", True)
        await asyncio.sleep(2.8)  # both reminders fall due while paused
        assert len(mail_sink.received) == 1
        waves.set_paused(db, "w", False)
        await wait_until(lambda: len(mail_sink.received) == 2, what="one reminder after resuming")
        await asyncio.sleep(0.8)
        assert kinds_to(mail_sink, "one@city.example.org") == ["final_reminder", "invitation"]
        states = dict(db.execute("SELECT kind, state FROM wave_steps WHERE kind != 'close'").fetchall())
        assert states == {"invitation": "done", "reminder": "skipped", "final_reminder": "done"}
        waves.close(db, "w", utcnow())
    assert waves.get_wave(db, "w")["state"] == "closed"
    assert db.execute("SELECT count(*) FROM wave_steps WHERE state = 'pending'").fetchone()[0] == 0


async def test_send_rate_is_respected(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="8")
    import_rows(settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(9)])
    db = make_wave(settings, reminders=(), close=60)
    waves.launch(db, "w", utcnow())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 9, what="nine invitations")
    times = sorted(r.at for r in mail_sink.received)
    assert times[-1] - times[0] >= 8 / 8 * 0.9  # nine messages at 8/s span at least ~1 s


async def test_stopping_finishes_the_message_in_flight_and_keeps_the_rest_queued(tmp_path):
    from aiosmtpd.controller import Controller

    from tests.mailsink import Handler, free_port

    class Slow(Handler):
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(1.0)
            return await super().handle_DATA(server, session, envelope)

    handler, port = Slow(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = settings_for(tmp_path, f"smtp://127.0.0.1:{port}", SURVEYBOT_SEND_CONCURRENCY="1")
        import_rows(settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(4)])
        db = make_wave(settings, reminders=(), close=60)
        waves.launch(db, "w", utcnow())
        async with running(settings):
            await wait_until(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE state = 'sending'").fetchone()[0],
                what="a message in flight",
            )
            await asyncio.sleep(0.3)
        states = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
    finally:
        controller.stop()
    assert len(handler.received) == 1  # the one in flight was finished, not cut off
    assert states == {"sent": 1, "queued": 3}

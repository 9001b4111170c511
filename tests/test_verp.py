"""The return path (MAIL FROM) of every message names its outbox row under a signed key when
SURVEYBOT_BOUNCE_ADDRESS is set, so a bounce that arrives later says which message it is about."""

from __future__ import annotations

from surveybot.db import open_db
from surveybot.mail import verp
from surveybot.signing import service_secret
from tests.service import import_rows, running, settings_for, signed_wave, wait_until

ROWS = [
    "Ana Pérez,ana@bogota.example.org,Bogotá,Colombia,Latin America,es",
    "Joe Bloggs,joe@leeds.example.org,Leeds,UK,Europe,en",
    "Mia Wong,mia@lima.example.org,Lima,Peru,Latin America,",
]


async def test_each_message_goes_out_with_the_signed_return_path_of_its_own_row(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_BOUNCE_ADDRESS="bounces@lab.example.org")
    import_rows(settings, ROWS)
    db = open_db(settings.db_path)
    signed_wave(db, reminders=())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 3, what="the invitations")
    secret = service_secret(db, settings.secret)
    rows = {email: row_id for row_id, email in db.execute("SELECT id, to_email FROM outbox WHERE state = 'sent'")}
    assert len(rows) == 3
    for received in mail_sink.received:
        (to,) = received.rcpt_tos
        assert received.mail_from == verp.return_path(secret, "bounces@lab.example.org", rows[to])
        assert verp.outbox_id_of(secret, "bounces@lab.example.org", received.mail_from) == rows[to]
        # the reader still sees the team as the sender
        assert received.message["From"].addresses[0].addr_spec == "lab@example.org"
    assert len({r.mail_from for r in mail_sink.received}) == 3


async def test_without_a_bounce_address_the_return_path_is_the_sender(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(settings, ROWS[:1])
    db = open_db(settings.db_path)
    signed_wave(db, reminders=())
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 1, what="the invitation")
    assert mail_sink.received[0].mail_from == "lab@example.org"

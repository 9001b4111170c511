"""The mail relay misbehaving: it drops the connection in the middle of DATA for a while, or goes away
altogether, and comes back. Everything is delivered afterwards, nothing twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from surveybot.db import open_db
from tests.mailsink import Handler, MailSink
from tests.service import import_rows, running, settings_for, signed_wave, wait_until


class DroppingHandler(Handler):
    """Hangs up in the middle of DATA (before answering) the first ``drops`` times."""

    def __init__(self, drops: int) -> None:
        super().__init__()
        self.drops = drops

    async def handle_DATA(self, server, session, envelope):
        if self.drops > 0:
            self.drops -= 1
            server.transport.close()
            return "421 4.4.2 connection dropped"
        return await super().handle_DATA(server, session, envelope)


def wave_of(settings, count: int):
    import_rows(
        settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,Latin America,es" for n in range(count)]
    )
    db = open_db(settings.db_path)
    signed_wave(db, reminders=(), close_after=timedelta(hours=1))
    return db


def per_address(sink) -> Counter:
    return Counter(address for received in sink.received for address in received.rcpt_tos)


async def test_a_relay_dropping_connections_mid_data_delays_but_loses_nothing(tmp_path):
    sink = MailSink()
    sink.handler = DroppingHandler(drops=12)
    sink.start()
    try:
        settings = settings_for(tmp_path, sink.url)
        db = wave_of(settings, 40)
        async with running(settings):
            await wait_until(lambda: len(sink.received) == 40, timeout=30, what="every invitation")
            await wait_until(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0,
                what="every message recorded as sent",
            )
        assert sink.handler.drops == 0 and max(per_address(sink).values()) == 1
        retried = db.execute("SELECT count(*) FROM outbox WHERE attempts > 1").fetchone()[0]
        assert retried >= 1  # the dropped ones were tried again
    finally:
        sink.stop()


async def test_a_relay_that_goes_away_for_a_while_gets_everything_when_it_returns(tmp_path):
    sink = MailSink().start()
    try:
        # 10 a second: the outage always meets mail still to send (at 50/s the rest could be out before it)
        settings = settings_for(tmp_path, sink.url, SURVEYBOT_SEND_RATE="10")
        db = wave_of(settings, 60)
        async with running(settings) as (app, base):
            await wait_until(lambda: len(sink.received) >= 10, what="the first invitations")
            sink.stop()
            await asyncio.sleep(2)  # an outage: connections refused
            queued = db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0]
            assert queued > 0 and db.execute("SELECT count(*) FROM outbox WHERE state = 'failed'").fetchone()[0] == 0
            sink.start()
            await wait_until(lambda: len(per_address(sink)) == 60, timeout=30, what="the rest after the outage")
        assert max(per_address(sink).values()) == 1
    finally:
        sink.stop()

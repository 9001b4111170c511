"""The in-flight window, seen from the relay: when a connection hands over a message, every message it
delivered before is already written down as sent, so a crash at any moment can repeat at most one message
per connection. Checked at each end of DATA against the database file itself, at full speed."""

from __future__ import annotations

import sqlite3
from typing import Any

from surveybot import waves
from surveybot.clock import utcnow
from tests.mailsink import Handler, MailSink
from tests.service import import_rows, running, settings_for, wait_until
from tests.test_wave_delivery import make_wave

COUNT = 300


class WindowWatcher(Handler):
    """Before accepting a message, reads the outbox: what this connection delivered before must be sent."""

    def __init__(self, db_path: str) -> None:
        super().__init__()
        self.db_path = db_path
        self.delivered: dict[int, list[str]] = {}  # per connection, the recipients whose message it took
        self.unrecorded: list[tuple[str, str]] = []  # (earlier recipient, its state) at a later DATA
        self.checked = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        earlier = self.delivered.setdefault(id(session), [])
        if earlier:
            with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as conn:
                marks = ",".join("?" * len(earlier))
                states = conn.execute(
                    f"SELECT to_email, state FROM outbox WHERE kind = 'invitation' AND to_email IN ({marks})", earlier
                ).fetchall()
            conn.close()
            found = dict(states)
            self.unrecorded += [(address, found.get(address, "no outbox row")) for address in earlier]
            self.unrecorded = [(address, state) for address, state in self.unrecorded if state != "sent"]
            self.checked += 1
        answer: str = await super().handle_DATA(server, session, envelope)
        earlier += envelope.rcpt_tos
        return answer


async def test_each_connection_records_a_message_before_it_hands_over_the_next(tmp_path):
    sink = MailSink()
    settings = settings_for(tmp_path, sink.url, SURVEYBOT_SEND_CONCURRENCY="4", SURVEYBOT_SEND_RATE="100000")
    sink.handler = watcher = WindowWatcher(str(settings.db_path))
    sink.start()
    try:
        import_rows(
            settings, [f"Officer {i},officer{i}@city{i}.example.org,City {i},X,Europe,en" for i in range(COUNT)]
        )
        db = make_wave(settings, reminders=(), close=600)
        waves.launch(db, "w", utcnow())
        async with running(settings):
            await wait_until(lambda: len(sink.received) == COUNT, timeout=60, what="every invitation")
    finally:
        sink.stop()
    assert len(watcher.delivered) >= 2  # several connections took part
    assert watcher.checked >= COUNT - len(watcher.delivered)
    assert watcher.unrecorded == []

"""Remote ends that accept a connection and then say nothing: a mail relay that never greets, one that stops
answering in the middle of DATA, a platform API that never answers a fetch. ``SURVEYBOT_NETWORK_TIMEOUT``
bounds every wait; the work is tried again and all of it gets through once the other end works, nothing
twice beyond the messages a relay took without ever confirming (each sent again with the same Message-ID)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlite_utils import Database

from surveybot import waves
from surveybot.config import Settings
from surveybot.db import open_db
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from tests import fake_platforms
from tests.mailsink import Handler, MailSink, free_port
from tests.service import (
    import_rows,
    qualtrics_notification,
    qualtrics_wave,
    running,
    settings_for,
    signed_wave,
    wait_until,
)

COUNT = 12


class SilentRelay:
    """Accepts SMTP connections and never sends a byte (not even the greeting)."""

    def __init__(self, port: int) -> None:
        self.port, self.connections = port, 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        while await reader.read(1024):  # listen, answer nothing, until the client hangs up
            pass
        writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


class StallingHandler(Handler):
    """Takes the message, then never answers the end of DATA, the first ``stalls`` times."""

    def __init__(self, stalls: int) -> None:
        super().__init__()
        self.stalls = stalls

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await super().handle_DATA(server, session, envelope)  # type: ignore[no-untyped-call]
        if self.stalls > 0:
            self.stalls -= 1
            await asyncio.sleep(4)  # far past the client's timeout: it has hung up meanwhile
            return "451 4.3.0 too late"
        return answer


async def test_a_relay_that_never_greets_then_stalls_mid_data_gets_everything_once_it_works(tmp_path: Path) -> None:
    port = free_port()
    silent = SilentRelay(port)
    await silent.start()
    settings = settings_for(
        tmp_path,
        f"smtp://127.0.0.1:{port}",
        SURVEYBOT_NETWORK_TIMEOUT="1s",
        SURVEYBOT_SEND_CONCURRENCY="2",
        SURVEYBOT_MAX_ATTEMPTS="30",
    )
    import_rows(settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,LatAm,es" for n in range(COUNT)])
    db = open_db(settings.db_path)
    signed_wave(db, reminders=(), close_after=timedelta(hours=1))
    sink = MailSink(port)
    sink.handler = StallingHandler(stalls=2)
    try:
        async with running(settings):
            # each try gives up after the timeout, and the message waits for the next one (never failed)
            await wait_until(lambda: silent.connections >= 4, timeout=15, what="several timed-out tries")
            rows = db.execute("SELECT state, last_error FROM outbox").fetchall()
            assert {state for state, _ in rows} <= {"queued", "sending"} and any("imed out" in e for _, e in rows)
            await silent.stop()
            await asyncio.to_thread(sink.start)
            await wait_until(lambda: len(per_address(sink)) == COUNT, timeout=40, what="every invitation")
            await wait_until(
                lambda: db.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0,
                timeout=15,
                what="every message recorded as sent",
            )
    finally:
        await asyncio.to_thread(sink.stop)
    counts = per_address(sink)
    assert sink.handler.stalls == 0 and len(sink.received) == COUNT + 2 and max(counts.values()) == 2
    # the two a relay took without confirming went again as the same message (one identity, one Message-ID)
    for address in (a for a, n in counts.items() if n == 2):
        assert len({r.message["Message-ID"] for r in sink.to(address)}) == 1


def per_address(sink: MailSink) -> Counter[str]:
    return Counter(address for received in sink.received for address in received.rcpt_tos)


@pytest.fixture
async def qualtrics(
    tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[tuple[fake_platforms.FakePlatform, Settings, Database]]:
    fake = fake_platforms.FakePlatform()
    fake.retry_after = "1"
    runner = await fake_platforms.start(fake)
    settings = settings_for(
        tmp_path,
        mail_sink.url,
        **fake.qualtrics_settings(),
        SURVEYBOT_NETWORK_TIMEOUT="1s",
    )
    import_rows(settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,LatAm,es" for n in range(3)])
    db = open_db(settings.db_path)
    qualtrics_wave(db)
    try:
        yield fake, settings, db
    finally:
        await runner.cleanup()


async def test_a_platform_api_that_errs_limits_or_never_answers_loses_no_complete(
    qualtrics: tuple[fake_platforms.FakePlatform, Settings, Database], mail_sink: MailSink
) -> None:
    fake, settings, db = qualtrics
    secret = service_secret(db, None)
    wave = waves.get_wave(db, "city")
    scripted = {"R_hang": [fake_platforms.HANG], "R_500": [500], "R_429": [429]}
    for (response_id, failures), (contact,) in zip(scripted.items(), db.execute("SELECT id FROM contacts")):
        fake.add_qualtrics(
            response_id, finished=True, token=survey_token(secret, wave["id"], contact), answers={"Q1": 1}
        )
        fake.failures[response_id] = list(failures)
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 3, what="the invitations")
        for response_id in scripted:
            async with session.post(
                webhook_url(base, secret, wave), data=qualtrics_notification(response_id)
            ) as answer:
                assert answer.status == 200
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM responses").fetchone()[0] == 3, timeout=20, what="every complete"
        )
        await wait_until(lambda: len(mail_sink.received) == 6, what="a thank-you each")
    assert all(not failures for failures in fake.failures.values())  # every scripted failure was met
    assert db.execute("SELECT count(DISTINCT response_id), count(*) FROM responses").fetchone() == (3, 3)
    assert db.execute("SELECT count(*) FROM recipients WHERE completed_at IS NOT NULL").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM webhook_inbox WHERE state != 'done'").fetchone()[0] == 0

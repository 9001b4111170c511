"""The database's disk full, or the database read-only, while a wave is going out and responses arrive.

SQLite itself refuses the service's writes: ``PRAGMA max_page_count`` on the service's own connection (the
limit is per connection) with the free pages used up gives SQLITE_FULL exactly as a full disk does, and
``PRAGMA query_only`` gives SQLITE_READONLY as a read-only file does (tests may run as root, which file modes
do not stop). The service says so in one log line, ``/healthz`` answers 503 naming it, webhooks are answered
503 with ``Retry-After`` (the platform sends them again), sending stops; once the disk has room everything
resumes, nothing accepted is lost and nothing is sent twice."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlite_utils import Database

from surveybot import waves
from surveybot.db import open_db
from surveybot.platforms import signed
from surveybot.platforms.urls import webhook_signing_secret, webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from surveybot.web.keys import DB
from tests.mailsink import MailSink
from tests.service import import_rows, running, settings_for, signed_wave, wait_until

COUNT = 30
LONG_ANSWER = "Twinning with a sister city, and a great deal more to say. " * 100  # needs pages of its own


def fill_up(conn: sqlite3.Connection) -> None:
    """Cap the file at its present size and use up its free pages: the next write that needs a page fails."""
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    for size in (4000, 500, 50):
        try:
            while True:
                conn.execute("INSERT INTO filler VALUES (zeroblob(?))", [size])
                conn.commit()
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
            conn.rollback()


def make_room(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


def make_read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = ON")


def make_writable(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = OFF")


def webhook(db: Database, base: str, email: str, number: int) -> tuple[str, bytes, dict[str, str]]:
    secret = service_secret(db, None)
    wave = waves.get_wave(db, "w")
    contact = db.execute("SELECT id FROM contacts WHERE email = ?", [email]).fetchone()[0]
    body = json.dumps(
        {
            "type": "response.completed",
            "data": {
                "response_id": f"resp-{number}",
                "token": survey_token(secret, wave["id"], contact),
                "progress": 100,
                "answers": {"q1": LONG_ANSWER, "q2": str(number)},
                "embedded": {},
            },
        }
    ).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": f"msg_{number}_{time.monotonic_ns()}",
        "webhook-timestamp": str(stamp),
        "webhook-signature": "",
    }
    whsec = signed.whsec(webhook_signing_secret(secret, wave))
    headers["webhook-signature"] = signed.sign(whsec, headers["webhook-id"], stamp, body)
    return webhook_url(base, secret, wave), body, headers


async def post(session: aiohttp.ClientSession, request: tuple[str, bytes, dict[str, str]]) -> aiohttp.ClientResponse:
    url, body, headers = request
    async with session.post(url, data=body, headers=headers) as answer:
        await answer.read()
        return answer


@pytest.mark.parametrize(
    ("break_it", "repair", "named"),
    [(fill_up, make_room, "full"), (make_read_only, make_writable, "read-only")],
    ids=["disk-full", "read-only"],
)
async def test_a_full_or_read_only_database_stops_work_cleanly_and_loses_nothing(
    tmp_path: Path,
    mail_sink: MailSink,
    caplog: pytest.LogCaptureFixture,
    break_it: Callable[[sqlite3.Connection], None],
    repair: Callable[[sqlite3.Connection], None],
    named: str,
) -> None:
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="15")
    import_rows(settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,LatAm,es" for n in range(COUNT)])
    db = open_db(settings.db_path)
    db.execute("CREATE TABLE filler (b BLOB)")
    signed_wave(db, reminders=(), close_after=timedelta(hours=1))
    caplog.set_level(logging.WARNING)
    async with running(settings) as (app, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) >= 5, what="the first invitations")
        invited = [r.rcpt_tos[0] for r in mail_sink.received[:5]]
        assert (await post(session, webhook(db, base, invited[0], 0))).status == 200  # accepted before

        broken_at = len(caplog.records)
        break_it(app[DB].conn)
        refused = [webhook(db, base, email, n) for n, email in enumerate(invited[1:], 1)]
        for request in refused:
            answer = await post(session, request)
            assert answer.status == 503 and int(answer.headers["Retry-After"]) > 0, answer.status
        async with session.get(f"{base}/healthz") as answer:
            report = await answer.json()
            assert answer.status == 503 and named in report["checks"]["database"], report
        await asyncio.sleep(1)  # sending stops: what was handed to a connection may finish, nothing more
        so_far = len(mail_sink.received)
        await asyncio.sleep(2)
        assert len(mail_sink.received) <= so_far + 1 < COUNT + 1
        said = [r for r in caplog.records[broken_at:] if r.levelno >= logging.WARNING]
        assert [r.name for r in said if "cannot be written" in r.getMessage()] == ["surveybot.db"]
        assert named in said[0].getMessage() and not [r for r in said if r.exc_info], [r.getMessage() for r in said]

        repair(app[DB].conn)
        for request in refused:  # the platform sends them again after Retry-After
            assert (await post(session, request)).status == 200
        await wait_until(lambda: len(mail_sink.received) == COUNT + 5, timeout=30, what="every invitation, thanks")
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0,
            what="every message recorded as sent",
        )
        assert await healthy_again(session, base, timeout=15)

    per_address = Counter(address for received in mail_sink.received for address in received.rcpt_tos)
    assert len(per_address) == COUNT and sum(per_address.values()) == COUNT + 5
    assert all(per_address[email] == 2 for email in invited)  # an invitation and a thank-you, each once
    stored = db.execute("SELECT answers FROM responses ORDER BY response_id").fetchall()
    assert len(stored) == 5 and all(LONG_ANSWER in row[0] for row in stored)


async def healthy_again(session: aiohttp.ClientSession, base: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{base}/healthz") as answer:
            if answer.status == 200:
                return True
        await asyncio.sleep(0.5)
    return False

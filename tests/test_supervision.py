"""Background work that cannot die silently: a locked database, a message that breaks, pause and close from
another process, and a /healthz that tells the truth."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import aiohttp
import pytest

from surveybot import waves
from surveybot.clock import utcnow
from surveybot.db import open_db
from surveybot.platforms.urls import webhook_url
from surveybot.recipients import survey_token
from surveybot.signing import service_secret
from surveybot.suppressions import unsubscribe_token
from tests.service import import_rows, running, settings_for, signed_delivery, signed_wave, wait_until

pytestmark = pytest.mark.faults  # a fault test that lives beside its feature: -m faults runs it too

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def officers(count: int) -> list[str]:
    return [
        f"Officer {n},officer{n}@city{n}.example.org,City {n},Country {n % 9},Region {n % 3},en" for n in range(count)
    ]


def make_wave(settings, count: int, slug: str = "w"):
    import_rows(settings, officers(count))
    db = open_db(settings.db_path)
    signed_wave(db, slug, reminders=(), close_after=timedelta(hours=2), launch=False)
    return db


def invitations_per_address(sink) -> Counter:
    return Counter(address for received in sink.received for address in received.rcpt_tos)


async def health(session, base) -> tuple[int, dict]:
    async with session.get(f"{base}/healthz") as answer:
        return answer.status, await answer.json()


async def test_a_write_lock_held_by_another_process_for_32_s_loses_nothing(tmp_path, mail_sink):
    """Longer than the old 30 s busy timeout: sending and webhooks wait, /healthz says 503 meanwhile, and once
    the lock is gone every message and every response arrives, none twice."""
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="40")
    db = make_wave(settings, 240)
    waves.launch(db, "w", utcnow())
    secret = service_secret(db, None)
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) >= 20, what="the first invitations")
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(settings.db_path), "32"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert locker.stdout.readline().strip() == "locked"
            # what was claimed before the lock may still go out; nothing more can be claimed until it is gone
            claimed = db.execute("SELECT count(*) FROM outbox WHERE state IN ('sent', 'sending')").fetchone()[0]
            wave = waves.get_wave(db, "w")
            ids = dict(db.execute("SELECT email, id FROM contacts").fetchall())
            answers: list[int] = []

            invited = [r.rcpt_tos[0] for r in mail_sink.received[:10]]  # respondents who have their link

            async def deliver(number: int) -> None:
                """A platform's delivery: sent again after every 503 until it is taken."""
                email = invited[number]
                token = survey_token(secret, wave["id"], ids[email])
                while True:
                    stamp = int(time.time())
                    body, headers = signed_delivery(
                        secret, wave, token, f"resp-{number}", message_id=f"msg_{number}_{stamp}"
                    )
                    async with session.post(webhook_url(base, secret, wave), data=body, headers=headers) as answer:
                        answers.append(answer.status)
                        if answer.status == 200:
                            return
                        assert answer.status == 503 and answer.headers["Retry-After"]
                    await asyncio.sleep(1)

            deliveries = [asyncio.create_task(deliver(n)) for n in range(10)]
            # meanwhile /healthz says what is wrong, and the service still answers quickly
            started = time.monotonic()
            status, report = await health(session, base)
            assert time.monotonic() - started < 2
            assert status == 503 and report["checks"]["database"].startswith("not writable"), report
            # any other write meets the lock too: a clear 503 to try again, not a 500 after 30 s
            leaver = mail_sink.received[15].rcpt_tos[0]
            one_click = f"{base}/unsubscribe/{unsubscribe_token(secret, ids[leaver], wave['id'])}"
            started = time.monotonic()
            async with session.post(one_click, data=b"List-Unsubscribe=One-Click") as answer:
                assert answer.status == 503 and answer.headers["Retry-After"], answer.status
                assert "busy" in (await answer.json())["error"]
            assert time.monotonic() - started < 2
            await asyncio.sleep(3)
            assert len(mail_sink.received) <= claimed < 240
            assert await asyncio.to_thread(locker.wait, 60) == 0  # the service shares this event loop
            await asyncio.wait_for(asyncio.gather(*deliveries), timeout=30)
            async with session.post(one_click, data=b"List-Unsubscribe=One-Click") as answer:
                assert answer.status == 200, await answer.text()
        finally:
            locker.kill()
            locker.wait()
            locker.stdout.close()
        await wait_until(lambda: len(mail_sink.received) >= 240 + 10, timeout=40, what="every invitation and thanks")
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0,
            what="every message recorded as sent",
        )
        assert (await health(session, base))[0] == 200
    assert 503 in answers  # some deliveries really met the lock
    per_address = invitations_per_address(mail_sink)
    assert len(per_address) == 240 and max(per_address.values()) <= 2  # an invitation, and a thank-you for 10
    assert sum(per_address.values()) == 250
    assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 10
    assert db.execute("SELECT count(*) FROM recipients WHERE completed_at IS NOT NULL").fetchone()[0] == 10
    assert db.execute("SELECT count(*) FROM suppressions WHERE email = ?", [leaver]).fetchone()[0] == 1


async def test_a_message_that_breaks_fails_alone_and_the_dispatcher_lives_on(tmp_path, mail_sink):
    """A coordinator's template that divides by zero for one contact: that message fails with the reason and
    a traceback in the log; everyone else is mailed and /healthz stays 200."""
    overrides = tmp_path / "templates"
    overrides.mkdir()
    builtin = settings_for(tmp_path, mail_sink.url).db_path.parent  # noqa: F841 - the folder exists
    from surveybot.mail.render import BUILTIN

    text = (BUILTIN / "invitation.en.txt.j2").read_text(encoding="utf-8")
    (overrides / "invitation.en.txt.j2").write_text(
        text + '{{ (1 / 0) if name == "Officer 3" else "" }}\n', encoding="utf-8"
    )
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_TEMPLATES=str(overrides))
    db = make_wave(settings, 8)
    waves.launch(db, "w", utcnow())
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(lambda: len(mail_sink.received) == 7, what="seven invitations")
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE state = 'failed'").fetchone()[0] == 1,
            what="the broken message failed",
        )
        assert (await health(session, base))[0] == 200
    state, error = db.execute(
        "SELECT state, last_error FROM outbox WHERE to_email = 'officer3@city3.example.org'"
    ).fetchone()
    assert state == "failed" and "ZeroDivisionError" in error
    assert "officer3@city3.example.org" not in invitations_per_address(mail_sink)


async def test_pause_and_close_from_another_process_stop_messages_already_claimed(tmp_path, mail_sink, run_cli):
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="20")
    db = make_wave(settings, 200)
    waves.launch(db, "w", utcnow())
    env = {"SURVEYBOT_DB": str(settings.db_path)}
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) >= 10, what="the first invitations")
        # the first batch claimed 128 messages; pausing must hold the rest of them
        assert (await asyncio.to_thread(run_cli, "wave", "pause", "w", extra_env=env)).returncode == 0
        at_pause = len(mail_sink.received)
        await asyncio.sleep(2)  # at 20 a second, 40 more would go out if the pause were not seen
        assert len(mail_sink.received) <= at_pause + 4  # at most one in flight per connection
        held = len(mail_sink.received)
        assert (await asyncio.to_thread(run_cli, "wave", "resume", "w", extra_env=env)).returncode == 0
        await wait_until(lambda: len(mail_sink.received) >= held + 10, what="sending resumed")
        assert (await asyncio.to_thread(run_cli, "wave", "close", "w", extra_env=env)).returncode == 0
        at_close = len(mail_sink.received)
        await asyncio.sleep(2)
        assert len(mail_sink.received) <= at_close + 4
    closed = len(mail_sink.received)
    assert closed < 200 and max(invitations_per_address(mail_sink).values()) == 1
    cancelled = db.execute("SELECT count(*) FROM outbox WHERE state = 'cancelled'").fetchone()[0]
    assert cancelled == 200 - closed, db.execute(
        "SELECT state, last_error, count(*) FROM outbox GROUP BY 1, 2"
    ).fetchall()


async def test_a_loop_that_dies_is_restarted_with_backoff_and_reported(tmp_path, mail_sink, caplog):
    """Another process leaves the outbox refusing every claim (a trigger, as a maintenance tool might): the
    dispatcher's loop dies each time, is logged with the error, restarted, and /healthz says 503 naming it;
    once the outbox takes writes again every invitation goes out, once, and /healthz is 200 again."""
    settings = settings_for(tmp_path, mail_sink.url)
    db = make_wave(settings, 20)
    db.execute(
        "CREATE TRIGGER frozen BEFORE UPDATE OF state ON outbox WHEN NEW.state = 'sending' "
        "BEGIN SELECT RAISE(ABORT, 'outbox frozen for maintenance'); END"
    )
    db.conn.commit()
    waves.launch(db, "w", utcnow())
    async with running(settings) as (_, base), aiohttp.ClientSession() as session:
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 20, what="the invitations queued"
        )
        await wait_until(lambda: "restarting" in caplog.text, what="the dispatcher's failure logged")
        for _ in range(5):  # not only between restarts: the whole time it cannot work
            status, report = await health(session, base)
            assert status == 503 and "outbox frozen for maintenance" in report["checks"]["dispatcher"], report
            assert report["queued"] == 20 and report["sending"] == 0
            await asyncio.sleep(0.3)
        db.execute("DROP TRIGGER frozen")
        db.conn.commit()
        await wait_until(lambda: len(mail_sink.received) == 20, timeout=20, what="every invitation")
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0] == 20,
            what="every invitation recorded",
        )
        deadline = time.monotonic() + 15
        while (await health(session, base))[0] != 200:
            assert time.monotonic() < deadline, "healthz did not recover"
            await asyncio.sleep(0.2)
    failures = [r for r in caplog.records if r.name == "surveybot.supervise" and r.exc_info]
    assert failures and "outbox frozen for maintenance" in str(failures[0].exc_info[1])
    assert max(invitations_per_address(mail_sink).values()) == 1


async def test_stopping_while_another_process_holds_the_lock_keeps_what_was_sent(tmp_path, mail_sink):
    """The service is stopped while another process holds the write lock: the outcomes of messages already
    sent wait for the lock and are written, so the next start sends none of them again."""
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="20")
    db = make_wave(settings, 60)
    waves.launch(db, "w", utcnow())
    locker = None
    try:
        async with running(settings):
            await wait_until(lambda: len(mail_sink.received) >= 10, what="the first invitations")
            locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(settings.db_path), "4"], stdout=subprocess.PIPE, text=True
            )
            assert await asyncio.to_thread(locker.stdout.readline) == "locked\n"
            await asyncio.sleep(0.5)  # a few more go out meanwhile; then the service is asked to stop
        assert await asyncio.to_thread(locker.wait, 30) == 0
    finally:
        if locker is not None:
            locker.kill()
            locker.wait()
            locker.stdout.close()
    first_run = len(mail_sink.received)
    assert db.execute("SELECT count(*) FROM outbox WHERE state = 'sending'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0] == first_run
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 60, what="the rest of the wave")
    assert len(invitations_per_address(mail_sink)) == 60 and max(invitations_per_address(mail_sink).values()) == 1

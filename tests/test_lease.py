"""One ``serve`` per database: a second one is refused, a crashed one's lease is taken over, nothing twice."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest

from surveybot import plan
from surveybot.clock import iso, utcnow
from surveybot.db import open_db
from surveybot.signing import service_secret
from tests.mailsink import free_port
from tests.service import import_rows, running, settings_for, signed_wave, wait_until

pytestmark = pytest.mark.faults  # a fault test that lives beside its feature: -m faults runs it too


def wave_with_queued_mail(settings, count: int = 30):
    import_rows(
        settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,Latin America,es" for n in range(count)]
    )
    db = open_db(settings.db_path)
    signed_wave(db, reminders=())
    plan.run_due(db, service_secret(db, None), utcnow())
    return db


def old_holder(db, *, host: str, pid: int, seen_ago: timedelta, sending: int) -> None:
    """What a serve that died mid-batch leaves: its lease, and messages claimed but never recorded."""
    seen = iso(utcnow() - seen_ago)
    db.execute(
        "INSERT INTO service_lease (name, holder, pid, host, started_at, heartbeat_at) "
        "VALUES ('serve', 'old', ?, ?, ?, ?)",
        [pid, host, seen, seen],
    )
    db.execute(
        "UPDATE outbox SET state = 'sending', attempts = 1 WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
        [sending],
    )
    db.conn.commit()


def holder(db) -> dict | None:
    return next(db.query("SELECT * FROM service_lease"), None)


def per_address(sink) -> Counter:
    return Counter(address for received in sink.received for address in received.rcpt_tos)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def second_serve(settings, mail_url: str, tmp_path) -> subprocess.CompletedProcess:
    """``surveybot serve`` as an operator (or a supervisor restarting it) would start it. A serve that starts
    instead of being refused is stopped after 20 s and the test fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_"))}
    env.update(SURVEYBOT_DB=str(settings.db_path), SURVEYBOT_MAIL_URL=mail_url)
    try:
        return subprocess.run(
            [sys.executable, "-m", "surveybot", "serve", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a second serve started on a database another serve is using")


async def test_a_second_serve_on_the_same_database_is_refused_naming_the_holder(tmp_path, mail_sink):
    """Started while the first one is half-way through a wave: refused in one line naming the first one, and
    not one message of the batch the first one is sending goes out twice."""
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="40")
    db = wave_with_queued_mail(settings, 150)
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) >= 10, what="the first invitations")
        assert db.execute("SELECT count(*) FROM outbox WHERE state = 'sending'").fetchone()[0] > 0
        second = await asyncio.to_thread(second_serve, settings, mail_sink.url, tmp_path)
        assert second.returncode == 1, second.stderr
        line = second.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line, line
        assert "running on this database" in line and f"pid {os.getpid()} on {socket.gethostname()}" in line
        assert "since" in line
        await wait_until(lambda: len(mail_sink.received) >= 150, timeout=20, what="the whole wave")
        assert holder(db)["pid"] == os.getpid()
    assert len(per_address(mail_sink)) == 150 and max(per_address(mail_sink).values()) == 1
    assert db.execute("SELECT count(*) FROM outbox WHERE recovered = 1").fetchone()[0] == 0
    # a graceful stop gives the lease back: the next start needs no waiting
    assert holder(db) is None


@pytest.mark.parametrize(
    "host, seen_ago, why",
    [
        ("another-machine", timedelta(minutes=2), "stopped beating over a minute ago"),
        ("this-machine", timedelta(seconds=5), "its process is gone from this host"),
    ],
)
async def test_a_crashed_holders_lease_is_taken_over_and_its_batch_recovered_once(
    tmp_path, mail_sink, host, seen_ago, why
):
    settings = settings_for(tmp_path, mail_sink.url)
    db = wave_with_queued_mail(settings)
    old_holder(
        db, host=socket.gethostname() if host == "this-machine" else host, pid=dead_pid(), seen_ago=seen_ago, sending=8
    )
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) == 30, what=f"every invitation ({why})")
        taken = holder(db)
        assert taken["pid"] == os.getpid() and taken["holder"] != "old"
    assert max(per_address(mail_sink).values()) == 1 and len(per_address(mail_sink)) == 30
    assert db.execute("SELECT count(*) FROM outbox WHERE recovered = 1").fetchone()[0] == 8


async def test_a_live_holder_elsewhere_keeps_the_lease_and_its_batch(tmp_path, mail_sink):
    """A serve on another machine that beat 5 s ago is alive as far as anyone here can tell: this one does not
    start, and does not touch the messages that one is sending."""
    settings = settings_for(tmp_path, mail_sink.url)
    db = wave_with_queued_mail(settings)
    old_holder(db, host="another-machine", pid=4242, seen_ago=timedelta(seconds=5), sending=8)
    refused = second_serve(settings, mail_sink.url, tmp_path)
    assert refused.returncode == 1 and "pid 4242 on another-machine" in refused.stderr, refused.stderr
    assert db.execute("SELECT count(*) FROM outbox WHERE state = 'sending'").fetchone()[0] == 8
    assert mail_sink.received == [] and holder(db)["holder"] == "old"

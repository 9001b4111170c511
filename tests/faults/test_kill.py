"""``surveybot serve`` killed with SIGKILL three times in the middle of a 2,000-contact wave: nothing is lost,
and what is sent twice stays within the in-flight window (one message per SMTP connection per kill), with
the same Message-ID on both copies, so mail clients show it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

from surveybot.db import open_db
from tests.mailsink import free_port
from tests.service import import_rows, settings_for, signed_wave

CONNECTIONS = 4
CONTACTS = 2000


def serve_process(tmp_path, port: int, **settings: str) -> subprocess.Popen:
    """``surveybot serve`` as its own process on the database in ``tmp_path``, with these settings only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_"))}
    env.update({"SURVEYBOT_DB": str(tmp_path / "surveybot.db"), **settings})
    return subprocess.Popen(
        [sys.executable, "-m", "surveybot", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_serve(tmp_path, sink, port: int) -> subprocess.Popen:
    return serve_process(
        tmp_path,
        port,
        SURVEYBOT_MAIL_URL=sink.url,
        SURVEYBOT_SEND_RATE="300",
        SURVEYBOT_SEND_CONCURRENCY=str(CONNECTIONS),
        SURVEYBOT_FROM="City Diplomacy Lab <lab@example.org>",
        SURVEYBOT_SECRET="s" * 32,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_kills_lose_nothing_and_resend_at_most_one_message_per_connection(tmp_path, mail_sink):
    settings = settings_for(tmp_path, mail_sink.url)
    import_rows(
        settings,
        [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,Latin America,es" for n in range(CONTACTS)],
    )
    db = open_db(settings.db_path)
    signed_wave(db, reminders=())
    db.close()
    port = free_port()
    for kill_at in (300, 900, 1500):
        serve = start_serve(tmp_path, mail_sink, port)
        try:
            wait_for(lambda n=kill_at: len(mail_sink.received) >= n, 60, f"{kill_at} messages")
        finally:
            serve.send_signal(signal.SIGKILL)
            serve.wait()
    serve = start_serve(tmp_path, mail_sink, port)
    try:

        def settled() -> bool:
            check = open_db(settings.db_path, migrate=False)
            try:
                return check.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0
            finally:
                check.close()

        wait_for(settled, 90, "every message recorded as sent")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)

    copies: dict[str, list[str]] = defaultdict(list)
    for received in mail_sink.received:
        copies[received.rcpt_tos[0]].append(str(received.message["Message-ID"]))
    assert len(copies) == CONTACTS  # nothing lost
    twice = {address: ids for address, ids in copies.items() if len(ids) > 1}
    assert all(len(ids) == 2 for ids in twice.values())
    assert len(twice) <= 3 * CONNECTIONS, f"{len(twice)} sent twice over 3 kills"
    assert all(ids[0] == ids[1] for ids in twice.values())  # the same message, not a new one
    db = open_db(settings.db_path)
    assert db.execute("SELECT count(*) FROM outbox WHERE recovered = 1 AND state = 'sent'").fetchone()[0] >= len(twice)
    print(f"sent twice over 3 kills: {len(twice)} (bound {3 * CONNECTIONS})")

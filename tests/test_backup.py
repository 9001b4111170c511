"""``surveybot backup``: a consistent copy taken while the service sends, restored and resumed."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections import defaultdict

from surveybot import waves
from surveybot.db import open_db
from surveybot.reports import wave_status
from surveybot.signing import service_secret
from tests.service import import_rows, running, settings_for, signed_wave, wait_until


async def test_a_backup_taken_mid_wave_restores_and_resumes_without_resending_what_it_records(
    tmp_path, mail_sink, run_cli
):
    settings = settings_for(tmp_path, mail_sink.url, SURVEYBOT_SEND_RATE="60", SURVEYBOT_SECRET="k" * 32)
    import_rows(
        settings, [f"Officer {n},officer{n}@city{n}.example.org,City {n},Chile,Latin America,es" for n in range(200)]
    )
    db = open_db(settings.db_path)
    signed_wave(db, reminders=())
    db.close()
    env = {"SURVEYBOT_DB": str(settings.db_path)}
    copy = tmp_path / "backup" / "wave.db"
    copy.parent.mkdir()
    async with running(settings):
        await wait_until(lambda: len(mail_sink.received) >= 40, what="the first invitations")
        made = await asyncio.to_thread(run_cli, "backup", str(copy), "--json", extra_env=env)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["waves"] == 1
        await wait_until(lambda: len(mail_sink.received) >= 120, what="more invitations after the backup")
    before_restore = len(mail_sink.received)

    check = sqlite3.connect(copy)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    recorded_sent = {email for (email,) in check.execute("SELECT to_email FROM outbox WHERE state = 'sent'")}
    assert check.execute("SELECT count(*) FROM service_lease").fetchone()[0] == 0  # the lease is not carried over
    check.close()
    assert 40 <= len(recorded_sent) < before_restore

    # the laptop died: the backup comes back in place of the database, and the service starts on it
    for leftover in ("surveybot.db", "surveybot.db-wal", "surveybot.db-shm"):
        (tmp_path / leftover).unlink(missing_ok=True)
    shutil.copy(copy, settings.db_path)
    async with running(settings):
        db = open_db(settings.db_path)
        await wait_until(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0] == 0,
            timeout=20,
            what="the rest of the wave",
        )
        status = wave_status(db, waves.get_wave(db, "w"), service_secret(db, settings.secret), settings.base_url)
    copies: dict[str, list[str]] = defaultdict(list)
    for received in mail_sink.received:
        copies[received.rcpt_tos[0]].append(str(received.message["Message-ID"]))
    assert len(copies) == 200  # nothing lost
    assert all(len(copies[email]) == 1 for email in recorded_sent)  # nothing the backup records as sent again
    twice = {email: ids for email, ids in copies.items() if len(ids) > 1}
    assert len(twice) == before_restore - len(recorded_sent)  # those sent after the backup went again …
    assert all(ids[0] == ids[1] for ids in twice.values())  # … as the same message
    assert status["resent_after_crash"] >= len(twice)  # … and are reported as such
    assert status["sent"] == 200


def test_backup_refuses_a_missing_database_and_a_folder(tmp_path, run_cli):
    missing = run_cli("backup", str(tmp_path / "b.db"))
    assert missing.returncode == 1 and "no database" in missing.stderr
    open_db(tmp_path / "surveybot.db").close()
    folder = run_cli("backup", str(tmp_path))
    assert folder.returncode != 0 and "is a directory" in folder.stderr
    itself = run_cli("backup", str(tmp_path / "surveybot.db"))
    assert itself.returncode == 1 and "itself" in itself.stderr

"""The service secret lives in a private file beside the database (or in SURVEYBOT_SECRET), never in the data
file: whoever can read ``surveybot.db`` (a backup, a browser of the file) cannot forge links with it."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp

from surveybot.db import open_db
from surveybot.suppressions import unsubscribe_token
from tests.service import import_rows, running, settings_for, wave_create_args

OLD_SECRET = "an-old-secret-kept-in-the-database-0123456789"
CONFIGURED = "a-configured-secret-from-the-settings-987654"


def meta_secret(db_path: Path) -> list[tuple]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'secret'").fetchall()
    finally:
        conn.close()


def database_bytes(db_path: Path) -> bytes:
    """The data file and its WAL, everything a copy of 'the database' would carry."""
    return b"".join(p.read_bytes() for p in (db_path, db_path.with_name(db_path.name + "-wal")) if p.exists())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def create_wave(run_cli) -> None:
    run_cli(*wave_create_args(title="City diplomacy", survey_id="SV_1"), check=True)


def webhook_url(run_cli, **extra_env: str) -> str:
    """A link signed with the service secret, as the CLI prints it."""
    result = run_cli("wave", "status", "w", "--json", extra_env=extra_env or None, check=True)
    return json.loads(result.stdout)["webhook_url"]


def test_generated_secret_is_a_private_file_and_not_in_the_database(run_cli, tmp_path):
    create_wave(run_cli)
    first = webhook_url(run_cli)
    secret_file = tmp_path / "surveybot.db.secret"
    assert secret_file.is_file(), "the generated secret is kept beside the database"
    assert mode(secret_file) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    assert meta_secret(tmp_path / "surveybot.db") == []
    assert secret.encode() not in database_bytes(tmp_path / "surveybot.db")
    # the next process reads the same secret: the links it prints are the same links
    assert webhook_url(run_cli) == first
    assert secret_file.read_text().strip() == secret


async def test_old_database_secret_moves_to_the_file_and_sent_links_still_work(tmp_path):
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}")
    import_rows(settings, ["Eve Euro,eve@lyon.example.org,Lyon,France,Europe,en"])
    db = open_db(settings.db_path)
    eve = db.execute("SELECT id FROM contacts WHERE email = 'eve@lyon.example.org'").fetchone()[0]
    # a database as an earlier version left it: the secret in meta, and links already e-mailed with it
    db.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", [OLD_SECRET])
    db.conn.commit()
    db.close()
    sent_link = unsubscribe_token(OLD_SECRET, eve, 0)
    forged = unsubscribe_token("some-other-secret-0123456789", eve, 0)

    for start in ("first start, which moves the secret", "second start, which reads the file"):
        async with running(settings) as (_app, base), aiohttp.ClientSession() as session:
            async with session.get(f"{base}/unsubscribe/{sent_link}") as page:
                assert page.status == 200, start
                assert "eve@lyon.example.org" in await page.text()
            async with session.get(f"{base}/unsubscribe/{forged}") as page:
                assert page.status == 404, start
        secret_file = tmp_path / "surveybot.db.secret"
        assert secret_file.read_text().strip() == OLD_SECRET, start
        assert mode(secret_file) == 0o600
        assert meta_secret(settings.db_path) == [], "the secret is deleted from the database once moved"
        assert OLD_SECRET.encode() not in database_bytes(settings.db_path)


def test_configured_secret_wins(run_cli, tmp_path):
    create_wave(run_cli)
    generated = webhook_url(run_cli)
    configured = webhook_url(run_cli, SURVEYBOT_SECRET=CONFIGURED)
    assert configured != generated
    assert webhook_url(run_cli, SURVEYBOT_SECRET=CONFIGURED) == configured
    assert webhook_url(run_cli) == generated  # the file is still there for when the setting is removed
    assert meta_secret(tmp_path / "surveybot.db") == []


def test_configured_secret_only_creates_no_file(run_cli, tmp_path):
    run_cli(
        *wave_create_args("w", survey_id="SV_1"),
        extra_env={"SURVEYBOT_SECRET": CONFIGURED},
        check=True,
    )
    webhook_url(run_cli, SURVEYBOT_SECRET=CONFIGURED)
    assert not (tmp_path / "surveybot.db.secret").exists()
    assert CONFIGURED.encode() not in database_bytes(tmp_path / "surveybot.db")


SECRET_OF = """
import sys
from surveybot.db import open_db
from surveybot.signing import service_secret
print(service_secret(open_db(sys.argv[1]), None))
"""


def test_processes_starting_together_agree_on_one_secret(tmp_path):
    db_path = tmp_path / "surveybot.db"
    open_db(db_path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SECRET_OF, str(db_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    secrets_seen = {out.strip() for out, _ in results}
    assert len(secrets_seen) == 1
    assert (tmp_path / "surveybot.db.secret").read_text().strip() == secrets_seen.pop()
    assert [p.name for p in tmp_path.iterdir() if ".secret." in p.name] == []  # no temporary files left


def test_loose_permissions_are_tightened(run_cli, tmp_path):
    create_wave(run_cli)
    first = webhook_url(run_cli)
    secret_file = tmp_path / "surveybot.db.secret"
    os.chmod(secret_file, 0o644)
    assert webhook_url(run_cli) == first
    assert mode(secret_file) == 0o600


def test_database_and_file_disagreeing_is_refused_in_one_line(run_cli, tmp_path):
    create_wave(run_cli)
    webhook_url(run_cli)  # creates the file
    conn = sqlite3.connect(tmp_path / "surveybot.db")
    conn.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", [OLD_SECRET])
    conn.commit()
    conn.close()
    result = run_cli("wave", "status", "w")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "surveybot.db.secret" in lines[0] and "move" in lines[0]
    assert OLD_SECRET not in result.stderr
    assert meta_secret(tmp_path / "surveybot.db") == [(OLD_SECRET,)]  # nothing lost: the links still have it
    (tmp_path / "surveybot.db.secret").rename(tmp_path / "aside")
    assert run_cli("wave", "status", "w").returncode == 0
    assert (tmp_path / "surveybot.db.secret").read_text().strip() == OLD_SECRET


def test_damaged_secret_file_is_named(run_cli, tmp_path):
    create_wave(run_cli)
    (tmp_path / "surveybot.db.secret").write_text("short\n")
    result = run_cli("wave", "status", "w")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        (
            f"Error: the secret file {tmp_path / 'surveybot.db.secret'} holds no usable secret (at least 16 "
            f"characters); restore it from a backup, or set SURVEYBOT_SECRET"
        )
    ]

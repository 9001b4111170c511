"""The SQLite file: WAL, numbered migrations that upgrade in place, refusing a newer schema."""

from __future__ import annotations

import sqlite3

import pytest

from surveybot import schema
from surveybot.db import open_db, schema_version
from surveybot.errors import DatabaseError


def test_new_database_is_wal_and_fully_migrated(tmp_path):
    db = open_db(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(db) == len(schema.MIGRATIONS)
    assert {"contacts", "uploads", "contact_sources", "suppressions"} <= set(db.table_names())


def test_old_database_upgrades_in_place_keeping_its_rows(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    db = open_db(path)
    db.execute("INSERT INTO suppressions (email, kind, created_at) VALUES ('a@example.org', 'manual', 'x')")
    db.close()
    extra = "CREATE TABLE later (id INTEGER PRIMARY KEY, note TEXT NOT NULL DEFAULT '');"
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    db = open_db(path)
    assert schema_version(db) == len(schema.MIGRATIONS)
    assert "later" in db.table_names()
    assert db.execute("SELECT email FROM suppressions").fetchall() == [("a@example.org",)]


def test_failed_migration_leaves_the_database_at_its_old_version(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    open_db(path).close()
    before = len(schema.MIGRATIONS)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, "CREATE TABLE ok (id INTEGER); SELECT nonsense("])
    with pytest.raises(sqlite3.OperationalError):
        open_db(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == before
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ok'").fetchone()[0] == 0


def test_database_newer_than_the_program_is_refused(tmp_path):
    path = tmp_path / "s.db"
    open_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="newer than this surveybot"):
        open_db(path)


def test_a_file_that_is_not_a_database_is_refused_cleanly(tmp_path, run_cli):
    (tmp_path / "surveybot.db").write_bytes(b"this is not sqlite" * 100)
    result = run_cli("contacts", "list")
    assert result.returncode == 1
    assert "cannot open database" in result.stderr and "Traceback" not in result.stderr


def test_a_wave_database_from_before_limesurvey_upgrades_with_every_row_and_reference(tmp_path, monkeypatch):
    """The upgrade that lets waves be on LimeSurvey rebuilds the waves table: nothing that refers to a wave may
    lose it (foreign keys stay on afterwards and still guard)."""
    path = tmp_path / "s.db"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:10])
    db = open_db(path)
    db.execute(
        "INSERT INTO waves (slug, title, platform, survey_id, survey_url, close_after, created_at, title_es, "
        "send_window, state) VALUES ('old', 'City diplomacy', 'signed', 'S1', 'https://s.example.org', 1209600, "
        "'2026-11-01T00:00:00+00:00', 'Diplomacia', '09:00-17:00', 'open')"
    )
    db.execute("INSERT INTO wave_steps (wave_id, kind, due_at) VALUES (1, 'close', '2026-11-15T00:00:00+00:00')")
    db.conn.commit()
    db.close()
    monkeypatch.undo()

    db = open_db(path)
    assert schema_version(db) == len(schema.MIGRATIONS)
    wave = db.execute("SELECT slug, title_es, send_window, state, intake, in_progress_timeout FROM waves").fetchone()
    assert wave == ("old", "Diplomacia", "09:00-17:00", "open", "webhook", 7 * 86400)
    assert db.execute("SELECT count(*) FROM wave_steps s JOIN waves w ON w.id = s.wave_id").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(sqlite3.IntegrityError):  # references are still enforced
        db.execute("INSERT INTO wave_steps (wave_id, kind, due_at) VALUES (99, 'close', 'x')")
    db.execute("UPDATE waves SET platform = 'limesurvey', intake = 'poll'")  # allowed now


def test_responses_from_before_they_were_kept_per_wave_upgrade_with_every_row(tmp_path, monkeypatch):
    """The upgrade that keeps a response per wave (LimeSurvey numbers each survey's responses from 1) rebuilds
    the webhook inbox, responses and partial audit tables: every row and column stays, and two waves may now
    each hold their response 1 while one wave still cannot hold it twice."""
    path = tmp_path / "s.db"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:11])
    db = open_db(path)
    for slug in ("a", "b"):
        db.execute(
            "INSERT INTO waves (slug, title, platform, survey_id, survey_url, close_after, created_at, state) "
            f"VALUES ('{slug}', 'T', 'limesurvey', '{slug}1', 'https://s.example.org', 1209600, 'x', 'open')"
        )
    db.execute("INSERT INTO contacts (email, created_at, updated_at) VALUES ('ana@x.example.org', 'x', 'x')")
    db.execute(
        "INSERT INTO responses (wave_id, platform, response_id, contact_id, status, answers, received_at) "
        "VALUES (1, 'limesurvey', '1', 1, 'complete', '{\"Q1\": \"Sí\"}', 'x')"
    )
    db.execute(
        "INSERT INTO partial_audit (wave_id, platform, response_id, progress, reason, received_at, contact_id) "
        "VALUES (1, 'limesurvey', '2', 40, 'not finished', 'x', 1)"
    )
    db.execute(
        "INSERT INTO webhook_inbox (wave_id, platform, survey_id, response_id, event, state, due_at, received_at) "
        "VALUES (1, 'signed', 'a1', '7', 'completed', 'failed', 'x', 'x')"
    )
    db.conn.commit()
    before = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in ("responses", "partial_audit", "webhook_inbox")}
    db.close()
    monkeypatch.undo()

    db = open_db(path)
    assert schema_version(db) == len(schema.MIGRATIONS)
    for table, rows in before.items():
        assert db.execute(f"SELECT * FROM {table}").fetchall() == rows, table
    db.execute(
        "INSERT INTO responses (wave_id, platform, response_id, status, received_at) "
        "VALUES (2, 'limesurvey', '1', 'unmatched', 'x')"
    )
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO responses (wave_id, platform, response_id, status, received_at) "
            "VALUES (1, 'limesurvey', '1', 'unmatched', 'x')"
        )
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []

"""The SQLite file: opening it (WAL, busy timeout), migrating it, and writing to it safely.

Several processes share one file (the CLI and ``surveybot serve``). Every write goes through
:func:`transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so two writers queue on the
busy timeout instead of failing with "database is locked" half-way through.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from surveybot.errors import DatabaseError
from surveybot import schema

BUSY_TIMEOUT_S = 30.0


def open_db(path: str | Path, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        db = Database(conn, execute_plugins=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot open database {str(path)!r}: {exc}") from None
    if migrate:
        migrate_db(db, path)
    return db


def schema_version(db: Database) -> int:
    return db.conn.execute("PRAGMA user_version").fetchone()[0]


def migrate_db(db: Database, path: str | Path = "") -> int:
    """Apply pending migrations, each with its version bump in one transaction. Returns the version."""
    target = len(schema.MIGRATIONS)
    with transaction(db):
        version = schema_version(db)
        if version > target:
            raise DatabaseError(
                f"database {str(path)!r} is at schema version {version}, newer than this surveybot "
                f"({target}); upgrade surveybot"
            )
        for number in range(version + 1, target + 1):
            db.executescript(schema.MIGRATIONS[number - 1])
            db.conn.execute(f"PRAGMA user_version = {number}")
    return target


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """A write transaction holding the write lock from the start; nested calls become savepoints."""
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def rolled_back(db: Database) -> Iterator[Database]:
    """Run writes that are always undone (a dry run): the same statements, nothing kept."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

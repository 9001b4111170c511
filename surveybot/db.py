"""The SQLite file: opening it (WAL, busy timeout), migrating it, and writing to it safely.

Several processes share one file (the CLI and ``surveybot serve``). Every write goes through
:func:`transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so two writers queue on the
busy timeout instead of failing with "database is locked" half-way through.

A write refused for lack of room or because the file is read-only (SQLITE_FULL, SQLITE_READONLY, an I/O
error) is said once in the log and remembered for a while (:func:`storage_problem`, :func:`unwritable`), so
``/healthz`` names it and callers answer "try again later" instead of failing each request with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from surveybot import schema
from surveybot.errors import DatabaseError

BUSY_TIMEOUT_S = 30.0
T = TypeVar("T")
log = logging.getLogger("surveybot.db")


# In ``serve`` the event loop never waits longer than this for another process's write lock; a write that
# does not get it is retried after an asynchronous pause (``retry_busy``), so the loop stays free.
SERVICE_BUSY_TIMEOUT_S = 0.02
# A write refused for want of room or permission keeps the database reported unwritable this long after the
# last such refusal (some writes — an update in place — may still pass while every insert fails).
STORAGE_HOLD_S = 5.0
_STORAGE_CODES = {
    sqlite3.SQLITE_FULL: "the disk (or the database's size limit) is full",
    sqlite3.SQLITE_READONLY: "the database file is read-only",
    sqlite3.SQLITE_IOERR: "the disk reported an I/O error",
    sqlite3.SQLITE_CANTOPEN: "the database's files cannot be opened for writing",
}
# id(connection) → (the connection, kept so its id is not reused; what is wrong; when last seen, monotonic)
_storage: dict[int, tuple[sqlite3.Connection, str, float]] = {}


def open_db(path: str | Path, *, migrate: bool = True, busy_timeout: float = BUSY_TIMEOUT_S) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    ``busy_timeout`` bounds how long a statement waits for another process's write lock; the service uses a
    short one and retries asynchronously (:func:`retry_busy`), so a long lock elsewhere never freezes it."""
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
        db = Database(conn, execute_plugins=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot open database {str(path)!r}: {exc}") from None
    if migrate:
        migrate_db(db, path)
    return db


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds the lock (try again later), not that something is broken."""
    return isinstance(exc, sqlite3.OperationalError) and any(word in str(exc).lower() for word in ("locked", "busy"))


async def retry_busy(
    write: Callable[[], T],
    *,
    what: str,
    stopping: Callable[[], bool] = lambda: False,
    on_wait: Callable[[bool], None] = lambda waiting: None,
    first: float = 0.05,
    longest: float = 2.0,
    patience: float | None = None,
) -> T:
    """Run ``write`` until the database lets it through, waiting with growing pauses (without blocking the
    event loop) while another process holds the write lock. ``on_wait(True)`` is called when it starts
    waiting and ``on_wait(False)`` once through, so health checks can say so. Gives up only when
    ``stopping()``, or after waiting ``patience`` seconds (raising the last error). Without ``patience`` a
    full or read-only database is waited for too (what was done is written once the disk has room, said
    once by the database layer); with it, that error is raised at once (the caller asks to try later)."""
    delay, waited, waited_for = first, False, 0.0
    while True:
        try:
            result = write()
        except sqlite3.OperationalError as exc:
            full = patience is None and storage_problem(exc) is not None
            if not (is_busy(exc) or full) or stopping():
                raise
            if patience is not None and waited_for >= patience:
                raise
            if not waited:
                if patience is None and not full:
                    log.warning("database busy (another process holds the write lock); %s waits", what)
                waited = True
                on_wait(True)
            await asyncio.sleep(delay)
            waited_for += delay
            delay = min(longest, delay * 2)
            continue
        if waited:
            if patience is None:
                log.info("database free again; %s goes on", what)
            on_wait(False)
        return result


def storage_problem(exc: BaseException) -> str | None:
    """What ``exc`` says is wrong with the storage (full, read-only, I/O), or None for anything else."""
    if not isinstance(exc, sqlite3.DatabaseError) or is_busy(exc):
        return None
    meaning = _STORAGE_CODES.get((getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF)
    return f"{meaning} ({exc})" if meaning else None


def _note_failure(conn: sqlite3.Connection, exc: BaseException) -> None:
    problem = storage_problem(exc)
    if problem is None:
        return
    known = _storage.get(id(conn))
    if known is None or known[1] != problem:
        # the one line that says it (callers answer 503 / wait without a traceback of their own)
        log.error("the database cannot be written: %s; sending and webhooks wait until it can", problem)
    _storage[id(conn)] = (conn, problem, time.monotonic())


def _note_success(conn: sqlite3.Connection, changed: bool) -> None:
    known = _storage.get(id(conn))
    if known is not None and changed and time.monotonic() - known[2] >= STORAGE_HOLD_S:
        del _storage[id(conn)]
        log.warning("the database can be written again")


def storage_trouble(db: Database) -> str | None:
    """What made a write fail for lack of room or permission less than ``STORAGE_HOLD_S`` ago, or None.
    The dispatcher sends nothing meanwhile: a message sent then might never be recorded as sent."""
    known = _storage.get(id(db.conn))
    return known[1] if known is not None and time.monotonic() - known[2] < STORAGE_HOLD_S else None


def schema_version(db: Database) -> int:
    return int(db.conn.execute("PRAGMA user_version").fetchone()[0])


def migrate_db(db: Database, path: str | Path = "") -> int:
    """Apply pending migrations, each with its version bump in one transaction. Returns the version."""
    target = len(schema.MIGRATIONS)
    if schema_version(db) == target:
        return target
    # A migration may rebuild a table (SQLite cannot change a CHECK in place): dropping the old table must not
    # cascade to the rows that reference it, so foreign keys are off while migrating (they can only be switched
    # outside a transaction) and checked as a whole before the migration commits.
    enforced = db.conn.execute("PRAGMA foreign_keys").fetchone()[0]
    db.conn.execute("PRAGMA foreign_keys = OFF")
    try:
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
            broken = db.conn.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise DatabaseError(f"database {str(path)!r}: migrating broke a reference ({broken[0]} → {broken[2]})")
    finally:
        db.conn.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")
    return target


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """A write transaction holding the write lock from the start; nested calls become savepoints."""
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:  # a read-only file refuses the lock itself
        _note_failure(conn, exc)
        raise
    before = conn.total_changes
    try:
        yield db
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _note_failure(conn, exc)
        raise
    _note_success(conn, conn.total_changes != before)


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


def unwritable(db: Database) -> str | None:
    """Why the write lock cannot be taken right now (another process holds it, the file is read-only …), or
    why writes were refused a moment ago (the disk is full), or None. Waits at most 50 ms; the lock is let go
    at once."""
    conn = db.conn
    if (trouble := storage_trouble(db)) is not None:
        return trouble
    if conn.in_transaction:  # this connection is writing: it holds the lock
        return None
    normal = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 50")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(normal)}")
    return None

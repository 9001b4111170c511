"""Signed-in sessions of the web pages, and single-use sign-in codes (tables ``web_sessions``, ``login_codes``).

A token typed once on ``/login`` becomes a session: a random id kept in a cookie, of which only the SHA-256
is stored, with its own CSRF token and language. A session ends when signed out, when its token is revoked,
after ``LIFETIME`` in all, or after ``IDLE`` without a request. A sign-in code (the link ``serve`` prints on
its first start) stands for a token for ``CODE_LIFETIME`` and opens one session, once; only its hash is kept.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from surveybot import tokens
from surveybot.clock import iso, parse_stored
from surveybot.db import is_busy, transaction
from surveybot.signing import token_hash

LIFETIME = timedelta(hours=12)
IDLE = timedelta(hours=2)
CODE_LIFETIME = timedelta(minutes=15)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often (the page polls)
FIRST_START_LABEL = "made by serve on its first start"
LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Session:
    id_hash: str
    token_id: int
    role: str
    network: str | None
    email: str | None
    csrf: str
    language: str
    expires_at: str


def start(db: Database, token_id: int, now: datetime, language: str = "") -> tuple[str, Session]:
    """A new session for the token; returns the session id (for the cookie, never stored) and the session."""
    session_id = secrets.token_urlsafe(32)
    with transaction(db):
        db.execute(
            "INSERT INTO web_sessions (id_hash, token_id, csrf, language, created_at, last_seen_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                token_hash(session_id),
                token_id,
                secrets.token_urlsafe(24),
                language if language in LANGUAGES else "",
                iso(now),
                iso(now),
                iso(now + LIFETIME),
            ],
        )
    found = find(db, session_id, now)
    assert found is not None
    return session_id, found


def find(db: Database, session_id: str, now: datetime) -> Session | None:
    """The live session with this id (its token not revoked, not expired, not idle too long), else None."""
    if not session_id or len(session_id) > 100:
        return None
    row = db.execute(
        """SELECT s.id_hash, s.token_id, t.role, t.network, t.email, s.csrf, s.language, s.expires_at,
                  s.last_seen_at
           FROM web_sessions s JOIN api_tokens t ON t.id = s.token_id
           WHERE s.id_hash = ? AND t.revoked_at IS NULL""",
        [token_hash(session_id)],
    ).fetchone()
    if row is None:
        return None
    *values, last_seen = row
    if parse_stored(values[7]) <= now or parse_stored(last_seen) + IDLE <= now:
        return None
    if parse_stored(last_seen) + TOUCH_EVERY <= now:
        try:
            with transaction(db):
                db.execute("UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?", [iso(now), values[0]])
        except sqlite3.OperationalError as exc:  # another process writes: the next request will note it
            if not is_busy(exc):
                raise
    return Session(*values)


def end(db: Database, session_id: str) -> None:
    with transaction(db):
        db.execute("DELETE FROM web_sessions WHERE id_hash = ?", [token_hash(session_id)])


def set_language(db: Database, session: Session, language: str) -> None:
    """Remember the language chosen (best effort: while another process writes, the page is shown in it
    anyway and the next choice is remembered)."""
    if language in LANGUAGES and language != session.language:
        try:
            with transaction(db):
                db.execute("UPDATE web_sessions SET language = ? WHERE id_hash = ?", [language, session.id_hash])
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise


def purge(db: Database, now: datetime) -> int:
    """Forget sessions past their lifetime or idle too long, and sign-in codes past theirs."""
    with transaction(db):
        gone = db.execute(
            "DELETE FROM web_sessions WHERE expires_at <= ? OR last_seen_at <= ?", [iso(now), iso(now - IDLE)]
        ).rowcount
        db.execute("DELETE FROM login_codes WHERE expires_at <= ?", [iso(now - timedelta(days=1))])
    return gone


def issue_code(db: Database, token_id: int, now: datetime) -> str:
    code = secrets.token_urlsafe(24)
    with transaction(db):
        db.execute(
            "INSERT INTO login_codes (code_hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [token_hash(code), token_id, iso(now), iso(now + CODE_LIFETIME)],
        )
    return code


def redeem_code(db: Database, code: str, now: datetime) -> int | None:
    """The token a sign-in code stands for, marking the code used; None when it is unknown, used, expired or
    its token revoked. Two tabs opening the same link race on one UPDATE: one wins."""
    if not code or len(code) > 100:
        return None
    with transaction(db):
        row = db.execute(
            """UPDATE login_codes SET used_at = ?
               WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?
                 AND token_id IN (SELECT id FROM api_tokens WHERE revoked_at IS NULL)
               RETURNING token_id""",
            [iso(now), token_hash(code), iso(now)],
        ).fetchall()
    return row[0][0] if row else None


def first_start_code(db: Database, now: datetime) -> str | None:
    """On a start with no coordinator token, make one and return a sign-in code for it (its value is never
    shown). A start whose first-start token has never been used to sign in gets a new code for it (the first
    one may have expired unused). Otherwise None."""
    with transaction(db):
        active = db.execute(
            "SELECT id, label FROM api_tokens WHERE role = 'coordinator' AND revoked_at IS NULL ORDER BY id"
        ).fetchall()
        if not active:
            token_id, _ = tokens.create(db, "coordinator", None, now, FIRST_START_LABEL)
        elif (
            len(active) == 1
            and active[0][1] == FIRST_START_LABEL
            and not db.execute(
                "SELECT 1 FROM login_codes WHERE token_id = ? AND used_at IS NOT NULL", [active[0][0]]
            ).fetchone()
        ):
            token_id = active[0][0]
        else:
            return None
        return issue_code(db, token_id, now)

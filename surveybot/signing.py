"""Unguessable tokens derived from the service's secret, checked in constant time.

A token is an HMAC of its purpose and the ids it stands for, so nothing secret needs storing to re-create
it (a reminder carries the same survey link as the invitation) and a forged or altered one never verifies.
Where a token is looked up rather than re-derived, only its SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlite_utils import Database

from surveybot.db import transaction


def service_secret(db: Database, configured: str | None) -> str:
    """``SURVEYBOT_SECRET`` if set, else the secret generated into the database on first use."""
    if configured:
        return configured
    row = db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()
    if row:
        return row[0]
    with transaction(db):
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)", [secrets.token_urlsafe(32)])
    return db.execute("SELECT value FROM meta WHERE key = 'secret'").fetchone()[0]


def derive(secret: str, purpose: str, *parts: object, length: int = 22) -> str:
    """A URL-safe token for ``purpose`` and ``parts`` (22 characters = 132 bits)."""
    message = "\x1f".join([purpose, *map(str, parts)]).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]


def matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def signed(secret: str, purpose: str, *parts: object) -> str:
    """``part.part.signature``: carries its ids, so it can be checked without a lookup."""
    body = ".".join(map(str, parts))
    return f"{body}.{derive(secret, purpose, *parts)}"


def unsigned(secret: str, purpose: str, token: str, count: int) -> list[str] | None:
    """The ``count`` parts of a :func:`signed` token, or ``None`` if it is malformed or forged."""
    pieces = token.split(".")
    if len(pieces) != count + 1 or not all(pieces):
        return None
    *parts, signature = pieces
    return parts if matches(derive(secret, purpose, *parts), signature) else None

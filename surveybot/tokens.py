"""API tokens for people: coordinators, partner networks (bound to their network) and researchers.

A token is shown once, when created; only its SHA-256 is stored. Checking one looks up that hash and
compares it in constant time; a revoked token is refused like an unknown one. A researcher's token may name
the researcher's e-mail: it then shows only the interviews of slots that address holds.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.clock import iso
from surveybot.db import transaction
from surveybot.errors import InvalidInput, NotFound
from surveybot.signing import token_hash

ROLES = ("coordinator", "network", "researcher")
PREFIX = "sbt_"


def create(
    db: Database, role: str, network: str | None, now: datetime, label: str = "", email: str | None = None
) -> tuple[int, str]:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if (role == "network") != bool(network):
        raise InvalidInput("a network token needs --network, and only a network token takes one", field="network")
    if email is not None:
        if role != "researcher":
            raise InvalidInput("only a researcher's token takes --email", field="email")
        try:
            email = normalise_email(email, allow_local_domain=True)
        except InvalidAddress as exc:
            raise InvalidInput(f"--email {email!r}: {exc}", field="email") from None
    token = PREFIX + secrets.token_urlsafe(32)
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO api_tokens (role, network, token_hash, label, created_at, email) VALUES (?, ?, ?, ?, ?, ?)",
            [role, network, token_hash(token), label, iso(now), email],
        )
    assert cursor.lastrowid is not None  # an INSERT always gives one
    return cursor.lastrowid, token


def check(db: Database, token: str) -> dict[str, Any] | None:
    """The token's record if it is valid and not revoked, else None."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = token_hash(token)
    row = next(
        db.query(
            "SELECT id, role, network, email, token_hash, revoked_at FROM api_tokens WHERE token_hash = ?", [wanted]
        ),
        None,
    )
    if row is None or not hmac.compare_digest(row["token_hash"], wanted) or row["revoked_at"]:
        return None
    return row


def revoke(db: Database, token_id: int, now: datetime) -> None:
    with transaction(db):
        if (
            db.execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", [iso(now), token_id]
            ).rowcount
            == 0
        ):
            raise NotFound(f"no token {token_id}")


def list_tokens(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT id, role, network, email, label, created_at, revoked_at FROM api_tokens ORDER BY id"))

"""The suppression list: addresses that opted out or bounced are never mailed again.

Keyed by the normalised e-mail, not by contact, so an address suppressed before it is ever imported (or
imported again by another network) stays suppressed. There is no way to lift a suppression from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.clock import iso, utcnow
from surveybot.db import transaction
from surveybot.errors import InvalidInput
from surveybot.signing import signed, unsigned

KINDS = ("opt_out", "bounce", "manual")


def suppress(db: Database, email: str, kind: str = "manual", reason: str = "", now=None) -> tuple[str, bool]:
    """Suppress ``email`` (kind: opt_out, bounce or manual; reason: free text for people).

    Returns the normalised address and whether it was newly suppressed.
    """
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    try:
        address = normalise_email(email)
    except InvalidAddress as exc:
        raise InvalidInput(f"{email!r} is not a valid e-mail address: {exc}", field="email") from None
    with transaction(db):
        cursor = db.execute(
            "INSERT INTO suppressions (email, kind, reason, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(email) DO NOTHING",
            [address, kind, reason, iso(now or utcnow())],
        )
    return address, cursor.rowcount == 1


def suppressed_among(db: Database, emails: Sequence[str]) -> dict[str, str]:
    """``{email: kind}`` for the suppressed addresses among ``emails`` (already normalised)."""
    if not emails:
        return {}
    sql = f"SELECT email, kind FROM suppressions WHERE email IN ({','.join('?' * len(emails))})"
    return dict(db.conn.execute(sql, list(emails)).fetchall())


def is_suppressed(db: Database, email: str) -> bool:
    return bool(suppressed_among(db, [email]))


def unsubscribe_token(secret: str, contact_id: int, wave_id: int = 0) -> str:
    """The signed token of a contact's unsubscribe link (no login, no lookup needed to check it)."""
    return signed(secret, "unsubscribe", contact_id, wave_id)


def unsubscribe_address(db: Database, secret: str, token: str) -> tuple[str, str] | None:
    """(address, wave id) named by a valid unsubscribe token, or None if it is forged, malformed or names
    no contact."""
    parts = unsigned(secret, "unsubscribe", token, 2)
    if parts is None or not parts[0].isdigit():
        return None
    row = db.execute("SELECT email FROM contacts WHERE id = ?", [int(parts[0])]).fetchone()
    return (row[0], parts[1]) if row else None


def unsubscribe(db: Database, secret: str, token: str, now=None) -> str | None:
    """Suppress the contact named by a valid unsubscribe token; returns its address (None: invalid token)."""
    found = unsubscribe_address(db, secret, token)
    if found is None:
        return None
    suppress(db, found[0], "opt_out", f"unsubscribe link (wave {found[1]})", now)
    return found[0]

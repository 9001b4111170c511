"""The suppression list: addresses that opted out or bounced are never mailed again.

Keyed by the normalised e-mail, not by contact, so an address suppressed before it is ever imported (or
imported again by another network) stays suppressed. A coordinator can lift an opt-out or a manual
suppression made by mistake (never a bounce: the address does not exist), with a reason that is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.clock import iso, utcnow
from surveybot.db import transaction
from surveybot.errors import InvalidInput
from surveybot.signing import signed, unsigned

KINDS = ("opt_out", "bounce", "manual")


def suppress(
    db: Database, email: str, kind: str = "manual", reason: str = "", now: datetime | None = None
) -> tuple[str, bool]:
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


def unsubscribe(db: Database, secret: str, token: str, now: datetime | None = None) -> str | None:
    """Suppress the contact named by a valid unsubscribe token; returns its address (None: invalid token)."""
    found = unsubscribe_address(db, secret, token)
    if found is None:
        return None
    suppress(db, found[0], "opt_out", f"unsubscribe link (wave {found[1]})", now)
    return found[0]


def unsuppress(db: Database, email: str, reason: str, now: datetime | None = None) -> dict[str, Any]:
    """Lift a suppression made by mistake; the lift and its reason are kept in ``suppression_lifts``.
    A bounce is never lifted (the mailbox does not exist); returns the lifted row."""
    if not reason.strip():
        raise InvalidInput("say why the suppression is lifted (--reason)", field="reason")
    try:
        address = normalise_email(email)
    except InvalidAddress as exc:
        raise InvalidInput(f"{email!r} is not a valid e-mail address: {exc}", field="email") from None
    with transaction(db):
        row = next(db.query("SELECT * FROM suppressions WHERE email = ?", [address]), None)
        if row is None:
            raise InvalidInput(f"{address} is not suppressed", field="email")
        if row["kind"] == "bounce":
            raise InvalidInput(
                f"{address} bounced ({row['reason'] or 'no such mailbox'}): a bounce is not lifted; "
                f"import the contact's correct address instead",
                field="email",
            )
        db.execute(
            "INSERT INTO suppression_lifts (email, kind, reason, suppressed_at, lifted_at, lift_reason) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [address, row["kind"], row["reason"], row["created_at"], iso(now or utcnow()), reason.strip()],
        )
        db.execute("DELETE FROM suppressions WHERE email = ?", [address])
    return row

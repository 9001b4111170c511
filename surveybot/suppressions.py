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

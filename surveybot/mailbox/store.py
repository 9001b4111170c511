"""The tables of mail that came back (see schema.py): what was read, replies and automatic replies kept for
the coordinator, messages returned after the relay took them, and per-wave holds on an address.

    mailbox_messages  every message read, once (sha256 of its bytes): a restart never acts twice
    mail_replies      people writing back (kind reply), automatic replies, bounces in no standard form
    mail_returns      a DSN's verdict on one outbox row: hard (address dead) or failed (this message only)
    wave_holds        a wave sends no more to an address after HOLD_AFTER failed messages (a trigger
                      cancels what is queued for it, whatever path queues it)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.clock import iso

HOLD_AFTER = 3  # failed messages to one address in one wave before the wave stops writing to it


def already_read(db: Database, digest: str) -> bool:
    return db.execute("SELECT 1 FROM mailbox_messages WHERE digest = ?", [digest]).fetchone() is not None


def mark_read(db: Database, digest: str, mailbox: str, outcome: str, outbox_id: int | None, now: datetime) -> None:
    db.execute(
        "INSERT OR IGNORE INTO mailbox_messages (digest, mailbox, outcome, outbox_id, read_at) VALUES (?, ?, ?, ?, ?)",
        [digest, mailbox, outcome, outbox_id, iso(now)],
    )


def outbox_row(db: Database, outbox_id: int) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM outbox WHERE id = ?", [outbox_id]), None)


def outbox_row_by_message_id(db: Database, message_ids: list[str]) -> dict[str, Any] | None:
    """The outbox row that went out with one of these Message-IDs (the first that matches, in order)."""
    for message_id in message_ids:
        row = next(db.query("SELECT * FROM outbox WHERE message_id = ? LIMIT 1", [message_id]), None)
        if row is not None:
            return row
    return None


def contact_by_email(db: Database, email: str) -> int | None:
    row = db.execute("SELECT id FROM contacts WHERE email = ?", [email]).fetchone()
    return int(row[0]) if row else None


def record_return(
    db: Database, row: dict[str, Any], severity: str, status: str, diagnostic: str, now: datetime
) -> bool:
    """Inside a transaction: the message of outbox ``row`` came back failed (severity ``hard`` or ``failed``).
    It is marked failed with the reason; returns whether this return was new."""
    cursor = db.execute(
        "INSERT OR IGNORE INTO mail_returns (outbox_id, wave_id, email, severity, status, diagnostic, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [row["id"], row["wave_id"], row["to_email"], severity, status, diagnostic, iso(now)],
    )
    reason = f"returned later: {status or 'failed'} {diagnostic}".strip()
    db.execute(
        "UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ? AND state = 'sent'", [reason, row["id"]]
    )
    return cursor.rowcount == 1


def hold_if_failing(db: Database, wave_id: int, email: str, now: datetime) -> int | None:
    """Inside a transaction: once ``HOLD_AFTER`` messages of the wave to ``email`` have failed, the wave sends
    it nothing more (the address is not suppressed: other waves still write to it). Returns how many queued
    messages were cancelled, or None when the address is not (newly) held."""
    failed = db.execute(
        "SELECT count(*) FROM outbox WHERE wave_id = ? AND to_email = ? AND state = 'failed'", [wave_id, email]
    ).fetchone()[0]
    if failed < HOLD_AFTER:
        return None
    reason = f"{failed} messages of this wave to this address failed"
    cursor = db.execute(
        "INSERT OR IGNORE INTO wave_holds (wave_id, email, reason, created_at) VALUES (?, ?, ?, ?)",
        [wave_id, email, reason, iso(now)],
    )
    if cursor.rowcount == 0:
        return None
    return db.execute(
        "UPDATE outbox SET state = 'cancelled', last_error = ? WHERE wave_id = ? AND to_email = ? "
        "AND state = 'queued' AND kind NOT LIKE 'interview%'",
        [f"held: {reason}", wave_id, email],
    ).rowcount


def record_reply(db: Database, digest: str, kind: str, fields: dict[str, Any], now: datetime) -> None:
    """A reply, automatic reply or unreadable bounce, kept for the coordinator (``replies list``)."""
    db.execute(
        "INSERT OR IGNORE INTO mail_replies (digest, kind, wave_id, contact_id, sender, subject, sent_date, "
        "excerpt, marker, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            digest,
            kind,
            fields.get("wave_id"),
            fields.get("contact_id"),
            fields.get("sender", ""),
            fields.get("subject", ""),
            fields.get("date", ""),
            fields.get("excerpt", ""),
            fields.get("marker", ""),
            iso(now),
        ],
    )


def replies(db: Database, wave_id: int) -> list[dict[str, Any]]:
    """What came back about wave ``wave_id``: tied to it, or from one of its recipients without naming a
    wave; newest first."""
    return list(
        db.query(
            """SELECT m.kind, m.sender, m.subject, m.sent_date, m.excerpt, m.marker, m.received_at,
                      c.email AS contact_email, c.name AS contact_name
               FROM mail_replies m LEFT JOIN contacts c ON c.id = m.contact_id
               WHERE m.wave_id = ? OR (m.wave_id IS NULL AND m.contact_id IN
                                       (SELECT contact_id FROM recipients WHERE wave_id = ?))
               ORDER BY m.received_at DESC, m.id DESC""",
            [wave_id, wave_id],
        )
    )


def unattributed_replies(db: Database) -> int:
    return int(
        db.execute("SELECT count(*) FROM mail_replies WHERE wave_id IS NULL AND contact_id IS NULL").fetchone()[0]
    )


def soft_bounced(db: Database, wave_id: int) -> int:
    """Messages of the wave a relay took that came back failed without the address being dead."""
    return int(
        db.execute("SELECT count(*) FROM mail_returns WHERE wave_id = ? AND severity = 'failed'", [wave_id]).fetchone()[
            0
        ]
    )

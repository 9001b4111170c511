"""The outbox: every e-mail is a row before it is sent, so none is lost and none goes twice.

A row's ``key`` is its idempotency key (wave, contact, kind and plan step), so enqueueing twice adds
nothing. States: queued → sending → sent | failed | cancelled; a temporary failure puts the row back to
queued with a later ``due_at``. A row found in ``sending`` at start-up was interrupted by a crash: it is
queued again and flagged ``recovered`` (it may have reached the server once already; those are counted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.clock import iso
from surveybot.contacts.zones import zone_of
from surveybot.db import transaction
from surveybot.windows import SendWindow

SURVEY_KINDS = ("invitation", "reminder", "final_reminder")


OUTSIDE_WINDOW = "the recipient's send window opens only after the close"


def enqueue_wave_step(
    db: Database,
    wave_id: int,
    kind: str,
    step_id: int,
    now: datetime,
    window: SendWindow | None = None,
    closes_at: datetime | None = None,
    default_zone: str = "",
) -> int:
    """Inside a transaction: queue ``kind`` for the wave's recipients who have not finished and are not
    suppressed — due now, or, with a send ``window``, when it next opens in each recipient's time zone (the
    wave's ``default_zone`` for a recipient whose zone is unknown; a
    message whose window opens only after ``closes_at`` is written as cancelled, and counted). Returns how
    many were queued."""
    if window is not None:
        return _enqueue_in_windows(db, wave_id, kind, step_id, now, window, closes_at, default_zone)
    stamp = iso(now)
    cursor = db.execute(
        f"""INSERT OR IGNORE INTO outbox (key, wave_id, contact_id, kind, to_email, due_at, created_at)
            SELECT 'wave:' || r.wave_id || ':contact:' || r.contact_id || ':{kind}:' || ?,
                   r.wave_id, r.contact_id, ?, c.email, ?, ?
            FROM recipients r JOIN contacts c ON c.id = r.contact_id
            WHERE r.wave_id = ? AND r.completed_at IS NULL
              AND c.email NOT IN (SELECT email FROM suppressions)
            ORDER BY r.id""",
        [step_id, kind, stamp, stamp, wave_id],
    )
    return cursor.rowcount


def _enqueue_in_windows(
    db: Database,
    wave_id: int,
    kind: str,
    step_id: int,
    now: datetime,
    window: SendWindow,
    closes_at: datetime | None,
    default_zone: str,
) -> int:
    rows = db.execute(
        """SELECT r.contact_id, c.email, c.city, c.country, c.timezone
           FROM recipients r JOIN contacts c ON c.id = r.contact_id
           WHERE r.wave_id = ? AND r.completed_at IS NULL AND c.email NOT IN (SELECT email FROM suppressions)
           ORDER BY r.id""",
        [wave_id],
    ).fetchall()
    stamp, queued, values = iso(now), 0, []
    for contact_id, email, city, country, zone in rows:
        known = zone_of({"timezone": zone, "city": city, "country": country})[0]
        due = window.opens(now, known or default_zone)  # a contact of unknown zone: the wave's
        late = closes_at is not None and due >= closes_at
        queued += not late
        values.append(
            (
                f"wave:{wave_id}:contact:{contact_id}:{kind}:{step_id}",
                wave_id,
                contact_id,
                kind,
                email,
                "cancelled" if late else "queued",
                OUTSIDE_WINDOW if late else "",
                iso(due),
                stamp,
            )
        )
    db.conn.executemany(
        """INSERT OR IGNORE INTO outbox (key, wave_id, contact_id, kind, to_email, state, last_error, due_at,
           created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        values,
    )
    return queued


def enqueue(
    db: Database,
    key: str,
    kind: str,
    to_email: str,
    now: datetime,
    *,
    wave_id: int | None = None,
    contact_id: int | None = None,
    payload: str = "{}",
) -> bool:
    cursor = db.execute(
        """INSERT OR IGNORE INTO outbox (key, wave_id, contact_id, kind, to_email, due_at, created_at, payload)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [key, wave_id, contact_id, kind, to_email, iso(now), iso(now), payload],
    )
    return cursor.rowcount == 1


def claim(db: Database, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Take up to ``limit`` due messages for sending, oldest first. Pausing a wave holds its survey e-mail,
    not the interviews already arranged."""
    with transaction(db):
        rows = list(
            db.query(
                """UPDATE outbox SET state = 'sending', attempts = attempts + 1
               WHERE id IN (SELECT o.id FROM outbox o LEFT JOIN waves w ON w.id = o.wave_id
                            WHERE o.state = 'queued' AND o.due_at <= ?
                              AND (COALESCE(w.paused, 0) = 0 OR o.kind LIKE 'interview%')
                            ORDER BY o.due_at, o.id LIMIT ?)
               RETURNING *""",
                [iso(now), limit],
            )
        )
    rows.sort(key=lambda r: (r["due_at"], r["id"]))
    return rows


def record(db: Database, outcomes: list[tuple[Any, ...]]) -> None:
    """Write a batch's outcomes in one transaction. Each is one of
    ``("sent", id, message_id, at)``, ``("retry", id, error, due)``, ``("failed", id, error)``,
    ``("cancelled", id, reason)`` or ``("release", id)``."""
    sql = {
        "sent": "UPDATE outbox SET state = 'sent', message_id = ?, sent_at = ?, last_error = '' WHERE id = ?",
        "retry": "UPDATE outbox SET state = 'queued', last_error = ?, due_at = ? WHERE id = ?",
        "failed": "UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?",
        "cancelled": "UPDATE outbox SET state = 'cancelled', last_error = ? WHERE id = ?",
        "release": "UPDATE outbox SET state = 'queued', attempts = attempts - 1 WHERE id = ? AND state = 'sending'",
    }
    with transaction(db):
        for outcome, message_id, *values in outcomes:
            values = [iso(v) if isinstance(v, datetime) else (v[:500] if isinstance(v, str) else v) for v in values]
            db.conn.execute(sql[outcome], [*values, message_id])


def flag_restored(db: Database) -> tuple[str, int] | None:
    """At the first start on a database restored from a backup (``surveybot backup``): messages queued or
    being sent when the backup was taken may have gone out after it; they go again (with the same
    Message-ID) and are flagged as recovered, so status counts them. Returns (backup time, how many)."""
    with transaction(db):
        row = db.execute("SELECT value FROM meta WHERE key = 'backup_taken_at'").fetchone()
        if row is None:
            return None
        flagged = db.execute(
            "UPDATE outbox SET recovered = 1 WHERE state IN ('queued', 'sending') AND created_at <= ?", [row[0]]
        ).rowcount
        db.execute("DELETE FROM meta WHERE key = 'backup_taken_at'")
    return row[0], flagged


def recover(db: Database) -> int:
    """At start-up: messages left in ``sending`` by a crash are queued again, flagged as recovered."""
    with transaction(db):
        return db.execute("UPDATE outbox SET state = 'queued', recovered = 1 WHERE state = 'sending'").rowcount


def queued_count(db: Database) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE state = 'queued'").fetchone()[0])


def counts_in_flight(db: Database) -> tuple[int, int]:
    """(queued, sending): what waits to be sent and what is being sent now."""
    row = db.execute(
        "SELECT count(CASE WHEN state = 'queued' THEN 1 END), count(CASE WHEN state = 'sending' "
        "THEN 1 END) FROM outbox WHERE state IN ('queued', 'sending')"
    ).fetchone()
    return row[0], row[1]


def next_due(db: Database) -> str | None:
    row = db.execute("""SELECT MIN(o.due_at) FROM outbox o LEFT JOIN waves w ON w.id = o.wave_id
                        WHERE o.state = 'queued'
                          AND (COALESCE(w.paused, 0) = 0 OR o.kind LIKE 'interview%')""").fetchone()
    return str(row[0]) if row[0] is not None else None


def release_times(db: Database, wave_id: int) -> dict[str, Any]:
    """When the wave's queued survey messages go out (with a send window, each recipient's zone gives its
    own time), and how many were not sent because the window opened only after the close."""
    times = [
        {"at": at, "messages": n}
        for at, n in db.execute(
            f"""SELECT substr(due_at, 1, 16), count(*) FROM outbox WHERE wave_id = ? AND state = 'queued'
            AND kind IN ({",".join("?" * len(SURVEY_KINDS))}) GROUP BY 1 ORDER BY 1 LIMIT 50""",
            [wave_id, *SURVEY_KINDS],
        )
    ]
    skipped = db.execute(
        "SELECT count(*) FROM outbox WHERE wave_id = ? AND state = 'cancelled' AND last_error = ?",
        [wave_id, OUTSIDE_WINDOW],
    ).fetchone()[0]
    return {"release_times": times, "skipped_outside_window": skipped}


def wave_counts(db: Database, wave_id: int) -> dict[str, Any]:
    counts = dict.fromkeys(("queued", "sending", "sent", "failed", "cancelled"), 0)
    # The survey's own e-mail: interview messages are counted with the interviews.
    for state, number in db.execute(
        "SELECT state, count(*) FROM outbox WHERE wave_id = ? AND kind NOT LIKE 'interview%' GROUP BY state", [wave_id]
    ):
        counts[state] = number
    counts["recovered"] = db.execute(
        "SELECT count(*) FROM outbox WHERE wave_id = ? AND recovered = 1 AND state = 'sent'", [wave_id]
    ).fetchone()[0]
    return counts

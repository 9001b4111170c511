"""The interview queue: who opted in, whom to invite to book, what became of each, and expiry.

Each respondent has one row per wave (made by ``responses.record`` when they opt in). Its personal booking
link carries a signed token (``id.signature``): no login, nothing to look up before checking it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from surveybot import outbox
from surveybot.clock import iso, parse_stored
from surveybot.db import transaction
from surveybot.errors import InvalidInput, NotFound
from surveybot.interviews import MARKABLE, OPEN_STATES, STATES
from surveybot.signing import signed, unsigned

_SELECT = """SELECT q.*, c.email, c.name, c.city, c.country, c.language, c.timezone AS contact_timezone,
                    w.slug AS wave, s.researcher, s.starts_at, s.ends_at, s.meeting_url,
                    s.timezone AS slot_timezone
             FROM interview_queue q JOIN contacts c ON c.id = q.contact_id JOIN waves w ON w.id = q.wave_id
             LEFT JOIN interview_slots s ON s.id = q.slot_id"""


def booking_token(secret: str, interview_id: int) -> str:
    return signed(secret, "interview", interview_id)


def booking_url(base_url: str, secret: str, interview_id: int) -> str:
    return f"{base_url}/interview/{booking_token(secret, interview_id)}"


def by_token(db: Database, secret: str, token: str) -> dict[str, Any] | None:
    """The interview a booking token names, or None if the token is forged or malformed."""
    parts = unsigned(secret, "interview", token, 1)
    if parts is None or not parts[0].isdigit():
        return None
    return next(db.query(_SELECT + " WHERE q.id = ?", [int(parts[0])]), None)


def get(db: Database, interview_id: int) -> dict[str, Any]:
    row = next(db.query(_SELECT + " WHERE q.id = ?", [interview_id]), None)
    if row is None:
        raise NotFound(f"no interview {interview_id}")
    return row


def listing(
    db: Database, *, state: str | None = None, wave_id: int | None = None, researcher: str | None = None
) -> list[dict[str, Any]]:
    if state is not None and state not in STATES:
        raise InvalidInput(f"--state must be one of {', '.join(STATES)}", field="state")
    return list(
        db.query(
            _SELECT
            + """ WHERE (:state IS NULL OR q.state = :state) AND (:wave IS NULL OR q.wave_id = :wave)
                      AND (:researcher IS NULL OR s.researcher = :researcher)
                      ORDER BY COALESCE(s.starts_at, '9999'), q.created_at, q.id""",
            {"state": state, "wave": wave_id, "researcher": researcher},
        )
    )


def expired(row: dict[str, Any], now: datetime) -> bool:
    return row["state"] == "invited" and bool(row["expires_at"]) and parse_stored(row["expires_at"]) <= now


def invite(
    db: Database, wave_id: int, now: datetime, *, nudge_after: float, expire_after: float, limit: int | None = None
) -> list[int]:
    """Invite queued respondents of the wave to book: the invitation now, a nudge later (cancelled when
    they book), a link that expires. Returns the interviews invited."""
    with transaction(db):
        rows = db.execute(
            "SELECT q.id, q.contact_id, c.email FROM interview_queue q JOIN contacts c ON c.id = q.contact_id "
            "WHERE q.wave_id = ? AND q.state = 'queued' ORDER BY q.created_at, q.id LIMIT ?",
            [wave_id, -1 if limit is None else limit],
        ).fetchall()
        for interview_id, contact_id, email in rows:
            db.execute(
                "UPDATE interview_queue SET state = 'invited', invited_at = ?, expires_at = ?, updated_at = ? "
                "WHERE id = ?",
                [iso(now), iso(now + timedelta(seconds=expire_after)), iso(now), interview_id],
            )
            common = {"wave_id": wave_id, "contact_id": contact_id, "payload": json.dumps({"interview": interview_id})}
            outbox.enqueue(db, f"interview:{interview_id}:invite", "interview_invite", email, now, **common)
            if nudge_after < expire_after:
                outbox.enqueue(
                    db,
                    f"interview:{interview_id}:nudge",
                    "interview_nudge",
                    email,
                    now + timedelta(seconds=nudge_after),
                    **common,
                )
    return [row[0] for row in rows]


def auto_invite(db: Database, now: datetime, *, nudge_after: float, expire_after: float) -> int:
    """Invite the queued respondents of every wave that invites as opt-ins arrive."""
    waves = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT q.wave_id FROM interview_queue q JOIN waves w ON w.id = q.wave_id "
            "WHERE q.state = 'queued' AND w.interview_auto_invite = 1"
        )
    ]
    return sum(len(invite(db, w, now, nudge_after=nudge_after, expire_after=expire_after)) for w in waves)


def set_auto_invite(db: Database, wave_id: int, on: bool) -> None:
    with transaction(db):
        db.execute("UPDATE waves SET interview_auto_invite = ? WHERE id = ?", [int(on), wave_id])


def expire_due(db: Database, now: datetime) -> int:
    """Invitations nobody booked in time become ``expired`` (their pending nudge is cancelled)."""
    with transaction(db):
        ids = [
            r[0]
            for r in db.execute(
                "SELECT id FROM interview_queue WHERE state = 'invited' AND expires_at <= ?", [iso(now)]
            )
        ]
        for interview_id in ids:
            db.execute(
                "UPDATE interview_queue SET state = 'expired', updated_at = ? WHERE id = ?", [iso(now), interview_id]
            )
            cancel_mail(db, interview_id, ("interview_nudge",), "the booking link expired")
    return len(ids)


def cancel_mail(db: Database, interview_id: int, kinds: tuple[str, ...], reason: str) -> None:
    """Inside a transaction: withdraw the interview's queued messages of ``kinds``."""
    db.execute(
        f"UPDATE outbox SET state = 'cancelled', last_error = ? WHERE state = 'queued' AND kind IN "
        f"({','.join('?' * len(kinds))}) AND key LIKE ?",
        [reason, *kinds, f"interview:{interview_id}:%"],
    )


def set_notes(db: Database, interview_id: int, notes: str, now: datetime) -> None:
    with transaction(db):
        get(db, interview_id)
        db.execute(
            "UPDATE interview_queue SET notes = ?, updated_at = ? WHERE id = ?", [notes[:5000], iso(now), interview_id]
        )


def check_mark(row: dict[str, Any], state: str) -> None:
    if state not in MARKABLE:
        raise InvalidInput(f"state must be one of {', '.join(MARKABLE)}", field="state")
    if row["state"] not in MARKABLE[state]:
        raise InvalidInput(
            f"interview {row['id']} is {row['state']}; it can be marked {state} only when "
            f"{' or '.join(MARKABLE[state])}",
            field="state",
        )


def open_count(db: Database, wave_id: int) -> int:
    marks = ",".join("?" * len(OPEN_STATES))
    count: int = db.execute(
        f"SELECT count(*) FROM interview_queue WHERE wave_id = ? AND state IN ({marks})", [wave_id, *OPEN_STATES]
    ).fetchone()[0]
    return count


def tick(db: Database, now: datetime, *, nudge_after: float, expire_after: float) -> tuple[int, int]:
    """What ``serve`` does every few seconds: invite new opt-ins of auto-inviting waves, expire old links."""
    invited = auto_invite(db, now, nudge_after=nudge_after, expire_after=expire_after)
    return invited, expire_due(db, now)

"""Booking, rescheduling and cancelling an interview; the e-mails each one sends.

Each change is one transaction taken with the write lock (``BEGIN IMMEDIATE``), and the database holds at
most one interview per slot (a unique index), so when two people race for a slot exactly one gets it and the
other is told it has just been taken. Every change bumps the interview's ``sequence``, which its calendar
invitations carry, so calendars replace the old time instead of adding a second event.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from surveybot import outbox
from surveybot.clock import iso, parse_stored
from surveybot.db import transaction
from surveybot.errors import SurveybotError
from surveybot.interviews import queue, slots

BOOKABLE = ("invited", "booked", "cancelled")
REMIND_BEFORE = timedelta(hours=24)
LEAD = timedelta(hours=2)  # the latest a slot can be booked before it starts


class SlotTaken(SurveybotError):
    """Someone else booked the slot first (or it is gone)."""


class NotBookable(SurveybotError):
    """The interview cannot be booked now (expired, declined, done…); the message says why."""


def book(db: Database, interview_id: int, slot_id: int, now: datetime) -> dict[str, Any]:
    """Book (or move to) ``slot_id``; returns the interview as it now is."""
    try:
        with transaction(db):
            row = queue.get(db, interview_id)
            if queue.expired(row, now):
                raise NotBookable("expired")
            if row["state"] not in BOOKABLE:
                raise NotBookable(row["state"])
            if row["slot_id"] == slot_id:
                return row
            slot = next(db.query("SELECT * FROM interview_slots WHERE id = ?", [slot_id]), None)
            if slot is None or parse_stored(slot["starts_at"]) < now + LEAD:
                raise SlotTaken(f"slot {slot_id} is no longer offered")
            moving = row["state"] == "booked"
            sequence = row["sequence"] + 1
            db.execute(
                "UPDATE interview_queue SET slot_id = ?, state = 'booked', sequence = ?, booked_at = ?, "
                "updated_at = ? WHERE id = ?",
                [slot_id, sequence, iso(now), iso(now), interview_id],
            )
            queue.cancel_mail(
                db,
                interview_id,
                ("interview_nudge", "interview_soon", "interview_confirmed"),
                "booked another time" if moving else "booked",
            )
            _tell_both(db, row, slot, "interview_confirmed", sequence, now, {"moved": moving})
            start = parse_stored(slot["starts_at"])
            if start - REMIND_BEFORE > now + timedelta(hours=1):  # a booking for tomorrow needs no reminder
                _tell_both(db, row, slot, "interview_soon", sequence, start - REMIND_BEFORE)
    except sqlite3.IntegrityError:  # the unique index on slot_id: someone else booked it first
        raise SlotTaken(f"slot {slot_id} has just been booked by someone else") from None
    return queue.get(db, interview_id)


def cancel(
    db: Database, interview_id: int, now: datetime, *, state: str = "cancelled", by: str = "respondent"
) -> dict[str, Any]:
    """Cancel (or decline) the interview; a booked one frees its slot and both sides get a cancellation."""
    with transaction(db):
        row = queue.get(db, interview_id)
        if by == "respondent" and queue.expired(row, now):  # an expired link does nothing, decline included
            raise NotBookable("expired")
        if row["state"] not in ("queued", "invited", "booked"):
            raise NotBookable(row["state"])
        sequence = row["sequence"] + 1
        db.execute(
            "UPDATE interview_queue SET state = ?, slot_id = NULL, sequence = ?, updated_at = ? WHERE id = ?",
            [state, sequence, iso(now), interview_id],
        )
        queue.cancel_mail(
            db,
            interview_id,
            ("interview_invite", "interview_nudge", "interview_soon", "interview_confirmed"),
            f"{state} by the {by}",
        )
        if row["slot_id"] is not None:
            slot = slots.get(db, row["slot_id"])
            _tell_both(db, row, slot, "interview_cancelled", sequence, now, {"by": by})
    return queue.get(db, interview_id)


def mark(db: Database, interview_id: int, state: str, now: datetime, notes: str | None = None) -> dict[str, Any]:
    """A researcher's verdict: completed, no_show, declined or cancelled (the last two tell the respondent)."""
    row = queue.get(db, interview_id)
    queue.check_mark(row, state)
    if state in ("declined", "cancelled"):
        row = cancel(db, interview_id, now, state=state, by="researcher")
    else:
        with transaction(db):
            db.execute(
                "UPDATE interview_queue SET state = ?, updated_at = ? WHERE id = ?", [state, iso(now), interview_id]
            )
            queue.cancel_mail(db, interview_id, ("interview_soon",), f"marked {state}")
    if notes is not None:
        queue.set_notes(db, interview_id, notes, now)
    return queue.get(db, interview_id)


def _tell_both(
    db: Database,
    row: dict[str, Any],
    slot: dict[str, Any],
    kind: str,
    sequence: int,
    due: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    for who, address in (("respondent", row["email"]), ("researcher", slot["researcher"])):
        payload = json.dumps(
            {"interview": row["id"], "sequence": sequence, "slot": slot["id"], "for": who, **(extra or {})}
        )
        outbox.enqueue(
            db,
            f"interview:{row['id']}:{sequence}:{kind}:{who}",
            kind,
            address,
            due,
            wave_id=row["wave_id"],
            contact_id=row["contact_id"],
            payload=payload,
        )


def check_state_for_page(row: dict[str, Any], now: datetime) -> str:
    """What the booking page shows: 'book', 'booked', or why nothing can be done ('expired', …)."""
    if queue.expired(row, now):
        return "expired"
    if row["state"] in ("invited", "cancelled"):
        return "book"
    state: str = row["state"]
    return state

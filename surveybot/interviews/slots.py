"""Researchers' availability: a window split into slots of a fixed length, stored in UTC.

Windows are split in real time, not wall-clock time: across a daylight-saving change every slot still lasts
its length (a 00:30–04:00 window on the night clocks go forward holds five 30-minute slots, not seven).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from surveybot.clock import iso, parse_stored
from surveybot.db import transaction
from surveybot.errors import InvalidInput, NotFound

MAX_SLOTS = 500  # in one window: a typo in a date must not publish a year of slots


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"--tz {name!r} is not a time zone such as Europe/Madrid or America/Bogota", field="tz"
        ) from None


def local_moment(text: str, tz: ZoneInfo, option: str) -> datetime:
    """ISO 8601; without an offset the time is read in ``tz``."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not an ISO 8601 time such as 2026-12-01T09:00", field=option.lstrip("-")
        ) from None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def split(start: datetime, end: datetime, length: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive slots of ``length`` from ``start``, all ending by ``end`` (aware datetimes, any zone)."""
    if length <= timedelta(0):
        raise InvalidInput("--length must be more than zero", field="length")
    if end <= start:
        raise InvalidInput("--to must be later than --from", field="to")
    slots, begin = [], start.astimezone(ZoneInfo("UTC"))
    finish = end.astimezone(ZoneInfo("UTC"))
    while begin + length <= finish:
        slots.append((begin, begin + length))
        begin += length
        if len(slots) > MAX_SLOTS:
            raise InvalidInput(f"that window holds more than {MAX_SLOTS} slots; publish a shorter one", field="to")
    if not slots:
        raise InvalidInput(f"the window is shorter than one {length} slot", field="to")
    return slots


def add(
    db: Database, researcher: str, windows: list[tuple[datetime, datetime]], tz: str, meeting_url: str, now: datetime
) -> dict[str, Any]:
    """Store slots; ones that overlap a slot the researcher already has are skipped, not doubled."""
    added, skipped = [], 0
    with transaction(db):
        for start, end in windows:
            overlap = db.execute(
                "SELECT 1 FROM interview_slots WHERE researcher = ? AND starts_at < ? AND ends_at > ?",
                [researcher, iso(end), iso(start)],
            ).fetchone()
            if overlap:
                skipped += 1
                continue
            cursor = db.execute(
                "INSERT INTO interview_slots (researcher, starts_at, ends_at, timezone, meeting_url, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [researcher, iso(start), iso(end), tz, meeting_url, iso(now)],
            )
            added.append(cursor.lastrowid)
    return {"added": len(added), "skipped_overlapping": skipped, "ids": added}


def listing(db: Database, *, researcher: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """Slots with who booked them (``interview_id``, ``booked_by``), earliest first."""
    sql = """SELECT s.*, q.id AS interview_id, c.email AS booked_by
             FROM interview_slots s
             LEFT JOIN interview_queue q ON q.slot_id = s.id
             LEFT JOIN contacts c ON c.id = q.contact_id
             WHERE (? IS NULL OR s.researcher = ?) AND (? IS NULL OR s.ends_at > ?)
             ORDER BY s.starts_at, s.researcher"""
    stamp = iso(since) if since else None
    return list(db.query(sql, [researcher, researcher, stamp, stamp]))


def free(db: Database, now: datetime, *, lead: timedelta = timedelta(hours=2)) -> list[dict[str, Any]]:
    """Slots nobody has booked that start at least ``lead`` from now (time to prepare and to be told)."""
    return list(
        db.query(
            """SELECT s.* FROM interview_slots s
           WHERE s.starts_at >= ? AND NOT EXISTS (SELECT 1 FROM interview_queue q WHERE q.slot_id = s.id)
           ORDER BY s.starts_at, s.researcher""",
            [iso(now + lead)],
        )
    )


def minutes(slot: dict[str, Any]) -> int:
    """How long the slot lasts, in whole minutes (``starts_at``/``ends_at`` as stored)."""
    return round((parse_stored(slot["ends_at"]) - parse_stored(slot["starts_at"])).total_seconds() / 60)


def get(db: Database, slot_id: int) -> dict[str, Any]:
    row = next(db.query("SELECT * FROM interview_slots WHERE id = ?", [slot_id]), None)
    if row is None:
        raise NotFound(f"no interview slot {slot_id}")
    return row


def remove(db: Database, slot_id: int) -> dict[str, Any]:
    """Remove a free slot. A booked one is refused: cancel its interview first, so the respondent is told."""
    with transaction(db):
        slot = get(db, slot_id)
        booked = db.execute("SELECT id FROM interview_queue WHERE slot_id = ?", [slot_id]).fetchone()
        if booked:
            raise InvalidInput(
                f"slot {slot_id} is booked (interview {booked[0]}); cancel that interview first "
                f"with 'surveybot interviews mark {booked[0]} cancelled'",
                field="slot",
            )
        db.execute("DELETE FROM interview_slots WHERE id = ?", [slot_id])
    return slot

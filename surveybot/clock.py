"""Time, injected: stages take ``now`` so tests can run a two-week wave in seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The one text form of a moment stored in the database (UTC, so text order is time order)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


LONGEST = timedelta(days=3650)  # no wave, reminder, timeout or pace of this work lasts longer


def parse_duration(text: str) -> timedelta:
    """``'30s'``, ``'15m'``, ``'2h'``, ``'14d'``, ``'2w'`` (also ``'1.5d'``) → timedelta, at most ``LONGEST``
    (longer ones would overflow the dates computed from them). Raises ValueError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "", re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 2h, 14d or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds > LONGEST.total_seconds():  # (a float: no overflow here, even for a hundred digits)
        raise ValueError(f"{text!r} is longer than the longest duration taken, {LONGEST.days}d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_moment(text: str, now: datetime) -> datetime:
    """``'now'`` or ISO 8601; a time without offset is the machine's local time. Raises ValueError."""
    if text.strip().lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not 'now' or an ISO 8601 time such as 2026-12-01T09:00+01:00") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time of this machine
    return moment.astimezone(UTC)


def parse_stored(text: str) -> datetime:
    return datetime.fromisoformat(text)

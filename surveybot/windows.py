"""Working hours: a wave's send window (``--send-window 09:00-17:00 --send-days mon-fri``) read in each
recipient's own time zone.

An invitation or reminder falls due at its step's time as always, then waits for the recipient's window to
open: an officer in Seoul gets a wave launched from Chicago in the morning, Seoul time. The close stays one
instant for everybody, so a message whose window would open only after the close is not sent (and counted).
A wave without a window sends at the step's time, as before.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from surveybot.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*\Z")


@dataclass(frozen=True)
class SendWindow:
    start: time
    end: time  # exclusive; time(0, 0) after start is not allowed, 24:00 is written as end of day
    days: frozenset[int]  # weekday numbers, Monday 0

    def opens(self, moment: datetime, zone: str) -> datetime:
        """The first moment at or after ``moment`` inside the window, in the recipient's ``zone`` (UTC if
        unknown). Returned in UTC."""
        tz = ZoneInfo(zone) if zone else UTC
        local = moment.astimezone(tz)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, tzinfo=tz)
            closes = (
                datetime.combine(day, self.end, tzinfo=tz)
                if self.end != time(0)
                else datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
            )
            if local < closes:
                return max(local, opens).astimezone(UTC)
        raise AssertionError("a week always holds a window day")  # days is never empty


def parse_window(text: str) -> tuple[time, time]:
    match = _WINDOW.match(text or "")
    if not match:
        raise InvalidInput(f"{text!r} is not a send window such as 09:00-17:00", field="send_window")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start = time(h1, m1)
    end = time(0) if (h2, m2) == (24, 0) else time(h2 % 24, m2)
    if h2 == 24 and m2:
        raise InvalidInput(f"{text!r}: the window ends at 24:00 at the latest", field="send_window")
    if end != time(0) and end <= start:
        raise InvalidInput(f"{text!r}: the window must end after it starts, on the same day", field="send_window")
    return start, end


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``mon,wed,fri``, ``sat-sun`` (case-insensitive) → weekday numbers."""
    chosen: set[int] = set()
    for part in (text or "").lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InvalidInput(f"{text!r} is not a list of days such as mon-fri or mon,wed,fri", field="send_days")
        a, b = DAYS.index(first), DAYS.index(last or first)
        chosen.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(chosen)


def of_wave(wave: dict[str, Any]) -> SendWindow | None:
    """The wave's window, or None when it has none (send at the step's time)."""
    if not wave.get("send_window") and not wave.get("send_days"):
        return None
    start, end = parse_window(wave["send_window"]) if wave.get("send_window") else (time(0), time(0))
    days = parse_days(wave["send_days"]) if wave.get("send_days") else frozenset(range(7))
    return SendWindow(start, end, days)


def check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{name!r} is not a time zone name such as 'America/Bogota'", field="timezone") from None
    return name


def machine_zone() -> str:
    """This machine's IANA zone name (``TZ``, then /etc/localtime), or UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and name in available_timezones():
        return name
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    if marker in target:
        name = target.split(marker, 1)[1]
        if name in available_timezones():
            return "UTC" if name in ("Etc/UTC", "Etc/Universal", "UCT", "Universal", "Zulu") else name
    return "UTC"

"""When a previewed message would be sent: each kind as of its own time, so the preview says what the
recipient will read ("closes in 2 days" in a final reminder, not the 14 days left today).

- A launched wave: the time of the kind's step in its plan — the next one still to come (due now if it is
  overdue), else the last one done (what was sent then).
- A wave not launched yet: where a launch now would put the step (the planned start, if it is later).
- A thank-you goes whenever a respondent finishes: as of now, or of the start if that is still to come.
The closing date and time are written in the contact's own zone by the composer (see compose.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot.clock import iso, parse_stored
from surveybot.waves import planned_steps, steps


def planned(wave: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The wave with the closing time a launch at ``now`` would give it, for a wave not launched yet (the
    messages of a later step must not move the close along with them)."""
    if wave["closes_at"]:
        return wave
    return {**wave, "closes_at": iso(planned_steps(wave, now)[-1][1])}


def as_of(db: Database, wave: dict[str, Any], kind: str, now: datetime) -> datetime:
    """The moment a ``kind`` message of ``wave`` would be written for, as seen at ``now``."""
    if wave["state"] == "draft" or not wave["launched_at"]:
        plan = planned_steps(wave, now)
        start = plan[0][1]
        return next((at for step, at in plan if step == kind), max(start, now))
    plan_steps = steps(db, wave["id"])
    start = min((parse_stored(s["due_at"]) for s in plan_steps), default=now)
    of_kind = [s for s in plan_steps if s["kind"] == kind and s["state"] != "cancelled"]
    pending = [s for s in of_kind if s["state"] == "pending"]
    if pending:
        return max(parse_stored(pending[0]["due_at"]), now)
    if of_kind:
        last = of_kind[-1]
        return parse_stored(last["done_at"] or last["due_at"])
    return max(start, now)

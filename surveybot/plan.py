"""Running a wave's plan: the steps that have fallen due are carried out, each exactly once.

A step and everything it enqueues are written in one transaction, so a crash either did the step or did
not; running the plan again never repeats one. Steps that fell due while the wave was paused or the service
was down run late, once: of several overdue reminders only the latest is sent (one reminder, not a burst),
and when the close is due nothing else is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot import outbox, recipients, windows
from surveybot.clock import iso, parse_stored
from surveybot.db import transaction
from surveybot.waves import close_wave


def run_due(db: Database, secret: str, now: datetime) -> list[dict[str, Any]]:
    """Carry out every due step of every running, unpaused wave. Returns what was done."""
    done = []
    waves = list(db.query("SELECT * FROM waves WHERE state IN ('scheduled', 'open') AND paused = 0 ORDER BY id"))
    for wave in waves:
        with transaction(db):
            due = list(
                db.query(
                    "SELECT id, kind FROM wave_steps WHERE wave_id = ? AND state = 'pending' "
                    "AND due_at <= ? ORDER BY due_at, id",
                    [wave["id"], iso(now)],
                )
            )
            if not due:
                continue
            done.extend(_run_steps(db, wave, due, secret, now))
    return done


def _run_steps(
    db: Database, wave: dict[str, Any], due: list[dict[str, Any]], secret: str, now: datetime
) -> list[dict[str, Any]]:
    done = []
    stamp = iso(now)
    if any(step["kind"] == "close" for step in due):
        close_wave(db, wave["id"], now)
        return [{"wave": wave["slug"], "step": "close", "queued": 0}]
    reminders = [s for s in due if s["kind"] in ("reminder", "final_reminder")]
    skipped = {s["id"] for s in reminders[:-1]}
    for step in due:
        if step["id"] in skipped:
            db.execute("UPDATE wave_steps SET state = 'skipped', done_at = ? WHERE id = ?", [stamp, step["id"]])
            continue
        if step["kind"] == "invitation":
            recipients.add_audience(db, wave, secret, now)
            db.execute("UPDATE waves SET state = 'open' WHERE id = ?", [wave["id"]])
        closes = parse_stored(wave["closes_at"]) if wave["closes_at"] else None
        queued = outbox.enqueue_wave_step(
            db, wave["id"], step["kind"], step["id"], now, windows.of_wave(wave), closes, wave["timezone"]
        )
        db.execute(
            "UPDATE wave_steps SET state = 'done', done_at = ?, enqueued = ? WHERE id = ?", [stamp, queued, step["id"]]
        )
        done.append({"wave": wave["slug"], "step": step["kind"], "queued": queued})
    return done


def next_wakeup(db: Database) -> str | None:
    """When the next step of a running, unpaused wave falls due."""
    due: str | None = db.execute(
        """SELECT MIN(s.due_at) FROM wave_steps s JOIN waves w ON w.id = s.wave_id
           WHERE s.state = 'pending' AND w.state IN ('scheduled', 'open') AND w.paused = 0"""
    ).fetchone()[0]
    return due

"""Reports read everything and write nothing: a wave's status now; rates and exports as they come."""

from __future__ import annotations

from sqlite_utils import Database

from surveybot import outbox
from surveybot.signing import derive
from surveybot.waves import next_step


def webhook_url(base_url: str, secret: str, wave: dict) -> str:
    """The URL to register with the survey platform; its last part is the wave's unguessable secret."""
    return f"{base_url}/webhooks/{wave['platform']}/{wave['slug']}/{derive(secret, 'webhook', wave['id'], length=32)}"


def wave_status(db: Database, wave: dict, secret: str, base_url: str) -> dict:
    counts = outbox.wave_counts(db, wave["id"])
    invited, completed, bounced, opted_out = db.execute(
        """SELECT count(*), count(r.completed_at),
                  count(CASE WHEN s.kind = 'bounce' THEN 1 END), count(CASE WHEN s.kind = 'opt_out' THEN 1 END)
           FROM recipients r JOIN contacts c ON c.id = r.contact_id
           LEFT JOIN suppressions s ON s.email = c.email WHERE r.wave_id = ?""", [wave["id"]]).fetchone()
    return {
        "state": "paused" if wave["paused"] and wave["state"] != "closed" else wave["state"],
        "invited": invited,
        "sent": counts["sent"],
        "failed": counts["failed"],
        "bounced": bounced,
        "opted_out": opted_out,
        "completed": completed,
        "partial_discarded": 0,
        "interview_queue": 0,
        "next_step": next_step(db, wave),
        "webhook_url": webhook_url(base_url, secret, wave),
        "slug": wave["slug"],
        "title": wave["title"],
        "queued": counts["queued"] + counts["sending"],
        "cancelled": counts["cancelled"],
        "resent_after_crash": counts["recovered"],
        "launched_at": wave["launched_at"],
        "closes_at": wave["closes_at"],
    }

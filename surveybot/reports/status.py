"""A wave's status now: what was sent, what came back, what happens next (``wave status``)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from surveybot import inbox, outbox, pull, responses
from surveybot.mailbox import store as returned_mail
from surveybot.platforms.signed import whsec
from surveybot.platforms.urls import webhook_signing_secret, webhook_url, webhook_urls
from surveybot.reports.live import funnel
from surveybot.waves import WEBHOOKLESS, next_step


def wave_status(db: Database, wave: dict[str, Any], secret: str, base_url: str) -> dict[str, Any]:
    counts = outbox.wave_counts(db, wave["id"])
    answered = responses.counts(db, wave["id"])
    # people who finished: marked done, or holding a complete response (a wave recorded before a city
    # duplicate was marked done still counts them); one person however many responses they sent
    invited, completed, bounced, opted_out = db.execute(
        """SELECT count(*),
                  count(CASE WHEN r.completed_at IS NOT NULL OR EXISTS (SELECT 1 FROM responses x
                        WHERE x.wave_id = r.wave_id AND x.contact_id = r.contact_id AND x.status = 'complete')
                        THEN 1 END),
                  count(CASE WHEN s.kind = 'bounce' THEN 1 END), count(CASE WHEN s.kind = 'opt_out' THEN 1 END)
           FROM recipients r JOIN contacts c ON c.id = r.contact_id
           LEFT JOIN suppressions s ON s.email = c.email WHERE r.wave_id = ?""",
        [wave["id"]],
    ).fetchone()
    return {
        "state": "paused" if wave["paused"] and wave["state"] != "closed" else wave["state"],
        "invited": invited,
        "sent": counts["sent"],
        "failed": counts["failed"],
        "bounced": bounced,
        # people whose invitation or a reminder got through: sent (accepted, or refused as a bounce) − bounced
        "delivered": funnel(db, wave["id"])["delivered"],
        # messages a relay took that came back failed later (5.7.1 policy, mailbox full…), the address kept
        "soft_bounced": returned_mail.soft_bounced(db, wave["id"]),
        "opted_out": opted_out,
        "completed": completed,
        "partial_discarded": answered["partial_discarded"],
        "interview_queue": answered["interview_queue"],
        "next_step": next_step(db, wave),
        # none for a platform that sends no webhooks (LimeSurvey: its responses are pulled)
        "webhook_url": "" if wave["platform"] in WEBHOOKLESS else webhook_url(base_url, secret, wave),
        # SurveyMonkey: the URL to register for each event type (one type per webhook); {} for the others
        "webhook_urls": webhook_urls(base_url, secret, wave),
        **_signing(secret, wave),
        "slug": wave["slug"],
        "title": wave["title"],
        "queued": counts["queued"] + counts["sending"],
        "cancelled": counts["cancelled"],
        "resent_after_crash": counts["recovered"],
        "responses": answered["responses"],
        "duplicate_contact": answered["duplicate_contact"],
        "duplicate_city": answered["duplicate_city"],
        "duplicate_responses": answered["duplicate_responses"],
        "cities_responded": answered["cities_responded"],
        "unmatched_responses": answered["unmatched"],
        "launched_at": wave["launched_at"],
        "closes_at": wave["closes_at"],
        **outbox.release_times(db, wave["id"]),
        **_intake(db, wave),
    }


def _intake(db: Database, wave: dict[str, Any]) -> dict[str, Any]:
    failed, why = inbox.failures(db, wave["id"])
    retrying, retry_error = inbox.waiting(db, wave["id"])
    pulled = pull.state(db, wave["id"])
    return {
        "intake": wave["intake"],
        "intake_failed": failed,
        "intake_errors": why,
        # notified responses whose fetch failed and is being tried again, and the latest reason
        "intake_retrying": retrying,
        "intake_retry_error": retry_error,
        # where pulling stands (None: never pulled); error and refused say why the last pull failed
        "pull": None
        if pulled is None
        else {key: pulled[key] for key in ("last_done_at", "last_started_at", "next_at", "last_error", "recorded")}
        | {"refused": bool(pulled["refused"])},
    }


def _signing(secret: str, wave: dict[str, Any]) -> dict[str, Any]:
    """For platforms that sign their webhooks: the secret to paste into the platform's webhook settings."""
    if wave["platform"] == "typeform":
        return {"webhook_signing_secret": webhook_signing_secret(secret, wave)}
    if wave["platform"] == "signed":
        return {"webhook_signing_secret": whsec(webhook_signing_secret(secret, wave))}
    return {}

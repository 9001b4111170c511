"""What the dashboard and the partner view show, read from the database (read only; the pages call these).

    funnel               people invited → sent → delivered (sent − bounced) → completed, overall or one network's
    completions_per_day  people who finished, per day of the field period in the wave's time zone, reminder days
    outbox               a wave's messages by kind and state, the failed ones with their reasons
    partials, unmatched  partial audit lines (never answers) and responses whose token named nobody
    interview_queue      the wave's interview queue by state, and its rows
    partner_*            one network's waves, contacts with delivery problems, who answered, its uploads

Queries lean on the indexes of schema migration 6 (responses by wave, status and time; recipients by
contact) so a page stays fast at 100,000 contacts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from surveybot.clock import iso, parse_stored
from surveybot.waves import steps

SURVEY_KINDS = ("invitation", "reminder", "final_reminder")
_KINDS = "('invitation', 'reminder', 'final_reminder')"
MAX_DAYS = 120  # a longer field period is shown by its first days
LIMIT = 200  # rows of a listing on a page


def _network_scope(network: str | None) -> tuple[str, list[Any]]:
    if network is None:
        return "", []
    return " AND r.contact_id IN (SELECT contact_id FROM contact_sources WHERE network = ?)", [network]


def funnel(db: Database, wave_id: int, network: str | None = None) -> dict[str, Any]:
    """People at each stage: ``sent`` had an invitation or reminder accepted by the relay, or refused as a
    bounce; ``bounced`` of those, the ones whose address is suppressed as bounced; ``delivered`` = sent −
    bounced."""
    scope, params = _network_scope(network)
    invited, sent, bounced, opted_out, completed = db.execute(
        f"""WITH tried AS (SELECT contact_id, max(state = 'sent') AS accepted FROM outbox
                           WHERE wave_id = ? AND kind IN {_KINDS} AND state IN ('sent', 'failed')
                           GROUP BY contact_id)
            SELECT count(*), count(CASE WHEN a.accepted OR sp.kind = 'bounce' THEN 1 END),
                   count(CASE WHEN a.contact_id IS NOT NULL AND sp.kind = 'bounce' THEN 1 END),
                   count(CASE WHEN sp.kind = 'opt_out' THEN 1 END),
                   count(CASE WHEN r.completed_at IS NOT NULL OR EXISTS (SELECT 1 FROM responses x
                         WHERE x.wave_id = r.wave_id AND x.contact_id = r.contact_id AND x.status = 'complete')
                         THEN 1 END)
            FROM recipients r JOIN contacts c ON c.id = r.contact_id
            LEFT JOIN tried a ON a.contact_id = r.contact_id
            LEFT JOIN suppressions sp ON sp.email = c.email
            WHERE r.wave_id = ?{scope}""",
        [wave_id, wave_id, *params],
    ).fetchone()
    return {
        "invited": invited,
        "sent": sent,
        "bounced": bounced,
        "delivered": sent - bounced,
        "completed": completed,
        "opted_out": opted_out,
    }


def zone_of_wave(wave: dict[str, Any]) -> ZoneInfo | timezone:
    return ZoneInfo(wave["timezone"]) if wave.get("timezone") else UTC


def field_period(db: Database, wave: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """From the invitation (sent or due) to the close (done or due); None before launch."""
    plan = steps(db, wave["id"])
    invitation = next((s for s in plan if s["kind"] == "invitation"), None)
    start = (invitation["done_at"] or invitation["due_at"]) if invitation else wave["launched_at"]
    end = wave["closed_at"] or wave["closes_at"]
    if not start or not end:
        return None
    return parse_stored(start), max(parse_stored(end), parse_stored(start))


def completions_per_day(db: Database, wave: dict[str, Any]) -> dict[str, Any]:
    """People who finished per local day of the field period (their first complete response; later ones of
    the same person are duplicates). A response before the first day or after the last counts in that day,
    so the days add up to everyone who finished."""
    zone = zone_of_wave(wave)
    period = field_period(db, wave)
    name = wave.get("timezone") or "UTC"
    if period is None:
        return {"zone": name, "days": [], "total": 0}
    first, last = (moment.astimezone(zone).date() for moment in period)
    days = [first + timedelta(days=n) for n in range(min((last - first).days + 1, MAX_DAYS))]
    bounds = [iso(datetime.combine(day, time(0), tzinfo=zone)) for day in days[1:]]
    edges = ["", *bounds, "9999"]
    rows = ", ".join("(?, ?, ?)" for _ in days)
    values = [v for n, day in enumerate(days) for v in (day.isoformat(), edges[n], edges[n + 1])]
    counts = dict(
        db.execute(
            f"""WITH b(day, lo, hi) AS (VALUES {rows})
            SELECT b.day, (SELECT count(*) FROM responses x WHERE x.wave_id = ? AND x.status = 'complete'
                           AND x.received_at >= b.lo AND x.received_at < b.hi AND x.duplicate != 'contact')
            FROM b""",
            [*values, wave["id"]],
        ).fetchall()
    )
    reminders = {
        parse_stored(s["done_at"] or s["due_at"]).astimezone(zone).date()
        for s in steps(db, wave["id"])
        if s["kind"] in ("reminder", "final_reminder") and s["state"] in ("pending", "done")
    }
    listed = [
        {"day": day.isoformat(), "count": counts.get(day.isoformat(), 0), "reminder": day in reminders} for day in days
    ]
    return {"zone": name, "days": listed, "total": sum(d["count"] for d in listed)}


def outbox(db: Database, wave_id: int, limit: int = LIMIT) -> dict[str, Any]:
    """The wave's messages by kind and state, the failed ones (newest first) and why, and how many of those a
    retry would send again (recipients not suppressed and not finished)."""
    by_kind: dict[str, dict[str, int]] = {}
    for kind, state, count in db.execute(
        "SELECT kind, state, count(*) FROM outbox WHERE wave_id = ? GROUP BY kind, state", [wave_id]
    ):
        by_kind.setdefault(kind, {})[state] = count
    failed = list(
        db.query(
            """SELECT o.id, o.kind, o.to_email, o.attempts, o.last_error, c.name FROM outbox o
           LEFT JOIN contacts c ON c.id = o.contact_id
           WHERE o.wave_id = ? AND o.state = 'failed' ORDER BY o.id DESC LIMIT ?""",
            [wave_id, limit],
        )
    )
    reasons = db.execute(
        "SELECT last_error, count(*) FROM outbox WHERE wave_id = ? AND state = 'failed' "
        "GROUP BY last_error ORDER BY count(*) DESC, last_error LIMIT 20",
        [wave_id],
    ).fetchall()
    retryable = db.execute(
        f"""SELECT count(*) FROM outbox o JOIN recipients r ON r.wave_id = o.wave_id AND r.contact_id = o.contact_id
            WHERE o.wave_id = ? AND o.state = 'failed' AND o.kind IN {_KINDS} AND r.completed_at IS NULL
              AND o.to_email NOT IN (SELECT email FROM suppressions)""",
        [wave_id],
    ).fetchone()[0]
    total = {
        state: sum(states.get(state, 0) for states in by_kind.values())
        for state in ("queued", "sending", "sent", "failed", "cancelled")
    }
    return {
        "by_kind": by_kind,
        "total": total,
        "failed": failed,
        "reasons": [{"reason": r, "count": n} for r, n in reasons],
        "retryable": retryable,
    }


def partials(db: Database, wave_id: int, limit: int = LIMIT) -> dict[str, Any]:
    """Partial audit lines, newest first: who, how far, why, when. The answers were never kept."""
    rows = list(
        db.query(
            """SELECT p.response_id, p.progress, p.reason, p.received_at, c.name, c.email FROM partial_audit p
           LEFT JOIN contacts c ON c.id = p.contact_id WHERE p.wave_id = ?
           AND NOT EXISTS (SELECT 1 FROM responses x WHERE x.wave_id = p.wave_id AND x.platform = p.platform
                           AND x.response_id = p.response_id)
           ORDER BY p.received_at DESC, p.id DESC LIMIT ?""",
            [wave_id, limit],
        )
    )
    return {"rows": rows}


def unmatched(db: Database, wave_id: int, limit: int = LIMIT) -> dict[str, Any]:
    """Kept responses whose token named nobody, newest first (their answers stay in the export)."""
    rows = list(
        db.query(
            """SELECT id, response_id, platform, recorded_at, received_at FROM responses
           WHERE wave_id = ? AND contact_id IS NULL AND status = 'unmatched'
           ORDER BY received_at DESC, id DESC LIMIT ?""",
            [wave_id, limit],
        )
    )
    return {"rows": rows}


def interview_queue(db: Database, wave_id: int, limit: int = LIMIT) -> dict[str, Any]:
    states = dict(
        db.execute("SELECT state, count(*) FROM interview_queue WHERE wave_id = ? GROUP BY state", [wave_id]).fetchall()
    )
    rows = list(
        db.query(
            """SELECT q.id, q.state, c.name, c.email, c.city, c.country, s.researcher, s.starts_at
           FROM interview_queue q JOIN contacts c ON c.id = q.contact_id
           LEFT JOIN interview_slots s ON s.id = q.slot_id WHERE q.wave_id = ?
           ORDER BY COALESCE(s.starts_at, '9999'), q.created_at, q.id LIMIT ?""",
            [wave_id, limit],
        )
    )
    return {"states": states, "rows": rows}


# --- a partner network's own view ---------------------------------------------------------------------------


def partner_waves(db: Database, network: str) -> list[dict[str, Any]]:
    """Launched waves with at least one recipient the network listed."""
    return list(
        db.query(
            """SELECT w.id, w.slug, w.title, CASE WHEN w.paused AND w.state != 'closed' THEN 'paused' ELSE w.state END
                  AS state, w.launched_at, w.closes_at, w.closed_at, w.share_status_with_networks
           FROM waves w WHERE EXISTS (SELECT 1 FROM contact_sources s JOIN recipients r ON r.contact_id = s.contact_id
                                      AND r.wave_id = w.id WHERE s.network = ?)
           ORDER BY w.id DESC""",
            [network],
        )
    )


def sharing(db: Database) -> str:
    """Which waves share who answered, as one short text (part of the key of a partner's kept figures)."""
    return db.execute("SELECT group_concat(id || ':' || share_status_with_networks) FROM waves").fetchone()[0] or ""


def partner_problems(db: Database, wave_id: int, network: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The network's recipients whose address bounced, who opted out, or whose message could not be
    delivered: as that network listed them, so it can fix its list."""
    sql = f"""FROM recipients r JOIN contacts c ON c.id = r.contact_id
              LEFT JOIN contact_listings l ON l.contact_id = c.id AND l.network = ?
              LEFT JOIN suppressions sp ON sp.email = c.email
              LEFT JOIN (SELECT contact_id, max(last_error) AS error FROM outbox
                         WHERE wave_id = ? AND state = 'failed' AND kind IN {_KINDS} GROUP BY contact_id) f
                     ON f.contact_id = r.contact_id
              WHERE r.wave_id = ? AND r.contact_id IN (SELECT contact_id FROM contact_sources WHERE network = ?)
                AND (sp.kind IN ('bounce', 'opt_out') OR f.error IS NOT NULL)"""
    params = [network, wave_id, wave_id, network]
    total = db.execute(f"SELECT count(*) {sql}", params).fetchone()[0]
    rows = list(
        db.query(
            f"""SELECT COALESCE(l.name, c.name) AS name, c.email, COALESCE(l.city, c.city) AS city,
                   COALESCE(l.country, c.country) AS country,
                   CASE sp.kind WHEN 'bounce' THEN 'bounced' WHEN 'opt_out' THEN 'opted_out' ELSE 'failed' END
                       AS problem, CASE WHEN sp.kind = 'bounce' THEN sp.reason ELSE f.error END AS detail
            {sql} ORDER BY c.email LIMIT ? OFFSET ?""",
            [*params, limit, offset],
        )
    )
    return {"rows": rows, "total": total, "offset": offset, "limit": limit}


def partner_answered(db: Database, wave_id: int, network: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The network's recipients and whether each finished (only for a wave that shares it)."""
    sql = """FROM recipients r JOIN contacts c ON c.id = r.contact_id
             LEFT JOIN contact_listings l ON l.contact_id = c.id AND l.network = ?
             WHERE r.wave_id = ? AND r.contact_id IN (SELECT contact_id FROM contact_sources WHERE network = ?)"""
    params = [network, wave_id, network]
    total = db.execute(f"SELECT count(*) {sql}", params).fetchone()[0]
    rows = list(
        db.query(
            f"""SELECT COALESCE(l.name, c.name) AS name, c.email, COALESCE(l.city, c.city) AS city,
                   COALESCE(l.country, c.country) AS country,
                   r.completed_at IS NOT NULL OR EXISTS (SELECT 1 FROM responses x WHERE x.wave_id = r.wave_id
                       AND x.contact_id = r.contact_id AND x.status = 'complete') AS answered
            {sql} ORDER BY answered DESC, c.email LIMIT ? OFFSET ?""",
            [*params, limit, offset],
        )
    )
    return {"rows": rows, "total": total, "offset": offset, "limit": limit}


def partner_uploads(db: Database, network: str, limit: int = 100) -> list[dict[str, Any]]:
    """The network's own uploads, newest first, each with its report's counts and rejected rows."""
    rows = list(
        db.query(
            """SELECT id, filename, source, state, created_at, finished_at, rows, imported, updated, duplicates,
                  conflicts, rejected, errors FROM uploads WHERE network = ? COLLATE NOCASE
           ORDER BY id DESC LIMIT ?""",
            [network, limit],
        )
    )
    for row in rows:
        row["errors"] = json.loads(row["errors"] or "[]")[:500]
    return rows


def replies(db: Database, wave_id: int) -> dict[str, Any]:
    """What came back from the wave's recipients after the relay took their mail: people's replies (shown,
    newest first) and how many automatic replies were recorded."""
    from surveybot.mailbox.store import replies as stored

    rows = stored(db, wave_id)
    people = [r for r in rows if r["kind"] == "reply"]
    return {
        "rows": people[:LIMIT],
        "total": len(people),
        "auto_replies": sum(1 for r in rows if r["kind"] == "auto_reply"),
    }


def without_zone(db: Database, wave_id: int) -> int:
    """Recipients whose own time zone is unknown (no import column, city or single-zone country): their mail
    follows the wave's zone. Places are looked up once per distinct city and country, not per contact."""
    from surveybot.contacts.zones import zone_of

    places = db.execute(
        """SELECT c.timezone, c.city, c.country, count(*) FROM recipients r JOIN contacts c ON c.id = r.contact_id
           WHERE r.wave_id = ? GROUP BY c.timezone, c.city, c.country""",
        [wave_id],
    ).fetchall()
    return sum(
        n
        for zone, city, country, n in places
        if zone_of({"timezone": zone or "", "city": city or "", "country": country or ""})[1] == "none"
    )

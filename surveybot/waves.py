"""Waves: their settings, their lifecycle (draft → scheduled → open → closed, with pause) and their plan.

The plan is a list of steps in ``wave_steps`` (invitation at the start, each reminder, close), written at
launch. Commands here only write the database and bump the plan version; the running service notices
the bump and reschedules (see ``schedule.py``), so nothing needs a restart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from surveybot import windows
from surveybot.clock import format_duration, iso, parse_stored
from surveybot.contacts.zones import zone_of
from surveybot.db import transaction
from surveybot.errors import InvalidInput, NotFound

PLATFORMS = ("qualtrics", "typeform", "surveymonkey", "signed", "limesurvey")
INTAKES = ("webhook", "poll")
# Platforms whose responses can be pulled (an export API); LimeSurvey has nothing else, so it is always polled.
PULLED = ("qualtrics", "limesurvey")
WEBHOOKLESS = ("limesurvey",)
MAX_TITLE = 200  # characters: the title is the subject of every message
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")


@dataclass(frozen=True)
class WaveSpec:
    slug: str
    title: str
    platform: str
    survey_id: str
    survey_url: str
    survey_url_es: str = ""
    start: datetime | None = None  # None: when launched
    reminders: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=12))
    close_after: timedelta = timedelta(days=14)
    networks: tuple[str, ...] = ()
    interview_question: str = ""
    interview_yes: str = ""
    required: tuple[str, ...] = field(default_factory=tuple[Any, ...])
    title_es: str = ""
    close_at_end_of_day: bool = False
    timezone: str = ""  # the wave's own zone ('' = this machine's when created)
    send_window: str = ""  # 'HH:MM-HH:MM' in each recipient's zone ('' = any time)
    send_days: str = ""  # 'mon-fri' ('' = every day)
    share_status_with_networks: bool = False  # partner networks see which of their contacts answered
    intake: str = ""  # 'webhook' or 'poll' ('' = the platform's usual: poll for LimeSurvey, else webhook)
    in_progress_timeout: timedelta = timedelta(days=7)  # how long after the close pulls go on


def create_wave(db: Database, spec: WaveSpec, now: datetime) -> dict[str, Any]:
    _check(db, spec)
    with transaction(db):
        if db.execute("SELECT 1 FROM waves WHERE slug = ?", [spec.slug]).fetchone():
            raise InvalidInput(f"a wave named {spec.slug!r} exists already", field="slug")
        db.execute(
            """INSERT INTO waves (slug, title, platform, survey_id, survey_url, survey_url_es, start_at, reminders,
               close_after, networks, interview_question, interview_yes, required, created_at, title_es,
               close_at_end_of_day, timezone, send_window, send_days, share_status_with_networks, intake,
               in_progress_timeout)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                spec.slug,
                spec.title,
                spec.platform,
                spec.survey_id,
                spec.survey_url,
                spec.survey_url_es,
                iso(spec.start) if spec.start else None,
                json.dumps([int(r.total_seconds()) for r in spec.reminders]),
                int(spec.close_after.total_seconds()),
                json.dumps(list(spec.networks)),
                spec.interview_question,
                spec.interview_yes,
                json.dumps(list(spec.required)),
                iso(now),
                spec.title_es,
                int(spec.close_at_end_of_day),
                spec.timezone or windows.machine_zone(),
                spec.send_window.strip(),
                spec.send_days.strip().lower(),
                int(spec.share_status_with_networks),
                spec.intake or default_intake(spec.platform),
                int(spec.in_progress_timeout.total_seconds()),
            ],
        )
    return get_wave(db, spec.slug)


def _check(db: Database, spec: WaveSpec) -> None:
    if not _SLUG.match(spec.slug):
        raise InvalidInput("a wave's name must be lower-case letters, digits, '-' or '_' (at most 63)", field="slug")
    if not spec.title.strip() or not spec.title.isprintable():
        raise InvalidInput("the title must be one line of text", field="title")
    for name, title in (("title", spec.title), ("title_es", spec.title_es)):
        if title and not title.isprintable():
            raise InvalidInput(f"the {name.replace('_', ' ')} must be one line of text", field=name)
        if len(title) > MAX_TITLE:
            raise InvalidInput(
                f"the {name.replace('_', ' ')} is {len(title):,} characters long; at most {MAX_TITLE} "
                f"fit in an e-mail's subject line",
                field=name,
            )
    if spec.platform not in PLATFORMS:
        raise InvalidInput(f"platform must be one of {', '.join(PLATFORMS)}", field="platform")
    if not spec.survey_id.strip():
        raise InvalidInput("the survey id is blank", field="survey_id")
    check_intake(spec.platform, spec.intake or default_intake(spec.platform))
    if spec.in_progress_timeout < timedelta(0):
        raise InvalidInput("the in-progress timeout cannot be negative", field="in_progress_timeout")
    for name, url in (("survey_url", spec.survey_url), ("survey_url_es", spec.survey_url_es)):
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.netloc or not url.isprintable()):
            raise InvalidInput(f"{url!r} is not an http(s) URL", field=name)
    if not spec.survey_url:
        raise InvalidInput("the survey URL is blank", field="survey_url")
    if spec.close_after <= timedelta(0):
        raise InvalidInput("the wave must stay open for some time", field="close_after")
    for reminder in spec.reminders:
        if not timedelta(0) < reminder < spec.close_after:
            raise InvalidInput(
                f"the reminder at {format_duration(reminder)} falls outside the wave: every reminder must fall "
                f"after the start and before the close (at {format_duration(spec.close_after)})",
                field="reminders",
            )
    if len(set(spec.reminders)) != len(spec.reminders):
        raise InvalidInput("two reminders at the same time", field="reminders")
    if spec.timezone:
        windows.check_zone(spec.timezone)
    if spec.send_window:
        windows.parse_window(spec.send_window)
    if spec.send_days:
        windows.parse_days(spec.send_days)
    if bool(spec.interview_question) != bool(spec.interview_yes):
        raise InvalidInput("--interview-question and --interview-yes go together", field="interview_question")
    known = {n.lower(): n for (n,) in db.execute("SELECT DISTINCT network FROM contact_sources")}
    unknown = [n for n in spec.networks if n.lower() not in known]
    if unknown:
        listed = ", ".join(sorted(known.values())) or "none yet"
        raise InvalidInput(
            f"no contacts were imported for network {unknown[0]!r} (networks: {listed})", field="network"
        )


def get_wave(db: Database, slug: str) -> dict[str, Any]:
    row = next(db.query("SELECT * FROM waves WHERE slug = ?", [slug]), None)
    if row is None:
        names = [name for (name,) in db.execute("SELECT slug FROM waves ORDER BY id")]
        path = next((file for _, name, file in db.execute("PRAGMA database_list") if name == "main"), "")
        held = f"its waves: {', '.join(names)}" if names else "it holds no wave yet"
        raise NotFound(f"no wave named {slug!r} in the database {path} ({held})", public=f"no wave named {slug!r}")
    for key in ("reminders", "networks", "required"):
        row[key] = json.loads(row[key])
    return row


def waves_by_id(db: Database, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    found = {}
    for wave in db.query(f"SELECT * FROM waves WHERE id IN ({','.join('?' * len(ids))})", ids):
        for key in ("reminders", "networks", "required"):
            wave[key] = json.loads(wave[key])
        found[wave["id"]] = wave
    return found


def list_waves(db: Database) -> list[dict[str, Any]]:
    """Every wave with its headline counts: invited, sent, completed (people who finished)."""
    return list(
        db.query(
            """SELECT w.slug, w.title, w.platform, CASE WHEN w.paused AND w.state != 'closed' THEN 'paused'
                  ELSE w.state END AS state, w.start_at, w.launched_at, w.closes_at, w.closed_at,
                  (SELECT count(*) FROM recipients r WHERE r.wave_id = w.id) AS invited,
                  (SELECT count(*) FROM outbox o WHERE o.wave_id = w.id AND o.state = 'sent'
                     AND o.kind IN ('invitation', 'reminder', 'final_reminder')) AS sent,
                  (SELECT count(*) FROM recipients r WHERE r.wave_id = w.id AND r.completed_at IS NOT NULL)
                     AS completed
           FROM waves w ORDER BY w.id"""
        )
    )


def plan_version(db: Database) -> int:
    row = db.conn.execute("SELECT value FROM meta WHERE key = 'plan_version'").fetchone()
    return int(row[0]) if row else 0


def bump_plan(db: Database) -> None:
    db.execute("""INSERT INTO meta (key, value) VALUES ('plan_version', '1')
                  ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1""")


def launch(db: Database, slug: str, now: datetime, *, skip_overlap: bool = False) -> dict[str, Any]:
    """Write the wave's plan and schedule it. The invitation goes at the start (now if it has passed).
    ``skip_overlap`` leaves out contacts who are in another open wave when the invitations go."""
    with transaction(db):
        wave = get_wave(db, slug)
        if wave["state"] != "draft":
            raise InvalidInput(f"wave {slug!r} was launched already (it is {wave['state']})", field="slug")
        if skip_overlap:
            db.execute("UPDATE waves SET skip_overlap = 1 WHERE id = ?", [wave["id"]])
        steps = planned_steps(wave, now)
        closes = steps[-1][1]
        db.conn.executemany(
            "INSERT INTO wave_steps (wave_id, kind, due_at) VALUES (?, ?, ?)",
            [(wave["id"], kind, iso(at)) for kind, at in steps],
        )
        db.execute(
            "UPDATE waves SET state = 'scheduled', launched_at = ?, closes_at = ? WHERE id = ?",
            [iso(now), iso(closes), wave["id"]],
        )
        bump_plan(db)
    return get_wave(db, slug)


def set_paused(db: Database, slug: str, paused: bool) -> dict[str, Any]:
    with transaction(db):
        wave = get_wave(db, slug)
        if wave["state"] in ("draft", "closed"):
            raise InvalidInput(
                f"wave {slug!r} is {wave['state']}: only a launched wave can be {'paused' if paused else 'resumed'}",
                field="slug",
            )
        if bool(wave["paused"]) == paused:
            raise InvalidInput(f"wave {slug!r} is {'already paused' if paused else 'not paused'}", field="slug")
        db.execute("UPDATE waves SET paused = ? WHERE id = ?", [int(paused), wave["id"]])
        bump_plan(db)
    return get_wave(db, slug)


def set_sharing(db: Database, slug: str, share: bool) -> dict[str, Any]:
    """Whether partner networks see which of their contacts answered (else only counts, small ones hidden)."""
    with transaction(db):
        wave = get_wave(db, slug)
        db.execute("UPDATE waves SET share_status_with_networks = ? WHERE id = ?", [int(share), wave["id"]])
    return get_wave(db, slug)


def default_intake(platform: str) -> str:
    return "poll" if platform in WEBHOOKLESS else "webhook"


def check_intake(platform: str, intake: str) -> None:
    """Refuse an intake the platform cannot have: pulls need an export API, webhooks a platform that sends them."""
    if intake not in INTAKES:
        raise InvalidInput(f"intake must be one of {', '.join(INTAKES)}", field="intake")
    if intake == "poll" and platform not in PULLED:
        raise InvalidInput(
            f"{platform} responses cannot be pulled: its waves take webhooks (--intake webhook); pulling works "
            f"for {' and '.join(PULLED)}",
            field="intake",
        )
    if intake == "webhook" and platform in WEBHOOKLESS:
        raise InvalidInput(f"{platform} sends no webhooks: its responses are pulled (--intake poll)", field="intake")


def set_intake(db: Database, slug: str, intake: str) -> dict[str, Any]:
    """Switch how the wave's responses come in; recording is idempotent per response, so a switch mid-field
    counts nothing twice. A switch to poll pulls at the next round."""
    with transaction(db):
        wave = get_wave(db, slug)
        check_intake(wave["platform"], intake)
        db.execute("UPDATE waves SET intake = ? WHERE id = ?", [intake, wave["id"]])
        db.execute("UPDATE wave_pulls SET next_at = NULL WHERE wave_id = ?", [wave["id"]])
    return get_wave(db, slug)


def retry_failed(db: Database, slug: str, now: datetime) -> int:
    """Queue the wave's failed invitations and reminders again, only to recipients who have not finished and
    are not suppressed: now, or when each one's send window next opens. Returns how many."""
    with transaction(db):
        wave = get_wave(db, slug)
        if wave["state"] == "closed":
            raise InvalidInput(f"wave {slug!r} is closed: its e-mail is not sent again", field="slug")
        rows = db.execute(
            """SELECT o.id, c.city, c.country, c.timezone FROM outbox o
               JOIN recipients r ON r.wave_id = o.wave_id AND r.contact_id = o.contact_id
               JOIN contacts c ON c.id = o.contact_id
               WHERE o.wave_id = ? AND o.state = 'failed' AND o.kind IN ('invitation', 'reminder', 'final_reminder')
                 AND r.completed_at IS NULL AND o.to_email NOT IN (SELECT email FROM suppressions)""",
            [wave["id"]],
        ).fetchall()
        window = windows.of_wave(wave)
        for outbox_id, city, country, zone in rows:
            known = zone_of({"timezone": zone, "city": city, "country": country})[0]
            due = now if window is None else window.opens(now, known or wave["timezone"])
            db.execute(
                "UPDATE outbox SET state = 'queued', attempts = 0, last_error = '', due_at = ? WHERE id = ?",
                [iso(due), outbox_id],
            )
    return len(rows)


def close(db: Database, slug: str, now: datetime) -> dict[str, Any]:
    """Close now: no more steps, and nothing unsent of the wave's invitations and reminders goes out."""
    with transaction(db):
        wave = get_wave(db, slug)
        if wave["state"] == "closed":
            return wave
        close_wave(db, wave["id"], now)
    return get_wave(db, slug)


def close_wave(db: Database, wave_id: int, now: datetime) -> None:
    """Inside a transaction: mark the wave closed, cancel its pending steps and unsent survey mail."""
    stamp = iso(now)
    db.execute("UPDATE waves SET state = 'closed', closed_at = ? WHERE id = ?", [stamp, wave_id])
    db.execute(
        "UPDATE wave_steps SET state = CASE WHEN kind = 'close' THEN 'done' ELSE 'cancelled' END, "
        "done_at = ? WHERE wave_id = ? AND state = 'pending'",
        [stamp, wave_id],
    )
    db.execute(
        """UPDATE outbox SET state = 'cancelled', last_error = 'wave closed'
                  WHERE wave_id = ? AND state = 'queued' AND kind IN ('invitation', 'reminder', 'final_reminder')""",
        [wave_id],
    )
    bump_plan(db)


def planned_steps(wave: dict[str, Any], now: datetime) -> list[tuple[str, datetime]]:
    """The steps a launch now would write: (kind, when)."""
    start = max(parse_stored(wave["start_at"]), now) if wave["start_at"] else now
    reminders = sorted(timedelta(seconds=s) for s in wave["reminders"])
    steps = [("invitation", start)]
    for number, offset in enumerate(reminders, start=1):
        final = number == len(reminders) and len(reminders) > 1
        steps.append(("final_reminder" if final else "reminder", start + offset))
    closes = start + timedelta(seconds=wave["close_after"])
    if wave.get("close_at_end_of_day"):  # 23:59 of the last day, as the wave's clock shows it
        local = closes.astimezone(_zone(wave))
        closes = local.replace(hour=23, minute=59, second=0, microsecond=0).astimezone(UTC)
    steps.append(("close", closes))
    return steps


def _zone(wave: dict[str, Any]) -> tzinfo | None:
    """The wave's time zone (``None``: this machine's)."""
    name = wave.get("timezone") or ""
    return ZoneInfo(name) if name else None


def next_step(db: Database, wave: dict[str, Any]) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT kind, due_at FROM wave_steps WHERE wave_id = ? AND state = 'pending' ORDER BY due_at, id LIMIT 1",
        [wave["id"]],
    ).fetchone()
    if row is None:
        return None
    return {"kind": row[0], "at": row[1], "held": bool(wave["paused"])}


def steps(db: Database, wave_id: int) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT id, kind, due_at, state, done_at, enqueued FROM wave_steps WHERE wave_id = ? ORDER BY due_at, id",
            [wave_id],
        )
    )

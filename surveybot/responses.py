"""Responses: keep complete ones, throw out partial ones, and track who has finished.

A response is complete when the platform says it finished and it answers every question the wave
requires (``--require``). Complete: stored with its answers, the contact marked done for the wave (no
more reminders, a thank-you queued), and queued for an interview if they opted in. Partial: only an audit
line is written (response id, progress, time, reason); its answers never reach the database.

Recording is idempotent per (wave, platform, response id): a retried delivery, or a late partial event for a
response already complete, changes nothing (per wave, because LimeSurvey numbers each survey's responses from
1). A second complete response from the same contact, or from the same city, is kept and flagged as a
duplicate; a response whose token is another wave's is left to that wave (``other_wave``, nothing written);
one whose token names nobody is kept aside as unmatched for the coordinator (in each wave that hears of it:
without a token nothing says which wave it belongs to).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from surveybot import recipients
from surveybot.clock import iso
from surveybot.db import transaction
from surveybot.errors import InvalidInput, NotFound
from surveybot.platforms import ResponseEvent, yes

OPT_IN_FIELD = "interview_opt_in"


def _answered(value: object) -> bool:
    return value not in (None, "", [], {})


def missing_required(wave: dict[str, Any], event: ResponseEvent) -> list[str]:
    """The required questions the response leaves unanswered. A question counts as answered by any of its
    parts: Qualtrics writes a text entry as ``QID5_TEXT`` and a matrix row as ``QID5_2``, LimeSurvey a
    subquestion as ``Q5[SQ001]``."""
    required = wave["required"] if isinstance(wave["required"], list) else json.loads(wave["required"])
    return [
        q
        for q in required
        if not _answered(event.answers.get(q))
        and not any(_answered(v) for k, v in event.answers.items() if k.startswith((f"{q}_", f"{q}[")))
    ]


def _folded(value: object) -> str:
    return " ".join(str(value).casefold().split())


def opted_in(wave: dict[str, Any], event: ResponseEvent) -> bool:
    """Whether the respondent said yes to the interview: the answer's stored value or its label (the choice
    text, where the platform gives one) is what the coordinator typed; a yes/no answer matches a yes word."""
    question, wanted = wave["interview_question"], wave["interview_yes"]
    if question:
        for value in (event.answers.get(question), event.labels.get(question)):
            values = value if isinstance(value, list) else [value]
            for one in values:
                if isinstance(one, bool):
                    if one == yes(wanted):
                        return True
                elif one is not None and _folded(one) == _folded(wanted):
                    return True
    return yes(event.embedded.get(OPT_IN_FIELD, ""))


def record(db: Database, wave: dict[str, Any], event: ResponseEvent, now: datetime) -> str:
    """Record one response event; returns what happened: complete, duplicate, unmatched, partial, repeat, or
    other_wave (nothing recorded: its link is another wave's, as when two waves share one survey, whose
    platform then tells each wave about the other's responses)."""
    stamp = iso(now)
    with transaction(db):
        if db.execute(
            "SELECT 1 FROM responses WHERE wave_id = ? AND platform = ? AND response_id = ?",
            [wave["id"], event.platform, event.response_id],
        ).fetchone():
            return "repeat"
        recipient = recipients.by_token(db, event.token) if event.token else None
        if recipient is not None and recipient["wave_id"] != wave["id"]:
            return "other_wave"  # the token is unforgeable: it is that wave's response, recorded there
        missing = missing_required(wave, event)
        if not event.finished or missing:
            reason = "not finished" if not event.finished else f"unanswered required: {', '.join(missing)}"
            # the recipient, never an answer: partials can be counted per person and per group
            cursor = db.execute(
                "INSERT OR IGNORE INTO partial_audit (wave_id, platform, response_id, contact_id, progress, reason, "
                "recorded_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    wave["id"],
                    event.platform,
                    event.response_id,
                    recipient["contact_id"] if recipient else None,
                    event.progress,
                    reason,
                    event.recorded_at,
                    stamp,
                ],
            )
            return "partial" if cursor.rowcount else "repeat"
        if recipient is None:
            _insert(db, wave, event, None, "unmatched", "", stamp)
            return "unmatched"
        contact_id = recipient["contact_id"]
        duplicate = _duplicate_of(db, wave["id"], contact_id)
        _insert(db, wave, event, contact_id, "complete", duplicate, stamp)
        # Whoever finished is done, whatever the flag: a colleague from the same city answering first does not
        # make this respondent's answer any less finished (a second response of the same person changes nothing).
        recipients.mark_completed(db, wave["id"], contact_id, now)
        if opted_in(wave, event):
            db.execute(
                "INSERT OR IGNORE INTO interview_queue (wave_id, contact_id, response_id, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                [wave["id"], contact_id, event.response_id, stamp, stamp],
            )
        return "duplicate" if duplicate else "complete"


def assign_unmatched(db: Database, wave: dict[str, Any], row_id: int, contact_id: int, now: datetime) -> str:
    """A coordinator says whose an unmatched response is: it becomes that recipient's complete response
    (flagged as a duplicate if they or their city had answered), they are done (no more reminders, a
    thank-you) and an interview opt-in in its answers queues them. Returns complete or duplicate."""
    with transaction(db):
        row = db.execute(
            "SELECT platform, response_id, answers, embedded FROM responses WHERE id = ? AND wave_id = ? "
            "AND status = 'unmatched'",
            [row_id, wave["id"]],
        ).fetchone()
        if row is None:
            raise NotFound(f"no unmatched response {row_id} in wave {wave['slug']!r}")
        if not db.execute(
            "SELECT 1 FROM recipients WHERE wave_id = ? AND contact_id = ?", [wave["id"], contact_id]
        ).fetchone():
            raise InvalidInput(f"that contact was not invited to wave {wave['slug']!r}", field="email")
        duplicate = _duplicate_of(db, wave["id"], contact_id)
        db.execute(
            "UPDATE responses SET contact_id = ?, status = 'complete', duplicate = ? WHERE id = ?",
            [contact_id, duplicate, row_id],
        )
        recipients.mark_completed(db, wave["id"], contact_id, now)
        event = ResponseEvent(
            platform=row[0],
            response_id=row[1],
            finished=True,
            token=None,
            answers=json.loads(row[2]),
            embedded=json.loads(row[3]),
        )
        if opted_in(wave, event):
            db.execute(
                "INSERT OR IGNORE INTO interview_queue (wave_id, contact_id, response_id, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                [wave["id"], contact_id, row[1], iso(now), iso(now)],
            )
    return "duplicate" if duplicate else "complete"


def _duplicate_of(db: Database, wave_id: int, contact_id: int) -> str:
    if db.execute(
        "SELECT 1 FROM responses WHERE wave_id = ? AND contact_id = ? AND status = 'complete'", [wave_id, contact_id]
    ).fetchone():
        return "contact"
    city, country = db.execute("SELECT city, country FROM contacts WHERE id = ?", [contact_id]).fetchone()
    place = _place(city, country)
    if place is None:
        return ""
    # Folded inside SQLite (a Python function registered on the connection), so the search stops at the first
    # match and no row crosses into Python: a wave of 50,000 responses must not stall each webhook.
    db.conn.create_function("surveybot_fold", 1, _fold, deterministic=True)
    same = db.execute(
        """SELECT 1 FROM responses r JOIN contacts c ON c.id = r.contact_id
           WHERE r.wave_id = ? AND r.status = 'complete' AND r.contact_id != ?
             AND surveybot_fold(c.city) = ? AND surveybot_fold(c.country) = ? LIMIT 1""",
        [wave_id, contact_id, *place],
    ).fetchone()
    return "city" if same else ""


def _fold(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def _place(city: str | None, country: str | None) -> tuple[str, str] | None:
    """The form in which two cities are the same: trimmed, case-folded (in Python, since SQLite's lower()
    folds ASCII only and would count "Zürich" and "ZÜRICH" twice); None for a blank city."""
    city_key = _fold(city)
    return (city_key, _fold(country)) if city_key else None


def _insert(
    db: Database,
    wave: dict[str, Any],
    event: ResponseEvent,
    contact_id: int | None,
    status: str,
    duplicate: str,
    stamp: str,
) -> None:
    db.execute(
        "INSERT INTO responses (wave_id, platform, response_id, contact_id, status, duplicate, answers, embedded, "
        "recorded_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            wave["id"],
            event.platform,
            event.response_id,
            contact_id,
            status,
            duplicate,
            json.dumps(event.answers, ensure_ascii=False, default=str),
            json.dumps(event.embedded, ensure_ascii=False, default=str),
            event.recorded_at,
            stamp,
        ],
    )


def counts(db: Database, wave_id: int) -> dict[str, Any]:
    """The wave's response counts. ``responses`` are kept complete responses matched to a recipient;
    ``duplicate_contact`` the second and later ones of one person; ``completed`` the people who finished
    (``responses - duplicate_contact``); ``cities_responded`` the distinct non-blank (city, country) among
    them; ``duplicate_city`` the completed people whose city had already answered."""
    row = db.execute(
        """SELECT (SELECT count(*) FROM responses WHERE wave_id = :w AND status = 'complete'),
                  (SELECT count(*) FROM responses WHERE wave_id = :w AND status = 'complete' AND duplicate = 'contact'),
                  (SELECT count(*) FROM responses WHERE wave_id = :w AND status = 'complete' AND duplicate = 'city'),
                  (SELECT count(*) FROM responses WHERE wave_id = :w AND status = 'unmatched'),
                  (SELECT count(*) FROM partial_audit p WHERE p.wave_id = :w AND NOT EXISTS
                      (SELECT 1 FROM responses r WHERE r.wave_id = p.wave_id AND r.platform = p.platform
                       AND r.response_id = p.response_id)),
                  (SELECT count(*) FROM interview_queue
                   WHERE wave_id = :w AND state IN ('queued', 'invited', 'booked'))""",
        {"w": wave_id},
    ).fetchone()
    keys = ("responses", "duplicate_contact", "duplicate_city", "unmatched", "partial_discarded", "interview_queue")
    found = dict(zip(keys, row))
    found["completed"] = found["responses"] - found["duplicate_contact"]
    found["duplicate_responses"] = found["duplicate_city"] + found["duplicate_contact"]
    places = db.execute(
        """SELECT DISTINCT c.city, c.country FROM responses r JOIN contacts c ON c.id = r.contact_id
           WHERE r.wave_id = ? AND r.status = 'complete'""",
        [wave_id],
    )
    found["cities_responded"] = len({_place(*place) for place in places} - {None})
    return found


def partials_by_contact(db: Database, wave_id: int) -> dict[int, int]:
    """How many partial responses each recipient of the wave left (discarded ones; no answers are kept)."""
    return dict(
        db.execute(
            """SELECT contact_id, count(*) FROM partial_audit p WHERE wave_id = ? AND contact_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.wave_id = p.wave_id AND r.platform = p.platform
                           AND r.response_id = p.response_id)
           GROUP BY contact_id""",
            [wave_id],
        ).fetchall()
    )


# Cells a spreadsheet would run as a formula start with one of these (OWASP's list), or with their full-width
# forms, which some spreadsheets fold to the ASCII ones. Any leading white space or control character can hide
# one, so a cell starting with those is neutralised too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: object) -> str:
    """Text for a CSV cell that a spreadsheet shows as text, never runs (OWASP: prefix a quote)."""
    text = "" if value is None else (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    if text and (text.startswith(_FORMULA_START) or text[0].isspace() or not text[0].isprintable()):
        return "'" + text
    return text


def export_csv(db: Database, wave: dict[str, Any]) -> str:
    """Complete and unmatched responses as CSV: contact fields, flags, then one column per answer."""
    rows = list(
        db.query(
            """SELECT r.response_id, r.status, r.duplicate, r.recorded_at, r.answers, r.embedded,
                  c.email, c.name, c.city, c.country, c.region, c.language
           FROM responses r LEFT JOIN contacts c ON c.id = r.contact_id
           WHERE r.wave_id = ? ORDER BY r.id""",
            [wave["id"]],
        )
    )
    answers = [json.loads(r["answers"]) for r in rows]
    embedded = [json.loads(r["embedded"]) for r in rows]
    questions = sorted({k for a in answers for k in a}, key=_question_order)
    extra = sorted({k for e in embedded for k in e})
    fixed = [
        "response_id",
        "status",
        "duplicate",
        "recorded_at",
        "email",
        "name",
        "city",
        "country",
        "region",
        "language",
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in fixed + questions + extra])
    for row, a, e in zip(rows, answers, embedded):
        writer.writerow(
            [safe_cell(row[k]) for k in fixed]
            + [safe_cell(a.get(q)) for q in questions]
            + [safe_cell(e.get(k)) for k in extra]
        )
    return out.getvalue()


def _question_order(key: str) -> tuple[int, str]:
    digits = "".join(ch if ch.isdigit() else " " for ch in key).split()
    return (int(digits[0]) if digits else 0, key)

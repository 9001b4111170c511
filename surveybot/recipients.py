"""Recipients: one per wave and contact, with the personal token that ties a response back to them.

The token is derived from the service secret (see ``signing.py``), so every message of a wave carries the
same personal link without the link being stored; only its hash is kept, to find the recipient when the
survey platform sends the token back as embedded data.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlite_utils import Database

from surveybot.clock import iso
from surveybot.signing import derive, token_hash

TOKEN_PARAM = "token"


def survey_token(secret: str, wave_id: int, contact_id: int) -> str:
    return derive(secret, "survey-link", wave_id, contact_id)


_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def limesurvey_token(token: str) -> str:
    """The token as LimeSurvey keeps it: LimeSurvey strips every character but letters, digits, ``_`` and ``~``
    from a token (``-`` included) and old versions hold 35 at most, so the 22 URL-safe base64 digits of a
    survey token (132 bits) are written as 33 hex digits instead."""
    number = 0
    for ch in token:
        number = number * 64 + _BASE64URL.index(ch)
    return f"{number:0{len(token) * 6 // 4}x}"


def from_limesurvey_token(value: str) -> str:
    """The survey token a LimeSurvey token stands for (the value itself if it is not one of ours)."""
    if len(value) != 33 or any(ch not in "0123456789abcdef" for ch in value):
        return value
    number, digits = int(value, 16), []
    for _ in range(22):
        number, digit = divmod(number, 64)
        digits.append(_BASE64URL[digit])
    return "".join(reversed(digits))


def survey_links(wave: dict[str, Any], token: str) -> dict[str, str]:
    """The personal survey link in each language (Qualtrics is told the language with ``Q_Language``,
    LimeSurvey with ``lang``)."""
    links = {}
    for language, base in (("en", wave["survey_url"]), ("es", wave["survey_url_es"] or wave["survey_url"])):
        extra = {TOKEN_PARAM: token}
        if wave["platform"] == "qualtrics":
            extra["Q_Language"] = language.upper()
        elif wave["platform"] == "limesurvey":
            extra = {TOKEN_PARAM: limesurvey_token(token), "lang": language}
        parts = urlsplit(base)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
        links[language] = urlunsplit(parts._replace(query=urlencode([*query, *extra.items()])))
    return links


# Contacts who are (or are about to be) recipients of another wave that is not closed.
_IN_OTHER_OPEN_WAVE = """c.id IN (SELECT r.contact_id FROM recipients r JOIN waves o ON o.id = r.wave_id
                                  WHERE o.id != ? AND o.state IN ('scheduled', 'open'))"""


def _audience_sql(wave: dict[str, Any], *, suppressed: bool = False) -> tuple[str, list[Any]]:
    """The contacts a wave is for (listed by one of its networks, if it names any), leaving out the
    suppressed ones (or only those, with ``suppressed``) and, for a wave launched with ``--skip-overlap``,
    those already in another open wave."""
    networks = wave["networks"] if isinstance(wave["networks"], list) else json.loads(wave["networks"])
    sql = f"FROM contacts c WHERE c.email {'' if suppressed else 'NOT '}IN (SELECT email FROM suppressions)"
    params: list[Any] = []
    if networks:
        sql += (
            f" AND c.id IN (SELECT contact_id FROM contact_sources WHERE network IN ({','.join('?' * len(networks))}))"
        )
        params = list(networks)
    if wave.get("skip_overlap") and not suppressed:
        sql += f" AND NOT {_IN_OTHER_OPEN_WAVE}"
        params.append(wave["id"])
    return sql, params


def audience(db: Database, wave: dict[str, Any]) -> dict[str, Any]:
    """Who a launch would invite now: how many, by language and network, how many are left out as
    suppressed, and how many are already in another open wave (by wave)."""
    sql, params = _audience_sql(wave)
    by_language = {
        lang or "en+es": n
        for lang, n in db.execute(f"SELECT c.language, count(*) {sql} GROUP BY c.language ORDER BY c.language", params)
    }
    by_network = {
        net: n
        for net, n in db.execute(
            f"""SELECT s.network, count(DISTINCT s.contact_id) FROM contact_sources s
            WHERE s.contact_id IN (SELECT c.id {sql}) GROUP BY lower(s.network) ORDER BY lower(s.network)""",
            params,
        )
    }
    suppressed_sql, suppressed_params = _audience_sql(wave, suppressed=True)
    suppressed = db.execute(f"SELECT count(*) {suppressed_sql}", suppressed_params).fetchone()[0]
    everyone_sql, everyone_params = _audience_sql({**wave, "skip_overlap": 0})
    overlap = {
        slug: n
        for slug, n in db.execute(
            f"""SELECT o.slug, count(*) FROM recipients r JOIN waves o ON o.id = r.wave_id
            WHERE o.id != ? AND o.state IN ('scheduled', 'open') AND r.contact_id IN (SELECT c.id {everyone_sql})
            GROUP BY o.slug ORDER BY o.slug""",
            [wave["id"], *everyone_params],
        )
    }
    return {
        "recipients": sum(by_language.values()),
        "by_language": by_language,
        "by_network": by_network,
        "suppressed": suppressed,
        "in_other_open_waves": overlap,
        "skip_overlap": bool(wave.get("skip_overlap")),
    }


def add_audience(db: Database, wave: dict[str, Any], secret: str, now: datetime) -> int:
    """Inside a transaction: make every eligible contact a recipient of the wave (see ``_audience_sql``).
    Returns how many were added."""
    sql, params = _audience_sql(wave)
    ids = [row[0] for row in db.conn.execute(f"SELECT c.id {sql}", params)]
    stamp = iso(now)
    before = db.conn.total_changes
    db.conn.executemany(
        "INSERT OR IGNORE INTO recipients (wave_id, contact_id, token_hash, invited_at) VALUES (?, ?, ?, ?)",
        ((wave["id"], cid, token_hash(survey_token(secret, wave["id"], cid)), stamp) for cid in ids),
    )
    return db.conn.total_changes - before


def with_contacts(db: Database, wave_id: int) -> list[dict[str, Any]]:
    """The wave's recipients with the contact fields a platform's participant list needs, in a stable order."""
    return list(
        db.query(
            "SELECT c.id AS contact_id, c.email, c.name, c.language FROM recipients r "
            "JOIN contacts c ON c.id = r.contact_id WHERE r.wave_id = ? ORDER BY c.id",
            [wave_id],
        )
    )


def audience_contacts(db: Database, wave: dict[str, Any]) -> list[dict[str, Any]]:
    """The contacts a launch would make recipients now, with the fields of :func:`with_contacts`."""
    sql, params = _audience_sql(wave)
    return list(db.query(f"SELECT c.id AS contact_id, c.email, c.name, c.language {sql} ORDER BY c.id", params))


def completed_pairs(db: Database, wave_ids: list[int], contact_ids: list[int]) -> set[tuple[int, int]]:
    """(wave, contact) pairs among these that have finished the wave's survey."""
    if not wave_ids or not contact_ids:
        return set()
    sql = (
        f"SELECT wave_id, contact_id FROM recipients WHERE completed_at IS NOT NULL "
        f"AND wave_id IN ({','.join('?' * len(wave_ids))}) AND contact_id IN ({','.join('?' * len(contact_ids))})"
    )
    return {tuple(row) for row in db.execute(sql, [*wave_ids, *contact_ids])}


def by_token(db: Database, token: str) -> dict[str, Any] | None:
    return next(db.query("SELECT * FROM recipients WHERE token_hash = ?", [token_hash(token)]), None)


def mark_completed(db: Database, wave_id: int, contact_id: int, now: datetime) -> bool:
    """Inside a transaction: the contact finished the wave's survey. Their unsent reminders are cancelled
    and a thank-you is queued. Returns False if they had finished already."""
    cursor = db.execute(
        "UPDATE recipients SET completed_at = ? WHERE wave_id = ? AND contact_id = ? AND completed_at IS NULL",
        [iso(now), wave_id, contact_id],
    )
    if cursor.rowcount == 0:
        return False
    db.execute(
        """UPDATE outbox SET state = 'cancelled', last_error = 'completed the survey'
                  WHERE wave_id = ? AND contact_id = ? AND state = 'queued'
                  AND kind IN ('invitation', 'reminder', 'final_reminder')""",
        [wave_id, contact_id],
    )
    db.execute(
        """INSERT OR IGNORE INTO outbox (key, wave_id, contact_id, kind, to_email, due_at, created_at)
                  SELECT ?, ?, id, 'thank_you', email, ?, ? FROM contacts WHERE id = ?""",
        [f"wave:{wave_id}:contact:{contact_id}:thank_you", wave_id, iso(now), iso(now), contact_id],
    )
    return True

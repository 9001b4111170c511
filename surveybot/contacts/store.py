"""The SQL of the contacts stage: contacts, where each came from (provenance), uploads and conflicts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from sqlite_utils import Database

from surveybot.contacts.fields import FIELDS

_COLUMNS = ("id", "email", *FIELDS, "attributes")


def _marks(count: int) -> str:
    return ",".join("?" * count)


def create_upload(db: Database, *, network: str, filename: str, sha256: str, source: str, now: str) -> int:
    cursor = db.execute(
        "INSERT INTO uploads (network, filename, sha256, source, created_at) VALUES (?, ?, ?, ?, ?)",
        [network, filename, sha256, source, now],
    )
    return cursor.lastrowid


def finish_upload(db: Database, upload_id: int, counts: dict, errors: list[dict], now: str) -> None:
    db.execute(
        """UPDATE uploads SET state = 'done', finished_at = ?, rows = ?, imported = ?, updated = ?,
           duplicates = ?, conflicts = ?, rejected = ?, errors = ? WHERE id = ?""",
        [now, counts["rows"], counts["imported"], counts["updated"], counts["duplicates"], counts["conflicts"],
         counts["rejected"], json.dumps(errors, ensure_ascii=False), upload_id],
    )


def contacts_by_email(db: Database, emails: Sequence[str], upload_id: int | None = None) -> dict[str, dict]:
    """The stored contacts among ``emails``, attributes decoded; ``listed`` says whether upload
    ``upload_id`` already named the contact (an earlier row of the same file)."""
    if not emails:
        return {}
    found = {}
    sql = f"""SELECT {', '.join(_COLUMNS)}, EXISTS (SELECT 1 FROM contact_sources s
                  WHERE s.contact_id = contacts.id AND s.upload_id = ?) AS listed
              FROM contacts WHERE email IN ({_marks(len(emails))})"""
    for values in db.conn.execute(sql, [upload_id, *emails]):
        record = dict(zip((*_COLUMNS, "listed"), values))
        record["attributes"] = json.loads(record["attributes"])
        found[record["email"]] = record
    return found


def _attributes(record: dict) -> str:
    return json.dumps(record["attributes"], ensure_ascii=False) if record["attributes"] else "{}"


def insert_contacts(db: Database, records: Iterable[dict], now: str) -> None:
    names = ("email", *FIELDS, "attributes", "created_at", "updated_at")
    db.conn.executemany(
        f"INSERT INTO contacts ({', '.join(names)}) VALUES ({_marks(len(names))})",
        (
            (r["email"], *(r[f] for f in FIELDS), _attributes(r), now, now)
            for r in records
        ),
    )


def update_contacts(db: Database, records: Iterable[dict], now: str) -> None:
    assignments = ", ".join(f"{f} = ?" for f in FIELDS)
    db.conn.executemany(
        f"UPDATE contacts SET {assignments}, attributes = ?, updated_at = ? WHERE email = ?",
        (
            (*(r[f] for f in FIELDS), _attributes(r), now, r["email"])
            for r in records
        ),
    )


def add_sources(db: Database, upload_id: int, network: str, sources: Iterable[tuple[int, str]]) -> None:
    """Record that row ``n`` of this upload listed the contact with e-mail ``email``."""
    db.conn.executemany(
        """INSERT INTO contact_sources (upload_id, row, contact_id, network)
           SELECT ?, ?, id, ? FROM contacts WHERE email = ?""",
        ((upload_id, row, network, email) for row, email in sources),
    )


def add_conflicts(db: Database, upload_id: int, conflicts: Iterable[dict]) -> None:
    db.conn.executemany(
        """INSERT INTO contact_conflicts (contact_id, upload_id, row, field, current, proposed)
           SELECT id, ?, ?, ?, ?, ? FROM contacts WHERE email = ?""",
        ((upload_id, c["row"], c["field"], c["current"], c["proposed"], c["email"]) for c in conflicts),
    )


def list_contacts(db: Database, network: str | None = None) -> list[dict]:
    """Every contact (or those a network listed), with the networks that listed it, by e-mail."""
    where, params = "", []
    if network is not None:
        where = "WHERE c.id IN (SELECT contact_id FROM contact_sources WHERE network = ?)"
        params = [network]
    sql = f"""
        SELECT c.email, c.name, c.city, c.country, c.region, c.language, c.position, c.timezone, c.attributes,
               (SELECT json_group_array(network) FROM
                   (SELECT network FROM contact_sources WHERE contact_id = c.id
                    GROUP BY network ORDER BY MIN(upload_id))) AS networks,
               s.kind AS suppressed
        FROM contacts c LEFT JOIN suppressions s ON s.email = c.email
        {where}
        ORDER BY c.email"""
    result = []
    for row in db.query(sql, params):
        row["attributes"] = json.loads(row["attributes"])
        row["networks"] = json.loads(row["networks"])
        result.append(row)
    return result


_CARD = "id, email, name, city, country, language, timezone"  # what a message needs of a contact


def contacts_by_id(db: Database, ids: Sequence[int]) -> dict[int, dict]:
    if not ids:
        return {}
    return {c["id"]: c for c in db.query(f"SELECT {_CARD} FROM contacts WHERE id IN ({_marks(len(ids))})", list(ids))}


def contact_by_email(db: Database, email: str) -> dict | None:
    return next(db.query(f"SELECT {_CARD} FROM contacts WHERE email = ?", [email]), None)


def network_names(db: Database) -> list[str]:
    return [r["network"] for r in db.query("SELECT network FROM contact_sources GROUP BY network ORDER BY network")]

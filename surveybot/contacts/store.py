"""The SQL of the contacts stage: contacts, each network's own listing of them, where each came from
(provenance), uploads and conflicts.

A contact row holds the values used in e-mail; ``contact_listings`` holds each network's own values, so a
network sees (and changes) only its listing. ``contacts.values_from`` is '' for the merged values (the first
listing's, blanks filled by later ones) or the network whose listing a coordinator chose.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from surveybot.contacts.fields import FIELDS


def _marks(count: int) -> str:
    return ",".join("?" * count)


def create_upload(db: Database, *, network: str, filename: str, sha256: str, source: str, now: str) -> int:
    cursor = db.execute(
        "INSERT INTO uploads (network, filename, sha256, source, created_at) VALUES (?, ?, ?, ?, ?)",
        [network, filename, sha256, source, now],
    )
    assert cursor.lastrowid is not None  # an INSERT always sets it
    return cursor.lastrowid


def finish_upload(db: Database, upload_id: int, counts: dict[str, Any], errors: list[dict[str, Any]], now: str) -> None:
    db.execute(
        """UPDATE uploads SET state = 'done', finished_at = ?, rows = ?, imported = ?, updated = ?,
           duplicates = ?, conflicts = ?, rejected = ?, errors = ? WHERE id = ?""",
        [
            now,
            counts["rows"],
            counts["imported"],
            counts["updated"],
            counts["duplicates"],
            counts["conflicts"],
            counts["rejected"],
            json.dumps(errors, ensure_ascii=False),
            upload_id,
        ],
    )


_LOAD = f"""
    SELECT c.id, c.email, {", ".join("c." + f for f in FIELDS)}, c.attributes,
           l.network IS NOT NULL, {", ".join("l." + f for f in FIELDS)}, l.attributes,
           CASE WHEN c.values_from = '' THEN NOT EXISTS (
                    SELECT 1 FROM contact_listings o WHERE o.contact_id = c.id AND o.network != ?
                    AND (l.first_upload_id IS NULL OR o.first_upload_id < l.first_upload_id))
                ELSE COALESCE(l.network = c.values_from, 0) END,
           EXISTS (SELECT 1 FROM contact_sources s WHERE s.contact_id = c.id AND s.upload_id = ?)
    FROM contacts c LEFT JOIN contact_listings l ON l.contact_id = c.id AND l.network = ?
    WHERE c.email IN """


def contacts_by_email(
    db: Database, emails: Sequence[str], network: str, upload_id: int | None = None
) -> dict[str, dict[str, Any]]:
    """The stored contacts among ``emails``: ``contact`` (the values used in e-mail), ``listing`` (``network``'s
    own values, or None), ``network_may_fill`` (whether an upload by that network may fill the contact's
    blanks: it listed the contact first, or a coordinator chose its listing) and ``listed`` (whether upload
    ``upload_id`` already named the contact: an earlier row of the same file). Plain reads only."""
    if not emails:
        return {}
    found = {}
    width = len(FIELDS)
    sql = _LOAD + f"({_marks(len(emails))})"
    for values in db.conn.execute(sql, [network, upload_id, network, *emails]):
        contact_id, email = values[0], values[1]
        contact = _values(values[2 : 3 + width])
        listing = _values(values[4 + width : 5 + 2 * width]) if values[3 + width] else None
        found[email] = {
            "id": contact_id,
            "contact": contact,
            "listing": listing,
            "network_may_fill": bool(values[-2]),
            "listed": bool(values[-1]),
        }
    return found


def _values(row: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(FIELDS, row))
    record["attributes"] = json.loads(row[len(FIELDS)])
    return record


def _attributes(record: dict[str, Any]) -> str:
    return json.dumps(record["attributes"], ensure_ascii=False) if record["attributes"] else "{}"


def insert_contacts(db: Database, records: Iterable[dict[str, Any]], now: str) -> None:
    names = ("email", *FIELDS, "attributes", "created_at", "updated_at")
    db.conn.executemany(
        f"INSERT INTO contacts ({', '.join(names)}) VALUES ({_marks(len(names))})",
        ((r["email"], *(r[f] for f in FIELDS), _attributes(r), now, now) for r in records),
    )


def update_contacts(db: Database, records: Iterable[dict[str, Any]], now: str) -> None:
    assignments = ", ".join(f"{f} = ?" for f in FIELDS)
    db.conn.executemany(
        f"UPDATE contacts SET {assignments}, attributes = ?, updated_at = ? WHERE email = ?",
        ((*(r[f] for f in FIELDS), _attributes(r), now, r["email"]) for r in records),
    )


def insert_listings(db: Database, network: str, upload_id: int, records: Iterable[dict[str, Any]], now: str) -> None:
    """``network``'s first listing of each contact (``records`` carry the ``email``)."""
    names = ("contact_id", "network", *FIELDS, "attributes", "first_upload_id", "created_at", "updated_at")
    db.conn.executemany(
        f"""INSERT INTO contact_listings ({", ".join(names)})
            SELECT id, {_marks(len(names) - 1)} FROM contacts WHERE email = ?""",
        ((network, *(r[f] for f in FIELDS), _attributes(r), upload_id, now, now, r["email"]) for r in records),
    )


def update_listings(db: Database, network: str, records: Iterable[dict[str, Any]], now: str) -> None:
    assignments = ", ".join(f"{f} = ?" for f in FIELDS)
    db.conn.executemany(
        f"""UPDATE contact_listings SET {assignments}, attributes = ?, updated_at = ?
            WHERE network = ? AND contact_id = (SELECT id FROM contacts WHERE email = ?)""",
        ((*(r[f] for f in FIELDS), _attributes(r), now, network, r["email"]) for r in records),
    )


def add_sources(db: Database, upload_id: int, network: str, sources: Iterable[tuple[int, str]]) -> None:
    """Record that row ``n`` of this upload listed the contact with e-mail ``email``."""
    db.conn.executemany(
        """INSERT INTO contact_sources (upload_id, row, contact_id, network)
           SELECT ?, ?, id, ? FROM contacts WHERE email = ?""",
        ((upload_id, row, network, email) for row, email in sources),
    )


def add_conflicts(db: Database, upload_id: int, conflicts: Iterable[dict[str, Any]]) -> None:
    db.conn.executemany(
        """INSERT INTO contact_conflicts (contact_id, upload_id, row, field, current, proposed)
           SELECT id, ?, ?, ?, ?, ? FROM contacts WHERE email = ?""",
        ((upload_id, c["row"], c["field"], c["current"], c["proposed"], c["email"]) for c in conflicts),
    )


def list_contacts(db: Database, network: str | None = None) -> list[dict[str, Any]]:
    """Every contact (or those a network listed), for a coordinator: the values used in e-mail, the networks
    that listed it, where its values come from (``values_from``) and each network's own ``listings``."""
    where, params = "", []
    if network is not None:
        where = "WHERE c.id IN (SELECT contact_id FROM contact_sources WHERE network = ?)"
        params = [network]
    listing = ", ".join(f"'{f}', l.{f}" for f in FIELDS)
    sql = f"""
        SELECT c.email, c.name, c.city, c.country, c.region, c.language, c.position, c.timezone, c.attributes,
               (SELECT json_group_array(network) FROM
                   (SELECT network FROM contact_sources WHERE contact_id = c.id
                    GROUP BY network ORDER BY MIN(upload_id))) AS networks,
               c.values_from,
               (SELECT json_group_array(json_object('network', l.network, {listing},
                                                    'attributes', json(l.attributes)))
                FROM (SELECT * FROM contact_listings WHERE contact_id = c.id
                      ORDER BY first_upload_id, created_at) l) AS listings,
               s.kind AS suppressed
        FROM contacts c LEFT JOIN suppressions s ON s.email = c.email
        {where}
        ORDER BY c.email"""
    result = []
    for row in db.query(sql, params):
        row["attributes"] = json.loads(row["attributes"])
        row["networks"] = json.loads(row["networks"])
        row["listings"] = json.loads(row["listings"])
        result.append(row)
    return result


def network_listing(db: Database, network: str) -> list[dict[str, Any]]:
    """The contacts ``network`` listed, with its own values only (what that network may see), by e-mail."""
    sql = f"""SELECT c.email, {", ".join("l." + f for f in FIELDS)}, l.attributes
              FROM contact_listings l JOIN contacts c ON c.id = l.contact_id
              WHERE l.network = ? ORDER BY c.email"""
    result = []
    for row in db.query(sql, [network]):
        row["attributes"] = json.loads(row["attributes"])
        result.append(row)
    return result


def listings_of(db: Database, email: str) -> tuple[int, list[dict[str, Any]]] | None:
    """(contact id, every network's listing of it in the order they came), or None: no such contact."""
    found = db.execute("SELECT id FROM contacts WHERE email = ?", [email]).fetchone()
    if found is None:
        return None
    rows = db.query(
        f"""SELECT network, {", ".join(FIELDS)}, attributes FROM contact_listings
                        WHERE contact_id = ? ORDER BY first_upload_id, created_at""",
        [found[0]],
    )
    return found[0], [{**row, "attributes": json.loads(row["attributes"])} for row in rows]


def contact_values(db: Database, contact_id: int) -> dict[str, Any]:
    row = db.execute(f"SELECT {', '.join(FIELDS)}, attributes FROM contacts WHERE id = ?", [contact_id]).fetchone()
    return _values(row)


def set_contact_values(db: Database, contact_id: int, values: dict[str, Any], values_from: str, now: str) -> None:
    """Replace the values used in e-mail (a coordinator's choice of listing, or the merged values again)."""
    assignments = ", ".join(f"{f} = ?" for f in FIELDS)
    db.execute(
        f"UPDATE contacts SET {assignments}, attributes = ?, values_from = ?, updated_at = ? WHERE id = ?",
        [*(values[f] for f in FIELDS), _attributes(values), values_from, now, contact_id],
    )


_CARD = "id, email, name, city, country, language, timezone"  # what a message needs of a contact


def contacts_by_id(db: Database, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    return {c["id"]: c for c in db.query(f"SELECT {_CARD} FROM contacts WHERE id IN ({_marks(len(ids))})", list(ids))}


def contact_by_email(db: Database, email: str) -> dict[str, Any] | None:
    return next(db.query(f"SELECT {_CARD} FROM contacts WHERE email = ?", [email]), None)


def network_names(db: Database) -> list[str]:
    return [r["network"] for r in db.query("SELECT network FROM contact_sources GROUP BY network ORDER BY network")]

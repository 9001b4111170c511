"""Importing a partner network's contact list: read → normalise → validate → de-duplicate → store.

Every data row ends as exactly one of: imported (new), updated (blank fields it filled), duplicate (known
already, or named earlier in the same file) or rejected (with row, field and reason). A filled field is never
overwritten by a different value: that is reported as a conflict and kept for the coordinator. Every row that
names a contact is kept as provenance (network, upload, row) and in the network's own listing.

Who imports decides what "new" and "known" mean (see :mod:`surveybot.contacts.merge`): for a coordinator, the
contact whatever network listed it; for a network's own upload, that network's listing only, so its report
tells nothing of other networks' contacts (not whether an address is known, suppressed or holds other values).

Rows are processed in batches, each its own transaction, so a large file streams in constant memory and
the service sharing the database is never locked out for long. A dry run only reads the database (no write
lock at all) and keeps what the file itself named so far in a scratch database of its own, so its report is
exactly what the real import would say.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, needs_smtputf8, normalise_email
from surveybot.clock import iso, utcnow
from surveybot.contacts import csvfile, store
from surveybot.contacts.fields import FIELDS, ColumnMap, clean_text, normalise_language, normalise_timezone
from surveybot.contacts.merge import BY, Entry, apply_rows
from surveybot.db import transaction
from surveybot.errors import FileRefused, InvalidInput, RowRejected
from surveybot.suppressions import suppressed_among

BATCH = 2000
MAX_VALUE = 1000  # characters in one field; more is a broken row, not a name
MAX_NAME = 200  # characters of a name: it goes into every message's To header
LISTED = 10000  # at most this many errors, warnings, changes and conflicts are listed (all are counted)

_ENCODING_NAMES = {
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1",
}
_OnBytes = Callable[[int], None] | None  # called with the bytes read so far

_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass
class ImportReport:
    network: str
    filename: str
    dry_run: bool
    upload_id: int | None = None
    encoding: str = ""
    delimiter: str = ""
    rows: int = 0
    imported: int = 0
    updated: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    suppressed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    conflict_details: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("rows", "imported", "updated", "duplicates", "conflicts", "rejected")}

    def as_json(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "errors": self.errors,
            "suppressed": self.suppressed,
            "warnings": self.warnings,
            "changes": self.changes,
            "conflict_details": self.conflict_details,
            "network": self.network,
            "file": self.filename,
            "encoding": _ENCODING_NAMES.get(self.encoding, self.encoding),
            "delimiter": _DELIMITER_NAMES.get(self.delimiter, self.delimiter),
            "dry_run": self.dry_run,
            "upload_id": self.upload_id,
        }

    def _list(self, name: str, item: dict[str, Any]) -> None:
        items = getattr(self, name)
        if len(items) < LISTED:
            items.append(item)


def check_network(network: str) -> str:
    name = " ".join(network.split())
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidInput("a network name must be 1 to 100 printable characters", field="network")
    return name


def import_contacts(
    db: Database,
    path: str | Path,
    network: str,
    *,
    by: str = "coordinator",
    filename: str | None = None,
    source: str = "cli",
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import the CSV file at ``path`` as listed by ``network``. Raises FileRefused for a file refused whole.

    ``by`` says who imports: ``"coordinator"`` (the CLI, a coordinator's token) or ``"network"`` (that
    network's own token: the report speaks only of its own listing, and the upload never changes the values
    of a contact another network listed first)."""
    if by not in BY:
        raise ValueError(f"by must be one of {BY}, not {by!r}")
    network = check_network(network)
    path = Path(path)
    stamp = iso(now or utcnow())
    source_file = csvfile.inspect(path)
    report = ImportReport(
        network=network,
        filename=filename or path.name,
        dry_run=dry_run,
        encoding=source_file.encoding,
        delimiter=source_file.delimiter,
    )
    on_bytes = (lambda done: progress(done, source_file.size)) if progress else None
    if dry_run:
        run = _DryRun(db, report, by)
        try:
            _import_rows(run, source_file, report, on_bytes)
        finally:
            run.close()
        return report
    with transaction(db):
        upload_id = report.upload_id = store.create_upload(
            db, network=network, filename=report.filename, sha256=source_file.sha256, source=source, now=stamp
        )
    _import_rows(_DatabaseRun(db, report, upload_id, by, stamp), source_file, report, on_bytes)
    with transaction(db):
        store.finish_upload(db, upload_id, report.counts(), report.errors, stamp)
    return report


def _import_rows(
    run: _DatabaseRun | _DryRun, source_file: csvfile.CsvFile, report: ImportReport, on_bytes: _OnBytes
) -> None:
    for batch in _batches(source_file, report, on_bytes):
        run.batch(batch)


def _batches(
    source_file: csvfile.CsvFile, report: ImportReport, on_bytes: _OnBytes
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    batch: list[tuple[int, dict[str, Any]]] = []
    rows = csvfile.rows(source_file, on_bytes)
    while True:
        try:
            number, cells = next(rows)
        except StopIteration:
            break
        except FileRefused as exc:  # unreadable from here on: keep what was read, say where it stopped
            report._list("errors", {"row": None, "field": "file", "message": str(exc)})
            break
        if not any(c.strip() for c in cells):
            continue  # a blank line is no row
        report.rows += 1
        try:
            record, warnings = normalise_row(number, cells, source_file.columns, source_file.delimiter)
        except RowRejected as rejected:
            report.rejected += 1
            report._list("errors", rejected.as_dict())
            continue
        for warning in warnings:
            report._list("warnings", warning)
        batch.append((number, record))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def normalise_row(
    number: int, cells: list[str], columns: ColumnMap, delimiter: str = ","
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One row's cells → a contact record and its warnings. Raises :class:`RowRejected`."""
    width = len(cells)

    def cell(name: str) -> str:
        index = columns.columns.get(name)
        return clean_text(cells[index]) if index is not None and index < width else ""

    for index, value in enumerate(cells):
        if ("\n" in value or "\r" in value) and _swallowed_rows(value, delimiter, columns.width):
            raise RowRejected(
                number,
                _header_of(columns, index),
                'a quote (") opened in this cell is never '
                "closed, so the lines after it were read into it; close the quote and upload again",
            )
    raw_email = cell("email")
    try:
        email = normalise_email(raw_email)
    except InvalidAddress as exc:
        shown = f"{raw_email!r} is not a valid e-mail address: {exc}" if raw_email else "is blank"
        raise RowRejected(number, "email", shown) from None
    record: dict[str, Any] = {"email": email, **{name: cell(name) for name in FIELDS}, "attributes": {}}
    if not record["name"]:
        record["name"] = " ".join(p for p in (cell("first_name"), cell("last_name")) if p)
    warnings: list[dict[str, Any]] = []
    language = normalise_language(record["language"])
    if language is None:
        warnings.append(
            {
                "row": number,
                "field": "language",
                "message": f"{record['language']!r} is neither English nor Spanish: the contact will be mailed in both",
            }
        )
        language = ""
    record["language"] = language
    zone = normalise_timezone(record["timezone"])
    if zone is None:
        warnings.append(
            {
                "row": number,
                "field": "timezone",
                "message": f"{record['timezone']!r} is not a time zone name such as 'America/Bogota'; left blank",
            }
        )
        zone = ""
    record["timezone"] = zone
    for index, header in columns.extras:
        if index < width and (value := clean_text(cells[index])):
            record["attributes"][header] = value
    if len(record["name"]) > MAX_NAME:
        raise RowRejected(
            number,
            "name",
            f"is {len(record['name']):,} characters long; a name may have at most "
            f"{MAX_NAME} (it goes into every e-mail's To line)",
        )
    if needs_smtputf8(email):
        warnings.append(
            {
                "row": number,
                "field": "email",
                "message": f"{email!r} has non-ASCII characters before "
                "the @: it can only be delivered through a mail relay that offers SMTPUTF8",
            }
        )
    for name, value in (*((f, record[f]) for f in FIELDS), *record["attributes"].items()):
        if len(value) > MAX_VALUE:
            raise RowRejected(number, name, f"is {len(value):,} characters long; at most {MAX_VALUE:,} are kept")
    return record, warnings


def _swallowed_rows(value: str, delimiter: str, width: int) -> bool:
    """A cell whose later lines look like whole rows (an address, and nearly a row's worth of delimiters):
    the mark of a quote opened and never closed, which makes the reader run on through the next rows."""
    needed = max(1, width - 2)
    return any("@" in line and line.count(delimiter) >= needed for line in value.splitlines()[1:])


def _header_of(columns: ColumnMap, index: int) -> str:
    for name, column in columns.columns.items():
        if column == index:
            return name
    return next((header for column, header in columns.extras if column == index), f"column {index + 1}")


class _DatabaseRun:
    """A real import: each batch is read and written in one write transaction of its own."""

    def __init__(self, db: Database, report: ImportReport, upload_id: int, by: str, stamp: str) -> None:
        self.db, self.report, self.upload_id, self.by, self.stamp = db, report, upload_id, by, stamp

    def batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        db, report = self.db, self.report
        with transaction(db):
            emails = list({record["email"] for _, record in batch})
            found = store.contacts_by_email(db, emails, report.network, self.upload_id)
            entries = {email: Entry.stored(email, item) for email, item in found.items()}
            conflicts = _count(db, batch, entries, report, self.by)
            contacts = [e for e in entries.values() if e.contact_changed]
            listings = [e for e in entries.values() if e.listing_changed]
            store.insert_contacts(db, [_row(e, "contact") for e in contacts if not e.stored_contact], self.stamp)
            store.update_contacts(db, [_row(e, "contact") for e in contacts if e.stored_contact], self.stamp)
            store.insert_listings(
                db,
                report.network,
                self.upload_id,
                [_row(e, "listing") for e in listings if not e.stored_listing],
                self.stamp,
            )
            store.update_listings(
                db, report.network, [_row(e, "listing") for e in listings if e.stored_listing], self.stamp
            )
            store.add_sources(db, self.upload_id, report.network, ((n, r["email"]) for n, r in batch))
            store.add_conflicts(db, self.upload_id, conflicts)


class _DryRun:
    """A dry run: plain reads of the shared database (no transaction, so the service is never locked out),
    and what the file itself named so far kept in a private temporary database (bounded memory, deleted when
    closed), so a later row of the file meets its earlier rows as it would in the real import."""

    def __init__(self, db: Database, report: ImportReport, by: str) -> None:
        self.db, self.report, self.by = db, report, by
        self.scratch = sqlite3.connect("")  # "": private, on disk only when it outgrows its cache
        self.scratch.execute("CREATE TABLE seen (email TEXT PRIMARY KEY, entry TEXT NOT NULL)")

    def batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        emails = list({record["email"] for _, record in batch})
        marks = ",".join("?" * len(emails))
        entries = {
            email: Entry.remembered(email, json.loads(data))
            for email, data in self.scratch.execute(f"SELECT email, entry FROM seen WHERE email IN ({marks})", emails)
        }
        missing = [email for email in emails if email not in entries]
        for email, item in store.contacts_by_email(self.db, missing, self.report.network).items():
            entries[email] = Entry.stored(email, item)
        _count(self.db, batch, entries, self.report, self.by)
        with self.scratch:
            self.scratch.executemany(
                "INSERT OR REPLACE INTO seen (email, entry) VALUES (?, ?)",
                ((e.email, json.dumps(e.dump(), ensure_ascii=False)) for e in entries.values()),
            )

    def close(self) -> None:
        self.scratch.close()


def _count(
    db: Database, batch: list[tuple[int, dict[str, Any]]], entries: dict[str, Entry], report: ImportReport, by: str
) -> list[dict[str, Any]]:
    """Merge a batch into ``entries`` and count it in the report; returns the conflicts to keep."""
    outcome = apply_rows(batch, entries, by)
    report.imported += outcome.imported
    report.updated += outcome.updated
    report.duplicates += outcome.duplicates
    report.conflicts += outcome.conflicted_rows
    for change in outcome.changes:
        report._list("changes", change)
    for conflict in outcome.conflicts:
        report._list("conflict_details", conflict)
    if by == "coordinator":  # whether an address is suppressed is not a network's to learn
        suppressed = suppressed_among(db, list(entries))
        report.suppressed += sum(record["email"] in suppressed for _, record in batch)
    return outcome.conflicts


def _row(entry: Entry, which: str) -> dict[str, Any]:
    return {"email": entry.email, **getattr(entry, which)}

"""Importing a partner network's contact list: read → normalise → validate → de-duplicate → store.

Every data row ends as exactly one of: imported (a new contact), updated (an existing contact whose blank
fields it filled), duplicate (a contact already known, or already listed earlier in the same file) or
rejected (with row, field and reason). A filled field is never overwritten by a different value: that is
reported as a conflict and kept for the coordinator. Every row that names a contact is kept as provenance
(network, upload, row).

Rows are processed in batches, each its own transaction, so a large file streams in constant memory and
the service sharing the database is never locked out for long. A dry run does the same work inside one
transaction that is rolled back, so its report is exactly what the real import would say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from surveybot.addresses import InvalidAddress, needs_smtputf8, normalise_email
from surveybot.clock import iso, utcnow
from surveybot.contacts import csvfile, store
from surveybot.contacts.fields import FIELDS, ColumnMap, clean_text, fold, normalise_language, normalise_timezone
from surveybot.db import rolled_back, transaction
from surveybot.errors import FileRefused, InvalidInput, RowRejected
from surveybot.suppressions import suppressed_among

BATCH = 2000
MAX_VALUE = 1000  # characters in one field; more is a broken row, not a name
MAX_NAME = 200  # characters of a name: it goes into every message's To header
LISTED = 10000  # at most this many errors, warnings, changes and conflicts are listed (all are counted)

_ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE",
                   "cp1252": "Windows-1252", "latin-1": "Latin-1"}
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
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    conflict_details: list[dict] = field(default_factory=list)

    def counts(self) -> dict:
        return {k: getattr(self, k) for k in ("rows", "imported", "updated", "duplicates", "conflicts", "rejected")}

    def as_json(self) -> dict:
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

    def _list(self, name: str, item: dict) -> None:
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
    filename: str | None = None,
    source: str = "cli",
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import the CSV file at ``path`` as listed by ``network``. Raises FileRefused for a file refused whole."""
    network = check_network(network)
    path = Path(path)
    stamp = iso(now or utcnow())
    source_file = csvfile.inspect(path)
    report = ImportReport(network=network, filename=filename or path.name, dry_run=dry_run,
                          encoding=source_file.encoding, delimiter=source_file.delimiter)
    on_bytes = (lambda done: progress(done, source_file.size)) if progress else None
    if dry_run:  # the whole dry run happens inside one transaction that is rolled back at the end
        with rolled_back(db):
            report.upload_id = store.create_upload(db, network=network, filename=report.filename,
                                                   sha256=source_file.sha256, source=source, now=stamp)
            _import_rows(db, source_file, report, stamp, on_bytes)
        report.upload_id = None
        return report
    with transaction(db):
        report.upload_id = store.create_upload(db, network=network, filename=report.filename,
                                               sha256=source_file.sha256, source=source, now=stamp)
    _import_rows(db, source_file, report, stamp, on_bytes)
    with transaction(db):
        store.finish_upload(db, report.upload_id, report.counts(), report.errors, stamp)
    return report


def _import_rows(db, source_file, report: ImportReport, stamp: str, on_bytes) -> None:
    for batch in _batches(source_file, report, on_bytes):
        with transaction(db):
            _store_batch(db, batch, report, stamp)


def _batches(source_file, report: ImportReport, on_bytes) -> Iterator[list[tuple[int, dict]]]:
    batch: list[tuple[int, dict]] = []
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


def normalise_row(number: int, cells: list[str], columns: ColumnMap, delimiter: str = ",") -> tuple[dict, list[dict]]:
    """One row's cells → a contact record and its warnings. Raises :class:`RowRejected`."""
    width = len(cells)

    def cell(name: str) -> str:
        index = columns.columns.get(name)
        return clean_text(cells[index]) if index is not None and index < width else ""

    for index, value in enumerate(cells):
        if ("\n" in value or "\r" in value) and _swallowed_rows(value, delimiter, columns.width):
            raise RowRejected(number, _header_of(columns, index), "a quote (\") opened in this cell is never "
                              "closed, so the lines after it were read into it; close the quote and upload again")
    raw_email = cell("email")
    try:
        email = normalise_email(raw_email)
    except InvalidAddress as exc:
        shown = f"{raw_email!r} is not a valid e-mail address: {exc}" if raw_email else "is blank"
        raise RowRejected(number, "email", shown) from None
    record = {"email": email, **{name: cell(name) for name in FIELDS}, "attributes": {}}
    if not record["name"]:
        record["name"] = " ".join(p for p in (cell("first_name"), cell("last_name")) if p)
    warnings = []
    language = normalise_language(record["language"])
    if language is None:
        warnings.append({"row": number, "field": "language", "message": f"{record['language']!r} is neither "
                         "English nor Spanish: the contact will be mailed in both"})
        language = ""
    record["language"] = language
    zone = normalise_timezone(record["timezone"])
    if zone is None:
        warnings.append({"row": number, "field": "timezone", "message": f"{record['timezone']!r} is not a "
                         "time zone name such as 'America/Bogota'; left blank"})
        zone = ""
    record["timezone"] = zone
    for index, header in columns.extras:
        if index < width and (value := clean_text(cells[index])):
            record["attributes"][header] = value
    if len(record["name"]) > MAX_NAME:
        raise RowRejected(number, "name", f"is {len(record['name']):,} characters long; a name may have at most "
                          f"{MAX_NAME} (it goes into every e-mail's To line)")
    if needs_smtputf8(email):
        warnings.append({"row": number, "field": "email", "message": f"{email!r} has non-ASCII characters before "
                         "the @: it can only be delivered through a mail relay that offers SMTPUTF8"})
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


def _store_batch(db: Database, batch: list[tuple[int, dict]], report: ImportReport, stamp: str) -> None:
    emails = list({record["email"] for _, record in batch})
    existing = store.contacts_by_email(db, emails, report.upload_id)
    seen = {email for email, record in existing.items() if record["listed"]}
    suppressed = suppressed_among(db, emails)
    new: dict[str, dict] = {}
    changed: dict[str, dict] = {}
    conflicts: list[dict] = []
    for number, record in batch:
        email = record["email"]
        target = new.get(email) or existing.get(email)
        if target is None:
            new[email] = record
            report.imported += 1
        else:
            fills, clashes = _merge(target, record)
            for name, old, value in fills:
                report._list("changes", {"row": number, "email": email, "field": name, "old": old, "new": value})
            for name, current, proposed in clashes:
                detail = {"row": number, "email": email, "field": name, "current": current, "proposed": proposed}
                conflicts.append(detail)
                report._list("conflict_details", detail)
            report.conflicts += bool(clashes)
            first_listing = email not in seen and email not in new
            if first_listing and fills:
                report.updated += 1
            else:
                report.duplicates += 1
            if fills and email not in new:
                changed[email] = target
        seen.add(email)
        report.suppressed += email in suppressed
    store.insert_contacts(db, new.values(), stamp)
    store.update_contacts(db, changed.values(), stamp)
    store.add_sources(db, report.upload_id, report.network, ((n, r["email"]) for n, r in batch))
    store.add_conflicts(db, report.upload_id, conflicts)


def _merge(target: dict, record: dict) -> tuple[list[tuple], list[tuple]]:
    """Fill ``target``'s blank fields from ``record``; list what it filled and what differs."""
    fills, clashes = [], []
    pairs = [(name, target, record[name]) for name in FIELDS]
    pairs += [(name, target["attributes"], value) for name, value in record["attributes"].items()]
    for name, holder, value in pairs:
        if not value:
            continue
        current = holder.get(name, "")
        if not current:
            holder[name] = value
            fills.append((name, current, value))
        elif current != value and fold(current) != fold(value):
            clashes.append((name, current, value))
    return fills, clashes


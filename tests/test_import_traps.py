"""Traps in real partner files that the reader must notice rather than import silently."""

from __future__ import annotations

from surveybot.contacts.importer import import_contacts
from surveybot.db import open_db


def test_a_quote_never_closed_is_reported_not_imported_as_one_long_name(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(
        'email,name,city\na@x.example.org,"Smith, John,Madrid\nb@y.example.org,Bob,Lima\nc@z.example.org,Cy,Quito\n',
        encoding="utf-8",
    )
    db = open_db(tmp_path / "s.db")
    report = import_contacts(db, path, "Metropolis")
    assert (report.rows, report.imported, report.rejected) == (1, 0, 1)
    [error] = report.errors
    assert (error["row"], error["field"]) == (2, "name") and "never closed" in error["message"]
    assert db.execute("SELECT count(*) FROM contacts").fetchone()[0] == 0

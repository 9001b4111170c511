"""A dry run only reads: the service sharing the database can write all the while, and its report is the
report the real import gives."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from surveybot.contacts.importer import import_contacts
from surveybot.db import open_db
from surveybot.suppressions import suppress
from tests.dbcheck import table_counts


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "s.db")
    yield database
    database.conn.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_dry_run_of_a_large_file_holds_no_write_lock(tmp_path, db):
    import_contacts(db, write(tmp_path, "base.csv", "email,name\nknown@x.example.org,Known\n"), "Metropolis")
    rows = "".join(f"person{i}@x.example.org,Person {i},City {i % 50}\n" for i in range(60_000))
    path = write(tmp_path, "big.csv", "email,name,city\nknown@x.example.org,Known,Lima\n" + rows + rows)
    started, checked = threading.Event(), threading.Event()
    outcome: dict = {}

    def first_progress(done: int, total: int) -> None:
        if not started.is_set():
            started.set()
            checked.wait(30)  # keep the dry run in the middle of its work until the other writer has tried

    def dry_run() -> None:
        worker = open_db(tmp_path / "s.db", migrate=False)
        try:
            outcome["report"] = import_contacts(worker, path, "Metropolis", dry_run=True, progress=first_progress)
        finally:
            worker.close()

    thread = threading.Thread(target=dry_run)
    before = table_counts(tmp_path)
    thread.start()
    try:
        assert started.wait(60), "the dry run never got going"
        other = sqlite3.connect(tmp_path / "s.db", timeout=0, isolation_level=None)  # no waiting at all
        writes = 0
        try:
            while True:
                other.execute("BEGIN IMMEDIATE")  # "database is locked" if the dry run held the write lock
                other.execute("INSERT INTO meta (key, value) VALUES (?, 'x')", (f"probe-{writes}",))
                other.execute("COMMIT")
                writes += 1
                checked.set()
                if not thread.is_alive() or writes >= 200:
                    break
        finally:
            checked.set()
            other.close()
    finally:
        thread.join(120)
    assert writes >= 1 and not thread.is_alive()
    report = outcome["report"]
    assert (report.rows, report.imported, report.duplicates, report.updated) == (120_001, 60_000, 60_000, 1)
    after = table_counts(tmp_path)
    assert after["meta"] == before["meta"] + writes
    assert {k: v for k, v in after.items() if k != "meta"} == {k: v for k, v in before.items() if k != "meta"}


BASE = (
    "email,name,city,country,language,notes\n"
    "old@x.example.org,Old,,Peru,,\n"
    "full@x.example.org,Full,Quito,Ecuador,es,VIP\n"
    "blocked@x.example.org,Blocked,Accra,Ghana,en,\n"
)

CASES = {
    "new, duplicates in the file, fills, conflicts, rejected": (
        "Email,Name,City,Country,Notes\r\n"
        "old@x.example.org,Old,Lima,,x\r\n"  # fills city, notes
        "full@x.example.org,Full,Cuenca,,\r\n"  # conflicts on city
        "new@x.example.org,New,Accra,Ghana,\r\n"  # new
        "NEW@x.example.org,New,Kumasi,Ghana,late\r\n"  # duplicate in the file: conflict, fills notes
        "blocked@x.example.org,,,,\r\n"  # suppressed, duplicate
        "nope,Nope,Accra,,\r\n"  # rejected
        "new@x.example.org,,,,\r\n"
    ),  # duplicate again
    "semicolons, a language warning, a bad time zone": (
        "Correo;Nombre;Idioma;Zona horaria\n"
        "old@x.example.org;Old;Klingon;Mars/Base\n"
        "x1@x.example.org;X1;es;America/Lima\n"
        "x1@x.example.org;X1 Other;en;\n"
        ";;;\n"
        "@;;;\n"
    ),
}


def _big_case() -> str:
    # Across batches: a row far into the file meets its first listing in an earlier batch.
    lines = ["email,name,city"] + [f"p{i}@x.example.org,P {i}," for i in range(4500)]
    lines[4300] = "P7@x.example.org,P 7,Lima"  # fills the blank of row 9, two batches later
    lines[4400] = "p8@x.example.org,Another,Cusco"  # conflicts with row 10 and fills
    lines[3000] = "old@x.example.org,Older,Cusco"  # known address: conflict on the name, fills the city
    return "\n".join(lines) + "\n"


CASES["across batches"] = _big_case()


@pytest.mark.parametrize("by", ["coordinator", "network"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_dry_run_report_is_the_real_imports(tmp_path, db, case, by):
    import_contacts(db, write(tmp_path, "base.csv", BASE), "Metropolis")
    import_contacts(db, write(tmp_path, "own.csv", "email,name\nold@x.example.org,\n"), "Citynet", by="network")
    suppress(db, "blocked@x.example.org", "opt_out", "asked")
    path = write(tmp_path, "upload.csv", CASES[case])
    before = table_counts(tmp_path)

    dry = import_contacts(db, path, "Citynet", by=by, dry_run=True)
    assert table_counts(tmp_path) == before
    real = import_contacts(db, path, "Citynet", by=by)

    dry_json, real_json = dry.as_json(), real.as_json()
    assert (dry_json.pop("dry_run"), real_json.pop("dry_run")) == (True, False)
    assert (dry_json.pop("upload_id"), real_json.pop("upload_id")) == (None, real.upload_id)
    assert dry_json == real_json
    assert real.rows == real.imported + real.updated + real.duplicates + real.rejected
    assert real.rows > 0 and (real.duplicates or real.rejected or real.warnings)

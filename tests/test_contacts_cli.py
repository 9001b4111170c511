"""Adversarial tests of ``surveybot contacts …`` run as the real command, against a real SQLite file."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.dbcheck import COUNT_KEYS, all_tables, sql, table_counts


def surveybot(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SURVEYBOT_", "QUALTRICS_"))}
    base["SURVEYBOT_DB"] = str(tmp_path / "s.db")
    return subprocess.run(
        [sys.executable, "-m", "surveybot", *args],
        cwd=tmp_path,
        text=True,
        encoding="utf-8",
        capture_output=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def import_json(tmp_path: Path, path: Path, network: str, *extra: str) -> dict:
    result = surveybot(tmp_path, "contacts", "import", str(path), "--network", network, "--json", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def list_json(tmp_path: Path, *extra: str) -> list[dict]:
    result = surveybot(tmp_path, "contacts", "list", "--json", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["contacts"]


def nothing_stored(tmp_path: Path) -> bool:
    """No data row in any table (``meta`` may hold settings such as a generated secret), or no database."""
    if not (tmp_path / "s.db").exists():
        return True
    return all(n == 0 for t, n in table_counts(tmp_path).items() if t != "meta")


def counts(report: dict) -> dict:
    return {k: report[k] for k in COUNT_KEYS}


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


METROPOLIS = (
    "Full name,E-mail,City,Country,Region,Preferred language,Position\r\n"
    "Ana María Rodríguez,ana.rodriguez@bogota.example.org,Bogotá,Colombia,Latin America,es-CO,Director\r\n"
    "Joseph Mensah,J.Mensah@Accra.example.org,Accra,Ghana,Africa,English,Head\r\n"
    "Bad Address,not-an-address,Quito,Ecuador,Latin America,Spanish,Officer\r\n"
    "\r\n"
    "Joseph Mensah, j.mensah@accra.example.org ,Accra,Ghana,Africa,English,Head\r\n"
    'Formula,formula@x.example.org,"=HYPERLINK(""http://x"",""y"")",,,Klingon,\r\n'
)

CITYNET = (
    "Nombre;Apellidos;Correo electrónico;Ciudad;País;Idioma;Cargo;Teléfono\r\n"
    "Joseph;Mensah;j.mensah@accra.example.org;Kumasi;Ghana;English;Head;+233 1\r\n"
    "Kenji;Watanabe;k.watanabe@yokohama.example.org;Yokohama;Japan;Inglés;Officer;\r\n"
    "María José;Pérez;;Quito;Ecuador;Español;Directora;\r\n"
)


# ------------------------------------------------------------------------------------------- import


def test_import_json_report_keys_counts_and_errors(tmp_path):
    report = import_json(tmp_path, write(tmp_path, "metropolis.csv", METROPOLIS), "Metropolis")

    for key in (
        "rows",
        "imported",
        "updated",
        "duplicates",
        "conflicts",
        "rejected",
        "errors",
        "suppressed",
        "warnings",
        "changes",
        "conflict_details",
        "network",
        "file",
        "encoding",
        "delimiter",
        "dry_run",
        "upload_id",
    ):
        assert key in report, key
    assert counts(report) == {"rows": 5, "imported": 3, "updated": 0, "duplicates": 1, "conflicts": 0, "rejected": 1}
    assert report["rows"] == report["imported"] + report["updated"] + report["duplicates"] + report["rejected"]
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(4, "email")]
    assert set(report["errors"][0]) >= {"row", "field", "message"}
    assert "not-an-address" in report["errors"][0]["message"]
    assert [(w["row"], w["field"]) for w in report["warnings"]] == [(7, "language")]
    assert (report["network"], report["file"], report["delimiter"], report["dry_run"]) == (
        "Metropolis",
        "metropolis.csv",
        "comma",
        False,
    )
    assert report["encoding"] == "UTF-8"
    assert isinstance(report["upload_id"], int)
    assert sql(tmp_path, "SELECT id FROM uploads") == [(report["upload_id"],)]


def test_surveybot_db_names_the_sqlite_file(tmp_path):
    other = tmp_path / "elsewhere" / "custom.sqlite"
    other.parent.mkdir()
    path = write(tmp_path, "l.csv", "Email\nana@x.example.org\n")
    result = surveybot(
        tmp_path, "contacts", "import", str(path), "--network", "N", "--json", env={"SURVEYBOT_DB": str(other)}
    )
    assert result.returncode == 0, result.stderr
    assert other.exists()
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "surveybot.db").exists()
    conn = sqlite3.connect(other)
    try:
        assert conn.execute("SELECT email FROM contacts").fetchall() == [("ana@x.example.org",)]
    finally:
        conn.close()


def test_utf16_tab_file_and_cp1252_semicolon_file_from_the_command_line(tmp_path):
    eurocities = (
        "email\tfirst name\tlast name\tcity\tcountry\tregion\tlanguage\trole\ttimezone\r\n"
        "LFernandez@MONTEVIDEO.example.org\tLucía\tFernández\tMontevideo\tUruguay\tLatin America\tes"
        "\tCoordinator\tAmerica/Montevideo\r\n"
        "karin.berg@goteborg.example.org\tKarin\tBerg\tGöteborg\tSweden\tEurope\ten\tHead\t\r\n"
    )
    first = import_json(tmp_path, write(tmp_path, "eurocities.csv", eurocities, "utf-16"), "Eurocities")
    assert (first["encoding"], first["delimiter"]) == ("UTF-16", "tab")
    assert counts(first) == {"rows": 2, "imported": 2, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}

    second = import_json(tmp_path, write(tmp_path, "citynet.csv", CITYNET, "cp1252"), "Citynet")
    assert (second["encoding"], second["delimiter"]) == ("Windows-1252", "semicolon")
    assert counts(second) == {"rows": 3, "imported": 2, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 1}
    assert [(e["row"], e["field"]) for e in second["errors"]] == [(4, "email")]

    contacts = {c["email"]: c for c in list_json(tmp_path)}
    assert sorted(contacts) == [
        "j.mensah@accra.example.org",
        "k.watanabe@yokohama.example.org",
        "karin.berg@goteborg.example.org",
        "lfernandez@montevideo.example.org",
    ]
    lucia = contacts["lfernandez@montevideo.example.org"]
    assert {k: lucia[k] for k in ("name", "city", "country", "region", "language", "networks")} == {
        "name": "Lucía Fernández",
        "city": "Montevideo",
        "country": "Uruguay",
        "region": "Latin America",
        "language": "es",
        "networks": ["Eurocities"],
    }
    assert contacts["karin.berg@goteborg.example.org"]["city"] == "Göteborg"
    kenji = contacts["k.watanabe@yokohama.example.org"]
    assert (kenji["name"], kenji["language"], kenji["networks"]) == ("Kenji Watanabe", "en", ["Citynet"])


def test_two_networks_one_contact_conflict_and_fill(tmp_path):
    import_json(tmp_path, write(tmp_path, "metropolis.csv", METROPOLIS), "Metropolis")
    report = import_json(tmp_path, write(tmp_path, "citynet.csv", CITYNET, "cp1252"), "Citynet")

    # Joseph: Metropolis says Accra, Citynet says Kumasi (conflict); Citynet adds a phone (fills a blank).
    assert counts(report) == {"rows": 3, "imported": 1, "updated": 1, "duplicates": 0, "conflicts": 1, "rejected": 1}
    assert report["conflict_details"] == [
        {"row": 2, "email": "j.mensah@accra.example.org", "field": "city", "current": "Accra", "proposed": "Kumasi"}
    ]
    assert [(c["row"], c["email"], c["field"], c["old"], c["new"]) for c in report["changes"]] == [
        (2, "j.mensah@accra.example.org", "Teléfono", "", "+233 1")
    ]
    assert sql(tmp_path, "SELECT city FROM contacts WHERE email = 'j.mensah@accra.example.org'") == [("Accra",)]
    assert sql(tmp_path, "SELECT row, field, current, proposed FROM contact_conflicts") == [
        (2, "city", "Accra", "Kumasi")
    ]

    listed = list_json(tmp_path)
    assert [c["email"] for c in listed] == sorted(c["email"] for c in listed)
    contacts = {c["email"]: c for c in listed}
    _check_list_shape(contacts)
    assert contacts["j.mensah@accra.example.org"]["networks"] == ["Metropolis", "Citynet"]
    assert contacts["ana.rodriguez@bogota.example.org"]["networks"] == ["Metropolis"]
    assert sql(
        tmp_path,
        """SELECT s.network, s.row FROM contact_sources s JOIN contacts c ON c.id = s.contact_id
                            WHERE c.email = 'j.mensah@accra.example.org' ORDER BY s.upload_id, s.row""",
    ) == [("Metropolis", 3), ("Metropolis", 6), ("Citynet", 2)]

    only_citynet = list_json(tmp_path, "--network", "Citynet")
    assert sorted(c["email"] for c in only_citynet) == ["j.mensah@accra.example.org", "k.watanabe@yokohama.example.org"]
    assert list_json(tmp_path, "--network", "Nobody") == []


def _check_list_shape(contacts: dict) -> None:
    assert sorted(contacts) == [
        "ana.rodriguez@bogota.example.org",
        "formula@x.example.org",
        "j.mensah@accra.example.org",
        "k.watanabe@yokohama.example.org",
    ]
    for c in contacts.values():
        assert {"email", "name", "city", "country", "region", "language", "networks"} <= set(c)
    ana = contacts["ana.rodriguez@bogota.example.org"]
    assert {k: ana[k] for k in ("name", "city", "country", "region", "language", "networks")} == {
        "name": "Ana María Rodríguez",
        "city": "Bogotá",
        "country": "Colombia",
        "region": "Latin America",
        "language": "es",
        "networks": ["Metropolis"],
    }
    formula = contacts["formula@x.example.org"]
    assert (formula["name"], formula["city"], formula["language"]) == ("Formula", '=HYPERLINK("http://x","y")', "")
    joseph = contacts["j.mensah@accra.example.org"]
    assert (joseph["name"], joseph["city"], joseph["country"], joseph["region"], joseph["language"]) == (
        "Joseph Mensah",
        "Accra",
        "Ghana",
        "Africa",
        "en",
    )


def test_reimporting_the_same_file_from_the_command_line(tmp_path):
    path = write(tmp_path, "metropolis.csv", METROPOLIS)
    first = import_json(tmp_path, path, "Metropolis")
    before = sql(tmp_path, "SELECT * FROM contacts ORDER BY id")
    second = import_json(tmp_path, path, "Metropolis")
    assert counts(second) == {"rows": 5, "imported": 0, "updated": 0, "duplicates": 4, "conflicts": 0, "rejected": 1}
    assert second["upload_id"] != first["upload_id"]
    assert sql(tmp_path, "SELECT * FROM contacts ORDER BY id") == before
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sql(
        tmp_path, "SELECT filename, sha256, rows, imported, duplicates, rejected, state FROM uploads ORDER BY id"
    ) == [("metropolis.csv", sha, 5, 3, 1, 1, "done"), ("metropolis.csv", sha, 5, 0, 4, 1, "done")]
    stored_errors = [json.loads(e) for (e,) in sql(tmp_path, "SELECT errors FROM uploads ORDER BY id")]
    assert stored_errors == [first["errors"], second["errors"]]


def test_dry_run_from_the_command_line_writes_nothing(tmp_path):
    import_json(tmp_path, write(tmp_path, "metropolis.csv", METROPOLIS), "Metropolis")
    path = write(tmp_path, "citynet.csv", CITYNET, "cp1252")
    before = table_counts(tmp_path)
    snapshot = {t: sorted(sql(tmp_path, f"SELECT * FROM {t}"), key=repr) for t in all_tables(tmp_path)}

    dry = import_json(tmp_path, path, "Citynet", "--dry-run")

    assert table_counts(tmp_path) == before
    assert {t: sorted(sql(tmp_path, f"SELECT * FROM {t}"), key=repr) for t in all_tables(tmp_path)} == snapshot
    assert dry["dry_run"] is True and dry["upload_id"] is None
    real = import_json(tmp_path, path, "Citynet")
    assert counts(dry) == counts(real)
    for key in ("errors", "warnings", "changes", "conflict_details", "suppressed"):
        assert dry[key] == real[key], key
    assert table_counts(tmp_path)["uploads"] == before["uploads"] + 1


def test_dry_run_human_output_says_nothing_written(tmp_path):
    path = write(tmp_path, "l.csv", "Email,Name\nana@x.example.org,Ana\nbad,Bad\n")
    result = surveybot(tmp_path, "contacts", "import", str(path), "--network", "Metropolis", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout.lower()
    # the first command a network runs, where no database exists yet: checked, and still no database
    assert "  new contacts        1" in result.stdout and "  rejected            1" in result.stdout
    assert not (tmp_path / "s.db").exists() and "Created a new database" not in result.stderr
    assert "row 3" in result.stdout
    assert nothing_stored(tmp_path)


# ---------------------------------------------------------------------------------- refused files


def _xlsx(tmp_path: Path) -> bytes:
    target = tmp_path / "book.xlsx"
    with zipfile.ZipFile(target, "w") as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet>email</worksheet>")
    return target.read_bytes()


def _refused_bytes(kind: str, tmp_path: Path) -> bytes:
    if kind == "empty":
        return b""
    if kind == "blank-lines":
        return b"\r\n\r\n"
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    if kind == "random-nuls":
        rng = random.Random(7)
        data = bytearray(rng.randbytes(2048))
        data[100] = data[777] = 0
        return bytes(data)
    if kind == "xlsx":
        return _xlsx(tmp_path)
    if kind == "utf16-odd-byte":
        return "Email\tName\r\nana@x.example.org\tAna\r\n".encode("utf-16") + b"\n"
    raise AssertionError(kind)


REFUSED = [
    ("empty", False),
    ("png", False),
    ("random-nuls", False),
    ("xlsx", False),
    ("utf16-odd-byte", False),
    ("empty", True),
    ("xlsx", True),
]


@pytest.mark.parametrize(("kind", "as_json"), REFUSED, ids=[f"{k}-{'json' if j else 'text'}" for k, j in REFUSED])
def test_unusable_file_is_refused_with_one_line_and_status_1(tmp_path, kind, as_json):
    path = tmp_path / "contacts.csv"
    path.write_bytes(_refused_bytes(kind, tmp_path))

    args = ["contacts", "import", str(path), "--network", "Metropolis"] + (["--json"] if as_json else [])
    result = surveybot(tmp_path, *args)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip()
    if as_json:
        error = json.loads(result.stdout)
        assert set(error) == {"error"} and error["error"] in lines[0]
        assert ("empty" if kind == "empty" else "workbook") in error["error"]
    assert nothing_stored(tmp_path)


def test_missing_email_column_exits_1_and_lists_the_headers(tmp_path):
    path = write(tmp_path, "l.csv", "Nombre;Ciudad;País;Teléfono\r\nAna;Bogotá;Colombia;1\r\n", "cp1252")
    result = surveybot(tmp_path, "contacts", "import", str(path), "--network", "Citynet")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    for header in ("Nombre", "Ciudad", "País", "Teléfono"):
        assert header in message
    assert nothing_stored(tmp_path)


def test_dry_run_of_refused_file_also_exits_1(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    result = surveybot(tmp_path, "contacts", "import", str(path), "--network", "M", "--dry-run", "--json")
    assert result.returncode == 1
    assert "error" in json.loads(result.stdout)


# ------------------------------------------------------------------------------------------ suppress


def test_suppress_normalises_and_is_counted_on_import(tmp_path):
    result = surveybot(tmp_path, "contacts", "suppress", "  J.Mensah@ACCRA.example.org ", "--reason", "asked by phone")
    assert result.returncode == 0, result.stderr
    assert "j.mensah@accra.example.org" in result.stdout
    assert sql(tmp_path, "SELECT email, kind, reason FROM suppressions") == [
        ("j.mensah@accra.example.org", "manual", "asked by phone")
    ]

    again = surveybot(tmp_path, "contacts", "suppress", "j.mensah@accra.example.org")
    assert again.returncode == 0
    assert sql(tmp_path, "SELECT COUNT(*) FROM suppressions") == [(1,)]

    report = import_json(tmp_path, write(tmp_path, "metropolis.csv", METROPOLIS), "Metropolis")
    assert report["suppressed"] == 2  # Joseph is listed on two rows
    assert counts(report)["imported"] == 3


def test_suppress_rejects_an_invalid_address(tmp_path):
    result = surveybot(tmp_path, "contacts", "suppress", "not an address")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()  # a refused first command leaves no empty database behind

"""Adversarial tests of the contact import, at the library level: real files, a real SQLite file.

Every file is written byte for byte into ``tmp_path``; the database is inspected with plain ``sqlite3``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import zipfile
from pathlib import Path

import pytest

from surveybot.contacts.importer import import_contacts
from surveybot.db import open_db
from surveybot.errors import FileRefused
from tests.dbcheck import COUNT_KEYS, sql, table_counts

# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def db(tmp_path):
    database = open_db(tmp_path / "s.db")
    yield database
    database.conn.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def text_file(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    """``text`` is written with its line endings exactly as given."""
    return write(tmp_path, name, text.encode(encoding))


def contact(tmp_path: Path, email: str) -> dict:
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM contacts WHERE email = ?", (email,)).fetchone()
    finally:
        conn.close()
    assert row is not None, f"no contact {email!r}"
    record = dict(row)
    record["attributes"] = json.loads(record["attributes"])
    return record


def emails(tmp_path: Path) -> list[str]:
    return [e for (e,) in sql(tmp_path, "SELECT email FROM contacts ORDER BY email")]


def data_rows(tmp_path: Path) -> dict[str, int]:
    """Like :func:`table_counts` without ``meta`` (settings such as a generated secret may live there)."""
    return {t: n for t, n in table_counts(tmp_path).items() if t != "meta"}


def counts(report) -> dict:
    return {k: getattr(report, k) for k in COUNT_KEYS}


def assert_invariant(report) -> None:
    assert report.rows == report.imported + report.updated + report.duplicates + report.rejected


def error_places(report) -> list[tuple]:
    return [(e["row"], e["field"]) for e in report.errors]


# --------------------------------------------------------------------------- encodings and delimiters

ACCENTED = [
    ("ana.rodriguez@bogota.example.org", "Ana María Rodríguez", "Bogotá", "Colombia", "Español"),
    ("j.mensah@accra.example.org", "Joseph Mensah", "Accra", "Ghana", "English"),
    ("lucia@montevideo.example.org", "Lucía Fernández", "Montevideo", "Uruguay", "es-CO"),
]
ENCODING_FAMILY = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "cp1252": "Windows-1252",
}
DELIMITER_NAME = {",": "comma", ";": "semicolon", "\t": "tab"}


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
@pytest.mark.parametrize("encoding", list(ENCODING_FAMILY))
def test_encoding_and_delimiter_are_detected(tmp_path, db, encoding, delimiter, eol):
    lines = [delimiter.join(["Name", "Email", "City", "Country", "Language"])]
    lines += [delimiter.join([name, email, city, country, lang]) for email, name, city, country, lang in ACCENTED]
    path = text_file(tmp_path, "list.csv", eol.join(lines) + eol, encoding)

    report = import_contacts(db, path, "Metropolis")

    assert counts(report) == {"rows": 3, "imported": 3, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert report.errors == [] and report.warnings == []
    data = report.as_json()
    assert data["delimiter"] == DELIMITER_NAME[delimiter]
    assert data["encoding"].startswith(ENCODING_FAMILY[encoding])
    stored = {r[0]: r[1:] for r in sql(tmp_path, "SELECT email, name, city, country, language FROM contacts")}
    assert stored == {
        "ana.rodriguez@bogota.example.org": ("Ana María Rodríguez", "Bogotá", "Colombia", "es"),
        "j.mensah@accra.example.org": ("Joseph Mensah", "Accra", "Ghana", "en"),
        "lucia@montevideo.example.org": ("Lucía Fernández", "Montevideo", "Uruguay", "es"),
    }


def test_windows_1252_semicolon_spanish_headers_like_excel_saves_them(tmp_path, db):
    text = (
        "Nombre;Apellidos;Correo electrónico;Ciudad;País;Idioma;Cargo\r\n"
        "María José;Pérez;MJ.Perez@Quito.example.org;Quito;Ecuador;Español;Directora de Relaciones\r\n"
        "Kenji;Watanabe;k.watanabe@yokohama.example.org;Yokohama;Japan;Inglés;Officer “A”\r\n"
    )
    path = text_file(tmp_path, "citynet.csv", text, "cp1252")

    report = import_contacts(db, path, "Citynet")

    assert counts(report)["imported"] == 2 and report.rejected == 0
    assert report.as_json()["encoding"] == "Windows-1252"
    maria = contact(tmp_path, "mj.perez@quito.example.org")
    assert (maria["name"], maria["city"], maria["country"], maria["language"], maria["position"]) == (
        "María José Pérez",
        "Quito",
        "Ecuador",
        "es",
        "Directora de Relaciones",
    )
    kenji = contact(tmp_path, "k.watanabe@yokohama.example.org")
    assert (kenji["name"], kenji["language"], kenji["position"]) == ("Kenji Watanabe", "en", "Officer “A”")
    assert maria["attributes"] == {} and kenji["attributes"] == {}


def test_utf16_with_bom_tab_separated_as_excel_unicode_text(tmp_path, db):
    text = (
        "email\tfirst name\tlast name\tcity\tcountry\tregion\tlanguage\trole\ttimezone\r\n"
        "LFernandez@MONTEVIDEO.example.org\tLucía\tFernández\tMontevideo\tUruguay\tLatin America\tes\t"
        "Coordinator\tAmerica/Montevideo\r\n"
    )
    path = text_file(tmp_path, "eurocities.csv", text, "utf-16")
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")

    report = import_contacts(db, path, "Eurocities")

    assert counts(report) == {"rows": 1, "imported": 1, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert report.as_json()["encoding"] == "UTF-16" and report.as_json()["delimiter"] == "tab"
    lucia = contact(tmp_path, "lfernandez@montevideo.example.org")
    assert {k: lucia[k] for k in ("name", "city", "country", "region", "language", "position", "timezone")} == {
        "name": "Lucía Fernández",
        "city": "Montevideo",
        "country": "Uruguay",
        "region": "Latin America",
        "language": "es",
        "position": "Coordinator",
        "timezone": "America/Montevideo",
    }


def test_utf8_bom_before_the_email_header(tmp_path, db):
    path = write(tmp_path, "l.csv", b"\xef\xbb\xbfE-mail;Name\r\nAna@X.example.org;Ana\r\n")
    report = import_contacts(db, path, "Metropolis")
    assert report.imported == 1 and report.rejected == 0
    assert sql(tmp_path, "SELECT email, name, attributes FROM contacts") == [("ana@x.example.org", "Ana", "{}")]


def test_utf16_with_an_odd_trailing_byte_is_refused_cleanly(tmp_path, db):
    # A UTF-16 file with one stray byte at the end cannot be decoded: refuse it whole, write nothing.
    data = "email\tname\r\nana@x.example.org\tAna\r\n".encode("utf-16") + b"\n"
    path = write(tmp_path, "odd.csv", data)
    with pytest.raises(FileRefused):
        import_contacts(db, path, "Metropolis")
    assert table_counts(tmp_path)["uploads"] == 0
    assert table_counts(tmp_path)["contacts"] == 0


# ------------------------------------------------------------------------------------- header mapping

HEADER_SETS = {
    "plain": (["name", "email", "city", "country", "region", "language", "position", "timezone"], None),
    "upper": (["FULL NAME", "E-MAIL", "CITY", "COUNTRY", "REGION", "PREFERRED LANGUAGE", "ROLE", "TIMEZONE"], None),
    "mixed": (
        ["Full name", "Email address", "City", "Country", "Region", "Preferred language", "Title", "Timezone"],
        None,
    ),
    "spanish": (["Nombre", "Apellidos", "Correo electrónico", "Ciudad", "País", "Región", "Idioma", "Cargo"], "split"),
    "spanish-unaccented": (
        ["NOMBRE", "APELLIDOS", "CORREO ELECTRONICO", "CIUDAD", "PAIS", "REGION", "IDIOMA", "CARGO"],
        "split",
    ),
    "first-last": (["First name", "Last name", "E-mail", "City", "Country", "Region", "Language", "Role"], "split"),
    "padded": (
        [" First Name ", " LAST NAME", "  e-mail  ", "city", "Country", "region", "Preferred Language", "position"],
        "split",
    ),
}


@pytest.mark.parametrize("header_set", list(HEADER_SETS))
def test_header_spellings_are_mapped(tmp_path, db, header_set):
    headers, split = HEADER_SETS[header_set]
    if split:
        values = [
            "Ana María",
            "Rodríguez",
            "Ana@Bogota.example.org",
            "Bogotá",
            "Colombia",
            "Latin America",
            "Spanish",
            "Director",
        ]
    else:
        values = [
            "Ana María Rodríguez",
            "Ana@Bogota.example.org",
            "Bogotá",
            "Colombia",
            "Latin America",
            "Spanish",
            "Director",
            "America/Bogota",
        ]
    path = text_file(tmp_path, "list.csv", ";".join(headers) + "\r\n" + ";".join(values) + "\r\n")

    report = import_contacts(db, path, "Metropolis")

    assert report.imported == 1 and report.rejected == 0
    ana = contact(tmp_path, "ana@bogota.example.org")
    assert {k: ana[k] for k in ("name", "city", "country", "region", "language", "position")} == {
        "name": "Ana María Rodríguez",
        "city": "Bogotá",
        "country": "Colombia",
        "region": "Latin America",
        "language": "es",
        "position": "Director",
    }
    assert ana["attributes"] == {}
    if not split:
        assert ana["timezone"] == "America/Bogota"


def test_first_name_alone_or_last_name_alone_still_gives_a_name(tmp_path, db):
    text = (
        "First name,Last name,Email\n"
        "Kenji,,kenji@yokohama.example.org\n"
        ",Mensah,mensah@accra.example.org\n"
        "  Priya  ,  Raman  ,priya@chennai.example.org\n"
    )
    import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert sql(tmp_path, "SELECT email, name FROM contacts ORDER BY email") == [
        ("kenji@yokohama.example.org", "Kenji"),
        ("mensah@accra.example.org", "Mensah"),
        ("priya@chennai.example.org", "Priya Raman"),
    ]


def test_full_name_column_wins_over_first_and_last(tmp_path, db):
    text = "Full name,First name,Last name,Email\nAna M. Rodríguez,Ana,Rodríguez,ana@x.example.org\n"
    import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert contact(tmp_path, "ana@x.example.org")["name"] == "Ana M. Rodríguez"


def test_unknown_columns_are_kept_as_attributes(tmp_path, db):
    text = (
        "Email,Name,Phone,Department,Notes\n"
        "ana@x.example.org,Ana,+57 1 555 0100,International Affairs,Met at the summit\n"
    )
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.imported == 1
    ana = contact(tmp_path, "ana@x.example.org")
    assert ana["attributes"] == {
        "Phone": "+57 1 555 0100",
        "Department": "International Affairs",
        "Notes": "Met at the summit",
    }
    assert ana["name"] == "Ana" and ana["city"] == ""


def test_file_without_email_column_is_refused_listing_headers(tmp_path, db):
    text = "Name,City,Country,Phone\nAna,Bogotá,Colombia,123\n"
    with pytest.raises(FileRefused) as refused:
        import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    message = str(refused.value)
    assert "\n" not in message
    for header in ("Name", "City", "Country", "Phone"):
        assert header in message
    assert set(data_rows(tmp_path).values()) == {0}


# ------------------------------------------------------------------------------------------- e-mails


def test_emails_are_trimmed_and_lower_cased(tmp_path, db):
    text = 'Email,Name\n  Ana.Maria+Survey@Bogota.Example.ORG  ,Ana\n"\tBO@ACCRA.EXAMPLE.ORG ",Bo\n'
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.imported == 2 and report.rejected == 0
    assert emails(tmp_path) == ["ana.maria+survey@bogota.example.org", "bo@accra.example.org"]


BAD_EMAILS = [
    "no-at-sign.example.org",
    "ana@@x.example.org",
    "ana@b@x.example.org",
    "ana maria@x.example.org",
    "ana@x.example.org.",
    "ana@",
    "@x.example.org",
    "ana@localhost",
    "ana@x..example.org",
    "ana.@x.example.org",
    "ana@x.example.org;bo@x.example.org",
]


def test_bad_emails_are_rejected_one_by_one_with_row_and_field(tmp_path, db):
    lines = ["Name,Email,City", "Good One,good1@x.example.org,Quito"]
    lines += [
        f"Bad {i},{bad},Quito" if "," not in bad else f'Bad {i},"{bad}",Quito' for i, bad in enumerate(BAD_EMAILS)
    ]
    lines += ["Blank,,Quito", "Spaces,   ,Quito", "Good Two,good2@x.example.org,Lima"]
    path = text_file(tmp_path, "l.csv", "\r\n".join(lines) + "\r\n")

    report = import_contacts(db, path, "Metropolis")

    total = 2 + len(BAD_EMAILS) + 2
    assert counts(report) == {
        "rows": total,
        "imported": 2,
        "updated": 0,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": total - 2,
    }
    assert error_places(report) == [(row, "email") for row in range(3, 3 + len(BAD_EMAILS) + 2)]
    for error, bad in zip(report.errors, BAD_EMAILS):
        assert bad in error["message"]
    assert "blank" in report.errors[-2]["message"] and "blank" in report.errors[-1]["message"]
    assert emails(tmp_path) == ["good1@x.example.org", "good2@x.example.org"]
    assert sql(tmp_path, "SELECT row FROM contact_sources ORDER BY row") == [(2,), (3 + len(BAD_EMAILS) + 2,)]
    assert_invariant(report)


# ------------------------------------------------------------------------------------------ languages

LANGUAGES = [
    ("ES", "es", False),
    ("es", "es", False),
    ("Spanish", "es", False),
    ("Español", "es", False),
    ("ESPAÑOL", "es", False),
    ("es-CO", "es", False),
    ("Castellano", "es", False),
    ("English", "en", False),
    ("en", "en", False),
    ("EN", "en", False),
    ("en-GB", "en", False),
    ("Inglés", "en", False),
    ("ingles", "en", False),
    ("en_US", "en", False),
    ("", "", False),
    ("   ", "", False),
    ("French", "", True),
    ("pt-BR", "", True),
    ("Deutsch", "", True),
    ("English/Spanish", "", True),
]


@pytest.mark.parametrize(("raw", "expected", "warns"), LANGUAGES)
def test_language_is_normalised(tmp_path, db, raw, expected, warns):
    path = text_file(tmp_path, "l.csv", f"Email,Name,Preferred language\nana@x.example.org,Ana,{raw}\n")
    report = import_contacts(db, path, "Metropolis")
    assert report.imported == 1 and report.rejected == 0
    assert contact(tmp_path, "ana@x.example.org")["language"] == expected
    if warns:
        assert [(w["row"], w["field"]) for w in report.warnings] == [(2, "language")]
        assert raw in report.warnings[0]["message"]
    else:
        assert report.warnings == []


def test_timezone_is_optional_and_kept_when_valid(tmp_path, db):
    text = "Email,Timezone\na@x.example.org,Europe/Madrid\nb@x.example.org,\nc@x.example.org,Not/AZone\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.imported == 3 and report.rejected == 0
    assert sql(tmp_path, "SELECT email, timezone FROM contacts ORDER BY email") == [
        ("a@x.example.org", "Europe/Madrid"),
        ("b@x.example.org", ""),
        ("c@x.example.org", ""),
    ]
    assert [(w["row"], w["field"]) for w in report.warnings] == [(4, "timezone")]


# ------------------------------------------------------------------------------- values kept exactly


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252"])
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_formulas_and_line_breaks_in_quoted_cells_are_stored_exactly(tmp_path, db, eol, encoding):
    text = (
        eol.join(
            [
                "Email,Name,City,Position",
                'f@x.example.org,"=HYPERLINK(""http://x"",""y"")",+57 Bogotá,-Director',
                'crlf@x.example.org,"Ana María\r\nRodríguez",@Quito,"=1+2"',
                'lf@x.example.org,"Joseph\nMensah","  Accra  ","Head\r\nof\nRelations"',
                "last@x.example.org,Last,Lima,Officer",
            ]
        )
        + eol
    )
    path = text_file(tmp_path, "l.csv", text, encoding)

    report = import_contacts(db, path, "Metropolis")

    assert counts(report) == {"rows": 4, "imported": 4, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert sql(tmp_path, "SELECT email, name, city, position FROM contacts ORDER BY email") == [
        ("crlf@x.example.org", "Ana María\r\nRodríguez", "@Quito", "=1+2"),
        ("f@x.example.org", '=HYPERLINK("http://x","y")', "+57 Bogotá", "-Director"),
        ("last@x.example.org", "Last", "Lima", "Officer"),
        ("lf@x.example.org", "Joseph\nMensah", "Accra", "Head\r\nof\nRelations"),
    ]
    assert sql(tmp_path, "SELECT row FROM contact_sources ORDER BY row") == [(2,), (3,), (4,), (5,)]


def test_outer_whitespace_is_trimmed_inner_kept(tmp_path, db):
    text = 'Email,Name,City\nana@x.example.org,"  Ana   María \r\n ","\tSan  José "\n'
    import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    ana = contact(tmp_path, "ana@x.example.org")
    assert (ana["name"], ana["city"]) == ("Ana   María", "San  José")


def test_quoted_multiline_cell_with_delimiter_and_at_sign_is_kept(tmp_path, db):
    # A properly quoted cell may hold a line break, a comma and an "@": it is a value, not a broken row.
    notes = "Assistant: Marta Gómez, marta@bogota.example.org\r\nCall before 10am"
    text = f'Email,Name,Notes\r\nana@bogota.example.org,Ana,"{notes}"\r\nbo@x.example.org,Bo,\r\n'
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.errors == []
    assert counts(report) == {"rows": 2, "imported": 2, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert contact(tmp_path, "ana@bogota.example.org")["attributes"] == {"Notes": notes}


# --------------------------------------------------------------------------- refused files, edge files


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n\n", b"   \t  \n", b"\xef\xbb\xbf", b"\xff\xfe", "\r\n".encode("utf-16")],
    ids=["zero-bytes", "newlines", "whitespace", "utf8-bom-only", "utf16-bom-only", "utf16-newline"],
)
def test_empty_file_is_refused_and_nothing_written(tmp_path, db, data):
    path = write(tmp_path, "empty.csv", data)
    before = table_counts(tmp_path)
    with pytest.raises(FileRefused) as refused:
        import_contacts(db, path, "Metropolis")
    assert "\n" not in str(refused.value) and str(refused.value).strip()
    assert table_counts(tmp_path) == before
    assert before["uploads"] == 0 and before["contacts"] == 0


def _xlsx_bytes(tmp_path: Path) -> bytes:
    target = tmp_path / "book.xlsx"
    with zipfile.ZipFile(target, "w") as book:
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/worksheets/sheet1.xml", "<worksheet><c>email</c><c>ana@x.example.org</c></worksheet>")
    return target.read_bytes()


def _random_with_nuls() -> bytes:
    rng = random.Random(1234)
    data = bytearray(rng.randbytes(4096))
    for i in range(0, 4096, 97):
        data[i] = 0
    return bytes(b"email,name\n" + data)


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
    b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.parametrize("kind", ["png", "random-nuls", "xlsx", "xls", "pdf", "random-no-nuls"])
def test_binary_file_posing_as_csv_is_refused(tmp_path, db, kind):
    if kind == "png":
        data = PNG
    elif kind == "random-nuls":
        data = _random_with_nuls()
    elif kind == "xlsx":
        data = _xlsx_bytes(tmp_path)
    elif kind == "xls":
        data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"email,name\n"
    elif kind == "pdf":
        data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\nemail\n"
    else:
        rng = random.Random(99)
        data = bytes(b or 1 for b in rng.randbytes(8192))
    path = write(tmp_path, "contacts.csv", data)
    before = table_counts(tmp_path)
    with pytest.raises(FileRefused) as refused:
        import_contacts(db, path, "Metropolis")
    message = str(refused.value)
    assert message and "\n" not in message
    assert table_counts(tmp_path) == before
    assert set(data_rows(tmp_path).values()) == {0}


def test_header_only_file_imports_nothing(tmp_path, db):
    path = text_file(tmp_path, "l.csv", "Email,Name,City\r\n")
    report = import_contacts(db, path, "Metropolis")
    assert counts(report) == dict.fromkeys(COUNT_KEYS, 0)
    assert report.errors == []
    assert table_counts(tmp_path)["contacts"] == 0
    assert sql(tmp_path, "SELECT rows, imported, state FROM uploads") == [(0, 0, "done")]


def test_excel_sep_line_is_obeyed(tmp_path, db):
    text = "sep=;\r\nEmail;Name;City\r\nana@x.example.org;Rodríguez, Ana;Bogotá, D.C.\r\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text, "utf-8-sig"), "Metropolis")
    assert counts(report) == {"rows": 1, "imported": 1, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert report.as_json()["delimiter"] == "semicolon"
    ana = contact(tmp_path, "ana@x.example.org")
    assert (ana["name"], ana["city"]) == ("Rodríguez, Ana", "Bogotá, D.C.")
    assert emails(tmp_path) == ["ana@x.example.org"]


def test_excel_sep_line_is_not_a_spreadsheet_row(tmp_path, db):
    # Excel hides the sep= line: the header is row 1 and the first data row is row 2 on screen.
    text = "sep=;\r\nEmail;Name\r\nnot-an-address;Ana\r\nbo@x.example.org;Bo\r\n;Blank\r\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert counts(report)["rejected"] == 2 and report.imported == 1
    assert error_places(report) == [(2, "email"), (4, "email")]
    assert sql(tmp_path, "SELECT row FROM contact_sources") == [(3,)]


def test_title_line_above_header(tmp_path, db):
    text = (
        "Metropolis – contact list, March 2024\r\n"
        "Full name,E-mail,City\r\n"
        "Ana,ana@x.example.org,Bogotá\r\n"
        "Bad,not-an-address,Quito\r\n"
    )
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert counts(report) == {"rows": 2, "imported": 1, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 1}
    assert error_places(report) == [(4, "email")]  # title is row 1, header row 2
    assert emails(tmp_path) == ["ana@x.example.org"]
    assert sql(tmp_path, "SELECT row FROM contact_sources") == [(3,)]


def test_title_and_blank_lines_above_semicolon_header(tmp_path, db):
    text = (
        "Contactos Citynet; versión final\r\n"
        "\r\n"
        "Nombre;Apellidos;Correo electrónico;Ciudad\r\n"
        "María;Pérez;mj@quito.example.org;Quito\r\n"
    )
    report = import_contacts(db, text_file(tmp_path, "l.csv", text, "cp1252"), "Citynet")
    assert report.imported == 1 and report.rows == 1
    assert sql(tmp_path, "SELECT email, name, city FROM contacts") == [("mj@quito.example.org", "María Pérez", "Quito")]
    assert sql(tmp_path, "SELECT row FROM contact_sources") == [(4,)]


def test_title_line_with_unicode_line_separator_loses_no_row(tmp_path, db):
    # U+2028 is text inside a cell (spreadsheets do not end a row there); the first data row must survive.
    text = "Contactos\u2028Marzo 2024\r\nemail,name\r\nana@x.example.org,Ana\r\nbo@x.example.org,Bo\r\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.rows == 2 and report.imported == 2
    assert emails(tmp_path) == ["ana@x.example.org", "bo@x.example.org"]


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
def test_delimiter_detection_survives_commas_inside_values(tmp_path, db, delimiter):
    # Semicolon (and tab) files from European Excel hold commas in their text; the header says the delimiter.
    lines = [
        ["Email", "Name", "City"],
        ["ana@x.example.org", "Rodríguez, Ana María", "Bogotá, D.C., Colombia, South America"],
        ["bo@x.example.org", "Mensah, Joseph", "Accra"],
    ]
    text = "\r\n".join(delimiter.join(line) for line in lines) + "\r\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.as_json()["delimiter"] == DELIMITER_NAME[delimiter]
    assert counts(report) == {"rows": 2, "imported": 2, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert contact(tmp_path, "ana@x.example.org")["city"] == "Bogotá, D.C., Colombia, South America"


def test_comma_values_with_semicolons_do_not_change_delimiter(tmp_path, db):
    text = "Email,Name,City\nana@x.example.org,Ana,Bogotá\nbo@x.example.org,Bo;Joseph;Kwame;Mensah,Accra\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.as_json()["delimiter"] == "comma"
    assert report.imported == 2
    assert contact(tmp_path, "bo@x.example.org")["name"] == "Bo;Joseph;Kwame;Mensah"


# ------------------------------------------------------------------- row numbers, blank lines, invariant


def test_row_numbers_follow_the_spreadsheet_with_multiline_cells(tmp_path, db):
    text = (
        "Email,Name,City\r\n"  # row 1
        'ana@x.example.org,"Ana\r\nMaría\r\nRodríguez",Bogotá\r\n'  # row 2 (three lines)
        "broken,Bad One,Quito\r\n"  # row 3
        'bo@x.example.org,"Joseph\nMensah",Accra\r\n'  # row 4 (two lines)
        ",No Address,Lima\r\n"
    )  # row 5
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert error_places(report) == [(3, "email"), (5, "email")]
    assert sql(
        tmp_path, "SELECT c.email, s.row FROM contact_sources s JOIN contacts c ON c.id = s.contact_id ORDER BY s.row"
    ) == [("ana@x.example.org", 2), ("bo@x.example.org", 4)]
    assert counts(report) == {"rows": 4, "imported": 2, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 2}


def test_blank_lines_are_not_rows_but_keep_their_row_numbers(tmp_path, db):
    text = (
        "Email,Name,City\n"  # 1
        "\n"  # 2 blank
        "a@x.example.org,A,Quito\n"  # 3
        ",,\n"  # 4 only delimiters (Excel's empty row)
        "   ,  ,  \n"  # 5 only spaces
        "bad-address,B,Lima\n"  # 6
        "\n\n"
    )
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert counts(report) == {"rows": 2, "imported": 1, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 1}
    assert error_places(report) == [(6, "email")]
    assert sql(tmp_path, "SELECT row FROM contact_sources") == [(3,)]


def test_short_rows_get_blank_fields(tmp_path, db):
    text = "Email,Name,City,Country\nana@x.example.org,Ana\nbo@x.example.org\n"
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert report.imported == 2 and report.rejected == 0
    assert sql(tmp_path, "SELECT email, name, city, country FROM contacts ORDER BY email") == [
        ("ana@x.example.org", "Ana", "", ""),
        ("bo@x.example.org", "", "", ""),
    ]


def test_invariant_on_a_mixed_file(tmp_path, db):
    first = "Email,Name,City\nold@x.example.org,Old,\nkept@x.example.org,Kept,Quito\n"
    import_contacts(db, text_file(tmp_path, "first.csv", first), "Citynet")
    text = (
        "Email,Name,City\n"
        "old@x.example.org,Old,Lima\n"  # updated (fills city)
        "kept@x.example.org,Kept,Cusco\n"  # duplicate + conflict
        "new@x.example.org,New,Accra\n"  # imported
        "NEW@x.example.org ,New,Accra\n"  # duplicate
        "nope,Nope,Accra\n"  # rejected
        "\n"
    )
    report = import_contacts(db, text_file(tmp_path, "second.csv", text), "Metropolis")
    assert counts(report) == {"rows": 5, "imported": 1, "updated": 1, "duplicates": 2, "conflicts": 1, "rejected": 1}
    assert_invariant(report)


# --------------------------------------------------------------------------------- de-duplication


def test_duplicates_within_file_differing_in_case_and_whitespace(tmp_path, db):
    text = (
        "Email,Name\n"
        "ana@bogota.example.org,Ana\n"
        "  Ana@Bogota.Example.ORG  ,Ana\n"
        '" ANA@BOGOTA.EXAMPLE.ORG\t",Ana\n'
        "bo@x.example.org,Bo\n"
    )
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert counts(report) == {"rows": 4, "imported": 2, "updated": 0, "duplicates": 2, "conflicts": 0, "rejected": 0}
    assert emails(tmp_path) == ["ana@bogota.example.org", "bo@x.example.org"]
    assert sql(
        tmp_path,
        "SELECT c.email, s.row, s.network FROM contact_sources s JOIN contacts c ON c.id = s.contact_id ORDER BY s.row",
    ) == [
        ("ana@bogota.example.org", 2, "Metropolis"),
        ("ana@bogota.example.org", 3, "Metropolis"),
        ("ana@bogota.example.org", 4, "Metropolis"),
        ("bo@x.example.org", 5, "Metropolis"),
    ]


def test_duplicate_within_file_fills_blanks_and_reports_conflicts(tmp_path, db):
    text = (
        "Email,Name,City,Country\n"
        "ana@x.example.org,Ana,,\n"  # 2 imported
        "ana@x.example.org,,Bogotá,\n"  # 3 duplicate, fills city
        "ana@x.example.org,Ana,Medellín,Colombia\n"
    )  # 4 duplicate, fills country, conflicts on city
    report = import_contacts(db, text_file(tmp_path, "l.csv", text), "Metropolis")
    assert counts(report) == {"rows": 3, "imported": 1, "updated": 0, "duplicates": 2, "conflicts": 1, "rejected": 0}
    ana = contact(tmp_path, "ana@x.example.org")
    assert (ana["name"], ana["city"], ana["country"]) == ("Ana", "Bogotá", "Colombia")
    assert [(c["row"], c["field"], c["current"], c["proposed"]) for c in report.conflict_details] == [
        (4, "city", "Bogotá", "Medellín")
    ]
    assert sql(tmp_path, "SELECT row, field, current, proposed FROM contact_conflicts") == [
        (4, "city", "Bogotá", "Medellín")
    ]


def test_same_contact_from_two_networks_is_one_contact_with_both_provenances(tmp_path, db):
    a = "Full name,E-mail,City\nJoseph Mensah,j.mensah@accra.example.org,Accra\nAna,ana@x.example.org,Bogotá\n"
    b = "Nombre;Apellidos;Correo electrónico;Ciudad\r\nJoseph;Mensah;J.Mensah@Accra.example.org;Accra\r\n"
    first = import_contacts(db, text_file(tmp_path, "metropolis.csv", a), "Metropolis")
    second = import_contacts(db, text_file(tmp_path, "citynet.csv", b, "cp1252"), "Citynet")

    assert counts(first)["imported"] == 2
    assert counts(second) == {"rows": 1, "imported": 0, "updated": 0, "duplicates": 1, "conflicts": 0, "rejected": 0}
    assert sql(tmp_path, "SELECT COUNT(*) FROM contacts WHERE email = 'j.mensah@accra.example.org'") == [(1,)]
    assert sql(
        tmp_path,
        """SELECT s.network, s.upload_id, s.row FROM contact_sources s JOIN contacts c
                            ON c.id = s.contact_id WHERE c.email = 'j.mensah@accra.example.org'
                            ORDER BY s.upload_id""",
    ) == [("Metropolis", first.upload_id, 2), ("Citynet", second.upload_id, 2)]
    assert first.upload_id != second.upload_id


def test_later_upload_fills_blank_fields_and_reports_changes(tmp_path, db):
    a = "Email,Name,City,Country,Language\nana@x.example.org,Ana,,Colombia,\n"
    b = "Email,Name,City,Country,Language,Phone\nana@x.example.org,Ana,Bogotá,Colombia,Español,+57 1\n"
    import_contacts(db, text_file(tmp_path, "a.csv", a), "Metropolis")
    report = import_contacts(db, text_file(tmp_path, "b.csv", b), "Citynet")

    assert counts(report) == {"rows": 1, "imported": 0, "updated": 1, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert sorted((c["row"], c["email"], c["field"], c["old"], c["new"]) for c in report.changes) == sorted(
        [
            (2, "ana@x.example.org", "city", "", "Bogotá"),
            (2, "ana@x.example.org", "language", "", "es"),
            (2, "ana@x.example.org", "Phone", "", "+57 1"),
        ]
    )
    ana = contact(tmp_path, "ana@x.example.org")
    assert (ana["city"], ana["country"], ana["language"], ana["attributes"]) == (
        "Bogotá",
        "Colombia",
        "es",
        {"Phone": "+57 1"},
    )
    assert report.conflict_details == [] and table_counts(tmp_path)["contact_conflicts"] == 0


def test_conflicting_value_never_overwrites_and_is_stored(tmp_path, db):
    a = "Email,Name,City,Language\nj.mensah@accra.example.org,Joseph Mensah,Accra,English\n"
    b = "Email,Name,City,Language,Country\nj.mensah@accra.example.org,Joseph Mensah,Kumasi,Spanish,Ghana\n"
    import_contacts(db, text_file(tmp_path, "a.csv", a), "Metropolis")
    report = import_contacts(db, text_file(tmp_path, "b.csv", b), "Citynet")

    # The row fills a blank (country) and clashes on city and language: updated, and one conflicting row.
    assert counts(report) == {"rows": 1, "imported": 0, "updated": 1, "duplicates": 0, "conflicts": 1, "rejected": 0}
    assert sorted((c["row"], c["field"], c["current"], c["proposed"]) for c in report.conflict_details) == [
        (2, "city", "Accra", "Kumasi"),
        (2, "language", "en", "es"),
    ]
    joseph = contact(tmp_path, "j.mensah@accra.example.org")
    assert (joseph["city"], joseph["language"], joseph["country"]) == ("Accra", "en", "Ghana")
    assert sorted(
        sql(
            tmp_path,
            """SELECT c.email, k.upload_id, k.row, k.field, k.current, k.proposed
                                   FROM contact_conflicts k JOIN contacts c ON c.id = k.contact_id""",
        )
    ) == [
        ("j.mensah@accra.example.org", report.upload_id, 2, "city", "Accra", "Kumasi"),
        ("j.mensah@accra.example.org", report.upload_id, 2, "language", "en", "es"),
    ]
    assert sql(tmp_path, "SELECT conflicts, updated FROM uploads WHERE id = ?", (report.upload_id,)) == [(1, 1)]


def test_conflict_only_row_is_a_duplicate(tmp_path, db):
    a = "Email,City\nana@x.example.org,Bogotá\n"
    b = "Email,City\nana@x.example.org,Cali\n"
    import_contacts(db, text_file(tmp_path, "a.csv", a), "Metropolis")
    report = import_contacts(db, text_file(tmp_path, "b.csv", b), "Citynet")
    assert counts(report) == {"rows": 1, "imported": 0, "updated": 0, "duplicates": 1, "conflicts": 1, "rejected": 0}
    assert contact(tmp_path, "ana@x.example.org")["city"] == "Bogotá"
    assert report.changes == []


def test_reimporting_the_same_file_gives_only_duplicates(tmp_path, db):
    text = (
        "Email,Name,City,Language,Notes\n"
        "ana@x.example.org,Ana,Bogotá,es-CO,VIP\n"
        "bo@x.example.org,Bo,,French,\n"
        "bo@x.example.org,Bo,Accra,,\n"
        "bad,Bad,Lima,,\n"
    )
    path = text_file(tmp_path, "l.csv", text)
    first = import_contacts(db, path, "Metropolis")
    snapshot = sql(tmp_path, "SELECT * FROM contacts ORDER BY id")
    second = import_contacts(db, path, "Metropolis")

    assert counts(first) == {"rows": 4, "imported": 2, "updated": 0, "duplicates": 1, "conflicts": 0, "rejected": 1}
    assert counts(second) == {"rows": 4, "imported": 0, "updated": 0, "duplicates": 3, "conflicts": 0, "rejected": 1}
    assert second.changes == [] and second.conflict_details == []
    assert sql(tmp_path, "SELECT * FROM contacts ORDER BY id") == snapshot
    assert sql(tmp_path, "SELECT upload_id, COUNT(*) FROM contact_sources GROUP BY upload_id ORDER BY 1") == [
        (first.upload_id, 3),
        (second.upload_id, 3),
    ]
    assert table_counts(tmp_path)["uploads"] == 2


# ---------------------------------------------------------------------------- dry run and upload record


def _mixed_second_file(tmp_path: Path) -> Path:
    text = (
        "Email,Name,City,Country,Extra\r\n"
        "old@x.example.org,Old,Lima,,x\r\n"
        "kept@x.example.org,Kept,Cusco,,\r\n"
        "new@x.example.org,New,Accra,Ghana,\r\n"
        "new@x.example.org,New,Kumasi,Ghana,\r\n"
        "nope,Nope,Accra,,\r\n"
    )
    return text_file(tmp_path, "second.csv", text)


def test_dry_run_reports_the_same_and_writes_nothing(tmp_path, db):
    first = "Email,Name,City\nold@x.example.org,Old,\nkept@x.example.org,Kept,Quito\n"
    import_contacts(db, text_file(tmp_path, "first.csv", first), "Citynet")
    import_contacts(db, text_file(tmp_path, "x.csv", "Email\nnope@x.example.org\n"), "Citynet")
    path = _mixed_second_file(tmp_path)
    before = table_counts(tmp_path)
    contacts_before = sql(tmp_path, "SELECT * FROM contacts ORDER BY id")

    dry = import_contacts(db, path, "Metropolis", dry_run=True)

    assert table_counts(tmp_path) == before
    assert sql(tmp_path, "SELECT * FROM contacts ORDER BY id") == contacts_before
    assert dry.dry_run is True and dry.upload_id is None
    real = import_contacts(db, path, "Metropolis")
    assert (
        counts(dry)
        == counts(real)
        == {"rows": 5, "imported": 1, "updated": 1, "duplicates": 2, "conflicts": 2, "rejected": 1}
    )
    assert dry.errors == real.errors
    assert dry.changes == real.changes
    assert dry.conflict_details == real.conflict_details
    assert dry.warnings == real.warnings
    assert table_counts(tmp_path)["uploads"] == before["uploads"] + 1


def test_dry_run_on_a_fresh_database_writes_no_rows(tmp_path, db):
    path = _mixed_second_file(tmp_path)
    dry = import_contacts(db, path, "Metropolis", dry_run=True)
    assert counts(dry) == {"rows": 5, "imported": 3, "updated": 0, "duplicates": 1, "conflicts": 1, "rejected": 1}
    assert set(data_rows(tmp_path).values()) == {0}


def test_every_real_upload_is_recorded(tmp_path, db):
    path = _mixed_second_file(tmp_path)
    report = import_contacts(db, path, "Metropolis", filename="partner list.csv")
    rows = sql(
        tmp_path,
        """SELECT id, network, filename, sha256, state, rows, imported, updated, duplicates,
                            conflicts, rejected, errors FROM uploads""",
    )
    assert len(rows) == 1
    (upload_id, network, filename, sha256, state, *numbers, errors) = rows[0]
    assert upload_id == report.upload_id
    assert (network, filename, state) == ("Metropolis", "partner list.csv", "done")
    assert sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert numbers == [5, 3, 0, 1, 1, 1]
    assert json.loads(errors) == report.errors
    assert [(e["row"], e["field"]) for e in json.loads(errors)] == [(6, "email")]


def test_large_file_across_batches_counts_and_dedupes(tmp_path, db):
    lines = ["Email,Name,City"]
    for i in range(2500):
        lines.append(f"person{i}@x.example.org,Person {i},")
    lines[2300] = "PERSON5@x.example.org,Person 5,Lima"  # row 2301: duplicate of row 7, fills city
    lines[2400] = "not an address,Nobody,"  # row 2401: rejected
    path = text_file(tmp_path, "big.csv", "\n".join(lines) + "\n")

    dry = import_contacts(db, path, "Metropolis", dry_run=True)
    assert table_counts(tmp_path)["contacts"] == 0
    real = import_contacts(db, path, "Metropolis")

    expected = {"rows": 2500, "imported": 2498, "updated": 0, "duplicates": 1, "conflicts": 0, "rejected": 1}
    assert counts(dry) == counts(real) == expected
    assert error_places(real) == [(2401, "email")]
    assert sql(tmp_path, "SELECT COUNT(*) FROM contacts") == [(2498,)]
    assert contact(tmp_path, "person5@x.example.org")["city"] == "Lima"
    assert sql(
        tmp_path,
        """SELECT s.row FROM contact_sources s JOIN contacts c ON c.id = s.contact_id
                            WHERE c.email = 'person5@x.example.org' ORDER BY s.row""",
    ) == [(7,), (2301,)]


def test_suppressed_address_is_counted_on_import(tmp_path, db):
    from surveybot.suppressions import suppress

    suppress(db, "  Ana@X.example.org ", "opt_out", "asked")
    report = import_contacts(
        db, text_file(tmp_path, "l.csv", "Email\nana@x.example.org\nbo@x.example.org\n"), "Metropolis"
    )
    assert report.suppressed == 1 and report.imported == 2
    assert sql(tmp_path, "SELECT email, kind, reason FROM suppressions") == [("ana@x.example.org", "opt_out", "asked")]


# ------------------------------------------------------------------------ UTF-16 without a byte order mark

CJK_ROWS = [
    ("wang@bj.cn", "王小明", "北京市", "中华人民共和国", "对外联络办公室国际合作处处长"),
    ("sato@yk.jp", "佐藤花子", "横浜市", "日本国", "国際局国際政策課担当課長補佐"),
    ("kim@sl.kr", "김민준", "서울특별시", "대한민국", "국제관계대사실국제협력담당관"),
]
CJK_NOTES = {
    "备注": "市政府外事办公室负责城市外交与国际交流合作事务的主要联系人员",  # extra columns: attributes
    "説明": "姉妹都市提携と国際会議の窓口を務める担当者で調査への協力を依頼済み",
}


@pytest.mark.parametrize("delimiter", [",", "\t"], ids=["comma", "tab"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_mostly_cjk_imports(tmp_path, db, encoding, delimiter):
    lines = [delimiter.join(["Email", "Name", "City", "Country", "Position", *CJK_NOTES])]
    lines += [delimiter.join([*row, *CJK_NOTES.values()]) for row in CJK_ROWS]
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    units = [data[i : i + 2] for i in range(0, len(data), 2)]
    assert sum(0 in unit for unit in units) < 0.3 * len(units)  # most code units have no zero byte at all
    report = import_contacts(db, write(tmp_path, "asia.csv", data), "Citynet")
    assert counts(report) == {"rows": 3, "imported": 3, "updated": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert report.as_json()["encoding"] == {"utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE"}[encoding]
    stored = sql(tmp_path, "SELECT email, name, city, country, position, attributes FROM contacts ORDER BY id")
    assert [(*row[:5], json.loads(row[5])) for row in stored] == [(*row, CJK_NOTES) for row in CJK_ROWS]


@pytest.mark.parametrize("kind", ["counters", "random-even", "text-with-a-stray-zero-byte"])
def test_binary_that_is_not_utf16_text_is_still_refused(tmp_path, db, kind):
    rng = random.Random(7)
    if kind == "counters":  # 16-bit samples: every unit decodes, as control characters
        data = b"".join(rng.randrange(0, 32).to_bytes(2, "little") for _ in range(4000))
    elif kind == "random-even":
        data = bytes(rng.randrange(256) if i % 2 else 0 for i in range(8000)) + rng.randbytes(4000)
    else:
        text = "email,name,city\r\n" + "".join(f"p{i}@x.example.org,Person {i},Lima\r\n" for i in range(50))
        data = text.encode()[:300] + b"\x00" + text.encode()[300:]
    before = table_counts(tmp_path)
    with pytest.raises(FileRefused) as refused:
        import_contacts(db, write(tmp_path, "data.csv", data), "Metropolis")
    assert "binary" in str(refused.value)
    assert table_counts(tmp_path) == before

"""Reading a partner's CSV file as spreadsheets save it, without being told how it was saved.

One streaming pass over the bytes fixes the encoding (UTF-8 with or without BOM, UTF-16 by its BOM or, without
one, by the shape of its text, else Windows-1252), takes the SHA-256 and refuses what is not text; a second
pass parses rows.
The delimiter (comma, semicolon or tab) is the one that splits the header into most columns consistently
with the lines after it; an Excel ``sep=;`` first line is obeyed. The header is the first row, among the
first few, that names an e-mail column, so a title line above it does no harm.

Row numbers are those a spreadsheet shows for the file: the first line is row 1.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from surveybot.contacts.fields import ColumnMap, map_headers
from surveybot.errors import FileRefused

CHUNK = 1 << 20
SAMPLE = 64 * 1024
HEADER_SEARCH_ROWS = 10
MAX_FIELD = 1 << 20  # one cell of a megabyte is not a contact list any more

_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (.xlsx) or another zip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
_SAVE_AS = "save it from the spreadsheet as 'CSV UTF-8' and upload that"


@dataclass
class CsvFile:
    path: Path
    size: int
    sha256: str
    encoding: str
    delimiter: str
    headers: list[str]
    columns: ColumnMap
    header_row: int
    skip: int = 0  # an Excel "sep=" line: read, but not a row a spreadsheet shows


def inspect(path: Path) -> CsvFile:
    """Check the file, fix encoding and delimiter, find the header. Raises :class:`FileRefused`."""
    size, sha256, encoding, sample = _scan_bytes(path)
    text = sample.decode(encoding, errors="ignore") if encoding != "utf-16" else _utf16_sample(sample)
    if not text.strip():
        raise FileRefused("the file is empty")
    lines = io.StringIO(text, newline="").readlines()  # CR/LF only, as csv does (not U+2028 …)
    if len(sample) < size and len(lines) > 1:
        lines = lines[:-1]  # the sample may end in the middle of a line
    delimiter, skip = _delimiter(lines)
    headers, columns, header_row = _find_header(lines, delimiter, skip)
    return CsvFile(path, size, sha256, encoding, delimiter, headers, columns, header_row, skip)


def rows(source: CsvFile, progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(row number, cells)`` for each data row after the header; ``progress(bytes_read)`` as it goes."""
    csv.field_size_limit(MAX_FIELD)
    with open(source.path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=source.encoding, newline="")
        reader = csv.reader(text, delimiter=source.delimiter)
        number = 0
        try:
            for cells in reader:
                number += 1
                if number <= source.header_row:
                    continue
                if progress is not None and number % 1000 == 0:
                    progress(raw.tell())
                yield number - source.skip, cells
        except (csv.Error, UnicodeDecodeError) as exc:
            raise FileRefused(
                f"row {number + 1 - source.skip}: the file cannot be read past this row ({exc})"
            ) from None
        if progress is not None:
            progress(source.size)


def _scan_bytes(path: Path) -> tuple[int, str, str, bytes]:
    digest = hashlib.sha256()
    size = 0
    sample = b""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_ok = True
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if not sample:
                sample = chunk[:SAMPLE]
            digest.update(chunk)
            size += len(chunk)
            if utf8_ok:
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    utf8_ok = False
    if utf8_ok:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_ok = False
    if size == 0:
        raise FileRefused("the file is empty")
    for signature, kind in _SIGNATURES.items():
        if sample.startswith(signature):
            raise FileRefused(f"this is {kind}, not a CSV text file; {_SAVE_AS}")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return size, digest.hexdigest(), _check_utf16(path, "utf-16"), sample
    if b"\x00" in sample:
        if (encoding := _utf16_without_bom(sample)) is not None:
            return size, digest.hexdigest(), _check_utf16(path, encoding), sample
        raise FileRefused(
            f"the file contains binary data (a zero byte at byte {sample.index(0) + 1}), not CSV text; {_SAVE_AS}"
        )
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if controls > max(8, len(sample) // 100):
        raise FileRefused(f"the file contains binary data, not CSV text; {_SAVE_AS}")
    if utf8_ok:
        return size, digest.hexdigest(), "utf-8-sig", sample
    return size, digest.hexdigest(), _windows_encoding(path), sample


def _utf16_without_bom(sample: bytes) -> str | None:
    """``'utf-16-le'`` or ``'utf-16-be'`` when the sample reads as CSV text in that byte order, else None.

    Zero bytes alone do not tell: text that is mostly Chinese, Japanese or Korean has none in most code units.
    So the sample must decode strictly, hold next to no control, private or unassigned characters (binary
    data decoded as UTF-16 is full of them, or fails to decode at all), and break into lines and cells. Read in
    the wrong byte order, line breaks and delimiters turn into other characters (U+0A00, U+2C00 …), so at
    most one order passes."""
    even = sample[: len(sample) // 2 * 2]
    for encoding in ("utf-16-le", "utf-16-be"):
        try:  # not final: the sample may end inside a surrogate pair
            text = codecs.getincrementaldecoder(encoding)("strict").decode(even)
        except UnicodeDecodeError:
            continue
        unlikely = sum(1 for ch in text if ch not in "\t\n\r" and unicodedata.category(ch) in _NOT_TEXT)
        marks = sum(text.count(mark) for mark in "\n\r,;\t")  # every line has some; a stray zero byte, one
        if text.strip() and unlikely <= len(text) // 100 and marks >= max(1, len(text) // 200):
            return encoding
    return None


_NOT_TEXT = {"Cc", "Cn", "Co", "Cs"}  # controls, unassigned, private use, lone surrogates


def _check_utf16(path: Path, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as fh:
        offset = 0
        while chunk := fh.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise FileRefused(
                    f"the file looks like UTF-16 but byte {offset + exc.start + 1} is not valid UTF-16; {_SAVE_AS}"
                ) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileRefused(
                f"the file looks like UTF-16 but ends in the middle of a character (an odd number of bytes); {_SAVE_AS}"
            ) from None
    return encoding


def _windows_encoding(path: Path) -> str:
    """Windows-1252 (Excel's 'CSV' in Western Europe and the Americas); Latin-1 if 1252 cannot decode it."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            try:
                chunk.decode("cp1252")
            except UnicodeDecodeError:
                return "latin-1"
    return "cp1252"


def _utf16_sample(sample: bytes) -> str:
    return codecs.getincrementaldecoder("utf-16")(errors="ignore").decode(sample)


def _delimiter(lines: list[str]) -> tuple[str, int]:
    """The delimiter, and how many leading lines to skip (an Excel ``sep=`` line).

    The delimiter is the one that splits a header naming an e-mail column into most columns, with most of
    the following rows as wide (commas inside names and addresses must not sway it); failing that, the one
    that splits the first row into most columns.
    """
    first = lines[0].lstrip("\ufeff").strip()
    if first.lower().startswith("sep=") and len(first) == 5 and first[4] in ",;\t|":
        return first[4], 1
    best, best_score = ",", (False, 0, 0)
    for candidate in (",", ";", "\t"):
        rows = [
            r for r in csv.reader(lines[: HEADER_SEARCH_ROWS * 2], delimiter=candidate) if any(c.strip() for c in r)
        ]
        if not rows:
            continue
        header_at = next((i for i, r in enumerate(rows[:HEADER_SEARCH_ROWS]) if map_headers(r).has_email), None)
        header = rows[header_at or 0]
        width = len(header)
        consistent = sum(1 for r in rows[(header_at or 0) + 1 :] if len(r) == width)
        score = (header_at is not None, width if width > 1 else 0, consistent)
        if score > best_score:
            best, best_score = candidate, score
    return best, 0


def _find_header(lines: list[str], delimiter: str, skip: int) -> tuple[list[str], ColumnMap, int]:
    reader = csv.reader(lines[skip:], delimiter=delimiter)
    first_headers: list[str] | None = None
    number = skip
    for cells in reader:
        number += 1
        if not any(c.strip() for c in cells):
            continue
        headers = [c.lstrip("\ufeff").strip() for c in cells]
        first_headers = first_headers or headers
        columns = map_headers(headers)
        if columns.has_email:
            return headers, columns, number
        if number - skip >= HEADER_SEARCH_ROWS:
            break
    found = ", ".join(repr(h) for h in (first_headers or []) if h) or "none"
    raise FileRefused(
        f"no e-mail column: the file needs a column headed 'email' (or 'E-mail', "
        f"'Email address', 'Correo electrónico'); headers found: {found}"
    )

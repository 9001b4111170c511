"""What the columns of a partner's contact list mean, and how each value is normalised.

Headers are matched case- and accent-insensitively against the spellings partner networks use
(``E-mail``, ``Correo electrónico``, ``Preferred language``, ``Apellidos`` …). Columns that match no field
are kept as the contact's attributes under their own header.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import available_timezones

# The contact fields, in the order they are shown.
FIELDS = ("name", "city", "country", "region", "language", "position", "timezone")

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e mail",
        "email address",
        "e mail address",
        "mail",
        "email id",
        "correo",
        "correo electronico",
        "direccion de correo",
        "direccion de correo electronico",
        "courriel",
        "contact email",
        "work email",
    ),
    "name": (
        "name",
        "full name",
        "fullname",
        "contact name",
        "contact",
        "nombre completo",
        "nombre y apellido",
        "nombre y apellidos",
        "officer",
        "officer name",
        "nom complet",
    ),
    "first_name": ("first name", "firstname", "given name", "forename", "first", "nombre", "prenom"),
    "last_name": ("last name", "lastname", "surname", "family name", "last", "apellido", "apellidos", "nom"),
    "city": ("city", "ciudad", "city name", "municipality", "municipio", "town", "ville", "local government"),
    "country": ("country", "pais", "country name", "nation", "pays"),
    "region": ("region", "world region", "continent", "continente"),
    "language": ("language", "preferred language", "lang", "idioma", "idioma preferido", "lengua", "locale", "langue"),
    "position": ("position", "role", "title", "job title", "cargo", "puesto", "function", "job", "poste"),
    "timezone": ("timezone", "time zone", "tz", "zona horaria", "huso horario"),
}
_HEADER_FIELD = {spelling: name for name, spellings in _SYNONYMS.items() for spelling in spellings}


def fold(text: str) -> str:
    """Lower-case, accent-free, single-spaced: the form in which two spellings are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def header_key(header: str) -> str:
    """``' E-Mail Address:'`` → ``'email address'``: punctuation becomes space, accents and case go."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", fold(header)).split())


@dataclass
class ColumnMap:
    """Which column (by index) holds each field; ``extras`` are the unknown columns, kept as attributes."""

    columns: dict[str, int] = field(default_factory=dict)
    extras: list[tuple[int, str]] = field(default_factory=list)
    width: int = 0

    @property
    def has_email(self) -> bool:
        return "email" in self.columns


def map_headers(headers: list[str]) -> ColumnMap:
    mapping = ColumnMap(width=len(headers))
    keys = [header_key(h) for h in headers]
    has_last = any(_HEADER_FIELD.get(k) == "last_name" for k in keys)
    for index, (header, key) in enumerate(zip(headers, keys)):
        name = _HEADER_FIELD.get(key) or _HEADER_FIELD.get(key.replace(" ", ""))
        if key == "nombre" and not has_last:
            name = "name"  # "Nombre" alone is the whole name; beside "Apellidos" it is the first name
        if name is None or name in mapping.columns:
            if header.strip():
                mapping.extras.append((index, header.strip()))
            continue
        mapping.columns[name] = index
    return mapping


_SPANISH = {"es", "spa", "spanish", "espanol", "castellano", "espagnol", "spanisch", "espanhol"}
_ENGLISH = {"en", "eng", "english", "ingles", "anglais", "englisch"}


@lru_cache(maxsize=1024)
def normalise_language(raw: str) -> str | None:
    """``'es'``, ``'en'``, ``''`` for blank (no preference) or ``None`` for a value that names neither.

    Accepts codes and names in several languages (``ES``, ``es-CO``, ``Español``, ``en-GB``, ``Inglés``);
    a value naming both (``English/Spanish``) is no preference, reported as such.
    """
    tokens = header_key(raw).split()
    if not tokens:
        return ""
    spanish = any(t in _SPANISH for t in tokens)
    english = any(t in _ENGLISH for t in tokens)
    if spanish != english:
        return "es" if spanish else "en"
    return None


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@lru_cache(maxsize=1024)
def normalise_timezone(raw: str) -> str | None:
    """The IANA name (``Europe/Madrid``), ``''`` for blank, ``None`` when it names no time zone."""
    text = raw.strip().replace(" ", "_")
    if not text:
        return ""
    return _zones().get(text.lower())


def clean_text(raw: str) -> str:
    """Trim the outside only: the value itself is kept exactly, line breaks and formulas included."""
    text = raw.strip()
    if text and (text[0] in "\ufeff\u200b" or text[-1] in "\ufeff\u200b"):
        return text.strip("\ufeff\u200b").strip()
    return text

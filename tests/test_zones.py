"""Each officer's time zone: from the list, else from the city and country (offline gazetteer), else from
a country that keeps one zone — and the e-mail's closing time in that zone."""

from __future__ import annotations

from datetime import UTC

import pytest

from surveybot.contacts.zones import zone_of


@pytest.mark.parametrize(
    "city, country, timezone, expected",
    [
        ("Bogotá", "Colombia", "", ("America/Bogota", "city")),
        ("Bogota", "colombia", "", ("America/Bogota", "city")),  # accents and case ignored
        ("Seúl", "Corea del Sur", "", ("Asia/Seoul", "city")),  # Spanish names
        ("Mumbai", "India", "", ("Asia/Kolkata", "city")),  # a half-hour offset
        ("Ciudad de México", "México", "", ("America/Mexico_City", "city")),
        ("Adelaide", "AU", "", ("Australia/Adelaide", "city")),  # an ISO code; one of a country's several zones
        ("Pueblo Nuevo de Nada", "Uruguay", "", ("America/Montevideo", "country")),  # unknown town, one-zone country
        ("", "Nepal", "", ("Asia/Kathmandu", "country")),
        ("Smallville-on-Nowhere", "United States", "", ("", "none")),  # several zones in the USA: no guess
        ("Lima", "", "", ("", "none")),
        ("Lima", "Narnia", "", ("", "none")),
        ("Lima", "Peru", "Europe/Madrid", ("Europe/Madrid", "import")),  # the list's own column wins
    ],
)
def test_zone_from_the_list_the_city_or_the_country(city, country, timezone, expected):
    assert zone_of({"city": city, "country": country, "timezone": timezone}) == expected


def test_the_closing_time_is_told_in_the_readers_zone_or_in_utc_said_so():
    from datetime import datetime

    from surveybot.mail.compose import closing_time

    closes = datetime(2026, 12, 12, 16, 0, tzinfo=UTC)
    assert closing_time(closes, "Asia/Kolkata", "en") == "21:30 (India Time)"  # a half-hour offset
    assert closing_time(closes, "America/Bogota", "es") == "11:00 (hora de Colombia)"
    assert closing_time(closes, "", "en") == "16:00 (UTC)"


@pytest.mark.parametrize(
    ("city", "country", "zone"),
    [
        ("Leeds", "UK", "Europe/London"),
        ("Edinburgh", "Scotland", "Europe/London"),
        ("Seoul", "Korea", "Asia/Seoul"),
        ("Busan", "Republic of Korea", "Asia/Seoul"),
        ("Chicago", "USA", "America/Chicago"),
        ("Nueva York", "EE.UU.", "America/New_York"),
        ("Istanbul", "Türkiye", "Europe/Istanbul"),
        ("", "the Netherlands", "Europe/Amsterdam"),
    ],
)
def test_everyday_country_names_are_understood(city, country, zone):
    assert zone_of({"timezone": "", "city": city, "country": country})[0] == zone

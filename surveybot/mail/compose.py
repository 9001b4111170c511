"""Composing a wave's message for one contact: personal links, dates in their language, then MIME.

Rendered at sending time, not at enqueueing, so every message states the real time left and the closing
date as of when it goes out ("closes in 5 days, on 17 June"), in the contact's time zone when known.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, get_timezone_name
from babel.units import format_unit
from sqlite_utils import Database

from surveybot.clock import parse_stored
from surveybot.config import Settings
from surveybot.contacts import store
from surveybot.contacts.zones import zone_of
from surveybot.mail.message import Outgoing, build_message, message_id_for, one_line, sender_parts
from surveybot.mail.prepared import PreparedRenderer
from surveybot.mail.render import Rendered, Renderer
from surveybot.recipients import survey_links, survey_token
from surveybot.suppressions import unsubscribe_token
from surveybot.waves import planned_steps

LOCALES = {"en": "en_GB", "es": "es"}
_TOKEN_STAND_IN = "surveybotTokenStandIn7q"
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
DATE_FORMATS = {"en": "d MMMM", "es": "d 'de' MMMM"}
SAMPLE_CONTACT = {
    "id": 0,
    "email": "ana.rodriguez@bogota.example.org",
    "name": "Ana María Rodríguez",
    "city": "Bogotá",
    "country": "Colombia",
    "language": "",
    "timezone": "America/Bogota",
}


def time_left(delta: timedelta, language: str) -> str:
    """``'5 days'`` / ``'5 días'``; hours, minutes or seconds when less than a day is left."""
    seconds = max(0, delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return _unit(round(seconds / size), unit, language)
    return _unit(round(seconds), "second", language)


@lru_cache(maxsize=4096)
def _unit(number: int, unit: str, language: str) -> str:
    return format_unit(number, f"duration-{unit}", locale=LOCALES[language])


@lru_cache(maxsize=4096)
def closing_time(closes_at: datetime, zone: str, language: str) -> str:
    """The closing time of day with its zone, as the reader's clock shows it: ``'10:04 (Colombia Time)'``,
    ``'10:04 (hora de Colombia)'``; UTC for a contact whose zone is unknown."""
    tz = ZoneInfo(zone) if zone else UTC
    local = closes_at.astimezone(tz)
    name = get_timezone_name(tz, width="long", locale=LOCALES[language]) if zone else "UTC"
    return f"{format_time(local, 'HH:mm', locale=LOCALES[language])} ({name})"


@lru_cache(maxsize=4096)
def closing_date(closes_at: datetime, zone: str, language: str) -> str:
    local = closes_at.astimezone(ZoneInfo(zone)) if zone else closes_at.astimezone(UTC)
    return format_date(local.date(), DATE_FORMATS[language], locale=LOCALES[language])


class Composer:
    def __init__(self, db: Database, settings: Settings, secret: str, renderer: Renderer | None = None) -> None:
        self.db, self.settings, self.secret = db, settings, secret
        self.renderer = renderer or Renderer(settings.templates_dir)
        self._links: dict[tuple[Any, ...], dict[str, str]] = {}
        self.prepared = PreparedRenderer(self.renderer)  # each wave's templates rendered once, filled per contact
        self.senders = {"en": settings.sender, "es": settings.sender_es or settings.sender}
        # the sender's name signs the message: as people read it, not as the setting encodes it (=?utf-8?…)
        self.teams = {
            "en": sender_parts(settings.sender)[0] or "The survey team",
            "es": sender_parts(settings.sender_es or "")[0]
            or sender_parts(settings.sender)[0]
            or "El equipo de la encuesta",
        }

    @staticmethod
    def warm() -> None:
        """Load now what the first message would otherwise wait for: the gazetteer of time zones (a second)."""
        zone_of({"city": SAMPLE_CONTACT["city"], "country": SAMPLE_CONTACT["country"]})

    def links(self, wave: dict[str, Any], token: str) -> dict[str, str]:
        """The personal survey links: the wave's links built once with a stand-in, the token put in its place
        (a token is URL-safe, so it is written in the link exactly as it is)."""
        key = (wave["id"], wave["platform"], wave["survey_url"], wave["survey_url_es"])
        made = self._links.get(key)
        if made is None:
            made = self._links[key] = survey_links(wave, _TOKEN_STAND_IN)
        if not _URL_SAFE.fullmatch(token) or any(link.count(_TOKEN_STAND_IN) != 1 for link in made.values()):
            return survey_links(wave, token)
        return {language: link.replace(_TOKEN_STAND_IN, token) for language, link in made.items()}

    def context(
        self, wave: dict[str, Any], contact: dict[str, Any], now: datetime, languages: tuple[str, ...] = ("en", "es")
    ) -> dict[str, Any]:
        """The templates' variables in each of ``languages`` (a message in one language needs only its own)."""
        links = self.links(wave, survey_token(self.secret, wave["id"], contact["id"]))
        # a wave not launched yet closes where its plan would put it if launched now
        closes_at = parse_stored(wave["closes_at"]) if wave["closes_at"] else planned_steps(wave, now)[-1][1]
        unsubscribe = (
            f"{self.settings.base_url}/unsubscribe/{unsubscribe_token(self.secret, contact['id'], wave['id'])}"
        )
        # the list's zone, else one derived from the city or country, else the wave's
        zone = zone_of(contact)[0] or wave.get("timezone") or ""
        name, city, country = one_line(contact["name"]), one_line(contact["city"]), one_line(contact["country"])
        return {
            language: {
                "name": name,
                "city": city,
                "country": country,
                "email": contact["email"],
                "survey_link": links[language],
                "wave_title": (wave.get("title_es") or wave["title"]) if language == "es" else wave["title"],
                "survey_links": links,
                "closes_on": closing_date(closes_at, zone, language),
                "closes_time": closing_time(closes_at, zone, language),
                "time_left": time_left(closes_at - now, language),
                "unsubscribe_url": unsubscribe,
                "team": self.teams[language],
                "language": language,
            }
            for language in languages
        }

    def render(
        self, kind: str, wave: dict[str, Any], contact: dict[str, Any], now: datetime, language: str | None = None
    ) -> Rendered:
        lang = contact["language"] if language is None else language
        return self.renderer.render(kind, lang, self.context(wave, contact, now))

    def message(
        self,
        kind: str,
        wave: dict[str, Any],
        contact: dict[str, Any],
        now: datetime,
        *,
        to_email: str | None = None,
        language: str | None = None,
        subject_prefix: str = "",
        key: str | None = None,
    ) -> Outgoing:
        """``key``: the outbox row's key, from which the message's one identity (``Message-ID``) derives."""
        lang = contact["language"] if language is None else language
        context = self.context(wave, contact, now, (lang,) if lang in ("en", "es") else ("en", "es"))
        rendered = self.prepared.render(kind, lang, context)
        if subject_prefix:
            rendered = replace(rendered, subject=subject_prefix + rendered.subject)
        unsubscribe = next(iter(context.values()))["unsubscribe_url"] if contact["id"] else None
        # a Spanish message comes from the Spanish sender name (SURVEYBOT_FROM_ES); a bilingual one from both
        sender = self.senders["es"] if rendered.languages == ("es",) else self.senders["en"]
        return build_message(
            rendered,
            sender=sender,
            to_email=to_email or contact["email"],
            to_name=contact["name"],
            now=now,
            unsubscribe_url=unsubscribe,
            reply_to=self.settings.reply_to,
            message_id=self.message_id(key),
        )

    def message_id(self, key: str | None) -> str | None:
        return message_id_for(self.secret, key, self.settings.sender_email) if key else None

    def contact(self, contact_id: int) -> dict[str, Any] | None:
        return store.contacts_by_id(self.db, [contact_id]).get(contact_id)

"""The field report: the method table and a method paragraph ready to paste, in English or Spanish, with
the dispositions and rates of ``dispositions.py``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from babel.dates import format_date
from babel.lists import format_list
from sqlite_utils import Database

from surveybot import responses
from surveybot.clock import parse_stored
from surveybot.reports.dispositions import DEFAULT_THRESHOLD, wave_dispositions
from surveybot.waves import steps

LOCALES = {"en": "en_GB", "es": "es"}
LANGUAGE_NAMES = {"en": {"en": "English", "es": "Spanish"}, "es": {"en": "inglés", "es": "español"}}
_NAMED = {"qualtrics": "Qualtrics", "typeform": "Typeform", "surveymonkey": "SurveyMonkey", "limesurvey": "LimeSurvey"}
PLATFORM_NAMES = {
    "en": {**_NAMED, "signed": "a web survey platform"},
    "es": {**_NAMED, "signed": "una plataforma de encuestas web"},
}


def method_facts(db: Database, wave: dict[str, Any]) -> dict[str, Any]:
    """What the method table states, as data."""
    plan = steps(db, wave["id"])
    invitation = next((s for s in plan if s["kind"] == "invitation"), None)
    start = (invitation["done_at"] or invitation["due_at"]) if invitation else wave["start_at"]
    end = wave["closed_at"] or wave["closes_at"]
    counts = responses.counts(db, wave["id"])
    invited, opt_outs, bounces, languages, countries = db.execute(
        """SELECT count(*), count(CASE WHEN s.kind = 'opt_out' THEN 1 END),
                  count(CASE WHEN s.kind = 'bounce' THEN 1 END),
                  group_concat(DISTINCT c.language), count(DISTINCT CASE WHEN c.country != '' THEN lower(c.country) END)
           FROM recipients r JOIN contacts c ON c.id = r.contact_id LEFT JOIN suppressions s ON s.email = c.email
           WHERE r.wave_id = ?""",
        [wave["id"]],
    ).fetchone()
    codes = languages.split(",") if languages is not None else []
    spoken = {c for c in codes if c}
    if "" in codes or not spoken:  # contacts with no preference get both languages
        spoken |= {"en", "es"}
    networks = [
        n
        for (n,) in db.execute(
            """SELECT s.network FROM contact_sources s
           JOIN recipients r ON r.contact_id = s.contact_id AND r.wave_id = ?
           GROUP BY lower(s.network) ORDER BY lower(s.network)""",
            [wave["id"]],
        )
    ]
    return {
        "platform": wave["platform"],
        "languages": sorted(spoken),
        "field_period": {"start": start, "end": end},
        "reminders": [
            s["done_at"] or s["due_at"]
            for s in plan
            if s["kind"] in ("reminder", "final_reminder") and s["state"] in ("pending", "done")
        ],
        "invited": invited,
        "countries": countries,
        "networks": networks,
        "complete": counts["completed"],
        "responses": counts["responses"],
        "partial_discarded": counts["partial_discarded"],
        "cities": counts["cities_responded"],
        "duplicate_cities": counts["duplicate_city"],
        "unmatched": counts["unmatched"],
        "opt_outs": opt_outs,
        "bounces": bounces,
    }


def _date(text: str | None, language: str) -> str:
    if not text:
        return "—"
    return format_date(
        parse_stored(text).date(), "d MMMM y" if language == "en" else "d 'de' MMMM 'de' y", locale=LOCALES[language]
    )


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


# The paragraph's sentences per language; optional clauses are left out when they do not apply. A word in
# braces with a bar ({n|singular|plural}) agrees with the count n.
SENTENCES: dict[str, dict[str, str]] = {
    "en": {
        "sent": "The survey, in {languages} on {platform}, was sent to {invited} {invited|officer|officers} in "
        "{countries} {countries|country|countries}",
        "through": " through {network_count} partner {network_count|network|networks} ({networks})",
        "open": " and was open from {start} to {end}",
        "reminders": ", with {reminder_count|a reminder|reminders} on {reminders}.",
        "kept": "{complete} complete {complete|response|responses} from {cities} {cities|city|cities} "
        "{complete|was|were} kept",
        "duplicates": " ({duplicate_cities} of those cities answered more than once)",
        "discarded": "; {partial_discarded} partial {partial_discarded|response was|responses were} discarded.",
        "rates": "The response rate (AAPOR RR1) was {rr1} (RR2 {rr2}; cooperation rate COOP1 {coop1}; "
        "refusal rate REF1 {ref1}; contact rate CON1 {con1}).",
    },
    "es": {
        "sent": "La encuesta, en {languages} y alojada en {platform}, se envió a {invited} "
        "{invited|responsable|responsables} en {countries} {countries|país|países}",
        "through": " a través de {network_count} {network_count|red asociada|redes asociadas} ({networks})",
        "open": " y estuvo abierta del {start} al {end}",
        "reminders": ", con {reminder_count|un recordatorio|recordatorios} el {reminders}.",
        "kept": "Se {complete|conservó|conservaron} {complete} {complete|respuesta completa|respuestas completas} "
        "de {cities} {cities|ciudad|ciudades}",
        "duplicates": " (en {duplicate_cities} {duplicate_cities|ciudad|ciudades} respondió más de una persona)",
        "discarded": "; se {partial_discarded|descartó|descartaron} {partial_discarded} "
        "{partial_discarded|respuesta parcial|respuestas parciales}.",
        "rates": "La tasa de respuesta (AAPOR RR1) fue del {rr1} (RR2 {rr2}; tasa de cooperación COOP1 {coop1}; "
        "tasa de rechazo REF1 {ref1}; tasa de contacto CON1 {con1}).",
    },
}
_AGREEING = re.compile(r"\{(\w+)\|([^|{}]*)\|([^|{}]*)\}")


def _agreed(template: str, counts: dict[str, Any]) -> str:
    """``{n|one|many}`` → one when n is 1, else many (English and Spanish both use the plural for 0)."""
    return _AGREEING.sub(lambda m: m[2] if counts.get(m[1]) == 1 else m[3], template)


def paragraph(facts: dict[str, Any], figures: dict[str, Any], language: str) -> str:
    """The method paragraph, ready to paste."""
    locale = LOCALES[language]
    values = {
        **facts,
        **{k: _percent(figures[k]) for k in ("rr1", "rr2", "coop1", "ref1", "con1")},
        "start": _date(facts["field_period"]["start"], language),
        "end": _date(facts["field_period"]["end"], language),
        "networks": format_list(facts["networks"], locale=locale) if facts["networks"] else "",
        "network_count": len(facts["networks"]),
        "reminders": format_list([_date(r, language) for r in facts["reminders"]], locale=locale),
        "languages": format_list([LANGUAGE_NAMES[language][code] for code in facts["languages"]], locale=locale),
        "platform": PLATFORM_NAMES[language].get(facts["platform"], facts["platform"]),
        "reminder_count": len(facts["reminders"]),
    }
    text = SENTENCES[language]
    wanted = [
        "sent",
        *(["through"] if facts["networks"] else []),
        "open",
        "reminders" if facts["reminders"] else "",
        " ",
        "kept",
        *(["duplicates"] if facts["duplicate_cities"] else []),
        "discarded",
        " ",
        "rates",
    ]
    # "" closes the first sentence with a full stop when there are no reminders; " " separates sentences
    pieces = {"": ".", " ": " "}
    return "".join(pieces[w] if w in pieces else _agreed(text[w], values).format(**values) for w in wanted)


def field_report(
    db: Database,
    wave: dict[str, Any],
    *,
    language: str = "en",
    threshold: int = DEFAULT_THRESHOLD,
    network: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole field report as data (what ``report --format json`` prints)."""
    figures = wave_dispositions(db, wave["id"], threshold, network)
    facts = method_facts(db, wave)
    return {
        "wave": wave["slug"],
        "title": wave["title"],
        "language": language,
        **figures,
        "method": {**facts, "paragraph": paragraph(facts, figures, language)},
    }

"""The field report: the method table and a method paragraph ready to paste, in English or Spanish, with
the dispositions and rates of ``dispositions.py``."""

from __future__ import annotations

from datetime import datetime

from babel.dates import format_date
from babel.lists import format_list
from sqlite_utils import Database

from surveybot import responses
from surveybot.clock import parse_stored
from surveybot.reports.dispositions import DEFAULT_THRESHOLD, wave_dispositions
from surveybot.waves import steps

LOCALES = {"en": "en_GB", "es": "es"}
LANGUAGE_NAMES = {"en": {"en": "English", "es": "Spanish"}, "es": {"en": "inglés", "es": "español"}}
PLATFORM_NAMES = {
    "qualtrics": "Qualtrics",
    "typeform": "Typeform",
    "surveymonkey": "SurveyMonkey",
    "signed": "a web survey platform",
    "limesurvey": "LimeSurvey",
}


def method_facts(db: Database, wave: dict) -> dict:
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


def paragraph(facts: dict, figures: dict, language: str) -> str:
    """The method paragraph, ready to paste."""
    start, end = (_date(facts["field_period"][k], language) for k in ("start", "end"))
    networks = format_list(facts["networks"], locale=LOCALES[language]) if facts["networks"] else ""
    reminders = format_list([_date(r, language) for r in facts["reminders"]], locale=LOCALES[language])
    languages = format_list([LANGUAGE_NAMES[language][code] for code in facts["languages"]], locale=LOCALES[language])
    platform = PLATFORM_NAMES.get(facts["platform"], facts["platform"])
    if language == "es":
        parts = [
            f"La encuesta, en {languages} y alojada en {platform}, se envió a {facts['invited']} "
            f"responsables en {facts['countries']} países"
            + (f" a través de {len(facts['networks'])} redes asociadas ({networks})" if networks else "")
            + f" y estuvo abierta del {start} al {end}"
            + (f", con recordatorios el {reminders}." if facts["reminders"] else ".")
        ]
        parts.append(
            f"Se conservaron {facts['complete']} respuestas completas de {facts['cities']} ciudades"
            + (
                f" (en {facts['duplicate_cities']} ciudades respondió más de una persona)"
                if facts["duplicate_cities"]
                else ""
            )
            + f"; se descartaron {facts['partial_discarded']} respuestas parciales."
        )
        parts.append(
            f"La tasa de respuesta (AAPOR RR1) fue del {_percent(figures['rr1'])} (RR2 "
            f"{_percent(figures['rr2'])}; tasa de cooperación COOP1 {_percent(figures['coop1'])}; "
            f"tasa de rechazo REF1 {_percent(figures['ref1'])}; tasa de contacto CON1 "
            f"{_percent(figures['con1'])})."
        )
        return " ".join(parts)
    parts = [
        f"The survey, in {languages} on {platform}, was sent to {facts['invited']} officers in "
        f"{facts['countries']} countries"
        + (f" through {len(facts['networks'])} partner networks ({networks})" if networks else "")
        + f" and was open from {start} to {end}"
        + (f", with reminders on {reminders}." if facts["reminders"] else ".")
    ]
    parts.append(
        f"{facts['complete']} complete responses from {facts['cities']} cities were kept"
        + (
            f" ({facts['duplicate_cities']} of those cities answered more than once)"
            if facts["duplicate_cities"]
            else ""
        )
        + f"; {facts['partial_discarded']} partial responses were discarded."
    )
    parts.append(
        f"The response rate (AAPOR RR1) was {_percent(figures['rr1'])} (RR2 {_percent(figures['rr2'])}; "
        f"cooperation rate COOP1 {_percent(figures['coop1'])}; refusal rate REF1 "
        f"{_percent(figures['ref1'])}; contact rate CON1 {_percent(figures['con1'])})."
    )
    return " ".join(parts)


def field_report(
    db: Database,
    wave: dict,
    *,
    language: str = "en",
    threshold: int = DEFAULT_THRESHOLD,
    network: str | None = None,
    now: datetime | None = None,
) -> dict:
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

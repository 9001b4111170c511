"""The field report written out: Markdown for the paper, standalone HTML, CSV for a spreadsheet, JSON for R
or pandas. Every text that came from a contact list is escaped for its format (HTML escaped, CSV cells that a
spreadsheet would run as formulas neutralised, Markdown table pipes escaped)."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from surveybot.reports.dispositions import CODES
from surveybot.responses import safe_cell

FORMATS = ("md", "html", "json", "csv")
RATES = ("rr1", "rr2", "coop1", "ref1", "con1")
GROUPS = ("by_network", "by_region", "by_country", "by_language")

LABELS = {
    "en": {
        "title": "Field report",
        "method": "Method",
        "platform": "Platform",
        "languages": "Languages",
        "field_period": "Field period",
        "reminders": "Reminders",
        "invited": "Invited",
        "networks": "Networks",
        "complete": "Complete responses",
        "partial_discarded": "Partial responses discarded",
        "cities": "Cities",
        "duplicate_cities": "Cities that answered more than once",
        "unmatched": "Unmatched responses",
        "opt_outs": "Opt-outs",
        "bounces": "Bounces",
        "dispositions": "Final dispositions (AAPOR)",
        "rates": "Response rates",
        "by_network": "By network",
        "by_region": "By region",
        "by_country": "By country",
        "by_language": "By language",
        "group": "Group",
        "to": "to",
        "threshold": "A response counts as partial (P) from {threshold}% progress; below it, as a break-off (R).",
    },
    "es": {
        "title": "Informe de campo",
        "method": "Método",
        "platform": "Plataforma",
        "languages": "Idiomas",
        "field_period": "Periodo de campo",
        "reminders": "Recordatorios",
        "invited": "Invitados",
        "networks": "Redes",
        "complete": "Respuestas completas",
        "partial_discarded": "Respuestas parciales descartadas",
        "cities": "Ciudades",
        "duplicate_cities": "Ciudades que respondieron más de una vez",
        "unmatched": "Respuestas sin destinatario",
        "opt_outs": "Bajas",
        "bounces": "Rebotes",
        "dispositions": "Disposiciones finales (AAPOR)",
        "rates": "Tasas de respuesta",
        "by_network": "Por red",
        "by_region": "Por región",
        "by_country": "Por país",
        "by_language": "Por idioma",
        "group": "Grupo",
        "to": "a",
        "threshold": "Una respuesta cuenta como parcial (P) desde un {threshold}% de avance; por debajo, como "
        "abandono (R).",
    },
}
TABLE_ROWS = (
    "platform",
    "languages",
    "field_period",
    "reminders",
    "invited",
    "networks",
    "complete",
    "partial_discarded",
    "cities",
    "duplicate_cities",
    "unmatched",
    "opt_outs",
    "bounces",
)


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2)
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        return _html(report)
    return _markdown(report)


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _value(method: dict[str, Any], key: str, words: dict[str, Any]) -> str:
    value = method[key]
    if key == "field_period":
        return f"{(value['start'] or '')[:10]} {words['to']} {(value['end'] or '')[:10]}"
    if key == "reminders":
        return ", ".join(v[:10] for v in value)
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def _rows(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(group kind, group name, its figures) for the overall line and every group."""
    rows = [("overall", "", report)]
    for kind in GROUPS:
        rows += [(kind, name, figures) for name, figures in report.get(kind, {}).items()]
    return rows


def _csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group_kind", "group", *CODES, *RATES])
    for kind, name, figures in _rows(report):
        writer.writerow(
            [kind, safe_cell(name), *(figures["dispositions"][c] for c in CODES), *(_rate(figures[r]) for r in RATES)]
        )
    return out.getvalue()


def _md_cell(text: str) -> str:
    # Markdown passes raw HTML through: a contact's "<script>" must reach the reader as text (an entity)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(report: dict[str, Any]) -> str:
    words = LABELS[report["language"]]
    method = report["method"]
    lines = [f"# {words['title']}: {_md_cell(report['title'])}", "", f"## {words['method']}", "", "| | |", "|---|---|"]
    lines += [f"| {words[key]} | {_md_cell(_value(method, key, words))} |" for key in TABLE_ROWS]
    lines += [
        "",
        _md_cell(method["paragraph"]),
        "",
        f"## {words['dispositions']}",
        "",
        "| " + " | ".join(CODES) + " |",
        "|" + "---|" * len(CODES),
        "| " + " | ".join(str(report["dispositions"][c]) for c in CODES) + " |",
        "",
        words["threshold"].format(threshold=report["partial_threshold"]),
        "",
        f"## {words['rates']}",
        "",
        f"| {words['group']} | " + " | ".join(r.upper() for r in RATES) + " | I | P | R | UO |",
        "|---|" + "---|" * (len(RATES) + 4),
    ]
    for kind, name, figures in _rows(report):
        label = "—" if kind == "overall" else f"{words[kind]}: {_md_cell(name)}"
        lines.append(
            f"| {label} | "
            + " | ".join(_rate(figures[r]) for r in RATES)
            + " | "
            + " | ".join(str(figures["dispositions"][c]) for c in ("I", "P", "R", "UO"))
            + " |"
        )
    return "\n".join(lines) + "\n"


def _html(report: dict[str, Any]) -> str:
    words = LABELS[report["language"]]
    method = report["method"]
    e = html.escape
    table = "".join(f"<tr><th>{e(words[key])}</th><td>{e(_value(method, key, words))}</td></tr>" for key in TABLE_ROWS)
    dispositions = (
        "<tr>"
        + "".join(f"<th>{c}</th>" for c in CODES)
        + "</tr><tr>"
        + "".join(f"<td>{report['dispositions'][c]}</td>" for c in CODES)
        + "</tr>"
    )
    rates = "<tr><th>" + e(words["group"]) + "</th>" + "".join(f"<th>{r.upper()}</th>" for r in RATES) + "</tr>"
    for kind, name, figures in _rows(report):
        label = "—" if kind == "overall" else f"{words[kind]}: {name}"
        rates += f"<tr><th>{e(label)}</th>" + "".join(f"<td>{_rate(figures[r])}</td>" for r in RATES) + "</tr>"
    return (
        f'<!doctype html>\n<html lang="{report["language"]}"><head><meta charset="utf-8">'
        f"<title>{e(words['title'])}: {e(report['title'])}</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}"
        "th,td{border:1px solid #999;padding:.25rem .5rem;text-align:left}</style></head><body>"
        f"<h1>{e(words['title'])}: {e(report['title'])}</h1><h2>{e(words['method'])}</h2>"
        f"<table>{table}</table><p>{e(method['paragraph'])}</p>"
        f"<h2>{e(words['dispositions'])}</h2><table>{dispositions}</table>"
        f"<p>{e(words['threshold'].format(threshold=report['partial_threshold']))}</p>"
        f"<h2>{e(words['rates'])}</h2><table>{rates}</table></body></html>\n"
    )

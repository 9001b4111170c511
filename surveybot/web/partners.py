"""A partner network's own view, on the dashboard's addresses (``/waves``, ``/waves/{slug}``) for a network's
token: its contacts only — their funnel and response rates in each wave (``wave_dispositions(…,
network=N)``), the contacts whose address bounced, who opted out or could not be reached (as that network
listed them, to fix its list), and its own uploads with their reports.

Never answers, never another network. Whether a named person answered is shown only while the wave shares
it (``wave create … --share-status-with-networks``, ``wave set``); otherwise every count of responses under 5
shows as "<5", and where one is hidden the figures that would give it away (the group's rates, its
no-reaction count) are hidden too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlite_utils import Database

from surveybot import waves
from surveybot.errors import NotFound
from surveybot.reports import live
from surveybot.reports.dispositions import wave_dispositions
from surveybot.web.dashboard_text import TEXT, number, percent
from surveybot.web.keys import DB, FIGURES
from surveybot.web.login import language
from surveybot.web.login import page as render_page
from surveybot.web.sessions import Session

SMALL = 5  # counts of responses under this are hidden unless the wave shares who answered
PAGE = 100  # contacts listed a page (``?page=2`` for the next ones)
ANSWER_CODES = ("I", "P", "R")
RATES = ("rr1", "rr2", "coop1", "ref1", "con1")
GROUPS = ("by_network", "by_region", "by_country", "by_language")


def _own(network: str, rates: dict[str, Any]) -> dict[str, Any]:
    """The dispositions as the network may see them: a contact it shares with another network counts in
    that one's group too, which is not its business."""
    rates["by_network"] = {name: v for name, v in rates["by_network"].items() if name.lower() == network.lower()}
    return rates


def _wave_figures(db: Database, network: str, slug: str, page: int) -> dict[str, Any]:
    wave = waves.get_wave(db, slug)
    if not any(w["id"] == wave["id"] for w in live.partner_waves(db, network)):
        raise NotFound(f"no wave {slug!r} with contacts of {network}")
    share = bool(wave["share_status_with_networks"])
    offset = (page - 1) * PAGE
    return {
        "wave": wave,
        "share": share,
        "funnel": live.funnel(db, wave["id"], network),
        "rates": _own(network, wave_dispositions(db, wave["id"], network=network)),
        "problems": live.partner_problems(db, wave["id"], network, PAGE, offset),
        "answered": live.partner_answered(db, wave["id"], network, PAGE, offset) if share else None,
    }


def _landing_figures(db: Database, network: str) -> dict[str, Any]:
    listed = []
    for wave in live.partner_waves(db, network):
        rates = wave_dispositions(db, wave["id"], network=network)
        listed.append({**wave, "funnel": live.funnel(db, wave["id"], network), "rates": rates})
    return {"waves": listed, "uploads": live.partner_uploads(db, network)}


def masked(value: int | None, share: bool, lang: str) -> str:
    if value is not None and not share and value < SMALL:
        return "<5"
    return number(value, lang)


def shown_figures(figures: dict[str, Any], share: bool, lang: str) -> dict[str, Any]:
    """One group's dispositions and rates as the page shows them."""
    counts = figures["dispositions"]
    hidden = not share and any(counts[code] < SMALL for code in ANSWER_CODES)
    cases = sum(counts.values())
    shown = {code: masked(counts[code], share, lang) for code in ANSWER_CODES}
    shown["UO"] = "—" if hidden else number(counts["UO"], lang)
    shown["cases"] = number(cases, lang)
    for rate in RATES:
        shown[rate] = "—" if hidden else percent(figures[rate], lang)
    return shown


async def landing(request: web.Request, session: Session) -> web.Response:
    lang = language(request, session)
    network = session.network or ""
    sharing = live.sharing(request.app[DB])  # a change of sharing shows at once
    figures = await request.app[FIGURES].get(("partner", network.lower(), sharing), _landing_figures, network)
    rows = [
        {
            **w,
            "completed": masked(w["funnel"]["completed"], bool(w["share_status_with_networks"]), lang),
            "shown": shown_figures(w["rates"], bool(w["share_status_with_networks"]), lang),
        }
        for w in figures["waves"]
    ]
    return render_page(
        request,
        "partner.html.j2",
        session=session,
        lang=lang,
        network=network,
        waves=rows,
        uploads=figures["uploads"],
        number=number,
    )


async def wave_page(request: web.Request, session: Session, slug: str) -> web.Response:
    lang = language(request, session)
    network = session.network or ""
    asked = request.query.get("page", "1")
    page = int(asked) if asked.isascii() and asked.isdigit() and 0 < int(asked) < 100_000 else 1
    try:
        # whether the wave shares who answered is read now, not from figures kept a moment: a wave set to stop
        # sharing stops at once
        share_now = waves.get_wave(request.app[DB], slug)["share_status_with_networks"]
        figures = await request.app[FIGURES].get(
            ("partner", network.lower(), slug, share_now, page), _wave_figures, network, slug, page
        )
    except NotFound:
        return render_page(
            request,
            "message.html.j2",
            status=404,
            session=session,
            lang=lang,
            kind="error",
            message=TEXT[lang]["no_wave"].format(wave=slug),
        )
    share, rates = figures["share"], figures["rates"]
    groups = {
        kind: {name: shown_figures(values, share, lang) for name, values in rates[kind].items()} for kind in GROUPS
    }
    funnel = {key: number(value, lang) for key, value in figures["funnel"].items()}
    funnel["completed"] = masked(figures["funnel"]["completed"], share, lang)
    last = max(figures["problems"]["total"], (figures["answered"] or {"total": 0})["total"]) - 1
    return render_page(
        request,
        "partner_wave.html.j2",
        session=session,
        lang=lang,
        network=network,
        f=figures,
        funnel=funnel,
        overall=shown_figures(rates, share, lang),
        groups=groups,
        share=share,
        poll=2000,
        page=page,
        pages=max(1, last // PAGE + 1),
        number=number,
    )

"""The coordinator's dashboard: ``/waves`` (every wave, its state, dates and headline rates) and
``/waves/{slug}`` (one wave: funnel, completions per day, rates by group, schedule, outbox, partial audit,
unmatched responses, interview queue), with the actions pause, resume, close and retry failed, each after a
confirmation page. A network's token gets its own view on the same addresses (``partners.py``); a
researcher's, ``/interviews``.

The figures are the report's: ``wave_status`` and ``wave_dispositions`` (as ``wave status`` and ``report``),
with the page's own queries in ``reports/live.py``, computed off the event loop (``figures.py``). The pages
work without JavaScript; ``static/live.js`` re-fetches the page every few seconds and swaps in its figures.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web
from sqlite_utils import Database

from surveybot import responses, waves
from surveybot.addresses import InvalidAddress, normalise_email
from surveybot.clock import parse_stored, utcnow
from surveybot.contacts.store import contact_by_email
from surveybot.db import retry_busy
from surveybot.errors import InvalidInput, NotFound
from surveybot.reports import live
from surveybot.reports.dispositions import wave_dispositions
from surveybot.reports.status import wave_status
from surveybot.web import interviews, partners
from surveybot.web.dashboard_text import TEXT, number, percent
from surveybot.web.figures import Figures
from surveybot.web.keys import DB, DISPATCHER, FIGURES, SECRET, SETTINGS
from surveybot.web.login import csrf_ok, language, page, refuse_csrf, require
from surveybot.web.pages import read_form
from surveybot.web.sessions import Session

ACTIONS = ("pause", "resume", "close", "retry")
GROUPS = ("by_network", "by_region", "by_country", "by_language")
RATES = ("rr1", "rr2", "coop1", "ref1", "con1")
POLL_MS = 2000


def moment(text: str | None, zone: tzinfo) -> dict[str, Any] | None:
    """A stored time for a page: ISO for <time>, and as the wave's clock shows it."""
    if not text:
        return None
    at = parse_stored(text)
    return {
        "iso": text,
        "local": at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        "utc": at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def chart(per_day: dict[str, Any], lang: str) -> dict[str, Any]:
    """Bars of an SVG drawn on the server: one per day, reminder days marked."""
    days, width, height, left, top, bottom = per_day["days"], 760, 210, 34, 22, 28
    peak = max((d["count"] for d in days), default=0) or 1
    step = (width - left - 4) / max(len(days), 1)
    every = max(1, round(len(days) / 14))  # at most ~14 day labels
    bars = []
    for n, day in enumerate(days):
        h = (height - top - bottom) * day["count"] / peak
        x = left + n * step
        label = f"{int(day['day'][8:])}/{int(day['day'][5:7])}"
        bars.append(
            {
                "x": round(x + step * 0.12, 1),
                "w": round(step * 0.76, 1),
                "y": round(height - bottom - max(h, 1.5), 1),
                "h": round(max(h, 1.5), 1),
                "count": day["count"],
                "day": day["day"],
                "reminder": day["reminder"],
                "label": label if n % every == 0 else "",
                "mid": round(x + step / 2, 1),
                "shown": number(day["count"], lang),
            }
        )
    return {
        "width": width,
        "height": height,
        "base": height - bottom,
        "left": left,
        "top": top,
        "peak": peak,
        "bars": bars,
    }


def _wave_figures(db: Database, slug: str, secret: str, base_url: str) -> dict[str, Any]:
    wave = waves.get_wave(db, slug)
    status = wave_status(db, wave, secret, base_url)
    for secret_key in ("webhook_url", "webhook_signing_secret"):  # for the platform's settings, not a page
        status.pop(secret_key, None)
    return {
        "wave": wave,
        "status": status,
        "funnel": live.funnel(db, wave["id"]),
        "per_day": live.completions_per_day(db, wave),
        "rates": wave_dispositions(db, wave["id"]),
        "steps": waves.steps(db, wave["id"]),
        "outbox": live.outbox(db, wave["id"]),
        "partials": live.partials(db, wave["id"]),
        "unmatched": live.unmatched(db, wave["id"]),
        "interviews": live.interview_queue(db, wave["id"]),
        "replies": live.replies(db, wave["id"]),
        "without_zone": live.without_zone(db, wave["id"]),
    }


def _list_figures(db: Database) -> list[dict[str, Any]]:
    listed = waves.list_waves(db)
    for row in listed:
        wave_id = waves.get_wave(db, row["slug"])["id"]
        rates = wave_dispositions(db, wave_id) if row["state"] != "draft" else None
        row["rr1"], row["rr2"] = (rates["rr1"], rates["rr2"]) if rates else (None, None)
        row["start"] = row["launched_at"] or row["start_at"]
        row["closes"] = row["closed_at"] or row["closes_at"]
    return listed


async def wave_list(request: web.Request) -> web.Response:
    session = require(request, "coordinator", "network")
    if session.role == "network":
        return await partners.landing(request, session)
    lang = language(request, session)
    rows = await request.app[FIGURES].get(("list",), _list_figures)
    return page(
        request,
        "waves.html.j2",
        session=session,
        lang=lang,
        waves=rows,
        number=number,
        percent=percent,
        moment=moment,
        utc=UTC,
    )


async def wave_page(request: web.Request) -> web.Response:
    session = require(request, "coordinator", "network")
    slug = request.match_info["slug"]
    if session.role == "network":
        return await partners.wave_page(request, session, slug)
    lang = language(request, session)
    settings = request.app[SETTINGS]
    try:
        figures = await request.app[FIGURES].get(
            ("wave", slug), _wave_figures, slug, request.app[SECRET], settings.base_url
        )
    except NotFound:
        return _error(request, session, TEXT[lang]["no_wave"].format(wave=slug), 404)
    zone = live.zone_of_wave(figures["wave"])
    return page(
        request,
        "wave.html.j2",
        session=session,
        lang=lang,
        f=figures,
        chart=chart(figures["per_day"], lang),
        zone=zone,
        moment=moment,
        number=number,
        percent=percent,
        groups=GROUPS,
        rates=RATES,
        notice=_notice(request, lang),
        poll=POLL_MS,
    )


def _notice(request: web.Request, lang: str) -> str:
    t, done = TEXT[lang], request.query.get("done", "")
    if done in ACTIONS:
        n = request.query.get("n", "0")
        return t[f"done_{done}"].format(n=int(n) if n.isascii() and n.isdigit() else 0)
    if done == "assign" and request.query.get("outcome") in ("complete", "duplicate"):
        return t["assigned"].format(outcome=t[f"outcome_{request.query['outcome']}"])
    return ""


async def confirm_page(request: web.Request) -> web.Response:
    session = require(request, "coordinator")
    slug, action = request.match_info["slug"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    lang = language(request, session)
    settings = request.app[SETTINGS]
    try:
        figures = await request.app[FIGURES].get(
            ("wave", slug), _wave_figures, slug, request.app[SECRET], settings.base_url
        )
    except NotFound:
        return _error(request, session, TEXT[lang]["no_wave"].format(wave=slug), 404)
    question = TEXT[lang][f"confirm_{action}"].format(wave=slug, n=figures["outbox"]["retryable"])
    return page(
        request,
        "confirm.html.j2",
        session=session,
        lang=lang,
        slug=slug,
        action=action,
        question=question,
        wave=figures["wave"],
    )


async def act(request: web.Request) -> web.Response:
    session = require(request, "coordinator")
    slug, action = request.match_info["slug"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound()
    if not csrf_ok(session, await read_form(request)):
        return refuse_csrf(request, session)
    db, now = request.app[DB], utcnow()
    try:
        count = await retry_busy(lambda: _carry_out(db, slug, action, now), what="the dashboard", patience=5)
    except (InvalidInput, NotFound) as exc:
        return _error(
            request,
            session,
            exc.public if isinstance(exc, NotFound) else str(exc),
            409 if isinstance(exc, InvalidInput) else 404,
        )
    if action == "retry":
        request.app[DISPATCHER].wake()
    request.app[FIGURES].forget()
    raise web.HTTPSeeOther(f"/waves/{slug}?done={action}&n={count}")


def _carry_out(db: Database, slug: str, action: str, now: datetime) -> int:
    """One confirmed action on the wave; returns how many failed messages were queued again."""
    if action == "retry":
        return waves.retry_failed(db, slug, now)
    if action == "close":
        waves.close(db, slug, now)
    else:
        waves.set_paused(db, slug, action == "pause")
    return 0


async def assign(request: web.Request) -> web.Response:
    """Give an unmatched response to the invited recipient whose e-mail the coordinator types."""
    session = require(request, "coordinator")
    slug = request.match_info["slug"]
    form = await read_form(request)
    if form is None or not csrf_ok(session, form):
        return refuse_csrf(request, session)
    db, lang = request.app[DB], language(request, session)
    try:
        row_id = int(request.match_info["response"])
        email = normalise_email(str(form.get("email", ""))[:320])
    except (ValueError, InvalidAddress) as exc:
        return _error(request, session, f"{TEXT[lang]['assign_help']} ({exc})", 400)
    try:
        wave = waves.get_wave(db, slug)
        contact = contact_by_email(db, email)
        if contact is None:
            raise InvalidInput(f"no contact {email}", field="email")
        outcome = await retry_busy(
            lambda: responses.assign_unmatched(db, wave, row_id, contact["id"], utcnow()),
            what="the dashboard",
            patience=5,
        )
    except (InvalidInput, NotFound) as exc:
        return _error(
            request,
            session,
            exc.public if isinstance(exc, NotFound) else str(exc),
            400 if isinstance(exc, InvalidInput) else 404,
        )
    request.app[DISPATCHER].wake()
    request.app[FIGURES].forget()
    raise web.HTTPSeeOther(f"/waves/{slug}?done=assign&outcome={outcome}")


def _error(request: web.Request, session: Session, message: str, status: int) -> web.Response:
    return page(
        request,
        "message.html.j2",
        status=status,
        session=session,
        lang=language(request, session),
        message=message,
        kind="error",
    )


async def my_interviews(request: web.Request) -> web.Response:
    """Upcoming interviews: a researcher's own (when their token names them), every one for a coordinator."""
    session = require(request, "researcher", "coordinator")
    lang = language(request, session)
    listed = interviews.upcoming(request, {"role": session.role, "email": session.email})
    return page(request, "my_interviews.html.j2", session=session, lang=lang, interviews=listed)


def setup(app: web.Application) -> None:
    app[FIGURES] = Figures(app[SETTINGS].db_path)
    app.router.add_get("/waves", wave_list)
    app.router.add_get("/waves/{slug}", wave_page)
    app.router.add_get("/waves/{slug}/{action}", confirm_page)
    app.router.add_post("/waves/{slug}/{action}", act)
    app.router.add_post("/waves/{slug}/unmatched/{response}", assign)
    app.router.add_get("/interviews", my_interviews)

    async def stop_figures(app: web.Application) -> None:
        await app[FIGURES].close()

    app.on_shutdown.append(stop_figures)

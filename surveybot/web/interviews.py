"""The interview pages: the respondent's booking page and the researchers' list of interviews.

``/interview/{token}`` — the personal link from the e-mails. It works without JavaScript (a form per
action, times written out in the respondent's time zone); with JavaScript the times are shown in the
visitor's own zone. Every POST answers with a page that says what happened; a slot lost in a race says so
and offers the times still free. ``/researchers`` lists upcoming interviews to whoever types a researcher's
(or coordinator's) token; ``GET /api/interviews`` gives the same as JSON for a bearer token.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard
from zoneinfo import ZoneInfo

from aiohttp import web

from surveybot.clock import parse_stored, utcnow
from surveybot.errors import InvalidInput
from surveybot.interviews import booking, queue, slots
from surveybot.interviews.messages import moment
from surveybot.web.auth import TooManyTries, checked, from_header, refuse
from surveybot.web.keys import DB, DISPATCHER, SECRET
from surveybot.web.pages import FOLDER, read_form, render

# Every phrase of the pages, (English, Spanish).
PHRASES = {
    "title": ("Your follow-up interview", "Su entrevista de seguimiento"),
    "choose": ("Choose a time", "Elija un horario"),
    "book": ("Book this time", "Reservar este horario"),
    "move": ("Move to this time", "Cambiar a este horario"),
    "cancel": ("Cancel the interview", "Cancelar la entrevista"),
    "decline": ("I would rather not be interviewed", "Prefiero no ser entrevistado/a"),
    "booked": ("Your interview is booked", "Su entrevista está reservada"),
    "none_free": (
        "There are no free times at the moment. We will write to you when there are more.",
        "No hay horarios libres por ahora. Le escribiremos cuando haya más.",
    ),
    "taken": (
        "Sorry, that time has just been taken by someone else. Please choose another.",
        "Lo sentimos, otra persona acaba de reservar ese horario. Por favor, elija otro.",
    ),
    "expired": (
        "This booking link has expired. Reply to our e-mail if you would still like an interview.",
        "Este enlace de reserva ha caducado. Responda a nuestro correo si aún desea una entrevista.",
    ),
    "invalid": (
        "This booking link is not valid. Please use the link from our e-mail.",
        "Este enlace de reserva no es válido. Use el enlace de nuestro correo.",
    ),
    "cancelled": (
        "Your interview is cancelled. You can book another time below.",
        "Su entrevista está cancelada. Puede reservar otro horario abajo.",
    ),
    "declined": (
        "Thank you for letting us know. We will not write to you about the interview again.",
        "Gracias por avisarnos. No volveremos a escribirle sobre la entrevista.",
    ),
    "done": ("This interview has taken place. Thank you!", "Esta entrevista ya se realizó. ¡Muchas gracias!"),
    "no_show": (
        "We missed you at the interview. Reply to our e-mail to find another time.",
        "No pudimos encontrarnos en la entrevista. Responda a nuestro correo para buscar otro horario.",
    ),
    "with": ("with", "con"),
    "online": ("online", "en línea"),
    "minutes": ("minutes", "minutos"),
    "zone": ("Times are shown in {zone}.", "Los horarios se muestran en {zone}."),
    "zone_js": ("Times are shown in your time zone ({zone}).", "Los horarios se muestran en su zona horaria ({zone})."),
    "other": ("Versión en español", "English version"),
    "confirmation": (
        "A confirmation with a calendar invitation is on its way to your e-mail.",
        "Le enviamos una confirmación con la invitación de calendario a su correo.",
    ),
    "change": ("Change the time", "Cambiar el horario"),
    "queued": ("We will send you a booking link soon.", "Pronto le enviaremos un enlace de reserva."),
    "unreadable": (
        "Your answer could not be read; please choose again.",
        "No pudimos leer su respuesta; por favor, elija de nuevo.",
    ),
}
TEXT = {language: {key: pair[n] for key, pair in PHRASES.items()} for n, language in enumerate(("en", "es"))}


def _language(request: web.Request, row: dict[str, Any] | None) -> str:
    asked = request.query.get("lang", "")
    if asked in TEXT:
        return asked
    if row and row["language"] in TEXT:
        language: str = row["language"]
        return language
    return "es" if "es" in request.headers.get("Accept-Language", "")[:5].lower() else "en"


def _when(starts_at: str, zone: str, language: str) -> str:
    return moment(parse_stored(starts_at), zone, language)


def _page(
    request: web.Request, row: dict[str, Any] | None, *, notice: str = "", kind: str = "ok", status: int = 200
) -> web.Response:
    now = utcnow()
    language = _language(request, row)
    t = TEXT[language]
    if row is None:
        return render(
            request,
            "booking.html.j2",
            status=status,
            lang=language,
            t=t,
            state="invalid",
            row=None,
            current=None,
            free=[],
            notice=t["invalid"],
            kind="error",
            zone_note="",
            other_url="?lang=" + ("en" if language == "es" else "es"),
        )
    zone = row["contact_timezone"] or "UTC"
    state = booking.check_state_for_page(row, now)
    current = None
    if row["state"] == "booked":
        current = {
            "when": _when(row["starts_at"], zone, language),
            "iso": row["starts_at"],
            "researcher": row["researcher"],
            "meeting_url": row["meeting_url"],
            "minutes": slots.minutes(row),
        }
    free = []
    if state in ("book", "booked"):
        free = [
            {
                "id": s["id"],
                "iso": s["starts_at"],
                "when": _when(s["starts_at"], zone, language),
                "researcher": s["researcher"],
            }
            for s in slots.free(request.app[DB], now, lead=booking.LEAD)
        ]
    if not notice and state in t and state not in ("book", "booked"):
        notice, kind = t[state if state != "completed" else "done"], "error" if state == "expired" else "ok"
    zone_name = "UTC" if zone == "UTC" else ZoneInfo(zone).key
    return render(
        request,
        "booking.html.j2",
        status=status,
        lang=language,
        t=t,
        state=state,
        row=row,
        current=current,
        free=free,
        notice=notice,
        kind=kind,
        zone_note=t["zone"].format(zone=zone_name),
        other_url="?lang=" + ("en" if language == "es" else "es"),
    )


async def page(request: web.Request) -> web.Response:
    row = queue.by_token(request.app[DB], request.app[SECRET], request.match_info["token"])
    return _page(request, row, status=200 if row else 404)


async def act(request: web.Request) -> web.Response:
    db = request.app[DB]
    row = queue.by_token(db, request.app[SECRET], request.match_info["token"])
    if row is None:
        return _page(request, None, status=404)
    form = await read_form(request)
    t = TEXT[_language(request, row)]
    if form is None:
        return _page(request, row, notice=t["unreadable"], kind="error", status=400)
    action, now = str(form.get("action", "")), utcnow()
    try:
        if action == "book":
            booking.book(db, row["id"], _slot_id(str(form.get("slot", ""))), now)
            notice = t["confirmation"]
        elif action in ("cancel", "decline"):
            booking.cancel(db, row["id"], now, state="cancelled" if action == "cancel" else "declined")
            notice = t["cancelled"] if action == "cancel" else t["declined"]
        else:
            raise InvalidInput("unknown action", field="action")
    except booking.SlotTaken:
        return _page(request, queue.get(db, row["id"]), notice=t["taken"], kind="error", status=409)
    except booking.NotBookable as exc:
        state = "expired" if str(exc) == "expired" else str(exc)
        return _page(
            request,
            queue.get(db, row["id"]),
            notice=t.get(state if state != "completed" else "done", t["invalid"]),
            kind="error",
            status=409,
        )
    except InvalidInput:
        return _page(request, queue.get(db, row["id"]), notice=t["choose"], kind="error", status=400)
    request.app[DISPATCHER].wake()
    return _page(request, queue.get(db, row["id"]), notice=notice)


def _slot_id(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise InvalidInput("choose one of the times offered", field="slot")
    return int(value)


def upcoming(request: web.Request, token: dict[str, Any]) -> list[dict[str, Any]]:
    """Booked interviews still to come: a researcher's token tied to an e-mail sees that researcher's only."""
    now = utcnow()
    researcher = token.get("email") if token["role"] == "researcher" else None
    rows = [
        r
        for r in queue.listing(request.app[DB], state="booked", researcher=researcher or None)
        if parse_stored(r["ends_at"]) >= now
    ]
    return [
        {
            "id": r["id"],
            "wave": r["wave"],
            "state": r["state"],
            "starts_at": r["starts_at"],
            "ends_at": r["ends_at"],
            "researcher": r["researcher"],
            "meeting_url": r["meeting_url"],
            "respondent": r["name"],
            "email": r["email"],
            "city": r["city"],
            "country": r["country"],
            "language": r["language"],
            "notes": r["notes"],
            "when": moment(parse_stored(r["starts_at"]), r["slot_timezone"], "en"),
        }
        for r in rows
    ]


def _may_see(token: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return token is not None and token["role"] in ("researcher", "coordinator")


async def researchers_form(request: web.Request) -> web.Response:
    return render(request, "researchers.html.j2", lang="en", interviews=None, error=None)


async def researchers_list(request: web.Request) -> web.Response:
    form = await read_form(request)
    if form is None:
        return render(
            request,
            "researchers.html.j2",
            status=400,
            lang="en",
            interviews=None,
            error="The form could not be read; please send it again.",
        )
    try:
        token = checked(request, str(form.get("token", "")).strip()[:200])
    except TooManyTries as exc:
        refused = render(
            request, "researchers.html.j2", status=429, lang="en", interviews=None, error=f"{str(exc).capitalize()}."
        )
        refused.headers["Retry-After"] = str(math.ceil(exc.wait))
        return refused
    if not _may_see(token):
        return render(
            request,
            "researchers.html.j2",
            status=401 if token is None else 403,
            lang="en",
            interviews=None,
            error="That token does not open the researchers' view.",
        )
    return render(request, "researchers.html.j2", lang="en", interviews=upcoming(request, token), error=None)


async def api_list(request: web.Request) -> web.Response:
    token = from_header(request)
    if not _may_see(token):
        return refuse("a researcher's or coordinator's token is needed", token)
    return web.json_response({"interviews": upcoming(request, token)})


def setup(app: web.Application) -> None:
    app.router.add_get("/interview/{token}", page)
    app.router.add_post("/interview/{token}", act)
    app.router.add_get("/researchers", researchers_form)
    app.router.add_post("/researchers", researchers_list)
    app.router.add_get("/api/interviews", api_list)
    app.router.add_static("/static", FOLDER / "static")

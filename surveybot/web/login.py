"""Signing in to the web pages: ``/login`` (a token typed once becomes a session), ``/login/{code}`` (the
single-use link ``serve`` prints on its first start, redirected at once to a clean URL), ``/logout``, and
what every signed-in page shares: who is asking, their language, the CSRF check, the response headers.

The session id travels only in a cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the base URL is
https); a token or a session id is never put in a URL, a page or a log line. Every form of a signed-in page
carries the session's CSRF token, and a POST without it is refused.

Failed sign-ins are limited per client address and per token tried (``throttle.py``): past the limit the
answer is a 429 page with ``Retry-After``, even for a correct token, until the window has passed.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from surveybot.clock import utcnow
from surveybot.db import retry_busy
from surveybot.web import sessions, throttle
from surveybot.web.auth import TooManyTries, checked, client_of
from surveybot.web.dashboard_text import TEXT
from surveybot.web.keys import DB, SETTINGS, SIGN_IN_GUARD
from surveybot.web.pages import Form, read_form, render
from surveybot.web.sessions import Session

COOKIE = "surveybot_session"
# Signed-in pages poll their own URL (connect-src) and use the shared stylesheet (style-src 'self').
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Cache-Control": "no-store",
    "Vary": "Cookie",
}
HOME = {"coordinator": "/waves", "network": "/waves", "researcher": "/interviews"}
THROTTLED = {
    "en": "Too many failed sign-in attempts. Try again in {minutes} min.",
    "es": "Demasiados intentos fallidos de iniciar sesión. Inténtelo de nuevo dentro de {minutes} min.",
}
log = logging.getLogger("surveybot.web.login")
T = TypeVar("T")


def current(request: web.Request) -> Session | None:
    """The request's live session (a handler asks once and passes it on)."""
    session_id = request.cookies.get(COOKIE, "")
    return sessions.find(request.app[DB], session_id, utcnow()) if session_id else None


def language(request: web.Request, session: Session | None = None) -> str:
    """``?lang=`` (remembered by the session), else the session's, else the browser's first choice."""
    asked = request.query.get("lang", "")
    if asked in sessions.LANGUAGES:
        if session is not None:
            sessions.set_language(request.app[DB], session, asked)
        return asked
    if session is not None and session.language:
        return session.language
    return "es" if request.headers.get("Accept-Language", "")[:2].lower() == "es" else "en"


def page(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    session: Session | None = None,
    lang: str = "en",
    **context: Any,
) -> web.Response:
    """A signed-in (or sign-in) page: the shared navigation, the CSRF token for its forms, no caching."""
    nav = {
        "role": session.role if session else "",
        "network": session.network if session else "",
        "csrf": session.csrf if session else "",
        "path": request.path,
    }
    response = render(request, name, status=status, lang=lang, t=TEXT[lang], nav=nav, **context)
    response.headers.update(PAGE_HEADERS)
    return response


def require(request: web.Request, *roles: str) -> Session:
    """The signed-in session, or a redirect to sign in (coming back here afterwards)."""
    session = current(request)
    if session is None:
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/?=&"))
    if session.role not in roles:
        lang = language(request, session)
        shown = page(
            request,
            "message.html.j2",
            status=403,
            session=session,
            lang=lang,
            message=TEXT[lang]["not_for_you"],
            kind="error",
        )
        raise web.HTTPForbidden(
            text=shown.text,
            content_type="text/html",
            headers={k: v for k, v in shown.headers.items() if k != "Content-Type"},
        )
    return session


def csrf_ok(session: Session, form: Form | None) -> bool:
    given = str(form.get("csrf", "")) if form is not None else ""
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def refuse_csrf(request: web.Request, session: Session) -> web.Response:
    lang = language(request, session)
    return page(
        request, "message.html.j2", status=403, session=session, lang=lang, message=TEXT[lang]["csrf"], kind="error"
    )


def _next(value: str, session: Session) -> str:
    """Where to go after signing in: a path of this site only (never another host), else the home page."""
    if (
        value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and value.isascii()
        and value.isprintable()
        and len(value) < 500
    ):
        return value
    return HOME[session.role]


async def _write(write: Callable[[], T]) -> T:
    """A sign-in's small write, waiting (without blocking the loop) while another process writes."""
    return await retry_busy(write, what="signing in", patience=5)


async def _signed_in(request: web.Request, token_id: int, lang: str, target: str | None = None) -> web.HTTPSeeOther:
    db, now = request.app[DB], utcnow()
    old = request.cookies.get(COOKIE, "")
    if old:  # a new session id at every sign-in (no fixation)
        await _write(lambda: sessions.end(db, old))
    session_id, session = await _write(lambda: sessions.start(db, token_id, now, lang))
    response = web.HTTPSeeOther(_next(target or "", session))
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(sessions.LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].base_url.startswith("https:"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_form(request: web.Request) -> web.Response:
    session = current(request)
    if session is not None:
        raise web.HTTPSeeOther(HOME[session.role])
    lang = language(request)
    return page(request, "login.html.j2", lang=lang, error=None, next=request.query.get("next", ""))


async def login(request: web.Request) -> web.Response:
    lang = language(request)
    form = await read_form(request)
    if form is None:
        return page(request, "login.html.j2", status=400, lang=lang, error=TEXT[lang]["unreadable"], next="")
    tried = str(form.get("token", "")).strip()[:200]
    target = str(form.get("next", ""))
    try:
        token = checked(request, tried)
    except TooManyTries as exc:
        return _throttled(request, lang, exc.wait, target)
    if token is None:
        return page(request, "login.html.j2", status=401, lang=lang, error=TEXT[lang]["bad_token"], next=target)
    raise await _signed_in(request, token["id"], str(form.get("lang", lang)), target)


def _throttled(request: web.Request, lang: str, wait: float, target: str) -> web.Response:
    message = THROTTLED[lang].format(minutes=max(1, math.ceil(wait / 60)))
    response = page(request, "login.html.j2", status=429, lang=lang, error=message, next=target)
    response.headers["Retry-After"] = str(math.ceil(wait))
    return response


async def login_link(request: web.Request) -> web.Response:
    lang = language(request)
    clients, client = request.app[SIGN_IN_GUARD].clients, throttle.client_key(client_of(request))
    if (wait := clients.wait(client)) > 0:  # codes guessed from one address count as its failed sign-ins
        return _throttled(request, lang, wait, "")
    token_id = await _write(lambda: sessions.redeem_code(request.app[DB], request.match_info["code"], utcnow()))
    if token_id is None:
        clients.fail(client)
        return page(request, "login.html.j2", status=410, lang=lang, error=TEXT[lang]["bad_link"], next="")
    raise await _signed_in(request, token_id, lang)


async def logout_form(request: web.Request) -> web.Response:
    session = current(request)
    if session is None:
        raise web.HTTPSeeOther("/login")
    return page(request, "logout.html.j2", session=session, lang=language(request, session))


async def logout(request: web.Request) -> web.Response:
    session = current(request)
    if session is None:
        raise web.HTTPSeeOther("/login")
    if not csrf_ok(session, await read_form(request)):
        return refuse_csrf(request, session)
    await _write(lambda: sessions.end(request.app[DB], request.cookies.get(COOKIE, "")))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.Response:
    session = current(request)
    raise web.HTTPSeeOther(HOME[session.role] if session else "/login")


def setup(app: web.Application) -> None:
    app[SIGN_IN_GUARD] = throttle.SignInGuard()
    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/login/{code}", login_link)
    app.router.add_get("/logout", logout_form)
    app.router.add_post("/logout", logout)

    async def forget_old_sessions(app: web.Application) -> None:
        sessions.purge(app[DB], utcnow())

    app.on_startup.append(forget_old_sessions)

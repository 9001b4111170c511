"""Pages people open in a browser: Jinja2 templates in ``templates/web/``, escaped, in both languages."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from multidict import MultiDictProxy

from surveybot.resources import template_folder
from surveybot.web.keys import PAGES

FOLDER = template_folder("web")  # pages and static/: in the installed package, or templates/web of a checkout
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(FOLDER)), autoescape=True, undefined=StrictUndefined, auto_reload=False
    )


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[PAGES].get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)


# What aiohttp raises on a form body that cannot be read (bad UTF-8, broken multipart headers or boundaries).
FORM_ERRORS = (ValueError, AssertionError, HttpProcessingError)
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]  # a posted form's fields, as aiohttp reads them


async def read_form(request: web.Request) -> Form | None:
    """The posted form's fields, or None when the body is not a readable form (answer 400, not 500)."""
    try:
        return await request.post()
    except FORM_ERRORS:
        return None

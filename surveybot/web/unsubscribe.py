"""``/unsubscribe/{token}``: the link in every e-mail. GET shows a bilingual confirmation; POST suppresses.

A one-click POST from a mail provider (RFC 8058, body ``List-Unsubscribe=One-Click``) suppresses at once
and gets a short answer; the page's own button gets the confirmation page. The token is signed: no login.
"""

from __future__ import annotations

from aiohttp import web

from surveybot.suppressions import unsubscribe, unsubscribe_address
from surveybot.web.keys import DB, SECRET
from surveybot.web.pages import render
from surveybot.web.webhooks import read_body


async def show(request: web.Request) -> web.Response:
    found = unsubscribe_address(request.app[DB], request.app[SECRET], request.match_info["token"])
    if found is None:
        return render(request, "unsubscribe.html.j2", status=404, state="invalid", email="")
    return render(request, "unsubscribe.html.j2", state="confirm", email=found[0])


async def confirm(request: web.Request) -> web.Response:
    body = await read_body(request, 4096)
    email = unsubscribe(request.app[DB], request.app[SECRET], request.match_info["token"])
    one_click = b"List-Unsubscribe=One-Click" in body
    if email is None:
        if one_click:
            return web.json_response({"error": "invalid unsubscribe link"}, status=404)
        return render(request, "unsubscribe.html.j2", status=404, state="invalid", email="")
    if one_click:
        return web.json_response({"status": "unsubscribed"})
    return render(request, "unsubscribe.html.j2", state="done", email=email)


def setup(app: web.Application) -> None:
    app.router.add_get("/unsubscribe/{token}", show)
    app.router.add_post("/unsubscribe/{token}", confirm)

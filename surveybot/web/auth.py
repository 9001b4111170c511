"""Who is asking: bearer tokens (see ``tokens.py``) for the API, and the same tokens typed into forms.

Every token tried — a bearer header, the token field of the upload and researchers' pages, as well as sign-in
(``login.py``) — counts against the same limits on failed attempts per client address and per token
(``throttle.py``): past them the request is answered 429 with ``Retry-After``, a right token like a wrong one.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web

from surveybot import tokens
from surveybot.web import throttle
from surveybot.web.keys import DB, SETTINGS, SIGN_IN_GUARD

log = logging.getLogger("surveybot.web")


class TooManyTries(Exception):
    """Failed token attempts from this client, or with this token, reached their limit."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(f"too many failed attempts with an access token; try again in {math.ceil(wait / 60)} min")


def client_of(request: web.Request) -> str:
    """The client's address: ``X-Forwarded-For`` believed only from a trusted proxy."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    return throttle.client_address(request.remote, forwarded, request.app[SETTINGS].trusted_proxies)


def checked(request: web.Request, tried: str) -> dict[str, Any] | None:
    """The token ``tried`` names (None if none), behind the limits on failed attempts: raises
    :class:`TooManyTries` when they are reached, before looking the token up."""
    guard, client = request.app[SIGN_IN_GUARD], client_of(request)
    wait = guard.wait(client, tried)
    if wait > 0:
        raise TooManyTries(wait)
    token = tokens.check(request.app[DB], tried)
    if token is None and tried:
        guard.failed(client, tried)
        if guard.wait(client, tried) > 0:  # said once, when the limit is reached (no token in the line)
            log.warning("failed token attempts limited for client %s or the token it tried", client)
    return token


def from_header(request: web.Request) -> dict[str, Any] | None:
    """The bearer token of the request (None without one, or a wrong one); 429 past the limits."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    try:
        return checked(request, value.strip())
    except TooManyTries as exc:
        raise web.HTTPTooManyRequests(
            text=json.dumps({"error": str(exc)}),
            content_type="application/json",
            headers={"Retry-After": str(math.ceil(exc.wait))},
        ) from None


def may_use_network(token: dict[str, Any] | None, network: str) -> str | None:
    """Why ``token`` may not read or upload ``network``'s contacts, or None if it may."""
    if token is None:
        return "a valid access token is needed"
    if token["role"] == "coordinator":
        return None
    if token["role"] == "network" and token["network"].lower() == network.lower():
        return None
    return "this token is not for that network"


def refuse(reason: str, token: dict[str, Any] | None) -> web.Response:
    status = 401 if token is None else 403
    headers = {"WWW-Authenticate": 'Bearer realm="surveybot"'} if status == 401 else {}
    return web.json_response({"error": reason}, status=status, headers=headers)

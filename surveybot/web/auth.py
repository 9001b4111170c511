"""Who is asking: bearer tokens (see ``tokens.py``) for the API, and the same tokens typed into forms."""

from __future__ import annotations

from aiohttp import web

from surveybot import tokens
from surveybot.web.keys import DB


def from_header(request: web.Request) -> dict | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return tokens.check(request.app[DB], value.strip())


def may_use_network(token: dict | None, network: str) -> str | None:
    """Why ``token`` may not read or upload ``network``'s contacts, or None if it may."""
    if token is None:
        return "a valid access token is needed"
    if token["role"] == "coordinator":
        return None
    if token["role"] == "network" and token["network"].lower() == network.lower():
        return None
    return "this token is not for that network"


def refuse(reason: str, token: dict | None) -> web.Response:
    status = 401 if token is None else 403
    headers = {"WWW-Authenticate": 'Bearer realm="surveybot"'} if status == 401 else {}
    return web.json_response({"error": reason}, status=status, headers=headers)

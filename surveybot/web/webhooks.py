"""``POST /webhooks/{platform}/{wave}/{secret}``: survey platforms report responses here.

The URL's last part is the wave's secret (compared in constant time); signed platforms are checked
again by their adapter. Notifications that name a response go to the durable inbox and are answered
at once; signed ones that carry the response are recorded on the spot. Every refusal is a 4xx JSON
``{"error": ...}``; a retried delivery answers 200 and changes nothing.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from surveybot import inbox, responses
from surveybot.clock import utcnow
from surveybot.db import transaction
from surveybot.errors import NotFound
from surveybot.platforms import FetchNeeded, WebhookContext, WebhookRejected, qualtrics, signed, surveymonkey, typeform
from surveybot.reports import webhook_secret, webhook_signing_secret
from surveybot.waves import get_wave
from surveybot.web.keys import DB, DISPATCHER, INBOX, SECRET, SETTINGS

ADAPTERS = {m.NAME: m for m in (qualtrics, typeform, surveymonkey, signed)}
MAX_BODY = 1024 * 1024


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes without reading it all."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks, size = [], 0
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read until the end.
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def receive(request: web.Request) -> web.Response:
    app = request.app
    adapter = ADAPTERS.get(request.match_info["platform"])
    if adapter is None:
        return _error(404, "no such platform")
    db, secret = app[DB], app[SECRET]
    try:
        wave = get_wave(db, request.match_info["wave"])
    except NotFound:
        wave = None
    expected = webhook_secret(secret, wave) if wave and wave["platform"] == adapter.NAME else "x" * 32
    if not hmac.compare_digest(expected.encode(), request.match_info["secret"].encode()) or wave is None:
        return _error(401, "unknown wave or wrong secret")
    body = await read_body(request, MAX_BODY)
    context = WebhookContext(wave, webhook_signing_secret(secret, wave), app[SETTINGS], time.time())
    try:
        result = adapter.receive(body, request.headers, request.content_type or "", context)
    except WebhookRejected as exc:
        return _error(exc.status, str(exc))
    if isinstance(result, FetchNeeded):
        added = inbox.add(db, wave["id"], result, utcnow())
        if added:
            app[INBOX].wake()
        return web.json_response({"status": "queued" if added else "already queued"})
    with transaction(db):  # the message id counts as seen only once its response is recorded
        if adapter is signed and not inbox.first_delivery(db, "signed", request.headers["webhook-id"], utcnow()):
            return web.json_response({"status": "repeat"})
        outcome = responses.record(db, wave, result, utcnow())
    app[DISPATCHER].wake()  # a thank-you may be queued
    return web.json_response({"status": outcome})


async def verify(request: web.Request) -> web.Response:
    """Platforms check a URL with HEAD or GET before they send to it."""
    return web.json_response({"status": "ready"})


def setup(app: web.Application) -> None:
    path = "/webhooks/{platform}/{wave}/{secret}"
    app.router.add_post(path, receive)
    app.router.add_get(path, verify)

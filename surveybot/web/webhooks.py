"""``POST /webhooks/{platform}/{wave}/{secret}``: survey platforms report responses here.

The URL's last part is the wave's secret (compared in constant time); signed platforms are checked
again by their adapter. Notifications that name a response go to the durable inbox and are answered
at once; signed ones that carry the response are recorded on the spot. Every refusal is a 4xx JSON
``{"error": ...}``; a retried delivery answers 200 and changes nothing.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from surveybot import inbox, responses
from surveybot.clock import utcnow
from surveybot.db import transaction
from surveybot.errors import NotFound
from surveybot.platforms import FetchNeeded, WebhookContext, WebhookRejected, qualtrics, signed, surveymonkey, typeform
from surveybot.reports import webhook_secret, webhook_signing_secret
from surveybot.waves import get_wave
from surveybot.web.keys import DB, DISPATCHER, INBOX, INTAKE, SECRET, SETTINGS, WAVES

ADAPTERS = {m.NAME: m for m in (qualtrics, typeform, surveymonkey, signed)}
MAX_BODY = 1024 * 1024
WAVE_TTL = 1.0  # seconds
# The answers to a notification, encoded once: most requests to a busy endpoint get one of these.
_QUEUED, _ALREADY_QUEUED = b'{"status": "queued"}', b'{"status": "already queued"}'


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


@dataclass(frozen=True)
class KnownWave:
    row: dict
    url_secret: str  # the last part of its webhook URL
    signing_secret: str


def _wave(app: web.Application, slug: str) -> KnownWave | None:
    """The wave named in the URL and its secrets, looked up at most once a second per slug: a burst of
    webhooks for one wave costs one query, and a wave created or changed by the CLI is seen within a second."""
    now = time.monotonic()
    cache = app[WAVES]
    hit = cache.get(slug)
    if hit is None or hit[0] < now:
        if len(cache) > 1000:  # strangers probing made-up slugs must not grow it without end
            cache.clear()
        try:
            row = get_wave(app[DB], slug)
            found = KnownWave(row, webhook_secret(app[SECRET], row), webhook_signing_secret(app[SECRET], row))
        except NotFound:
            found = None
        hit = cache[slug] = (now + WAVE_TTL, found)
    return hit[1]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def receive(request: web.Request) -> web.Response:
    app = request.app
    adapter = ADAPTERS.get(request.match_info["platform"])
    if adapter is None:
        return _error(404, "no such platform")
    db = app[DB]
    known = _wave(app, request.match_info["wave"])
    expected = known.url_secret if known and known.row["platform"] == adapter.NAME else "x" * 32
    if not hmac.compare_digest(expected.encode(), request.match_info["secret"].encode()) or known is None:
        return _error(401, "unknown wave or wrong secret")
    wave = known.row
    body = await read_body(request, MAX_BODY)
    context = WebhookContext(wave, known.signing_secret, app[SETTINGS], time.time())
    try:
        result = adapter.receive(body, request.headers, request.content_type or "", context)
    except WebhookRejected as exc:
        return _error(exc.status, str(exc))
    if isinstance(result, FetchNeeded):
        added = await app[INTAKE].add(wave["id"], result)
        if added:
            app[INBOX].wake()
        return web.Response(body=_QUEUED if added else _ALREADY_QUEUED, content_type="application/json")
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

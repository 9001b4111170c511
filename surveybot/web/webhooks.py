"""``POST /webhooks/{platform}/{wave}/{secret}``: survey platforms report responses here.

The URL's last part is the wave's secret (compared in constant time); signed platforms are checked
again by their adapter. SurveyMonkey, which takes one event type per webhook and a distinct URL for each,
also posts to ``…/{secret}/{event}``. Notifications that name a response go to the durable inbox and are answered
at once; signed ones that carry the response are recorded on the spot. Every refusal is a 4xx JSON
``{"error": ...}``; a retried delivery answers 200 and changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web
from sqlite_utils import Database

from surveybot import inbox, responses
from surveybot.clock import utcnow
from surveybot.db import is_busy, retry_busy, storage_problem, transaction
from surveybot.errors import NotFound
from surveybot.platforms import (
    FetchNeeded,
    ResponseEvent,
    WebhookContext,
    WebhookRejected,
    qualtrics,
    signed,
    surveymonkey,
    typeform,
)
from surveybot.platforms.urls import webhook_secret, webhook_signing_secret
from surveybot.waves import get_wave
from surveybot.web.keys import DB, DISPATCHER, INBOX, INTAKE, SECRET, SETTINGS, WAVES

ADAPTERS = {m.NAME: m for m in (qualtrics, typeform, surveymonkey, signed)}
MAX_BODY = 1024 * 1024
log = logging.getLogger("surveybot.webhooks")
STORE_PATIENCE = 3.0  # seconds a webhook waits for a busy database before the platform is asked to retry
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
    row: dict[str, Any]
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
    if not _known_event(request):
        return _error(404, "no such event URL")
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
    except Exception:  # whatever a parser meets in a stranger's body is a bad request, not a server error
        log.exception("%s webhook for wave %s could not be read", adapter.NAME, wave["slug"])
        return _error(400, f"the body could not be read as a {adapter.NAME} notification")
    # Stored or refused, never lost: while another process holds the database the handler waits a little
    # (without blocking the others), then asks the platform to send it again.
    try:
        if isinstance(result, FetchNeeded):
            need = result
            added = await retry_busy_async(lambda: app[INTAKE].add(wave["id"], need))
            if added:
                app[INBOX].wake()
            return web.Response(body=_QUEUED if added else _ALREADY_QUEUED, content_type="application/json")
        event = result
        outcome = await retry_busy(
            lambda: _record_signed(db, adapter, wave, event, request.headers), what="a webhook", patience=STORE_PATIENCE
        )
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            why = "the database is busy"
        elif storage_problem(exc) is not None:  # a full disk or a read-only file, logged once by db.py
            why = "the database cannot store it now"
        else:
            raise
        return web.json_response(
            {"error": f"{why}; the notification was not stored, send it again shortly"},
            status=503,
            headers={"Retry-After": "5"},
        )
    app[DISPATCHER].wake()  # a thank-you may be queued
    return web.json_response({"status": outcome})


def _record_signed(
    db: Database, adapter: ModuleType, wave: dict[str, Any], event: ResponseEvent, headers: Mapping[str, str]
) -> str:
    with transaction(db):  # the message id counts as seen only once its response is recorded
        if adapter is signed and not inbox.first_delivery(db, "signed", headers["webhook-id"], utcnow()):
            return "repeat"
        outcome = responses.record(db, wave, event, utcnow())
        if adapter is signed and outcome == "other_wave":  # a sender fanning one message out to both waves
            inbox.forget_delivery(db, "signed", headers["webhook-id"])
        return outcome


async def retry_busy_async(add: Callable[[], Awaitable[bool]]) -> bool:
    """``await add()`` again while the database is busy, for at most ``STORE_PATIENCE`` seconds."""
    delay, waited = 0.05, 0.0
    while True:
        try:
            return await add()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or waited >= STORE_PATIENCE:
                raise
        await asyncio.sleep(delay)
        waited += delay
        delay = min(0.5, delay * 2)


def _known_event(request: web.Request) -> bool:
    """A URL of one event type (SurveyMonkey: one per webhook) names one of the types it has URLs for. What
    the signed body says happened is what counts: the URL only gives each webhook the address of its own
    that SurveyMonkey requires."""
    event = request.match_info.get("event")
    return event is None or (request.match_info["platform"] == surveymonkey.NAME and event in surveymonkey.EVENT_TYPES)


async def verify(request: web.Request) -> web.Response:
    """Platforms check a URL with HEAD or GET before they send to it (SurveyMonkey: HEAD must answer 200)."""
    if not _known_event(request):
        return _error(404, "no such event URL")
    return web.json_response({"status": "ready"})


def setup(app: web.Application) -> None:
    for path in ("/webhooks/{platform}/{wave}/{secret}", "/webhooks/{platform}/{wave}/{secret}/{event}"):
        app.router.add_post(path, receive)
        app.router.add_get(path, verify)

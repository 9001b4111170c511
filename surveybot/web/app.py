"""``create_app(settings)``: the aiohttp application with the scheduler, dispatcher and inbox inside it.

Resources open in order and close in reverse (cleanup_ctx): database → mail transport and dispatcher →
HTTP client session and webhook inbox → scheduler. On shutdown the scheduler stops first, the inbox
finishes the fetches it started, then the dispatcher finishes the messages it has handed to a connection
and puts the rest back in the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from surveybot import outbox
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.interviews import queue as interview_queue
from surveybot.db import open_db
from surveybot.dispatcher import Dispatcher
from surveybot.errors import InvalidInput, NotFound, SurveybotError
from surveybot.mail.compose import Composer
from surveybot.mail.transports import open_transport
from surveybot.schedule import Planner
from surveybot.signing import service_secret
from surveybot.inbox import InboxWorker, Intake
from surveybot.web import interviews, pages, unsubscribe, uploads, webhooks
from surveybot.web.keys import DB, DISPATCHER, HTTP, INBOX, INTAKE, PAGES, PLANNER, WAVES, SECRET, SETTINGS

log = logging.getLogger("surveybot.web")
access_log = logging.getLogger("surveybot.access")
# Path parts that are secrets (a wave's webhook secret, an unsubscribe token) never reach a log.
_SECRET_PATHS = re.compile(r"^(/webhooks/[^/]+/[^/]+/|/unsubscribe/|/interview/)[^/?]+")


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: method, path (secrets masked, no query), status, size, time. No bodies."""

    def log(self, request, response, time):
        # Built by hand: this runs for every request, and json.dumps of a dict costs more than the
        # rest of the line; only the strings need escaping.
        path = json.dumps(_SECRET_PATHS.sub(r"\1***", request.path), ensure_ascii=False)
        remote, method = json.dumps(request.remote), json.dumps(request.method)
        access_log.info(f'{{"method": {method}, "path": {path}, "status": {response.status}, '
                        f'"bytes": {response.body_length}, "ms": {time * 1000:.1f}, "remote": {remote}}}')

    @property
    def enabled(self) -> bool:
        return access_log.isEnabledFor(logging.INFO)


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every error is ``{"error": ...}`` JSON with a 4xx status (pages answer their own HTML errors)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type in ("application/json", "text/html"):
            raise
        return web.json_response({"error": exc.reason}, status=exc.status, headers=_kept_headers(exc))
    except NotFound as exc:
        return web.json_response({"error": str(exc)}, status=404)
    except InvalidInput as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except SurveybotError as exc:
        return web.json_response({"error": str(exc)}, status=422)


def _kept_headers(exc: web.HTTPException) -> dict:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}


async def healthz(request: web.Request) -> web.Response:
    db = request.app[DB]
    queued = outbox.queued_count(db)
    return web.json_response({"status": "ok", "queued": queued})


def create_app(settings: Settings, *, check_every: float = 1.0, poll: float = 0.5) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[PAGES] = pages.environment()
    app.router.add_get("/healthz", healthz)
    for area in (webhooks, unsubscribe, uploads, interviews):
        area.setup(app)

    async def database(app: web.Application):
        app[DB] = open_db(settings.db_path)
        app[SECRET] = service_secret(app[DB], settings.secret)
        app[INTAKE] = Intake(app[DB])
        app[WAVES] = {}
        yield
        app[DB].close()

    async def delivery(app: web.Application):
        transport = open_transport(settings.mail, settings.send_concurrency)
        dispatcher = Dispatcher(app[DB], Composer(app[DB], settings, app[SECRET]), transport,
                                rate=settings.send_rate, concurrency=settings.send_concurrency,
                                retry_delay=settings.retry_delay, max_attempts=settings.max_attempts, poll=poll)
        app[DISPATCHER] = dispatcher
        task = asyncio.create_task(dispatcher.run(), name="dispatcher")
        yield
        dispatcher.stop()
        await task
        await transport.close()
        queued = outbox.queued_count(app[DB])
        log.info("dispatcher stopped; %d messages stay queued for the next start", queued)

    async def responses_inbox(app: web.Application):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            app[HTTP] = session
            worker = InboxWorker(app[DB], settings, session, poll=poll * 2)
            worker.on_recorded = lambda outcome: app[DISPATCHER].wake()
            app[INBOX] = worker
            task = asyncio.create_task(worker.run(), name="inbox")
            yield
            worker.stop()
            await task

    async def scheduler(app: web.Application):
        planner = Planner(app[DB], app[SECRET], on_queued=app[DISPATCHER].wake, check_every=check_every)
        app[PLANNER] = planner
        planner.start()

        def interviews_tick() -> None:
            invited, expired = interview_queue.tick(app[DB], utcnow(), nudge_after=settings.interview_nudge_after,
                                                    expire_after=settings.interview_expire_after)
            if invited:
                log.info("invited %d respondents to book an interview", invited)
                app[DISPATCHER].wake()
            if expired:
                log.info("%d interview booking links expired", expired)

        planner.every(max(check_every, 1.0), interviews_tick, "interviews")
        yield
        planner.stop()

    app.cleanup_ctx.extend([database, delivery, responses_inbox, scheduler])
    return app

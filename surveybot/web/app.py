"""``create_app(settings)``: the aiohttp application with the scheduler, dispatcher and inbox inside it.

Resources open in order and close in reverse (cleanup_ctx): database (and the lease: one serve per
database, see ``lease.py``) → mail transport and dispatcher → HTTP client session and webhook inbox →
scheduler. The dispatcher and the inbox run under supervisors (``supervise.py``) that restart them after an
unexpected error; ``/healthz`` says 503 when one of them, the scheduler or the database is not working.
On shutdown the scheduler stops first, the inbox finishes the fetches it started, then the dispatcher
finishes the messages it has handed to a connection and puts the rest back in the queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from surveybot import lease, outbox
from surveybot.clock import utcnow
from surveybot.config import Settings
from surveybot.db import SERVICE_BUSY_TIMEOUT_S, is_busy, open_db, storage_problem, unwritable
from surveybot.dispatcher import Dispatcher
from surveybot.errors import InvalidInput, NotFound, SurveybotError
from surveybot.inbox import InboxWorker, Intake
from surveybot.interviews import queue as interview_queue
from surveybot.mail.compose import Composer
from surveybot.mail.transports import open_transport
from surveybot.mailbox.reader import READ_EVERY_S, MailboxReader
from surveybot.pull import Puller
from surveybot.schedule import Planner
from surveybot.signing import service_secret
from surveybot.supervise import Health, supervise
from surveybot.web import dashboard, interviews, login, pages, report_api, unsubscribe, uploads, webhooks
from surveybot.web.keys import (
    DB,
    DISPATCHER,
    HEALTH,
    HTTP,
    INBOX,
    INTAKE,
    LEASE_LOST,
    PAGES,
    PLANNER,
    SECRET,
    SETTINGS,
    WAVES,
)

log = logging.getLogger("surveybot.web")
access_log = logging.getLogger("surveybot.access")
RETRY_AFTER_BUSY = 5  # seconds a client is asked to wait while another process holds the database
# Path parts that are secrets (a wave's webhook secret, an unsubscribe token, a sign-in code) never reach a log.
_SECRET_PATHS = re.compile(r"^(/webhooks/[^/]+/[^/]+/|/unsubscribe/|/interview/|/login/)[^/?]+")


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: method, path (secrets masked, no query), status, size, time. No bodies."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # Built by hand: this runs for every request, and json.dumps of a dict costs more than the
        # rest of the line; only the strings need escaping.
        path = json.dumps(_SECRET_PATHS.sub(r"\1***", request.path), ensure_ascii=False)
        remote, method = json.dumps(request.remote), json.dumps(request.method)
        access_log.info(
            f'{{"method": {method}, "path": {path}, "status": {response.status}, '
            f'"bytes": {response.body_length}, "ms": {time * 1000:.1f}, "remote": {remote}}}'
        )

    @property
    def enabled(self) -> bool:
        return access_log.isEnabledFor(logging.INFO)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is ``{"error": ...}`` JSON with a 4xx status (pages answer their own HTML errors); a
    database locked by another process is a 503 with ``Retry-After``, never a 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type in ("application/json", "text/html"):
            raise
        return web.json_response({"error": exc.reason}, status=exc.status, headers=_kept_headers(exc))
    except NotFound as exc:
        return web.json_response({"error": exc.public}, status=404)
    except InvalidInput as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except SurveybotError as exc:
        return web.json_response({"error": str(exc)}, status=422)
    except sqlite3.OperationalError as exc:
        if storage_problem(exc) is not None:  # full or read-only: said once by db.py, not a 500 per request
            return web.json_response(
                {"error": "the database cannot take writes now; try again later"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_BUSY)},
            )
        if not is_busy(exc):
            raise
        return busy_response()


def busy_response() -> web.Response:
    return web.json_response(
        {"error": "the database is busy (another process is writing); try again shortly"},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_BUSY)},
    )


def _kept_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}


async def healthz(request: web.Request) -> web.Response:
    """200 only when the dispatcher, the inbox worker and the scheduler run and the database takes writes;
    otherwise 503 naming what is wrong."""
    app = request.app
    db = app[DB]
    checks = {"dispatcher": "ok", "inbox": "ok", "scheduler": "ok", "database": "ok"}
    checks.update(app[HEALTH].problems())
    if PLANNER not in app or not app[PLANNER].alive():
        checks["scheduler"] = "not running"
    if app[LEASE_LOST]:
        checks["dispatcher"] = "stopped: another serve took over this database's lease"
    problem = unwritable(db)
    if problem is not None:
        checks["database"] = f"not writable: {problem}"
    queued, sending = outbox.counts_in_flight(db)
    healthy = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "unavailable", "checks": checks, "queued": queued, "sending": sending},
        status=200 if healthy else 503,
    )


def create_app(
    settings: Settings, *, check_every: float = 1.0, poll: float = 0.5, mailbox_every: float = READ_EVERY_S
) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=2 * 1024 * 1024)
    app[SETTINGS] = settings
    app[PAGES] = pages.environment()
    app[HEALTH] = Health()
    app[LEASE_LOST] = False
    app.router.add_get("/healthz", healthz)
    for area in (webhooks, unsubscribe, uploads, interviews, report_api, login, dashboard):
        area.setup(app)
    me = lease.new_holder()

    async def database(app: web.Application) -> AsyncIterator[None]:
        # Opened with the patient busy timeout for migrating and taking the lease, then a short one: the event
        # loop must never wait long for another process's write lock (writes retry asynchronously instead).
        db = open_db(settings.db_path)
        try:
            previous = lease.acquire(db, me, utcnow())
        except lease.LeaseHeld:
            db.close()
            raise
        if previous is not None:
            log.warning(
                "took over the lease of a serve that stopped without giving it back (pid %s on %s, last seen %s)",
                previous["pid"],
                previous["host"],
                previous["heartbeat_at"],
            )
        restored = outbox.flag_restored(db)
        if restored is not None and restored[1]:
            log.warning(
                "this database was restored from a backup taken at %s: %d messages queued then may have "
                "gone out after it; they go again with the same Message-ID",
                *restored,
            )
        db.execute(f"PRAGMA busy_timeout = {int(SERVICE_BUSY_TIMEOUT_S * 1000)}")
        app[DB] = db
        app[SECRET] = service_secret(db, settings.secret)
        app[INTAKE] = Intake(db)
        app[WAVES] = {}
        yield
        try:
            lease.release(db, me)
        except sqlite3.OperationalError as exc:  # it lapses by itself a minute later
            log.warning("could not give the lease back (%s); it lapses in a minute", exc)
        db.close()

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        transport = open_transport(settings.mail, settings.send_concurrency, settings.network_timeout)
        dispatcher = Dispatcher(
            app[DB],
            Composer(app[DB], settings, app[SECRET]),
            transport,
            rate=settings.send_rate,
            concurrency=settings.send_concurrency,
            retry_delay=settings.retry_delay,
            max_attempts=settings.max_attempts,
            poll=poll,
        )
        app[DISPATCHER] = dispatcher
        task = asyncio.create_task(
            supervise("dispatcher", dispatcher.run, app[HEALTH], lambda: dispatcher.stopping), name="dispatcher"
        )
        yield
        dispatcher.stop()
        await task
        await transport.close()
        queued, _ = outbox.counts_in_flight(app[DB])
        log.info("dispatcher stopped; %d messages stay queued for the next start", queued)

    async def responses_inbox(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.network_timeout)) as session:
            app[HTTP] = session
            worker = InboxWorker(
                app[DB], settings, session, poll=poll * 2, grace=settings.fetch_grace, give_up=settings.fetch_give_up
            )
            worker.on_recorded = lambda outcome: app[DISPATCHER].wake()
            app[INBOX] = worker
            task = asyncio.create_task(
                supervise("inbox", worker.run, app[HEALTH], lambda: worker.stopping), name="inbox"
            )
            # responses pulled (waves in poll mode, and a daily safety net for those taking webhooks)
            puller = Puller(app[DB], settings, session, tick=min(5.0, settings.poll_every))
            pulling = asyncio.create_task(
                supervise("pull", puller.run, app[HEALTH], lambda: puller.stopping), name="pull"
            )
            yield
            worker.stop()
            puller.stop()
            await task
            await pulling

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        planner = Planner(app[DB], app[SECRET], on_queued=app[DISPATCHER].wake, check_every=check_every)
        app[PLANNER] = planner
        planner.start()

        def interviews_tick() -> None:
            invited, expired = interview_queue.tick(
                app[DB],
                utcnow(),
                nudge_after=settings.interview_nudge_after,
                expire_after=settings.interview_expire_after,
            )
            if invited:
                log.info("invited %d respondents to book an interview", invited)
                app[DISPATCHER].wake()
            if expired:
                log.info("%d interview booking links expired", expired)

        def heartbeat() -> None:
            if app[LEASE_LOST] or lease.beat(app[DB], me, utcnow()):
                return
            # Another serve took the lease (this one stalled for over a minute): stop sending at once.
            app[LEASE_LOST] = True
            app[DISPATCHER].stop()
            log.critical("another serve took over this database's lease; this one no longer sends e-mail — stop it")

        planner.every(max(check_every, 1.0), interviews_tick, "interviews")
        planner.every(min(lease.BEAT_EVERY, max(check_every, 1.0) * 5), heartbeat, "lease")
        yield
        planner.stop()

    async def mailboxes(app: web.Application) -> AsyncIterator[None]:
        # bounces and replies (SURVEYBOT_BOUNCE_MAILBOX, SURVEYBOT_REPLY_MAILBOX), when either is set
        reader = MailboxReader(app[DB], settings, app[SECRET], every=mailbox_every)
        task = None
        if reader.sources:
            task = asyncio.create_task(
                supervise("mailbox", reader.run, app[HEALTH], lambda: reader.stopping), name="mailbox"
            )
        yield
        reader.stop()
        if task is not None:
            await task

    app.cleanup_ctx.extend([database, delivery, responses_inbox, mailboxes, scheduler])
    return app

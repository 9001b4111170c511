"""The durable webhook inbox: notifications that name a response to fetch from the platform's API.

The web handler only writes a row (unique per platform, response id and event, so a retried delivery adds
nothing) and answers 200 at once; a slow or failing API never makes the platform time out. The worker
fetches each response, records it, and retries API failures with growing delays (or the platform's
``Retry-After``) up to ``max_attempts``. Rows hold ids only: no answer is stored before it is judged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp
from sqlite_utils import Database

from surveybot import responses
from surveybot.clock import iso, utcnow
from surveybot.db import transaction
from surveybot.platforms import ApiError, FetchNeeded, qualtrics, surveymonkey
from surveybot.waves import waves_by_id

log = logging.getLogger("surveybot.inbox")
FETCHERS = {"qualtrics": qualtrics.fetch, "surveymonkey": surveymonkey.fetch}


def add(db: Database, wave_id: int, need: FetchNeeded, now: datetime) -> bool:
    """Queue a notification; False if the same one was queued before (a retried delivery)."""
    with transaction(db):
        cursor = db.conn.execute(
            "INSERT OR IGNORE INTO webhook_inbox (wave_id, platform, survey_id, response_id, event, due_at, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [wave_id, need.platform, need.survey_id, need.response_id, need.event, iso(now), iso(now)])
    return cursor.rowcount == 1


def first_delivery(db: Database, platform: str, message_id: str, now: datetime) -> bool:
    """Remember a signed message's id; False if it was delivered before (a retry or a replay)."""
    with transaction(db):
        cursor = db.execute("INSERT OR IGNORE INTO webhook_seen (platform, message_id, received_at) VALUES (?, ?, ?)",
                            [platform, message_id, iso(now)])
    return cursor.rowcount == 1


def claim(db: Database, now: datetime, limit: int) -> list[dict]:
    with transaction(db):
        return list(db.query(
            """UPDATE webhook_inbox SET attempts = attempts + 1, due_at = ?
               WHERE id IN (SELECT id FROM webhook_inbox WHERE state = 'pending' AND due_at <= ?
                            ORDER BY due_at, id LIMIT ?)
               RETURNING *""", [iso(now + timedelta(minutes=5)), iso(now), limit]))


def finish(db: Database, row_id: int, state: str, error: str, now: datetime) -> None:
    with transaction(db):
        db.execute("UPDATE webhook_inbox SET state = ?, last_error = ?, processed_at = ? WHERE id = ?",
                   [state, error[:500], iso(now), row_id])


def retry(db: Database, row_id: int, error: str, due: datetime) -> None:
    with transaction(db):
        db.execute("UPDATE webhook_inbox SET due_at = ?, last_error = ? WHERE id = ?", [iso(due), error[:500], row_id])


class InboxWorker:
    def __init__(self, db: Database, settings, session: aiohttp.ClientSession, *, retry_delay: float = 5.0,
                 max_attempts: int = 10, concurrency: int = 8, poll: float = 1.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.settings, self.session = db, settings, session
        self.retry_delay, self.max_attempts, self.concurrency = retry_delay, max_attempts, concurrency
        self.poll, self.clock = poll, clock
        self._wake = asyncio.Event()
        self._stopping = False
        self.on_recorded: Callable[[str], None] = lambda outcome: None

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            rows = claim(self.db, self.clock(), self.concurrency)
            if rows:
                await asyncio.gather(*(self._process(row) for row in rows))
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except asyncio.TimeoutError:
                pass

    async def _process(self, row: dict) -> None:
        fetch = FETCHERS.get(row["platform"])
        wave = waves_by_id(self.db, [row["wave_id"]]).get(row["wave_id"])
        if fetch is None or wave is None:
            finish(self.db, row["id"], "failed", "no fetcher or no wave", self.clock())
            return
        try:
            await self._fetch_and_record(fetch, wave, row)
        except Exception:  # one bad row must never stop the worker: park it for the coordinator
            log.exception("response %s could not be processed", row["response_id"])
            finish(self.db, row["id"], "failed", "internal error while processing", self.clock())

    async def _fetch_and_record(self, fetch, wave: dict, row: dict) -> None:
        try:
            event = await fetch(self.session, self.settings, row["survey_id"], row["response_id"])
        except ApiError as exc:
            if not exc.temporary or row["attempts"] >= self.max_attempts:
                finish(self.db, row["id"], "failed", str(exc), self.clock())
                log.warning("response %s not fetched: %s", row["response_id"], exc)
                return
            delay = exc.retry_after if exc.retry_after is not None else self.retry_delay * 2 ** (row["attempts"] - 1)
            retry(self.db, row["id"], str(exc), self.clock() + timedelta(seconds=delay))
            return
        outcome = responses.record(self.db, wave, event, self.clock())
        finish(self.db, row["id"], "done", "", self.clock())
        self.on_recorded(outcome)

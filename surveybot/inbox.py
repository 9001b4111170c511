"""The durable webhook inbox: notifications that name a response to fetch from the platform's API.

The web handler only writes a row (unique per platform, response id and event, so a retried delivery adds
nothing) and answers 200 at once; a slow or failing API never makes the platform time out. The worker
fetches each response, records it, and retries API failures with growing delays (or the platform's
``Retry-After`` and the platform's own rate-limit headers) until ``give_up`` has passed and the wave has
closed. A failed row is tried again when the platform delivers the notification again, or on ``responses
retry``. Rows hold ids only: no answer is stored before it is judged.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlite_utils import Database

from surveybot import responses
from surveybot.clock import iso, parse_stored, utcnow
from surveybot.db import is_busy, retry_busy, transaction
from surveybot.platforms import ApiError, FetchNeeded, ResponseEvent, qualtrics, surveymonkey
from surveybot.ratelimit import RateLimiter
from surveybot.supervise import Stoppable
from surveybot.waves import waves_by_id

log = logging.getLogger("surveybot.inbox")
SURVEYMONKEY_CALLS_PER_S = 1.9  # its apps may make 120 calls a minute
FETCHERS = {"qualtrics": qualtrics.fetch, "surveymonkey": surveymonkey.fetch}

if TYPE_CHECKING:
    from surveybot.config import Settings


def add(db: Database, wave_id: int, need: FetchNeeded, now: datetime) -> bool:
    """Queue a notification; False if the same one was queued before (a retried delivery)."""
    return add_many(db, [(wave_id, need)], now)[0]


def add_many(db: Database, items: list[tuple[int, FetchNeeded]], now: datetime) -> list[bool]:
    """Queue several notifications in one transaction; for each, whether it was new."""
    added, stamp = [], iso(now)
    with transaction(db):
        for wave_id, need in items:
            cursor = db.conn.execute(
                "INSERT OR IGNORE INTO webhook_inbox (wave_id, platform, survey_id, response_id, event, due_at, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [wave_id, need.platform, need.survey_id, need.response_id, need.event, stamp, stamp],
            )
            if cursor.rowcount == 0:  # delivered again: a row that had failed is worth another try
                cursor = db.conn.execute(
                    "UPDATE webhook_inbox SET state = 'pending', attempts = 0, due_at = ?, received_at = ? "
                    "WHERE wave_id = ? AND platform = ? AND response_id = ? AND event = ? AND state = 'failed'",
                    [stamp, stamp, wave_id, need.platform, need.response_id, need.event],
                )
            added.append(cursor.rowcount == 1)
    return added


def requeue_failed(db: Database, wave_id: int, now: datetime) -> int:
    """``responses retry``: every failed fetch of the wave is tried again, its clock started anew."""
    with transaction(db):
        return db.execute(
            "UPDATE webhook_inbox SET state = 'pending', attempts = 0, due_at = ?, received_at = ? "
            "WHERE wave_id = ? AND state = 'failed'",
            [iso(now), iso(now), wave_id],
        ).rowcount


def waiting(db: Database, wave_id: int) -> tuple[int, str]:
    """Notifications of the wave whose fetch failed and waits to be tried again, and the latest reason (a
    missing or refused token keeps them here until it is put right)."""
    count, error = db.execute(
        "SELECT count(*), (SELECT last_error FROM webhook_inbox WHERE wave_id = :w AND state = 'pending' "
        "AND last_error != '' ORDER BY id DESC LIMIT 1) FROM webhook_inbox "
        "WHERE wave_id = :w AND state = 'pending' AND last_error != ''",
        {"w": wave_id},
    ).fetchone()
    return count, error or ""


def failures(db: Database, wave_id: int, limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """How many of the wave's fetches failed, and why (the latest first)."""
    count = db.execute(
        "SELECT count(*) FROM webhook_inbox WHERE wave_id = ? AND state = 'failed'", [wave_id]
    ).fetchone()[0]
    rows = list(
        db.query(
            "SELECT response_id, event, last_error AS error, processed_at FROM webhook_inbox "
            "WHERE wave_id = ? AND state = 'failed' ORDER BY processed_at DESC LIMIT ?",
            [wave_id, limit],
        )
    )
    return count, rows


class Intake:
    """Group commit for the webhook handler: notifications that arrive in the same turn of the event loop
    share one transaction, and each handler answers only after it has committed. Under a burst this turns
    hundreds of commits a second into tens, and the answer still means "stored"."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.clock = db, clock
        self._waiting: list[tuple[int, FetchNeeded, asyncio.Future[bool]]] = []

    async def add(self, wave_id: int, need: FetchNeeded) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._commit)
        self._waiting.append((wave_id, need, future))
        return await future

    def _commit(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            added = add_many(self.db, [(wave_id, need) for wave_id, need, _ in batch], self.clock())
        except Exception as exc:  # each waiting handler answers with the error
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), new in zip(batch, added):
            if not future.done():  # its client may have gone away meanwhile
                future.set_result(new)


def first_delivery(db: Database, platform: str, message_id: str, now: datetime) -> bool:
    """Remember a signed message's id; False if it was delivered before (a retry or a replay)."""
    with transaction(db):
        cursor = db.execute(
            "INSERT OR IGNORE INTO webhook_seen (platform, message_id, received_at) VALUES (?, ?, ?)",
            [platform, message_id, iso(now)],
        )
    return cursor.rowcount == 1


def forget_delivery(db: Database, platform: str, message_id: str) -> None:
    """Let a signed message's id be taken again: it went to a wave it was not for (another wave's response, as
    when two waves share a survey), and the same message, sent on to its own wave, must be read there."""
    db.execute("DELETE FROM webhook_seen WHERE platform = ? AND message_id = ?", [platform, message_id])


def claim(db: Database, now: datetime, limit: int) -> list[dict[str, Any]]:
    with transaction(db):
        return list(
            db.query(
                """UPDATE webhook_inbox SET attempts = attempts + 1, due_at = ?
               WHERE id IN (SELECT id FROM webhook_inbox WHERE state = 'pending' AND due_at <= ?
                            ORDER BY due_at, id LIMIT ?)
               RETURNING *""",
                [iso(now + timedelta(minutes=5)), iso(now), limit],
            )
        )


def finish(db: Database, row_id: int, state: str, error: str, now: datetime) -> None:
    with transaction(db):
        db.execute(
            "UPDATE webhook_inbox SET state = ?, last_error = ?, processed_at = ? WHERE id = ?",
            [state, error[:500], iso(now), row_id],
        )


def retry(db: Database, row_id: int, error: str, due: datetime) -> None:
    with transaction(db):
        db.execute("UPDATE webhook_inbox SET due_at = ?, last_error = ? WHERE id = ?", [iso(due), error[:500], row_id])


class InboxWorker(Stoppable):
    """Fetches queued responses a batch at a time and records the batch in one transaction.

    While webhooks keep arriving it works in the gaps: after each batch it pauses ``yield_factor`` times as
    long as the batch took, so answering the platform (which times out and retries) comes first, yet a steady
    stream of webhooks can never starve it. When none arrive it runs flat out."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        retry_delay: float = 5.0,
        concurrency: int = 16,
        poll: float = 1.0,
        yield_factor: float = 4.0,
        grace: float = 15 * 60,
        give_up: float = 48 * 3600,
        longest_wait: float = 3600,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__()
        self.db, self.settings, self.session = db, settings, session
        self.retry_delay, self.concurrency = retry_delay, concurrency
        self.poll, self.yield_factor, self.clock = poll, yield_factor, clock
        self.grace, self.give_up, self.longest_wait = grace, give_up, longest_wait
        self.pace = {"surveymonkey": RateLimiter(SURVEYMONKEY_CALLS_PER_S)}
        self._refused: set[int] = set()
        self.waiting_for_db = False
        self._arrived = 0  # webhooks queued so far, to tell whether more came in during a batch
        self.on_recorded: Callable[[str], None] = lambda outcome: None

    def wake(self) -> None:
        self._arrived += 1
        super().wake()

    def _waiting(self, waiting: bool) -> None:
        self.waiting_for_db = waiting

    async def run(self) -> None:
        """The fetching loop (run under a supervisor: an error that escapes it restarts it)."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                rows = claim(self.db, self.clock(), self.concurrency)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                if not self.waiting_for_db:
                    log.warning("database busy (another process holds the write lock); the inbox waits")
                self.waiting_for_db = True
                await asyncio.sleep(min(1.0, self.poll * 2))
                continue
            self.waiting_for_db = False
            if rows:
                started, arrived = loop.time(), self._arrived
                await self._process(rows)
                if self._arrived != arrived and not self._stopping:
                    await asyncio.sleep(self.yield_factor * (loop.time() - started))
                continue
            await self.nap(self.poll)

    async def _process(self, rows: list[dict[str, Any]]) -> None:
        waves = waves_by_id(self.db, sorted({row["wave_id"] for row in rows}))
        fetched = await asyncio.gather(
            *(self._fetch(row, waves.get(row["wave_id"])) for row in rows), return_exceptions=True
        )
        # What was fetched is recorded however long another process holds the write lock (the platform will
        # not send it again).
        outcomes = await retry_busy(
            lambda: self._record(rows, waves, fetched),
            what="recording responses",
            stopping=lambda: self._stopping,
            on_wait=self._waiting,
        )
        for outcome in outcomes:
            self.on_recorded(outcome)

    def _record(self, rows: list[dict[str, Any]], waves: dict[int, dict[str, Any]], fetched: list[Any]) -> list[str]:
        outcomes = []
        with transaction(self.db):
            for row, result in zip(rows, fetched):
                try:
                    with transaction(self.db):  # a savepoint: one row's failure leaves the others recorded
                        outcome = self._settle(row, waves.get(row["wave_id"]), result)
                except sqlite3.OperationalError as exc:
                    if is_busy(exc):
                        raise
                    log.exception("response %s could not be processed", row["response_id"])
                    finish(self.db, row["id"], "failed", "internal error while processing", self.clock())
                    continue
                except Exception:  # one bad row must never stop the worker: park it for the coordinator
                    log.exception("response %s could not be processed", row["response_id"])
                    finish(self.db, row["id"], "failed", "internal error while processing", self.clock())
                    continue
                if outcome:
                    outcomes.append(outcome)
        return outcomes

    async def _fetch(self, row: dict[str, Any], wave: dict[str, Any] | None) -> ResponseEvent | None:
        fetch = FETCHERS.get(row["platform"])
        if fetch is None or wave is None:
            return None
        if (pace := self.pace.get(row["platform"])) is not None:
            await pace.wait()  # SurveyMonkey allows 120 calls a minute: stay under it
        return await fetch(self.session, self.settings, row["survey_id"], row["response_id"])

    def _say_refused(self, row: dict[str, Any], wave: dict[str, Any] | None, error: ApiError) -> None:
        """One clear line per wave while the credentials are missing or refused (not one per response per try)."""
        if row["wave_id"] not in self._refused:
            self._refused.add(row["wave_id"])
            name = wave["slug"] if wave is not None else row["wave_id"]
            log.error("wave %s: %s; its responses wait until the credentials work", name, error)

    def _settle(self, row: dict[str, Any], wave: dict[str, Any] | None, result: object) -> str | None:
        """Write what became of one row; returns the response's outcome when it was recorded.

        Giving up is a matter of time, not of a count: a temporary failure (429, 5xx, a timeout, a refused
        token) is tried again — after the platform's own wait when it says one — until ``give_up`` has passed
        since the notification *and* the wave has closed. A "no such response" within ``grace`` of the event
        is tried again too: the response may not be readable yet."""
        now = self.clock()
        if result is None:
            finish(self.db, row["id"], "failed", "no fetcher or no wave", now)
        elif isinstance(result, ApiError):
            age = (now - parse_stored(row["received_at"])).total_seconds()
            closed = wave is not None and (
                wave["state"] == "closed" or (wave["closes_at"] is not None and parse_stored(wave["closes_at"]) <= now)
            )
            worth_trying = result.temporary or (result.not_found and age < self.grace)
            if not worth_trying or (age >= self.give_up and closed):
                finish(self.db, row["id"], "failed", str(result), now)
                log.warning("response %s not fetched: %s", row["response_id"], result)
            else:
                if result.refused:
                    self._say_refused(row, wave, result)
                delay = (
                    result.retry_after
                    if result.retry_after is not None
                    else min(self.longest_wait, self.retry_delay * 2 ** (row["attempts"] - 1))
                )
                retry(self.db, row["id"], str(result), now + timedelta(seconds=delay))
        elif isinstance(result, BaseException):
            raise result
        else:
            assert wave is not None and isinstance(result, ResponseEvent)  # a fetch ran, so the wave exists
            outcome = responses.record(self.db, wave, result, now)
            finish(self.db, row["id"], "done", "", now)
            return outcome
        return None
